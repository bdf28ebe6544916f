"""Training logic for the six MNIST DAGs: data, recipes, gates, tracking, settings, pipeline.

Kept out of DAG parsing by ``.airflowignore``; importable without Airflow.
Submodules are not imported here so that ``import mlops_training.settings``
(what DAG files do at parse time) stays cheap.
"""

import os

# OpenMP threads (XGBoost, LightGBM, PyTorch) spin while waiting by default. On a
# 2-CPU worker shared by two tasks, the spinning starves the other task: measured
# 4-5x slower training on this project's busy 2-core host. It must be set before
# the first import of those libraries, so it lives here; the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
