"""
### Tuning the Keras MLP on MNIST

Width, dropout, learning rate and epochs of the dense network; an epoch takes seconds,
so a wide study fits in minutes.
Training DAG: `tensorflow_mnist_mlp`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from airflow.sdk import DAG

# Airflow puts the DAGs folder on sys.path; a bare DagBag or `python <file>` may not.
if (_DAGS_DIR := str(Path(__file__).parent.absolute())) not in sys.path:
    sys.path.insert(0, _DAGS_DIR)

from mlops_training.dag_factory import build_tuning_dag

dag: DAG = build_tuning_dag("tensorflow_mlp", __doc__)
