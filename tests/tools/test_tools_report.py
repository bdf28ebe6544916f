"""The comparison report against a real MLflow server seeded through mlops_training.tracking.

Every number in report.json and in index.html must equal what was logged; the
plots must carry titles, labelled axes and legends; the report must land in
MLflow as artifacts of a run in ``model_comparison``.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from mlops_tools import pipelines as P
from mlops_tools import report
from mlops_tools.mlflow_api import MlflowApiError, MlflowClient, kv

MATPLOTLIB = "matplotlib not installed (the report's plots need matplotlib==3.11.2)"

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- helpers


class Cells(HTMLParser):
    """Collects, per table row id, the cells as (text, data-value)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[tuple[str, str | None]]] = {}
        self.images: dict[str, str] = {}
        self._row: str | None = None
        self._cell: list[str] | None = None
        self._value: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self._row = attrs.get("id")
            if self._row:
                self.rows[self._row] = []
        elif tag == "td" and self._row:
            self._cell, self._value = [], attrs.get("data-value")
        elif tag == "img":
            self.images[attrs["data-file"]] = attrs["src"]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._row and self._cell is not None:
            self.rows[self._row].append(("".join(self._cell).strip(), self._value))
            self._cell = None
        elif tag == "tr":
            self._row = None


def latest(seeded: list[dict], pipeline: str) -> dict:
    """What the report must pick: newest FINISHED, evaluated, MNIST run."""
    runs = [r for r in seeded if r["pipeline"] == pipeline and r["status"] == "FINISHED"
            and r.get("evaluate", True) and r.get("dataset", "mnist") == "mnist"]
    return runs[-1]


def champion(seeded: list[dict], pipeline: str) -> dict:
    best = None
    for r in seeded:  # register_and_promote: strictly better accuracy takes the alias
        if r["pipeline"] == pipeline and r.get("registered_version") and (
                best is None or r["accuracy"] > best["accuracy"]):
            best = r
    return best


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def built(mlflow_server, seeded, tmp_path_factory):
    pytest.importorskip("matplotlib", reason=MATPLOTLIB)
    out = tmp_path_factory.mktemp("reports")
    code = report.main(["--mlflow-url", mlflow_server["url"], "--out-dir", str(out), "--stamp", "20260101T000000Z"])
    folder = out / "model-comparison-20260101T000000Z"
    return {"code": code, "folder": folder, "json": json.loads((folder / "report.json").read_text()),
            "html": (folder / "index.html").read_text()}


# --------------------------------------------------------------------------- against MLflow


needs_server = pytest.mark.mlflow_server


@needs_server
def test_report_is_written_and_logged(built):
    assert built["code"] == 0
    names = {p.name for p in built["folder"].iterdir()}
    expected_pngs = {"accuracy-vs-time.png", "val-accuracy-overview.png",
                     *(f"curves-{k}.png" for k in ("xgboost", "lightgbm", "tensorflow_mlp", "tensorflow_cnn",
                                                    "pytorch_mlp"))}
    assert {"index.html", "report.json"} | expected_pngs == names  # no curves for the missing pytorch_cnn
    for name in expected_pngs:
        width, height = png_size(built["folder"] / name)
        assert width >= 800 and height >= 350


@needs_server
def test_numbers_equal_what_was_logged(built, seeded):
    entries = built["json"]["pipelines"]
    for key in ("xgboost", "lightgbm", "tensorflow_mlp", "tensorflow_cnn", "pytorch_mlp"):
        want, got = latest(seeded, key), entries[key]
        assert got["error"] is None
        assert got["run_id"] == want["run_id"]
        assert got["test_accuracy"] == want["accuracy"]  # exact float equality, no rounding
        assert got["train_seconds"] == want["train_seconds"]
        assert got["gate"] == want["gate"]
        assert got["gate_passed"] is (want["accuracy"] > want["gate"])
        assert got["steps"] == want["steps"] == got["steps_param"]
        assert got["model_size_bytes"] == want["model_bytes"]
        assert got["model_files"] == 2
        assert got["registered_version"] == want["registered_version"]
        holder = champion(seeded, key)
        assert got["champion_version"] == holder["registered_version"]
        assert got["is_champion"] is (holder["run_id"] == want["run_id"])
        for metric, values in want["curves"].items():
            assert got["curves"][metric] == [[step, value] for step, value in enumerate(values, start=1)]
    assert entries["pytorch_cnn"]["error"].startswith("experiment 'pytorch_mnist_cnn' does not exist")


