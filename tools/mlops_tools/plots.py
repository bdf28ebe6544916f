"""Report figures, drawn with matplotlib's Agg canvas (no display, no pyplot global state).

Each ``*_figure`` function returns the :class:`~matplotlib.figure.Figure` it built, so
tests can inspect titles, axis labels and legends; :func:`save` writes it as PNG.

Every pipeline has one fixed style (:data:`STYLES`: colour, marker, line style) used in
every figure, so a pipeline looks the same everywhere. Colours are the Okabe-Ito
colour-blind-safe palette; markers and line styles all differ as well, so the figures
still read when printed in greyscale. Artists drawn for a pipeline carry its key as
``gid``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot; the report never needs a display

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from mlops_tools.pipelines import BY_KEY


@dataclass(frozen=True)
class Style:
    colour: str
    marker: str
    linestyle: str


# One entry per pipeline; (marker, linestyle) pairs and colours are all distinct.
STYLES: dict[str, Style] = {
    "xgboost": Style("#0072B2", "o", "-"),  # blue, circle, solid
    "lightgbm": Style("#E69F00", "s", "--"),  # orange, square, dashed
    "tensorflow_mlp": Style("#009E73", "^", "-."),  # bluish green, triangle up, dash-dot
    "tensorflow_cnn": Style("#D55E00", "v", "-"),  # vermillion, triangle down, solid
    "pytorch_mlp": Style("#CC79A7", "D", ":"),  # reddish purple, diamond, dotted
    "pytorch_cnn": Style("#222222", "X", "--"),  # near black, filled X, dashed
}
TRAIN_COLOUR = "#666666"  # training curves: neutral grey, solid; validation: the pipeline's colour, dashed
GATE_COLOUR = "#555555"
FAIL_COLOUR = "#CC0000"
MAX_MARKERS = 12  # markers per curve; longer curves get a marker every few steps


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, format="png")
    return path


def _markevery(count: int, phase: int = 0) -> int | tuple[int, int]:
    """Marker spacing for a curve of ``count`` points; ``phase`` staggers curves that share an axis."""
    step = max(1, math.ceil(count / MAX_MARKERS))
    return (phase * step // 3 % step, step) if step > 1 else 1


def _step_axis(ax: Axes, unit: str) -> None:
    ax.set_xlabel(f"{unit} (step)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))  # epochs and rounds are whole numbers


def learning_curves_figure(entry: Mapping[str, Any]) -> Figure:
    """Loss and accuracy per epoch/boosting round (train and validation) of one pipeline's run.

    Training is a grey solid line with hollow circles, validation the pipeline's colour,
    dashed, with its marker: told apart by colour, line style and marker.
    """
    key = entry["pipeline"]
    pipeline, style = BY_KEY[key], STYLES[key]
    unit = pipeline.step_unit
    curves = entry.get("curves", {})
    figure = _new_figure(10, 4)
    loss_ax, acc_ax = figure.subplots(1, 2)
    for ax, kind, ylabel in (
        (loss_ax, "loss", "loss (cross-entropy, nats)"),
        (acc_ax, "accuracy", "accuracy (fraction correct)"),
    ):
        for split in ("train", "val"):
            points = curves.get(f"{split}_{kind}", [])
            if not points:
                continue
            steps, values = zip(*points)
            if split == "train":
                look = {"color": TRAIN_COLOUR, "linestyle": "-", "marker": "o", "markerfacecolor": "white",
                        "markersize": 5}
                label = f"training {kind}"
            else:
                look = {"color": style.colour, "linestyle": "--", "marker": style.marker, "markersize": 6}
                label = f"validation {kind}"
            ax.plot(steps, values, markevery=_markevery(len(points)), linewidth=1.6, label=label, gid=f"{key}:{split}",
                    **look)
        _step_axis(ax, unit)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{kind.capitalize()} per {unit}")
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend(loc="upper right" if kind == "loss" else "lower right")
        else:
            ax.text(0.5, 0.5, "no curve logged", ha="center", va="center", transform=ax.transAxes)
    run = (entry.get("run_id") or "")[:8]
    figure.suptitle(f"{pipeline.label} — learning curves (run {run}, {len(curves.get('val_accuracy', []))} {unit}s)")
    return figure


def validation_overview_figure(entries: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Validation accuracy of every pipeline: boosting rounds and epochs side by side."""
    figure = _new_figure(11, 4.2)
    gbm_ax, nn_ax = figure.subplots(1, 2)
    for phase, (key, entry) in enumerate(entries.items()):
        points = entry.get("curves", {}).get("val_accuracy", [])
        if not points:
            continue
        pipeline, style = BY_KEY[key], STYLES[key]
        ax = gbm_ax if pipeline.family == "gbm" else nn_ax
        steps, values = zip(*points)
        ax.plot(steps, values, color=style.colour, linestyle=style.linestyle, marker=style.marker,
                markevery=_markevery(len(points), phase), markersize=6, linewidth=1.6, label=pipeline.label, gid=key)
    for ax, unit, title in ((gbm_ax, "boosting round", "Gradient boosting"), (nn_ax, "epoch", "Neural networks")):
        _step_axis(ax, unit)
        ax.set_ylabel("validation accuracy (fraction correct)")
        ax.set_title(f"{title}: validation accuracy per {unit}")
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend(loc="lower right")
    figure.suptitle("Validation accuracy during training")
    return figure


