"""Airflow 3 REST API v2 access: admin credentials, JWT token, a few read calls.

Airflow 3 has no basic auth: ``POST /auth/token`` with ``{"username", "password"}``
returns ``{"access_token": ...}`` (201 with the FAB auth manager, 200/201 with the
simple one), then ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests


class AirflowApiError(RuntimeError):
    """Airflow could not be reached, refused the credentials, or answered with an error."""


def read_password(path: str | Path, user: str) -> str:
    """The admin password from the secret file the airflow role generated.

    The file holds the bare password, or a JSON object ``{"<user>": "<password>"}``
    (the simple auth manager's passwords file).
    """
    raw = Path(path).read_text(encoding="utf-8").strip()
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except ValueError:
            return raw
        if user not in data:
            raise AirflowApiError(f"{path} has no password for user {user!r}")
        return str(data[user])
    return raw


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value)  # Python 3.11 reads the trailing "Z"


def run_duration(run: dict[str, Any], now: datetime | None = None) -> float | None:
    """Seconds from start to end (or to ``now`` while running); Airflow's ``duration`` when given."""
    if run.get("duration") is not None:
        return float(run["duration"])
    start, end = parse_time(run.get("start_date")), parse_time(run.get("end_date"))
    if start is None:
        return None
    return ((end or now or datetime.now(UTC)) - start).total_seconds()


class AirflowClient:
    def __init__(self, base_url: str, user: str, password: str | None, timeout: float = 5.0,
                 session: requests.Session | None = None, deadline: float | None = None) -> None:
        """``deadline`` (a ``time.monotonic()`` value) caps the time left for every later call."""
        self.base_url = base_url.rstrip("/")
        self.deadline = deadline
        self.user = user
        self.password = password
        self.timeout = timeout
        self.session = session or requests.Session()
        self._token: str | None = None

    def health(self) -> dict[str, Any]:
        """``/api/v2/monitor/health`` (no auth): metadatabase, scheduler, triggerer, dag_processor."""
        return self._call("GET", "/api/v2/monitor/health", auth=False)

    def token(self) -> str:
        if self._token is None:
            if not self.password:
                raise AirflowApiError("no Airflow password (see --airflow-password-file)")
            body = self._call("POST", "/auth/token", auth=False,
                              json={"username": self.user, "password": self.password})
            token = body.get("access_token")
            if not token:
                raise AirflowApiError("POST /auth/token returned no access_token")
            self._token = token
        return self._token

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self._call("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", path, json=body)

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", path, json=body)

    def _call(self, method: str, path: str, auth: bool = True, **kwargs: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token()}"} if auth else {}
        timeout = self.timeout
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - time.monotonic())
            if timeout <= 0.05:
                raise AirflowApiError(f"{method} {path}: time budget exhausted")
        try:
            response = self.session.request(method, f"{self.base_url}{path}", headers=headers,
                                            timeout=timeout, **kwargs)
        except requests.RequestException as exc:
            raise AirflowApiError(f"Airflow unreachable at {self.base_url}: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            detail = response.text[:200].replace("\n", " ")
            raise AirflowApiError(f"{method} {path} → HTTP {response.status_code}: {detail}")
        try:
            return response.json()
        except ValueError as exc:
            raise AirflowApiError(f"{method} {path} did not return JSON") from exc

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        try:
            return self.get(f"/api/v2/dags/{dag_id}")
        except AirflowApiError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise

    def dag_runs(self, dag_id: str, limit: int = 3) -> list[dict[str, Any]]:
        """The newest runs of a DAG (by ``run_after``, which queued runs have too)."""
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns", order_by="-run_after", limit=limit).get("dag_runs", [])

    def import_errors(self) -> dict[str, Any]:
        return self.get("/api/v2/importErrors", limit=20)
