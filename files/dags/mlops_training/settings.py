"""Per-pipeline settings: gates, retries, timeouts, Celery queue and hyper-parameters.

Names and plan floors come from the registry (``mlops_training.registry``,
``pipelines.json``) and are not settings. Defaults live in this module. The Ansible role ``training_dags`` may render
``settings.json`` next to it (or point ``MLOPS_SETTINGS_FILE`` elsewhere) to
override them. DAG files read these settings at parse time, so loading is one
small JSON read with no heavy imports; a bad value raises :class:`SettingsError`,
which surfaces as a DAG import error instead of a silently wrong run.

JSON shape (every key optional)::

    {
      "seed": 42,
      "num_threads": 0,
      "pipelines": {
        "xgboost": {
          "gate": 0.9,
          "retries": 2,
          "retry_delay_seconds": 30,
          "execution_timeout_minutes": 20,
          "queue": "heavy",
          "hyperparameters": {"num_boost_round": 80}
        }
      }
    }

``queue`` sends every task of the pipeline's DAGs (training and tuning) to that Celery
queue; without it they go to Airflow's default queue (``[operators] default_queue``).
Which workers serve which queue is the airflow role's business; site.yml's preflight
refuses a queue that no worker serves.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mlops_training.registry import BY_KEY, KEYS

SETTINGS_FILE_ENV = "MLOPS_SETTINGS_FILE"
DEFAULT_SETTINGS_FILE = Path(__file__).with_name("settings.json")


class SettingsError(ValueError):
    """A settings value (default or from settings.json) is not acceptable."""


@dataclass(frozen=True)
class HP:
    """One hyper-parameter: its default and the closed range it must lie in."""

    default: int | float
    low: float
    high: float


# Defaults tuned on the full MNIST with 2 CPU cores (see bench/train_plain.py):
# each clears its gate with margin and trains in well under two minutes.
# The TensorFlow and PyTorch twins share architecture and ranges: the comparison is of frameworks.
_MLP: dict[str, HP] = {
    "epochs": HP(8, 1, 500),
    "batch_size": HP(128, 1, 65536),
    "hidden_units": HP(256, 1, 8192),
    "dropout": HP(0.2, 0.0, 0.9),
    "learning_rate": HP(0.001, 1e-6, 1.0),
    "validation_size": HP(5000, 1, 1_000_000),
}
_CNN: dict[str, HP] = {
    "epochs": HP(4, 1, 500),
    "batch_size": HP(128, 1, 65536),
    "conv1_filters": HP(16, 1, 1024),
    "conv2_filters": HP(32, 1, 1024),
    "dense_units": HP(128, 1, 8192),
    "dropout": HP(0.3, 0.0, 0.9),
    "learning_rate": HP(0.002, 1e-6, 1.0),
    "validation_size": HP(5000, 1, 1_000_000),
}

HYPERPARAMETERS: dict[str, dict[str, HP]] = {
    "xgboost": {
        "num_boost_round": HP(60, 1, 5000),
        "learning_rate": HP(0.3, 1e-4, 1.0),
        "max_depth": HP(6, 1, 32),
        "max_bin": HP(32, 2, 1024),
        "min_child_weight": HP(1.0, 0.0, 1e6),
        "subsample": HP(1.0, 0.1, 1.0),
        "colsample_bytree": HP(0.5, 0.05, 1.0),
        "validation_size": HP(5000, 1, 1_000_000),
    },
    "lightgbm": {
        "num_boost_round": HP(100, 1, 5000),
        "learning_rate": HP(0.15, 1e-4, 1.0),
        "num_leaves": HP(31, 2, 4096),
        "max_bin": HP(31, 2, 1024),
        "min_data_in_leaf": HP(20, 1, 100_000),
        "feature_fraction": HP(0.5, 0.05, 1.0),
        "validation_size": HP(5000, 1, 1_000_000),
    },
    "tensorflow_mlp": _MLP,
    "tensorflow_cnn": _CNN,
    "pytorch_mlp": _MLP,
    # One epoch and a higher rate more than Keras' twin: PyTorch's default init and
    # Adam epsilon left it at 0.989 after 4 epochs at 0.002; 5 at 0.003 reach 0.990+.
    "pytorch_cnn": {**_CNN, "epochs": HP(5, 1, 500), "learning_rate": HP(0.003, 1e-6, 1.0)},
}

# Run-control defaults. The whole DAG takes about two minutes on 2 cores; the
# timeouts leave room for a loaded host without letting a hung task sit for hours.
DEFAULT_RETRIES = 1
DEFAULT_RETRY_DELAY_SECONDS = 30
DEFAULT_TIMEOUT_MINUTES: dict[str, float] = {"gbm": 20, "mlp": 15, "cnn": 20}  # by family
DEFAULT_SEED = 42

PIPELINES: tuple[str, ...] = KEYS
# A pipeline added to the registry without hyper-parameters here would fail at first use;
# fail at parse time instead, naming both sides.
if set(HYPERPARAMETERS) != set(KEYS):
    raise SettingsError(
        f"HYPERPARAMETERS covers {sorted(HYPERPARAMETERS)} but pipelines.json has {sorted(KEYS)}"
    )

_PIPELINE_FIELDS = {
    "gate", "retries", "retry_delay_seconds", "execution_timeout_minutes", "queue", "hyperparameters",
}
# A Celery queue name, as the airflow role accepts it for its workers (no comma: the worker
# takes its queues as one comma-separated argument).
QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TOP_FIELDS = {"seed", "num_threads", "pipelines"}


@dataclass(frozen=True)
class PipelineSettings:
    """Everything one DAG needs to know about its pipeline."""

    key: str
    dag_id: str
    experiment_name: str
    registered_model_name: str
    library: str
    tags: tuple[str, ...]
    gate: float
    plan_floor: float
    retries: int
    retry_delay_seconds: int
    execution_timeout_minutes: float
    seed: int
    num_threads: int  # 0 means "use what the container's CPU quota allows"
    hyperparameters: Mapping[str, int | float] = field(default_factory=dict)
    queue: str | None = None  # None: Airflow's default queue


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(where: str, value: Any, low: int, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SettingsError(f"{where} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise SettingsError(f"{where} must be {bound}, got {value}")
    return value


def _hyperparameters(key: str, overrides: Any) -> dict[str, int | float]:
    if not isinstance(overrides, dict):
        raise SettingsError(f"pipelines.{key}.hyperparameters must be an object, got {overrides!r}")
    spec = HYPERPARAMETERS[key]
    unknown = sorted(set(overrides) - set(spec))
    if unknown:
        raise SettingsError(
            f"pipelines.{key}.hyperparameters: unknown key(s) {unknown}; known: {sorted(spec)}"
        )
    merged: dict[str, int | float] = {name: hp.default for name, hp in spec.items()}
    for name, value in overrides.items():
        hp = spec[name]
        where = f"pipelines.{key}.hyperparameters.{name}"
        if isinstance(hp.default, int):
            # Counts (rounds, epochs, units) must stay integers: 2.5 epochs is a typo.
            merged[name] = _int(where, value, int(hp.low), int(hp.high))
            continue
        if not _is_number(value):
            raise SettingsError(f"{where} must be a number, got {value!r}")
        if not hp.low <= value <= hp.high:
            raise SettingsError(f"{where} must be in [{hp.low}, {hp.high}], got {value}")
        merged[name] = float(value)
    return merged


def _pipeline(key: str, raw: Any, seed: int, num_threads: int) -> PipelineSettings:
    if not isinstance(raw, dict):
        raise SettingsError(f"pipelines.{key} must be an object, got {raw!r}")
    unknown = sorted(set(raw) - _PIPELINE_FIELDS)
    if unknown:
        raise SettingsError(f"pipelines.{key}: unknown field(s) {unknown}; known: {sorted(_PIPELINE_FIELDS)}")
    ident = BY_KEY[key]
    floor = ident.plan_gate
    gate = raw.get("gate", floor)
    if not _is_number(gate):
        raise SettingsError(f"pipelines.{key}.gate must be a number, got {gate!r}")
    if gate < floor:
        raise SettingsError(
            f"pipelines.{key}.gate {gate} is below the plan's floor {floor}; gates may only be raised"
        )
    if gate >= 1.0:
        raise SettingsError(f"pipelines.{key}.gate must be < 1.0 (accuracy must exceed it), got {gate}")
    timeout = raw.get("execution_timeout_minutes", DEFAULT_TIMEOUT_MINUTES[ident.family])
    if not _is_number(timeout) or timeout <= 0:
        raise SettingsError(
            f"pipelines.{key}.execution_timeout_minutes must be a number > 0, got {timeout!r}"
        )
    queue = raw.get("queue")
    if queue is not None and not (isinstance(queue, str) and QUEUE_NAME.fullmatch(queue)):
        raise SettingsError(
            f"pipelines.{key}.queue must be a Celery queue name (1-64 letters, digits, '_', '-' or '.'), "
            f"got {queue!r}"
        )
    return PipelineSettings(
        key=key,
        dag_id=ident.dag_id,
        experiment_name=ident.experiment,
        registered_model_name=ident.registered_model,
        library=ident.library,
        tags=ident.tags,
        gate=float(gate),
        plan_floor=floor,
        retries=_int(f"pipelines.{key}.retries", raw.get("retries", DEFAULT_RETRIES), 0, 20),
        retry_delay_seconds=_int(
            f"pipelines.{key}.retry_delay_seconds",
            raw.get("retry_delay_seconds", DEFAULT_RETRY_DELAY_SECONDS), 0, 86400,
        ),
        execution_timeout_minutes=float(timeout),
        seed=seed,
        num_threads=num_threads,
        hyperparameters=MappingProxyType(_hyperparameters(key, raw.get("hyperparameters", {}))),
        queue=queue,
    )


def parse_settings(document: Any) -> dict[str, PipelineSettings]:
    """Validate a settings document (the parsed JSON) and merge it over the defaults."""
    if not isinstance(document, dict):
        raise SettingsError(f"settings must be a JSON object, got {type(document).__name__}")
    unknown = sorted(set(document) - _TOP_FIELDS)
    if unknown:
        raise SettingsError(f"unknown top-level field(s) {unknown}; known: {sorted(_TOP_FIELDS)}")
    seed = _int("seed", document.get("seed", DEFAULT_SEED), 0, 2**31 - 1)
    num_threads = _int("num_threads", document.get("num_threads", 0), 0, 1024)
    pipelines = document.get("pipelines", {})
    if not isinstance(pipelines, dict):
        raise SettingsError(f"pipelines must be an object, got {pipelines!r}")
    unknown = sorted(set(pipelines) - set(PIPELINES))
    if unknown:
        raise SettingsError(f"pipelines: unknown model key(s) {unknown}; known: {list(PIPELINES)}")
    return {key: _pipeline(key, pipelines.get(key, {}), seed, num_threads) for key in PIPELINES}


def settings_path() -> Path:
    """The settings file in force: ``$MLOPS_SETTINGS_FILE`` or ``settings.json`` beside this module."""
    override = os.environ.get(SETTINGS_FILE_ENV)
    return Path(override) if override else DEFAULT_SETTINGS_FILE


def load_settings(path: str | os.PathLike[str] | None = None) -> dict[str, PipelineSettings]:
    """Load and validate all pipelines' settings; a missing file means defaults only.

    An explicitly named file (argument or environment) that is missing is an
    error: silently falling back to defaults would hide a broken deployment.
    """
    explicit = path is not None or bool(os.environ.get(SETTINGS_FILE_ENV))
    target = Path(path) if path is not None else settings_path()
    if not target.exists():
        if explicit:
            raise SettingsError(f"settings file {target} does not exist")
        return parse_settings({})
    try:
        document = json.loads(target.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SettingsError(f"settings file {target} is not valid JSON: {exc}") from exc
    try:
        return parse_settings(document)
    except SettingsError as exc:
        raise SettingsError(f"{target}: {exc}") from None


def get_settings(key: str, path: str | os.PathLike[str] | None = None) -> PipelineSettings:
    """Settings of one pipeline (``xgboost``, ``lightgbm``, ``tensorflow_mlp``, ...)."""
    if key not in BY_KEY:
        raise SettingsError(f"unknown pipeline {key!r}; known: {list(PIPELINES)}")
    return load_settings(path)[key]
