#!/usr/bin/env python3
"""One worker host vs two: the six training DAGs triggered at once, wall time and scheduling gaps.

Runs against a platform with worker hosts, e.g. the molecule scenario `workers` left up
(`tests/molecule.sh converge -s workers`): the control plane lt-hosts, worker hosts
lt-hosts-worker-1 and -2 (Docker-in-Docker containers with their own engines).

For each mode the bench decides which Celery workers consume, through Celery's control
API (`cancel_consumer` / `add_consumer`, sent from the scheduler container with the
broker's secret), and puts the inventory's queues back at the end:

- **2 hosts**: each worker host consumes its own queues (as converged); the control plane's
  worker consumes nothing, so every task runs on a worker host;
- **1 host**: the first worker host consumes every queue any worker serves; the others and
  the control plane's worker consume nothing.

Then all six DAGs are triggered together and the bench waits for every run. Printed per
mode: wall time (first trigger → last run's end), each DAG's trigger→end, where its tasks
ran, and the scheduling gap of each task (its start minus the end of the task before it in
its DAG; the first task: minus the run's queued_at), median and max. On a 2-core machine
both simulated hosts share the same cores: no speedup is expected; the figures are for the
record and for a bigger box. Exits 1 only when a run failed or timed out.

    .venv/bin/python bench/hosts.py --airflow-url http://127.0.0.1:28082 \\
        --password-file /opt/lakehouse-tick-hosts/secrets/airflow_admin_password
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dags import BY_KEY, KEYS, TASKS, Airflow, log, parse_time, seconds, wait_idle

# Run in the scheduler container (it holds the broker URL): set which queues each worker consumes.
CONSUMERS = """
import json, sys
from celery import Celery
plan = json.loads(sys.stdin.readline())
read = lambda name: open("/run/secrets/" + name).read().strip()
app = Celery(broker=read("airflow_celery_broker_url"), backend=read("airflow_celery_result_backend"))
now = app.control.inspect(timeout=10).active_queues() or {}
for node, wanted in plan.items():
    have = {q["name"] for q in now.get(node, [])}
    for queue in sorted(have - set(wanted)):
        app.control.cancel_consumer(queue, destination=[node], reply=True)
    for queue in sorted(set(wanted) - have):
        app.control.add_consumer(queue, destination=[node], reply=True)
