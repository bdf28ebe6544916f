"""Platform status at a glance: containers, host resources, DAG runs, MLflow.

* per container of the compose project (found by the label
  ``com.docker.compose.project``): state, health, CPU %, memory use vs limit,
  restart count, OOMKilled (``docker inspect`` + ``docker stats --no-stream``);
* host: disk of the project dir and of Docker's data root, memory (/proc/meminfo);
* Celery workers by host (this host's and each worker host's), their queues and running
  tasks, asked through the broker from the scheduler container (no task is sent);
* Airflow (REST API v2): health, import errors, the newest runs of each training DAG;
* MLflow: reachable, version, a real API call answered.

The slow calls (``docker stats`` samples for about 2 s, HTTP requests) run in
parallel; each has its own timeout, and a part that is down shows as an
"unreachable" row instead of stopping the command.

Usage::

    PYTHONPATH=tools python -m mlops_tools.status [--json] [--strict] [--runs N] ...

Exit status: 0, unless ``--strict`` and a problem was found (then 1).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from mlops_tools import defaults
from mlops_tools.airflow_api import (
    AirflowApiError,
    AirflowClient,
    read_password,
    run_duration,
)
from mlops_tools.mlflow_api import MlflowApiError, add_login_arguments, read_login
from mlops_tools.pipelines import DAG_IDS

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
DISK_PROBLEM_PERCENT = 90.0
DISK_WARNING_PERCENT = 80.0
MEMORY_WARNING_PERCENT = 90.0

_UNITS = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}


# --------------------------------------------------------------------------- parsing


def parse_size(text: str) -> int | None:
    """Docker's human sizes (``508KiB``, ``1.5GiB``, ``32MB``, ``0B``) → bytes; None if unparsable."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text or "")
    if not match:
        return None
    unit = (match.group(2) or "B").lower()
    if unit not in _UNITS:
        return None
    return round(float(match.group(1)) * _UNITS[unit])


def parse_percent(text: str) -> float | None:
    """``"2.75%"`` → 2.75; ``"--"`` (no sample) → None."""
    try:
        return float((text or "").strip().rstrip("%"))
    except ValueError:
        return None


def parse_stats(text: str) -> dict[str, dict[str, Any]]:
    """``docker stats --no-stream --format '{{json .}}'`` output → {container name: numbers}."""
    out: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        used, _, limit = (row.get("MemUsage") or "").partition("/")
        out[row["Name"].lstrip("/")] = {
            "cpu_percent": parse_percent(row.get("CPUPerc", "")),
            "mem_used_bytes": parse_size(used),
            "mem_stats_limit_bytes": parse_size(limit),
            "mem_percent": parse_percent(row.get("MemPerc", "")),
            "pids": int(row["PIDs"]) if str(row.get("PIDs", "")).isdigit() else None,
        }
    return out


def parse_inspect(text: str) -> list[dict[str, Any]]:
    """``docker inspect`` JSON → one dict per container with what the status shows."""
    containers = []
    for c in json.loads(text or "[]"):
        state = c.get("State", {})
        host = c.get("HostConfig", {})
        labels = (c.get("Config") or {}).get("Labels") or {}
        health = state.get("Health") or {}
        nano = host.get("NanoCpus") or 0
        quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 0
        cpus = nano / 1e9 if nano else (quota / period if quota > 0 and period > 0 else None)
        last_probe = (health.get("Log") or [{}])[-1] if health.get("Log") else {}
        containers.append({
            "name": c.get("Name", "").lstrip("/"),
            "id": c.get("Id", "")[:12],
            "service": labels.get(SERVICE_LABEL),
            "project": labels.get(PROJECT_LABEL),
            "image": (c.get("Config") or {}).get("Image"),
            "state": state.get("Status"),
            "health": health.get("Status"),  # None: no healthcheck
            "health_output": (last_probe.get("Output") or "").strip()[-200:] or None,
            "exit_code": state.get("ExitCode"),
            "oom_killed": bool(state.get("OOMKilled")),
            "restart_count": int(c.get("RestartCount") or 0),
            "started_at": state.get("StartedAt"),
            "finished_at": state.get("FinishedAt"),
            "mem_limit_bytes": host.get("Memory") or None,  # 0 means no limit
            "cpus_limit": cpus,
        })
    return containers


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo → {field: bytes} for the fields that matter."""
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return {k: values[k] for k in ("MemTotal", "MemAvailable", "SwapTotal", "SwapFree") if k in values}


# --------------------------------------------------------------------------- probes


def run_command(args: list[str], timeout: float) -> tuple[int, str, str]:
    """Run a command; (127, "", why) when it cannot start, (124, "", ...) on timeout."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return 127, "", f"{args[0]}: command not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"{' '.join(args[:3])}: no answer within {timeout:g} s"
    return done.returncode, done.stdout, done.stderr.strip()


