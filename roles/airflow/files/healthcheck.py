#!/usr/bin/env python3
"""Health probes and the worker drain for the Airflow containers, without importing Airflow.

`airflow jobs check` and `celery --app airflow... inspect ping` each start a fresh
interpreter that imports Airflow, every interval, in every container (one took 25 s
wall while training ran; these take ~0.5 s). These probes prove the same things for a fraction of that:

  job <JobType> [max_age]  this host's <JobType> (DagProcessorJob, TriggererJob) is
                           running and heartbeated within max_age seconds (read from the
                           metadata DB's job table, as `airflow jobs check --local` does)
  celery [timeout]         this host's Celery worker answers a ping over the broker
  http <url> [timeout]     the URL answers 2xx
  roundtrip <queue,...> [timeout]
                           a real Celery task (the builtin celery.accumulate) through the
                           broker to each queue; only a worker can answer, via the result
                           backend. Prints JSON: the workers that answered a ping, the queues
                           each consumes (`inspect active_queues`), the answer and seconds
                           per queue

and, run by the airflow role before the worker is restarted or recreated:

  drain [timeout]          this host's worker stops taking tasks (cancels its queues) and
                           the command waits until its running tasks end; prints JSON.
                           Exit 0 drained, 3 still running after timeout (JSON names them)
  resume <queue,...>       the worker takes tasks from these queues again (a no-op for a
                           fresh worker, which consumes them already)

and, run by airflow-init before any other Airflow service starts:

  results-db <name>        Celery's result store: a login role <name> (password from its
                           secret file, set on every run) that owns a database <name> and
                           nothing else; the metadata DB is closed to roles that do not own it

Connection strings come from the secret files Airflow itself reads (*_CMD options), so
no secret is on a command line. Exit 0 healthy, 1 unhealthy (the reason on stderr).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
import urllib.request
from pathlib import Path

SECRETS = Path(os.environ.get("MLOPS_SECRETS_MOUNT", "/run/secrets"))


def _secret(name: str) -> str:
    return (SECRETS / name).read_text().strip()


def check_job(job_type: str, max_age: float = 60.0) -> str:
    """This host's newest running <job_type> heartbeated within max_age seconds."""
    # SQLAlchemy's postgresql+psycopg2://… → libpq's postgresql://…
    dsn = _libpq_dsn()
    import psycopg2  # the postgres provider's driver: a light import, unlike Airflow

    with psycopg2.connect(dsn, connect_timeout=10) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT EXTRACT(EPOCH FROM now() - max(latest_heartbeat)) FROM job"
            " WHERE job_type = %s AND hostname = %s AND state = 'running'",
            (job_type, socket.getfqdn()),
        )
        (age,) = cur.fetchone()
    conn.close()
    if age is None:
        raise RuntimeError(f"no running {job_type} for host {socket.getfqdn()}")
    if float(age) > max_age:
        raise RuntimeError(f"{job_type} last heartbeat {float(age):.0f} s ago (> {max_age:.0f} s)")
    return f"{job_type} heartbeat {float(age):.1f} s ago"


def check_celery(timeout: float = 20.0) -> str:
    """This host's Celery worker answers a broadcast ping (same as `celery inspect ping -d`)."""
    app, node = _worker_app()
    try:
        replies = app.control.ping(destination=[node], timeout=timeout)
    finally:
        app.close()
    if not any(node in reply for reply in replies):
        raise RuntimeError(f"{node} did not answer a ping within {timeout:.0f} s")
    return f"{node} answered"


def _worker_app() -> tuple[object, str]:
    broker = _secret("airflow_celery_broker_url")
    # Celery alone: Airflow's app module is not needed for control commands.
    from celery import Celery

    return Celery(broker=broker), f"celery@{socket.gethostname()}"


def describe_task(request: dict) -> str:
    """dag_id.task_id (run_id) of an Airflow workload in `inspect active`, else the task name."""
    text = json.dumps(request.get("args", ""))
    found = {key: re.search(rf'\\?"{key}\\?"\s*:\s*\\?"([^"\\]+)', text) for key in ("dag_id", "task_id", "run_id")}
    if found["dag_id"] and found["task_id"]:
        run = f" ({found['run_id'].group(1)})" if found["run_id"] else ""
        return f"{found['dag_id'].group(1)}.{found['task_id'].group(1)}{run}"
    return str(request.get("name", "unknown task"))


def drain_worker(timeout: float = 600.0, poll: float = 5.0) -> tuple[int, str]:
    """Stop this worker taking tasks, wait for its running tasks; (exit code, JSON report)."""
    app, node = _worker_app()
    started = time.monotonic()
    try:
        queues = (app.control.inspect(destination=[node], timeout=10).active_queues() or {}).get(node)
        if queues is None:
            raise RuntimeError(f"{node} did not answer; nothing to drain")
        names = [queue["name"] for queue in queues]
        for name in names:
            app.control.cancel_consumer(name, destination=[node], reply=True, timeout=10)
        while True:
            running = (app.control.inspect(destination=[node], timeout=10).active() or {}).get(node, [])
            waited = time.monotonic() - started
            if not running or waited >= timeout:
                break
            time.sleep(min(poll, max(timeout - waited, 0.1)))
    finally:
        app.close()
    report = {"node": node, "queues": names, "waited_seconds": round(waited, 1),
              "running": [describe_task(task) for task in running]}
    return (3 if running else 0), json.dumps(report)


