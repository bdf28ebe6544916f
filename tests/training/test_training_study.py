"""A tuning study against a real local MLflow, with Optuna and the real recipes:
start_study → ask → trials → select_best → the training DAGs' evaluate and register → finish_study.

Data: the synthetic digits of test_training_pipeline (learnable in a second), and the same
images with shuffled labels (nothing to learn: trials are pruned, or the gate rejects the best).
A killed trial is a child run left RUNNING by a process that is gone, as a SIGKILL leaves it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("mlflow")
pytest.importorskip("optuna")

from mlflow.tracking import MlflowClient
from mlops_training import gates, pipeline, recipes, registry, settings, study, tuning

TINY: dict[str, dict[str, Any]] = {
    "lightgbm": {"num_boost_round": 6, "max_bin": 15, "num_leaves": 7, "validation_size": 200},
    "pytorch_mlp": {"epochs": 3, "batch_size": 32, "hidden_units": 32, "learning_rate": 0.01, "validation_size": 200},
}
SPACES: dict[str, dict[str, Any]] = {
    "lightgbm": {"learning_rate": {"low": 0.1, "high": 0.5, "log": True}, "num_leaves": {"choices": [5, 7, 9]}},
    "pytorch_mlp": {"learning_rate": {"low": 0.005, "high": 0.02, "log": True},
                    "hidden_units": {"low": 16, "high": 48, "step": 16}},
}
CONTEXT = {"dag_id": "x_tuning", "dag_run_id": "manual__2026-12-01T12:00:00", "try_number": 1}


def _require(key: str) -> None:
    module = recipes.LIBRARY_MODULES[key]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{key}: {module} is not installed in this environment")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_uri: str):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"pipelines": {k: {"hyperparameters": v} for k, v in TINY.items()}}))
    monkeypatch.setenv(settings.SETTINGS_FILE_ENV, str(path))
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(study.CONCURRENCY_ENV, "2")
    monkeypatch.setattr(pipeline, "MNIST_ROWS", (None, None))
    (tmp_path / "data").mkdir()
    return tmp_path / "data" / "mnist.npz"


def _start(key: str, **params: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    spec = tuning.validate_params(key, {"search_space": SPACES[key], **params})
    started = study.start_study(key, spec.to_dict(), pipeline.validate(key), CONTEXT)
    return started, study.ask(started)


def _killed_trial(started: dict[str, Any], number: int, searched: dict[str, Any]) -> str:
    """A trial run whose process died without ending it (SIGKILL, OOM): RUNNING, params only."""
    client = MlflowClient()
    run = client.create_run(started["experiment_id"], run_name=f"trial-{number}", tags={
        registry.TAG_STUDY: started["parent_run_id"], registry.TAG_TRIAL: str(number),
        registry.TAG_PARENT_RUN_ID: started["parent_run_id"], registry.TAG_PIPELINE: started["pipeline"],
    })
    for name, value in searched.items():
        client.log_param(run.info.run_id, name, value)
    return run.info.run_id


def test_asking_is_seeded_and_stays_in_the_space() -> None:
    spec = tuning.validate_params("pytorch_mlp", {"search_space": {
        "learning_rate": {"low": 0.0005, "high": 0.005, "log": True},
        "hidden_units": {"low": 64, "high": 256, "step": 64}, "batch_size": {"choices": [32, 64]},
        "dropout": {"low": 0.1, "high": 0.4}}, "n_trials": 8, "seed": 3})
    first, again = study.sample(spec), study.sample(spec)
    assert first == again  # the same params ask the same trials
    assert len(first) == 8 and len({json.dumps(t, sort_keys=True) for t in first}) == 8
    assert all(t["hidden_units"] in (64, 128, 192, 256) and t["batch_size"] in (32, 64) for t in first)
    assert all(0.0005 <= t["learning_rate"] <= 0.005 and 0.1 <= t["dropout"] <= 0.4 for t in first)
    assert tuning.build_trials(spec, first)  # nothing Optuna answers is refused by the controller
    other = tuning.validate_params("pytorch_mlp", {"search_space": spec_space(spec), "n_trials": 8, "seed": 4})
    assert study.sample(other) != first


def spec_space(spec: tuning.StudySpec) -> dict[str, Any]:
    out = {}
    for d in spec.dimensions:
        if d.choices is not None:
            out[d.name] = {"choices": list(d.choices)}
        else:
            out[d.name] = {"low": d.low, "high": d.high, **({"log": True} if d.log else {}),
                           **({"step": d.step} if d.step else {})}
    return out


@pytest.mark.parametrize("key", sorted(TINY))
def test_a_study_runs_trials_as_child_runs_and_promotes_the_best_through_the_gate(
        key: str, env: Path, synthetic_mnist) -> None:
    _require(key)
    np.savez(env, **synthetic_mnist())
    client = MlflowClient()
    started, trials = _start(key, n_trials=3, seed=1)
    parent = started["parent_run_id"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    experiment = client.get_experiment(started["experiment_id"])
    assert experiment.name == registry.BY_KEY[key].tuning_experiment == f"{registry.BY_KEY[key].experiment}_tuning"

    earlier_try = _killed_trial(started, 0, trials[0]["searched"])  # trial 0's first try was SIGKILLed
    results = [study.run_trial(key, started, trial, CONTEXT) for trial in trials[:2]]
    _killed_trial(started, 2, trials[2]["searched"])  # trial 2 dies and is not retried
    assert results[0]["swept_runs"] == [earlier_try]
    assert client.get_run(earlier_try).info.status == "KILLED"

    steps = TINY[key][registry.BY_KEY[key].steps_param]
    for result, trial in zip(results, trials, strict=False):
        run = client.get_run(result["run_id"])
        assert result["state"] == tuning.COMPLETE and run.info.status == "FINISHED"
        assert run.data.tags[registry.TAG_PARENT_RUN_ID] == parent and run.data.tags[registry.TAG_TRIAL_STATE] == "COMPLETE"
        for name, value in trial["searched"].items():
            assert run.data.params[name] == str(value)
        assert run.data.params["threads"] == str(tuning.trial_threads(recipes.available_cpus(), 2))
        curve = client.get_metric_history(result["run_id"], "val_accuracy")
        assert sorted(m.step for m in curve) == list(range(1, steps + 1))
        assert run.data.metrics["trial_seconds"] >= run.data.metrics["train_seconds"] > 0
        assert result["model_uri"] and run.data.tags[registry.TAG_MODEL_URI] == result["model_uri"]

    best = study.select_best(key, started, [results[0], None, results[1]])
    assert best["run_id"] == max(results, key=lambda r: (r["value"], -r["train_seconds"]))["run_id"]
    plan = json.loads(Path(client.download_artifacts(parent, "study/plan.json")).read_text())
    assert plan["trials"] == trials
    table = json.loads(Path(client.download_artifacts(parent, "study/trials.json")).read_text())
    assert [(r["number"], r["status"]) for r in table["trials"]] == [(0, "FINISHED"), (1, "FINISHED"), (2, "KILLED")]
    assert table["summary"] == {"planned": 3, "complete": 2, "pruned": 0, "failed": 1,
                                "best_number": best["trial"], "best_value": best["val_accuracy"]}
    svg = Path(client.download_artifacts(parent, "study/summary.svg")).read_text()
    assert svg.startswith("<svg") and all(name in svg for name in SPACES[key])
    parent_run = client.get_run(parent)
    assert parent_run.info.status == "RUNNING"  # until the teardown
    assert parent_run.data.metrics["trials_complete"] == 2 and parent_run.data.metrics["trials_failed"] == 1
    assert parent_run.data.metrics[registry.METRIC_TRIALS_PER_MINUTE] > 0
    assert parent_run.data.tags[registry.TAG_BEST_RUN_ID] == best["run_id"]

    evaluated = pipeline.evaluate(key, best)  # the training DAGs' own evaluate and register
    registered = pipeline.register(key, evaluated)
    assert (registered["version"], registered["champion"], registered["reason"]) == (1, True, "first gated version")
    finished = study.finish_study(key, started, best, evaluated, registered)
    assert finished["status"] == "FINISHED" and finished["killed_trial_runs"] == []
    parent_run = client.get_run(parent)
    assert parent_run.info.status == "FINISHED"
    assert parent_run.data.tags[registry.TAG_CHAMPION_DECISION] == "promoted"
    assert parent_run.data.tags[registry.TAG_CHAMPION_REASON] == "first gated version"
    assert parent_run.data.tags[registry.TAG_REGISTERED_VERSION] == "1"
    champion = client.get_model_version_by_alias(registry.BY_KEY[key].registered_model, "champion")
    assert champion.run_id == best["run_id"]


def test_bad_trials_are_pruned_and_a_study_with_none_left_chooses_nothing(env: Path, synthetic_mnist) -> None:
    _require("pytorch_mlp")
    np.savez(env, **synthetic_mnist(random_labels=True))  # nothing to learn: ~10 % accuracy
    client = MlflowClient()
    started, trials = _start("pytorch_mlp", n_trials=2, prune_warmup_steps=1)
    results = [study.run_trial("pytorch_mlp", started, trial, CONTEXT) for trial in trials]
    for result in results:
        run = client.get_run(result["run_id"])
        assert (result["state"], result["pruned_at"], result["model_uri"]) == (tuning.PRUNED, 1, None)
        assert run.info.status == "FINISHED" and run.data.tags[registry.TAG_PRUNED_AT] == "1"
        assert registry.TAG_MODEL_URI not in run.data.tags
        assert len(client.get_metric_history(result["run_id"], "val_accuracy")) == 1  # stopped after its first epoch
    with pytest.raises(tuning.TuningError, match="no trial completed: 2 planned, 2 pruned, 0 failed"):
        study.select_best("pytorch_mlp", started, results)
    finished = study.finish_study("pytorch_mlp", started, None, None, None)
    assert (finished["status"], finished["decision"]) == ("FAILED", "none")
    assert client.get_run(started["parent_run_id"]).info.status == "FAILED"


def test_a_best_trial_under_the_gate_is_rejected_and_nothing_is_registered(env: Path, synthetic_mnist) -> None:
    _require("lightgbm")
    np.savez(env, **synthetic_mnist(random_labels=True))
    client = MlflowClient()
    started, trials = _start("lightgbm", n_trials=2, prune=False)
    results = [study.run_trial("lightgbm", started, trial, CONTEXT) for trial in trials]
    best = study.select_best("lightgbm", started, results)
    with pytest.raises(gates.GateError, match="does not clear the gate"):
        pipeline.evaluate("lightgbm", best)
    finished = study.finish_study("lightgbm", started, best, None, None)
    assert finished["decision"] == "rejected" and finished["reason"].startswith("rejected: test accuracy 0.")
    parent = client.get_run(started["parent_run_id"])
    assert parent.info.status == "FAILED" and parent.data.tags[registry.TAG_GATE_PASSED] == "false"
    assert client.search_registered_models() == []
