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
from mlops_training.dag_factory import build_training_dag, build_tuning_dag
from mlops_training.gates import GateError
from mlops_training.settings import SettingsError
from mlops_training.tuning import TuningError, default_params


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
    assert f"(> {spec.plan_gate}; execution plan: > {spec.plan_gate})" in dag.doc_md
    assert f"a version of `{spec.registered_model}`" in dag.doc_md
    assert ("Parquet/CSV table" in dag.doc_md) is spec.tabular
    assert f"per-{spec.step_unit.replace(' ', '-')} learning curves" in dag.doc_md


def test_the_doc_shows_the_gate_in_force(_settings: Path) -> None:
    _settings.write_text(json.dumps({"pipelines": {"lightgbm": {"gate": 0.91}}}))
    assert "(> 0.91; execution plan: > 0.87)" in build_training_dag("lightgbm", None).doc_md


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


# --------------------------------------------------------------------------- tuning DAGs



@pytest.fixture
def study_stand_in(monkeypatch: pytest.MonkeyPatch, stand_in: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Also replace mlops_training.study (MLflow, Optuna and the ML library in real life)."""
    module = types.ModuleType("mlops_training.study")

    def select_best(key: str, study: dict[str, Any], results: list[Any]) -> dict[str, Any]:
        stand_in.append(("select_best", key, study, results))
        if not results:
            raise TuningError("no trial completed: 2 planned, 0 pruned, 2 failed or killed")
        return {"run_id": "best", "trial": 1}

    module.start_study = lambda key, spec, data, ctx: stand_in.append(("start_study", key, spec["searched"], data, ctx)) \
        or {"parent_run_id": "p"}
    module.ask = lambda study: stand_in.append(("ask", study)) or [{"number": 0}, {"number": 1}]
    module.run_trial = lambda key, study, trial, ctx: stand_in.append(("trial", key, study, trial)) or {"number": 0}
    module.select_best = select_best
    module.finish_study = lambda key, *args: stand_in.append(("finish_study", key, *args)) or {"status": "FINISHED"}
    monkeypatch.setitem(sys.modules, "mlops_training.study", module)
    monkeypatch.setattr(sys.modules["mlops_training"], "study", module, raising=False)
    return stand_in


class _TI:
    """What select_best reads from its task instance: start_study's XCom."""

    def __init__(self, study: dict[str, Any] | None) -> None:
        self.study = study

    def xcom_pull(self, task_ids: str) -> dict[str, Any] | None:
        assert task_ids == "start_study"
        return self.study


@pytest.mark.parametrize("key", registry.KEYS)
def test_the_registry_decides_the_tuning_dag(key: str) -> None:
    spec = registry.BY_KEY[key]
    dag = build_tuning_dag(key, f"### Tuning {spec.label}\n")
    assert dag.dag_id == spec.tuning_dag_id == f"{spec.dag_id}_tuning"
    assert sorted(dag.tags) == sorted([*spec.tags, "tuning"])
    assert dag.params.dump() == default_params(key)  # the trigger form shows the default study
    assert f"experiment `{spec.experiment}_tuning`" in dag.doc_md and f"a version of `{spec.registered_model}`" in dag.doc_md
    assert f"the gate (> {spec.plan_gate})" in dag.doc_md


@pytest.mark.parametrize(("params", "named"), [
    ({"search_space": {"learning_rat": {"low": 0.001, "high": 0.01}}}, "search_space.learning_rat: unknown hyper-parameter"),
    ({"search_space": {"learning_rate": {"low": 0.01, "high": 0.001}}}, "search_space.learning_rate: low 0.01 > high 0.001"),
    ({"n_trials": 0}, "n_trials must be in [1, 64], got 0"),
    ({"n_trails": 4}, "unknown param(s) ['n_trails']"),
])
def test_a_bad_study_fails_validate_at_once_and_touches_nothing(
        params: dict[str, Any], named: str, study_stand_in: list[tuple[Any, ...]]) -> None:
    validate = build_tuning_dag("pytorch_mlp", "doc").get_task("validate")
    with pytest.raises(AirflowFailException) as raised:  # fails the task without a retry
        validate.python_callable(params={**default_params("pytorch_mlp"), **params})
    assert str(raised.value).startswith("pytorch_mnist_mlp_tuning: ") and named in str(raised.value)
    assert study_stand_in == []  # not even the data was looked at


def test_the_tuning_tasks_call_the_package_with_their_key(study_stand_in: list[tuple[Any, ...]]) -> None:
    dag = build_tuning_dag("lightgbm", "doc")
    validated = dag.get_task("validate").python_callable(params=default_params("lightgbm"))
    assert validated["data"] == {"kind": "mnist"} and validated["spec"]["n_trials"] == 4
    study = dag.get_task("start_study").python_callable(validated)
    trials = dag.get_task("ask").python_callable(study)
    result = dag.get_task("trial").python_callable(study=study, trial=trials[1])
    best = dag.get_task("select_best").python_callable([result, None], ti=_TI(study))
    evaluated = dag.get_task("evaluate").python_callable(best)
    registered = dag.get_task("register").python_callable(evaluated)
    dag.get_task("finish_study").python_callable(study, best, evaluated, registered)
    searched = validated["spec"]["searched"]
    assert study_stand_in == [
        ("validate", "lightgbm"),
        ("start_study", "lightgbm", searched, {"kind": "mnist"}, {"dag_run_id": "manual__1"}),
        ("ask", {"parent_run_id": "p"}),
        ("trial", "lightgbm", {"parent_run_id": "p"}, {"number": 1}),
        ("select_best", "lightgbm", {"parent_run_id": "p"}, [{"number": 0}, None]),
        ("evaluate", "lightgbm", {"run_id": "best", "trial": 1}),
        ("register", "lightgbm", {"run_id": "best", "passed": True}),
        ("finish_study", "lightgbm", {"parent_run_id": "p"}, {"run_id": "best", "trial": 1},
         {"run_id": "best", "passed": True}, {"version": 1}),
    ]


def test_select_best_fails_without_retry_when_nothing_can_be_chosen(study_stand_in: list[tuple[Any, ...]]) -> None:
    select_best = build_tuning_dag("pytorch_mlp", "doc").get_task("select_best")
    with pytest.raises(AirflowFailException, match="no study to choose from: validate or start_study failed"):
        select_best.python_callable([], ti=_TI(None))
    with pytest.raises(AirflowFailException, match="no trial completed: 2 planned"):
        select_best.python_callable([], ti=_TI({"parent_run_id": "p"}))


def test_the_settings_queue_is_every_tasks_queue(_settings: Path) -> None:
    _settings.write_text(json.dumps({"pipelines": {"lightgbm": {"queue": "heavy"}}}))
    for dag in (build_training_dag("lightgbm", None), build_tuning_dag("lightgbm", None)):
        assert {task.queue for task in dag.tasks} == {"heavy"}, dag.dag_id
    assert {task.queue for task in build_training_dag("xgboost", None).tasks} == {"default"}
