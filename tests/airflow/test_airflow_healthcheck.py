"""The health probe script (roles/airflow/files/healthcheck.py) outside any container.

Its `job` and `celery` checks need the metadata DB and the broker: they are exercised by
the converged stack (every Airflow service must turn healthy through them, and
`bench/idle.py --prove-probes` shows them failing against a frozen service). Here: the
argument handling, the exit codes, and the HTTP probe against a real local server.
"""
from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from role_code import load

probe = load("airflow/files/healthcheck.py")


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_http_healthy(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert probe.main(["http", f"{server}/health", "5"]) == 0
    assert "answered 200" in capsys.readouterr().out


def test_http_error_status_is_unhealthy(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert probe.main(["http", f"{server}/broken"]) == 1
    assert "503" in capsys.readouterr().err


def test_closed_port_is_unhealthy(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert probe.main(["http", f"http://127.0.0.1:{port}/health", "2"]) == 1
    assert capsys.readouterr().err.startswith("unhealthy:")


@pytest.mark.parametrize("argv", [[], ["jobs"], ["ping"]])
def test_unknown_check_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert probe.main(argv) == 2
    assert "usage" in capsys.readouterr().err


def test_missing_secret_is_unhealthy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(probe, "SECRETS", tmp_path)
    assert probe.main(["job", "DagProcessorJob", "30"]) == 1
    assert "airflow_sql_alchemy_conn" in capsys.readouterr().err


def test_running_airflow_task_is_named_without_its_token() -> None:
    # `inspect active` shows execute_workload with the workload as a JSON string argument.
    workload = json.dumps({"token": "eyJhbGciOi.secret.sig", "ti": {
        "id": "0199", "dag_id": "pytorch_mnist_cnn", "task_id": "train", "run_id": "manual__2026-12-01T08:30:00+00:00",
        "try_number": 1}, "kind": "ExecuteTask"})
    request = {"name": "execute_workload", "args": [workload], "id": "c0ffee"}
    named = probe.describe_task(request)
    assert named == "pytorch_mnist_cnn.train (manual__2026-12-01T08:30:00+00:00)"
    assert "secret" not in named


def test_other_celery_task_is_named_by_its_task_name() -> None:
    assert probe.describe_task({"name": "some.other.task", "args": [1, 2]}) == "some.other.task"


def test_drain_without_broker_secret_fails_cleanly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(probe, "SECRETS", tmp_path)
    assert probe.main(["drain", "5"]) == 1
    assert "airflow_celery_broker_url" in capsys.readouterr().err


class _Result:
    def __init__(self, queue: str, consumed: set[str]) -> None:
        self.queue, self.consumed = queue, consumed

    def get(self, timeout: float) -> str:
        if self.queue not in self.consumed:
            raise TimeoutError("The operation timed out.")
        return "pong"


def _fake_celery(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, consumes: dict[str, list[str]]) -> list[str]:
    """A stand-in `celery` module: workers consuming ``consumes``; returns the queues sent to."""
    sent: list[str] = []
    consumed = {name for names in consumes.values() for name in names}

    class Inspect:
        def __init__(self, destination: list[str] | None = None, limit: int | None = None, **_: object) -> None:
            self.destination, self.limit = destination, limit

        def ping(self) -> dict:
            # Like kombu: the reply collection stops once `limit` workers answered.
            return {node: {"ok": "pong"} for node in list(consumes)[:self.limit]}

        def active_queues(self) -> dict:
            return {node: [{"name": name, "routing_key": name} for name in names]
                    for node, names in consumes.items() if self.destination is None or node in self.destination}

        def active(self) -> dict:
            # one running task on each worker that consumes a queue named "heavy"
            return {node: [{"id": "t1"}] if "heavy" in names else []
                    for node, names in consumes.items() if self.destination is None or node in self.destination}

    class Celery:
        def __init__(self, **_: object) -> None:
            self.control = types.SimpleNamespace(inspect=Inspect)

        def send_task(self, name: str, args: list, kwargs: dict, queue: str) -> _Result:
            assert (name, args) == ("celery.accumulate", ["pong"])
            sent.append(queue)
            return _Result(queue, consumed)

        def close(self) -> None:
            pass

    monkeypatch.setitem(sys.modules, "celery", types.SimpleNamespace(Celery=Celery))
    monkeypatch.setattr(probe, "SECRETS", tmp_path)
    for name in ("airflow_celery_broker_url", "airflow_celery_result_backend"):
        (tmp_path / name).write_text("redis://unused\n")
    return sent


def test_roundtrip_reaches_every_queue_and_reports_what_the_workers_consume(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sent = _fake_celery(monkeypatch, tmp_path, {"celery@w1": ["heavy", "default"]})
    assert probe.main(["roundtrip", "default,heavy", "5"]) == 0
    assert sent == ["default", "heavy"]
    report = json.loads(capsys.readouterr().out)
    assert report["workers"] == ["celery@w1"]
    assert report["consumes"] == {"celery@w1": ["default", "heavy"]}
    assert report["answers"] == {"default": "pong", "heavy": "pong"}
    assert set(report["seconds"]) == {"default", "heavy"} and report["answer"] == "pong"


def test_roundtrip_waits_for_as_many_workers_as_asked(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With worker hosts, every worker must be in the report: the ping waits for that many."""
    consumes = {"celery@cp": ["default"], "celery@w1": ["default", "light"], "celery@w2": ["default", "heavy"]}
    _fake_celery(monkeypatch, tmp_path, consumes)
    assert probe.main(["roundtrip", "default,light,heavy", "5", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["workers"] == ["celery@cp", "celery@w1", "celery@w2"]
    assert report["consumes"] == consumes
    _fake_celery(monkeypatch, tmp_path, consumes)
    assert probe.main(["roundtrip", "default", "5"]) == 0  # one worker asked: the first to answer
    assert len(json.loads(capsys.readouterr().out)["workers"]) == 1


def test_workers_lists_every_worker_with_its_queues_and_running_tasks(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sent = _fake_celery(monkeypatch, tmp_path, {"celery@w2": ["heavy", "default"], "celery@0a1b2c3d4e5f": ["default"]})
    assert probe.main(["workers", "2"]) == 0
    assert sent == []  # read-only: no task goes out
    assert json.loads(capsys.readouterr().out) == {
        "celery@0a1b2c3d4e5f": {"queues": ["default"], "running": 0},
        "celery@w2": {"queues": ["default", "heavy"], "running": 1},
    }


def test_roundtrip_names_the_queue_no_worker_consumes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_celery(monkeypatch, tmp_path, {"celery@w1": ["default"]})
    assert probe.main(["roundtrip", "default,heavy", "1"]) == 1
    err = capsys.readouterr().err
    assert "no answer from queue 'heavy'" in err
    assert "{'celery@w1': ['default']}" in err


def test_resume_adds_a_consumer_for_each_queue(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    added: list[tuple[str, list[str]]] = []

    class Celery:
        def __init__(self, **_: object) -> None:
            self.control = types.SimpleNamespace(
                add_consumer=lambda name, destination, **_: added.append((name, destination)))

        def close(self) -> None:
            pass

    monkeypatch.setitem(sys.modules, "celery", types.SimpleNamespace(Celery=Celery))
    monkeypatch.setattr(probe, "SECRETS", tmp_path)
    (tmp_path / "airflow_celery_broker_url").write_text("redis://unused\n")
    node = f"celery@{socket.gethostname()}"
    assert probe.resume_worker("default,heavy") == f"{node} consumes default,heavy"
    assert added == [("default", [node]), ("heavy", [node])]