@needs_server
def test_latest_skips_failed_unevaluated_and_other_dataset_runs(built, seeded):
    entries = built["json"]["pipelines"]
    tabular = next(r for r in seeded if r.get("dataset") == "table:iris.csv")
    failed = next(r for r in seeded if r["status"] == "FAILED")
    unevaluated = next(r for r in seeded if r.get("evaluate") is False)
    chosen = {e.get("run_id") for e in entries.values()}
    assert not chosen & {tabular["run_id"], failed["run_id"], unevaluated["run_id"]}
    tf_mlp = entries["tensorflow_mlp"]  # the newest run failed its gate: shown as such, not registered
    assert tf_mlp["test_accuracy"] == 0.9412 and tf_mlp["gate_passed"] is False
    assert tf_mlp["registered_version"] is None and tf_mlp["is_champion"] is False
    assert built["json"]["summary"] == {"found": 5, "passed_gate": 4, "total": 6}


@needs_server
def test_html_shows_the_same_numbers(built, seeded):
    cells = Cells()
    cells.feed(built["html"])
    for key in ("xgboost", "lightgbm", "tensorflow_mlp", "tensorflow_cnn", "pytorch_mlp"):
        want = latest(seeded, key)
        row = cells.rows[f"row-{key}"]
        (acc_text, acc_value), (gate_text, gate_value), verdict = row[3], row[4], row[5]
        assert float(acc_value) == want["accuracy"] and acc_text == f"{want['accuracy']:.4f}"
        assert float(gate_value) == want["gate"] and gate_text == f"{want['gate']:g}"
        assert verdict[0] == ("pass" if want["accuracy"] > want["gate"] else "FAIL")
        seconds_text, seconds_value = row[6]
        assert float(seconds_value) == want["train_seconds"] and seconds_text == f"{want['train_seconds']:.1f} s"
        assert row[7] == (f"{want['steps']} {P.BY_KEY[key].step_unit}s", str(want["steps"]))
        assert int(row[8][1]) == want["model_bytes"]
        if want["registered_version"]:
            assert row[9] == (f"v{want['registered_version']}", str(want["registered_version"]))
    assert "does not exist" in cells.rows["row-pytorch_cnn"][2][0]
    # Every PNG is embedded (MLflow's artifact viewer cannot resolve relative links) and is
    # byte-identical to the file beside the page.
    pngs = {p.name: p.read_bytes() for p in built["folder"].glob("*.png")}
    assert set(cells.images) == set(pngs)
    for name, src in cells.images.items():
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == pngs[name]


