"""Log realistic pipeline runs into an MLflow server, the way the training package does.

Run by the test fixtures with a Python that has ``mlflow`` installed (the test
process itself may not): ``python mlflow_seed.py URI SPEC.json OUT.json``.

It drives ``mlops_training.tracking`` (the real logging code of the DAGs:
``training_run``, ``log_training``, ``record_evaluation``, ``register_and_promote``),
so the report is tested against the names the pipelines really log. Only the
model differs: a logged model (MLflow 3 ``create_logged_model`` + artifacts, as
``log_model(name="model")`` makes) with an ``MLmodel`` file and a weights blob of
``model_bytes`` bytes stands in for the XGBoost/Keras/torch one, which these test
environments do not have (and a flavor's ``log_model`` costs seconds per run).

SPEC is a list of runs, oldest first::

    [{"pipeline": "xgboost", "accuracy": 0.97, "train_seconds": 12.5, "steps": 5,
      "gate": 0.85, "dataset": "mnist", "status": "FINISHED", "evaluate": true,
      "register": true}]

OUT receives the same list with ``run_id``, the exact logged curves and the
registration outcome added.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "files" / "dags"))

from mlflow.tracking import MlflowClient
from mlops_training import gates, registry, tracking
from mlops_training.recipes import TrainResult


def log_stand_in_model(experiment_id: str, run_id: str, size: int) -> tuple[str, int]:
    """A READY logged model of the run with two files; returns its id and total byte size."""
    client = MlflowClient()
    model = client.create_logged_model(experiment_id, name=tracking.MODEL_NAME, source_run_id=run_id)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "MLmodel").write_text(f"artifact_path: model\nmodel_id: {model.model_id}\n")
        (Path(tmp) / "data").mkdir()
        (Path(tmp) / "data" / "weights.bin").write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
        total = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        client.log_model_artifacts(model.model_id, tmp)
    client.finalize_logged_model(model.model_id, "READY")
    return model.model_id, total


def curves(steps: int, final: float, offset: int) -> dict[str, list[float]]:
    """Plausible, distinct-per-run learning curves ending near ``final``."""
    def acc(i: int, gap: float) -> float:
        return round(final - gap - 0.3 * math.exp(-(i + 1) / 1.5) + offset * 1e-4, 6)
    return {
        "train_loss": [round(2.0 * math.exp(-(i + 1) / 2) + offset * 1e-3, 6) for i in range(steps)],
        "val_loss": [round(2.1 * math.exp(-(i + 1) / 2.2) + offset * 1e-3, 6) for i in range(steps)],
        "train_accuracy": [acc(i, -0.005) for i in range(steps)],
        "val_accuracy": [acc(i, 0.002) for i in range(steps)],
    }


def wait_for(uri: str, seconds: float = 300) -> None:
    """The fixtures start this script together with the server: import while it boots."""
    import requests

    deadline = time.monotonic() + seconds
    while True:
        try:
            if requests.get(f"{uri}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{uri} did not answer /health within {seconds:.0f} s")
        time.sleep(0.5)


def seed_study(item: dict, offset: int) -> dict:
    """A tuning study as mlops_training.study logs it: a parent run, trial runs beneath it (a
    killed one left KILLED with params only), the study's figures and the champion decision."""
    key = item["pipeline"]
    client = MlflowClient()
    experiment_id = tracking.ensure_experiment(registry.BY_KEY[key].tuning_experiment)
    parent = tracking.create_run(experiment_id, f"study-seed{offset}", {
        registry.TAG_PIPELINE: key, registry.TAG_STUDY_ROLE: "study", registry.TAG_DAG_RUN_ID: f"manual__study{offset}",
    }, {"n_trials": len(item["trials"]), **{f"space.{name}": json.dumps({"low": 0, "high": 1}) for name in item["space"]}})
    trials = []
    for number, trial in enumerate(item["trials"]):
        tags = {registry.TAG_PIPELINE: key, registry.TAG_STUDY_ROLE: "trial", registry.TAG_STUDY: parent,
                registry.TAG_TRIAL: str(number), registry.TAG_PARENT_RUN_ID: parent}
        if trial["state"] == "KILLED":
            run_id = client.create_run(experiment_id, run_name=f"trial-{number}", tags=tags).info.run_id
            tracking.set_run_params(run_id, trial["params"])
            client.set_terminated(run_id, "KILLED")
        else:
            with tracking.training_run(experiment_id, f"trial-{number}", tags) as run_id:
                tracking.set_run_params(run_id, trial["params"])
                steps = tracking.StepLogger(run_id)
                for step, value in enumerate(trial["curve"], start=1):
                    steps.log(step, {"val_accuracy": value})
                steps.flush()
                tracking.record_evaluation(run_id, {registry.METRIC_TRIAL_SECONDS: trial["seconds"]},
                                           {registry.TAG_TRIAL_STATE: trial["state"]})
        trials.append({**trial, "number": number, "run_id": run_id})
    tracking.record_evaluation(parent, {
        "best_val_accuracy": item["best_val_accuracy"], registry.METRIC_TEST_ACCURACY: item["test_accuracy"],
        registry.METRIC_TRIALS_PER_MINUTE: item["trials_per_minute"],
    }, {registry.TAG_BEST_TRIAL: str(item["best_trial"]), registry.TAG_CHAMPION_DECISION: item["decision"],
        registry.TAG_CHAMPION_REASON: item["reason"], "mlops.trials_overlapped": "true"})
    client.set_terminated(parent, "FINISHED")
    return {**item, "status": "STUDY", "parent_run_id": parent, "trials": trials, "registered_version": None}


