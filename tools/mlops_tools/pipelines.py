"""The six training pipelines as the report sees them.

Names mirror ``files/dags/mlops_training/settings.py`` (IDENTITIES) and the seed
floors in ``gates.py``; ``tests/tools`` checks they stay in step. The tools do
not import the training package: it is deployed into the Airflow images, not
installed on the controller.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pipeline:
    key: str  # settings key and value of the run tag mlops.pipeline
    dag_id: str
    experiment: str
    registered_model: str
    library: str  # xgboost | lightgbm | tensorflow | pytorch
    family: str  # gbm | mlp | cnn
    label: str  # human name in tables and plots
    seed_gate: float  # the seed plan's floor (the run's own mlops.gate tag wins)

    @property
    def step_unit(self) -> str:
        """What one step of the learning curve is."""
        return "boosting round" if self.family == "gbm" else "epoch"

    @property
    def steps_param(self) -> str:
        """The hyper-parameter that sets the number of steps."""
        return "num_boost_round" if self.family == "gbm" else "epochs"


PIPELINES: tuple[Pipeline, ...] = (
    Pipeline("xgboost", "xgboost_pipeline", "xgboost_pipeline", "mnist-xgboost",
             "xgboost", "gbm", "XGBoost", 0.85),
    Pipeline("lightgbm", "lightgbm_pipeline", "lightgbm_pipeline", "mnist-lightgbm",
             "lightgbm", "gbm", "LightGBM", 0.87),
    Pipeline("tensorflow_mlp", "tensorflow_mnist_mlp", "tensorflow_mnist_mlp", "mnist-tensorflow-mlp",
             "tensorflow", "mlp", "TensorFlow MLP", 0.95),
    Pipeline("tensorflow_cnn", "tensorflow_mnist_cnn", "tensorflow_mnist_cnn", "mnist-tensorflow-cnn",
             "tensorflow", "cnn", "TensorFlow CNN", 0.98),
    Pipeline("pytorch_mlp", "pytorch_mnist_mlp", "pytorch_mnist_mlp", "mnist-pytorch-mlp",
             "pytorch", "mlp", "PyTorch MLP", 0.95),
    Pipeline("pytorch_cnn", "pytorch_mnist_cnn", "pytorch_mnist_cnn", "mnist-pytorch-cnn",
             "pytorch", "cnn", "PyTorch CNN", 0.98),
)
BY_KEY: dict[str, Pipeline] = {p.key: p for p in PIPELINES}
DAG_IDS: tuple[str, ...] = tuple(p.dag_id for p in PIPELINES)

# The seed plan's comparisons (phase 6): (title, left, right, what differs).
COMPARISONS: tuple[tuple[str, str, str, str], ...] = (
    ("XGBoost vs LightGBM", "xgboost", "lightgbm", "library"),
    ("MLP vs CNN (TensorFlow)", "tensorflow_mlp", "tensorflow_cnn", "architecture"),
    ("MLP vs CNN (PyTorch)", "pytorch_mlp", "pytorch_cnn", "architecture"),
    ("TensorFlow vs PyTorch (MLP)", "tensorflow_mlp", "pytorch_mlp", "framework"),
    ("TensorFlow vs PyTorch (CNN)", "tensorflow_cnn", "pytorch_cnn", "framework"),
)

# Names logged by mlops_training.tracking (see its module docstring).
CURVE_METRICS: tuple[str, ...] = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
METRIC_TEST_ACCURACY = "test_accuracy"
METRIC_TRAIN_SECONDS = "train_seconds"
METRIC_EVALUATE_SECONDS = "evaluate_seconds"
TAG_PIPELINE = "mlops.pipeline"
TAG_DAG_RUN_ID = "mlops.dag_run_id"
TAG_DATASET = "mlops.dataset"
TAG_MODEL_URI = "mlops.model_uri"
TAG_GATE = "mlops.gate"
TAG_GATE_PASSED = "mlops.gate_passed"
TAG_REGISTERED_MODEL = "mlops.registered_model"
TAG_REGISTERED_VERSION = "mlops.registered_version"
TAG_CHAMPION = "mlops.champion"
VERSION_TAG_PREFIX = "mlops.version."
CHAMPION_ALIAS = "champion"