Runner = Callable[[list[str], float], tuple[int, str, str]]


def merge_containers(inspected: list[dict[str, Any]], stats: dict[str, dict[str, Any]],
                     services: tuple[str, ...], one_shot: frozenset[str],
                     project: str) -> list[dict[str, Any]]:
    """One row per container (and one "missing" row per expected service without one), with verdicts."""
    rows = []
    seen = set()
    for c in sorted(inspected, key=lambda c: (c.get("service") or "", c["name"])):
        # `docker stats` reports zeros for stopped containers: show no figures instead.
        row = {**c, **(stats.get(c["name"], {}) if c["state"] == "running" else {})}
        limit = row.get("mem_limit_bytes")
        if limit and row.get("mem_used_bytes") is not None:
            row["mem_percent_of_limit"] = 100.0 * row["mem_used_bytes"] / limit
        else:
            row["mem_percent_of_limit"] = None
        seen.add(row.get("service"))
        problems, warnings = [], []
        is_one_shot = row.get("service") in one_shot
        finished_ok = is_one_shot and row["state"] == "exited" and row.get("exit_code") == 0
        if row["state"] != "running" and not finished_ok:
            problems.append(f"{row['state']} (exit {row.get('exit_code')})")
        if row.get("health") == "unhealthy":
            problems.append("unhealthy" + (f": {row['health_output']}" if row.get("health_output") else ""))
        elif row.get("health") == "starting":
            warnings.append("health check starting")
        if row["oom_killed"]:
            problems.append("OOMKilled")
        if row["restart_count"]:
            warnings.append(f"restarted {row['restart_count']}×")
        if (row.get("mem_percent_of_limit") or 0) >= MEMORY_WARNING_PERCENT:
            warnings.append(f"memory at {row['mem_percent_of_limit']:.0f} % of limit")
        row["problems"], row["warnings"] = problems, warnings
        rows.append(row)
    for service in services:
        if service not in seen:
            rows.append({"name": f"{project}-{service}-1", "service": service, "state": "missing",
                         "problems": ["no container"], "warnings": []})
    return rows


def docker_status(project: str, services: tuple[str, ...], one_shot: frozenset[str],
                  timeout: float, runner: Runner = run_command) -> dict[str, Any]:
    """Containers of the compose project with state, health, stats; or why Docker is unreachable."""
    rc, out, err = runner(["docker", "ps", "-aq", "--no-trunc", "--filter", f"label={PROJECT_LABEL}={project}"],
                          timeout)
    if rc != 0:
        return {"reachable": False, "error": err or f"docker ps exited {rc}", "containers": []}
    ids = out.split()
    if not ids:
        return {"reachable": True, "error": None,
                "containers": merge_containers([], {}, services, one_shot, project)}
    with ThreadPoolExecutor(max_workers=2) as pool:
        inspect_f = pool.submit(runner, ["docker", "inspect", *ids], timeout)
        stats_f = pool.submit(runner, ["docker", "stats", "--no-stream", "--format", "{{json .}}", *ids], timeout)
        (irc, iout, ierr), (src, sout, serr) = inspect_f.result(), stats_f.result()
    if irc != 0:
        return {"reachable": False, "error": ierr or f"docker inspect exited {irc}", "containers": []}
    stats = parse_stats(sout) if src == 0 else {}
    result = {"reachable": True, "error": None,
              "containers": merge_containers(parse_inspect(iout), stats, services, one_shot, project)}
    if src != 0:
        result["stats_error"] = serr or f"docker stats exited {src}"
    return result


# A worker on the control plane is named after its container (Docker's default host name);
# a worker host's worker after the host (the airflow role's worker_host entry point).
_CONTAINER_ID = re.compile(r"[0-9a-f]{12}")


