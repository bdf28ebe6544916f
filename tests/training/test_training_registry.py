"""The pipeline registry (pipelines.json): the six pipelines' names, and the rules a bad file breaks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlops_training import registry, settings
from mlops_training.registry import RegistryError, load, parse

# The execution plan's names, written out here on purpose: a change to the registry must
# change this table too.
EXPECTED = {
    "xgboost": ("xgboost_pipeline", "mnist-xgboost", "xgboost", "gbm", "XGBoost", 0.85),
    "lightgbm": ("lightgbm_pipeline", "mnist-lightgbm", "lightgbm", "gbm", "LightGBM", 0.87),
    "tensorflow_mlp": ("tensorflow_mnist_mlp", "mnist-tensorflow-mlp", "tensorflow", "mlp", "TensorFlow MLP", 0.95),
    "tensorflow_cnn": ("tensorflow_mnist_cnn", "mnist-tensorflow-cnn", "tensorflow", "cnn", "TensorFlow CNN", 0.98),
    "pytorch_mlp": ("pytorch_mnist_mlp", "mnist-pytorch-mlp", "pytorch", "mlp", "PyTorch MLP", 0.95),
    "pytorch_cnn": ("pytorch_mnist_cnn", "mnist-pytorch-cnn", "pytorch", "cnn", "PyTorch CNN", 0.98),
}
DAGS_DIR = Path(__file__).resolve().parents[2] / "files" / "dags"


def _entry(**change: Any) -> dict[str, Any]:
    return {"dag_id": "a_pipeline", "experiment": "a_pipeline", "registered_model": "mnist-a", "library": "xgboost",
            "family": "gbm", "label": "A", "plan_gate": 0.5} | change


def test_the_registry_holds_the_six_pipelines_in_order() -> None:
    assert registry.KEYS == tuple(EXPECTED)
    for key, p in registry.BY_KEY.items():
        assert (p.dag_id, p.registered_model, p.library, p.family, p.label, p.plan_gate) == EXPECTED[key]
        # The verify playbook finds each pipeline's runs in the experiment named like its DAG.
        assert p.experiment == p.dag_id
        assert p.tags == ("mlops", "mnist", p.library, p.family)
    assert registry.DAG_IDS == tuple(e[0] for e in EXPECTED.values())


def test_each_pipeline_has_its_dag_files_and_nothing_else_is_one() -> None:
    expected = [f"{p.dag_id}_dag.py" for p in registry.PIPELINES] + [f"{p.tuning_dag_id}_dag.py" for p in registry.PIPELINES]
    assert sorted(f.name for f in DAGS_DIR.glob("*_dag.py")) == sorted(expected)


def test_tuning_names_follow_the_training_names() -> None:
    for p in registry.PIPELINES:
        assert p.tuning_dag_id == f"{p.dag_id}_tuning" and p.tuning_experiment == f"{p.experiment}_tuning"
    assert registry.TUNING_DAG_IDS == tuple(f"{d}_tuning" for d in registry.DAG_IDS)
    # Apart from the training experiments and DAG ids, so the stale-run sweep and the report never mix them.
    assert not set(registry.TUNING_DAG_IDS) & set(registry.DAG_IDS)


def test_family_decides_tables_and_curve_steps() -> None:
    assert [p.key for p in registry.PIPELINES if p.tabular] == ["xgboost", "lightgbm"]
    assert registry.BY_KEY["lightgbm"].step_unit == "boosting round"
    assert registry.BY_KEY["pytorch_cnn"].step_unit == "epoch"
    for p in registry.PIPELINES:
        # The number of curve steps is a hyper-parameter of every pipeline.
        assert p.steps_param in settings.HYPERPARAMETERS[p.key]


def test_the_file_is_what_the_role_reads() -> None:
    # The training_dags role reads the same file with from_json: plain JSON, keyed by pipeline.
    document = json.loads(registry.REGISTRY_FILE.read_text())
    assert list(document) == list(EXPECTED)
    assert parse(document) == registry.BY_KEY


@pytest.mark.parametrize(("entry", "says"), [
    ("not an object", r"a: must be an object"),
    ({k: v for k, v in _entry().items() if k != "label"}, r"a: missing field\(s\) \['label'\], unknown field\(s\) \[\]"),
    (_entry(queue="gpu"), r"unknown field\(s\) \['queue'\]"),
    (_entry(dag_id=""), r"a\.dag_id must be a non-empty string"),
    (_entry(library=3), r"a\.library must be a non-empty string, got 3"),
    (_entry(family="rnn"), r"a\.family must be one of \['cnn', 'gbm', 'mlp'\], got 'rnn'"),
    (_entry(plan_gate=1.0), r"a\.plan_gate must be a number in \[0, 1\), got 1\.0"),
    (_entry(plan_gate="0.9"), r"a\.plan_gate must be a number in \[0, 1\), got '0\.9'"),
    (_entry(plan_gate=True), r"a\.plan_gate must be a number in \[0, 1\), got True"),
])
def test_a_bad_entry_is_rejected_naming_it(entry: Any, says: str) -> None:
    with pytest.raises(RegistryError, match=says):
        parse({"a": entry}, "reg.json")


def test_names_must_be_unique() -> None:
    with pytest.raises(RegistryError, match=r"reg\.json: b and a share the registered_model 'mnist-a'"):
        parse({"a": _entry(), "b": _entry(dag_id="b", experiment="b")}, "reg.json")
    with pytest.raises(RegistryError, match=r"b and a share the dag_id 'a_pipeline'"):
        parse({"a": _entry(), "b": _entry(registered_model="mnist-b")})


@pytest.mark.parametrize("text", ["", "[]", "{}", "{not json"])
def test_an_empty_or_broken_file_is_rejected_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "pipelines.json"
    path.write_text(text)
    with pytest.raises(RegistryError, match=str(path)):
        load(path)


def test_a_missing_file_is_rejected_naming_it(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="nothing.json: cannot be read"):
        load(tmp_path / "nothing.json")
