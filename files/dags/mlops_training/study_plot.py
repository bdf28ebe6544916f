"""A study's summary plot as one SVG: validation accuracy against each searched hyper-parameter,
and every trial's time.

Standard library only: the worker image has no plotting library, and a hand-written SVG is
small, text (diffable, testable) and shown by MLflow's artifact viewer like a PNG.

Rows are the study's trials: ``{"number", "state", "value", "params", "seconds"}``; ``value``
(final validation accuracy) is None for a trial that was killed before its first step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

PANEL_W, PANEL_H = 300, 220
MARGIN_L, MARGIN_B, MARGIN_T, MARGIN_R = 56, 44, 28, 12
COLUMNS = 3
STATE_STYLE = {  # Okabe-Ito colours; shapes differ too, so it reads in greyscale
    "COMPLETE": ("#0072B2", "circle"),
    "PRUNED": ("#E69F00", "cross"),
    "FAILED": ("#D55E00", "square"),
    "KILLED": ("#D55E00", "square"),
}
BEST_COLOUR = "#009E73"


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.1e}"
    return f"{value:.3g}"


def _scale(low: float, high: float, log: bool, size: float, flip: bool = False):
    if log:
        low, high = math.log10(low), math.log10(high)
    if high == low:
        low, high = low - 0.5, high + 0.5

    def to_px(value: float) -> float:
        v = math.log10(value) if log else value
        frac = (v - low) / (high - low)
        return size * (1 - frac) if flip else size * frac

    return to_px


def _marker(x: float, y: float, state: str, best: bool, title: str) -> str:
    colour, shape = STATE_STYLE.get(state, ("#555555", "square"))
    tip = f"<title>{escape(title)}</title>"
    if shape == "circle":
        mark = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{colour}">{tip}</circle>'
    elif shape == "cross":
        mark = (f'<path d="M{x - 4:.1f},{y - 4:.1f}L{x + 4:.1f},{y + 4:.1f}M{x - 4:.1f},{y + 4:.1f}L{x + 4:.1f},{y - 4:.1f}"'
                f' stroke="{colour}" stroke-width="2">{tip}</path>')
    else:
        mark = f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{colour}">{tip}</rect>'
    if best:
        mark += f'<circle cx="{x:.1f}" cy="{y:.1f}" r="8" fill="none" stroke="{BEST_COLOUR}" stroke-width="2.5"/>'
    return mark


def _axes(ox: float, oy: float, w: float, h: float, xlabel: str, ylabel: str, title: str) -> list[str]:
    return [
        f'<rect x="{ox}" y="{oy}" width="{w}" height="{h}" fill="none" stroke="#999"/>',
        f'<text x="{ox + w / 2}" y="{oy - 8}" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
        f'<text x="{ox + w / 2}" y="{oy + h + 34}" text-anchor="middle">{escape(xlabel)}</text>',
        f'<text transform="translate({ox - 42},{oy + h / 2}) rotate(-90)" text-anchor="middle">{escape(ylabel)}</text>',
    ]


def _panel(ox: float, oy: float, name: str, dim: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
           best: int | None, y_range: tuple[float, float]) -> list[str]:
    w, h = PANEL_W - MARGIN_L - MARGIN_R, PANEL_H - MARGIN_T - MARGIN_B
    out = _axes(ox, oy, w, h, name + (" (log)" if dim.get("log") else ""), "validation accuracy", name)
    y_px = _scale(*y_range, False, h, flip=True)
    out += [f'<text x="{ox - 4}" y="{oy + y_px(v) + 4:.1f}" text-anchor="end">{_fmt(v)}</text>' for v in y_range]
    choices = dim.get("choices")
    if choices is not None:
        step = w / (len(choices) + 1)
        def x_px(value: Any) -> float:
            return step * (list(choices).index(value) + 1)
        ticks = [(x_px(c), _fmt(c)) for c in choices]
    else:
        low, high = float(dim["low"]), float(dim["high"])
        x_px = _scale(low, high, bool(dim.get("log")), w)
        ticks = [(x_px(low), _fmt(low)), (x_px(high), _fmt(high))]
    out += [f'<text x="{ox + x:.1f}" y="{oy + h + 16}" text-anchor="middle">{label}</text>' for x, label in ticks]
    for row in rows:
        value, param = row.get("value"), row.get("params", {}).get(name)
        if value is None or param is None or (choices is not None and param not in choices):
            continue
        title = f"trial {row['number']} {row['state']}: {name}={param}, val_accuracy={value:.4f}"
        out.append(_marker(ox + x_px(param), oy + y_px(value), row["state"], row["number"] == best, title))
    return out


def _time_panel(ox: float, oy: float, rows: Sequence[Mapping[str, Any]], best: int | None) -> list[str]:
    w, h = PANEL_W - MARGIN_L - MARGIN_R, PANEL_H - MARGIN_T - MARGIN_B
    out = _axes(ox, oy, w, h, "trial", "seconds", "trial time")
    timed = [r for r in rows if r.get("seconds") is not None]
    top = max([float(r["seconds"]) for r in timed] + [1.0])
    out.append(f'<text x="{ox - 4}" y="{oy + 4}" text-anchor="end">{_fmt(top)}</text>')
    bar = w / max(len(rows), 1)
    for i, row in enumerate(sorted(rows, key=lambda r: r["number"])):
        x = ox + i * bar
        out.append(f'<text x="{x + bar / 2:.1f}" y="{oy + h + 16}" text-anchor="middle">{row["number"]}</text>')
        if row.get("seconds") is None:  # killed before it reported a time: say so where its bar would be
            out.append(f'<text x="{x + bar / 2:.1f}" y="{oy + h - 4}" text-anchor="middle" font-size="9">'
                       f'{escape(str(row["state"]).lower())}</text>')
            continue
        height = h * float(row["seconds"]) / top
        colour = BEST_COLOUR if row["number"] == best else STATE_STYLE.get(row["state"], ("#555555", ""))[0]
        out.append(f'<rect x="{x + bar * 0.15:.1f}" y="{oy + h - height:.1f}" width="{bar * 0.7:.1f}" '
                   f'height="{height:.1f}" fill="{colour}"><title>trial {row["number"]} {row["state"]}: '
                   f'{float(row["seconds"]):.1f} s</title></rect>')
    return out


def summary_svg(title: str, dimensions: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
                best: int | None) -> str:
    """The study's summary plot: one panel per searched hyper-parameter, then trial times."""
    values = [float(r["value"]) for r in rows if r.get("value") is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max((high - low) * 0.1, 0.002)
    y_range = (max(0.0, low - pad), min(1.0, high + pad))
    panels = len(dimensions) + 1
    cols = min(COLUMNS, panels)
    rows_n = math.ceil(panels / cols)
    width, height = cols * PANEL_W, rows_n * PANEL_H + 50
    parts = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'),
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    legend = [("● complete", STATE_STYLE["COMPLETE"][0]), ("× pruned", STATE_STYLE["PRUNED"][0]),
              ("■ failed or killed", STATE_STYLE["KILLED"][0]), ("○ best", BEST_COLOUR)]
    for i, (label, colour) in enumerate(legend):
        parts.append(f'<text x="{10 + i * 110}" y="34" fill="{colour}">{label}</text>')
    for i, dim in enumerate(dimensions):
        ox = (i % cols) * PANEL_W + MARGIN_L
        oy = 50 + (i // cols) * PANEL_H + MARGIN_T
        parts += _panel(ox, oy, dim["name"], dim, rows, best, y_range)
    i = len(dimensions)
    parts += _time_panel((i % cols) * PANEL_W + MARGIN_L, 50 + (i // cols) * PANEL_H + MARGIN_T, rows, best)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