# --------------------------------------------------------------------------- accuracy vs time


# Where a point's label may go: offset in points from the point, alignment. Near ones first;
# farther ones (2.5x, 4x) get a leader line to their point.
_NEAR = ((8, 3, "left", "bottom"), (8, -3, "left", "top"), (-8, 3, "right", "bottom"), (-8, -3, "right", "top"),
         (0, 9, "center", "bottom"), (0, -9, "center", "top"), (11, 0, "left", "center"), (-11, 0, "right", "center"))
_CANDIDATES = tuple((dx, dy, ha, va, False) for dx, dy, ha, va in _NEAR) + tuple(
    (dx * k, dy * k * (3 if dx else 1), ha, va, True) for k in (2.5, 4) for dx, dy, ha, va in _NEAR)
MARKER_HALF_PX = 9.0  # half the side of the box a scatter marker (s=70) covers, plus a margin
LABEL_PAD_PX = 3.0
LABEL_STYLE = {"fontsize": 8, "zorder": 4,
               "bbox": {"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}}


def _overlap(a: Bbox, b: Bbox) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0


def _segment_hits(start: tuple[float, float], end: tuple[float, float], box: Bbox) -> bool:
    """Whether the straight line start→end passes through ``box`` (sampled every pixel or so)."""
    steps = max(2, int(math.hypot(end[0] - start[0], end[1] - start[1])))
    return any(box.contains(start[0] + (end[0] - start[0]) * i / steps, start[1] + (end[1] - start[1]) * i / steps)
               for i in range(steps + 1))


def _place_labels(ax: Axes, points: list[tuple[str, float, float, str]], gate_ys: list[float],
                  obstacles: list[Bbox]) -> None:
    """Annotate each (key, x, y, text) at the candidate offset that overlaps nothing.

    Runs after the layout is final: a candidate's box is measured in pixels and scored
    against the labels already placed, every marker (also for its leader line), the
    ``obstacles``, the axes' edges and the gate lines; the lowest score wins. Labels are
    kept out of the layout so they cannot move it.
    """
    renderer = ax.get_figure().canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    centres = {key: tuple(ax.transData.transform((x, y))) for key, x, y, _ in points}
    markers = {key: Bbox.from_extents(cx - MARKER_HALF_PX, cy - MARKER_HALF_PX, cx + MARKER_HALF_PX,
                                      cy + MARKER_HALF_PX) for key, (cx, cy) in centres.items()}
    gate_px = [ax.transData.transform((0, g))[1] for g in gate_ys]
    placed: list[Bbox] = []
    leaders: list[tuple[tuple[float, float], tuple[float, float]]] = []

    def crowding(point: tuple[str, float, float, str]) -> float:
        cx, cy = centres[point[0]]
        return -sum(1.0 / (1.0 + math.hypot(cx - ox, cy - oy)) for ox, oy in centres.values())

    for key, x, y, text in sorted(points, key=crowding):  # the most crowded point chooses first
        best: tuple[float, tuple[Any, ...]] | None = None
        for rank, (dx, dy, ha, va, far) in enumerate(_CANDIDATES):
            probe = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), ha=ha, va=va,
                                **LABEL_STYLE)
            box = probe.get_window_extent(renderer).padded(LABEL_PAD_PX)
            probe.remove()
            score = rank * 0.01 + (0.5 if far else 0.0)
            for other in (*placed, *markers.values(), *obstacles):
                if area := _overlap(box, other):
                    score += 1000.0 + area
            outside = (max(0.0, frame.x0 - box.x0) + max(0.0, box.x1 - frame.x1)
                       + max(0.0, frame.y0 - box.y0) + max(0.0, box.y1 - frame.y1))
            score += 300.0 + 100.0 * outside if outside else 0.0
            score += sum(5.0 for gy in gate_px if box.y0 < gy < box.y1)  # crossing a gate line reads worse
            score += sum(1000.0 for start, end in leaders if _segment_hits(start, end, box))
            anchor = (min(max(centres[key][0], box.x0), box.x1), min(max(centres[key][1], box.y0), box.y1))
            if far:  # a leader line must not run through another point or label
                score += sum(1000.0 for other, m in markers.items()
                             if other != key and _segment_hits(centres[key], anchor, m))
                score += sum(1000.0 for other in placed if _segment_hits(centres[key], anchor, other))
            if best is None or score < best[0]:
                best = (score, (dx, dy, ha, va, far, box, anchor))
        assert best is not None
        dx, dy, ha, va, far, box, anchor = best[1]
        arrow = {"arrowstyle": "-", "color": "grey", "linewidth": 0.7, "shrinkA": 0, "shrinkB": 6} if far else None
        label = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), ha=ha, va=va,
                            arrowprops=arrow, gid=key, **LABEL_STYLE)
        label.set_in_layout(False)
        placed.append(box)
        if far:
            leaders.append((centres[key], anchor))


