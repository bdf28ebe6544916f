"""Browser checks against the running platform (marker ``e2e``).

Skipped, with the reason, when Playwright, Chromium or the stack is missing;
run against a live stack they must pass. Settings come from the environment
(defaults in ``tools/mlops_tools/defaults.py``):

* ``MLOPS_AIRFLOW_URL`` (http://127.0.0.1:8082), ``MLOPS_MLFLOW_URL`` (http://127.0.0.1:5000)
* ``MLOPS_AIRFLOW_USER`` (admin), ``MLOPS_AIRFLOW_PASSWORD_FILE``
  (/opt/lakehouse-tick/secrets/airflow_admin_password)
* ``MLOPS_MLFLOW_USER`` (tools), ``MLOPS_MLFLOW_PASSWORD_FILE``
  (/opt/lakehouse-tick/secrets/mlflow_tools_password): MLflow's basic-auth login, which the
  browser answers for the MLflow origin only (Playwright's ``http_credentials``)
* ``MLOPS_CHROMIUM`` (/usr/bin/chromium: Debian's package, never ``playwright install``)
* ``MLOPS_SCREENSHOT_DIR`` (<repo>/reports/screenshots)
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from mlops_tools import defaults

CHROMIUM = os.environ.get("MLOPS_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT_DIR = Path(os.environ.get("MLOPS_SCREENSHOT_DIR", REPO / "reports" / "screenshots"))
# Flags that work in a root container without a GPU, D-Bus or network beyond loopback.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: drives a real browser against the running platform")


def _answers(url: str) -> str | None:
    """None when ``url`` answers HTTP at all, else why not."""
    try:
        requests.get(url, timeout=5)
    except requests.RequestException as exc:
        return f"{url} unreachable ({type(exc).__name__})"
    return None


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    """URLs and credentials of the running stack; skips the e2e tests when it is not up."""
    airflow, mlflow = defaults.AIRFLOW_URL.rstrip("/"), defaults.MLFLOW_URL.rstrip("/")
    for probe in (f"{airflow}/api/v2/monitor/health", f"{mlflow}/health"):
        why = _answers(probe)
        if why:
            pytest.skip(f"platform not running: {why} (start it with `make up`)")
    from mlops_tools.airflow_api import read_password

    try:
        password = read_password(defaults.AIRFLOW_PASSWORD_FILE, defaults.AIRFLOW_USER)
    except OSError as exc:
        pytest.fail(f"stack is up but the Airflow admin password is not readable: {exc} "
                    "(set MLOPS_AIRFLOW_PASSWORD_FILE)")
    from mlops_tools.mlflow_api import MlflowApiError, read_login

    try:
        mlflow_login = read_login(defaults.MLFLOW_USER, defaults.MLFLOW_PASSWORD_FILE)
    except MlflowApiError as exc:
        pytest.fail(f"stack is up but the MLflow password is not readable: {exc} (set MLOPS_MLFLOW_PASSWORD_FILE)")
    return {"airflow": airflow, "mlflow": mlflow, "user": defaults.AIRFLOW_USER, "password": password,
            "mlflow_login": mlflow_login}


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR


@pytest.fixture(scope="session")
def browser_context(stack: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    """A headless Debian Chromium with a fresh profile, driven by Playwright."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        pytest.skip(f"{CHROMIUM} not found (apt-get install -y chromium)")
    with sync_api.sync_playwright() as playwright:
        # MLflow asks for basic auth; the credentials go to its origin only, never to Airflow.
        login = stack.get("mlflow_login")
        credentials = ({"username": login[0], "password": login[1], "origin": stack["mlflow"]}
                       if login else None)
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000}, http_credentials=credentials,
        )
        context.set_default_timeout(60_000)  # first UI loads on a busy 2-core host take a while
        try:
            yield context
        finally:
            context.close()
