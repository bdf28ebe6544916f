"""Operator tools for the lakehouse-tick platform: model comparison report and stack status.

Run from the repository root with ``tools`` on the import path::

    PYTHONPATH=tools python -m mlops_tools.report --help
    PYTHONPATH=tools python -m mlops_tools.status --help

Only ``requests`` and ``matplotlib`` are needed (the controller venv); MLflow and
Airflow are read through their REST APIs, Docker through its CLI.
"""

__all__ = ["defaults", "pipelines"]
