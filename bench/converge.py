#!/usr/bin/env python3
"""Time a converge from nothing and a warm re-run of site.yml, and print the figures.

Runs against a project of its own (default /opt/lakehouse-tick-bench, compose project
lt-bench, ports 35000/38082) so it never touches the stack `make up` manages.

    python bench/converge.py                 # project from nothing (image/wheel caches as they are)
    python bench/converge.py --purge-caches  # also drop the wheelhouse and project images first
    python bench/converge.py --keep          # leave the bench stack running afterwards
    python bench/converge.py --warm-only     # only re-run against the kept bench project
    python bench/converge.py -- -e training_dags_train=never -e verify_models=false   # no training (nothing to check models against)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# ansible.posix.profile_tasks' summary lines: "role : task name ---- 12.34s"
TASK_TIME = re.compile(r"^(?P<task>.+?)\s-{2,}\s+(?P<seconds>\d+\.\d+)s$")
SLOWEST = 10
RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                   r"\s+failed=(?P<failed>\d+)")


def slowest_tasks(lines: list[str], limit: int = SLOWEST) -> list[tuple[str, float]]:
    """The `limit` slowest tasks of profile_tasks' summary (printed after the recap)."""
    times = []
    for line in lines:
        match = TASK_TIME.match(line.strip())
        if match:
            times.append((match["task"].strip(), float(match["seconds"])))
    return sorted(times, key=lambda item: item[1], reverse=True)[:limit]


def run_playbook(playbook: str, extra: list[str], log: Path) -> tuple[float, dict[str, int], int, list]:
    """Run one playbook, tee its output to `log`, return (seconds, recap counts, rc, slowest tasks)."""
    cmd = [str(REPO / ".venv/bin/ansible-playbook"), playbook, *extra]
    # profile_tasks times every task; its summary is sorted slowest first.
    env = {**os.environ, "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
           "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all", "PROFILE_TASKS_SORT_ORDER": "descending"}
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    seconds = time.monotonic() - started
    lines = log.read_text().splitlines()
    counts: dict[str, int] = {}
    for line in lines:
        match = RECAP.match(line.strip())
        if match:
            counts = {k: int(v) for k, v in match.groupdict().items() if k != "host"}
    return seconds, counts, proc.returncode, slowest_tasks(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project-dir", default="/opt/lakehouse-tick-bench")
    parser.add_argument("--compose-project", default="lt-bench")
    parser.add_argument("--mlflow-port", type=int, default=35000)
    parser.add_argument("--airflow-port", type=int, default=38082)
    parser.add_argument("--purge-caches", action="store_true", help="remove the wheelhouse and project images first")
    parser.add_argument("--keep", action="store_true", help="leave the bench stack running")
    parser.add_argument("--warm-only", action="store_true",
                        help="no teardown, no cold run: re-run against the project --keep left")
    parser.add_argument("extra", nargs="*", help="extra ansible-playbook arguments (after --)")
    args = parser.parse_args()

    project_vars = [
        "-e", f"mlops_project_dir={args.project_dir}",
        "-e", f"mlops_compose_project={args.compose_project}",
        "-e", f"mlflow_port={args.mlflow_port}",
        "-e", f"airflow_api_port={args.airflow_port}",
    ]
    logs = Path("/tmp/lakehouse-tick-bench")
    logs.mkdir(exist_ok=True)

    def teardown() -> None:
        compose = Path(args.project_dir) / "docker-compose-mlops.yml"
        if compose.exists():
            subprocess.run(["docker", "compose", "-f", str(compose), "-p", args.compose_project,
                            "down", "--volumes", "--remove-orphans"], check=False, capture_output=True)
        shutil.rmtree(args.project_dir, ignore_errors=True)

    if not args.warm_only:
        teardown()
    if args.purge_caches and not args.warm_only:
        shutil.rmtree("/var/cache/lakehouse-tick/wheelhouse", ignore_errors=True)
        images = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}",
                                 "--filter", "reference=lakehouse-tick/*"],
                                capture_output=True, text=True, check=False).stdout.split()
        if images:
            subprocess.run(["docker", "rmi", "--force", *images], check=False, capture_output=True)

    if args.warm_only and not (Path(args.project_dir) / "docker-compose-mlops.yml").exists():
        parser.error(f"--warm-only: no converged project in {args.project_dir} (run with --keep first)")
    rows = []
    runs = ("warm re-run",) if args.warm_only else ("cold (project from nothing)", "warm re-run")
    for label in runs:
        log = logs / (label.split()[0] + ".log")
        seconds, counts, rc, slowest = run_playbook("site.yml", project_vars + args.extra, log)
        rows.append({"run": label, "seconds": round(seconds, 1), "rc": rc, **counts, "log": str(log),
                     "slowest_tasks": slowest})
        if rc != 0:
            break
    if not args.keep and not args.warm_only:
        teardown()

    for row in rows:
        print(f"\n{SLOWEST} slowest tasks, {row['run']}:")
        for task, secs in row["slowest_tasks"]:
            print(f"  {secs:>7.1f} s  {task}")
    print(f"\n{'run':<30} {'seconds':>8} {'changed':>8} {'failed':>7}  log")
    for row in rows:
        print(f"{row['run']:<30} {row['seconds']:>8} {row.get('changed', '?'):>8} {row.get('failed', '?'):>7}  {row['log']}")
    print(json.dumps({"converge": rows, "warm_goal_seconds": 60}))
    return 0 if all(row["rc"] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