@needs_server
def test_comparisons_are_computed_from_the_runs(built):
    by_title = {c["title"]: c for c in built["json"]["comparisons"]}
    gbm = by_title["XGBoost vs LightGBM"]
    assert gbm["left_accuracy"] == 0.9801 and gbm["right_accuracy"] == 0.9799
    assert gbm["accuracy_diff_pp"] == pytest.approx((0.9799 - 0.9801) * 100)
    assert gbm["more_accurate"] == "xgboost" and gbm["faster"] == "lightgbm"
    assert gbm["time_ratio"] == pytest.approx(76.125 / 51.5)
    assert gbm["sentence"] == ("XGBoost is more accurate: 0.9801 vs 0.9799 (0.02 pp); "
                               "LightGBM trains 1.48× faster: 51.5 s vs 76.1 s (XGBoost).")
    tf = by_title["MLP vs CNN (TensorFlow)"]
    assert tf["more_accurate"] == "tensorflow_cnn" and tf["faster"] == "tensorflow_mlp"
    frameworks = by_title["TensorFlow vs PyTorch (MLP)"]  # TF's newest run (0.9412) failed its gate
    assert frameworks["left_accuracy"] == 0.9412 and frameworks["more_accurate"] == "pytorch_mlp"
    assert by_title["MLP vs CNN (PyTorch)"]["sentence"] == "Not comparable: no evaluated run for PyTorch CNN."
    runtime = built["json"]["runtime"]
    assert [r["pipeline"] for r in runtime["rows"]] == [
        "tensorflow_mlp", "tensorflow_cnn", "pytorch_mlp", "lightgbm", "xgboost"]
    assert runtime["total_train_seconds"] == pytest.approx(6.9 + 24.0 + 30.5 + 51.5 + 76.125)
    assert runtime["rows"][-1]["seconds_per_step"] == pytest.approx(76.125 / 8)


@needs_server
def test_report_run_holds_the_files_in_mlflow(built, mlflow_server):
    logged = built["json"]["mlflow_run"]
    client = MlflowClient(mlflow_server["url"])
    run = client.get_run(logged["run_id"])
    assert run["info"]["status"] == "FINISHED"
    experiment = client.experiment_by_name(report.REPORT_EXPERIMENT)
    assert run["info"]["experiment_id"] == experiment["experiment_id"]
    assert kv(run["data"]["tags"])["mlops.report_stamp"] == "20260101T000000Z"
    files = {f["path"]: f["file_size"] for f in client.run_artifacts(logged["run_id"])}
    local = {p.name: p.stat().st_size for p in built["folder"].iterdir()}
    # report.json is rewritten locally afterwards with the run's id; everything else is byte-identical.
    assert set(files) == set(local)
    assert {k: v for k, v in files.items() if k != "report.json"} == \
        {k: v for k, v in local.items() if k != "report.json"}
    root = run["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/").lstrip("/")
    html = requests.get(f"{mlflow_server['url']}/api/2.0/mlflow-artifacts/artifacts/{root}/index.html", timeout=10)
    assert html.status_code == 200
    assert html.content == (built["folder"] / "index.html").read_bytes()


@needs_server
def test_champion_selection_reads_the_alias(mlflow_server, seeded, tmp_path):
    data = report.collect(mlflow_server["url"], select="champion")
    for key in ("xgboost", "lightgbm", "tensorflow_mlp", "tensorflow_cnn", "pytorch_mlp"):
        want = champion(seeded, key)
        got = data["pipelines"][key]
        assert got["run_id"] == want["run_id"] and got["is_champion"] is True
        assert got["test_accuracy"] == want["accuracy"]
    assert data["pipelines"]["tensorflow_mlp"]["test_accuracy"] == 0.9744  # not the newer gate failure
    assert "does not exist" in data["pipelines"]["pytorch_cnn"]["error"]