after = app.control.inspect(timeout=10).active_queues() or {}
print(json.dumps({node: sorted(q["name"] for q in found) for node, found in after.items()}))
"""


def consume(scheduler: str, plan: dict[str, list[str]]) -> dict[str, list[str]]:
    """Make each worker named in ``plan`` consume exactly its list; return what all consume now."""
    done = subprocess.run(["docker", "exec", "-i", scheduler, "python3", "-c", CONSUMERS],
                          input=json.dumps(plan) + "\n", capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"celery control failed: {done.stderr[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def task_gaps(run: dict[str, Any], by_task: dict[str, dict[str, Any]]) -> list[float]:
    """Seconds each task of the chain waited: its start minus the end of the task before it
    (the first task: minus the run's queued_at). Stops at the first task that never started."""
    gaps, before = [], run.get("queued_at")
    for task in TASKS:
        ti = by_task.get(task)
        if not ti or not ti.get("start_date"):
            break
        gap = seconds(before, ti["start_date"])
        if gap is not None:
            gaps.append(gap)
        before = ti.get("end_date")
    return gaps


def run_all(airflow: Airflow, keys: list[str], timeout_s: float) -> dict[str, Any]:
    """Trigger every DAG at once, wait for all; per DAG its state, times and where tasks ran."""
    runs = {}
    started = time.monotonic()
    for key in keys:
        dag_id = BY_KEY[key].dag_id
        airflow.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        run = airflow.call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "note": "bench/hosts.py"})
        runs[key] = run
    pending = set(keys)
    while pending and time.monotonic() - started < timeout_s:
        time.sleep(10)
        for key in sorted(pending):
            run = airflow.call("GET", f"/dags/{BY_KEY[key].dag_id}/dagRuns/{runs[key]['dag_run_id']}")
            if run["state"] in ("success", "failed"):
                runs[key] = run
                pending.discard(key)
    result: dict[str, Any] = {"timed_out": sorted(pending), "dags": {}}
    for key in keys:
        run = runs[key]
        tis = airflow.call("GET", f"/dags/{BY_KEY[key].dag_id}/dagRuns/{run['dag_run_id']}/taskInstances")
        by_task = {ti["task_id"]: ti for ti in tis.get("task_instances", [])}
        result["dags"][key] = {
            "state": run["state"], "trigger_to_end_s": seconds(run.get("queued_at"), run.get("end_date")),
            "hosts": sorted({ti.get("hostname") or "?" for ti in by_task.values()}),
            "gaps": task_gaps(run, by_task),
        }
    ends = [parse_time(r.get("end_date")) for r in runs.values() if r.get("end_date")]
    queued = [parse_time(r.get("queued_at")) for r in runs.values() if r.get("queued_at")]
    result["wall_s"] = round((max(ends) - min(queued)).total_seconds(), 1) if ends and queued else None
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--airflow-url", default="http://127.0.0.1:28082")
    parser.add_argument("--airflow-user", default="admin")
    parser.add_argument("--password-file", default="/opt/lakehouse-tick-hosts/secrets/airflow_admin_password")
    parser.add_argument("--project", default="lt-hosts", help="compose project of the control plane")
    parser.add_argument("--hosts", default="lt-hosts-worker-1,lt-hosts-worker-2", help="worker hosts, in order")
    parser.add_argument("--queues", default="default,light,shared|default,heavy,shared",
                        help="each worker host's airflow_worker_queues, '|' between hosts")
    parser.add_argument("--control-plane-queues", default="default")
    parser.add_argument("--pipelines", default=",".join(KEYS))
    parser.add_argument("--modes", default="1,2", help="numbers of worker hosts to measure, in order")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per mode")
    args = parser.parse_args()

    hosts = args.hosts.split(",")
    served = dict(zip(hosts, [q.split(",") for q in args.queues.split("|")], strict=True))
    every_queue = sorted({q for qs in served.values() for q in qs} | set(args.control_plane_queues.split(",")))
    keys = args.pipelines.split(",")
    scheduler = f"{args.project}-airflow-scheduler-1"
    airflow = Airflow(args.airflow_url, args.airflow_user, Path(args.password_file).read_text().strip())
    cp_node = next(node for node in consume(scheduler, {}) if node.split("@", 1)[1] not in hosts)
    rows, failed = [], False
    try:
        for mode in map(int, args.modes.split(",")):
            plan = {cp_node: []}
            for index, host in enumerate(hosts):
                plan[f"celery@{host}"] = (served[host] if mode > 1 and index < mode
                                          else every_queue if index == 0 else [])
            wait_idle(airflow, 1800, 10)
            log(f"{mode} worker host(s): consumers now {consume(scheduler, plan)}")
            result = run_all(airflow, keys, args.timeout)
            failed |= bool(result["timed_out"]) or any(d["state"] != "success" for d in result["dags"].values())
            rows.append((mode, result))
    finally:
        restored = consume(scheduler, {cp_node: args.control_plane_queues.split(","),
                                       **{f"celery@{h}": served[h] for h in hosts}})
        log(f"consumers restored: {restored}")
    print(f"\n{'hosts':>5} {'wall s':>7} {'gap median s':>13} {'gap max s':>10}  per DAG: trigger→end s @ hosts")
    for mode, result in rows:
        gaps = [g for d in result["dags"].values() for g in d["gaps"]]
        per_dag = "; ".join(f"{k} {d['trigger_to_end_s']} {d['state'] if d['state'] != 'success' else ''}"
                            f"@{'+'.join(h.removeprefix('lt-hosts-') for h in d['hosts'])}"
                            for k, d in result["dags"].items())
        print(f"{mode:>5} {result['wall_s']!s:>7} {statistics.median(gaps) if gaps else '-'!s:>13} "
              f"{max(gaps) if gaps else '-'!s:>10}  {per_dag}")
    print(json.dumps({str(mode): result for mode, result in rows}), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
