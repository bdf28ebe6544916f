"""The six training DAGs, built by one function from the registry and the settings.

A DAG file (``<dag_id>_dag.py``, kept per pipeline: quarantine is per file) holds its
docstring and one call, ``build_training_dag(key, __doc__)``. The shape every DAG shares
lives here once: manual runs only, one run at a time, run controls from settings.json,
``validate → train → evaluate → register``, and a failed gate that is not retried. The
registry decides the rest: the tree models (family ``gbm``) take a user's table through
the ``data_path``/``label_column`` params.

At parse time this imports Airflow and the standard-library modules settings, registry
and gates only; the tasks import ``mlops_training.pipeline`` (NumPy, MLflow, the ML
library) when they run, on the worker.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from mlops_training.gates import GateError
from mlops_training.registry import BY_KEY, Pipeline
from mlops_training.settings import PipelineSettings, get_settings

# Appended to the DAG file's docstring: what every pipeline does, with its own names and gate.
_DOC_TASKS = """
`validate → train → evaluate → register`

* **validate** checks the staged MNIST file (`$MLOPS_DATA_DIR/mnist.npz`, default
  `/opt/airflow/data/mnist.npz`): shapes, dtype, labels 0..9, class counts.{table}
* **train** fits the model and logs params, per-{step} learning curves (train/validation loss
  and accuracy), training time, library versions and the model to MLflow (experiment `{experiment}`).
* **evaluate** loads the logged model back from MLflow, scores the held-out test set and
  applies the accuracy gate (> {gate}; seed plan: > {floor}). A model under the gate stops the run
  here, without a retry.
* **register** registers a version of `{model}` and moves the `champion` alias only when the
  new version beats the current champion.

Settings (gate, retries, timeout, hyper-parameters) come from `mlops_training/settings.json`,
rendered by the `training_dags` Ansible role; names and seed floors from
`mlops_training/pipelines.json`. The ML libraries are imported inside the tasks only: the
scheduler and dag-processor images do not have them.
"""
_DOC_TABLE = """
  With the `data_path` param set: a Parquet/CSV table with a `label_column` instead."""


def doc_md(head: str | None, spec: Pipeline, settings: PipelineSettings) -> str:
    """The DAG file's docstring followed by the tasks' description for this pipeline."""
    return (head or f"### {spec.label}\n").rstrip() + "\n" + _DOC_TASKS.format(
        table=_DOC_TABLE if spec.tabular else "", step=spec.step_unit.replace(" ", "-"),
        experiment=spec.experiment, gate=settings.gate, floor=spec.seed_gate, model=spec.registered_model,
    )


def _table_params() -> dict[str, Param]:
    return {
        "data_path": Param(None, type=["null", "string"],
                           description="Parquet/CSV table to train on instead of MNIST"),
        "label_column": Param("label", type="string", description="label column of data_path"),
    }


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
        default_args={
            "owner": "mlops",
            "retries": settings.retries,
            "retry_delay": timedelta(seconds=settings.retry_delay_seconds),
            "execution_timeout": timedelta(minutes=settings.execution_timeout_minutes),
        },
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

        @task
        def evaluate(trained: dict[str, Any]) -> dict[str, Any]:
            from mlops_training import pipeline

            try:
                return pipeline.evaluate(pipeline_key, trained)
            except GateError as exc:  # deterministic: retrying cannot help
                raise AirflowFailException(str(exc)) from exc

        @task
        def register(evaluated: dict[str, Any]) -> dict[str, Any]:
            from mlops_training import pipeline

            return pipeline.register(pipeline_key, evaluated)

        register(evaluate(train(validate())))

    return training_dag()
