"""Six training recipes: XGBoost, LightGBM, Keras MLP/CNN, PyTorch MLP/CNN.

Each ``train_*`` function takes a :class:`TrainData`, the pipeline's
hyper-parameters, a seed and a thread budget, and returns a
:class:`TrainResult` with the model, per-round/per-epoch learning curves and
the wall-clock training time. Each ``predict_*`` turns features into class
labels, for a freshly trained model and for one loaded back from MLflow alike.

Heavy libraries are imported inside the functions: the dag-processor imports
this package's siblings at parse time and has none of them installed.

Feature contract (what the logged models expect): float32 pixels scaled to
[0, 1]; MNIST images may be passed as (n, 28, 28) and are reshaped per model
(flat 784 for GBMs and MLPs, NHWC for Keras CNNs, NCHW for PyTorch CNNs).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mlops_training.registry import CURVE_METRICS

HISTORY_KEYS = CURVE_METRICS  # what every recipe's history holds

# Called after every epoch or boosting round with the 1-based step and that step's
# train/validation loss and accuracy; returning True stops training there (a tuning trial's
# pruner). The training DAGs pass none.
StepHook = Callable[[int, Mapping[str, float]], bool]


@dataclass(frozen=True)
class TrainData:
    """Training and validation features (float32) with integer labels 0..n_classes-1."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int


@dataclass
class TrainResult:
    """What a recipe hands to tracking: the model, its curves and its cost."""

    model: Any
    history: dict[str, list[float]]
    train_seconds: float
    params: dict[str, Any]  # effective library parameters, logged as MLflow params
    library: str
    library_version: str
    flavor: str  # the mlflow flavor module that logs and loads this model
    extra: dict[str, Any] = field(default_factory=dict)


class Recipe(NamedTuple):
    """A recipe's entry points and the MLflow flavor that stores its models."""

    train: Callable[..., TrainResult]
    predict: Callable[[Any, np.ndarray], np.ndarray]
    prepare: Callable[[np.ndarray], np.ndarray]
    library: str
    flavor: str


# --------------------------------------------------------------------------- CPU budget


def available_cpus() -> int:
    """CPUs this process may use: the cgroup quota (Docker ``cpus:``) capped by affinity.

    ``os.cpu_count()`` reports the host's cores, which oversubscribes a
    container limited to fewer CPUs and slows every library down.
    """
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota: float | None = None
    try:  # cgroup v2
        raw = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if raw and raw[0] != "max":
            quota = int(raw[0]) / int(raw[1])
    except (OSError, ValueError, IndexError):
        try:  # cgroup v1
            q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
            p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            quota = q / p if q > 0 and p > 0 else None
        except (OSError, ValueError):
            quota = None
    if quota:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def resolve_threads(requested: int = 0) -> int:
    """``requested`` if positive, else :func:`available_cpus`."""
    return requested if requested > 0 else available_cpus()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _flat(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.reshape(x.shape[0], -1), dtype=np.float32)


def _accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


# --------------------------------------------------------------------------- XGBoost


def _library_names(hp: Mapping[str, Any], *same: str, **renamed: str) -> dict[str, Any]:
    """Hyper-parameters under a library's own names: ``same`` as they are, ``renamed`` as
    library_name=our_name. settings has already checked each value's type and range."""
    return {name: hp[name] for name in same} | {library: hp[ours] for library, ours in renamed.items()}


def _gbm_history(evals: Mapping[str, Mapping[str, list[float]]], loss: str, error: str) -> dict[str, list[float]]:
    """Per-round curves from a booster's evaluation record (its own loss and error metric names)."""
    return {
        "train_loss": list(evals["train"][loss]),
        "train_accuracy": [1.0 - e for e in evals["train"][error]],
        "val_loss": list(evals["val"][loss]),
        "val_accuracy": [1.0 - e for e in evals["val"][error]],
    }