@needs_server
def test_plots_have_titles_labelled_axes_legends_and_gates(built):
    from mlops_tools import plots

    entries = {k: e for k, e in built["json"]["pipelines"].items() if not e.get("error")}
    figure = plots.accuracy_vs_time_figure(entries)
    ax, margin_ax = figure.axes
    assert "training time" in ax.get_xlabel() and "seconds" in ax.get_xlabel()
    assert "test accuracy" in ax.get_ylabel() and "fraction" in ax.get_ylabel()
    assert ax.get_title() and figure.get_suptitle()
    labels = [t.get_text() for t in ax.texts]
    for e in entries.values():  # every point is labelled with its name, accuracy and time
        assert any(t.startswith(f"{e['label']}\n{e['test_accuracy']:.4f}") for t in labels)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sum(t.endswith(("(pass)", "(FAIL)")) for t in legend) == len(entries)
    assert "TensorFlow MLP (FAIL)" in legend
    # The seeded gates are 0.85, 0.87, 0.95 and 0.985; the lowest point is 0.9412, so the
    # zoomed axis shows 0.95 and 0.985 as lines and lists the other two in the legend.
    gates = {e["gate"] for e in entries.values()}
    low, high = ax.get_ylim()
    drawn = sorted(line.get_ydata()[0] for line in ax.get_lines())
    assert drawn == sorted(g for g in gates if low <= g <= high) == [0.95, 0.985]
    for gate in gates - set(drawn):
        assert any(t.startswith(f"gate {gate:g}:") and "below" in t for t in legend)
    assert_zoomed_on_the_points(ax, entries)
    assert_points_differ(ax)
    assert_point_labels_are_clear(figure, ax)
    assert_margins(margin_ax, entries)

    for key, entry in entries.items():
        figure = plots.learning_curves_figure(entry)
        loss_ax, acc_ax = figure.axes
        unit = P.BY_KEY[key].step_unit
        for ax in (loss_ax, acc_ax):
            assert unit in ax.get_xlabel() and ax.get_title() and ax.get_ylabel()
            legend = [t.get_text() for t in ax.get_legend().get_texts()]
            assert len(legend) == 2 and any("validation" in t for t in legend)
        assert "loss" in loss_ax.get_ylabel() and "accuracy" in acc_ax.get_ylabel()
        assert list(acc_ax.get_lines()[1].get_ydata()) == [v for _, v in entry["curves"]["val_accuracy"]]
        assert entry["label"] in figure.get_suptitle()

    figure = plots.validation_overview_figure(entries)
    gbm_ax, nn_ax = figure.axes
    assert "boosting round" in gbm_ax.get_xlabel() and "epoch" in nn_ax.get_xlabel()
    assert {t.get_text() for t in gbm_ax.get_legend().get_texts()} == {"XGBoost", "LightGBM"}
    assert_lines_differ(gbm_ax) and assert_lines_differ(nn_ax)


# --------------------------------------------------------------------------- figure checks


def _renderer(figure):
    figure.canvas.draw()  # the layout as saved
    return figure.canvas.get_renderer()


def _scatter_points(ax) -> dict[str, tuple[float, float]]:
    return {c.get_gid(): tuple(c.get_offsets()[0]) for c in ax.collections if c.get_gid() in P.BY_KEY}


def assert_zoomed_on_the_points(ax, entries) -> None:
    """Every point inside the axis, and the y axis zoomed: from a bit below the lowest accuracy to 1.0."""
    points = _scatter_points(ax)
    assert set(points) == {k for k, e in entries.items() if e.get("test_accuracy") is not None}
    low, high = ax.get_ylim()
    left, right = ax.get_xlim()
    lowest = min(y for _, y in points.values())
    assert high == 1.0
    assert lowest - 0.25 * (1.0 - lowest) <= low < lowest  # a little headroom below, no more
    for key, (x, y) in points.items():
        assert (x, y) == (entries[key]["train_seconds"], entries[key]["test_accuracy"])
        assert low < y <= high and left <= x < right, f"{key} ({x}, {y}) outside {ax.get_xlim()} x {ax.get_ylim()}"


def assert_points_differ(ax) -> None:
    """Each pipeline's point has its own colour and marker shape, the ones of its style."""
    from matplotlib.colors import to_hex

    points = [c for c in ax.collections if c.get_gid() in P.BY_KEY]
    colours = [to_hex(c.get_facecolor()[0]) for c in points]
    shapes = [c.get_paths()[0].vertices.round(3).tobytes() for c in points]
    assert len(set(colours)) == len(colours) and len(set(shapes)) == len(shapes)
    for point, colour in zip(points, colours):
        assert colour == to_hex(plots_styles()[point.get_gid()].colour)


