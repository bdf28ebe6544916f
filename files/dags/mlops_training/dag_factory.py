"""The six training DAGs and their six tuning DAGs, built from the registry and the settings.

A DAG file (``<dag_id>_dag.py``, kept per pipeline: quarantine is per file) holds its
docstring and one call, ``build_training_dag(key, __doc__)``. The shape every DAG shares
lives here once: manual runs only, one run at a time, run controls from settings.json,
``validate → train → evaluate → register``, and a failed gate that is not retried. The
registry decides the rest: the tree models (family ``gbm``) take a user's table through
the ``data_path``/``label_column`` params.

A tuning DAG file (``<dag_id>_tuning_dag.py``) holds ``build_tuning_dag(key, __doc__)``:
a study of mapped trials over a search space given as params, the best trial evaluated and
registered by the same ``pipeline.evaluate`` and ``pipeline.register`` (``docs/tuning.md``).

At parse time this imports Airflow and the standard-library modules settings, registry,
gates and tuning only; the tasks import ``mlops_training.pipeline`` and ``.study`` (NumPy,
MLflow, Optuna, the ML library) when they run, on the worker.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import (
    DAG,
    Param,
    TriggerRule,
    dag,
    get_current_context,
    setup,
    task,
    teardown,
)
from airflow.sdk.exceptions import AirflowFailException

from mlops_training.gates import GateError
from mlops_training.registry import BY_KEY, Pipeline
from mlops_training.settings import PipelineSettings, get_settings
from mlops_training.tuning import (
    MAX_TRIALS,
    TuningError,
    default_params,
    validate_params,
)

# Appended to the DAG file's docstring: what every pipeline does, with its own names and gate.
_DOC_TASKS = """
`validate → train → evaluate → register`

* **validate** checks the staged MNIST file (`$MLOPS_DATA_DIR/mnist.npz`, default
  `/opt/airflow/data/mnist.npz`): shapes, dtype, labels 0..9, class counts.{table}
* **train** fits the model and logs params, per-{step} learning curves (train/validation loss
  and accuracy), training time, library versions and the model to MLflow (experiment `{experiment}`).
* **evaluate** loads the logged model back from MLflow, scores the held-out test set and
  applies the accuracy gate (> {gate}; execution plan: > {floor}). A model under the gate stops the run
  here, without a retry.
* **register** registers a version of `{model}` and moves the `champion` alias only when the
  new version beats the current champion.

