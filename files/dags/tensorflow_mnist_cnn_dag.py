"""
### TensorFlow/Keras CNN on MNIST

A Keras CNN: two conv + max-pool blocks, a dense layer, dropout; Adam with cosine decay.
"""

from __future__ import annotations

import sys
from pathlib import Path

from airflow.sdk import DAG

# Airflow puts the DAGs folder on sys.path; a bare DagBag or `python <file>` may not.
if (_DAGS_DIR := str(Path(__file__).parent.absolute())) not in sys.path:
    sys.path.insert(0, _DAGS_DIR)

from mlops_training.dag_factory import build_training_dag

dag: DAG = build_training_dag("tensorflow_cnn", __doc__)
