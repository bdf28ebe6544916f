"""The study's summary plot (standard library SVG): one panel per searched hyper-parameter with
every trial that has a validation accuracy, the best ringed, and a panel of trial times."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from mlops_training.study_plot import BEST_COLOUR, summary_svg

SVG = "{http://www.w3.org/2000/svg}"
DIMS = [
    {"name": "learning_rate", "kind": "float", "low": 0.0003, "high": 0.003, "log": True, "choices": None},
    {"name": "batch_size", "kind": "categorical", "low": None, "high": None, "log": False, "choices": [64, 128, 256]},
]
ROWS = [
    {"number": 0, "state": "COMPLETE", "value": 0.971, "seconds": 31.0, "params": {"learning_rate": 0.001, "batch_size": 64}},
    {"number": 1, "state": "PRUNED", "value": 0.902, "seconds": 12.5, "params": {"learning_rate": 0.0029, "batch_size": 256}},
    {"number": 2, "state": "KILLED", "value": None, "seconds": None, "params": {"learning_rate": 0.0004, "batch_size": 128}},
    {"number": 3, "state": "COMPLETE", "value": 0.978, "seconds": 29.0, "params": {"learning_rate": 0.0015, "batch_size": 128}},
]


def _titles(root: ET.Element) -> list[str]:
    return [t.text for t in root.iter(f"{SVG}title")]


def test_the_plot_has_a_panel_per_hyper_parameter_and_one_for_time() -> None:
    root = ET.fromstring(summary_svg("PyTorch MLP study", DIMS, ROWS, best=3))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "PyTorch MLP study" in texts
    assert {"learning_rate", "batch_size", "trial time"} <= set(texts)
    assert "learning_rate (log)" in texts  # a log range says so on its axis


def test_every_trial_with_an_accuracy_is_a_point_in_every_panel() -> None:
    root = ET.fromstring(summary_svg("study", DIMS, ROWS, best=3))
    titles = _titles(root)
    for number, state in ((0, "COMPLETE"), (1, "PRUNED"), (3, "COMPLETE")):
        points = [t for t in titles if t.startswith(f"trial {number} {state}: ") and "val_accuracy" in t]
        assert len(points) == len(DIMS), points
    assert not [t for t in titles if t.startswith("trial 2 ") and "val_accuracy" in t]  # killed: no accuracy
    assert "trial 3 COMPLETE: learning_rate=0.0015, val_accuracy=0.9780" in titles
    bars = [t for t in titles if t.endswith(" s")]
    assert bars == ["trial 0 COMPLETE: 31.0 s", "trial 1 PRUNED: 12.5 s", "trial 3 COMPLETE: 29.0 s"]


def test_the_best_trial_is_ringed_once_per_panel() -> None:
    root = ET.fromstring(summary_svg("study", DIMS, ROWS, best=3))
    rings = [c for c in root.iter(f"{SVG}circle") if c.get("stroke") == BEST_COLOUR]
    assert len(rings) == len(DIMS)
    best_bar = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == BEST_COLOUR]
    assert len(best_bar) == 1


def test_a_study_without_any_accuracy_still_draws() -> None:
    rows = [{"number": 0, "state": "KILLED", "value": None, "seconds": None, "params": {}}]
    root = ET.fromstring(summary_svg("study", DIMS[:1], rows, best=None))
    assert not [c for c in root.iter(f"{SVG}circle")]