def assert_point_labels_are_clear(figure, ax) -> None:
    """Point labels stay inside the axes and overlap no other label, no marker and no gate text."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    renderer = _renderer(figure)
    frame = ax.get_window_extent(renderer)
    # The text's own box (Annotation.get_window_extent would add the leader line's box).
    labels = {t.get_gid(): Text.get_window_extent(t, renderer) for t in ax.texts if t.get_gid() in P.BY_KEY}
    assert set(labels) == set(_scatter_points(ax))
    gate_texts = [t.get_window_extent(renderer) for t in ax.texts if (t.get_gid() or "").startswith("gate:")]
    markers = {}
    for key, (x, y) in _scatter_points(ax).items():
        cx, cy = ax.transData.transform((x, y))
        markers[key] = Bbox.from_extents(cx - 5, cy - 5, cx + 5, cy + 5)
    names = sorted(labels)
    for i, key in enumerate(names):
        box = labels[key]
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, key
        for other in names[i + 1:]:
            assert not box.overlaps(labels[other]), f"labels of {key} and {other} overlap"
        for other, marker in markers.items():
            assert not box.overlaps(marker), f"label of {key} covers the point of {other}"
        for gate in gate_texts:
            assert not box.overlaps(gate), f"label of {key} overlaps a gate label"


def assert_margins(ax, entries) -> None:
    """Second panel: one bar per pipeline, its width the margin above the gate in percentage points."""
    from matplotlib.colors import to_hex

    assert "percentage points" in ax.get_xlabel() and ax.get_title() and ax.get_legend()
    bars = {p.get_gid(): p for p in ax.patches if p.get_gid() in P.BY_KEY}
    assert set(bars) == {k for k, e in entries.items() if e.get("gate") is not None}
    for key, bar in bars.items():
        assert bar.get_width() == pytest.approx((entries[key]["test_accuracy"] - entries[key]["gate"]) * 100)
        assert to_hex(bar.get_facecolor()) == to_hex(plots_styles()[key].colour)
    assert [t.get_text() for t in ax.get_yticklabels()] == [entries[k]["label"] for k in bars]


def assert_lines_differ(ax) -> bool:
    """Each pipeline's line has its own colour, marker and line style, as in the style table."""
    from matplotlib.colors import to_hex

    lines = [line for line in ax.get_lines() if line.get_gid() in P.BY_KEY]
    assert lines
    for attribute in ("get_color", "get_marker", "get_linestyle"):
        values = [getattr(line, attribute)() for line in lines]
        assert len(set(map(str, values))) == len(values), f"{attribute} repeats: {values}"
    for line in lines:
        style = plots_styles()[line.get_gid()]
        assert (to_hex(line.get_color()), line.get_marker()) == (to_hex(style.colour), style.marker)
    return True


def plots_styles():
    from mlops_tools import plots

    return plots.STYLES


# --------------------------------------------------------------------------- figures, no server needed

# The six runs of the dev stack when the plots were reworked: the MLPs sit close together
# just around the CNNs' gate (0.98), and the GBM gates (0.85, 0.87) are far below the points.
LIVE_LIKE = {"xgboost": (0.976, 39.85, 0.85), "lightgbm": (0.9791, 56.9, 0.87),
             "tensorflow_mlp": (0.9805, 20.05, 0.95), "tensorflow_cnn": (0.9906, 35.88, 0.98),
             "pytorch_mlp": (0.9788, 15.07, 0.95), "pytorch_cnn": (0.9905, 52.13, 0.98)}
# All six points within 2.5 s and 0.0015 of each other: labels need leader lines.
CROWDED = {key: (0.98 + i * 0.0003, 20 + i * 0.5, P.BY_KEY[key].plan_gate) for i, key in enumerate(P.BY_KEY)}


