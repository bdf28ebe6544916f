"""Accuracy gates: a model that does not clear its gate is never registered.

The seed plan sets one floor per model family (``seed_gate`` in the registry,
``pipelines.json``); settings may raise a gate, never lower it. The comparison is
strict (accuracy must be *greater* than the gate), as the seed plan words it.
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
