"""Task bodies the DAGs call: validate → train → evaluate → register.

Each function takes the pipeline key and the small dict the previous task
returned (paths, checksums, run ids, accuracy) and returns another small dict:
that is all that travels through XCom. Arrays are reloaded from the data file
in each task; its SHA-256 is checked so every task sees the same data.

Nothing here imports Airflow except :func:`airflow_run_context`, so the whole
chain runs in tests against a local MLflow.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from mlops_training import gates, registry, tracking
from mlops_training.data import (
    MNIST_TEST_ROWS,
    MNIST_TRAIN_ROWS,
    DataError,
    Mnist,
    default_mnist_path,
    file_sha256,
    holdout_split,
    load_mnist,
    load_tabular,
)
from mlops_training.recipes import TrainData, accuracy, get_recipe, resolve_threads
from mlops_training.settings import PipelineSettings, get_settings

TABULAR_PIPELINES = tuple(p.key for p in registry.PIPELINES if p.tabular)
TABULAR_TEST_FRACTION = 0.2
# A stale RUNNING run older than the task's timeout plus this margin is swept.
SWEEP_MARGIN_SECONDS = 300
# Row counts validate() and the later tasks insist on; tests lower them to run on a slice.
MNIST_ROWS: tuple[int | None, int | None] = (MNIST_TRAIN_ROWS, MNIST_TEST_ROWS)


def mnist_splits(mnist: Mnist, validation_size: int, seed: int) -> tuple[TrainData, np.ndarray, np.ndarray]:
    """Training/validation data (float32 in [0, 1]) and the untouched 10k test set.

    The validation rows come out of the 60k training set (seeded), so the test
    set is only ever used by the evaluate task.
    """
    keep, val = holdout_split(len(mnist.y_train), validation_size, seed)
    x = mnist.x_train.astype(np.float32) / np.float32(255.0)
    train = TrainData(x[keep], mnist.y_train[keep], x[val], mnist.y_train[val], 10)
    return train, mnist.x_test.astype(np.float32) / np.float32(255.0), mnist.y_test


def tabular_splits(x: np.ndarray, y: np.ndarray, n_classes: int, validation_size: int,
                   seed: int) -> tuple[TrainData, np.ndarray, np.ndarray]:
    """Seeded test (20 %) and validation (≤ validation_size, ≤ 10 % of the rest) splits of a table."""
    n_test = max(1, round(len(y) * TABULAR_TEST_FRACTION))
    rest, test = holdout_split(len(y), n_test, seed)
    n_val = max(1, min(validation_size, len(rest) // 10))
    keep, val = holdout_split(len(rest), n_val, seed + 1)
    train = TrainData(x[rest[keep]], y[rest[keep]], x[rest[val]], y[rest[val]], n_classes)
    return train, x[test], y[test]


def registered_model_name(cfg: PipelineSettings, data_ref: dict[str, Any]) -> str:
    """MNIST models go to the configured name; a user's table gets its own registered model,
    so its accuracy is never compared with MNIST's for the champion alias."""
    if data_ref["kind"] == "mnist":
        return cfg.registered_model_name
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(data_ref["path"]).stem).strip("-").lower() or "table"
    return f"{cfg.registered_model_name.removeprefix('mnist-')}-{slug}"


# --------------------------------------------------------------------------- validate


def validate(key: str, data_path: str | None = None, label_column: str | None = None) -> dict[str, Any]:
    """Check the input data and describe it (path, checksum, sizes) for the next tasks.

    Without ``data_path`` the pipeline uses the staged MNIST file
    (``$MLOPS_DATA_DIR/mnist.npz``, default ``/opt/airflow/data/mnist.npz``).
    With it (GBM pipelines only), a user's Parquet/CSV table is used.
    """
    cfg = get_settings(key)
    if data_path:
        if key not in TABULAR_PIPELINES:
            raise DataError(f"{key}: a custom data_path is only supported by {TABULAR_PIPELINES}")
        table = load_tabular(data_path, label_column or "label")
        validation_size = int(cfg.hyperparameters["validation_size"])
        # Fails early (here, not in train) when the table is too small to split.
        tabular_splits(table.x, table.y, table.n_classes, validation_size, cfg.seed)
        return {
            "kind": "tabular", "dataset": f"table:{Path(data_path).name}", "path": str(data_path),
            "label_column": label_column or "label", "sha256": file_sha256(data_path),
            "rows": len(table.y), "features": len(table.feature_names), "n_classes": table.n_classes,
        }
    path = default_mnist_path()
    mnist = load_mnist(path, *MNIST_ROWS)
    return {
        "kind": "mnist", "dataset": "mnist", "path": str(path), "sha256": file_sha256(path),
        "train_rows": len(mnist.y_train), "test_rows": len(mnist.y_test), "n_classes": 10,
    }


def load_splits(cfg: PipelineSettings, data_ref: dict[str, Any]) -> tuple[TrainData, np.ndarray, np.ndarray]:
    """Reload the data described by ``data_ref`` and split it exactly as every other task does."""
    actual = file_sha256(data_ref["path"])
    if actual != data_ref["sha256"]:
        raise DataError(
            f"{data_ref['path']} changed since validation (sha256 {actual[:12]}… ≠ {data_ref['sha256'][:12]}…); "
            "re-run the DAG"
        )
    validation_size = int(cfg.hyperparameters["validation_size"])
    if data_ref["kind"] == "mnist":
        return mnist_splits(load_mnist(data_ref["path"], *MNIST_ROWS), validation_size, cfg.seed)
    table = load_tabular(data_ref["path"], data_ref["label_column"])
    return tabular_splits(table.x, table.y, table.n_classes, validation_size, cfg.seed)