def synthetic(values: dict[str, tuple[float, float, float]]) -> dict[str, dict]:
    entries = {}
    for key, (accuracy, seconds, gate) in values.items():
        steps = 60 if key == "xgboost" else 100 if key == "lightgbm" else 8
        curve = [[step, accuracy - 0.1 / step] for step in range(1, steps + 1)]
        entries[key] = {"pipeline": key, "label": P.BY_KEY[key].label, "run_id": f"{key:0<32}",
                        "test_accuracy": accuracy, "train_seconds": seconds, "gate": gate,
                        "gate_passed": accuracy > gate,
                        "curves": {"val_accuracy": curve, "train_accuracy": [[s, v + 0.01] for s, v in curve],
                                   "val_loss": [[s, 1 - v] for s, v in curve],
                                   "train_loss": [[s, 0.9 - v] for s, v in curve]}}
    return entries


def test_every_pipeline_has_one_distinct_style():
    plots = pytest.importorskip("mlops_tools.plots", reason=MATPLOTLIB)
    assert set(plots.STYLES) == set(P.BY_KEY)
    styles = list(plots.STYLES.values())
    assert len({s.colour.lower() for s in styles}) == len(styles)
    assert len({s.marker for s in styles}) == len(styles)  # tells pipelines apart in greyscale
    assert len({(s.marker, s.linestyle) for s in styles}) == len(styles)
    for family in ("gbm", "mlp|cnn"):  # lines sharing an overview panel also differ in line style
        keys = [p.key for p in P.PIPELINES if p.family in family.split("|")]
        assert len({plots.STYLES[k].linestyle for k in keys}) == len(keys)


@pytest.mark.parametrize("values", [LIVE_LIKE, CROWDED], ids=["live-like", "crowded"])
def test_accuracy_vs_time_zooms_on_the_points_and_labels_do_not_overlap(values, tmp_path):
    plots = pytest.importorskip("mlops_tools.plots", reason=MATPLOTLIB)
    entries = synthetic(values)
    figure = plots.accuracy_vs_time_figure(entries)
    ax, margin_ax = figure.axes
    assert_zoomed_on_the_points(ax, entries)
    low, high = ax.get_ylim()
    assert (high - low) < 0.05  # not stretched down to the 0.85 gate: the points fill the panel
    assert [line.get_ydata()[0] for line in ax.get_lines()] == [0.98]  # the one gate inside the view
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for gate in (0.95, 0.87, 0.85):
        assert any(t.startswith(f"gate {gate:g}:") and "below this view" in t for t in legend)
    assert sum(t.endswith("(pass)") for t in legend) == 6
    assert_points_differ(ax)
    assert_point_labels_are_clear(figure, ax)
    assert_margins(margin_ax, entries)
    path = plots.save(figure, tmp_path / "accuracy-vs-time.png")
    assert png_size(path) == (1300, 600)


def test_overview_and_curves_keep_each_pipelines_style():
    plots = pytest.importorskip("mlops_tools.plots", reason=MATPLOTLIB)
    from matplotlib.colors import to_hex

    entries = synthetic(LIVE_LIKE)
    gbm_ax, nn_ax = plots.validation_overview_figure(entries).axes
    assert assert_lines_differ(gbm_ax) and assert_lines_differ(nn_ax)
    assert {line.get_gid() for line in gbm_ax.get_lines()} == {"xgboost", "lightgbm"}
    for line in gbm_ax.get_lines():  # 60 and 100 rounds: markers every few rounds, not none
        assert line.get_marker() not in (None, "None", "") and line.get_markevery() not in (None, 1)
    scatter = plots.accuracy_vs_time_figure(entries).axes[0]
    colours = {c.get_gid(): to_hex(c.get_facecolor()[0]) for c in scatter.collections if c.get_gid()}
    overview = {line.get_gid(): to_hex(line.get_color()) for ax in (gbm_ax, nn_ax) for line in ax.get_lines()}
    assert colours == overview  # the same colour for a pipeline in every figure

    for key, entry in entries.items():
        figure = plots.learning_curves_figure(entry)
        for ax in figure.axes:
            train, val = ax.get_lines()
            assert (train.get_gid(), val.get_gid()) == (f"{key}:train", f"{key}:val")
            assert to_hex(train.get_color()) != to_hex(val.get_color())
            assert train.get_linestyle() != val.get_linestyle()
            assert (train.get_marker(), to_hex(train.get_markerfacecolor())) != \
                (val.get_marker(), to_hex(val.get_markerfacecolor()))  # hollow vs filled at least
            assert to_hex(val.get_color()) == overview[key]  # validation in the pipeline's colour
            assert all(float(t).is_integer() for t in ax.get_xticks())  # whole epochs / rounds
            assert "(step)" in ax.get_xlabel() and ax.get_title()