Settings (gate, retries, timeout, Celery queue, hyper-parameters) come from `mlops_training/settings.json`,
rendered by the `training_dags` Ansible role; names and plan floors from
`mlops_training/pipelines.json`. The ML libraries are imported inside the tasks only: the
scheduler and dag-processor images do not have them.
"""
_DOC_TABLE = """
  With the `data_path` param set: a Parquet/CSV table with a `label_column` instead."""


def doc_md(head: str | None, spec: Pipeline, settings: PipelineSettings) -> str:
    """The DAG file's docstring followed by the tasks' description for this pipeline."""
    return (head or f"### {spec.label}\n").rstrip() + "\n" + _DOC_TASKS.format(
        table=_DOC_TABLE if spec.tabular else "", step=spec.step_unit.replace(" ", "-"),
        experiment=spec.experiment, gate=settings.gate, floor=spec.plan_gate, model=spec.registered_model,
    )


def _table_params() -> dict[str, Param]:
    return {
        "data_path": Param(None, type=["null", "string"],
                           description="Parquet/CSV table to train on instead of MNIST"),
        "label_column": Param("label", type="string", description="label column of data_path"),
    }


def _default_args(settings: PipelineSettings) -> dict[str, Any]:
    """Task defaults of both DAG kinds: the run controls of settings.json, and its queue."""
    args: dict[str, Any] = {
        "owner": "mlops",
        "retries": settings.retries,
        "retry_delay": timedelta(seconds=settings.retry_delay_seconds),
        "execution_timeout": timedelta(minutes=settings.execution_timeout_minutes),
    }
    if settings.queue is not None:  # absent: the task keeps Airflow's [operators] default_queue
        args["queue"] = settings.queue
    return args


def evaluate_task(pipeline_key: str) -> Any:
    """The `evaluate` task both DAG kinds end with: the logged model on the test set, the gate."""

    @task(task_id="evaluate")
    def evaluate(trained: dict[str, Any]) -> dict[str, Any]:
        from mlops_training import pipeline

        try:
            return pipeline.evaluate(pipeline_key, trained)
        except GateError as exc:  # deterministic: retrying cannot help
            raise AirflowFailException(str(exc)) from exc

    return evaluate


def register_task(pipeline_key: str) -> Any:
    """The `register` task after `evaluate`: a model version, `champion` only when it is better."""

    @task(task_id="register")
    def register(evaluated: dict[str, Any]) -> dict[str, Any]:
        from mlops_training import pipeline

        return pipeline.register(pipeline_key, evaluated)

    return register


def build_training_dag(pipeline_key: str, doc: str | None) -> DAG:
    """Build the DAG of one pipeline (a key of the registry) and return it.

    Called at module level of a DAG file, so Airflow registers the DAG under that file.
    A bad settings.json raises ``SettingsError`` here: an import error naming the file.
    """
    settings = get_settings(pipeline_key)  # first: names the known keys if this one is not
    spec = BY_KEY[pipeline_key]

    @dag(
        dag_id=spec.dag_id,
        schedule=None,
        catchup=False,
        max_active_runs=1,
        tags=list(spec.tags),
        doc_md=doc_md(doc, spec, settings),
        default_args=_default_args(settings),
        params=_table_params() if spec.tabular else None,
    )
    def training_dag() -> None:
        @task
        def validate() -> dict[str, Any]:
            from mlops_training import pipeline

            if not spec.tabular:
                return pipeline.validate(pipeline_key)
            params = get_current_context()["params"]
            return pipeline.validate(pipeline_key, params.get("data_path"), params.get("label_column"))

        @task
        def train(data_ref: dict[str, Any]) -> dict[str, Any]:
            from mlops_training import pipeline

            return pipeline.train(pipeline_key, data_ref, pipeline.airflow_run_context())

        register_task(pipeline_key)(evaluate_task(pipeline_key)(train(validate())))

    return training_dag()


# Appended to a tuning DAG file's docstring.
_DOC_TUNING = """
`validate → start_study → ask → trial × n_trials (mapped) → select_best → evaluate → register`,
and `finish_study` (teardown) whatever happened.

* **validate** checks the params — `search_space`, `n_trials` (1..{max_trials}), `seed`, `prune`,
  `prune_below`, `prune_warmup_steps` — and fails the run at once, naming the key, when one is
  wrong (nothing is created then); then the staged MNIST file.
* **start_study** opens the study's parent run in MLflow experiment `{experiment}`; **ask**
  asks Optuna (seeded random sampler) for the trials.
* **trial** trains one trial as a child run: its params, per-{step} validation curves as they
  come, its time and its model. A trial whose validation accuracy is still under `prune_below`
  (default: the gate, {gate}) after `prune_warmup_steps` (default: half its {step}s) is pruned.
  Trials run side by side on the Celery workers' free slots.
* **select_best** takes the highest final validation accuracy among the completed trials and
  logs the study's table and summary plot on the parent run.
* **evaluate** and **register** are the training DAG's (`{training_dag}`): the untouched test
  set, the gate (> {gate}), a version of `{model}`, and `champion` moved only when it beats
  the current champion.
* **finish_study** ends trial runs left RUNNING as KILLED, logs the champion decision and its
  reason on the parent run, and ends it.

