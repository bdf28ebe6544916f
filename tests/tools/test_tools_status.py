"""The status command: parsing of real Docker and Airflow outputs, verdicts, formatting, degradation.

``data/docker-*`` were captured on a Docker 20.10 engine from throwaway containers
(lt-dev-tools-*: healthy, unhealthy, OOM-killed, one-shot exit 0, restarted twice).
``data/airflow/*`` are Airflow 3.3.2 REST API v2 answers (FAB auth manager) captured
from a local api-server with the six DAGs; a stub server replays them.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from mlops_tools import defaults, status
from mlops_tools.airflow_api import read_password, run_duration
from mlops_tools.pipelines import DAG_IDS

DATA = Path(__file__).with_name("data")
PROJECT = "lt-dev-tools"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- docker parsing


def test_parse_size_reads_docker_units():
    assert status.parse_size("508KiB") == 508 * 1024
    assert status.parse_size("1.5GiB") == 3 * 1024**3 // 2
    assert status.parse_size("32MiB") == 32 * 1024**2
    assert status.parse_size("12.3MB") == 12_300_000
    assert status.parse_size("0B") == 0
    assert status.parse_size(" 64MiB ") == 64 * 1024**2
    assert status.parse_size("--") is None and status.parse_size("3 parsecs") is None


def test_parse_percent():
    assert status.parse_percent("2.75%") == 2.75
    assert status.parse_percent("0.00%") == 0.0
    assert status.parse_percent("--") is None


def test_parse_stats_from_docker():
    stats = status.parse_stats((DATA / "docker-stats.jsonl").read_text())
    assert set(stats) == {"lt-dev-tools-web-1", "lt-dev-tools-sick-1"}
    web = stats["lt-dev-tools-web-1"]
    assert web["cpu_percent"] == 2.38 and web["mem_percent"] == 1.11 and web["pids"] == 1
    assert web["mem_used_bytes"] == 728 * 1024 and web["mem_stats_limit_bytes"] == 64 * 1024**2


def test_parse_inspect_from_docker():
    rows = {c["name"]: c for c in status.parse_inspect((DATA / "docker-inspect.json").read_text())}
    assert set(rows) == {f"lt-dev-tools-{s}-1" for s in ("web", "sick", "oom", "init", "flaky")}
    web, sick, oom = rows["lt-dev-tools-web-1"], rows["lt-dev-tools-sick-1"], rows["lt-dev-tools-oom-1"]
    assert (web["state"], web["health"], web["service"], web["project"]) == ("running", "healthy", "web", PROJECT)
    assert web["mem_limit_bytes"] == 64 * 1024**2 and web["cpus_limit"] == 0.5
    assert sick["health"] == "unhealthy" and sick["cpus_limit"] is None
    assert (oom["state"], oom["exit_code"], oom["oom_killed"], oom["mem_limit_bytes"]) == ("exited", 137, True,
                                                                                           16 * 1024**2)
    assert rows["lt-dev-tools-flaky-1"]["restart_count"] == 2 and rows["lt-dev-tools-flaky-1"]["exit_code"] == 3
    assert rows["lt-dev-tools-init-1"]["exit_code"] == 0 and rows["lt-dev-tools-init-1"]["health"] is None


def fake_docker(daemon_up: bool = True):
    """Answers the three docker commands status runs with the captured outputs."""
    calls = []

    def runner(args, timeout):
        calls.append(args)
        if not daemon_up:
            return 1, "", (DATA / "docker-daemon-down.stderr").read_text().strip()
        if args[1] == "ps":
            return 0, (DATA / "docker-ps-q.txt").read_text(), ""
        if args[1] == "inspect":
            return 0, (DATA / "docker-inspect.json").read_text(), ""
        if args[1] == "stats":
            return 0, (DATA / "docker-stats.jsonl").read_text(), ""
        if args[1] == "info":
            return 0, (DATA / "docker-info-root.txt").read_text(), ""
        raise AssertionError(args)

    runner.calls = calls
    return runner


def test_docker_status_verdicts():
    runner = fake_docker()
    result = status.docker_status(PROJECT, ("web", "sick", "oom", "init", "flaky", "worker"),
                                  frozenset({"init"}), 5.0, runner)
    assert result["reachable"] is True
    assert runner.calls[0][:3] == ["docker", "ps", "-aq"] and f"label=com.docker.compose.project={PROJECT}" in \
        runner.calls[0]
    rows = {c["service"]: c for c in result["containers"]}
    assert rows["web"]["problems"] == [] and rows["web"]["warnings"] == []
    assert rows["web"]["cpu_percent"] == 2.38
    assert rows["web"]["mem_percent_of_limit"] == pytest.approx(100 * 728 / (64 * 1024))
    assert rows["sick"]["problems"] == ["unhealthy"]
    assert rows["oom"]["problems"] == ["exited (exit 137)", "OOMKilled"]
    assert rows["oom"].get("cpu_percent") is None  # stopped: no figures from docker stats
    assert rows["init"]["problems"] == []  # one-shot that exited 0 is fine
    assert rows["flaky"]["problems"] == ["exited (exit 3)"] and rows["flaky"]["warnings"] == ["restarted 2×"]
    assert rows["worker"]["state"] == "missing" and rows["worker"]["name"] == f"{PROJECT}-worker-1"


def test_docker_down_is_a_row_not_a_crash():
    result = status.docker_status(PROJECT, ("web",), frozenset(), 5.0, fake_docker(daemon_up=False))
    assert result["reachable"] is False
    assert "Cannot connect to the Docker daemon" in result["error"]
    assert status.docker_root_dir(5.0, fake_docker(daemon_up=False)) is None
    assert status.docker_root_dir(5.0, fake_docker()) == "/var/lib/docker"


def test_run_command_reports_missing_binaries_and_timeouts():
    assert status.run_command(["lt-no-such-binary-xyz"], 1)[0] == 127
    rc, _, err = status.run_command(["sleep", "5"], 0.2)
    assert rc == 124 and "no answer" in err


def test_parse_meminfo():
    text = "MemTotal:       24576000 kB\nMemFree:  100 kB\nMemAvailable:   20480000 kB\nSwapTotal: 0 kB\n"
    assert status.parse_meminfo(text) == {"MemTotal": 24576000 * 1024, "MemAvailable": 20480000 * 1024,
                                          "SwapTotal": 0}


def test_host_status_flags_missing_paths(tmp_path):
    host = status.host_status(str(tmp_path), str(tmp_path / "nope"), str(tmp_path / "compose.yml"))
    project, docker_root = host["disks"]
    assert project["total_bytes"] > 0 and project["problems"] in ([], [f"disk {project['used_percent']:.0f} % full"])
    assert docker_root["problems"] == [f"{tmp_path / 'nope'}: not readable"]
    assert host["compose_file_exists"] is False
    assert host["memory"]["MemTotal"] > 0


# --------------------------------------------------------------------------- airflow (replayed API)


class AirflowReplay(BaseHTTPRequestHandler):
    """Serves the captured Airflow 3.3.2 answers; checks the Bearer token like the real server."""

    def log_message(self, *args):
        pass

    def _send(self, code, body):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/auth/token" and body == {"username": "admin", "password": "s3cret"}:
            return self._send(201, {"access_token": "test-token"})
        text, code = (DATA / "airflow" / "token-refused.txt").read_text().split("\n")[:2]
        return self._send(int(code), text)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/api/v2/monitor/health":
            return self._send(200, (DATA / "airflow" / "health.json").read_text())
        if self.headers.get("Authorization") != "Bearer test-token":
            return self._send(401, {"detail": "Not authenticated"})
        parts = url.path.split("/")
        if url.path == "/api/v2/importErrors":
            return self._send(200, (DATA / "airflow" / "import-errors.json").read_text())
        if len(parts) == 5 and parts[3] == "dags":
            found = DATA / "airflow" / f"dag-{parts[4]}.json"
            if found.exists():
                return self._send(200, found.read_text())
            text, code = (DATA / "airflow" / "dag-missing.txt").read_text().split("\n")[:2]
            return self._send(int(code), text)
        if len(parts) == 6 and parts[5] == "dagRuns":
            query = parse_qs(url.query)
            assert query["order_by"] == ["-run_after"] and query["limit"] == ["3"]
            return self._send(200, (DATA / "airflow" / f"dagruns-{parts[4]}.json").read_text())
        return self._send(404, {"detail": "Not Found"})


@pytest.fixture(scope="module")
def airflow_replay():
    server = ThreadingHTTPServer(("127.0.0.1", 0), AirflowReplay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "airflow_admin_password"
    path.write_text("s3cret\n")
    return str(path)


def test_airflow_runs_health_and_verdicts(airflow_replay, password_file):
    result = status.airflow_status(airflow_replay, "admin", password_file, (*DAG_IDS, "no_such_dag"), 3, 5.0)
    assert result["reachable"] is True
    assert result["health"] == {"metadatabase": "healthy", "scheduler": "healthy", "triggerer": None,
                                "dag_processor": None}
    dags = {d["dag_id"]: d for d in result["dags"]}
    failed = dags["tensorflow_mnist_mlp"]["runs"][0]
    assert failed["state"] == "failed" and failed["duration_seconds"] == 50.990205
    assert failed["start_date"] == "2026-11-27T10:44:37.032979Z"
    assert [r["state"] for r in dags["lightgbm_pipeline"]["runs"]] == ["failed", "success"]
    assert dags["pytorch_mnist_cnn"]["runs"] == [] and dags["pytorch_mnist_cnn"]["is_paused"] is True
    assert dags["no_such_dag"]["found"] is False
    assert result["import_errors"] == []
    assert "tensorflow_mnist_mlp: latest run failed" in result["problems"]
    assert "no_such_dag: not found" in result["problems"]
    assert "xgboost_pipeline: paused" in result["warnings"]


def test_airflow_wrong_password_and_missing_file(airflow_replay, tmp_path):
    wrong = tmp_path / "pw"
    wrong.write_text("nope")
    result = status.airflow_status(airflow_replay, "admin", str(wrong), DAG_IDS, 3, 5.0)
    assert result["reachable"] is True and result["problems"] == ["Airflow login failed"]
    assert "HTTP 401" in result["auth_error"]
    result = status.airflow_status(airflow_replay, "admin", str(tmp_path / "missing"), DAG_IDS, 3, 5.0)
    assert result["problems"] == ["no credentials: DAG runs not read"]
    assert "cannot read password file" in result["auth_error"]


def test_airflow_down_is_reported_fast():
    started = time.monotonic()
    result = status.airflow_status(f"http://127.0.0.1:{closed_port()}", "admin", "/nonexistent", DAG_IDS, 3, 5.0)
    assert result["reachable"] is False and result["problems"] == ["Airflow API unreachable"]
    assert time.monotonic() - started < 3


def test_read_password_accepts_plain_and_simple_auth_manager_json(tmp_path):
    plain, as_json = tmp_path / "a", tmp_path / "b"
    plain.write_text("pw with spaces \n")
    as_json.write_text('{"admin": "pw2", "viewer": "x"}')
    assert read_password(plain, "admin") == "pw with spaces"
    assert read_password(as_json, "admin") == "pw2"


def test_run_duration_prefers_airflow_and_falls_back_to_dates():
    assert run_duration({"duration": 12.5}) == 12.5
    run = {"duration": None, "start_date": "2026-01-01T00:00:00Z", "end_date": "2026-01-01T00:01:30.5Z"}
    assert run_duration(run) == 90.5
    assert run_duration({"duration": None, "start_date": None, "end_date": "2026-01-01T00:00:00Z"}) is None


# --------------------------------------------------------------------------- whole command


@pytest.mark.mlflow_server
def test_mlflow_reachable_with_version(mlflow_server):
    result = status.mlflow_status(mlflow_server["url"], 5.0)
    assert result["reachable"] is True and result["version"] == "3.17.2" and result["problems"] == []


def test_everything_down_still_prints_within_budget(tmp_path, capsys):
    port = closed_port()
    args = ["--project", f"lt-none-{uuid.uuid4().hex[:6]}", "--project-dir", str(tmp_path),
            "--compose-file", str(tmp_path / "docker-compose-mlops.yml"), "--services", "mlflow,airflow-worker",
            "--docker-root", str(tmp_path), "--airflow-url", f"http://127.0.0.1:{port}",
            "--mlflow-url", f"http://127.0.0.1:{port}", "--airflow-password-file", str(tmp_path / "pw")]
    started = time.monotonic()
    assert status.main(args) == 0
    text = capsys.readouterr().out
    assert time.monotonic() - started < 10
    assert "airflow  http://127.0.0.1:" in text and "UNREACHABLE" in text
    assert "MISSING" in text  # the compose file
    assert status.main([*args, "--strict", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["airflow"]["reachable"] is False and data["mlflow"]["reachable"] is False
    assert any("MLflow API unreachable" in p for p in data["problems"])
    if data["docker"]["reachable"]:
        assert [c["state"] for c in data["docker"]["containers"]] == ["missing", "missing"]


def fake_celery_probe(answer: str | None = None, rc: int = 0):
    """The scheduler's `healthcheck.py workers` as `docker exec` returns it."""
    calls = []
    out = answer if answer is not None else json.dumps({
        "celery@0a1b2c3d4e5f": {"queues": ["default"], "running": 0},
        "celery@gpu-1": {"queues": ["default", "heavy"], "running": 1}})

    def runner(args, timeout):
        calls.append(args)
        return (rc, out, "" if rc == 0 else "Error response from daemon: No such container")
    runner.calls = calls
    return runner