# --------------------------------------------------------------------------- no server needed


def test_the_tools_read_the_pipeline_registry_with_only_tools_on_the_path(tmp_path):
    """`make report`/`make status` put only tools/ on PYTHONPATH and run from anywhere: the
    registry must still load, from the repository, without the training package's heavy parts."""
    code = ("import json, sys\n"
            "from mlops_tools import pipelines as P\n"
            "print(json.dumps({'rows': [[p.key, p.dag_id, p.experiment, p.registered_model, p.label, p.plan_gate,"
            " p.step_unit] for p in P.PIPELINES], 'gate_tag': P.TAG_GATE_PASSED, 'curves': list(P.CURVE_METRICS),"
            " 'loaded': sorted(m for m in sys.modules if m.split('.')[0] in ('mlops_training', 'numpy', 'mlflow'))}))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(REPO / "tools")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["rows"] == [
        ["xgboost", "xgboost_pipeline", "xgboost_pipeline", "mnist-xgboost", "XGBoost", 0.85, "boosting round"],
        ["lightgbm", "lightgbm_pipeline", "lightgbm_pipeline", "mnist-lightgbm", "LightGBM", 0.87, "boosting round"],
        ["tensorflow_mlp", "tensorflow_mnist_mlp", "tensorflow_mnist_mlp", "mnist-tensorflow-mlp", "TensorFlow MLP",
         0.95, "epoch"],
        ["tensorflow_cnn", "tensorflow_mnist_cnn", "tensorflow_mnist_cnn", "mnist-tensorflow-cnn", "TensorFlow CNN",
         0.98, "epoch"],
        ["pytorch_mlp", "pytorch_mnist_mlp", "pytorch_mnist_mlp", "mnist-pytorch-mlp", "PyTorch MLP", 0.95, "epoch"],
        ["pytorch_cnn", "pytorch_mnist_cnn", "pytorch_mnist_cnn", "mnist-pytorch-cnn", "PyTorch CNN", 0.98, "epoch"],
    ]
    assert seen["gate_tag"] == "mlops.gate_passed"
    assert sorted(seen["curves"]) == ["train_accuracy", "train_loss", "val_accuracy", "val_loss"]
    assert seen["loaded"] == ["mlops_training", "mlops_training.registry"]


def test_compare_handles_ties_and_missing_runs():
    entries = {
        "tensorflow_mlp": {"test_accuracy": 0.97, "train_seconds": 10.0},
        "pytorch_mlp": {"test_accuracy": 0.97, "train_seconds": 10.0},
        "xgboost": {"test_accuracy": 0.98, "train_seconds": 0.0},
        "lightgbm": {"test_accuracy": 0.99, "train_seconds": 5.0},
    }
    by_title = {c["title"]: c for c in report.compare(entries)}
    tie = by_title["TensorFlow vs PyTorch (MLP)"]
    assert tie["more_accurate"] is None and tie["faster"] is None and tie["time_ratio"] == 1.0
    assert tie["sentence"] == "TensorFlow MLP and PyTorch MLP tie at 0.9700 test accuracy; both train in 10.0 s."
    gbm = by_title["XGBoost vs LightGBM"]
    assert gbm["time_ratio"] is None and gbm["faster"] == "xgboost"  # 0 s: no ratio, no division error
    assert by_title["TensorFlow vs PyTorch (CNN)"]["sentence"] == \
        "Not comparable: no evaluated run for TensorFlow CNN, PyTorch CNN."


