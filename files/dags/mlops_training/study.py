"""Task bodies of the tuning DAGs: start_study → ask → trial (mapped) → select_best → finish_study.

Between select_best and finish_study the DAG runs the training DAGs' own
``pipeline.evaluate`` and ``pipeline.register`` on the best trial's run. Design and reasons:
``docs/tuning.md``. Optuna (worker image) asks the trials and prunes them; there is no shared
Optuna storage: the trial list and each trial's result travel through XCom as small dicts,
and MLflow holds the record (a parent run per study, a child run per trial).

Like ``pipeline``, nothing here imports Airflow: the DAG factory passes the run context in,
and the whole chain runs in tests against a local MLflow.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from mlops_training import gates, registry, tracking, tuning
from mlops_training.pipeline import load_splits
from mlops_training.recipes import available_cpus, get_recipe
from mlops_training.settings import get_settings
from mlops_training.study_plot import summary_svg
from mlops_training.tuning import StudySpec

# A study's parent run still RUNNING after this long belongs to a DAG run that is long over
# (every task has its own execution_timeout; a study of MAX_TRIALS on one slot stays well under).
STALE_STUDY_SECONDS = 24 * 3600
# The worker's Celery slots (the airflow role sets it in every worker's environment).
CONCURRENCY_ENV = "AIRFLOW__CELERY__WORKER_CONCURRENCY"


def _experiment(key: str) -> str:
    return tracking.ensure_experiment(registry.BY_KEY[key].tuning_experiment)


def sample(spec: StudySpec) -> list[dict[str, Any]]:
    """Ask Optuna for the study's trials: the searched values of each, seeded.

    One in-memory study, all trials asked at once (one wave; see docs/tuning.md for why an
    adaptive sampler would learn nothing here): ``RandomSampler(seed)``, so the same params
    ask the same trials.
    """
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions: dict[str, Any] = {}
    for d in spec.dimensions:
        if d.kind == "categorical":
            distributions[d.name] = CategoricalDistribution(list(d.choices))
        elif d.kind == "int":
            distributions[d.name] = IntDistribution(int(d.low), int(d.high), log=d.log, step=int(d.step or 1))
        else:
            distributions[d.name] = FloatDistribution(float(d.low), float(d.high), log=d.log, step=d.step)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=spec.seed))
    return [dict(study.ask(fixed_distributions=distributions).params) for _ in range(spec.n_trials)]


# --------------------------------------------------------------------------- start


def start_study(key: str, spec_dict: Mapping[str, Any], data_ref: Mapping[str, Any],
                run_context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Create the study's parent run; return the study (what every later task is given)."""
    spec = StudySpec.from_dict(spec_dict)
    ctx = run_context or {}
    tracking.configure()
    experiment_id = _experiment(key)
    dag_run_id = str(ctx.get("dag_run_id") or "")
    # An earlier try of this task (same DAG run) or a study abandoned long ago: over, not running.
    swept = tracking.sweep_stale_runs(experiment_id, key, dag_run_id or None, older_than_seconds=STALE_STUDY_SECONDS)
    tags = {
        registry.TAG_PIPELINE: key, registry.TAG_STUDY_ROLE: "study", registry.TAG_DATASET: data_ref["dataset"],
        registry.TAG_DATA_SHA256: data_ref["sha256"], registry.TAG_GATE: f"{spec.gate}",
        "mlflow.note.content": f"Tuning study of {key}: {spec.n_trials} trials over {', '.join(spec.searched)}",
    }
    if dag_run_id:
        tags[registry.TAG_DAG_RUN_ID] = dag_run_id
    if ctx.get("dag_id"):
        tags[registry.TAG_DAG_ID] = str(ctx["dag_id"])
    params = {
        "n_trials": spec.n_trials, "seed": spec.seed, "prune": spec.prune, "prune_below": spec.prune_below,
        "prune_warmup_steps": spec.prune_warmup_steps if spec.prune_warmup_steps is not None else "half",
        "sampler": "optuna.RandomSampler", "gate": spec.gate,
        **{f"space.{d.name}": json.dumps({k: v for k, v in vars(d).items() if v not in (None, False) and k != "name"})
           for d in spec.dimensions},
    }
    parent = tracking.create_run(experiment_id, f"study-{dag_run_id or key}", tags, params)
    return {
        "pipeline": key, "parent_run_id": parent, "experiment_id": experiment_id, "spec": spec.to_dict(),
        "data": dict(data_ref), "dag_run_id": dag_run_id, "swept_runs": swept,
    }


