"""A DAG file with a syntax error: it must be quarantined, never reach the DAG folder."""

from airflow.sdk import dag

@dag(schedule=None
def broken():
    pass
