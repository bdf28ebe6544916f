#!/usr/bin/env python3
"""What an idle, converged platform costs the host: cores busy over a window, per container.

Reads the host's /proc/stat (all CPU time but idle and iowait) and each container's cgroup
CPU counter at the start and the end of the window, so the figure includes the health
probes Docker runs inside the containers and the engine's own work. Nothing must be
running: the benchmark refuses to measure while a DAG run is queued or running, and checks
that every service is healthy before and after.

    python bench/idle.py                          # the stack `make up` manages, 60 s
    python bench/idle.py --seconds 120 --compose-project lt-molecule
    python bench/idle.py --prove-probes           # also: freeze the dag-processor and the
                                                  # worker and show their probes fail

It prints figures; it asserts nothing about them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def host_busy_seconds() -> float:
    """CPU-seconds the host spent busy since boot (every state but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def containers(project: str) -> dict[str, str]:
    """Running containers of the compose project: service → container id."""
    out = docker("ps", "--filter", f"label=com.docker.compose.project={project}",
                 "--format", '{{.ID}} {{.Label "com.docker.compose.service"}}')
    return {svc: cid for cid, svc in (line.split() for line in out.splitlines())}


def cgroup_usage_seconds(cid: str) -> float:
    """Container CPU time from its cgroup (v2 cpu.stat, or v1 cpuacct.usage)."""
    full = docker("inspect", "--format", "{{.Id}}", cid).strip()
    parent = docker("inspect", "--format", "{{.HostConfig.CgroupParent}}", cid).strip() or "docker"
    for base in (Path("/sys/fs/cgroup") / parent.strip("/"), Path("/sys/fs/cgroup/system.slice")):
        for name in (full, f"docker-{full}.scope"):
            stat = base / name / "cpu.stat"
            if stat.exists():
                usage = dict(line.split() for line in stat.read_text().splitlines())
                return int(usage["usage_usec"]) / 1e6
    v1 = Path("/sys/fs/cgroup/cpuacct") / parent.strip("/") / full / "cpuacct.usage"
    if v1.exists():
        return int(v1.read_text()) / 1e9
    raise FileNotFoundError(f"no cgroup CPU counter found for container {cid}")


def health(cids: dict[str, str]) -> dict[str, str]:
    out = {}
    for svc, cid in cids.items():
        state = json.loads(docker("inspect", "--format", "{{json .State}}", cid))
        out[svc] = state.get("Health", {}).get("Status", state["Status"])
    return out


def active_dag_runs(project: str) -> int:
    """DAG runs queued or running, read in the metadata DB container."""
    sql = "SELECT count(*) FROM dag_run WHERE state IN ('queued', 'running')"
    shell = ('PGPASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")" psql -h 127.0.0.1 -tA '
             f'-U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "{sql}"')
    out = subprocess.run(["docker", "exec", f"{project}-airflow-db-1", "sh", "-c", shell],
                         capture_output=True, text=True, check=False)
    return int(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip().isdigit() else -1


def measure(project: str, seconds: float) -> tuple[float, float, dict[str, float]]:
    cids = containers(project)
    before = {svc: cgroup_usage_seconds(cid) for svc, cid in cids.items()}
    host0, t0 = host_busy_seconds(), time.monotonic()
    time.sleep(seconds)
    host1, t1 = host_busy_seconds(), time.monotonic()
    after = {svc: cgroup_usage_seconds(cid) for svc, cid in cids.items() if svc in before}
    elapsed = t1 - t0
    per = {svc: (after[svc] - before[svc]) / elapsed for svc in after}
    return elapsed, (host1 - host0) / elapsed, per


def probe(container: str) -> tuple[int, str]:
    """Run the container's own health-check command once, as Docker would."""
    test = json.loads(docker("inspect", "--format", "{{json .Config.Healthcheck.Test}}", container))
    cmd = test[1:] if test[0] == "CMD" else ["sh", "-c", test[1]]
    started = time.monotonic()
    out = subprocess.run(["docker", "exec", container, *cmd], capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    return out.returncode, f"{(out.stdout + out.stderr).strip()[-160:]} ({took:.1f} s)"


def prove_probes(project: str, wait: float) -> None:
    """Freeze a service's main process (SIGSTOP) and show its probe fails, then thaw it."""
    for service, pattern in (("airflow-dag-processor", "bin/airflow dag-processor"),
                             ("airflow-worker", "celeryd: ")):
        container = f"{project}-{service}-1"
        rc, text = probe(container)
        print(f"  {service:24s} running : probe rc={rc}  {text}")
        docker("exec", container, "pkill", "-STOP", "-f", pattern)
        try:
            time.sleep(wait if service == "airflow-dag-processor" else 1)
            rc, text = probe(container)
            print(f"  {service:24s} frozen  : probe rc={rc}  {text}")
        finally:
            docker("exec", container, "pkill", "-CONT", "-f", pattern)
        rc, text = probe(container)
        print(f"  {service:24s} thawed  : probe rc={rc}  {text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compose-project", default=os.environ.get("MLOPS_COMPOSE_PROJECT", "lakehouse-tick"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--prove-probes", action="store_true",
                        help="freeze the dag-processor and the worker and show their probes fail")
    parser.add_argument("--heartbeat-max-age", type=float, default=30.0,
                        help="how long to keep the dag-processor frozen (its probe's max age)")
    args = parser.parse_args()

    cids = containers(args.compose_project)
    if not cids:
        sys.exit(f"no running containers in compose project {args.compose_project}")
    runs = active_dag_runs(args.compose_project)
    if runs != 0:
        sys.exit(f"{runs} DAG runs queued or running (or the DB did not answer): not idle, not measuring")
    start_health = health(cids)
    print(f"compose project {args.compose_project}: {len(cids)} containers, host has {os.cpu_count()} cores")
    elapsed, host_cores, per = measure(args.compose_project, args.seconds)
    end_health = health(cids)

    print(f"\nidle window {elapsed:.1f} s, no DAG run active")
    print(f"{'service':26s} {'cores':>7s}  health (start → end)")
    for svc in sorted(per, key=per.get, reverse=True):
        print(f"{svc:26s} {per[svc]:7.3f}  {start_health[svc]} → {end_health.get(svc, 'gone')}")
    print(f"{'all containers':26s} {sum(per.values()):7.3f}")
    print(f"{'host (/proc/stat)':26s} {host_cores:7.3f}  of {os.cpu_count()} cores")
    unhealthy = sorted(s for s, h in end_health.items() if h not in ("healthy", "running"))
    print("every service healthy" if not unhealthy else f"NOT healthy: {', '.join(unhealthy)}")

    if args.prove_probes:
        print("\nhealth probes against a frozen service:")
        prove_probes(args.compose_project, args.heartbeat_max_age + 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