def celery_workers(project: str, timeout: float, runner: Runner = run_command) -> dict[str, Any]:
    """Every Celery worker that answers, by host: its queues and how many tasks it runs."""
    rc, out, err = runner(["docker", "exec", f"{project}-airflow-scheduler-1", "python3", "/opt/mlops/healthcheck.py",
                           "workers", "1.5"], timeout)
    if rc != 0:
        return {"reachable": False, "error": (err or out).strip()[-300:] or f"exit {rc}", "workers": [], "problems":
                [f"the Celery workers could not be asked: {(err or out).strip()[-200:] or f'exit {rc}'}"]}
    nodes = json.loads(out.strip().splitlines()[-1])
    workers = []
    for node, info in nodes.items():
        host = node.split("@", 1)[-1]
        where = f"control plane (container {host})" if _CONTAINER_ID.fullmatch(host) else host
        workers.append({"node": node, "host": where, "queues": info["queues"], "running": info["running"]})
    problems = [] if workers else ["no Celery worker answers: tasks would wait in the broker"]
    return {"reachable": True, "error": None, "workers": workers, "problems": problems}


def disk_usage(label: str, path: str) -> dict[str, Any]:
    row: dict[str, Any] = {"label": label, "path": path}
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        row.update(error=f"{type(exc).__name__}: {exc.strerror or exc}", problems=[f"{path}: not readable"],
                   warnings=[])
        return row
    percent = 100.0 * usage.used / usage.total if usage.total else 0.0
    row.update(total_bytes=usage.total, used_bytes=usage.used, free_bytes=usage.free, used_percent=percent,
               problems=[f"disk {percent:.0f} % full"] if percent >= DISK_PROBLEM_PERCENT else [],
               warnings=[f"disk {percent:.0f} % full"] if DISK_WARNING_PERCENT <= percent < DISK_PROBLEM_PERCENT
               else [])
    return row


def host_status(project_dir: str, docker_root: str | None, compose_file: str,
                meminfo_path: str = "/proc/meminfo") -> dict[str, Any]:
    disks = [disk_usage("project dir", project_dir)]
    if docker_root:
        disks.append(disk_usage("docker data root", docker_root))
    try:
        memory = parse_meminfo(Path(meminfo_path).read_text())
    except OSError as exc:
        memory = {"error": str(exc)}
    warnings = []
    if memory.get("MemTotal") and memory.get("MemAvailable") is not None:
        memory["used_percent"] = 100.0 * (1 - memory["MemAvailable"] / memory["MemTotal"])
        if memory["used_percent"] >= MEMORY_WARNING_PERCENT:
            warnings.append(f"host memory {memory['used_percent']:.0f} % used")
    return {"disks": disks, "memory": memory, "compose_file": compose_file,
            "compose_file_exists": Path(compose_file).is_file(), "warnings": warnings}


def airflow_status(url: str, user: str, password_file: str, dag_ids: tuple[str, ...], runs: int,
                   timeout: float, deadline: float | None = None) -> dict[str, Any]:
    """Health (no auth), then token, import errors and each DAG's newest runs in parallel."""
    result: dict[str, Any] = {"url": url, "reachable": False, "dags": [], "problems": [], "warnings": []}
    try:
        password = read_password(password_file, user)
    except (OSError, AirflowApiError) as exc:
        password = None
        result["auth_error"] = f"cannot read password file {password_file}: {getattr(exc, 'strerror', None) or exc}"
    client = AirflowClient(url, user, password, timeout=timeout, deadline=deadline)
    try:
        result["health"] = {k: (v or {}).get("status") for k, v in client.health().items()}
        result["reachable"] = True
    except AirflowApiError as exc:
        result["error"] = str(exc)
        result["problems"].append("Airflow API unreachable")
        return result
    for component, state in result["health"].items():
        if state not in ("healthy", None):
            result["problems"].append(f"{component} {state}")
    if password is None:
        result["problems"].append("no credentials: DAG runs not read")
        return result
    try:
        client.token()
    except AirflowApiError as exc:
        result["auth_error"] = str(exc)
        result["problems"].append("Airflow login failed")
        return result

    def one_dag(dag_id: str) -> dict[str, Any]:
        try:
            dag = client.dag(dag_id)
            if dag is None:
                return {"dag_id": dag_id, "found": False, "runs": []}
            now = datetime.now(UTC)
            found = [{"run_id": r.get("dag_run_id"), "state": r.get("state"), "run_type": r.get("run_type"),
                      "start_date": r.get("start_date"), "end_date": r.get("end_date"),
                      "duration_seconds": run_duration(r, now)} for r in client.dag_runs(dag_id, runs)]
            return {"dag_id": dag_id, "found": True, "is_paused": dag.get("is_paused"),
                    "has_import_errors": dag.get("has_import_errors"), "runs": found}
        except AirflowApiError as exc:
            return {"dag_id": dag_id, "error": str(exc), "runs": []}

    with ThreadPoolExecutor(max_workers=len(dag_ids) + 1) as pool:
        errors_f = pool.submit(client.import_errors)
        result["dags"] = list(pool.map(one_dag, dag_ids))
        try:
            errors = errors_f.result()
            result["import_errors"] = [e.get("filename") for e in errors.get("import_errors", [])]
        except AirflowApiError as exc:
            result["import_errors_error"] = str(exc)
    if result.get("import_errors"):
        result["problems"].append(f"{len(result['import_errors'])} DAG import error(s)")
    for dag in result["dags"]:
        if dag.get("error"):
            result["problems"].append(f"{dag['dag_id']}: {dag['error']}")
        elif not dag.get("found"):
            result["problems"].append(f"{dag['dag_id']}: not found")
        else:
            if dag["runs"] and dag["runs"][0]["state"] == "failed":
                result["problems"].append(f"{dag['dag_id']}: latest run failed")
            if dag.get("is_paused"):
                result["warnings"].append(f"{dag['dag_id']}: paused")
    return result


