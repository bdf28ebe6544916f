"""
### PyTorch MLP on MNIST

`validate → train → evaluate → register`

* **validate** checks the staged MNIST file (`$MLOPS_DATA_DIR/mnist.npz`, default
  `/opt/airflow/data/mnist.npz`): shapes, dtype, labels 0..9, class counts.
* **train** fits a PyTorch MLP (784 → 256 → 128 → 10, ReLU, dropout, Adam with cosine decay)
  and logs params, per-epoch learning curves (train/validation loss and accuracy), training
  time, library versions and the model to MLflow.
* **evaluate** loads the logged model back from MLflow, scores the 10,000 test digits and
  applies the accuracy gate (seed plan: > 0.95). A model under the gate stops the run here.
* **register** registers a model version and moves the `champion` alias only when the new
  version beats the current champion.

Settings (gate, retries, timeout, hyper-parameters) come from `mlops_training/settings.json`,
rendered by the `training_dags` Ansible role. TensorFlow and PyTorch are imported inside the
tasks only: the scheduler and dag-processor images do not have them.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowFailException

# Airflow puts the DAGs folder on sys.path; a bare DagBag or `python <file>` may not.
_DAGS_DIR = str(Path(__file__).parent.absolute())
if _DAGS_DIR not in sys.path:
    sys.path.insert(0, _DAGS_DIR)

from mlops_training.gates import GateError
from mlops_training.settings import get_settings

PIPELINE = "pytorch_mlp"
SETTINGS = get_settings(PIPELINE)


@dag(
    dag_id=SETTINGS.dag_id,
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=list(SETTINGS.tags),
    doc_md=__doc__,
    default_args={
        "owner": "mlops",
        "retries": SETTINGS.retries,
        "retry_delay": timedelta(seconds=SETTINGS.retry_delay_seconds),
        "execution_timeout": timedelta(minutes=SETTINGS.execution_timeout_minutes),
    },
)
def pytorch_mnist_mlp() -> None:
    @task
    def validate() -> dict[str, Any]:
        from mlops_training import pipeline

        return pipeline.validate(PIPELINE)

    @task
    def train(data_ref: dict[str, Any]) -> dict[str, Any]:
        from mlops_training import pipeline

        return pipeline.train(PIPELINE, data_ref, pipeline.airflow_run_context())

    @task
    def evaluate(trained: dict[str, Any]) -> dict[str, Any]:
        from mlops_training import pipeline

        try:
            return pipeline.evaluate(PIPELINE, trained)
        except GateError as exc:  # deterministic: retrying cannot help
            raise AirflowFailException(str(exc)) from exc

    @task
    def register(evaluated: dict[str, Any]) -> dict[str, Any]:
        from mlops_training import pipeline

        return pipeline.register(PIPELINE, evaluated)

    register(evaluate(train(validate())))


pytorch_mnist_mlp()