def train_xgboost(data: TrainData, hp: Mapping[str, Any], seed: int, threads: int,
                  on_step: StepHook | None = None) -> TrainResult:
    """Gradient-boosted trees with XGBoost's ``hist`` method (``xgboost-cpu`` wheel)."""
    import xgboost as xgb

    params = {
        "objective": "multi:softprob",
        "num_class": data.n_classes,
        "tree_method": "hist",
        **_library_names(hp, "max_bin", "max_depth", "min_child_weight", "subsample", "colsample_bytree",
                         eta="learning_rate"),
        "eval_metric": ["mlogloss", "merror"],
        "nthread": threads,
        "seed": seed,
    }
    rounds = int(hp["num_boost_round"])
    started = time.perf_counter()
    # QuantileDMatrix bins once and shares the cut points with the validation set.
    dtrain = xgb.QuantileDMatrix(_flat(data.x_train), data.y_train, max_bin=params["max_bin"], nthread=threads)
    dval = xgb.QuantileDMatrix(
        _flat(data.x_val), data.y_val, ref=dtrain, max_bin=params["max_bin"], nthread=threads
    )
    evals: dict[str, dict[str, list[float]]] = {}
    callbacks = [] if on_step is None else [_xgboost_step_callback(xgb, on_step)]
    booster = xgb.train(
        params, dtrain, num_boost_round=rounds, evals=[(dtrain, "train"), (dval, "val")],
        evals_result=evals, verbose_eval=False, callbacks=callbacks,
    )
    seconds = time.perf_counter() - started
    history = _gbm_history(evals, "mlogloss", "merror")
    logged = {k: v for k, v in params.items() if k != "eval_metric"} | {"num_boost_round": rounds}
    return TrainResult(booster, history, seconds, logged, "xgboost", xgb.__version__, "xgboost")


def _gbm_step(evals: Mapping[str, Mapping[str, Sequence[float]]], loss: str, error: str) -> dict[str, float]:
    """The newest round's curves from a booster's evaluation log."""
    return {key: values[-1] for key, values in _gbm_history(evals, loss, error).items()}