def mlflow_status(url: str, timeout: float, user: str = "", password_file: str | None = None) -> dict[str, Any]:
    """Reachable when an API call is answered (``/health`` alone skips MLflow's Host-header check and the login)."""
    result: dict[str, Any] = {"url": url, "reachable": False, "problems": [], "warnings": []}
    session = requests.Session()
    started = time.perf_counter()
    try:
        session.auth = read_login(user, password_file)
        api = session.post(f"{url.rstrip('/')}/api/2.0/mlflow/experiments/search", json={"max_results": 1000},
                           timeout=timeout)
        result["latency_ms"] = round((time.perf_counter() - started) * 1000)
        if api.status_code != 200:
            result["error"] = f"experiments/search → HTTP {api.status_code}: {api.text[:120]}"
        else:
            experiments = api.json().get("experiments", [])
            result["reachable"] = True
            result["experiments"] = len(experiments)
        version = session.get(f"{url.rstrip('/')}/version", timeout=timeout)
        result["version"] = version.text.strip() if version.status_code == 200 else None
    except requests.RequestException as exc:
        result["error"] = f"unreachable: {type(exc).__name__}"
    except MlflowApiError as exc:
        result["error"] = str(exc)
    if not result["reachable"]:
        result["problems"].append("MLflow API unreachable" + (f" ({result['error']})" if result.get("error") else ""))
    return result


def docker_root_dir(timeout: float, runner: Runner = run_command) -> str | None:
    rc, out, _ = runner(["docker", "info", "--format", "{{.DockerRootDir}}"], timeout)
    return (out.strip() or None) if rc == 0 else None


def collect(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    services = tuple(args.services.split(",")) if args.services else ()
    with ThreadPoolExecutor(max_workers=6) as pool:
        docker_f = pool.submit(docker_status, args.project, services, defaults.ONE_SHOT_SERVICES, args.timeout)
        celery_f = pool.submit(celery_workers, args.project, args.timeout)
        root_f = pool.submit(lambda: args.docker_root or docker_root_dir(args.timeout))
        airflow_f = pool.submit(airflow_status, args.airflow_url, args.airflow_user, args.airflow_password_file,
                                tuple(args.dags.split(",")) if args.dags else (), args.runs, args.timeout,
                                time.monotonic() + args.budget)
        mlflow_f = pool.submit(mlflow_status, args.mlflow_url, args.timeout, args.mlflow_user, args.mlflow_password_file)
        host = host_status(args.project_dir, root_f.result(), args.compose_file)
        status = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "project": args.project, "docker": docker_f.result(), "host": host,
            "airflow": airflow_f.result(), "mlflow": mlflow_f.result(), "celery": celery_f.result(),
        }
    problems: list[str] = []
    warnings: list[str] = []
    if not status["docker"]["reachable"]:
        problems.append(f"docker unreachable: {status['docker']['error']}")
    for c in status["docker"]["containers"]:
        problems += [f"{c['name']}: {p}" for p in c["problems"]]
        warnings += [f"{c['name']}: {w}" for w in c["warnings"]]
    for d in host["disks"]:
        problems += [f"{d['label']}: {p}" for p in d["problems"]]
        warnings += [f"{d['label']}: {w}" for w in d["warnings"]]
    warnings += host["warnings"]
    problems += [f"celery: {p}" for p in status["celery"]["problems"]]
    for part in ("airflow", "mlflow"):
        problems += [f"{part}: {p}" for p in status[part]["problems"]]
        warnings += [f"{part}: {w}" for w in status[part]["warnings"]]
    status["problems"], status["warnings"] = problems, warnings
    status["elapsed_seconds"] = round(time.perf_counter() - started, 2)
    return status


