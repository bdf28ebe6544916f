"""The report's HTML page: one self-contained file next to its PNGs.

The PNGs are embedded as data URIs (``data-file`` names the PNG beside the page), so the
page also renders inside MLflow's artifact viewer, which shows HTML in a sandboxed
frame where relative image links do not resolve.

Every number cell carries the exact value read from MLflow in ``data-value``
(Python ``repr`` of the float), while its text shows it rounded for reading;
tests compare both with what was logged.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from mlops_tools.pipelines import BY_KEY

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222;max-width:1200px}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}.missing{color:#888}
img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
.meta{color:#555;font-size:.85rem}code{background:#f5f5f5;padding:0 .2rem}
"""


def _num(value: Any, fmt: str, suffix: str = "") -> str:
    if value is None:
        return '<td class="num missing">–</td>'
    return f'<td class="num" data-value="{escape(repr(value))}">{format(value, fmt)}{suffix}</td>'


def _bytes(value: int | None) -> str:
    if value is None:
        return '<td class="num missing">–</td>'
    text = f"{value / 1e6:.2f} MB" if value >= 100_000 else f"{value / 1e3:.1f} kB"
    return f'<td class="num" data-value="{value}" title="{value} bytes">{text}</td>'


def _run_link(report: dict[str, Any], entry: dict[str, Any]) -> str:
    if not entry.get("run_id"):
        return "–"
    url = f"{report['mlflow_url'].rstrip('/')}/#/experiments/{entry['experiment_id']}/runs/{entry['run_id']}"
    return f'<a href="{escape(url)}"><code>{escape(entry["run_id"][:8])}</code></a>'


def _summary_table(report: dict[str, Any]) -> str:
    head = ("<tr><th>pipeline</th><th>DAG</th><th>run</th><th>test accuracy</th><th>gate (&gt;)</th>"
            "<th>gate result</th><th>training time</th><th>epochs / rounds</th><th>model size</th>"
            "<th>registered version</th><th>champion</th></tr>")
    rows = []
    for key, e in report["pipelines"].items():
        label = escape(e["label"])
        if e.get("error"):
            rows.append(f'<tr id="row-{key}"><td>{label}</td><td><code>{escape(e["dag_id"])}</code></td>'
                        f'<td colspan="9" class="missing">{escape(e["error"])}</td></tr>')
            continue
        passed = e.get("gate_passed")
        verdict = ('<td class="pass">pass</td>' if passed else '<td class="fail">FAIL</td>') \
            if passed is not None else '<td class="missing">–</td>'
        steps = e.get("steps")
        steps_cell = (f'<td class="num" data-value="{steps}">{steps} {escape(e["step_unit"])}s</td>'
                      if steps else '<td class="num missing">–</td>')
        version = e.get("registered_version")
        version_cell = (f'<td class="num" data-value="{version}">v{version}</td>'
                        if version is not None else '<td class="missing">not registered</td>')
        champion = e.get("champion_version")
        champion_text = ("yes (this run)" if e.get("is_champion")
                         else f"no (champion is v{champion})" if champion is not None else "no champion")
        rows.append(
            f'<tr id="row-{key}"><td>{label}</td><td><code>{escape(e["dag_id"])}</code></td>'
            f"<td>{_run_link(report, e)}</td>"
            f'{_num(e.get("test_accuracy"), ".4f")}{_num(e.get("gate"), "g")}{verdict}'
            f'{_num(e.get("train_seconds"), ".1f", " s")}{steps_cell}{_bytes(e.get("model_size_bytes"))}'
            f"{version_cell}<td>{escape(champion_text)}</td></tr>"
        )
    return f'<table id="summary">{head}{"".join(rows)}</table>'


def _comparisons(report: dict[str, Any]) -> str:
    parts = []
    for c in report["comparisons"]:
        left, right = BY_KEY[c["left"]].label, BY_KEY[c["right"]].label
        if "left_accuracy" not in c:
            parts.append(f"<h3>{escape(c['title'])}</h3><p class=\"missing\">{escape(c['sentence'])}</p>")
            continue
        table = (
            f"<table><tr><th></th><th>{escape(left)}</th><th>{escape(right)}</th></tr>"
            f"<tr><td>test accuracy</td>{_num(c['left_accuracy'], '.4f')}{_num(c['right_accuracy'], '.4f')}</tr>"
            f"<tr><td>training time</td>{_num(c['left_train_seconds'], '.1f', ' s')}"
            f"{_num(c['right_train_seconds'], '.1f', ' s')}</tr>"
            f"<tr><td>model size</td>{_bytes(c['left_model_bytes'])}{_bytes(c['right_model_bytes'])}</tr></table>"
        )
        parts.append(f'<h3>{escape(c["title"])}</h3>{table}<p class="sentence">{escape(c["sentence"])}</p>')
    return "".join(parts)


def _runtime(report: dict[str, Any]) -> str:
    rt = report["runtime"]
    if not rt["rows"]:
        return '<p class="missing">No timed runs.</p>'
    rows = []
    for r in rt["rows"]:
        rows.append(
            f"<tr><td>{escape(BY_KEY[r['pipeline']].label)}</td>{_num(r['train_seconds'], '.1f', ' s')}"
            f"{_num(r['seconds_per_step'], '.2f', ' s')}<td>{escape(r['step_unit'])}</td>"
            f"{_num(r['share_of_total'] * 100 if r['share_of_total'] is not None else None, '.0f', ' %')}"
            f"{_num(r['evaluate_seconds'], '.1f', ' s')}</tr>"
        )
    return (
        "<table id=\"runtime\"><tr><th>pipeline (fastest first)</th><th>training time</th><th>per step</th>"
        "<th>step</th><th>share of total</th><th>evaluation time</th></tr>" + "".join(rows) + "</table>"
        f"<p>Total training time of the {len(rt['rows'])} runs: {rt['total_train_seconds']:.1f} s; fastest "
        f"{escape(BY_KEY[rt['fastest']].label)}, slowest {escape(BY_KEY[rt['slowest']].label)}.</p>"
    )


