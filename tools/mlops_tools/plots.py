"""Report figures, drawn with matplotlib's Agg canvas (no display, no pyplot global state).

Each ``*_figure`` function returns the :class:`~matplotlib.figure.Figure` it built, so
tests can inspect titles, axis labels and legends; :func:`save` writes it as PNG.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot; the report never needs a display

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mlops_tools.pipelines import BY_KEY

FAMILY_COLOURS = {"gbm": "#1f77b4", "mlp": "#2ca02c", "cnn": "#d62728"}
LIBRARY_MARKERS = {"xgboost": "o", "lightgbm": "s", "tensorflow": "^", "pytorch": "D"}


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, format="png")
    return path


def learning_curves_figure(entry: Mapping[str, Any]) -> Figure:
    """Loss and accuracy per epoch/boosting round (train and validation) of one pipeline's run."""
    pipeline = BY_KEY[entry["pipeline"]]
    unit = pipeline.step_unit
    curves = entry.get("curves", {})
    figure = _new_figure(10, 4)
    loss_ax, acc_ax = figure.subplots(1, 2)
    for ax, kind, ylabel in (
        (loss_ax, "loss", "loss (cross-entropy, nats)"),
        (acc_ax, "accuracy", "accuracy (fraction correct)"),
    ):
        for split, style in (("train", "-"), ("val", "--")):
            points = curves.get(f"{split}_{kind}", [])
            if points:
                steps, values = zip(*points)
                label = f"{'training' if split == 'train' else 'validation'} {kind}"
                ax.plot(steps, values, style, marker="." if len(points) <= 30 else None, label=label)
        ax.set_xlabel(f"{unit} (step)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{kind.capitalize()} per {unit}")
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend(loc="best")
        else:
            ax.text(0.5, 0.5, "no curve logged", ha="center", va="center", transform=ax.transAxes)
    run = (entry.get("run_id") or "")[:8]
    figure.suptitle(f"{pipeline.label} — learning curves (run {run}, {len(curves.get('val_accuracy', []))} {unit}s)")
    return figure


def validation_overview_figure(entries: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Validation accuracy of every pipeline: boosting rounds and epochs side by side."""
    figure = _new_figure(11, 4.2)
    gbm_ax, nn_ax = figure.subplots(1, 2)
    for key, entry in entries.items():
        points = entry.get("curves", {}).get("val_accuracy", [])
        if not points:
            continue
        pipeline = BY_KEY[key]
        ax = gbm_ax if pipeline.family == "gbm" else nn_ax
        steps, values = zip(*points)
        ax.plot(steps, values, marker=LIBRARY_MARKERS[pipeline.library] if len(points) <= 30 else None,
                color=FAMILY_COLOURS[pipeline.family] if pipeline.family == "gbm" else None,
                label=pipeline.label)
    for ax, unit, title in ((gbm_ax, "boosting round", "Gradient boosting"), (nn_ax, "epoch", "Neural networks")):
        ax.set_xlabel(f"{unit} (step)")
        ax.set_ylabel("validation accuracy (fraction correct)")
        ax.set_title(f"{title}: validation accuracy per {unit}")
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend(loc="lower right")
    figure.suptitle("Validation accuracy during training")
    return figure


def accuracy_vs_time_figure(entries: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Test accuracy against training time, one labelled point per pipeline, gates as dashed lines."""
    figure = _new_figure(9, 5.5)
    ax = figure.subplots()
    gates: dict[float, list[str]] = {}
    shown: list[float] = []
    for key, entry in entries.items():
        pipeline = BY_KEY[key]
        gate = entry.get("gate")
        if gate is not None:
            gates.setdefault(float(gate), []).append(pipeline.label)
        accuracy, seconds = entry.get("test_accuracy"), entry.get("train_seconds")
        if accuracy is None or seconds is None:
            continue
        passed = entry.get("gate_passed")
        ax.scatter([seconds], [accuracy], s=70, color=FAMILY_COLOURS[pipeline.family],
                   marker=LIBRARY_MARKERS[pipeline.library], edgecolors="black" if passed else "red",
                   linewidths=0.8 if passed else 2.0, zorder=3,
                   label=f"{pipeline.label} ({'pass' if passed else 'FAIL'})")
        ax.annotate(f"{pipeline.label}\n{accuracy:.4f}, {seconds:.1f} s", (seconds, accuracy),
                    textcoords="offset points", xytext=(6, -4), fontsize=8)
        shown.append(accuracy)
    for gate, labels in sorted(gates.items()):
        ax.axhline(gate, linestyle="--", linewidth=1, color="grey", zorder=1)
        ax.annotate(f"gate {gate:g}: {', '.join(labels)}", (0.005, gate), xycoords=("axes fraction", "data"),
                    textcoords="offset points", xytext=(0, 2), fontsize=7, color="dimgrey")
    low = min([*shown, *gates]) if (shown or gates) else 0.0
    ax.set_ylim(max(0.0, low - 0.01), 1.0)
    ax.set_xlim(left=0)
    ax.set_xlabel("training time (seconds, wall clock)")
    ax.set_ylabel("test accuracy (fraction correct, held-out test set)")
    ax.set_title("Test accuracy vs training time (dashed: quality gates, accuracy must exceed)")
    ax.grid(True, alpha=0.3)
    if shown:
        ax.legend(loc="lower right", fontsize=8)
    return figure