# --------------------------------------------------------------------------- formatting


def human_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}"
    return f"{int(value)}B"


def human_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    value = float(value)
    if value < 60:
        return f"{value:.0f}s"
    if value < 3600:
        return f"{int(value // 60)}m{int(value % 60):02d}s"
    return f"{int(value // 3600)}h{int(value % 3600 // 60):02d}m"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)] if rows else [len(h) for h in headers]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def format_status(status: dict[str, Any]) -> str:
    title = (f"lakehouse-tick status — project {status['project']} — {status['generated_at']}"
             f" ({status['elapsed_seconds']} s)")
    out = [title, ""]
    docker = status["docker"]
    out.append("CONTAINERS")
    if not docker["reachable"]:
        out.append(f"  docker: unreachable — {docker['error']}")
    else:
        rows = []
        for c in docker["containers"]:
            if c["state"] == "missing":
                rows.append([c.get("service") or "?", c["name"], "missing", "-", "-", "-", "-", "-", "-", "no container"])
                continue
            limit = c.get("mem_limit_bytes")
            mem = f"{human_bytes(c.get('mem_used_bytes'))} / {human_bytes(limit) if limit else 'no limit'}"
            if c.get("mem_percent_of_limit") is not None:
                mem += f" ({c['mem_percent_of_limit']:.0f}%)"
            cpu = f"{c['cpu_percent']:.1f}%" if c.get("cpu_percent") is not None else "-"
            cpus = f"{c['cpus_limit']:g}" if c.get("cpus_limit") else "-"
            state = c["state"] + (f" ({c['exit_code']})" if c["state"] == "exited" else "")
            notes = "; ".join(c["problems"] + c["warnings"]) or "ok"
            rows.append([c.get("service") or "?", c["name"], state, c.get("health") or "-", cpu, cpus, mem,
                         str(c["restart_count"]), "yes" if c["oom_killed"] else "no", notes])
        out.append(table(["service", "container", "state", "health", "cpu", "cpus", "memory / limit",
                          "restarts", "oom", "notes"], rows))
        if docker.get("stats_error"):
            out.append(f"  (docker stats failed: {docker['stats_error']})")
    out += ["", "HOST"]
    host = status["host"]
    rows = []
    for d in host["disks"]:
        if d.get("error"):
            rows.append([f"disk: {d['label']}", d["path"], d["error"]])
        else:
            usage = (f"{human_bytes(d['used_bytes'])} used of {human_bytes(d['total_bytes'])}"
                     f" ({d['used_percent']:.0f}%), {human_bytes(d['free_bytes'])} free")
            rows.append([f"disk: {d['label']}", d["path"], usage])
    mem = host["memory"]
    if "MemTotal" in mem:
        usage = (f"{human_bytes(mem['MemTotal'] - mem.get('MemAvailable', 0))} used of "
                 f"{human_bytes(mem['MemTotal'])} ({mem.get('used_percent', 0):.0f}%), "
                 f"{human_bytes(mem.get('MemAvailable'))} available; swap {human_bytes(mem.get('SwapTotal'))}")
        rows.append(["memory", "/proc/meminfo", usage])
    rows.append(["compose file", host["compose_file"], "present" if host["compose_file_exists"] else "MISSING"])
    out.append(table(["what", "path", "usage"], rows))
    out += ["", "CELERY WORKERS (by host)"]
    celery = status["celery"]
    if not celery["reachable"]:
        out.append(f"  unavailable — {celery['error']}")
    elif not celery["workers"]:
        out.append("  none answered")
    else:
        out.append(table(["host", "worker", "queues", "running tasks"],
                         [[w["host"], w["node"], ", ".join(w["queues"]) or "none", str(w["running"])]
                          for w in sorted(celery["workers"], key=lambda w: (not w["host"].startswith("control"), w["host"]))]))
    out += ["", "SERVICES"]
    af, ml = status["airflow"], status["mlflow"]
    rows = []
    if af["reachable"]:
        health = ", ".join(f"{k} {v}" for k, v in af.get("health", {}).items())
        rows.append(["airflow", af["url"], "reachable", health + (f"; login: {af['auth_error']}"
                                                                  if af.get("auth_error") else "")])
    else:
        rows.append(["airflow", af["url"], "UNREACHABLE", af.get("error", "")])
    if ml["reachable"]:
        rows.append(["mlflow", ml["url"], "reachable",
                     f"version {ml.get('version')}, {ml.get('experiments')} experiments, {ml.get('latency_ms')} ms"])
    else:
        rows.append(["mlflow", ml["url"], "UNREACHABLE", ml.get("error", "")])
    out.append(table(["service", "url", "state", "details"], rows))
    out += ["", "DAG RUNS (newest first)"]
    if not af.get("dags"):
        reason = af.get("error") or af.get("auth_error") or "not read"
        out.append(f"  unavailable — {reason}")
    else:
        rows = []
        for d in af["dags"]:
            if d.get("error") or not d.get("found"):
                rows.append([d["dag_id"], "-", d.get("error") or "NOT FOUND", "-", "-", "-"])
                continue
            if not d["runs"]:
                rows.append([d["dag_id"], "paused" if d.get("is_paused") else "active", "no runs", "-", "-", "-"])
                continue
            latest = d["runs"][0]
            history = " ".join((r["state"] or "?") for r in d["runs"][1:]) or "-"
            rows.append([d["dag_id"], "paused" if d.get("is_paused") else "active", latest["state"] or "?",
                         human_seconds(latest["duration_seconds"]), (latest.get("start_date") or "-")[:19],
                         history])
        out.append(table(["dag", "schedule", "latest run", "duration", "started (UTC)", "earlier runs"], rows))
        if af.get("import_errors"):
            out.append(f"  import errors: {', '.join(af['import_errors'])}")
    out.append("")
    if status["problems"]:
        out.append(f"PROBLEMS ({len(status['problems'])})")
        out += [f"  - {p}" for p in status["problems"]]
    if status["warnings"]:
        out.append(f"WARNINGS ({len(status['warnings'])})")
        out += [f"  - {w}" for w in status["warnings"]]
    if not status["problems"] and not status["warnings"]:
        out.append("All checks passed.")
    return "\n".join(out)


