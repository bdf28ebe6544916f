"""Celery settings of the Airflow worker: Airflow's own, and the task libraries imported once.

The worker runs every task in a process forked from its pool, and the Task SDK's supervisor
forks once more for the task itself: nothing is imported afresh but what the task imports.
A training task imported MLflow and its ML library each time (TensorFlow with MLflow's flavor
took 3-4 s here, PyTorch's 2-3 s), and each DAG run has three such tasks. Modules imported by
the worker's main process before it starts its pool are already in every task process.

The airflow role mounts this file as ``$AIRFLOW_HOME/config/mlops_celery_config.py`` (Airflow
puts that directory on ``sys.path``) in the worker only, and points ``[celery]
celery_config_options`` at ``CELERY_CONFIG``. The modules come from ``MLOPS_WORKER_PRELOAD``
(comma-separated; role variable ``airflow_worker_preload_modules``): libraries of the image
only, never the DAG package, which a release replaces while the worker keeps running.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import time

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

PRELOAD_ENV = "MLOPS_WORKER_PRELOAD"

CELERY_CONFIG = DEFAULT_CELERY_CONFIG

log = logging.getLogger(__name__)


def modules_to_preload(value: str | None) -> list[str]:
    """The module names of a comma-separated list, blanks dropped, order kept."""
    return [name.strip() for name in (value or "").split(",") if name.strip()]


def preload(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """Import ``names``; return the ones imported and, per failed name, why it failed.

    A failure does not stop the worker: the task that needs the module imports it itself,
    and fails there with the full error if the image lacks it.
    """
    loaded: list[str] = []
    failed: dict[str, str] = {}
    # Celery names its processes ("[celeryd: …]") with setproctitle, which on Linux sets
    # itself up on its first call from the environment as the process started with it;
    # after a library has changed the environment (importing xgboost does), every later
    # title silently stays the command line. That first call comes before the imports.
    try:
        import setproctitle
    except ImportError:
        pass
    else:
        setproctitle.getproctitle()
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any import error: report it, keep the worker
            failed[name] = f"{type(exc).__name__}: {exc}"
        else:
            loaded.append(name)
    # Objects that exist now are never collected: the forked task processes' collections
    # then do not touch (and copy) the pages the preloaded modules live on.
    gc.freeze()
    return loaded, failed


@worker_init.connect
def _preload_at_worker_start(**_: object) -> None:
    # worker_init: the main process, after the app is configured, before the pool forks.
    started = time.perf_counter()
    loaded, failed = preload(modules_to_preload(os.environ.get(PRELOAD_ENV)))
    log.info("mlops: preloaded %d module(s) for the tasks in %.1f s: %s",
                len(loaded), time.perf_counter() - started, ", ".join(loaded) or "none")
    for name, reason in failed.items():
        log.error("mlops: could not preload %s (%s); the tasks import it themselves", name, reason)
