"""
### Tuning the PyTorch CNN on MNIST

Epochs and learning rate matter most here (PyTorch's default init wanted one epoch more
than Keras' twin to pass 0.99).
Training DAG: `pytorch_mnist_cnn`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from airflow.sdk import DAG

# Airflow puts the DAGs folder on sys.path; a bare DagBag or `python <file>` may not.
if (_DAGS_DIR := str(Path(__file__).parent.absolute())) not in sys.path:
    sys.path.insert(0, _DAGS_DIR)

from mlops_training.dag_factory import build_tuning_dag

dag: DAG = build_tuning_dag("pytorch_cnn", __doc__)
