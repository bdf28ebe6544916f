#!/usr/bin/env python3
"""Run the training and DAG test suites inside the images production runs.

The worker image has every ML library, so tests/training must run there with nothing
skipped; the control-plane image has Airflow but none of TensorFlow, PyTorch, XGBoost or
LightGBM, which is exactly what the DAG integrity test must prove parsing needs.

The images are read from the running compose project (MLOPS_COMPOSE_PROJECT, default
lakehouse-tick). The repository is mounted read-only; pytest comes from --pytest, a
directory of pure-Python wheels installed with `pip --target` (outside the clone), so the
images stay free of test tools.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")

SUITES = (
    # (container whose image to use, test paths, skips allowed)
    ("airflow-worker", ["tests/training", "tests/dags", "tests/airflow/test_airflow_celery_worker_config.py"], False),
    ("airflow-scheduler", ["tests/dags", "tests/training/test_training_settings.py",
                           "tests/training/test_training_gates.py", "tests/training/test_training_tuning.py"], True),
)


def image_of(project: str, service: str) -> str:
    out = subprocess.run(["docker", "inspect", "--format", "{{.Config.Image}}", f"{project}-{service}-1"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"{project}-{service}-1 is not running ({out.stderr.strip()}); converge the stack first")
    return out.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pytest", required=True, help="directory with pytest installed by pip --target")
    parser.add_argument("--project", default=os.environ.get("MLOPS_COMPOSE_PROJECT", "lakehouse-tick"))
    # A candidate image (e.g. a worker with one more package) before any stack runs it.
    parser.add_argument("--worker-image", help="test this image instead of the project's airflow-worker's")
    parser.add_argument("--control-plane-image", help="test this image instead of the project's airflow-scheduler's")
    args = parser.parse_args()
    overrides = {"airflow-worker": args.worker_image, "airflow-scheduler": args.control_plane_image}

    failed = False
    for service, paths, skips_allowed in SUITES:
        image = overrides[service] or image_of(args.project, service)
        cmd = ["docker", "run", "--rm", "--network", "none",
               "-v", f"{REPO}:/src:ro", "-v", f"{Path(args.pytest).resolve()}:/opt/pytest:ro",
               "-e", "PYTHONPATH=/opt/pytest", "-e", "PYTHONDONTWRITEBYTECODE=1", "-w", "/src",
               "--entrypoint", "python", image,
               "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *paths]
        print(f"== {image} ({service}): pytest {' '.join(paths)}", flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        print(proc.stdout[-6000:], proc.stderr[-2000:], sep="\n", flush=True)
        counts = {kind.rstrip("s"): int(n) for n, kind in SUMMARY.findall(proc.stdout.splitlines()[-1] if proc.stdout else "")}
        if proc.returncode != 0:
            print(f"!! {service}: pytest exited {proc.returncode}")
            failed = True
        elif counts.get("skipped", 0) and not skips_allowed:
            print(f"!! {service}: {counts['skipped']} test(s) skipped in the image that has every library")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
