"""A tiny extra DAG: the "changed DAG release" of the rollback scenario."""

from __future__ import annotations

import datetime

from airflow.sdk import dag, task


@dag(
    dag_id="rollback_scenario_hello",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1),
    catchup=False,
    tags=["molecule"],
    doc_md=__doc__,
    default_args={"retries": 1},
)
def rollback_scenario_hello():
    @task
    def hello() -> str:
        return "hello"

    hello()


rollback_scenario_hello()
