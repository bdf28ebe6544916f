"""The DAG factory: what it decides from the registry and settings, and how its tasks call the package.

The tasks are called with a stand-in ``mlops_training.pipeline`` (it needs MLflow, a trained
model and the ML libraries; tests/training covers it for real): what is checked here is the
factory's wiring — the right pipeline key reaches each step, and a failed gate ends the task
without a retry.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow.sdk", reason="Airflow is not installed here; the DAG factory tests need it")

from airflow.sdk.exceptions import AirflowFailException

DAGS_DIR = Path(__file__).resolve().parents[2] / "files" / "dags"
if str(DAGS_DIR) not in sys.path:
    sys.path.insert(0, str(DAGS_DIR))

from mlops_training import registry
from mlops_training.dag_factory import build_training_dag
from mlops_training.gates import GateError
from mlops_training.settings import SettingsError


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Package defaults unless a test writes its own settings; returns the file."""
    path = tmp_path / "settings.json"
    path.write_text("{}")
    monkeypatch.setenv("MLOPS_SETTINGS_FILE", str(path))
    return path


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Replace mlops_training.pipeline for the tasks' local import; returns the calls made."""
    calls: list[tuple[Any, ...]] = []
    module = types.ModuleType("mlops_training.pipeline")

    def evaluate(key: str, trained: dict[str, Any]) -> dict[str, Any]:
        calls.append(("evaluate", key, trained))
        if trained.get("accuracy", 1.0) < 0.5:
            raise GateError(f"{key}: test accuracy 0.1000 does not clear the gate")
        return {"run_id": trained["run_id"], "passed": True}

    module.validate = lambda key, *args: calls.append(("validate", key, *args)) or {"kind": "mnist"}
    module.train = lambda key, data_ref, context: calls.append(("train", key, data_ref, context)) or {"run_id": "r"}
    module.airflow_run_context = lambda: {"dag_run_id": "manual__1"}
    module.evaluate = evaluate
    module.register = lambda key, evaluated: calls.append(("register", key, evaluated)) or {"version": 1}
    monkeypatch.setitem(sys.modules, "mlops_training.pipeline", module)
    monkeypatch.setattr(sys.modules["mlops_training"], "pipeline", module, raising=False)
    return calls


@pytest.mark.parametrize("key", registry.KEYS)
def test_the_registry_decides_id_tags_params_and_doc(key: str) -> None:
    spec = registry.BY_KEY[key]
    dag = build_training_dag(key, f"### {spec.label} head\n\nWhat is special about it.\n")
    assert dag.dag_id == spec.dag_id
    assert sorted(dag.tags) == sorted(spec.tags)
    assert ("data_path" in dag.params) is spec.tabular
    assert dag.doc_md.startswith(f"### {spec.label} head\n\nWhat is special about it.\n")
    assert f"(> {spec.seed_gate}; seed plan: > {spec.seed_gate})" in dag.doc_md
    assert f"a version of `{spec.registered_model}`" in dag.doc_md
    assert ("Parquet/CSV table" in dag.doc_md) is spec.tabular
    assert f"per-{spec.step_unit.replace(' ', '-')} learning curves" in dag.doc_md


def test_the_doc_shows_the_gate_in_force(_settings: Path) -> None:
    _settings.write_text(json.dumps({"pipelines": {"lightgbm": {"gate": 0.91}}}))
    assert "(> 0.91; seed plan: > 0.87)" in build_training_dag("lightgbm", None).doc_md


def test_an_unknown_key_names_the_known_ones() -> None:
    with pytest.raises(SettingsError, match=r"unknown pipeline 'sklearn'; known: \['xgboost'"):
        build_training_dag("sklearn", "doc")


@pytest.mark.parametrize("key", ["pytorch_cnn", "tensorflow_mlp"])
def test_each_task_calls_the_package_with_its_own_key(key: str, stand_in: list[tuple[Any, ...]]) -> None:
    dag = build_training_dag(key, "doc")
    data_ref = dag.get_task("validate").python_callable()
    trained = dag.get_task("train").python_callable(data_ref)
    evaluated = dag.get_task("evaluate").python_callable({**trained, "accuracy": 0.99})
    dag.get_task("register").python_callable(evaluated)
    assert stand_in == [
        ("validate", key),  # no table arguments for a network pipeline
        ("train", key, {"kind": "mnist"}, {"dag_run_id": "manual__1"}),
        ("evaluate", key, {"run_id": "r", "accuracy": 0.99}),
        ("register", key, {"run_id": "r", "passed": True}),
    ]


def test_a_failed_gate_fails_the_task_without_retry(stand_in: list[tuple[Any, ...]]) -> None:
    evaluate = build_training_dag("xgboost", "doc").get_task("evaluate")
    assert evaluate.retries >= 1  # retries stay for transient errors...
    with pytest.raises(AirflowFailException, match="xgboost: test accuracy 0.1000 does not clear the gate"):
        evaluate.python_callable({"run_id": "r", "accuracy": 0.1})  # ...but a gate is not one of them