An entry of `search_space` is a range (`low` and `high`, optionally `log: true` or a `step`),
a list of `choices`, or a number (fixed, not searched). Names and ranges:
`mlops_training/settings.py` (`HYPERPARAMETERS`). The default space is centred on the
training settings. MNIST only (no `data_path`). Design: `docs/tuning.md`.
"""


def tuning_doc_md(head: str | None, spec: Pipeline, settings: PipelineSettings) -> str:
    """The tuning DAG file's docstring followed by its tasks' description for this pipeline."""
    return (head or f"### Tuning {spec.label}\n").rstrip() + "\n" + _DOC_TUNING.format(
        max_trials=MAX_TRIALS, experiment=spec.tuning_experiment, step=spec.step_unit.replace(" ", "-"),
        gate=settings.gate, training_dag=spec.dag_id, model=spec.registered_model,
    )


def _tuning_params(pipeline_key: str) -> dict[str, Param]:
    # Types loose on purpose: validate names a wrong value inside the run (a budget of 0, a
    # low above its high), where the form or the API would refuse it with a schema message.
    defaults = default_params(pipeline_key)
    return {
        "search_space": Param(defaults["search_space"], type="object",
                              description="hyper-parameter → {low, high[, log|step]} | {choices} | a fixed number"),
        "n_trials": Param(defaults["n_trials"], type="integer", description=f"trial budget, 1..{MAX_TRIALS}"),
        "seed": Param(defaults["seed"], type="integer", description="seed of the sampler"),
        "prune": Param(defaults["prune"], type="boolean", description="stop bad trials early"),
        "prune_below": Param(None, type=["null", "number"],
                             description="validation accuracy a trial must reach by its warm-up (default: the gate)"),
        "prune_warmup_steps": Param(None, type=["null", "integer"],
                                    description="steps before pruning may stop a trial (default: half its steps)"),
    }


def build_tuning_dag(pipeline_key: str, doc: str | None) -> DAG:
    """Build the tuning DAG of one pipeline (a key of the registry) and return it."""
    settings = get_settings(pipeline_key)
    spec = BY_KEY[pipeline_key]

    @dag(
        dag_id=spec.tuning_dag_id,
        schedule=None,
        catchup=False,
        max_active_runs=1,  # one study per model at a time: studies never race for its champion
        tags=[*spec.tags, "tuning"],
        doc_md=tuning_doc_md(doc, spec, settings),
        default_args=_default_args(settings),
        params=_tuning_params(pipeline_key),
    )
    def tuning_dag() -> None:
        @task
        def validate(params: dict[str, Any] | None = None) -> dict[str, Any]:
            # Every key of the run's params (conf keys that are not params too): an unknown one is named.
            given = dict(params or {})
            try:
                study_spec = validate_params(pipeline_key, given)
            except TuningError as exc:  # the trigger's mistake: retrying cannot help
                raise AirflowFailException(f"{spec.tuning_dag_id}: {exc}") from exc
            from mlops_training import pipeline

            return {"spec": study_spec.to_dict(), "data": pipeline.validate(pipeline_key)}

        @setup
        @task
        def start_study(validated: dict[str, Any]) -> dict[str, Any]:
            from mlops_training import pipeline, study

            return study.start_study(pipeline_key, validated["spec"], validated["data"],
                                     pipeline.airflow_run_context())

        @task
        def ask(study: dict[str, Any]) -> list[dict[str, Any]]:
            from mlops_training import study as studies

            return studies.ask(study)

        @task(task_id="trial")
        def run_trial(study: dict[str, Any], trial: dict[str, Any]) -> dict[str, Any]:
            from mlops_training import pipeline
            from mlops_training import study as studies

            return studies.run_trial(pipeline_key, study, trial, pipeline.airflow_run_context())

        @task(trigger_rule=TriggerRule.ALL_DONE)  # failed or killed trials do not stop the study
        def select_best(results: Any, ti: Any = None) -> dict[str, Any]:
            # Pulled, not passed: a task right after a setup task must have trigger rule all_success.
            study = ti.xcom_pull(task_ids="start_study")
            if study is None:
                raise AirflowFailException("no study to choose from: validate or start_study failed (see their logs)")
            from mlops_training import study as studies

            try:
                return studies.select_best(pipeline_key, study, list(results or []))
            except TuningError as exc:  # no trial completed: a retry would read the same results
                raise AirflowFailException(str(exc)) from exc

        @teardown
        @task
        def finish_study(study: dict[str, Any] | None, best: dict[str, Any] | None,
                         evaluated: dict[str, Any] | None, registered: dict[str, Any] | None) -> dict[str, Any]:
            from mlops_training import study as studies

            return studies.finish_study(pipeline_key, study, best, evaluated, registered)

        study = start_study(validate())
        results = run_trial.partial(study=study).expand(trial=ask(study))
        best = select_best(results)
        evaluated = evaluate_task(pipeline_key)(best)
        registered = register_task(pipeline_key)(evaluated)
        finish_study(study, best, evaluated, registered)

    return tuning_dag()