def test_html_escapes_what_mlflow_returns():
    from mlops_tools.render import render_html

    entry = {"pipeline": "xgboost", "label": "XGBoost", "dag_id": "xgboost_pipeline",
             "error": "<script>alert(1)</script>"}
    html = render_html({"generated_at": "now", "mlflow_url": "http://x", "selection_rule": "r", "dataset": None,
                        "pipelines": {"xgboost": entry}, "comparisons": [],
                        "runtime": {"rows": [], "total_train_seconds": 0},
                        "summary": {"found": 0, "passed_gate": 0, "total": 1}})
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_upload_urls_follow_the_proxied_artifact_root():
    client = MlflowClient("http://127.0.0.1:5000/")
    assert client.artifact_upload_url("mlflow-artifacts:/3/abc/artifacts", "index.html") == \
        "http://127.0.0.1:5000/api/2.0/mlflow-artifacts/artifacts/3/abc/artifacts/index.html"
    assert client.artifact_upload_url("mlflow-artifacts://mlflow:5000/3/abc/artifacts", "a b.png") == \
        "http://127.0.0.1:5000/api/2.0/mlflow-artifacts/artifacts/3/abc/artifacts/a%20b.png"
    with pytest.raises(MlflowApiError, match="--serve-artifacts"):
        client.artifact_upload_url("/mlflow/artifacts/3/abc/artifacts", "index.html")


def test_unreachable_mlflow_exits_2(tmp_path, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = report.main(["--mlflow-url", f"http://127.0.0.1:{port}", "--out-dir", str(tmp_path),
                        "--timeout", "2"])
    assert code == 2
    assert "MLflow unreachable" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@needs_server
def test_tuning_studies_are_shown_beside_the_training_runs(built, seeded):
    study = next(r for r in seeded if r.get("kind") == "study")
    got = built["json"]["studies"]
    assert sorted(got) == sorted(P.BY_KEY)
    entry = got["pytorch_mlp"]
    assert entry["error"] is None and entry["run_id"] == study["parent_run_id"]
    assert entry["experiment"] == "pytorch_mnist_mlp_tuning" and entry["status"] == "FINISHED"
    assert entry["searched"] == ["hidden_units", "learning_rate"] and entry["n_trials"] == 4
    assert entry["states"] == {"COMPLETE": 2, "KILLED": 1, "PRUNED": 1}
    assert [(t["number"], t["state"], t["val_accuracy"]) for t in entry["trials"]] == [
        (0, "COMPLETE", 0.9731), (1, "PRUNED", 0.91), (2, "COMPLETE", 0.9768), (3, "KILLED", None)]
    assert entry["trials"][2]["params"] == {"hidden_units": "512", "learning_rate": "0.002"}
    assert (entry["best_trial"], entry["best_val_accuracy"], entry["test_accuracy"]) == (2, 0.9768, 0.9771)
    assert (entry["decision"], entry["reason"]) == (study["decision"], study["reason"])
    assert entry["trials_per_minute"] == 3.5 and entry["overlapped"] == "true"
    assert got["lightgbm"]["error"] == "no study yet (DAG lightgbm_pipeline_tuning)"
    # The training table still shows training runs only: the study's trials are elsewhere.
    assert built["json"]["pipelines"]["pytorch_mlp"]["run_id"] == latest(seeded, "pytorch_mlp")["run_id"]
    cells = Cells()
    cells.feed(built["html"])
    row = cells.rows["study-pytorch_mlp"]
    assert row[4][0] == "4 (2 complete, 1 killed, 1 pruned)"
    assert (row[5][1], row[6][1], row[7][1]) == (repr(0.9768), repr(0.9771), repr(3.5))
    assert row[9][0] == f"promoted: {study['reason']}"
    assert "no study yet" in cells.rows["study-lightgbm"][2][0]
