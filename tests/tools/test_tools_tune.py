"""The tuning proof's judging (mlops_tools.tune): what counts as a refused bad space and as a
study that ran its trials in parallel, ended with a decision and survived a killed trial."""

from __future__ import annotations

from typing import Any

from mlops_tools import tune


def _bad(**overrides: Any) -> dict[str, Any]:
    args = {"dag_id": "pytorch_mnist_mlp_tuning", "expected": "n_trials must be in [1, 64], got 0",
            "run_state": "failed", "task_states": {"validate": "failed", "start_study": "upstream_failed",
                                                   "select_best": "failed", "finish_study": "skipped"},
            "validate_log": "... AirflowFailException: pytorch_mnist_mlp_tuning: n_trials must be in [1, 64], got 0",
            "study_runs": 0, "versions_before": 3, "versions_after": 3}
    return tune.judge_bad_space(**{**args, **overrides})


def test_a_refused_bad_space_passes() -> None:
    result = _bad()
    assert result["passed"] and result["evidence"] == "run failed at validate: n_trials must be in [1, 64], got 0"


def test_a_bad_space_that_got_further_fails_with_every_reason() -> None:
    result = _bad(run_state="success", task_states={"validate": "success", "start_study": "success"},
                  validate_log="", study_runs=1, versions_after=4)
    assert not result["passed"]
    for reason in ("run success", "validate success", "tasks ran after it: ['start_study']",
                   "does not say 'n_trials must be in [1, 64], got 0'", "1 study run(s) created", "model versions 3 → 4"):
        assert reason in result["evidence"]


def _child(trial: int, start: int, end: int, status: str = "FINISHED") -> dict[str, Any]:
    return {"trial": trial, "status": status, "start_time": start, "end_time": end}


PARENT = {"status": "FINISHED", "decision": "kept", "reason": "does not beat champion v2 (0.9710 <= 0.9744)"}


def test_a_good_study_passes_every_check() -> None:
    children = [_child(0, 0, 60_000), _child(1, 1_000, 58_000), _child(2, 60_500, 120_000),
                _child(3, 59_000, 119_000), _child(3, 2_000, 20_000, "KILLED")]
    checks = tune.judge_study("lightgbm_pipeline_tuning", 4, "success", PARENT, children, killed=3)
    assert [c["passed"] for c in checks] == [True] * 5, checks
    assert checks[-1]["evidence"] == "trial 3 runs: ['FINISHED', 'KILLED']"
    assert checks[3]["evidence"] == "kept: does not beat champion v2 (0.9710 <= 0.9744)"


def test_trials_one_after_another_are_not_parallel() -> None:
    children = [_child(n, n * 10_000, n * 10_000 + 9_000) for n in range(4)]
    checks = {c["name"]: c for c in tune.judge_study("x_tuning", 4, "success", PARENT, children, killed=None)}
    assert checks["x_tuning: trials ran in parallel"]["passed"] is False
    assert checks["x_tuning: parent run with a child run per trial"]["passed"] is True


def test_missing_trials_a_missing_decision_or_a_surviving_kill_fail() -> None:
    children = [_child(0, 0, 10), _child(1, 5, 20)]
    parent = {"status": "FAILED", "decision": None, "reason": None}
    checks = {c["name"]: c for c in tune.judge_study("x_tuning", 3, "failed", parent, children, killed=1)}
    assert [name for name, c in checks.items() if not c["passed"]] == [
        "x_tuning: DAG run succeeded", "x_tuning: parent run with a child run per trial",
        "x_tuning: champion decision logged with its reason", "x_tuning: killed trial 1 ended KILLED/FAILED, the study went on"]
    assert tune.judge_study("x_tuning", 3, "failed", None, [], killed=None)[-1]["evidence"].startswith("no parent run")
