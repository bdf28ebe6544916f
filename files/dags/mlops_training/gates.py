"""Accuracy gates: a model that does not clear its gate is never registered.

The execution plan sets one floor per model family (``plan_gate`` in the registry,
``pipelines.json``); settings may raise a gate, never lower it. The comparison is
strict (accuracy must be *greater* than the gate), as the execution plan words it.
"""

from __future__ import annotations


class GateError(RuntimeError):
    """Raised when a model's accuracy does not clear its gate."""


def passes(accuracy: float, gate: float) -> bool:
    """Return True when ``accuracy`` is strictly greater than ``gate``."""
    return float(accuracy) > float(gate)


def check(pipeline: str, accuracy: float, gate: float) -> float:
    """Return ``accuracy`` if it clears ``gate``; raise :class:`GateError` if not.

    The message names the pipeline, the figure and the gate so that an Airflow
    task log (and the verify playbook) says exactly why a model was rejected.
    """
    if not 0.0 <= float(accuracy) <= 1.0:
        raise GateError(f"{pipeline}: accuracy {accuracy!r} is not a fraction in [0, 1]")
    if not passes(accuracy, gate):
        raise GateError(
            f"{pipeline}: test accuracy {accuracy:.4f} does not clear the gate "
            f"(must be > {gate:.4f}); the model is not registered"
        )
    return float(accuracy)


def champion_decision(accuracy: float, gate: float, champion_version: int | None,
                      champion_accuracy: float | None, version: int | None = None) -> tuple[bool, str]:
    """Whether a model version becomes ``champion``, and why, in one sentence.

    It must clear the gate *and* beat the current champion strictly (a tie keeps the
    incumbent). A champion whose accuracy is not recorded anywhere cannot be compared and is
    replaced. ``version`` equal to ``champion_version`` is a retried register task.
    """
    if not passes(accuracy, gate):
        return False, f"rejected: test accuracy {accuracy:.4f} does not clear the gate (> {gate:.4f})"
    if champion_version is None:
        return True, "first gated version"
    if version is not None and int(version) == int(champion_version):
        return True, "already champion (retry)"
    if champion_accuracy is None:
        return True, f"beats champion v{champion_version} (its accuracy is not recorded)"
    if accuracy > champion_accuracy:
        return True, f"beats champion v{champion_version} ({accuracy:.4f} > {champion_accuracy:.4f})"
    return False, f"does not beat champion v{champion_version} ({accuracy:.4f} <= {champion_accuracy:.4f})"
