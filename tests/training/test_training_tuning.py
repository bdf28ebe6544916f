"""The tuning controller (mlops_training.tuning, standard library only): what a study accepts,
what it refuses and how it names the key, the trial list it maps over, the best trial, and
the champion decision (mlops_training.gates)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlops_training import gates, registry, settings, tuning
from mlops_training.tuning import TuningError, validate_params

MLP_SPACE = {
    "learning_rate": {"low": 0.0003, "high": 0.003, "log": True},
    "hidden_units": {"low": 128, "high": 512, "step": 64},
    "batch_size": {"choices": [64, 128, 256]},
    "epochs": 2,
}


def _spec(key: str = "pytorch_mlp", **params: Any) -> tuning.StudySpec:
    return validate_params(key, {"search_space": MLP_SPACE, **params})


# --------------------------------------------------------------------------- accepted


def test_a_full_space_becomes_dimensions_and_fixed_values() -> None:
    spec = _spec(n_trials=6, seed=7)
    assert spec.searched == ("learning_rate", "hidden_units", "batch_size")
    lr, units, batch = spec.dimensions
    assert (lr.kind, lr.low, lr.high, lr.log, lr.step) == ("float", 0.0003, 0.003, True, None)
    assert (units.kind, units.low, units.high, units.step) == ("int", 128, 512, 64)
    assert (batch.kind, batch.choices) == ("categorical", (64, 128, 256))
    # Named as a number: fixed, not searched; everything unnamed keeps the settings' value.
    assert spec.fixed["epochs"] == 2
    assert spec.fixed["dropout"] == settings.get_settings("pytorch_mlp").hyperparameters["dropout"]
    assert "learning_rate" not in spec.fixed and "batch_size" not in spec.fixed
    assert (spec.n_trials, spec.seed, spec.steps_param) == (6, 7, "epochs")


def test_defaults_come_from_the_settings_and_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"seed": 5, "pipelines": {"lightgbm": {
        "gate": 0.9, "hyperparameters": {"learning_rate": 0.3, "num_leaves": 40}}}}))
    monkeypatch.setenv(settings.SETTINGS_FILE_ENV, str(path))
    spec = validate_params("lightgbm", {})
    assert spec.n_trials == tuning.DEFAULT_TRIALS and spec.seed == 5
    assert spec.gate == 0.9 and spec.prune_below == 0.9  # prune floor defaults to the gate in force
    assert spec.prune is True and spec.prune_warmup_steps is None
    dims = {d.name: d for d in spec.dimensions}
    # Around the settings' values, clipped to each hyper-parameter's range.
    assert (dims["learning_rate"].low, dims["learning_rate"].high, dims["learning_rate"].log) == (0.1, 0.9, True)
    assert (dims["num_leaves"].low, dims["num_leaves"].high) == (20, 80)
    assert spec.fixed["num_boost_round"] == 100 and "validation_size" not in spec.searched
    assert spec.steps_param == registry.BY_KEY["lightgbm"].steps_param == "num_boost_round"


@pytest.mark.parametrize("key", settings.PIPELINES)
def test_every_pipeline_has_a_valid_default_study(key: str) -> None:
    params = tuning.default_params(key)
    assert set(params) == set(tuning.PARAM_KEYS)
    spec = validate_params(key, params)
    assert spec.searched and spec.n_trials == tuning.DEFAULT_TRIALS
    assert spec.fixed[registry.BY_KEY[key].steps_param] == settings.get_settings(key).hyperparameters[spec.steps_param]


def test_null_params_mean_the_defaults() -> None:
    spec = validate_params("pytorch_mlp", {"search_space": None, "n_trials": None, "prune_below": None})
    assert spec.n_trials == tuning.DEFAULT_TRIALS and spec.searched
    assert spec.prune_below == settings.get_settings("pytorch_mlp").gate


def test_the_spec_survives_xcom() -> None:
    spec = _spec(prune_warmup_steps=1, prune_below=0.5)
    assert tuning.StudySpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


# --------------------------------------------------------------------------- refused, naming the key


@pytest.mark.parametrize(("params", "message"), [
    ({"search_space": {"learning_rat": {"low": 0.001, "high": 0.01}}},
     r"search_space\.learning_rat: unknown hyper-parameter of pytorch_mlp; known: \['batch_size'"),
    ({"search_space": {"learning_rate": {"low": 0.01, "high": 0.001}}},
     r"search_space\.learning_rate: low 0\.01 > high 0\.001"),
    ({"n_trials": 0}, r"n_trials must be in \[1, 64\], got 0"),
    ({"n_trials": -3}, r"n_trials must be in \[1, 64\], got -3"),
    ({"n_trials": 65}, r"n_trials must be in \[1, 64\], got 65"),
    ({"n_trials": "4"}, r"n_trials must be an integer, got '4'"),
    ({"n_trials": True}, r"n_trials must be an integer, got True"),
    ({"budget": 4}, r"unknown param\(s\) \['budget'\]; known: \['search_space', 'n_trials'"),
    ({"search_space": {"epochs": {"low": 1.5, "high": 3}}}, r"search_space\.epochs\.low must be an integer, got 1\.5"),
    ({"search_space": {"epochs": {"low": 1, "high": 900}}}, r"search_space\.epochs\.high must be in \[1, 500\], got 900"),
    ({"search_space": {"dropout": {"low": "0", "high": 0.5}}}, r"search_space\.dropout\.low must be a number, got '0'"),
    ({"search_space": {"dropout": {"low": 0.0, "high": 0.5, "log": True}}},
     r"search_space\.dropout: a log range needs low > 0, got 0\.0"),
    ({"search_space": {"dropout": {"low": 0.1, "high": 0.5, "log": "yes"}}},
     r"search_space\.dropout\.log must be true or false, got 'yes'"),
    ({"search_space": {"learning_rate": {"low": 0.001, "high": 0.01, "log": True, "step": 0.001}}},
     r"search_space\.learning_rate: step and log cannot be combined"),
    ({"search_space": {"hidden_units": {"low": 64, "high": 128, "step": 0}}},
     r"search_space\.hidden_units\.step must be a number > 0, got 0"),
    ({"search_space": {"hidden_units": {"low": 64, "high": 128, "step": 8.5}}},
     r"search_space\.hidden_units\.step must be an integer, got 8\.5"),
    ({"search_space": {"hidden_units": {"low": 64}}},
     r"search_space\.hidden_units: missing \['high'\]; a range needs low and high"),
    ({"search_space": {"hidden_units": {"low": 64, "high": 128, "lo": 1}}},
     r"search_space\.hidden_units: unknown field\(s\) \['lo'\]"),
    ({"search_space": {"batch_size": {"choices": []}}}, r"search_space\.batch_size\.choices must be a non-empty list"),
    ({"search_space": {"batch_size": {"choices": [64, 64]}}}, r"search_space\.batch_size\.choices has duplicates"),
    ({"search_space": {"batch_size": {"choices": [64, "128"]}}},
     r"search_space\.batch_size\.choices\[1\] must be an integer, got '128'"),
    ({"search_space": {"batch_size": {"choices": [64], "low": 1}}},
     r"search_space\.batch_size: choices cannot be combined with \['low'\]"),
    ({"search_space": {"validation_size": {"low": 1000, "high": 5000}}},
     r"search_space\.validation_size: cannot be tuned"),
    ({"search_space": {"dropout": "wide"}}, r"search_space\.dropout must be a range object .* got 'wide'"),
    ({"search_space": {"epochs": 3}}, r"search_space: nothing to search"),
    ({"search_space": {}}, r"search_space: nothing to search"),
    ({"search_space": [1, 2]}, r"search_space must be an object"),
    ({"seed": -1}, r"seed must be in \[0, 2147483647\], got -1"),
    ({"prune": "no"}, r"prune must be true or false, got 'no'"),
    ({"prune_below": 1.5}, r"prune_below must be a validation accuracy in \[0, 1\), got 1\.5"),
    ({"prune_warmup_steps": -1}, r"prune_warmup_steps must be in \[0, 100000\], got -1"),
])
def test_a_bad_study_is_refused_with_the_key_named(params: dict[str, Any], message: str) -> None:
    with pytest.raises(TuningError, match=message):
        validate_params("pytorch_mlp", params)


def test_params_must_be_an_object() -> None:
    with pytest.raises(TuningError, match="params must be an object, got list"):
        validate_params("xgboost", [])  # type: ignore[arg-type]


def test_a_gbm_space_is_checked_against_its_own_names() -> None:
    with pytest.raises(TuningError, match=r"search_space\.num_leaves: unknown hyper-parameter of xgboost"):
        validate_params("xgboost", {"search_space": {"num_leaves": {"low": 8, "high": 64}}})
    spec = validate_params("lightgbm", {"search_space": {"num_leaves": {"low": 8, "high": 64}}})
    assert spec.searched == ("num_leaves",)


# --------------------------------------------------------------------------- trials


def test_build_trials_puts_the_sampled_values_over_the_fixed_ones() -> None:
    spec = _spec(n_trials=2)
    sampled = [{"learning_rate": 0.001, "hidden_units": 192, "batch_size": 64},
               {"learning_rate": 0.0025, "hidden_units": 512, "batch_size": 256}]
    trials = tuning.build_trials(spec, sampled)
    assert [t["number"] for t in trials] == [0, 1]
    assert trials[1]["searched"] == sampled[1]
    assert trials[1]["params"] == {**spec.fixed, **sampled[1]}
    assert trials[0]["params"]["epochs"] == 2
    assert json.loads(json.dumps(trials)) == trials  # XCom-safe


@pytest.mark.parametrize(("sampled", "message"), [
    ([{"learning_rate": 0.001, "hidden_units": 192, "batch_size": 64}], r"gave 1 trial\(s\) for a budget of 2"),
    ([{"learning_rate": 0.001, "hidden_units": 192}] * 2, r"trial 0: sampled \['hidden_units', 'learning_rate'\]"),
    ([{"learning_rate": 0.5, "hidden_units": 192, "batch_size": 64}] * 2, r"trial 0: learning_rate=0\.5 lies outside"),
    ([{"learning_rate": 0.001, "hidden_units": 192, "batch_size": 100}] * 2, r"trial 0: batch_size=100 lies outside"),
])
def test_build_trials_refuses_what_the_space_does_not_allow(sampled: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(TuningError, match=message):
        tuning.build_trials(_spec(n_trials=2), sampled)


def test_warmup_is_half_the_steps_unless_given() -> None:
    assert tuning.warmup_steps(_spec(), 8) == 4
    assert tuning.warmup_steps(_spec(), 1) == 1
    assert tuning.warmup_steps(_spec(prune_warmup_steps=0), 8) == 0


@pytest.mark.parametrize(("cpus", "concurrency", "threads"), [(2, 2, 1), (8, 2, 4), (2, None, 2), (1, 4, 1), (6, 0, 6)])
def test_parallel_trials_share_the_cpus(cpus: int, concurrency: int | None, threads: int) -> None:
    assert tuning.trial_threads(cpus, concurrency) == threads


# --------------------------------------------------------------------------- best


def _result(number: int, value: float | None, state: str = tuning.COMPLETE, seconds: float = 10.0) -> dict[str, Any]:
    return {"number": number, "state": state, "value": value, "train_seconds": seconds, "run_id": f"r{number}"}


def test_the_best_is_the_highest_completed_accuracy() -> None:
    results = [_result(0, 0.95), _result(1, 0.99, tuning.PRUNED), _result(2, 0.97), None]
    best, summary = tuning.pick_best(results, 4)
    assert best["number"] == 2  # the pruned trial's figure is not a finished model
    assert summary == {"planned": 4, "complete": 2, "pruned": 1, "failed": 1, "best_number": 2, "best_value": 0.97}


def test_ties_go_to_the_faster_then_the_earlier_trial() -> None:
    assert tuning.pick_best([_result(0, 0.97, seconds=20), _result(1, 0.97, seconds=12)], 2)[0]["number"] == 1
    assert tuning.pick_best([_result(3, 0.97), _result(1, 0.97)], 4)[0]["number"] == 1


def test_no_completed_trial_is_an_error_that_counts_them() -> None:
    with pytest.raises(TuningError, match=r"no trial completed: 3 planned, 1 pruned, 2 failed or killed"):
        tuning.pick_best([_result(0, 0.5, tuning.PRUNED)], 3)


def test_trials_per_minute_and_overlap() -> None:
    assert tuning.trials_per_minute([0, 10_000], [30_000, 60_000]) == pytest.approx(2.0)
    assert tuning.trials_per_minute([], []) is None
    assert tuning.overlapping([(0, 10), (5, 20)]) is True
    assert tuning.overlapping([(0, 10), (10, 20), (25, 30)]) is False
    assert tuning.overlapping([(0, 100), (10, 20), (30, 40)]) is True  # one long trial beside two short ones


# --------------------------------------------------------------------------- champion decision


@pytest.mark.parametrize(("args", "expected"), [
    ((0.96, 0.95, None, None), (True, "first gated version")),
    ((0.97, 0.95, 3, 0.96), (True, "beats champion v3 (0.9700 > 0.9600)")),
    ((0.96, 0.95, 3, 0.96), (False, "does not beat champion v3 (0.9600 <= 0.9600)")),  # a tie keeps the incumbent
    ((0.955, 0.95, 3, 0.96), (False, "does not beat champion v3 (0.9550 <= 0.9600)")),
    ((0.94, 0.95, None, None), (False, "rejected: test accuracy 0.9400 does not clear the gate (> 0.9500)")),
    ((0.95, 0.95, 3, 0.90), (False, "rejected: test accuracy 0.9500 does not clear the gate (> 0.9500)")),
    ((0.97, 0.95, 3, None), (True, "beats champion v3 (its accuracy is not recorded)")),
])
def test_champion_needs_the_gate_and_a_strictly_better_accuracy(args: tuple[Any, ...], expected: tuple[bool, str]) -> None:
    assert gates.champion_decision(*args) == expected


def test_a_retried_register_keeps_its_own_champion() -> None:
    assert gates.champion_decision(0.96, 0.95, 4, 0.96, version=4) == (True, "already champion (retry)")
    assert gates.champion_decision(0.96, 0.95, 4, 0.96, version=5)[0] is False