def accuracy_vs_time_figure(entries: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Test accuracy against training time, and each pipeline's margin above its gate.

    Left: one labelled point per pipeline, the y axis zoomed onto the points (a bit below
    the lowest accuracy up to 1.0); gates inside that range are dashed lines, gates below
    it are listed in the legend. Right: test accuracy minus gate in percentage points,
    one bar per pipeline with a gate.
    """
    figure = _new_figure(13, 6)
    ax, margin_ax = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    gates: dict[float, list[str]] = {}
    points: list[tuple[str, float, float, str]] = []
    margins: list[tuple[str, float, bool, str]] = []
    for key, entry in entries.items():
        pipeline, style = BY_KEY[key], STYLES[key]
        gate = entry.get("gate")
        if gate is not None:
            gates.setdefault(float(gate), []).append(pipeline.label)
        accuracy, seconds = entry.get("test_accuracy"), entry.get("train_seconds")
        if accuracy is None or seconds is None:
            continue
        passed = entry.get("gate_passed") is not False  # no recorded verdict is not drawn as a failure
        result = "no gate result" if entry.get("gate_passed") is None else "pass" if passed else "FAIL"
        ax.scatter([seconds], [accuracy], s=70, color=style.colour, marker=style.marker,
                   edgecolors="black" if passed else FAIL_COLOUR, linewidths=0.8 if passed else 2.2, zorder=3,
                   clip_on=False, gid=key, label=f"{pipeline.label} ({result})")
        verdict = "" if passed or gate is None else f"\nFAIL: gate {float(gate):g}"
        points.append((key, seconds, accuracy, f"{pipeline.label}\n{accuracy:.4f}, {seconds:.1f} s{verdict}"))
        if gate is not None:
            margins.append((key, (accuracy - float(gate)) * 100, passed,
                            f"{accuracy:.4f} {'>' if passed else '≤'} {float(gate):g}"))

    accuracies = [y for _, _, y, _ in points]
    if accuracies:
        spread = max(1.0 - min(accuracies), 0.005)
        low, high = min(accuracies) - 0.18 * spread, 1.0
    else:
        low, high = (min(gates) - 0.01 if gates else 0.0), 1.0
    ax.set_ylim(low, high)
    seconds_max = max((x for _, x, _, _ in points), default=1.0)
    ax.set_xlim(0, seconds_max * 1.12 or 1.0)

    gate_handles: list[Line2D] = []
    inside: list[float] = []
    gate_texts: list[Any] = []
    for gate, labels in sorted(gates.items(), reverse=True):
        names = ", ".join(labels)
        if low <= gate <= high:
            ax.axhline(gate, linestyle="--", linewidth=1.1, color=GATE_COLOUR, zorder=1, gid=f"gate:{gate:g}")
            gate_texts.append(ax.annotate(f"gate {gate:g}", (1.0, gate), xycoords=("axes fraction", "data"),
                                          textcoords="offset points", xytext=(3, 0), va="center", fontsize=8,
                                          color=GATE_COLOUR, gid=f"gate:{gate:g}"))
            gate_handles.append(Line2D([], [], linestyle="--", color=GATE_COLOUR, label=f"gate {gate:g}: {names}"))
            inside.append(gate)
        else:
            where = "below" if gate < low else "above"
            gate_handles.append(Line2D([], [], linestyle="none", marker="$\\downarrow$" if gate < low else "$\\uparrow$",
                                       markersize=8, color=GATE_COLOUR,
                                       label=f"gate {gate:g}: {names} ({where} this view; see margins)"))
    ax.set_xlabel("training time (seconds, wall clock)")
    ax.set_ylabel("test accuracy (fraction correct, held-out test set)")
    ax.set_title("Test accuracy vs training time (zoomed on the runs; dashed: quality gates)")
    ax.grid(True, alpha=0.3)
    if points or gate_handles:
        point_handles, _ = ax.get_legend_handles_labels()
        ax.legend(handles=[*point_handles, *gate_handles], loc="upper center", bbox_to_anchor=(0.5, -0.13),
                  ncol=2, fontsize=8, frameon=False)

    _margin_panel(margin_ax, margins)
    figure.suptitle("Test accuracy, training time and margin above the quality gate (accuracy must exceed its gate)")
    if points:
        figure.draw_without_rendering()  # settle the layout, then place labels in pixels
        renderer = figure.canvas.get_renderer()
        _place_labels(ax, points, inside, [t.get_window_extent(renderer).padded(2) for t in gate_texts])
    return figure


def _margin_panel(ax: Axes, margins: list[tuple[str, float, bool, str]]) -> None:
    """Horizontal bars: test accuracy minus gate, percentage points; failures hatched, red edge."""
    ax.set_title("Margin above quality gate")
    ax.set_xlabel("test accuracy − gate (percentage points)")
    if not margins:
        ax.text(0.5, 0.5, "no gated runs", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
        return
    rows = range(len(margins))
    for row, (key, value, passed, comparison) in zip(rows, margins):
        style = STYLES[key]
        ax.barh(row, value, height=0.6, color=style.colour, edgecolor="black" if passed else FAIL_COLOUR,
                linewidth=0.8 if passed else 2.0, hatch=None if passed else "//", gid=key)
        ax.annotate(f"{value:+.2f} pp ({comparison}){'' if passed else ' FAIL'}", (max(value, 0.0), row),
                    textcoords="offset points", xytext=(4, 0), ha="left", va="center", fontsize=8,
                    color="black" if passed else FAIL_COLOUR)  # right of the bar, or of the gate line
    ax.set_yticks(list(rows), [BY_KEY[key].label for key, *_ in margins])
    ax.invert_yaxis()  # same top-to-bottom order as the legend
    values = [v for _, v, *_ in margins]
    span = max(max(values), 0.0) - min(min(values), 0.0) or 1.0
    ax.set_xlim(min(min(values), 0.0) - 0.05 * span, max(max(values), 0.0) + 0.5 * span)
    ax.axvline(0, color=GATE_COLOUR, linewidth=1.1, linestyle="--")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(handles=[Line2D([], [], linestyle="--", color=GATE_COLOUR, label="gate (0 pp)")], loc="lower right",
              fontsize=8)
