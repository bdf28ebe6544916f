"""Tuning studies: the search space, the trial list, the best trial (standard library only).

A tuning DAG (``<dag_id>_tuning``, built by :func:`mlops_training.dag_factory.build_tuning_dag`)
takes its study as DAG params::

    {
      "search_space": {
        "learning_rate": {"low": 0.0003, "high": 0.003, "log": true},
        "hidden_units": {"low": 128, "high": 512, "step": 64},
        "batch_size": {"choices": [64, 128, 256]},
        "epochs": 2
      },
      "n_trials": 4, "seed": 42,
      "prune": true, "prune_below": null, "prune_warmup_steps": null
    }

A search-space entry is a range (``low``/``high``, optional ``log`` or ``step``), a list of
``choices``, or a plain number (a fixed value, not searched). Names and bounds are the
pipeline's hyper-parameters (``mlops_training.settings.HYPERPARAMETERS``); everything not
named keeps its value from the settings. :func:`validate_params` checks all of it and raises
:class:`TuningError` naming the key; it is the DAG's first task, so a bad space stops the run
before anything is created.

Nothing here imports NumPy, MLflow, Optuna or Airflow: the controller's tests run it, and the
DAG factory reads :func:`default_params` at parse time. Optuna (on the worker) samples the
trials (``mlops_training.study``); :func:`build_trials` turns its answers into the list the
trial tasks are mapped over, and :func:`pick_best` reads their results back.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops_training.registry import BY_KEY
from mlops_training.settings import HP, HYPERPARAMETERS, get_settings

# Params a tuning DAG takes; anything else in a trigger's conf is refused by name.
PARAM_KEYS: tuple[str, ...] = (
    "search_space", "n_trials", "seed", "prune", "prune_below", "prune_warmup_steps",
)
DEFAULT_TRIALS = 4
# One study's budget: mapped tasks beyond this would crowd the scheduler and the worker slots
# for hours on this class of host; a bigger search belongs in several studies.
MAX_TRIALS = 64
# Changing it changes the validation split: trials' accuracies would not compare.
UNSEARCHABLE = frozenset({"validation_size"})
_SPEC_KEYS = frozenset({"low", "high", "log", "step", "choices"})

# Trial states a trial task reports (the names of Optuna's TrialState).
COMPLETE = "COMPLETE"
PRUNED = "PRUNED"


class TuningError(ValueError):
    """The study's params are not acceptable, or no trial produced a model; the message names the key."""


@dataclass(frozen=True)
class Dimension:
    """One searched hyper-parameter: an int or float range (``log`` or ``step``) or explicit choices."""

    name: str
    kind: str  # "int" | "float" | "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[int | float, ...] | None = None

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a value this dimension can take."""
        if self.choices is not None:
            return value in self.choices
        if not _is_number(value) or (self.kind == "int" and not isinstance(value, int)):
            return False
        return self.low <= value <= self.high


@dataclass(frozen=True)
class StudySpec:
    """A validated study: what is searched, what is fixed, the budget and the pruning rule."""

    pipeline: str
    dimensions: tuple[Dimension, ...]
    fixed: Mapping[str, int | float]  # every hyper-parameter that is not searched
    n_trials: int
    seed: int
    prune: bool
    prune_below: float  # validation accuracy a trial must reach by its warm-up step
    prune_warmup_steps: int | None  # None: half the trial's epochs/rounds
    gate: float
    steps_param: str  # epochs or num_boost_round
    searched: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as it travels through XCom."""
        out = asdict(self)
        out["dimensions"] = [{**asdict(d), "choices": list(d.choices) if d.choices is not None else None}
                             for d in self.dimensions]
        out["fixed"] = dict(self.fixed)
        out["searched"] = list(self.searched)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> StudySpec:
        dims = tuple(Dimension(**{**d, "choices": tuple(d["choices"]) if d.get("choices") is not None else None})
                     for d in raw["dimensions"])
        return cls(**{**raw, "dimensions": dims, "fixed": dict(raw["fixed"]), "searched": tuple(raw["searched"])})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------- defaults

def _clip(value: float, hp: HP, integer: bool) -> int | float:
    """Into the hyper-parameter's range; floats to 3 significant digits (what a person would type)."""
    value = min(max(value if integer else float(f"{value:.3g}"), hp.low), hp.high)
    return round(value) if integer else value


def _around(hp: HP, default: float, down: float, up: float, log: bool, integer: bool) -> dict[str, Any]:
    low, high = _clip(default / down, hp, integer), _clip(default * up, hp, integer)
    return {"low": low, "high": high, **({"log": True} if log else {})}


