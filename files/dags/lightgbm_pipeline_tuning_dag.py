"""
### Tuning the LightGBM on MNIST

Leaf-wise trees: `num_leaves` and `min_data_in_leaf` bound their size, `feature_fraction`
and the learning rate their variance.
Training DAG: `lightgbm_pipeline`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from airflow.sdk import DAG

# Airflow puts the DAGs folder on sys.path; a bare DagBag or `python <file>` may not.
if (_DAGS_DIR := str(Path(__file__).parent.absolute())) not in sys.path:
    sys.path.insert(0, _DAGS_DIR)

from mlops_training.dag_factory import build_tuning_dag

dag: DAG = build_tuning_dag("lightgbm", __doc__)