def _xgboost_step_callback(xgb: Any, on_step: StepHook) -> Any:
    class StepCallback(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            return bool(on_step(epoch + 1, _gbm_step(evals_log, "mlogloss", "merror")))  # True stops

    return StepCallback()


def predict_xgboost(model: Any, x: np.ndarray) -> np.ndarray:
    import xgboost as xgb

    proba = model.predict(xgb.DMatrix(_flat(x)))
    return np.asarray(proba).reshape(len(x), -1).argmax(axis=1)


# --------------------------------------------------------------------------- LightGBM


def train_lightgbm(data: TrainData, hp: Mapping[str, Any], seed: int, threads: int,
                   on_step: StepHook | None = None) -> TrainResult:
    """Gradient-boosted trees with LightGBM (leaf-wise growth, histogram bins)."""
    import lightgbm as lgb

    params = {
        "objective": "multiclass",
        "num_class": data.n_classes,
        **_library_names(hp, "learning_rate", "num_leaves", "max_bin", "min_data_in_leaf", "feature_fraction"),
        "metric": ["multi_logloss", "multi_error"],
        "num_threads": threads,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,  # 784 sparse-ish columns: col-wise histograms win, skip the probe
        "verbosity": -1,
    }
    rounds = int(hp["num_boost_round"])
    started = time.perf_counter()
    train = lgb.Dataset(_flat(data.x_train), data.y_train, params={"max_bin": params["max_bin"]})
    val = lgb.Dataset(_flat(data.x_val), data.y_val, reference=train)
    evals: dict[str, dict[str, list[float]]] = {}
    callbacks = [lgb.record_evaluation(evals)]
    if on_step is not None:
        callbacks.append(_lightgbm_step_callback(lgb, evals, on_step))
    booster = lgb.train(
        params, train, num_boost_round=rounds, valid_sets=[train, val], valid_names=["train", "val"],
        callbacks=callbacks,
    )
    seconds = time.perf_counter() - started
    history = _gbm_history(evals, "multi_logloss", "multi_error")
    logged = {k: v for k, v in params.items() if k not in {"metric", "verbosity"}} | {"num_boost_round": rounds}
    return TrainResult(booster, history, seconds, logged, "lightgbm", lgb.__version__, "lightgbm")


def _lightgbm_step_callback(lgb: Any, evals: Mapping[str, Any], on_step: StepHook) -> Callable[[Any], None]:
    def step_callback(env: Any) -> None:
        if on_step(env.iteration + 1, _gbm_step(evals, "multi_logloss", "multi_error")):
            # LightGBM's own way to end training early: the booster keeps every round so far.
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    # After record_evaluation (order 20), so this round is in `evals` already.
    step_callback.order = 30  # type: ignore[attr-defined]
    return step_callback


def predict_lightgbm(model: Any, x: np.ndarray) -> np.ndarray:
    proba = model.predict(_flat(x))
    return np.asarray(proba).reshape(len(x), -1).argmax(axis=1)


# --------------------------------------------------------------------------- TensorFlow / Keras


def _tf_setup(threads: int, seed: int) -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep task logs readable
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TF already initialised in this process (a test session); keep its pools
    tf.keras.utils.set_random_seed(seed)  # seeds Python, NumPy and TF in one call
    return tf


def _keras_step_callback(tf: Any, on_step: StepHook) -> Any:
    names = {"loss": "train_loss", "accuracy": "train_accuracy", "val_loss": "val_loss", "val_accuracy": "val_accuracy"}

    class StepCallback(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            metrics = {ours: float(logs[theirs]) for theirs, ours in names.items() if logs and theirs in logs}
            if on_step(epoch + 1, metrics):
                self.model.stop_training = True

    return StepCallback()


def _keras_train(model: Any, data: TrainData, prepare: Callable[[np.ndarray], np.ndarray],
                 hp: Mapping[str, Any], tf: Any, threads: int, seed: int,
                 on_step: StepHook | None = None) -> TrainResult:
    """Compile and fit a Keras network; the result is described the same way for each one."""
    batch = int(hp["batch_size"])
    epochs = int(hp["epochs"])
    steps = epochs * math.ceil(len(data.x_train) / batch)
    # Cosine decay to zero: reaches a better optimum in few epochs than a flat rate.
    schedule = tf.keras.optimizers.schedules.CosineDecay(float(hp["learning_rate"]), decay_steps=steps)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=schedule),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    started = time.perf_counter()
    fit = model.fit(
        prepare(data.x_train), data.y_train, batch_size=batch, epochs=epochs,
        validation_data=(prepare(data.x_val), data.y_val), shuffle=True, verbose=0,
        callbacks=[] if on_step is None else [_keras_step_callback(tf, on_step)],
    )
    seconds = time.perf_counter() - started
    h = fit.history
    history = {
        "train_loss": h["loss"], "train_accuracy": h["accuracy"],
        "val_loss": h["val_loss"], "val_accuracy": h["val_accuracy"],
    }
    return TrainResult(model, {k: [float(v) for v in vals] for k, vals in history.items()}, seconds,
                       _dl_params(hp, threads, seed, "adam"), "tensorflow", tf.__version__, "tensorflow",
                       {"keras_version": _version("keras")})


def prepare_flat(x: np.ndarray) -> np.ndarray:
    """(n, 28, 28) or (n, d) → (n, d) float32."""
    return _flat(x)


def prepare_nhwc(x: np.ndarray) -> np.ndarray:
    """(n, 28, 28) → (n, 28, 28, 1) float32 for Keras convolutions."""
    return np.ascontiguousarray(x.reshape(x.shape[0], 28, 28, 1), dtype=np.float32)


def prepare_nchw(x: np.ndarray) -> np.ndarray:
    """(n, 28, 28) → (n, 1, 28, 28) float32 for PyTorch convolutions."""
    return np.ascontiguousarray(x.reshape(x.shape[0], 1, 28, 28), dtype=np.float32)


def _dl_params(hp: Mapping[str, Any], threads: int, seed: int, optimizer: str) -> dict[str, Any]:
    return {k: v for k, v in hp.items() if k != "validation_size"} | {
        "optimizer": optimizer, "lr_schedule": "cosine", "threads": threads, "seed": seed,
    }


def train_tensorflow_mlp(data: TrainData, hp: Mapping[str, Any], seed: int, threads: int,
                         on_step: StepHook | None = None) -> TrainResult:
    """Keras MLP: 784 → hidden → hidden/2 → classes, ReLU, dropout."""
    tf = _tf_setup(threads, seed)
    layers = tf.keras.layers
    units = int(hp["hidden_units"])
    width = prepare_flat(data.x_train[:1]).shape[1]
    model = tf.keras.Sequential([
        layers.Input(shape=(width,), name="pixels"),
        layers.Dense(units, activation="relu"),
        layers.Dropout(float(hp["dropout"])),
        layers.Dense(max(units // 2, 1), activation="relu"),
        layers.Dropout(float(hp["dropout"])),
        layers.Dense(data.n_classes, name="logits"),
    ], name="mnist_mlp")
    return _keras_train(model, data, prepare_flat, hp, tf, threads, seed, on_step)


def train_tensorflow_cnn(data: TrainData, hp: Mapping[str, Any], seed: int, threads: int,
                         on_step: StepHook | None = None) -> TrainResult:
    """Keras CNN: two conv+pool blocks, a dense layer, dropout."""
    tf = _tf_setup(threads, seed)
    layers = tf.keras.layers
    model = tf.keras.Sequential([
        layers.Input(shape=(28, 28, 1), name="pixels"),
        layers.Conv2D(int(hp["conv1_filters"]), 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(int(hp["conv2_filters"]), 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(int(hp["dense_units"]), activation="relu"),
        layers.Dropout(float(hp["dropout"])),
        layers.Dense(data.n_classes, name="logits"),
    ], name="mnist_cnn")
    return _keras_train(model, data, prepare_nhwc, hp, tf, threads, seed, on_step)


def _keras_predict(model: Any, x: np.ndarray, prepare: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    logits = model.predict(prepare(x), batch_size=2048, verbose=0)
    return np.asarray(logits).argmax(axis=1)


def predict_tensorflow_mlp(model: Any, x: np.ndarray) -> np.ndarray:
    return _keras_predict(model, x, prepare_flat)


def predict_tensorflow_cnn(model: Any, x: np.ndarray) -> np.ndarray:
    return _keras_predict(model, x, prepare_nhwc)


# --------------------------------------------------------------------------- PyTorch


def _torch_setup(threads: int, seed: int) -> Any:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass  # only settable once per process, before any parallel work
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch


def _torch_fit(model: Any, data: TrainData, prepare: Callable[[np.ndarray], np.ndarray],
               hp: Mapping[str, Any], seed: int, torch: Any,
               on_step: StepHook | None = None) -> tuple[dict[str, list[float]], float]:
    x = torch.from_numpy(prepare(data.x_train))
    y = torch.from_numpy(np.asarray(data.y_train, dtype=np.int64))
    xv = torch.from_numpy(prepare(data.x_val))
    yv = torch.from_numpy(np.asarray(data.y_val, dtype=np.int64))
    batch = int(hp["batch_size"])
    epochs = int(hp["epochs"])
    steps = epochs * math.ceil(len(x) / batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(hp["learning_rate"]))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        total_loss, correct = 0.0, 0
        # Index tensors in memory: a DataLoader's worker processes cost more than they save here.
        for idx in torch.randperm(len(x), generator=generator).split(batch):
            xb, yb = x[idx], y[idx]
            optimizer.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += float(loss.detach()) * len(idx)
            correct += int((logits.detach().argmax(1) == yb).sum())
        history["train_loss"].append(total_loss / len(x))
        history["train_accuracy"].append(correct / len(x))
        val_loss, val_acc = _torch_evaluate(model, xv, yv, loss_fn, torch)
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_acc)
        if on_step is not None and on_step(epoch, {key: values[-1] for key, values in history.items()}):
            break
    return history, time.perf_counter() - started


def _torch_evaluate(model: Any, x: Any, y: Any, loss_fn: Any, torch: Any) -> tuple[float, float]:
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.inference_mode():
        for xb, yb in zip(x.split(4096), y.split(4096)):
            logits = model(xb)
            total_loss += float(loss_fn(logits, yb)) * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
    return total_loss / len(y), correct / len(y)


def train_pytorch_mlp(data: TrainData, hp: Mapping[str, Any], seed: int, threads: int,
                      on_step: StepHook | None = None) -> TrainResult:
    """PyTorch MLP, same shape as the Keras one (784 → hidden → hidden/2 → classes)."""
    torch = _torch_setup(threads, seed)
    nn = torch.nn
    units = int(hp["hidden_units"])
    width = prepare_flat(data.x_train[:1]).shape[1]
    # nn.Sequential only (no custom class), so the pickled model loads anywhere torch is installed.
    model = nn.Sequential(
        nn.Linear(width, units), nn.ReLU(), nn.Dropout(float(hp["dropout"])),
        nn.Linear(units, max(units // 2, 1)), nn.ReLU(), nn.Dropout(float(hp["dropout"])),
        nn.Linear(max(units // 2, 1), data.n_classes),
    )
    history, seconds = _torch_fit(model, data, prepare_flat, hp, seed, torch, on_step)
    model.eval()
    return TrainResult(model, history, seconds, _dl_params(hp, threads, seed, "adam"),
                       "torch", torch.__version__, "pytorch")


def train_pytorch_cnn(data: TrainData, hp: Mapping[str, Any], seed: int, threads: int,
                      on_step: StepHook | None = None) -> TrainResult:
    """PyTorch CNN, same shape as the Keras one."""
    torch = _torch_setup(threads, seed)
    nn = torch.nn
    c1, c2 = int(hp["conv1_filters"]), int(hp["conv2_filters"])
    model = nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * 7 * 7, int(hp["dense_units"])), nn.ReLU(), nn.Dropout(float(hp["dropout"])),
        nn.Linear(int(hp["dense_units"]), data.n_classes),
    )
    history, seconds = _torch_fit(model, data, prepare_nchw, hp, seed, torch, on_step)
    model.eval()
    return TrainResult(model, history, seconds, _dl_params(hp, threads, seed, "adam"),
                       "torch", torch.__version__, "pytorch")


def _torch_predict(model: Any, x: np.ndarray, prepare: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    import torch

    try:
        model.eval()
    except (NotImplementedError, RuntimeError):
        pass  # a torch.export module loaded from MLflow (pt2) was exported in eval mode already
    inputs = torch.from_numpy(prepare(x))
    with torch.inference_mode():
        return torch.cat([model(xb).argmax(1) for xb in inputs.split(4096)]).numpy()


def predict_pytorch_mlp(model: Any, x: np.ndarray) -> np.ndarray:
    return _torch_predict(model, x, prepare_flat)


def predict_pytorch_cnn(model: Any, x: np.ndarray) -> np.ndarray:
    return _torch_predict(model, x, prepare_nchw)


# --------------------------------------------------------------------------- registry

RECIPES: dict[str, Recipe] = {
    "xgboost": Recipe(train_xgboost, predict_xgboost, prepare_flat, "xgboost", "xgboost"),
    "lightgbm": Recipe(train_lightgbm, predict_lightgbm, prepare_flat, "lightgbm", "lightgbm"),
    "tensorflow_mlp": Recipe(train_tensorflow_mlp, predict_tensorflow_mlp, prepare_flat, "tensorflow", "tensorflow"),
    "tensorflow_cnn": Recipe(train_tensorflow_cnn, predict_tensorflow_cnn, prepare_nhwc, "tensorflow", "tensorflow"),
    "pytorch_mlp": Recipe(train_pytorch_mlp, predict_pytorch_mlp, prepare_flat, "torch", "pytorch"),
    "pytorch_cnn": Recipe(train_pytorch_cnn, predict_pytorch_cnn, prepare_nchw, "torch", "pytorch"),
}

# The import name of each recipe's library, for skip checks and version tags.
LIBRARY_MODULES: dict[str, str] = {
    "xgboost": "xgboost", "lightgbm": "lightgbm",
    "tensorflow_mlp": "tensorflow", "tensorflow_cnn": "tensorflow",
    "pytorch_mlp": "torch", "pytorch_cnn": "torch",
}


def get_recipe(key: str) -> Recipe:
    """The recipe for a pipeline key; ``KeyError`` names the known keys."""
    try:
        return RECIPES[key]
    except KeyError:
        raise KeyError(f"unknown recipe {key!r}; known: {sorted(RECIPES)}") from None


def accuracy(recipe_key: str, model: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of ``x`` that ``model`` labels as ``y``."""
    return _accuracy(y, get_recipe(recipe_key).predict(model, x))
