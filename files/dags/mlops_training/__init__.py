"""Training logic for the six MNIST DAGs: registry, settings, gates, dag_factory, data,
recipes, tracking, pipeline.

Kept out of DAG parsing by ``.airflowignore``; importable without Airflow (except
``dag_factory``). Submodules are not imported here so that what DAG files and the tools
import at parse time (``dag_factory``, ``settings``, ``registry``, ``gates``) stays cheap.
"""

import os

# OpenMP threads (XGBoost, LightGBM, PyTorch) spin while waiting by default. On a
# 2-CPU worker shared by two tasks, the spinning starves the other task: measured
# 4-5x slower training on this project's busy 2-core host. It must be set before
# the first import of those libraries, so it lives here; the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