def test_celery_workers_by_host():
    runner = fake_celery_probe()
    found = status.celery_workers(PROJECT, 5.0, runner)
    assert runner.calls == [["docker", "exec", f"{PROJECT}-airflow-scheduler-1", "python3", "/opt/mlops/healthcheck.py",
                             "workers", "1.5"]]
    assert found["workers"] == [
        {"node": "celery@0a1b2c3d4e5f", "host": "control plane (container 0a1b2c3d4e5f)", "queues": ["default"],
         "running": 0},
        {"node": "celery@gpu-1", "host": "gpu-1", "queues": ["default", "heavy"], "running": 1}]
    assert found["problems"] == []
    assert status.celery_workers(PROJECT, 5.0, fake_celery_probe("{}"))["problems"] == [
        "no Celery worker answers: tasks would wait in the broker"]
    down = status.celery_workers(PROJECT, 5.0, fake_celery_probe("", rc=1))
    assert down["reachable"] is False and "No such container" in down["problems"][0]


def test_format_lists_every_container_and_verdict(tmp_path):
    docker = status.docker_status(PROJECT, ("web", "sick", "oom", "init", "flaky", "gone"), frozenset({"init"}),
                                  5.0, fake_docker())
    host = status.host_status(str(tmp_path), None, str(tmp_path / "c.yml"))
    text = status.format_status({
        "generated_at": "2026-01-01T00:00:00+00:00", "project": PROJECT, "elapsed_seconds": 1.0,
        "docker": docker, "host": host,
        "airflow": {"url": "http://a", "reachable": False, "error": "Airflow unreachable", "dags": []},
        "mlflow": {"url": "http://m", "reachable": True, "version": "3.17.2", "experiments": 7, "latency_ms": 5},
        "celery": status.celery_workers(PROJECT, 5.0, fake_celery_probe()),
        "problems": ["x"], "warnings": [],
    })
    for needle in ("lt-dev-tools-web-1", "healthy", "728.0KiB / 64.0MiB (1%)", "0.5", "unhealthy",
                   "exited (137)", "OOMKilled", "restarted 2×", "lt-dev-tools-gone-1", "missing",
                   "version 3.17.2, 7 experiments", "UNREACHABLE", "unavailable — Airflow unreachable"):
        assert needle in text, needle
    # one row per worker, the control plane's first: host, worker, queues, running tasks
    assert re.search(r"control plane \(container 0a1b2c3d4e5f\)\s+celery@0a1b2c3d4e5f\s+default\s+0\n\s*gpu-1\s+"
                     r"celery@gpu-1\s+default, heavy\s+1\n", text), text
    header = text.splitlines()[3]
    assert header.split()[:4] == ["service", "container", "state", "health"]


