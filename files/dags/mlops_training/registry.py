"""The six pipelines and the MLflow names their runs carry: what other programs rely on.

``pipelines.json`` beside this module is the one place a pipeline's names are written:
its key, DAG id, MLflow experiment, registered model, library, family, label and the
execution plan's accuracy floor (``plan_gate``). Everything else reads it:

* the DAG factory, settings and the pipeline tasks, through this module;
* the operator tools (``tools/mlops_tools``), which import this module with
  ``files/dags`` on ``sys.path`` (standard library only: no NumPy or MLflow needed);
* the ``training_dags`` role, with ``lookup('ansible.builtin.file') | from_json``.

A pipeline's DAG file is ``<dag_id>_dag.py`` (the execution plan names them; quarantine is per file).
A malformed registry raises :class:`RegistryError` at import, which Airflow shows as an
import error of every DAG file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

REGISTRY_FILE = Path(__file__).with_name("pipelines.json")

# What a family decides: the unit of one learning-curve step and the hyper-parameter
# that sets how many there are. Tree models (gbm) also train on a user's table.
FAMILIES: dict[str, tuple[str, str]] = {
    "gbm": ("boosting round", "num_boost_round"),
    "mlp": ("epoch", "epochs"),
    "cnn": ("epoch", "epochs"),
}


# Tuning DAG ids and experiments are the training ones with this suffix (not written in the registry).
TUNING_SUFFIX = "_tuning"


class RegistryError(ValueError):
    """pipelines.json is not a valid registry; the message names the file and the entry."""


@dataclass(frozen=True)
class Pipeline:
    key: str  # settings key and value of the run tag mlops.pipeline
    dag_id: str
    experiment: str
    registered_model: str
    library: str  # xgboost | lightgbm | tensorflow | pytorch
    family: str  # gbm | mlp | cnn
    label: str  # human name in tables and plots
    plan_gate: float  # the execution plan's floor: settings may raise a gate, never lower it

    @property
    def tags(self) -> tuple[str, ...]:
        """The DAG's tags."""
        return ("mlops", "mnist", self.library, self.family)

    @property
    def tabular(self) -> bool:
        """Whether the DAG takes ``data_path``/``label_column`` params (a user's table)."""
        return self.family == "gbm"

    @property
    def step_unit(self) -> str:
        """What one step of the learning curve is."""
        return FAMILIES[self.family][0]

    @property
    def steps_param(self) -> str:
        """The hyper-parameter that sets the number of steps."""
        return FAMILIES[self.family][1]

    @property
    def tuning_dag_id(self) -> str:
        """The pipeline's tuning DAG (file ``<tuning_dag_id>_dag.py``): sorts next to its training DAG."""
        return f"{self.dag_id}{TUNING_SUFFIX}"

    @property
    def tuning_experiment(self) -> str:
        """MLflow experiment of the pipeline's tuning studies: apart from the training runs, so the
        training DAG's stale-run sweep and the report's "latest evaluated run" never see a study."""
        return f"{self.experiment}{TUNING_SUFFIX}"


_FIELDS = tuple(f.name for f in fields(Pipeline) if f.name != "key")
_TEXT_FIELDS = tuple(name for name in _FIELDS if name != "plan_gate")
_UNIQUE = ("dag_id", "experiment", "registered_model")


def _pipeline(where: str, key: str, raw: Any) -> Pipeline:
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: must be an object, got {raw!r}")
    missing, unknown = sorted(set(_FIELDS) - set(raw)), sorted(set(raw) - set(_FIELDS))
    if missing or unknown:
        raise RegistryError(f"{where}: missing field(s) {missing}, unknown field(s) {unknown}; fields: {list(_FIELDS)}")
    for name in _TEXT_FIELDS:
        if not isinstance(raw[name], str) or not raw[name]:
            raise RegistryError(f"{where}.{name} must be a non-empty string, got {raw[name]!r}")
    if raw["family"] not in FAMILIES:
        raise RegistryError(f"{where}.family must be one of {sorted(FAMILIES)}, got {raw['family']!r}")
    gate = raw["plan_gate"]
    if isinstance(gate, bool) or not isinstance(gate, (int, float)) or not 0 <= gate < 1:
        raise RegistryError(f"{where}.plan_gate must be a number in [0, 1), got {gate!r}")
    return Pipeline(key=key, **{**raw, "plan_gate": float(gate)})