def resume_worker(queues: str) -> str:
    app, node = _worker_app()
    try:
        for name in filter(None, queues.split(",")):
            app.control.add_consumer(name, destination=[node], reply=True, timeout=10)
    finally:
        app.close()
    return f"{node} consumes {queues}"


def roundtrip(queues: str, timeout: float = 120.0, workers: float = 1) -> str:
    """Send celery.accumulate to each of `queues` (comma-separated), wait for every result.

    JSON: the workers that answered a ping (up to `workers` of them: the ping returns as soon
    as that many replied), the queues each consumes, and per queue the answer and seconds.
    A queue no worker consumes fails here after `timeout`, naming it.
    """
    from celery import Celery

    names = [name for name in queues.split(",") if name]
    if not names:
        raise ValueError("no queue to send to")
    app = Celery(broker=_secret("airflow_celery_broker_url"), backend=_secret("airflow_celery_result_backend"))
    try:
        # limit: return once that many replied instead of waiting the whole timeout for more
        pongs = app.control.inspect(timeout=10, limit=int(workers)).ping() or {}
        # Asked of the workers that answered: kombu stops waiting once each of them replied.
        replies = (app.control.inspect(destination=sorted(pongs), timeout=10).active_queues() or {}) if pongs else {}
        consumed = {node: sorted(queue["name"] for queue in found) for node, found in replies.items()}
        # Sent together, collected in turn: the round trips overlap, the wait is the slowest one.
        started = time.monotonic()
        sent = {name: app.send_task("celery.accumulate", args=["pong"], kwargs={"index": 0}, queue=name)
                for name in names}
        answers, seconds = {}, {}
        for name, result in sent.items():
            left = max(timeout - (time.monotonic() - started), 1.0)
            try:
                answers[name] = result.get(timeout=left)
            except Exception as exc:  # a timeout or a failed task: named with its queue, re-raised
                raise RuntimeError(f"no answer from queue {name!r} within {timeout:.0f} s (workers consume "
                                   f"{consumed or 'nothing'}): {type(exc).__name__}") from exc
            seconds[name] = round(time.monotonic() - started, 2)
    finally:
        app.close()
    return json.dumps({"workers": sorted(pongs), "consumes": consumed, "answers": answers, "seconds": seconds,
                       "answer": answers[names[0]]})


def list_workers(timeout: float = 3.0) -> str:
    """JSON: every Celery worker that answers within `timeout`, with the queues it consumes and
    how many tasks it runs now (node names are celery@<host name>). Sends no task."""
    from celery import Celery

    app = Celery(broker=_secret("airflow_celery_broker_url"), backend=_secret("airflow_celery_result_backend"))
    try:
        found = app.control.inspect(timeout=timeout).active_queues() or {}
        active = (app.control.inspect(destination=sorted(found), timeout=timeout).active() or {}) if found else {}
    finally:
        app.close()
    return json.dumps({node: {"queues": sorted(queue["name"] for queue in queues), "running": len(active.get(node) or [])}
                       for node, queues in sorted(found.items())})


def _libpq_dsn() -> str:
    """The metadata DB's URL as libpq takes it (SQLAlchemy's postgresql+psycopg2:// → postgresql://)."""
    url = _secret("airflow_sql_alchemy_conn")
    return "postgresql" + url[url.index("://"):]


def ensure_results_db(name: str) -> str:
    """Create (or update the password of) the result store's role and its database."""
    dsn, password = _libpq_dsn(), _secret("airflow_celery_db_password")
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(dsn, connect_timeout=10)
    conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
    done = []
    try:
        with conn.cursor() as cur:
            role = sql.Identifier(name)
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            # psycopg2 binds the password client-side, so it is quoted as a literal here too.
            cur.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %s").format(role),
                        (password,))
            done.append(f"{verb.lower()}d role {name}")
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
                done.append(f"created database {name}")
            # PUBLIC may connect to every database by default; the metadata DB's owner keeps
            # its own right to, every other role (the result store's) loses it.
            cur.execute("SELECT current_database()")
            metadata_db = cur.fetchone()[0]
            cur.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(metadata_db)))
    finally:
        conn.close()
    return ", ".join(done)


def check_http(url: str, timeout: float = 20.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return f"{url} answered {response.status}"


def main(argv: list[str]) -> int:
    checks = {
        "job": lambda args: check_job(args[0], *map(float, args[1:])),
        "celery": lambda args: check_celery(*map(float, args)),
        "http": lambda args: check_http(args[0], *map(float, args[1:])),
        "roundtrip": lambda args: roundtrip(args[0], *map(float, args[1:])),
        "workers": lambda args: list_workers(*map(float, args)),
        "resume": lambda args: resume_worker(args[0]),
        "results-db": lambda args: ensure_results_db(args[0]),
    }
    if argv[:1] == ["drain"]:
        try:
            code, report = drain_worker(*map(float, argv[1:]))
        except Exception as exc:  # noqa: BLE001 - reported, the caller decides
            print(f"drain failed: {exc}", file=sys.stderr)
            return 1
        print(report)
        return code
    if not argv or argv[0] not in checks:
        print(f"usage: healthcheck.py {{{'|'.join([*checks, 'drain'])}}} ...", file=sys.stderr)
        return 2
    try:
        print(checks[argv[0]](argv[1:]))
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", its reason in docker inspect
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