def main(uri: str, spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    wait_for(uri)
    tracking.configure(uri)
    done = []
    for offset, item in enumerate(spec):
        if item.get("kind") == "study":
            done.append(seed_study(item, offset))
            continue
        key = item["pipeline"]
        ident = registry.BY_KEY[key]
        experiment_id = tracking.ensure_experiment(ident.experiment)
        history = curves(item["steps"], item["accuracy"], offset)
        steps_param = ident.steps_param
        tags = {
            registry.TAG_PIPELINE: key, registry.TAG_DATASET: item.get("dataset", "mnist"),
            registry.TAG_GATE: f"{item['gate']}", registry.TAG_DAG_ID: ident.dag_id,
            registry.TAG_DAG_RUN_ID: f"manual__seed{offset}", registry.TAG_TRY_NUMBER: "1",
        }
        status = item.get("status", "FINISHED")
        result = TrainResult(
            model=None, history=history, train_seconds=item["train_seconds"],
            params={steps_param: item["steps"], "seed": 42, "learning_rate": 0.1},
            library=ident.library, library_version="0.0-test", flavor="pyfunc",
        )
        try:
            with tracking.training_run(experiment_id, f"{key}-try1", tags) as run_id:
                tracking.log_training(run_id, result, params={"dataset": item.get("dataset", "mnist"),
                                                              "gate": item["gate"]})
                model_id, model_bytes = log_stand_in_model(experiment_id, run_id, item.get("model_bytes", 4096))
                model_uri = f"models:/{model_id}"
                tracking.set_run_tags(run_id, {registry.TAG_MODEL_URI: model_uri})
                if status == "FAILED":
                    raise RuntimeError("seeded failure")
        except RuntimeError:
            pass
        record = {**item, "run_id": run_id, "experiment_id": experiment_id, "model_uri": model_uri,
                  "model_id": model_id, "model_bytes": model_bytes, "curves": history, "status": status, "registered_version": None}
        if status == "FINISHED" and item.get("evaluate", True):
            passed = gates.passes(item["accuracy"], item["gate"])
            tracking.record_evaluation(
                run_id,
                {registry.METRIC_TEST_ACCURACY: item["accuracy"], registry.METRIC_EVALUATE_SECONDS: 0.5},
                {registry.TAG_GATE: f"{item['gate']}", registry.TAG_GATE_PASSED: str(passed).lower()},
                model_id=model_id,
            )
            record["gate_passed"] = passed
            if passed and item.get("register", True):
                outcome = tracking.register_and_promote(model_uri, ident.registered_model, run_id,
                                                        item["accuracy"], version_tags={"pipeline": key})
                record["registered_version"] = outcome["version"]
                record["champion"] = outcome["champion"]
        done.append(record)
        time.sleep(0.01)  # distinct start times: "latest" must be unambiguous
    Path(out_path).write_text(json.dumps(done, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:4])