def parse(document: Any, source: str = "pipelines.json") -> dict[str, Pipeline]:
    """Validate a registry document (the parsed JSON); keys keep their order."""
    if not isinstance(document, dict) or not document:
        raise RegistryError(f"{source}: must be a non-empty object of pipeline key → entry")
    out = {key: _pipeline(f"{source}: {key}", key, raw) for key, raw in document.items()}
    for name in _UNIQUE:
        seen: dict[str, str] = {}
        for p in out.values():
            value = getattr(p, name)
            if value in seen:
                raise RegistryError(f"{source}: {p.key} and {seen[value]} share the {name} {value!r}")
            seen[value] = p.key
    return out


def load(path: str | os.PathLike[str] = REGISTRY_FILE) -> dict[str, Pipeline]:
    """Read and validate a registry file."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{path}: cannot be read as JSON: {exc}") from exc
    return parse(document, str(path))


BY_KEY: dict[str, Pipeline] = load()
PIPELINES: tuple[Pipeline, ...] = tuple(BY_KEY.values())
KEYS: tuple[str, ...] = tuple(BY_KEY)
DAG_IDS: tuple[str, ...] = tuple(p.dag_id for p in PIPELINES)
TUNING_DAG_IDS: tuple[str, ...] = tuple(p.tuning_dag_id for p in PIPELINES)

# MLflow names: mlops_training.tracking and .pipeline write them; the report and status
# tools, the verify playbook and the benchmarks read them.
CHAMPION_ALIAS = "champion"
TAG_PIPELINE = "mlops.pipeline"
TAG_DAG_ID = "mlops.dag_id"
TAG_DAG_RUN_ID = "mlops.dag_run_id"
TAG_TRY_NUMBER = "mlops.try_number"
TAG_DATASET = "mlops.dataset"
TAG_DATA_SHA256 = "mlops.data_sha256"
TAG_MODEL_URI = "mlops.model_uri"
TAG_GATE = "mlops.gate"
TAG_GATE_PASSED = "mlops.gate_passed"
TAG_REGISTERED_MODEL = "mlops.registered_model"
TAG_REGISTERED_VERSION = "mlops.registered_version"
TAG_CHAMPION = "mlops.champion"
TAG_END_REASON = "mlops.end_reason"
TAG_ATTEMPT = "mlops.attempt"  # one value per training_run call
VERSION_TAG_PREFIX = "mlops.version."
# Tuning studies: a parent run per study (TAG_STUDY_ROLE "study"), a child run per trial
# ("trial", with mlflow.parentRunId, TAG_STUDY = the parent's run id and TAG_TRIAL = its number).
TAG_STUDY_ROLE = "mlops.study_role"
TAG_STUDY = "mlops.study"
TAG_TRIAL = "mlops.trial"
TAG_TRIAL_STATE = "mlops.trial_state"  # COMPLETE | PRUNED (task ended) — a killed trial's run is KILLED
TAG_PRUNED_AT = "mlops.pruned_at_step"
TAG_BEST_TRIAL = "mlops.best_trial"
TAG_BEST_RUN_ID = "mlops.best_run_id"
TAG_CHAMPION_DECISION = "mlops.champion_decision"  # promoted | kept | rejected | none
TAG_CHAMPION_REASON = "mlops.champion_reason"
TAG_PARENT_RUN_ID = "mlflow.parentRunId"  # MLflow's own: nests child runs in the UI
METRIC_TRIAL_SECONDS = "trial_seconds"
METRIC_TRIALS_PER_MINUTE = "trials_per_minute"
# Learning curves: one value per epoch or boosting round, step = 1..n.
CURVE_METRICS: tuple[str, ...] = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
METRIC_TEST_ACCURACY = "test_accuracy"
METRIC_TRAIN_SECONDS = "train_seconds"
METRIC_EVALUATE_SECONDS = "evaluate_seconds"
