#!/usr/bin/env python3
"""Container health probes for the Airflow services that do not import Airflow.

`airflow jobs check` and `celery --app airflow... inspect ping` each start a fresh
interpreter that imports Airflow: 2-4 CPU-seconds a probe, every interval, in every
container. These probes prove the same things for a fraction of that:

  job <JobType> [max_age]  this host's <JobType> (DagProcessorJob, TriggererJob) is
                           running and heartbeated within max_age seconds (read from the
                           metadata DB's job table, as `airflow jobs check --local` does)
  celery [timeout]         this host's Celery worker answers a ping over the broker
  http <url> [timeout]     the URL answers 2xx

Connection strings come from the secret files Airflow itself reads (*_CMD options), so
no secret is on a command line. Exit 0 healthy, 1 unhealthy (the reason on stderr).
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from pathlib import Path

SECRETS = Path(os.environ.get("MLOPS_SECRETS_MOUNT", "/run/secrets"))


def _secret(name: str) -> str:
    return (SECRETS / name).read_text().strip()


def check_job(job_type: str, max_age: float = 60.0) -> str:
    """This host's newest running <job_type> heartbeated within max_age seconds."""
    # SQLAlchemy's postgresql+psycopg2://… → libpq's postgresql://…
    url = _secret("airflow_sql_alchemy_conn")
    dsn = "postgresql" + url[url.index("://"):]
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
    # Celery alone: Airflow's app module is not needed for a ping.
    from celery import Celery

    node = f"celery@{socket.gethostname()}"
    app = Celery(broker=_secret("airflow_celery_broker_url"))
    try:
        replies = app.control.ping(destination=[node], timeout=timeout)
    finally:
        app.close()
    if not any(node in reply for reply in replies):
        raise RuntimeError(f"{node} did not answer a ping within {timeout:.0f} s")
    return f"{node} answered"


def check_http(url: str, timeout: float = 20.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return f"{url} answered {response.status}"


def main(argv: list[str]) -> int:
    checks = {
        "job": lambda args: check_job(args[0], *map(float, args[1:])),
        "celery": lambda args: check_celery(*map(float, args)),
        "http": lambda args: check_http(args[0], *map(float, args[1:])),
    }
    if not argv or argv[0] not in checks:
        print(f"usage: healthcheck.py {{{'|'.join(checks)}}} ...", file=sys.stderr)
        return 2
    try:
        print(checks[argv[0]](argv[1:]))
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", its reason in docker inspect
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