def _studies(report: dict[str, Any]) -> str:
    head = ("<tr><th>pipeline</th><th>tuning DAG</th><th>study run</th><th>status</th><th>trial runs</th>"
            "<th>best val accuracy</th><th>best's test accuracy</th><th>trials / min</th><th>in parallel</th>"
            "<th>champion decision</th></tr>")
    rows = []
    for key, s in report.get("studies", {}).items():
        label = escape(s["label"])
        if s.get("error"):
            rows.append(f'<tr id="study-{key}"><td>{label}</td><td><code>{escape(s["dag_id"])}</code></td>'
                        f'<td colspan="8" class="missing">{escape(s["error"])}</td></tr>')
            continue
        states = ", ".join(f"{n} {escape(state.lower())}" for state, n in s["states"].items())
        decision = escape(s.get("decision") or "–") + (f": {escape(s['reason'])}" if s.get("reason") else "")
        rows.append(
            f'<tr id="study-{key}"><td>{label}</td><td><code>{escape(s["dag_id"])}</code></td>'
            f"<td>{_run_link(report, s)}</td><td>{escape(str(s.get('status')))}</td>"
            f'<td data-value="{s["trial_runs"]}">{s["trial_runs"]} ({states})</td>'
            f'{_num(s.get("best_val_accuracy"), ".4f")}{_num(s.get("test_accuracy"), ".4f")}'
            f'{_num(s.get("trials_per_minute"), ".2f")}<td>{escape(str(s.get("overlapped") or "–"))}</td>'
            f"<td>{decision}</td></tr>"
        )
    return (f'<table id="studies">{head}{"".join(rows)}</table><p class="meta">Each study is a parent run in '
            "<code>&lt;experiment&gt;_tuning</code> with one child run per trial; its summary plot and trial table "
            "are the parent run's artifacts <code>study/summary.svg</code> and <code>study/trials.json</code>.</p>")


def _details(report: dict[str, Any]) -> str:
    parts = []
    for e in report["pipelines"].values():
        if e.get("error"):
            continue
        params = ", ".join(f"{escape(k)}={escape(str(v))}" for k, v in e.get("params", {}).items())
        versions = ", ".join(f"{escape(k)} {escape(str(v))}" for k, v in e.get("library_versions", {}).items())
        warning = f'<p class="fail">{escape(e["warning"])}</p>' if e.get("warning") else ""
        parts.append(
            f"<h3>{escape(e['label'])}</h3>{warning}<p class=\"meta\">run <code>{escape(e['run_id'])}</code>"
            f" ({escape(str(e.get('run_name')))}), DAG run <code>{escape(str(e.get('dag_run_id')))}</code>,"
            f" model <code>{escape(str(e.get('model_uri')))}</code> ({e.get('model_files', 0)} files);"
            f" gate from {escape(e['gate_source'])}</p>"
            f"<p class=\"meta\">params: {params or '–'}</p><p class=\"meta\">versions: {versions or '–'}</p>"
        )
    return "".join(parts)


def _img(folder: Path | None, name: str | None, alt: str) -> str:
    if not name:
        return f'<p class="missing">no figure: {escape(alt)}</p>'
    src = name
    if folder is not None:
        src = "data:image/png;base64," + base64.b64encode((folder / name).read_bytes()).decode("ascii")
    return f'<img src="{escape(src)}" data-file="{escape(name)}" alt="{escape(alt)}">'


def render_html(report: dict[str, Any], folder: Path | None = None) -> str:
    """The page; with ``folder`` (where the PNGs are) the images are embedded, else linked."""
    images = report.get("images", {})
    s = report["summary"]
    curves = "".join(
        _img(folder, images[f"curves_{key}"], f"learning curves of {e['label']}")
        for key, e in report["pipelines"].items() if f"curves_{key}" in images
    )
    run_note = f", dataset <code>{escape(report['dataset'])}</code>" if report.get("dataset") else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Model comparison {escape(report.get('stamp', ''))}</title><style>{CSS}</style></head>
<body>
<h1>Model comparison — MNIST training pipelines</h1>
<p class="meta">Generated {escape(report['generated_at'])} from MLflow
<a href="{escape(report['mlflow_url'])}">{escape(report['mlflow_url'])}</a>
(version {escape(str(report.get('mlflow_version')))}). Each pipeline is represented by its
<strong>{escape(report['selection_rule'])}</strong>{run_note}.
{s['found']} of {s['total']} pipelines found, {s['passed_gate']} passed their gate.</p>
<h2>Summary</h2>
{_summary_table(report)}
<h2>Accuracy vs training time</h2>
{_img(folder, images.get('accuracy_vs_time'), 'test accuracy against training time with gates, and the margin above each gate')}
<h2>Comparisons</h2>
{_comparisons(report)}
<h2>Run-time analysis</h2>
{_runtime(report)}
<h2>Learning curves</h2>
{_img(folder, images.get('val_accuracy_overview'), 'validation accuracy of all pipelines')}
{curves}
<h2>Tuning studies</h2>
{_studies(report)}
<h2>Run details</h2>
{_details(report)}
</body></html>
"""
