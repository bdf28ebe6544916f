"""Accuracy gates: strictly greater than the gate passes; anything else is rejected."""

from __future__ import annotations

import pytest
from mlops_training import gates, registry


def test_plan_floors_are_the_execution_plans() -> None:
    assert {key: p.plan_gate for key, p in registry.BY_KEY.items()} == {
        "xgboost": 0.85, "lightgbm": 0.87,
        "tensorflow_mlp": 0.95, "pytorch_mlp": 0.95,
        "tensorflow_cnn": 0.98, "pytorch_cnn": 0.98,
    }


def test_accuracy_above_gate_passes() -> None:
    assert gates.passes(0.9801, 0.98)
    assert gates.check("pytorch_cnn", 0.9801, 0.98) == pytest.approx(0.9801)


def test_accuracy_below_gate_is_rejected_with_figures_in_message() -> None:
    assert not gates.passes(0.84, 0.85)
    with pytest.raises(gates.GateError, match=r"xgboost: test accuracy 0\.8400 .* > 0\.8500.*not registered"):
        gates.check("xgboost", 0.84, 0.85)


def test_accuracy_equal_to_gate_is_rejected() -> None:
    # The execution plan says "> 0.87": equality does not clear the gate.
    assert not gates.passes(0.87, 0.87)
    with pytest.raises(gates.GateError):
        gates.check("lightgbm", 0.87, 0.87)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_accuracy_outside_zero_one_is_rejected(bad: float) -> None:
    with pytest.raises(gates.GateError):
        gates.check("xgboost", bad, 0.85)
