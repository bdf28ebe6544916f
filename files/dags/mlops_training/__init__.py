"""Training logic for the six MNIST DAGs: data, recipes, gates, tracking, settings, pipeline.

Kept out of DAG parsing by ``.airflowignore``; importable without Airflow.
Submodules are not imported here so that ``import mlops_training.settings``
(what DAG files do at parse time) stays cheap.
"""
