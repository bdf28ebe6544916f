"""
### Tuning the Keras CNN on MNIST

Filters, dense width, dropout and learning rate of the convolutional network; its gate
(0.98) leaves little room, so prune early trials that lag.
Training DAG: `tensorflow_mnist_cnn`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from airflow.sdk import DAG

# Airflow puts the DAGs folder on sys.path; a bare DagBag or `python <file>` may not.
if (_DAGS_DIR := str(Path(__file__).parent.absolute())) not in sys.path:
    sys.path.insert(0, _DAGS_DIR)

from mlops_training.dag_factory import build_tuning_dag

dag: DAG = build_tuning_dag("tensorflow_cnn", __doc__)