def default_search_space(key: str) -> dict[str, Any]:
    """The space a study searches when the trigger names none: around the settings in force.

    Learning rate ÷3…×3 (log), widths ÷2…×2, dropout 0…0.5, tree depth and leaves around their
    values, feature sampling 0.3…0.9; epochs and boosting rounds stay as set (a study's cost is
    its budget times one training, not more).
    """
    hp_values = get_settings(key).hyperparameters
    spec = HYPERPARAMETERS[key]
    space: dict[str, Any] = {}
    for name, value in hp_values.items():
        hp = spec[name]
        if name == "learning_rate":
            space[name] = _around(hp, value, 3, 3, log=True, integer=False)
        elif name in {"hidden_units", "dense_units", "conv1_filters", "conv2_filters", "num_leaves"}:
            space[name] = _around(hp, value, 2, 2, log=True, integer=True)
        elif name == "dropout":
            space[name] = {"low": 0.0, "high": 0.5}
        elif name == "max_depth":
            space[name] = {"low": int(_clip(value - 2, hp, True)), "high": int(_clip(value + 2, hp, True))}
        elif name in {"feature_fraction", "colsample_bytree"}:
            space[name] = {"low": 0.3, "high": 0.9}
    return space


def default_params(key: str) -> dict[str, Any]:
    """The params a tuning DAG shows in its trigger form: the default space and a budget of 4."""
    return {
        "search_space": default_search_space(key), "n_trials": DEFAULT_TRIALS, "seed": get_settings(key).seed,
        "prune": True, "prune_below": None, "prune_warmup_steps": None,
    }


# --------------------------------------------------------------------------- validation

