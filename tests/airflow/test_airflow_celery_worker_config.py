"""The worker's Celery settings module (roles/airflow/files/celery_worker_config.py).

Needs Airflow's Celery provider: `make test-images` runs this in the worker image, where
the default preload list must import and survive the fork every task process goes through.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("airflow.providers.celery")

REPO = Path(__file__).resolve().parents[2]
MODULE_FILE = REPO / "roles" / "airflow" / "files" / "celery_worker_config.py"
DEFAULTS = yaml.safe_load((REPO / "roles" / "airflow" / "defaults" / "main.yml").read_text())


@pytest.fixture(scope="module")
def config():
    spec = importlib.util.spec_from_file_location("mlops_celery_config", MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    gc.unfreeze()


def test_airflow_celery_settings_are_kept(config) -> None:
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    assert config.CELERY_CONFIG is DEFAULT_CELERY_CONFIG


def test_the_list_is_comma_separated_blanks_dropped(config) -> None:
    assert config.modules_to_preload(" numpy, ,mlflow.pytorch ,") == ["numpy", "mlflow.pytorch"]
    assert config.modules_to_preload("") == [] and config.modules_to_preload(None) == []


def test_a_missing_module_is_reported_and_the_rest_imported(config) -> None:
    sys.modules.pop("colorsys", None)
    loaded, failed = config.preload(["no_such_module_for_mlops", "colorsys"])
    assert loaded == ["colorsys"] and "colorsys" in sys.modules
    assert list(failed) == ["no_such_module_for_mlops"]
    assert failed["no_such_module_for_mlops"].startswith("ModuleNotFoundError")


def test_the_worker_start_signal_preloads_the_listed_modules(config, monkeypatch, caplog) -> None:
    from celery.signals import worker_init

    sys.modules.pop("json.tool", None)
    monkeypatch.setenv(config.PRELOAD_ENV, "json.tool,no_such_module_for_mlops")
    with caplog.at_level(logging.INFO, logger=config.log.name):
        worker_init.send(sender=None)
    assert "json.tool" in sys.modules
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("mlops: preloaded 1 module(s)") and m.endswith("json.tool") for m in messages), messages
    assert any("could not preload no_such_module_for_mlops (ModuleNotFoundError" in m for m in messages), messages


# A fresh interpreter: the role's default list imports in this image, and a process forked
# afterwards (as Celery's pool and the Task SDK's supervisor fork) trains with the libraries.
FORKED = r"""
import json, os, sys
spec = __import__("importlib.util").util.spec_from_file_location("cfg", sys.argv[1])
cfg = __import__("importlib.util").util.module_from_spec(spec); spec.loader.exec_module(cfg)
loaded, failed = cfg.preload(json.loads(sys.argv[2]))
import setproctitle
setproctitle.setproctitle("[celeryd: test]")  # as Celery names its main process afterwards
with open("/proc/self/cmdline", "rb") as handle:
    title = handle.read().split(b"\0")[0].decode()
pid = os.fork()
if pid == 0:
    import numpy as np, tensorflow as tf, torch
    x = np.random.default_rng(0).random((64, 4), dtype=np.float32)
    y = (x[:, 0] > 0.5).astype("int64")
    net = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
    net.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(x, y, epochs=1, verbose=0)
    lin = torch.nn.Linear(4, 2)
    torch.nn.functional.cross_entropy(lin(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    os._exit(0)
_, status = os.waitpid(pid, 0)
print(json.dumps({"loaded": loaded, "failed": failed, "child_status": status, "title": title}))
"""


def test_the_default_list_imports_here_survives_a_fork_and_keeps_process_titles() -> None:
    """The titles matter: operators and the default scenario find the worker's main process
    by "celeryd: " (setproctitle stopped working after importing xgboost, until set up first)."""
    names = DEFAULTS["airflow_worker_preload_modules"]
    proc = subprocess.run([sys.executable, "-c", FORKED, str(MODULE_FILE), json.dumps(names)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["failed"] == {} and result["loaded"] == names
    assert result["child_status"] == 0
    assert result["title"] == "[celeryd: test]"
