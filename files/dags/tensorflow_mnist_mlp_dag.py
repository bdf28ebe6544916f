"""
### TensorFlow/Keras MLP on MNIST

A Keras MLP: 784 → 256 → 128 → 10, ReLU, dropout, Adam with cosine decay.
"""

from __future__ import annotations

import sys
from pathlib import Path

from airflow.sdk import DAG

# Airflow puts the DAGs folder on sys.path; a bare DagBag or `python <file>` may not.
if (_DAGS_DIR := str(Path(__file__).parent.absolute())) not in sys.path:
    sys.path.insert(0, _DAGS_DIR)

from mlops_training.dag_factory import build_training_dag

dag: DAG = build_training_dag("tensorflow_mlp", __doc__)
