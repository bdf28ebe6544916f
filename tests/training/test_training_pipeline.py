"""The task chain validate → train → evaluate → register against a real local MLflow.

Data: MNIST-format synthetic digits that every recipe learns almost perfectly
in a second (so the gate-passing path is exercised for all six pipelines),
and the same images with shuffled labels (nothing to learn: the gate must
reject the model and nothing may be registered).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("mlflow")

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlops_training import gates, pipeline, recipes, settings

TINY: dict[str, dict[str, Any]] = {
    "xgboost": {"num_boost_round": 5, "max_bin": 16, "max_depth": 3, "validation_size": 200},
    "lightgbm": {"num_boost_round": 10, "max_bin": 15, "num_leaves": 7, "validation_size": 200},
    "tensorflow_mlp": {"epochs": 3, "batch_size": 32, "hidden_units": 32, "learning_rate": 0.01,
                       "validation_size": 200},
    "tensorflow_cnn": {"epochs": 3, "batch_size": 32, "conv1_filters": 4, "conv2_filters": 8,
                       "dense_units": 16, "learning_rate": 0.01, "validation_size": 200},
    "pytorch_mlp": {"epochs": 3, "batch_size": 32, "hidden_units": 32, "learning_rate": 0.01,
                       "validation_size": 200},
    "pytorch_cnn": {"epochs": 3, "batch_size": 32, "conv1_filters": 4, "conv2_filters": 8,
                    "dense_units": 16, "learning_rate": 0.01, "validation_size": 200},
}
CONTEXT = {"dag_id": "test_dag", "dag_run_id": "manual__2026-01-01T00:00:00", "try_number": 1}


def _require(key: str) -> None:
    module = recipes.LIBRARY_MODULES[key]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{key}: {module} is not installed in this environment")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_uri: str):
    """Settings with tiny hyper-parameters, a data dir, and slice-sized MNIST validation."""
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"pipelines": {k: {"hyperparameters": v} for k, v in TINY.items()}}))
    monkeypatch.setenv(settings.SETTINGS_FILE_ENV, str(path))
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(pipeline, "MNIST_ROWS", (None, None))
    (tmp_path / "data").mkdir()
    return tmp_path / "data" / "mnist.npz"


@pytest.mark.parametrize("key", settings.PIPELINES)
def test_chain_trains_gates_and_registers(key: str, env: Path, synthetic_mnist) -> None:
    _require(key)
    np.savez(env, **synthetic_mnist())
    client = MlflowClient()

    data_ref = pipeline.validate(key)
    assert data_ref["kind"] == "mnist" and data_ref["train_rows"] == 1200 and len(data_ref["sha256"]) == 64

    trained = pipeline.train(key, data_ref, CONTEXT)
    run = client.get_run(trained["run_id"])
    assert run.info.status == "FINISHED"
    cfg = settings.get_settings(key)
    assert client.get_experiment(run.info.experiment_id).name == cfg.dag_id
    assert run.data.tags["mlops.pipeline"] == key and run.data.tags["mlops.dag_run_id"] == CONTEXT["dag_run_id"]
    assert run.data.params["train_rows"] == "1000" and run.data.params["val_rows"] == "200"
    steps = TINY[key].get("epochs", TINY[key].get("num_boost_round"))
    assert len(client.get_metric_history(trained["run_id"], "val_accuracy")) == steps
    assert run.data.metrics["train_seconds"] > 0

    evaluated = pipeline.evaluate(key, trained)
    assert evaluated["test_accuracy"] > cfg.gate
    run = client.get_run(trained["run_id"])
    assert run.info.status == "FINISHED"  # evaluation never reopens the run
    assert run.data.metrics["test_accuracy"] == pytest.approx(evaluated["test_accuracy"])
    assert run.data.tags["mlops.gate_passed"] == "true" and float(run.data.tags["mlops.gate"]) == cfg.gate

    registered = pipeline.register(key, evaluated)
    assert registered["registered_model"] == cfg.registered_model_name
    assert registered["version"] == 1 and registered["champion"] is True
    champion = client.get_model_version_by_alias(cfg.registered_model_name, "champion")
    assert int(champion.version) == 1 and champion.run_id == trained["run_id"]
    run = client.get_run(trained["run_id"])
    assert run.data.tags["mlops.registered_version"] == "1" and run.data.tags["mlops.champion"] == "true"


def test_model_below_the_gate_is_never_registered(env: Path, synthetic_mnist) -> None:
    _require("xgboost")
    np.savez(env, **synthetic_mnist(random_labels=True))
    client = MlflowClient()
    trained = pipeline.train("xgboost", pipeline.validate("xgboost"), CONTEXT)
    with pytest.raises(gates.GateError, match="does not clear the gate"):
        pipeline.evaluate("xgboost", trained)
    run = client.get_run(trained["run_id"])
    assert run.data.tags["mlops.gate_passed"] == "false"
    assert run.data.metrics["test_accuracy"] < 0.5
    # Even if someone called register anyway, the recorded accuracy stops it.
    with pytest.raises(gates.GateError):
        pipeline.register("xgboost", {**trained, "test_accuracy": 0.99})
    with pytest.raises(MlflowException):
        client.get_registered_model("mnist-xgboost")


def test_a_worse_model_is_registered_but_does_not_take_champion(env: Path, synthetic_mnist) -> None:
    _require("xgboost")
    np.savez(env, **synthetic_mnist())
    first = pipeline.register("xgboost", pipeline.evaluate("xgboost", pipeline.train("xgboost", pipeline.validate("xgboost"), CONTEXT)))
    second = pipeline.register("xgboost", pipeline.evaluate("xgboost", pipeline.train("xgboost", pipeline.validate("xgboost"), CONTEXT)))
    # Same data, same seed: the same accuracy, so the incumbent stays champion.
    assert (first["version"], first["champion"]) == (1, True)
    assert (second["version"], second["champion"]) == (2, False)
    assert second["previous_champion_version"] == 1


def test_failed_training_leaves_the_run_failed_and_the_retry_starts_clean(
    env: Path, synthetic_mnist, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _require("xgboost")
    np.savez(env, **synthetic_mnist())
    client = MlflowClient()
    data_ref = pipeline.validate("xgboost")

    def explode(*args: Any, **kwargs: Any):
        raise MemoryError("simulated out of memory")

    with monkeypatch.context() as patch:
        patch.setitem(recipes.RECIPES, "xgboost", recipes.RECIPES["xgboost"]._replace(train=explode))
        with pytest.raises(MemoryError):
            pipeline.train("xgboost", data_ref, CONTEXT)
    runs = client.search_runs([client.get_experiment_by_name("xgboost_pipeline").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]

    # A run left RUNNING by a SIGKILLed try (no handler ran) is swept by the next try.
    exp_id = runs[0].info.experiment_id
    orphan = client.create_run(exp_id, tags={"mlops.pipeline": "xgboost", "mlops.dag_run_id": CONTEXT["dag_run_id"]})
    retried = pipeline.train("xgboost", data_ref, {**CONTEXT, "try_number": 2})
    assert retried["swept_runs"] == [orphan.info.run_id]
    assert client.get_run(orphan.info.run_id).info.status == "KILLED"
    statuses = {r.info.run_id: r.info.status for r in client.search_runs([exp_id])}
    assert "RUNNING" not in statuses.values()


def test_changed_data_between_tasks_is_refused(env: Path, synthetic_mnist) -> None:
    np.savez(env, **synthetic_mnist())
    data_ref = pipeline.validate("xgboost")
    np.savez(env, **synthetic_mnist(seed=1))
    with pytest.raises(pipeline.DataError, match="changed since validation"):
        pipeline.load_splits(settings.get_settings("xgboost"), data_ref)


def test_missing_data_fails_validation_naming_the_path(env: Path) -> None:
    with pytest.raises(pipeline.DataError, match=f"MNIST file {env} does not exist"):
        pipeline.validate("pytorch_cnn")


def test_tabular_chain_registers_under_its_own_name(env: Path, tmp_path: Path) -> None:
    _require("lightgbm")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 4))
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(kind=np.where(x[:, 0] + x[:, 1] > 0, "yes", "no"))
    path = tmp_path / "Churn Data.csv"
    frame.to_csv(path, index=False)

    data_ref = pipeline.validate("lightgbm", str(path), "kind")
    assert data_ref["kind"] == "tabular" and data_ref["n_classes"] == 2 and data_ref["features"] == 4
    evaluated = pipeline.evaluate("lightgbm", pipeline.train("lightgbm", data_ref, CONTEXT))
    registered = pipeline.register("lightgbm", evaluated)
    assert registered["registered_model"] == "lightgbm-churn-data"  # never compared with MNIST's champion


def test_deep_learning_pipelines_refuse_a_table(env: Path, tmp_path: Path) -> None:
    with pytest.raises(pipeline.DataError, match="only supported by"):
        pipeline.validate("pytorch_cnn", str(tmp_path / "t.csv"), "label")
