"""Model comparison report from MLflow: six pipelines side by side, with plots.

Reads the MLflow REST API only (no logs), writes
``<out-dir>/model-comparison-<stamp>/{index.html,report.json,*.png}`` and logs the
same files as artifacts of a run in the ``model_comparison`` experiment.

Which run stands for a pipeline (``--select``):

* ``latest`` (default): the newest FINISHED run of the pipeline's experiment that
  carries ``test_accuracy`` (i.e. was evaluated), with ``mlops.dataset = mnist``;
* ``champion``: the run behind the registered model's ``champion`` alias.

Usage::

    PYTHONPATH=tools python -m mlops_tools.report [--mlflow-url URL] [--out-dir DIR]
        [--select latest|champion] [--dataset mnist] [--no-log] [--strict] [--json]

Exit status: 0 report written (and logged); 1 written but logging to MLflow failed,
or ``--strict`` and a pipeline is missing or failed its gate; 2 MLflow unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops_tools import defaults
from mlops_tools import pipelines as P
from mlops_tools.mlflow_api import (
    Login,
    MlflowApiError,
    MlflowClient,
    add_login_arguments,
    kv,
    latest_metrics,
    read_login,
)

REPORT_EXPERIMENT = "model_comparison"
SELECTIONS = {
    "latest": "latest FINISHED run with a test_accuracy metric",
    "champion": "run behind the registered model's 'champion' alias",
}


# --------------------------------------------------------------------------- collect


def _filter(pipeline: P.Pipeline, dataset: str | None) -> str:
    clauses = ["attributes.status = 'FINISHED'", f"tags.`{P.TAG_PIPELINE}` = '{pipeline.key}'"]
    if dataset:
        clauses.append(f"tags.`{P.TAG_DATASET}` = '{dataset}'")
    return " and ".join(clauses)


def _latest_evaluated_run(client: MlflowClient, experiment_id: str, pipeline: P.Pipeline,
                          dataset: str | None) -> dict[str, Any] | None:
    runs = client.search_runs([experiment_id], _filter(pipeline, dataset),
                              order_by=["attributes.start_time DESC"], max_results=50, limit=500)
    for run in runs:
        if P.METRIC_TEST_ACCURACY in latest_metrics(run):
            return run
    return None


def _model_id(run: dict[str, Any], tags: dict[str, Any]) -> str | None:
    uri = tags.get(P.TAG_MODEL_URI) or ""
    if uri.startswith("models:/") and "/" not in uri[len("models:/"):]:
        return uri[len("models:/"):]
    outputs = (run.get("outputs") or {}).get("model_outputs") or []
    return outputs[0].get("model_id") if outputs else None


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def collect_pipeline(base_url: str, pipeline: P.Pipeline, select: str = "latest",
                     dataset: str | None = "mnist", timeout: float = 15.0, auth: Login | None = None) -> dict[str, Any]:
    """Everything the report shows about one pipeline, read from MLflow; ``error`` says what is missing."""
    client = MlflowClient(base_url, timeout=timeout, auth=auth)
    entry: dict[str, Any] = {
        "pipeline": pipeline.key, "label": pipeline.label, "dag_id": pipeline.dag_id,
        "experiment": pipeline.experiment, "registered_model": pipeline.registered_model,
        "library": pipeline.library, "family": pipeline.family, "step_unit": pipeline.step_unit,
        "error": None,
    }
    champion = client.version_by_alias(pipeline.registered_model, P.CHAMPION_ALIAS)
    entry["champion_version"] = _int_or_none(champion.get("version")) if champion else None
    entry["champion_run_id"] = champion.get("run_id") if champion else None
    experiment = client.experiment_by_name(pipeline.experiment)
    if experiment is None:
        entry["error"] = f"experiment {pipeline.experiment!r} does not exist (DAG never ran?)"
        return entry
    entry["experiment_id"] = experiment["experiment_id"]
    run: dict[str, Any] | None
    if select == "champion":
        if not entry["champion_run_id"]:
            entry["error"] = f"registered model {pipeline.registered_model!r} has no '{P.CHAMPION_ALIAS}' alias"
            return entry
        run = client.get_run(entry["champion_run_id"])
    else:
        run = _latest_evaluated_run(client, experiment["experiment_id"], pipeline, dataset)
        if run is None:
            entry["error"] = "no FINISHED run with test_accuracy" + (f" on dataset {dataset!r}" if dataset else "")
            return entry
    info, data = run["info"], run.get("data", {})
    # A champion from a tuning study lives in the tuning experiment: link the run where it is.
    entry["experiment_id"] = info.get("experiment_id", entry["experiment_id"])
    tags, params, metrics = kv(data.get("tags")), kv(data.get("params")), latest_metrics(run)
    gate = _float_or_none(tags.get(P.TAG_GATE))
    accuracy = metrics.get(P.METRIC_TEST_ACCURACY)
    passed_tag = tags.get(P.TAG_GATE_PASSED)
    entry.update({
        "run_id": info["run_id"], "run_name": info.get("run_name"), "status": info.get("status"),
        "start_time": _int_or_none(info.get("start_time")), "end_time": _int_or_none(info.get("end_time")),
        "dag_run_id": tags.get(P.TAG_DAG_RUN_ID), "dataset": tags.get(P.TAG_DATASET),
        "test_accuracy": accuracy,
        "train_seconds": metrics.get(P.METRIC_TRAIN_SECONDS),
        "evaluate_seconds": metrics.get(P.METRIC_EVALUATE_SECONDS),
        "gate": gate if gate is not None else pipeline.plan_gate,
        "gate_source": "run tag mlops.gate" if gate is not None else "plan floor (run has no mlops.gate tag)",
        "steps_param": _int_or_none(params.get(pipeline.steps_param)),
        "registered_version": _int_or_none(tags.get(P.TAG_REGISTERED_VERSION)),
        "champion_tag": tags.get(P.TAG_CHAMPION),
        "model_uri": tags.get(P.TAG_MODEL_URI),
        "params": dict(sorted(params.items())),
        "library_versions": {k[len(P.VERSION_TAG_PREFIX):]: v for k, v in sorted(tags.items())
                             if k.startswith(P.VERSION_TAG_PREFIX)},
    })
    threshold = entry["gate"]
    recomputed = accuracy > threshold if accuracy is not None else None
    entry["gate_passed"] = (passed_tag == "true") if passed_tag in ("true", "false") else recomputed
    entry["gate_passed_source"] = "run tag mlops.gate_passed" if passed_tag in ("true", "false") else "computed"
    if recomputed is not None and entry["gate_passed"] != recomputed:
        entry["warning"] = f"mlops.gate_passed={passed_tag} disagrees with {accuracy} > {threshold}"
    entry["is_champion"] = (entry["champion_version"] is not None
                            and entry["registered_version"] == entry["champion_version"])
    entry["curves"] = {
        key: [[m["step"], m["value"]] for m in client.metric_history(info["run_id"], key)]
        for key in P.CURVE_METRICS
    }
    entry["steps"] = len({step for step, _ in entry["curves"].get("val_accuracy", [])}) or None
    model_id = _model_id(run, tags)
    entry["model_id"] = model_id
    files: list[dict[str, Any]] = []
    if model_id:
        try:
            files = client.logged_model_artifacts(model_id)
        except MlflowApiError as exc:
            entry["model_size_error"] = str(exc)
    run_files = client.run_artifacts(info["run_id"])
    if not files:  # MLflow 2 style: the model lives under the run's artifacts
        files = [f for f in run_files if f["path"].split("/")[0] == "model"]
    entry["model_files"] = len(files)
    entry["model_size_bytes"] = sum(f["file_size"] for f in files) if files else None
    entry["run_artifacts_bytes"] = sum(f["file_size"] for f in run_files)
    return entry


def collect_study(base_url: str, pipeline: P.Pipeline, timeout: float = 15.0,
                  auth: Login | None = None) -> dict[str, Any]:
    """The pipeline's newest tuning study (parent run and its trial runs); ``error`` when there is none."""
    client = MlflowClient(base_url, timeout=timeout, auth=auth)
    entry: dict[str, Any] = {"pipeline": pipeline.key, "label": pipeline.label, "dag_id": pipeline.tuning_dag_id,
                             "experiment": pipeline.tuning_experiment, "error": None}
    experiment = client.experiment_by_name(pipeline.tuning_experiment)
    runs = [] if experiment is None else client.search_runs(
        [experiment["experiment_id"]], f"tags.`{P.TAG_STUDY_ROLE}` = 'study'",
        order_by=["attributes.start_time DESC"], max_results=1, limit=1)
    if not runs:
        entry["error"] = f"no study yet (DAG {pipeline.tuning_dag_id})"
        return entry
    parent = runs[0]
    info, data = parent["info"], parent.get("data", {})
    tags, params, metrics = kv(data.get("tags")), kv(data.get("params")), latest_metrics(parent)
    searched = sorted(name[len("space."):] for name in params if name.startswith("space."))
    children = client.search_runs([experiment["experiment_id"]], f"tags.`{P.TAG_STUDY}` = '{info['run_id']}'",
                                  order_by=["attributes.start_time ASC"], max_results=1000)
    trials = []
    for run in children:
        c_tags, c_params, c_metrics = kv(run["data"].get("tags")), kv(run["data"].get("params")), latest_metrics(run)
        status = run["info"].get("status")
        trials.append({
            "number": _int_or_none(c_tags.get(P.TAG_TRIAL)), "run_id": run["info"]["run_id"], "status": status,
            "state": c_tags.get(P.TAG_TRIAL_STATE) if status == "FINISHED" else status,
            "val_accuracy": c_metrics.get("val_accuracy"), "trial_seconds": c_metrics.get(P.METRIC_TRIAL_SECONDS),
            "start_time": _int_or_none(run["info"].get("start_time")),
            "end_time": _int_or_none(run["info"].get("end_time")),
            "params": {name: c_params.get(name) for name in searched},
        })
    entry.update({
        "run_id": info["run_id"], "experiment_id": experiment["experiment_id"], "status": info.get("status"),
        "start_time": _int_or_none(info.get("start_time")), "end_time": _int_or_none(info.get("end_time")),
        "dag_run_id": tags.get(P.TAG_DAG_RUN_ID), "searched": searched,
        "n_trials": _int_or_none(params.get("n_trials")), "trial_runs": len(trials),
        "states": {state: sum(1 for t in trials if t["state"] == state)
                   for state in sorted({str(t["state"]) for t in trials})},
        "best_trial": _int_or_none(tags.get(P.TAG_BEST_TRIAL)),
        "best_val_accuracy": metrics.get("best_val_accuracy"),
        "test_accuracy": metrics.get(P.METRIC_TEST_ACCURACY),
        "trials_per_minute": metrics.get(P.METRIC_TRIALS_PER_MINUTE),
        "overlapped": tags.get("mlops.trials_overlapped"),
        "decision": tags.get(P.TAG_CHAMPION_DECISION), "reason": tags.get(P.TAG_CHAMPION_REASON),
        "registered_version": _int_or_none(tags.get(P.TAG_REGISTERED_VERSION)),
        "trials": trials,
    })
    return entry


