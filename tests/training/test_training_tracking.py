"""MLflow logging against a real local MLflow (sqlite backend, artifacts under tmp_path).

Checks what the verify playbook relies on: params, per-step learning curves,
the logged model loads back and predicts, registry + champion alias only when
better, and runs never left RUNNING (exception → FAILED, SIGTERM → KILLED,
SIGKILL → swept on the next try).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient
from mlops_training import recipes, registry, tracking


def _fake_result(flavor: str = "xgboost", steps: int = 3) -> recipes.TrainResult:
    history = {
        "train_loss": [1.0 / s for s in range(1, steps + 1)],
        "train_accuracy": [0.5 + 0.1 * s for s in range(steps)],
        "val_loss": [1.1 / s for s in range(1, steps + 1)],
        "val_accuracy": [0.45 + 0.1 * s for s in range(steps)],
    }
    return recipes.TrainResult(None, history, 1.25, {"eta": 0.3, "max_depth": 6}, flavor, "9.9", flavor)


def _run(client: MlflowClient, experiment: str = "exp", tags: dict | None = None) -> str:
    exp_id = tracking.ensure_experiment(experiment)
    return client.create_run(exp_id, tags=tags or {}).info.run_id


def test_tracking_uri_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(tracking.TrackingError, match="MLFLOW_TRACKING_URI is not set"):
        tracking.tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert tracking.tracking_uri() == "http://mlflow:5000"


def test_ensure_experiment_is_idempotent(mlflow_uri: str) -> None:
    first = tracking.ensure_experiment("xgboost_pipeline")
    assert tracking.ensure_experiment("xgboost_pipeline") == first


def test_training_logs_params_curves_time_and_versions(mlflow_uri: str) -> None:
    client = MlflowClient()
    exp_id = tracking.ensure_experiment("exp")
    with tracking.training_run(exp_id, "r", {tracking.TAG_PIPELINE: "xgboost"}) as run_id:
        tracking.log_training(run_id, _fake_result(steps=4), params={"dataset": "mnist"})
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"eta": "0.3", "max_depth": "6", "dataset": "mnist"}
    assert run.data.metrics["train_seconds"] == 1.25
    for key in recipes.HISTORY_KEYS:
        history = client.get_metric_history(run_id, key)
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2, 3, 4], key
    assert [m.value for m in sorted(client.get_metric_history(run_id, "train_loss"), key=lambda m: m.step)] == \
        pytest.approx([1.0, 0.5, 1 / 3, 0.25])
    assert run.data.tags["mlops.version.python"] == sys.version.split()[0]
    assert run.data.tags["mlops.version.numpy"] == np.__version__
    assert run.data.tags["mlops.version.mlflow"]  # from mlflow or mlflow-skinny, whichever is installed
    assert run.data.tags.get("mlops.version.xgboost") == tracking._installed_version(("xgboost-cpu", "xgboost"))


def test_many_params_and_metrics_are_batched(mlflow_uri: str) -> None:
    client = MlflowClient()
    run_id = _run(client)
    result = _fake_result(steps=300)  # 1,200 curve points: more than one REST batch
    result.params = {f"p{i}": i for i in range(150)}  # more than one params batch
    tracking.log_training(run_id, result)
    assert len(client.get_metric_history(run_id, "val_loss")) == 300
    assert len(client.get_run(run_id).data.params) == 150


def test_exception_ends_the_run_failed(mlflow_uri: str) -> None:
    exp_id = tracking.ensure_experiment("exp")
    with pytest.raises(ValueError, match="boom"), tracking.training_run(exp_id, "r", {}) as run_id:
        raise ValueError("boom")
    assert MlflowClient().get_run(run_id).info.status == "FAILED"


class _Alarm(Exception):
    """Stands in for AirflowTaskTimeout, which a SIGALRM handler raises at any bytecode."""


def _statuses(exp_id: str) -> list[str]:
    return [r.info.status for r in MlflowClient().search_runs([exp_id])]


def test_timeout_inside_start_run_leaves_no_running_run(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The server has created the run, but start_run never returns it to the with-block.
    import mlflow

    exp_id = tracking.ensure_experiment("exp")
    real_start_run = mlflow.start_run

    def start_run_then_alarm(*args, **kwargs):
        real_start_run(*args, **kwargs)
        raise _Alarm("execution_timeout")

    monkeypatch.setattr(mlflow, "start_run", start_run_then_alarm)
    with pytest.raises(_Alarm), tracking.training_run(exp_id, "r", {tracking.TAG_PIPELINE: "xgboost"}):
        pytest.fail("the body must not run")
    assert _statuses(exp_id) == ["FAILED"]
    run = MlflowClient().search_runs([exp_id])[0]
    assert "_Alarm" in run.data.tags[tracking.TAG_END_REASON]
    assert mlflow.active_run() is None


def test_timeout_inside_end_run_leaves_no_running_run(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The body finished; the alarm strikes while the context manager ends the run.
    from mlflow.tracking import fluent

    exp_id = tracking.ensure_experiment("exp")
    real_end_run = fluent.end_run
    calls: list[str] = []

    def end_run_interrupted(*args, **kwargs):
        calls.append("end_run")
        if len(calls) == 1:
            raise _Alarm("execution_timeout")
        return real_end_run(*args, **kwargs)

    monkeypatch.setattr(fluent, "end_run", end_run_interrupted)
    with pytest.raises(_Alarm), tracking.training_run(exp_id, "r", {}):
        pass
    assert _statuses(exp_id) == ["FAILED"]


def test_sigterm_ends_the_run_killed_and_chains_the_previous_handler(mlflow_uri: str) -> None:
    exp_id = tracking.ensure_experiment("exp")
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with pytest.raises(tracking.RunTerminated, match="marked KILLED"), \
                tracking.training_run(exp_id, "r", {}) as run_id:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this
        assert seen == [signal.SIGTERM]  # Airflow's own handler (on_kill) still ran
        # Our handler is gone again: the previous one is back.
        assert signal.getsignal(signal.SIGTERM).__name__ == "<lambda>"
    finally:
        signal.signal(signal.SIGTERM, previous)
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "KILLED"
    assert "signal 15" in run.data.tags[tracking.TAG_END_REASON]


def test_keyboard_interrupt_ends_the_run_killed(mlflow_uri: str) -> None:
    exp_id = tracking.ensure_experiment("exp")
    with pytest.raises(KeyboardInterrupt), tracking.training_run(exp_id, "r", {}) as run_id:
        raise KeyboardInterrupt
    assert MlflowClient().get_run(run_id).info.status == "KILLED"


def test_a_real_task_process_killed_by_sigterm_leaves_no_running_run(mlflow_uri: str, tmp_path: Path) -> None:
    # What Airflow does on execution_timeout escalation or "mark failed": SIGTERM to the task process.
    dags_dir = Path(tracking.__file__).resolve().parents[1]
    script = tmp_path / "task.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(dags_dir)!r})
        from mlops_training import tracking
        tracking.configure()
        exp = tracking.ensure_experiment("exp")
        with tracking.training_run(exp, "task", {{tracking.TAG_PIPELINE: "xgboost"}}) as run_id:
            print(run_id, flush=True)
            time.sleep(120)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the task process did not start a run"
        assert MlflowClient().get_run(run_id).info.status == "RUNNING"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert MlflowClient().get_run(run_id).info.status == "KILLED"


def test_sweep_ends_runs_left_running_by_earlier_tries(mlflow_uri: str) -> None:
    client = MlflowClient()
    exp_id = tracking.ensure_experiment("exp")
    pipeline_tag = {tracking.TAG_PIPELINE: "xgboost"}
    earlier_try = _run(client, tags=pipeline_tag | {tracking.TAG_DAG_RUN_ID: "manual__1"})
    other_dag_run = _run(client, tags=pipeline_tag | {tracking.TAG_DAG_RUN_ID: "manual__2"})
    other_pipeline = _run(client, tags={tracking.TAG_PIPELINE: "lightgbm", tracking.TAG_DAG_RUN_ID: "manual__1"})
    finished = _run(client, tags=pipeline_tag | {tracking.TAG_DAG_RUN_ID: "manual__1"})
    client.set_terminated(finished, "FINISHED")

    swept = tracking.sweep_stale_runs(exp_id, "xgboost", "manual__1", older_than_seconds=3600)
    assert swept == [earlier_try]
    assert client.get_run(earlier_try).info.status == "KILLED"
    assert "earlier try" in client.get_run(earlier_try).data.tags[tracking.TAG_END_REASON]
    assert client.get_run(other_dag_run).info.status == "RUNNING"  # may be alive: too young to judge
    assert client.get_run(other_pipeline).info.status == "RUNNING"
    assert client.get_run(finished).info.status == "FINISHED"

    # Past the task's timeout, Airflow has killed whatever owned it.
    later = int(time.time() * 1000) + 2 * 3600 * 1000
    assert tracking.sweep_stale_runs(exp_id, "xgboost", "manual__9", older_than_seconds=3600, now_ms=later) == [other_dag_run]
    assert client.get_run(other_dag_run).info.status == "KILLED"


def test_record_evaluation_does_not_reopen_the_run(mlflow_uri: str) -> None:
    client = MlflowClient()
    run_id = _run(client)
    client.set_terminated(run_id, "FINISHED")
    tracking.record_evaluation(run_id, {"test_accuracy": 0.97}, {registry.TAG_GATE_PASSED: "true"})
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] == 0.97 and run.data.tags["mlops.gate_passed"] == "true"


def _tiny_model(flavor: str):
    """A real model of each flavor, trained on a toy problem in well under a second."""
    rng = np.random.default_rng(0)
    x = rng.random((200, 6), dtype=np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64) + (x[:, 1] > 0.5).astype(np.int64)
    data = recipes.TrainData(x[:150], y[:150], x[150:], y[150:], 3)
    hp = {"num_boost_round": 5, "learning_rate": 0.3, "max_depth": 3, "max_bin": 16, "min_child_weight": 1.0,
          "subsample": 1.0, "colsample_bytree": 1.0, "num_leaves": 7, "min_data_in_leaf": 5,
          "feature_fraction": 1.0, "epochs": 2, "batch_size": 32, "hidden_units": 8, "dropout": 0.0}
    key = {"xgboost": "xgboost", "lightgbm": "lightgbm", "tensorflow": "tensorflow_mlp", "pytorch": "pytorch_mlp"}[flavor]
    return key, recipes.get_recipe(key).train(data, hp, 0, 1), x[150:]


@pytest.mark.parametrize("flavor", ["xgboost", "lightgbm", "tensorflow", "pytorch"])
def test_logged_model_loads_back_and_predicts_the_same(mlflow_uri: str, flavor: str) -> None:
    module = {"xgboost": "xgboost", "lightgbm": "lightgbm", "tensorflow": "tensorflow", "pytorch": "torch"}[flavor]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    key, result, x = _tiny_model(flavor)
    exp_id = tracking.ensure_experiment("exp")
    with tracking.training_run(exp_id, "r", {}) as run_id:
        model_uri = tracking.log_model(result, x[:2], n_classes=3)
    assert model_uri.startswith("models:/")
    loaded = tracking.load_model(flavor, model_uri)
    recipe = recipes.get_recipe(key)
    assert np.array_equal(recipe.predict(loaded, x), recipe.predict(result.model, x))
    logged = MlflowClient().get_logged_model(tracking.model_id_from_uri(model_uri))
    assert logged.source_run_id == run_id and logged.name == "model"


def _version(name: str, run_id: str, accuracy: float, **tags: str) -> dict:
    return tracking.register_and_promote(f"runs:/{run_id}/model", name, run_id, accuracy, tags)


@pytest.fixture
def runs_with_models(mlflow_uri: str):
    """Runs that each hold a (dummy) logged artifact under 'model', ready to register."""
    client = MlflowClient()

    def make() -> str:
        run_id = _run(client)
        # A minimal MLmodel file is all the registry needs to accept runs:/<id>/model.
        client.log_text(run_id, "artifact_path: model\nflavors: {}\n", "model/MLmodel")
        client.set_terminated(run_id, "FINISHED")
        return run_id

    return make


def test_champion_moves_only_to_a_better_version(runs_with_models) -> None:
    client = MlflowClient()
    first = _version("mnist-xgboost", runs_with_models(), 0.95, pipeline="xgboost")
    assert (first["version"], first["champion"], first["reason"]) == (1, True, "first gated version")

    worse = _version("mnist-xgboost", runs_with_models(), 0.94)
    assert (worse["version"], worse["champion"]) == (2, False)
    assert worse["previous_champion_version"] == 1 and worse["previous_champion_accuracy"] == pytest.approx(0.95)

    tie = _version("mnist-xgboost", runs_with_models(), 0.95)
    assert (tie["version"], tie["champion"]) == (3, False)  # a tie keeps the incumbent
    assert int(client.get_model_version_by_alias("mnist-xgboost", "champion").version) == 1

    better_run = runs_with_models()
    better = _version("mnist-xgboost", better_run, 0.97)
    assert (better["version"], better["champion"]) == (4, True)
    assert int(client.get_model_version_by_alias("mnist-xgboost", "champion").version) == 4
    version = client.get_model_version("mnist-xgboost", "4")
    assert version.tags["test_accuracy"] == "0.970000" and version.run_id == better_run
    run_tags = client.get_run(better_run).data.tags
    assert (run_tags["mlops.registered_version"], run_tags["mlops.champion"]) == ("4", "true")


def test_registering_the_same_run_again_creates_no_duplicate(runs_with_models) -> None:
    run_id = runs_with_models()
    first = _version("mnist-lightgbm", run_id, 0.96)
    again = _version("mnist-lightgbm", run_id, 0.96)  # the register task retried
    assert first["version"] == again["version"] == 1 and again["champion"] is True
    assert len(MlflowClient().search_model_versions("name = 'mnist-lightgbm'")) == 1