# --------------------------------------------------------------------------- train


def train(key: str, data_ref: dict[str, Any], run_context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the pipeline's model and log params, learning curves, time, versions and the model.

    ``run_context`` carries ``dag_id``, ``dag_run_id`` and ``try_number`` (see
    :func:`airflow_run_context`); they tag the run and let the stale-run sweep
    recognise earlier tries of the same DAG run.
    """
    cfg = get_settings(key)
    ctx = run_context or {}
    tracking.configure()
    experiment_id = tracking.ensure_experiment(cfg.experiment_name)
    swept = tracking.sweep_stale_runs(
        experiment_id, key, ctx.get("dag_run_id"),
        older_than_seconds=cfg.execution_timeout_minutes * 60 + SWEEP_MARGIN_SECONDS,
    )
    data, x_test, _ = load_splits(cfg, data_ref)
    recipe = get_recipe(key)
    threads = resolve_threads(cfg.num_threads)
    tags = {
        registry.TAG_PIPELINE: key,
        registry.TAG_DATASET: data_ref["dataset"],
        registry.TAG_DATA_SHA256: data_ref["sha256"],
        registry.TAG_GATE: f"{cfg.gate}",
        "mlflow.note.content": f"{cfg.dag_id}: {recipe.library} on {data_ref['dataset']}",
    }
    for field, tag in (("dag_id", registry.TAG_DAG_ID), ("dag_run_id", registry.TAG_DAG_RUN_ID),
                       ("try_number", registry.TAG_TRY_NUMBER)):
        if ctx.get(field) is not None:
            tags[tag] = str(ctx[field])
    run_name = f"{key}-try{ctx['try_number']}" if ctx.get("try_number") is not None else key
    with tracking.training_run(experiment_id, run_name, tags) as run_id:
        result = recipe.train(data, cfg.hyperparameters, cfg.seed, threads)
        tracking.log_training(run_id, result, params={
            "dataset": data_ref["dataset"], "train_rows": len(data.y_train), "val_rows": len(data.y_val),
            "n_classes": data.n_classes, "validation_size": cfg.hyperparameters["validation_size"],
            "gate": cfg.gate,
        })
        model_uri = tracking.log_model(result, recipe.prepare(x_test[:2]), data.n_classes)
        tracking.set_run_tags(run_id, {registry.TAG_MODEL_URI: model_uri})
    return {
        "pipeline": key, "run_id": run_id, "model_uri": model_uri, "data": data_ref,
        "train_seconds": round(result.train_seconds, 3),
        "final_val_accuracy": round(float(result.history["val_accuracy"][-1]), 6),
        "swept_runs": swept,
    }


# --------------------------------------------------------------------------- evaluate


def evaluate(key: str, trained: dict[str, Any]) -> dict[str, Any]:
    """Load the logged model back from MLflow, score it on the held-out test set, apply the gate.

    The test accuracy and the gate outcome are recorded on the run first, so a
    rejected model is visible in MLflow; then :class:`~mlops_training.gates.GateError`
    is raised and the register task never runs.
    """
    cfg = get_settings(key)
    tracking.configure()
    _, x_test, y_test = load_splits(cfg, trained["data"])
    started = time.perf_counter()
    model = tracking.load_model(get_recipe(key).flavor, trained["model_uri"])
    test_accuracy = accuracy(key, model, x_test, y_test)
    passed = gates.passes(test_accuracy, cfg.gate)
    tracking.record_evaluation(
        trained["run_id"],
        {registry.METRIC_TEST_ACCURACY: test_accuracy,
         registry.METRIC_EVALUATE_SECONDS: time.perf_counter() - started},
        {registry.TAG_GATE: f"{cfg.gate}", registry.TAG_GATE_PASSED: str(passed).lower()},
        model_id=tracking.model_id_from_uri(trained["model_uri"]),
    )
    gates.check(key, test_accuracy, cfg.gate)
    return {
        "pipeline": key, "run_id": trained["run_id"], "model_uri": trained["model_uri"],
        "data": trained["data"], "test_accuracy": round(test_accuracy, 6), "gate": cfg.gate,
    }


# --------------------------------------------------------------------------- register


def register(key: str, evaluated: dict[str, Any]) -> dict[str, Any]:
    """Register the gated model version; move the ``champion`` alias only if it is better.

    The accuracy is read back from the MLflow run (not trusted from XCom) and
    the gate is checked again before anything is registered.
    """
    from mlflow.tracking import MlflowClient

    cfg = get_settings(key)
    tracking.configure()
    run = MlflowClient().get_run(evaluated["run_id"])
    recorded = run.data.metrics.get(registry.METRIC_TEST_ACCURACY)
    if recorded is None:
        raise tracking.TrackingError(f"run {evaluated['run_id']} has no {registry.METRIC_TEST_ACCURACY} metric")
    gates.check(key, recorded, cfg.gate)
    data_ref = evaluated["data"]
    outcome = tracking.register_and_promote(
        evaluated["model_uri"], registered_model_name(cfg, data_ref), evaluated["run_id"], recorded,
        version_tags={"pipeline": key, "dataset": data_ref["dataset"], "gate": f"{cfg.gate}"},
        gate=cfg.gate,
    )
    return {"pipeline": key, "run_id": evaluated["run_id"], "test_accuracy": recorded, **outcome}


# --------------------------------------------------------------------------- Airflow glue


def airflow_run_context() -> dict[str, Any]:
    """DAG id, DAG run id, task id and try number of the running task (Task SDK only, no DB)."""
    from airflow.sdk import get_current_context

    ti = get_current_context()["ti"]
    return {"dag_id": ti.dag_id, "dag_run_id": ti.run_id, "task_id": ti.task_id, "try_number": ti.try_number}