def compare(entries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The execution plan's comparisons with their numbers and one sentence each."""
    out = []
    for title, left, right, aspect in P.COMPARISONS:
        a, b = entries.get(left, {}), entries.get(right, {})
        item: dict[str, Any] = {"title": title, "aspect": aspect, "left": left, "right": right}
        acc_a, acc_b = a.get("test_accuracy"), b.get("test_accuracy")
        sec_a, sec_b = a.get("train_seconds"), b.get("train_seconds")
        if None in (acc_a, acc_b, sec_a, sec_b):
            missing = [P.BY_KEY[k].label for k, e in ((left, a), (right, b))
                       if e.get("test_accuracy") is None or e.get("train_seconds") is None]
            item["sentence"] = f"Not comparable: no evaluated run for {', '.join(missing)}."
            out.append(item)
            continue
        la, lb = P.BY_KEY[left].label, P.BY_KEY[right].label
        diff_pp = (acc_b - acc_a) * 100.0
        item.update({
            "left_accuracy": acc_a, "right_accuracy": acc_b, "accuracy_diff_pp": diff_pp,
            "more_accurate": left if acc_a > acc_b else right if acc_b > acc_a else None,
            "left_train_seconds": sec_a, "right_train_seconds": sec_b,
            "faster": left if sec_a < sec_b else right if sec_b < sec_a else None,
            "time_ratio": (max(sec_a, sec_b) / min(sec_a, sec_b)) if min(sec_a, sec_b) > 0 else None,
            "left_model_bytes": a.get("model_size_bytes"), "right_model_bytes": b.get("model_size_bytes"),
        })
        if item["more_accurate"] is None:
            acc_text = f"{la} and {lb} tie at {acc_a:.4f} test accuracy"
        else:
            win = la if item["more_accurate"] == left else lb
            hi, lo = max(acc_a, acc_b), min(acc_a, acc_b)
            acc_text = f"{win} is more accurate: {hi:.4f} vs {lo:.4f} ({abs(diff_pp):.2f} pp)"
        if item["faster"] is None or item["time_ratio"] is None:
            time_text = f"both train in {sec_a:.1f} s"
        else:
            fast, slow = (la, lb) if item["faster"] == left else (lb, la)
            fs, ss = min(sec_a, sec_b), max(sec_a, sec_b)
            time_text = f"{fast} trains {item['time_ratio']:.2f}× faster: {fs:.1f} s vs {ss:.1f} s ({slow})"
        item["sentence"] = f"{acc_text}; {time_text}."
        out.append(item)
    return out


def runtime_analysis(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Training time ranking, time per epoch/round and each pipeline's share of the total."""
    timed = [e for e in entries.values() if e.get("train_seconds") is not None]
    total = sum(e["train_seconds"] for e in timed)
    rows = []
    for e in sorted(timed, key=lambda e: e["train_seconds"]):
        steps = e.get("steps")
        rows.append({
            "pipeline": e["pipeline"], "train_seconds": e["train_seconds"],
            "steps": steps, "step_unit": e["step_unit"],
            "seconds_per_step": e["train_seconds"] / steps if steps else None,
            "share_of_total": e["train_seconds"] / total if total else None,
            "evaluate_seconds": e.get("evaluate_seconds"),
        })
    return {
        "total_train_seconds": total, "rows": rows,
        "fastest": rows[0]["pipeline"] if rows else None,
        "slowest": rows[-1]["pipeline"] if rows else None,
    }


def collect(base_url: str, select: str = "latest", dataset: str | None = "mnist",
            timeout: float = 15.0, auth: Login | None = None) -> dict[str, Any]:
    """The whole report as one JSON-ready dict (pipelines read in parallel)."""
    probe = MlflowClient(base_url, timeout=timeout, auth=auth)
    probe.search_experiments(max_results=1)  # a real API call: raises when unreachable or refused
    with ThreadPoolExecutor(max_workers=len(P.PIPELINES)) as pool:
        futures = {p.key: pool.submit(collect_pipeline, base_url, p, select, dataset, timeout, auth)
                   for p in P.PIPELINES}
        study_futures = {p.key: pool.submit(collect_study, base_url, p, timeout, auth) for p in P.PIPELINES}
    studies: dict[str, dict[str, Any]] = {}
    for key, future in study_futures.items():
        try:
            studies[key] = future.result()
        except MlflowApiError as exc:
            studies[key] = {"pipeline": key, "label": P.BY_KEY[key].label, "dag_id": P.BY_KEY[key].tuning_dag_id,
                            "experiment": P.BY_KEY[key].tuning_experiment, "error": str(exc)}
    entries: dict[str, dict[str, Any]] = {}
    for key, future in futures.items():
        try:
            entries[key] = future.result()
        except MlflowApiError as exc:
            p = P.BY_KEY[key]
            entries[key] = {"pipeline": key, "label": p.label, "dag_id": p.dag_id, "experiment": p.experiment,
                            "registered_model": p.registered_model, "library": p.library,
                            "family": p.family, "step_unit": p.step_unit, "error": str(exc)}
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mlflow_url": base_url, "mlflow_version": probe.version(),
        "selection": select, "selection_rule": SELECTIONS[select], "dataset": dataset,
        "pipelines": entries,
        "studies": studies,
        "comparisons": compare(entries),
        "runtime": runtime_analysis(entries),
        "summary": {
            "found": sum(1 for e in entries.values() if not e.get("error")),
            "passed_gate": sum(1 for e in entries.values() if e.get("gate_passed")),
            "total": len(entries),
        },
    }


# --------------------------------------------------------------------------- write


def write_report(report: dict[str, Any], out_dir: Path, stamp: str) -> Path:
    """Write PNGs, report.json and index.html into ``out_dir/model-comparison-<stamp>``."""
    from mlops_tools import plots
    from mlops_tools.render import render_html

    target = out_dir / f"model-comparison-{stamp}"
    target.mkdir(parents=True, exist_ok=True)
    entries = report["pipelines"]
    images: dict[str, str] = {}
    found = {k: e for k, e in entries.items() if not e.get("error")}
    figure = plots.accuracy_vs_time_figure(found)
    images["accuracy_vs_time"] = plots.save(figure, target / "accuracy-vs-time.png").name
    figure = plots.validation_overview_figure(found)
    images["val_accuracy_overview"] = plots.save(figure, target / "val-accuracy-overview.png").name
    for key, entry in found.items():
        figure = plots.learning_curves_figure(entry)
        images[f"curves_{key}"] = plots.save(figure, target / f"curves-{key}.png").name
    report["images"] = images
    report["stamp"] = stamp
    (target / "report.json").write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    (target / "index.html").write_text(render_html(report, target), encoding="utf-8")
    return target


def log_to_mlflow(client: MlflowClient, report: dict[str, Any], folder: Path,
                  experiment: str = REPORT_EXPERIMENT) -> dict[str, Any]:
    """Create a run in ``experiment`` and upload index.html, report.json and the PNGs as its artifacts."""
    experiment_id = client.ensure_experiment(experiment)
    run = client.create_run(experiment_id, folder.name, {
        "mlops.report": "model_comparison", "mlops.report_stamp": report["stamp"],
        "mlops.selection": report["selection"],
        "mlflow.note.content": f"Model comparison report {report['stamp']} ({report['selection_rule']})",
    })
    run_id = run["info"]["run_id"]
    try:
        metrics = {f"{key}.test_accuracy": e["test_accuracy"] for key, e in report["pipelines"].items()
                   if e.get("test_accuracy") is not None}
        metrics.update({f"{key}.train_seconds": e["train_seconds"] for key, e in report["pipelines"].items()
                        if e.get("train_seconds") is not None})
        params = {f"{key}.run_id": e["run_id"] for key, e in report["pipelines"].items() if e.get("run_id")}
        client.log_batch(run_id, metrics=metrics, params=params)
        uploaded = []
        for path in sorted(folder.iterdir()):
            if path.is_file():
                client.upload_artifact(run["info"]["artifact_uri"], path, path.name)
                uploaded.append(path.name)
    except MlflowApiError:
        client.end_run(run_id, "FAILED")
        raise
    client.end_run(run_id, "FINISHED")
    return {"experiment_id": experiment_id, "run_id": run_id, "artifacts": uploaded,
            "url": f"{client.base_url}/#/experiments/{experiment_id}/runs/{run_id}"}


# --------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlops_tools.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlflow-url", default=defaults.MLFLOW_URL, help="MLflow base URL (default %(default)s)")
    add_login_arguments(parser)
    parser.add_argument("--out-dir", default=defaults.REPORTS_DIR, type=Path,
                        help="reports directory; the report goes to <out-dir>/model-comparison-<stamp>/ (default %(default)s)")
    parser.add_argument("--select", choices=sorted(SELECTIONS), default="latest",
                        help="which run stands for a pipeline (default %(default)s)")
    parser.add_argument("--dataset", default="mnist",
                        help="only runs tagged mlops.dataset=<value>; '' for any (default %(default)s)")
    parser.add_argument("--experiment", default=REPORT_EXPERIMENT,
                        help="MLflow experiment that receives the report run (default %(default)s)")
    parser.add_argument("--no-log", action="store_true", help="do not log the report to MLflow")
    parser.add_argument("--stamp", default=None, help="folder stamp (default: UTC now, YYYYmmddTHHMMSSZ)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per HTTP request (default %(default)s)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 unless all six pipelines have an evaluated run that passed its gate")
    parser.add_argument("--json", action="store_true", help="print the report JSON instead of a summary")
    return parser.parse_args(argv)


def _size_text(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 1e6:.2f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def _summary_lines(report: dict[str, Any], folder: Path) -> list[str]:
    lines = [f"Model comparison ({report['selection_rule']}) from {report['mlflow_url']}"]
    lines.append(f"{'pipeline':<16} {'accuracy':>9} {'gate':>6} {'pass':>5} {'train s':>8} {'steps':>6}"
                 f" {'model':>10} {'version':>8}")
    for e in report["pipelines"].values():
        if e.get("error"):
            lines.append(f"{e['label']:<16} -- {e['error']}")
            continue
        size = e.get("model_size_bytes")
        lines.append(
            f"{e['label']:<16} {e['test_accuracy']:>9.4f} {e['gate']:>6g} {'yes' if e['gate_passed'] else 'NO':>5}"
            f" {e['train_seconds'] if e['train_seconds'] is not None else float('nan'):>8.1f}"
            f" {e.get('steps') or '-':>6} {_size_text(size):>10}"
            f" {('v' + str(e['registered_version']) + ('*' if e['is_champion'] else '')) if e.get('registered_version') else '-':>8}"
        )
    for c in report["comparisons"]:
        lines.append(f"{c['title']}: {c['sentence']}")
    studies = [s for s in report.get("studies", {}).values() if not s.get("error")]
    lines.append(f"Tuning studies (newest per pipeline): {len(studies) or 'none yet'}")
    for s in studies:
        states = ", ".join(f"{n} {state.lower()}" for state, n in s["states"].items())
        best = f"{s['best_val_accuracy']:.4f}" if s.get("best_val_accuracy") is not None else "-"
        rate = f"{s['trials_per_minute']:.2f}/min" if s.get("trials_per_minute") is not None else "-"
        lines.append(f"{s['label']:<16} {s['trial_runs']} trial runs ({states}); best val {best}; {rate};"
                     f" {s.get('decision') or 'no decision'}: {s.get('reason') or s.get('status')}")
    lines.append(f"Report: {folder / 'index.html'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        auth = read_login(args.mlflow_user, args.mlflow_password_file)
        client = MlflowClient(args.mlflow_url, timeout=args.timeout, auth=auth)
        report = collect(args.mlflow_url, args.select, args.dataset or None, args.timeout, auth)
    except MlflowApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stamp = args.stamp or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = write_report(report, args.out_dir, stamp)
    status = 0
    if not args.no_log:
        try:
            report["mlflow_run"] = log_to_mlflow(client, report, folder, args.experiment)
            (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        except MlflowApiError as exc:
            print(f"error: report written to {folder}, but logging it to MLflow failed: {exc}", file=sys.stderr)
            status = 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(_summary_lines(report, folder)))
        if report.get("mlflow_run"):
            print(f"Logged to MLflow: {report['mlflow_run']['url']}")
        print(f"({time.perf_counter() - started:.1f} s)")
    if args.strict and report["summary"]["passed_gate"] < report["summary"]["total"]:
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