def _fixed_value(where: str, value: Any, hp: HP) -> int | float:
    """A value for a hyper-parameter: the settings' type and range rules."""
    if isinstance(hp.default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TuningError(f"{where} must be an integer, got {value!r}")
    elif not _is_number(value):
        raise TuningError(f"{where} must be a number, got {value!r}")
    if not hp.low <= value <= hp.high:
        raise TuningError(f"{where} must be in [{hp.low:g}, {hp.high:g}], got {value!r}")
    return value if isinstance(hp.default, int) else float(value)


def _dimension(where: str, name: str, raw: Mapping[str, Any], hp: HP) -> Dimension:
    unknown = sorted(set(raw) - _SPEC_KEYS)
    if unknown:
        raise TuningError(f"{where}: unknown field(s) {unknown}; a range has low/high (log or step), "
                          "or give choices")
    integer = isinstance(hp.default, int)
    if "choices" in raw:
        extra = sorted(set(raw) - {"choices"})
        if extra:
            raise TuningError(f"{where}: choices cannot be combined with {extra}")
        choices = raw["choices"]
        if not isinstance(choices, list) or not choices:
            raise TuningError(f"{where}.choices must be a non-empty list, got {choices!r}")
        values = tuple(_fixed_value(f"{where}.choices[{i}]", v, hp) for i, v in enumerate(choices))
        if len(set(values)) != len(values):
            raise TuningError(f"{where}.choices has duplicates: {list(values)}")
        return Dimension(name, "categorical", choices=values)
    missing = [k for k in ("low", "high") if k not in raw]
    if missing:
        raise TuningError(f"{where}: missing {missing}; a range needs low and high (or give choices)")
    low = _fixed_value(f"{where}.low", raw["low"], hp)
    high = _fixed_value(f"{where}.high", raw["high"], hp)
    if low > high:
        raise TuningError(f"{where}: low {low!r} > high {high!r}")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise TuningError(f"{where}.log must be true or false, got {log!r}")
    if log and low <= 0:
        raise TuningError(f"{where}: a log range needs low > 0, got {low!r}")
    step = raw.get("step")
    if step is not None:
        if log:
            raise TuningError(f"{where}: step and log cannot be combined")
        if integer and (not isinstance(step, int) or isinstance(step, bool)):
            raise TuningError(f"{where}.step must be an integer, got {step!r}")
        if not _is_number(step) or step <= 0:
            raise TuningError(f"{where}.step must be a number > 0, got {step!r}")
        if step > high - low and high > low:
            raise TuningError(f"{where}.step {step!r} is larger than the range {low!r}..{high!r}")
    return Dimension(name, "int" if integer else "float", low=low, high=high, log=log,
                     step=step if step is None or integer else float(step))


def _int_param(name: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TuningError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise TuningError(f"{name} must be in [{low}, {high}], got {value}")
    return value


def validate_params(key: str, params: Mapping[str, Any] | None) -> StudySpec:
    """Check a tuning DAG's params and return the study; :class:`TuningError` names the bad key.

    Missing params take :func:`default_params`; ``null`` means the default too (the trigger form
    sends it for an untouched optional field).
    """
    cfg = get_settings(key)
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise TuningError(f"params must be an object, got {type(params).__name__}")
    unknown = sorted(set(params) - set(PARAM_KEYS))
    if unknown:
        raise TuningError(f"unknown param(s) {unknown}; known: {list(PARAM_KEYS)}")
    defaults = default_params(key)
    merged = {name: defaults[name] if params.get(name) is None else params[name] for name in PARAM_KEYS}

    n_trials = _int_param("n_trials", merged["n_trials"], 1, MAX_TRIALS)
    seed = _int_param("seed", merged["seed"], 0, 2**31 - 1)
    prune = merged["prune"]
    if not isinstance(prune, bool):
        raise TuningError(f"prune must be true or false, got {prune!r}")
    prune_below = merged["prune_below"]
    if prune_below is None:
        prune_below = cfg.gate
    elif not _is_number(prune_below) or not 0 <= prune_below < 1:
        raise TuningError(f"prune_below must be a validation accuracy in [0, 1), got {prune_below!r}")
    warmup = merged["prune_warmup_steps"]
    if warmup is not None:
        warmup = _int_param("prune_warmup_steps", warmup, 0, 100_000)

    space = merged["search_space"]
    if not isinstance(space, Mapping):
        raise TuningError(f"search_space must be an object of hyper-parameter → range, got {space!r}")
    spec = HYPERPARAMETERS[key]
    fixed: dict[str, int | float] = dict(cfg.hyperparameters)
    dimensions: list[Dimension] = []
    for name in space:
        where = f"search_space.{name}"
        if name not in spec:
            raise TuningError(f"{where}: unknown hyper-parameter of {key}; known: {sorted(spec)}")
        if name in UNSEARCHABLE:
            raise TuningError(f"{where}: cannot be tuned (it changes the validation split, so trials "
                              "would not compare); set it in the training settings")
        raw = space[name]
        if isinstance(raw, Mapping):
            dim = _dimension(where, name, raw, spec[name])
            dimensions.append(dim)
            fixed.pop(name)
        elif _is_number(raw):
            fixed[name] = _fixed_value(where, raw, spec[name])
        else:
            raise TuningError(f"{where} must be a range object (low/high or choices) or a fixed number, "
                              f"got {raw!r}")
    if not dimensions:
        raise TuningError("search_space: nothing to search (give at least one range or choices)")
    return StudySpec(
        pipeline=key, dimensions=tuple(dimensions), fixed=fixed, n_trials=n_trials, seed=seed,
        prune=prune, prune_below=float(prune_below), prune_warmup_steps=warmup, gate=cfg.gate,
        steps_param=BY_KEY[key].steps_param, searched=tuple(d.name for d in dimensions),
    )


# --------------------------------------------------------------------------- trials

def build_trials(spec: StudySpec, sampled: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The list the trial tasks are mapped over: one small dict per trial.

    ``sampled`` holds the searched values of each trial (what the sampler answered); each
    trial's ``params`` are the fixed hyper-parameters with those values on top.
    """
    if len(sampled) != spec.n_trials:
        raise TuningError(f"the sampler gave {len(sampled)} trial(s) for a budget of {spec.n_trials}")
    by_name = {d.name: d for d in spec.dimensions}
    trials = []
    for number, values in enumerate(sampled):
        if set(values) != set(by_name):
            raise TuningError(f"trial {number}: sampled {sorted(values)}, expected {sorted(by_name)}")
        for name, value in values.items():
            if not by_name[name].contains(value):
                raise TuningError(f"trial {number}: {name}={value!r} lies outside the search space")
        trials.append({
            "number": number,
            "params": {**spec.fixed, **values},
            "searched": {name: values[name] for name in spec.searched},
        })
    return trials


def warmup_steps(spec: StudySpec, steps: int) -> int:
    """Steps a trial trains before the pruner may stop it: as asked, or half its steps."""
    if spec.prune_warmup_steps is not None:
        return spec.prune_warmup_steps
    return max(1, steps // 2)


def trial_threads(cpus: int, concurrency: int | None) -> int:
    """Threads for one trial: the container's CPUs shared among the worker's Celery slots, so two
    trials running side by side do not each spin up every core (oversubscription)."""
    return max(1, cpus // max(1, concurrency or 1))


def pick_best(results: Sequence[Mapping[str, Any] | None], planned: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The best completed trial and a summary of the study.

    ``results`` are what the trial tasks returned (a failed or killed trial returned nothing
    and is absent or ``None``). Best: highest final validation accuracy; ties go to the faster
    trial, then the earlier. Pruned trials are counted, never chosen.
    """
    done = [dict(r) for r in results if r]
    complete = [r for r in done if r.get("state") == COMPLETE and r.get("value") is not None]
    pruned = [r for r in done if r.get("state") == PRUNED]
    summary = {
        "planned": planned, "complete": len(complete), "pruned": len(pruned),
        "failed": planned - len(done),
    }
    if not complete:
        raise TuningError(
            f"no trial completed: {planned} planned, {len(pruned)} pruned, {summary['failed']} failed or killed; "
            "nothing to evaluate (widen the space or lower prune_below)"
        )
    best = min(complete, key=lambda r: (-float(r["value"]), float(r.get("train_seconds") or 0.0), int(r["number"])))
    summary["best_number"] = best["number"]
    summary["best_value"] = best["value"]
    return best, summary


def trials_per_minute(starts_ms: Sequence[int], ends_ms: Sequence[int]) -> float | None:
    """Finished trials per minute of wall time, first start to last end (the benchmark's figure)."""
    if not starts_ms or not ends_ms:
        return None
    wall = (max(ends_ms) - min(starts_ms)) / 60000.0
    return len(ends_ms) / wall if wall > 0 else None


def overlapping(intervals: Sequence[tuple[int, int]]) -> bool:
    """Whether any two (start, end) intervals overlap: trials ran in parallel."""
    ordered = sorted(intervals)
    return any(b_start < a_end for (_, a_end), (b_start, _) in itertools.pairwise(ordered))
