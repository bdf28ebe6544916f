"""
### Tuning the XGBoost on MNIST

Boosting rounds, learning rate, depth and column sampling are the knobs worth a search here;
the histogram bins (`max_bin`) trade accuracy for fit time on 2 cores.
Training DAG: `xgboost_pipeline`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from airflow.sdk import DAG

# Airflow puts the DAGs folder on sys.path; a bare DagBag or `python <file>` may not.
if (_DAGS_DIR := str(Path(__file__).parent.absolute())) not in sys.path:
    sys.path.insert(0, _DAGS_DIR)

from mlops_training.dag_factory import build_tuning_dag

dag: DAG = build_tuning_dag("xgboost", __doc__)
