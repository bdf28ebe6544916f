"""A real `mlflow server` on a loopback port for the tests that need one (tools, auth).

One place starts it, waits for /health and stops it: the fixtures differ only in the
server's arguments, environment and what they do while it boots.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def mlflow_server(python: str, root: Path, backend_uri: str, *, env: dict[str, str], timeout: float,
                  extra_args: tuple[str, ...] = (), while_booting: Callable[[str], None] | None = None) -> Iterator[str]:
    """Run `mlflow server` (proxied artifacts under `root`), yield its URL once /health answers.

    `while_booting(url)` runs right after the start, before the wait (e.g. a seeding process
    that imports MLflow meanwhile). The server's output goes to `root`/server.log, whose tail
    a failed start reports.
    """
    port = free_port()
    log_path = root / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [python, "-m", "mlflow", "server", *extra_args, "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--backend-store-uri", backend_uri,
             "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            if while_booting is not None:
                while_booting(url)
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    pytest.fail(f"mlflow server exited {process.returncode}: {log_path.read_text()[-2000:]}")
                try:
                    if requests.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not answer /health within {timeout:.0f} s")
                time.sleep(0.5)
            yield url
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)  # the CLI may linger after SIGTERM; nothing needs a clean stop
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
