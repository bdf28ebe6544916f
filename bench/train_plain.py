"""Plain training benchmark: time and test accuracy per model on the full MNIST, no Airflow.

    python bench/train_plain.py [--data PATH] [--models xgboost,pytorch_cnn]
                                [--hp xgboost.max_bin=64 ...] [--threads N]

Uses the same recipes, default hyper-parameters, validation split and seed as
the DAGs (so the figures are what a DAG's train task spends before logging).
Prints a table, then one JSON line. Figures are measured, never asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "files" / "dags"))

from mlops_training import data as mdata
from mlops_training import gates, pipeline, recipes, settings


def _parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        target, _, value = item.partition("=")
        key, _, name = target.partition(".")
        overrides.setdefault(key, {})[name] = json.loads(value)
    return overrides


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="mnist.npz (default: staged into ~/.cache/mlops-bench)")
    parser.add_argument("--models", default=",".join(settings.PIPELINES))
    parser.add_argument("--hp", action="append", default=[], help="override, e.g. xgboost.max_bin=64")
    parser.add_argument("--threads", type=int, default=0, help="0 = the CPU quota")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one model, JSON out
    args = parser.parse_args()

    path = Path(args.data) if args.data else Path.home() / ".cache" / "mlops-bench" / "mnist.npz"
    if not args.data:
        mdata.stage_mnist(path, url=None)
    mnist = mdata.load_mnist(path)
    overrides = _parse_overrides(args.hp)
    document = {"pipelines": {k: {"hyperparameters": v} for k, v in overrides.items()}}
    all_settings = settings.parse_settings(document)
    threads = recipes.resolve_threads(args.threads)

    if args.one:
        print(json.dumps(_train_one(args.one, mnist, all_settings[args.one], threads)))
        return 0

    rows = []
    for key in args.models.split(","):
        module = recipes.LIBRARY_MODULES[key]
        if importlib.util.find_spec(module) is None:
            print(f"skip {key}: {module} is not installed", file=sys.stderr)
            continue
        # One process per model, like one Airflow task per process: libraries' thread pools
        # (two OpenMP runtimes, TF's own) do not meet, and each starts cold.
        command = [sys.executable, __file__, "--data", str(path), "--one", key, "--threads", str(threads),
                   *[f"--hp={item}" for item in args.hp]]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{key} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"done {key}: {rows[-1]}", file=sys.stderr, flush=True)

    print(f"{'model':<16}{'library':<24}{'train s':>9}{'cpu s':>8}{'test acc':>10}{'gate':>7}  pass")
    for r in rows:
        print(f"{r['model']:<16}{r['library']:<24}{r['train_seconds']:>9.1f}{r['cpu_seconds']:>8.1f}"
              f"{r['test_accuracy']:>10.4f}{r['gate']:>7.2f}  {'yes' if r['passes_gate'] else 'NO'}")
    print(json.dumps({"threads": threads, "load_average": os.getloadavg(), "results": rows}))
    return 0 if rows and all(r["passes_gate"] for r in rows) else 1


def _train_one(key: str, mnist: mdata.Mnist, cfg: settings.PipelineSettings, threads: int) -> dict[str, Any]:
    """Train one model on the full MNIST and score it on the 10k test digits."""
    validation_size = int(cfg.hyperparameters["validation_size"])
    train_data, x_test, y_test = pipeline.mnist_splits(mnist, validation_size, cfg.seed)
    recipe = recipes.get_recipe(key)
    cpu_started = time.process_time()
    result = recipe.train(train_data, cfg.hyperparameters, cfg.seed, threads)
    cpu_seconds = time.process_time() - cpu_started
    started = time.perf_counter()
    acc = recipes.accuracy(key, result.model, x_test, y_test)
    return {
        "model": key, "library": f"{result.library} {result.library_version}",
        "train_seconds": round(result.train_seconds, 1),
        # CPU time of all threads: on a busy host wall time inflates, this does not (much).
        "cpu_seconds": round(cpu_seconds, 1),
        "predict_seconds": round(time.perf_counter() - started, 2),
        "test_accuracy": round(acc, 4), "gate": cfg.gate, "passes_gate": gates.passes(acc, cfg.gate),
        "epochs_or_rounds": len(result.history["val_accuracy"]),
        "final_val_accuracy": round(result.history["val_accuracy"][-1], 4),
    }


if __name__ == "__main__":
    raise SystemExit(main())