def ask(study: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The trial list the trial tasks are mapped over (also logged as the parent's ``study/plan.json``)."""
    spec = StudySpec.from_dict(study["spec"])
    trials = tuning.build_trials(spec, sample(spec))
    tracking.configure()
    tracking.log_text(study["parent_run_id"], json.dumps({"spec": spec.to_dict(), "trials": trials}, indent=2),
                      "study/plan.json")
    return trials


# --------------------------------------------------------------------------- trial


def _threads(requested: int) -> int:
    if requested > 0:
        return requested
    raw = os.environ.get(CONCURRENCY_ENV, "")
    return tuning.trial_threads(available_cpus(), int(raw) if raw.isdigit() else None)


def run_trial(key: str, study: Mapping[str, Any], trial: Mapping[str, Any],
              run_context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train one trial as a child run of the study: params, curves as they come, time, the model.

    The pruner (Optuna's ThresholdPruner on a single-trial in-memory study) stops a trial whose
    validation accuracy is still under ``prune_below`` after the warm-up steps; the trial then
    ends PRUNED, without a model. An exception ends the run FAILED, SIGTERM KILLED
    (``tracking.training_run``); a retry after a SIGKILL first ends its earlier try's run KILLED.
    """
    import optuna

    cfg = get_settings(key)
    spec = StudySpec.from_dict(study["spec"])
    ctx = run_context or {}
    number = int(trial["number"])
    params = dict(trial["params"])
    tracking.configure()
    experiment_id = study["experiment_id"]
    mine = {registry.TAG_STUDY: study["parent_run_id"], registry.TAG_TRIAL: str(number)}
    swept = tracking.end_running_runs(experiment_id, mine, "KILLED",
                                      "swept: left RUNNING by an earlier try of this trial")
    data, x_test, _ = load_splits(cfg, study["data"])
    recipe = get_recipe(key)
    threads = _threads(cfg.num_threads)
    steps = int(params[spec.steps_param])
    warmup = tuning.warmup_steps(spec, steps)
    pruner = (optuna.pruners.ThresholdPruner(lower=spec.prune_below, n_warmup_steps=warmup)
              if spec.prune else optuna.pruners.NopPruner())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    judge = optuna.create_study(direction="maximize", pruner=pruner).ask()
    tags = {
        registry.TAG_PIPELINE: key, registry.TAG_STUDY_ROLE: "trial", **mine,
        registry.TAG_PARENT_RUN_ID: study["parent_run_id"], registry.TAG_DATASET: study["data"]["dataset"],
        registry.TAG_DATA_SHA256: study["data"]["sha256"], registry.TAG_GATE: f"{spec.gate}",
        "mlflow.note.content": f"trial {number} of {study['dag_run_id'] or 'a study'}: "
                               + ", ".join(f"{k}={v}" for k, v in trial["searched"].items()),
    }
    for field, tag in (("dag_id", registry.TAG_DAG_ID), ("dag_run_id", registry.TAG_DAG_RUN_ID),
                       ("try_number", registry.TAG_TRY_NUMBER)):
        if ctx.get(field) is not None:
            tags[tag] = str(ctx[field])
    started = time.perf_counter()
    pruned_at: list[int] = []
    with tracking.training_run(experiment_id, f"trial-{number}", tags) as run_id:
        # The params first: a trial killed mid-way still shows what it was trying.
        tracking.set_run_params(run_id, {**params, "trial_number": number, "threads": threads,
                                         "prune_warmup_steps": warmup if spec.prune else "off"})
        steps_log = tracking.StepLogger(run_id)

        def on_step(step: int, metrics: Mapping[str, float]) -> bool:
            steps_log.log(step, metrics)
            judge.report(float(metrics["val_accuracy"]), step)
            if step < steps and judge.should_prune():  # the last step is trained already: keep it
                pruned_at.append(step)
                return True
            return False

        try:
            result = recipe.train(data, params, cfg.seed, threads, on_step=on_step)
        finally:
            steps_log.flush()
        state = tuning.PRUNED if pruned_at else tuning.COMPLETE
        tracking.log_training(run_id, result, curves=False, params={
            "dataset": study["data"]["dataset"], "train_rows": len(data.y_train), "val_rows": len(data.y_val),
            "n_classes": data.n_classes,
        })
        model_uri = None
        if state == tuning.COMPLETE:
            model_uri = tracking.log_model(result, recipe.prepare(x_test[:2]), data.n_classes)
        seconds = time.perf_counter() - started
        tracking.record_evaluation(run_id, {registry.METRIC_TRIAL_SECONDS: seconds}, {
            registry.TAG_TRIAL_STATE: state,
            **({registry.TAG_MODEL_URI: model_uri} if model_uri else {}),
            **({registry.TAG_PRUNED_AT: str(pruned_at[0])} if pruned_at else {}),
        })
    return {
        "number": number, "state": state, "run_id": run_id, "model_uri": model_uri,
        "value": round(float(result.history["val_accuracy"][-1]), 6),
        "steps": len(result.history["val_accuracy"]), "pruned_at": pruned_at[0] if pruned_at else None,
        "train_seconds": round(result.train_seconds, 3), "trial_seconds": round(seconds, 3),
        "searched": dict(trial["searched"]), "swept_runs": swept,
    }


# --------------------------------------------------------------------------- select


def _sweep_trials(study: Mapping[str, Any], reason: str) -> list[str]:
    return tracking.end_running_runs(study["experiment_id"], {registry.TAG_STUDY: study["parent_run_id"]},
                                     "KILLED", reason)


def trial_rows(study: Mapping[str, Any], results: Sequence[Mapping[str, Any] | None]) -> list[dict[str, Any]]:
    """One row per trial run in MLflow (killed and failed ones too), with the task's result where
    there is one: the study's table and the summary plot's data."""
    from mlflow.tracking import MlflowClient

    told = {int(r["number"]): r for r in results if r}
    runs = MlflowClient().search_runs(
        [study["experiment_id"]],
        filter_string=f"tags.`{registry.TAG_STUDY}` = '{study['parent_run_id']}'", max_results=1000,
    )
    rows: dict[int, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):  # a retried trial: its last run wins
        number = int(run.data.tags.get(registry.TAG_TRIAL, -1))
        result = told.get(number, {})
        state = result.get("state") or run.data.tags.get(registry.TAG_TRIAL_STATE) or run.info.status
        value = result.get("value", run.data.metrics.get("val_accuracy"))
        rows[number] = {
            "number": number, "state": state if run.info.status == "FINISHED" else run.info.status,
            "value": value, "run_id": run.info.run_id, "status": run.info.status,
            "start_time": run.info.start_time, "end_time": run.info.end_time,
            "seconds": result.get("trial_seconds", run.data.metrics.get(registry.METRIC_TRIAL_SECONDS)),
            "params": {name: _param(run.data.params.get(name)) for name in study["spec"]["searched"]},
        }
    return [rows[n] for n in sorted(rows)]


def _param(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def select_best(key: str, study: Mapping[str, Any], results: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Tell: read every trial's result, log the study's table and summary plot, return the best.

    What it returns is what the training DAGs' train task returns (``run_id``, ``model_uri``,
    ``data``), so ``pipeline.evaluate`` and ``pipeline.register`` take it unchanged.
    Raises :class:`~mlops_training.tuning.TuningError` when no trial completed.
    """
    spec = StudySpec.from_dict(study["spec"])
    tracking.configure()
    parent = study["parent_run_id"]
    # Every trial task is over (trigger rule all_done): a trial run still RUNNING lost its process.
    _sweep_trials(study, "swept by select_best: the trial's task ended without ending its run (killed or lost)")
    rows = trial_rows(study, results)
    try:
        best, summary = tuning.pick_best(list(results), spec.n_trials)
    except tuning.TuningError as exc:
        _log_study(parent, spec, rows, None, {"error": str(exc)})
        raise
    _log_study(parent, spec, rows, best, summary)
    return {
        "pipeline": key, "run_id": best["run_id"], "model_uri": best["model_uri"], "data": study["data"],
        "trial": best["number"], "val_accuracy": best["value"], "searched": best["searched"], "summary": summary,
    }


def _log_study(parent: str, spec: StudySpec, rows: list[dict[str, Any]], best: Mapping[str, Any] | None,
               summary: Mapping[str, Any]) -> None:
    ended = [(r["start_time"], r["end_time"]) for r in rows if r["start_time"] and r["end_time"]]
    per_minute = tuning.trials_per_minute([s for s, _ in ended], [e for _, e in ended])
    metrics = {"trials_planned": spec.n_trials, "trials_run": len(rows),
               "trials_complete": sum(r["state"] == tuning.COMPLETE for r in rows),
               "trials_pruned": sum(r["state"] == tuning.PRUNED for r in rows),
               "trials_failed": sum(r["status"] in ("FAILED", "KILLED") for r in rows)}
    if per_minute is not None:
        metrics[registry.METRIC_TRIALS_PER_MINUTE] = per_minute
    if best is not None:
        metrics["best_val_accuracy"] = float(best["value"])
    tags = {"mlops.trials_overlapped": str(tuning.overlapping(ended)).lower()}
    if best is not None:
        tags.update({registry.TAG_BEST_TRIAL: str(best["number"]), registry.TAG_BEST_RUN_ID: best["run_id"]})
    tracking.record_evaluation(parent, metrics, tags)
    best_number = best["number"] if best is not None else None
    tracking.log_text(parent, json.dumps({"summary": dict(summary), "trials": rows}, indent=2, default=str),
                      "study/trials.json")
    title = (f"{registry.BY_KEY[spec.pipeline].label} study: {len(rows)} trials"
             + (f", best trial {best_number} (val accuracy {best['value']:.4f})" if best is not None else ", none completed"))
    dims = [{k: v for k, v in vars(d).items()} for d in spec.dimensions]
    tracking.log_text(parent, summary_svg(title, dims, rows, best_number), "study/summary.svg")


# --------------------------------------------------------------------------- finish


def finish_study(key: str, study: Mapping[str, Any], best: Mapping[str, Any] | None,
                 evaluated: Mapping[str, Any] | None, registered: Mapping[str, Any] | None) -> dict[str, Any]:
    """End the study whatever happened: trial runs left RUNNING → KILLED, the champion decision and
    its reason on the parent run, the parent FINISHED (a version was registered) or FAILED."""
    from mlflow.tracking import MlflowClient

    tracking.configure()
    parent = study["parent_run_id"]
    killed = _sweep_trials(study, "swept by the study's teardown: the trial's task ended without ending its run")
    spec = StudySpec.from_dict(study["spec"])
    if registered:
        decision = "promoted" if registered["champion"] else "kept"
        reason = registered["reason"]
    elif best is None:
        decision, reason = "none", "no best trial: see select_best (no trial completed, or it failed)"
    else:
        run = MlflowClient().get_run(best["run_id"])
        accuracy = run.data.metrics.get(registry.METRIC_TEST_ACCURACY)
        if accuracy is None:
            decision, reason = "none", f"best trial {best['trial']} was not evaluated: see the evaluate task"
        elif not gates.passes(accuracy, spec.gate):
            decision = "rejected"
            reason = gates.champion_decision(accuracy, spec.gate, None, None)[1]
        else:
            decision, reason = "none", f"best trial {best['trial']} passed the gate but was not registered: see register"
    tags = {registry.TAG_CHAMPION_DECISION: decision, registry.TAG_CHAMPION_REASON: reason}
    if registered:
        tags[registry.TAG_REGISTERED_VERSION] = str(registered["version"])
        tags[registry.TAG_REGISTERED_MODEL] = registered["registered_model"]
    if evaluated or decision == "rejected":
        tags[registry.TAG_GATE_PASSED] = str(decision != "rejected").lower()
    tracking.record_evaluation(parent, {registry.METRIC_TEST_ACCURACY: evaluated["test_accuracy"]} if evaluated else {},
                               tags)
    status = "FINISHED" if registered else "FAILED"
    MlflowClient().set_terminated(parent, status)
    return {"pipeline": key, "parent_run_id": parent, "status": status, "decision": decision, "reason": reason,
            "killed_trial_runs": killed}