# --------------------------------------------------------------------------- real docker, own container


@pytest.fixture
def own_container():
    """A throwaway container in its own compose-labelled project (needs Docker and debian:bookworm-slim)."""
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not installed")
    image = "debian:bookworm-slim"
    found = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=30, check=False)
    if found.returncode != 0:
        pytest.skip(f"Docker daemon unreachable or image {image} missing")
    project = f"lt-dev-tools-pytest-{uuid.uuid4().hex[:8]}"
    name = f"{project}-probe-1"
    subprocess.run(["docker", "run", "-d", "--name", name, "--label", f"com.docker.compose.project={project}",
                    "--label", "com.docker.compose.service=probe", "--memory", "48m", "--cpus", "0.25",
                    image, "sleep", "120"], check=True, capture_output=True, timeout=60)
    try:
        yield project, name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)


def test_live_docker_container_is_read(own_container):
    project, name = own_container
    result = status.docker_status(project, ("probe",), frozenset(), 10.0)
    (row,) = result["containers"]
    assert row["name"] == name and row["state"] == "running" and row["health"] is None
    assert row["mem_limit_bytes"] == 48 * 1024**2 and row["cpus_limit"] == 0.25
    assert row["mem_used_bytes"] is not None and row["cpu_percent"] is not None
    assert row["problems"] == [] and row["oom_killed"] is False


# --------------------------------------------------------------------------- the running platform


@pytest.mark.e2e
def test_status_of_the_running_platform(capsys):
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not installed")
    project = defaults.COMPOSE_PROJECT
    probe = subprocess.run(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}"],
                           capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0 or not probe.stdout.strip():
        pytest.skip(f"platform not running: no containers of compose project {project} (start it with `make up`)")
    started = time.monotonic()
    assert status.main(["--json"]) == 0
    elapsed = time.monotonic() - started
    data = json.loads(capsys.readouterr().out)
    assert elapsed < 10, f"status took {elapsed:.1f} s"
    assert data["docker"]["reachable"] and data["mlflow"]["reachable"] and data["airflow"]["reachable"]
    assert {c["service"] for c in data["docker"]["containers"] if c["state"] == "running"} >= {
        "mlflow", "mlflow-db", "airflow-apiserver", "airflow-scheduler", "airflow-worker"}
    assert [d["dag_id"] for d in data["airflow"]["dags"] if d.get("found")] == list(DAG_IDS)
    # the worker beside the scheduler answers through the broker, named after its container
    assert any(w["host"].startswith("control plane") and "default" in w["queues"] for w in data["celery"]["workers"])
