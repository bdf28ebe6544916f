"""The six training pipelines and the MLflow names, as the report and status tools see them.

Both come from the training package's registry, ``mlops_training.registry`` (which reads
``files/dags/mlops_training/pipelines.json``): one place for every name. That module is
standard library only, so the tools import it straight from the repository; the rest of
the package (NumPy, the ML libraries) is never imported here. The package itself is
deployed into the Airflow images, not installed on the controller.
"""

from __future__ import annotations

import sys
from pathlib import Path

# append, not insert: an installed mlops_training (there is none today) would win.
if (_DAGS_DIR := str(Path(__file__).resolve().parents[2] / "files" / "dags")) not in sys.path:
    sys.path.append(_DAGS_DIR)

from mlops_training.registry import (
    BY_KEY,
    CHAMPION_ALIAS,
    CURVE_METRICS,
    DAG_IDS,
    METRIC_EVALUATE_SECONDS,
    METRIC_TEST_ACCURACY,
    METRIC_TRAIN_SECONDS,
    METRIC_TRIAL_SECONDS,
    METRIC_TRIALS_PER_MINUTE,
    PIPELINES,
    TAG_BEST_TRIAL,
    TAG_CHAMPION,
    TAG_CHAMPION_DECISION,
    TAG_CHAMPION_REASON,
    TAG_DAG_RUN_ID,
    TAG_DATASET,
    TAG_GATE,
    TAG_GATE_PASSED,
    TAG_MODEL_URI,
    TAG_PIPELINE,
    TAG_REGISTERED_VERSION,
    TAG_STUDY,
    TAG_STUDY_ROLE,
    TAG_TRIAL,
    TAG_TRIAL_STATE,
    VERSION_TAG_PREFIX,
    Pipeline,
)

__all__ = [
    "BY_KEY", "CHAMPION_ALIAS", "COMPARISONS", "CURVE_METRICS", "DAG_IDS", "METRIC_EVALUATE_SECONDS",
    "METRIC_TEST_ACCURACY", "METRIC_TRAIN_SECONDS", "METRIC_TRIALS_PER_MINUTE", "METRIC_TRIAL_SECONDS",
    "PIPELINES", "TAG_BEST_TRIAL", "TAG_CHAMPION", "TAG_CHAMPION_DECISION", "TAG_CHAMPION_REASON",
    "TAG_DAG_RUN_ID", "TAG_DATASET", "TAG_GATE", "TAG_GATE_PASSED", "TAG_MODEL_URI", "TAG_PIPELINE",
    "TAG_REGISTERED_VERSION", "TAG_STUDY", "TAG_STUDY_ROLE", "TAG_TRIAL", "TAG_TRIAL_STATE",
    "VERSION_TAG_PREFIX", "Pipeline",
]

# The execution plan's comparisons (phase 6): (title, left, right, what differs).
COMPARISONS: tuple[tuple[str, str, str, str], ...] = (
    ("XGBoost vs LightGBM", "xgboost", "lightgbm", "library"),
    ("MLP vs CNN (TensorFlow)", "tensorflow_mlp", "tensorflow_cnn", "architecture"),
    ("MLP vs CNN (PyTorch)", "pytorch_mlp", "pytorch_cnn", "architecture"),
    ("TensorFlow vs PyTorch (MLP)", "tensorflow_mlp", "pytorch_mlp", "framework"),
    ("TensorFlow vs PyTorch (CNN)", "tensorflow_cnn", "pytorch_cnn", "framework"),
)
