"""Fixtures for the operator tools: a real MLflow server with seeded pipeline runs.

The server is ``mlflow server`` (sqlite backend, proxied local artifact store) run by
a Python that has MLflow 3.17 installed: ``$MLOPS_TOOLS_MLFLOW_PYTHON``, else this
interpreter when it can import ``mlflow.server``. Without one, the tests that need
it are skipped with that reason; the others run anywhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import local_mlflow
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
DATA = Path(__file__).with_name("data")
SEED_SCRIPT = Path(__file__).with_name("mlflow_seed.py")

# Runs logged into the test server, oldest first (see mlflow_seed.py). Chosen so that
# "latest" must skip a FAILED run, an unevaluated run and a run on another dataset,
# a gate fails, the champion differs from the latest run, two accuracies tie and one
# pipeline has no runs at all.
SEED_SPEC = [
    {"pipeline": "xgboost", "accuracy": 0.9712, "train_seconds": 40.25, "steps": 6, "gate": 0.85,
     "model_bytes": 3000},
    {"pipeline": "xgboost", "accuracy": 0.9801, "train_seconds": 76.125, "steps": 8, "gate": 0.85,
     "model_bytes": 10000},
    {"pipeline": "xgboost", "accuracy": 0.99, "train_seconds": 1.5, "steps": 3, "gate": 0.85,
     "dataset": "table:iris.csv", "register": False},
    {"pipeline": "lightgbm", "accuracy": 0.9799, "train_seconds": 51.5, "steps": 7, "gate": 0.87,
     "model_bytes": 7000},
    {"pipeline": "lightgbm", "accuracy": 0.5, "train_seconds": 9.0, "steps": 2, "gate": 0.87,
     "status": "FAILED"},
    {"pipeline": "tensorflow_mlp", "accuracy": 0.9744, "train_seconds": 7.2, "steps": 3, "gate": 0.95},
    {"pipeline": "tensorflow_mlp", "accuracy": 0.9412, "train_seconds": 6.9, "steps": 3, "gate": 0.95},
    {"pipeline": "tensorflow_cnn", "accuracy": 0.9861, "train_seconds": 24.0, "steps": 4, "gate": 0.985,
     "model_bytes": 150000},
    {"pipeline": "pytorch_mlp", "accuracy": 0.9744, "train_seconds": 30.5, "steps": 5, "gate": 0.95},
    {"pipeline": "pytorch_mlp", "accuracy": 0.9755, "train_seconds": 31.0, "steps": 5, "gate": 0.95,
     "evaluate": False},
    # A tuning study of the PyTorch MLP (its own experiment): two trials, one pruned, one killed.
    {"kind": "study", "pipeline": "pytorch_mlp", "space": ["learning_rate", "hidden_units"],
     "trials": [
         {"state": "COMPLETE", "params": {"learning_rate": 0.001, "hidden_units": 256}, "curve": [0.95, 0.9731],
          "seconds": 21.5},
         {"state": "PRUNED", "params": {"learning_rate": 0.0003, "hidden_units": 128}, "curve": [0.91], "seconds": 8.25},
         {"state": "COMPLETE", "params": {"learning_rate": 0.002, "hidden_units": 512}, "curve": [0.96, 0.9768],
          "seconds": 24.0},
         {"state": "KILLED", "params": {"learning_rate": 0.0011, "hidden_units": 320}},
     ],
     "best_trial": 2, "best_val_accuracy": 0.9768, "test_accuracy": 0.9771, "trials_per_minute": 3.5,
     "decision": "promoted", "reason": "beats champion v1 (0.9771 > 0.9744)"},
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs the running platform (skipped without it)")
    config.addinivalue_line("markers", "mlflow_server: needs a local `mlflow server` (MLflow 3.17 installed)")


def mlflow_python() -> str | None:
    explicit = os.environ.get("MLOPS_TOOLS_MLFLOW_PYTHON")
    if explicit:
        return explicit
    if importlib.util.find_spec("mlflow") and importlib.util.find_spec("mlflow.server"):
        return sys.executable
    return None


def _quiet_env() -> dict[str, str]:
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """URL of a fresh `mlflow server` (sqlite + --serve-artifacts) running for this session."""
    python = mlflow_python()
    if python is None:
        pytest.skip("needs MLflow 3.17 to run a local tracking server: pip install mlflow==3.17.2, "
                    "or point MLOPS_TOOLS_MLFLOW_PYTHON at a python that has it")
    root = tmp_path_factory.mktemp("mlflow")
    # The backend database goes to tmpfs when there is one: sqlite's fsync per commit costs
    # seconds per run on a disk busy with image builds.
    shm = Path("/dev/shm")
    db_dir = Path(tempfile.mkdtemp(prefix="lt-tools-mlflow-", dir=shm)) if shm.is_dir() else root
    # Seed in parallel: the seeding process imports MLflow while the server boots, then waits for it.
    spec, out = root / "spec.json", root / "seeded.json"
    spec.write_text(json.dumps(SEED_SPEC))
    seed_log = (root / "seed.log").open("w")
    seeders: list[subprocess.Popen] = []

    def seed(url: str) -> None:
        seeders.append(subprocess.Popen([python, str(SEED_SCRIPT), url, str(spec), str(out)], stdout=seed_log,
                                        stderr=subprocess.STDOUT, env=_quiet_env(), start_new_session=True))

    try:
        with local_mlflow.mlflow_server(python, root, f"sqlite:///{db_dir / 'mlflow.db'}", env=_quiet_env(),
                                        timeout=300, while_booting=seed) as url:
            yield {"url": url, "root": root, "python": python, "seeder": seeders[0], "seeded": out}
    finally:
        for seeder in seeders:
            if seeder.poll() is None:
                os.killpg(seeder.pid, signal.SIGKILL)
            seeder.wait()
        seed_log.close()
        if db_dir != root:
            shutil.rmtree(db_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def seeded(mlflow_server) -> list[dict]:
    """SEED_SPEC logged through mlops_training.tracking; returns what was logged, run ids included."""
    try:
        code = mlflow_server["seeder"].wait(timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail("seeding MLflow took more than 600 s")
    if code != 0:
        log = (mlflow_server["root"] / "seed.log").read_text()
        pytest.fail(f"seeding MLflow failed (exit {code}):\n{log[-4000:]}")
    return json.loads(mlflow_server["seeded"].read_text())
