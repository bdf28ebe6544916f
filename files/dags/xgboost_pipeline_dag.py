"""
### XGBoost on MNIST (or your own table)

`validate → train → evaluate → register`

* **validate** checks the staged MNIST file (`$MLOPS_DATA_DIR/mnist.npz`) — or, when the
  `data_path` param is set, a Parquet/CSV table with a `label_column`.
* **train** fits gradient-boosted trees (`tree_method=hist`, `xgboost-cpu`) and logs params,
  per-round learning curves, training time, library versions and the model to MLflow.
* **evaluate** loads the logged model back from MLflow, scores the held-out test set and
  applies the accuracy gate (seed plan: > 0.85). A model under the gate stops the run here.
* **register** registers a model version and moves the `champion` alias only when the new
  version beats the current champion.

Settings (gate, retries, timeout, hyper-parameters) come from `mlops_training/settings.json`,
rendered by the `training_dags` Ansible role.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

# Airflow puts the DAGs folder on sys.path; a bare DagBag or `python <file>` may not.
_DAGS_DIR = str(Path(__file__).parent.absolute())
if _DAGS_DIR not in sys.path:
    sys.path.insert(0, _DAGS_DIR)

from mlops_training.gates import GateError
from mlops_training.settings import get_settings

PIPELINE = "xgboost"
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
    params={
        "data_path": Param(None, type=["null", "string"],
                           description="Parquet/CSV table to train on instead of MNIST"),
        "label_column": Param("label", type="string", description="label column of data_path"),
    },
)
def xgboost_pipeline() -> None:
    @task
    def validate() -> dict[str, Any]:
        from mlops_training import pipeline

        params = get_current_context()["params"]
        return pipeline.validate(PIPELINE, params.get("data_path"), params.get("label_column"))

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


xgboost_pipeline()
