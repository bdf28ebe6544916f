"""The health probe script (roles/airflow/files/healthcheck.py) outside any container.

Its `job` and `celery` checks need the metadata DB and the broker: they are exercised by
the converged stack (every Airflow service must turn healthy through them, and
`bench/idle.py --prove-probes` shows them failing against a frozen service). Here: the
argument handling, the exit codes, and the HTTP probe against a real local server.
"""
from __future__ import annotations

import http.server
import socket
import threading
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