# --------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlops_tools.status", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a problem is found")
    parser.add_argument("--project", default=defaults.COMPOSE_PROJECT, help="compose project (default %(default)s)")
    parser.add_argument("--project-dir", default=defaults.PROJECT_DIR, help="platform dir (default %(default)s)")
    parser.add_argument("--compose-file", default=defaults.COMPOSE_FILE, help="top compose file (default %(default)s)")
    parser.add_argument("--services", default=",".join(defaults.SERVICES),
                        help="comma-separated services expected in the project; '' for none (default %(default)s)")
    parser.add_argument("--docker-root", default=defaults.DOCKER_ROOT or None,
                        help="Docker data root (default: from `docker info`)")
    parser.add_argument("--airflow-url", default=defaults.AIRFLOW_URL, help="Airflow API server (default %(default)s)")
    parser.add_argument("--airflow-user", default=defaults.AIRFLOW_USER, help="Airflow user (default %(default)s)")
    parser.add_argument("--airflow-password-file", default=defaults.AIRFLOW_PASSWORD_FILE,
                        help="file with that user's password (default %(default)s)")
    parser.add_argument("--dags", default=",".join(DAG_IDS), help="comma-separated DAG ids (default: the six)")
    parser.add_argument("--runs", type=int, default=3, help="DAG runs shown per DAG (default %(default)s)")
    parser.add_argument("--mlflow-url", default=defaults.MLFLOW_URL, help="MLflow server (default %(default)s)")
    add_login_arguments(parser)
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds per probe (docker command or HTTP request; default %(default)s)")
    parser.add_argument("--budget", type=float, default=8.0,
                        help="seconds for the whole chain of Airflow calls (default %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    status = collect(args)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(format_status(status))
    return 1 if args.strict and status["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
