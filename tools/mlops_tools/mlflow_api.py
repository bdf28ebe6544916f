"""A small MLflow REST API 2.0 client (requests only), for what the report reads and writes.

Endpoints checked against the MLflow 3.17.2 server code (``mlflow/server/handlers.py``,
``mlflow/server/artifact_router.py`` and ``protos/service.proto``):

* ``POST /api/2.0/mlflow/runs/search``, ``GET /api/2.0/mlflow/runs/get``
* ``GET /api/2.0/mlflow/metrics/get-history`` (paged with ``page_token``)
* ``GET /api/2.0/mlflow/artifacts/list`` (run artifacts, one level per call)
* ``GET /api/2.0/mlflow/logged-models/{model_id}/artifacts/directories`` (MLflow 3 models
  logged with ``log_model(name=...)`` live under the logged model, not under the run)
* ``GET /api/2.0/mlflow/registered-models/get`` and ``.../registered-models/alias``
* ``POST /api/2.0/mlflow/experiments/create``, ``runs/create``, ``runs/log-batch``, ``runs/update``
* ``PUT /api/2.0/mlflow-artifacts/artifacts/<path>``: proxied upload, served when the
  server runs with ``--serve-artifacts``; ``<path>`` is the run's artifact URI
  (``mlflow-artifacts:/<experiment_id>/<run_id>/artifacts``) without its scheme.
"""

from __future__ import annotations

import argparse
import mimetypes
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import requests

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"


Login = tuple[str, str]


def read_login(user: str, password_file: str | Path | None) -> Login | None:
    """``(user, password)`` for MLflow's basic auth, the password read from its file.

    None when no user or no file is given, or the file does not exist (an MLflow without
    login, e.g. a local test server). A file that exists but cannot be read is an error.
    """
    if not user or not password_file or not Path(password_file).exists():
        return None
    try:
        password = Path(password_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise MlflowApiError(f"cannot read the MLflow password file {password_file}: {exc}") from exc
    return user, password


def add_login_arguments(parser: argparse.ArgumentParser) -> None:
    """``--mlflow-user`` and ``--mlflow-password-file`` (a file: a password never goes on a command line)."""
    from mlops_tools import defaults

    parser.add_argument("--mlflow-user", default=defaults.MLFLOW_USER,
                        help="MLflow account (default %(default)s; '' for an MLflow without login)")
    parser.add_argument("--mlflow-password-file", default=defaults.MLFLOW_PASSWORD_FILE,
                        help="file holding that account's password (default %(default)s)")


class MlflowApiError(RuntimeError):
    """MLflow answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None, error_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


def _number(value: Any) -> float:
    """Metric values arrive as JSON numbers, or as strings for NaN/Infinity."""
    return float(value)


def kv(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    """``[{"key": k, "value": v}, ...]`` (params, tags) → ``{k: v}``."""
    return {item["key"]: item.get("value") for item in items or []}


def latest_metrics(run: dict[str, Any]) -> dict[str, float]:
    """A run's latest value per metric key, as search/get return it."""
    return {m["key"]: _number(m["value"]) for m in run.get("data", {}).get("metrics", []) or []}


class MlflowClient:
    """Thin wrapper over the REST API; every call raises :class:`MlflowApiError` on failure."""

    def __init__(self, base_url: str, timeout: float = 15.0, session: requests.Session | None = None,
                 auth: Login | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        if auth is not None:
            self.session.auth = auth

    # ------------------------------------------------------------------ transport

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}{path}"
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise MlflowApiError(f"MLflow unreachable at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            code, message = None, response.text[:300]
            try:
                body = response.json()
                code, message = body.get("error_code"), body.get("message", message)
            except ValueError:
                pass
            if response.status_code == 401:
                who = f"as {self.session.auth[0]!r}" if self.session.auth else "without a login"
                message = f"MLflow refused the request {who} (see --mlflow-user, --mlflow-password-file)"
            raise MlflowApiError(
                f"{method} {path} → HTTP {response.status_code} {code or ''}: {message}".strip(),
                status=response.status_code, error_code=code,
            )
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            return {}

    def get(self, endpoint: str, /, **params: Any) -> Any:
        return self._request("GET", f"{API}{endpoint}", params={k: v for k, v in params.items() if v is not None})

    def post(self, endpoint: str, body: dict[str, Any]) -> Any:
        return self._request("POST", f"{API}{endpoint}", json=body)

    # ------------------------------------------------------------------ reading

    def health(self) -> bool:
        """``GET /health`` (skips MLflow's Host-header check; see :meth:`experiment_by_name` for a real call)."""
        try:
            response = self.session.get(f"{self.base_url}/health", timeout=self.timeout)
        except requests.RequestException:
            return False
        return response.status_code == 200

    def version(self) -> str | None:
        try:
            response = self.session.get(f"{self.base_url}/version", timeout=self.timeout)
        except requests.RequestException:
            return None
        return response.text.strip() if response.status_code == 200 else None

    def _found(self, path: str, field: str, missing: frozenset[str] = frozenset({"RESOURCE_DOES_NOT_EXIST"}), /,
               **params: Any) -> dict[str, Any] | None:
        """``field`` of the answer to ``path``, or None when MLflow says there is no such thing."""
        try:
            return self.get(path, **params)[field]
        except MlflowApiError as exc:
            if exc.error_code in missing or exc.status == 404:
                return None
            raise

    def experiment_by_name(self, name: str) -> dict[str, Any] | None:
        return self._found("/experiments/get-by-name", "experiment", experiment_name=name)

    def search_experiments(self, max_results: int = 1000) -> list[dict[str, Any]]:
        body = self.post("/experiments/search", {"max_results": max_results})
        return body.get("experiments", [])

    def search_runs(self, experiment_ids: list[str], filter_string: str = "",
                    order_by: list[str] | None = None, max_results: int = 1000,
                    limit: int | None = None) -> list[dict[str, Any]]:
        """Active runs matching ``filter_string``, following page tokens up to ``limit`` runs."""
        runs: list[dict[str, Any]] = []
        token = None
        while True:
            body = self.post("/runs/search", {
                "experiment_ids": experiment_ids, "filter": filter_string,
                "run_view_type": "ACTIVE_ONLY", "max_results": max_results,
                "order_by": order_by or ["attributes.start_time DESC"],
                **({"page_token": token} if token else {}),
            })
            runs.extend(body.get("runs", []))
            token = body.get("next_page_token")
            if not token or (limit is not None and len(runs) >= limit):
                return runs[:limit] if limit is not None else runs

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self.get("/runs/get", run_id=run_id)["run"]

    def metric_history(self, run_id: str, key: str) -> list[dict[str, Any]]:
        """Every logged value of one metric, sorted by (step, timestamp)."""
        values: list[dict[str, Any]] = []
        token = None
        while True:
            body = self.get("/metrics/get-history", run_id=run_id, metric_key=key,
                            max_results=25000, page_token=token)
            values.extend(body.get("metrics", []))
            token = body.get("next_page_token")
            if not token:
                break
        for value in values:
            value["value"] = _number(value["value"])
            value["step"] = int(value.get("step", 0))
        return sorted(values, key=lambda m: (m["step"], int(m.get("timestamp", 0))))

    def _walk(self, lister: Any, path: str | None) -> Iterator[dict[str, Any]]:
        for entry in lister(path):
            if entry.get("is_dir"):
                yield from self._walk(lister, entry["path"])
            else:
                yield {"path": entry["path"], "file_size": int(entry.get("file_size", 0))}

    def run_artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """All files under a run's artifact root (recursive), with sizes in bytes."""
        def lister(path: str | None) -> list[dict[str, Any]]:
            return self.get("/artifacts/list", run_id=run_id, path=path).get("files", [])
        return list(self._walk(lister, None))

    def logged_model_artifacts(self, model_id: str) -> list[dict[str, Any]]:
        """All files of an MLflow 3 logged model (recursive), with sizes in bytes."""
        def lister(path: str | None) -> list[dict[str, Any]]:
            return self.get(f"/logged-models/{quote(model_id, safe='')}/artifacts/directories",
                            artifact_directory_path=path).get("files", [])
        return list(self._walk(lister, None))

    def registered_model(self, name: str) -> dict[str, Any] | None:
        return self._found("/registered-models/get", "registered_model", name=name)

    def version_by_alias(self, name: str, alias: str) -> dict[str, Any] | None:
        # MLflow answers an unknown alias with INVALID_PARAMETER_VALUE.
        return self._found("/registered-models/alias", "model_version",
                           frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}), name=name, alias=alias)

    # ------------------------------------------------------------------ writing

    def ensure_experiment(self, name: str) -> str:
        found = self.experiment_by_name(name)
        if found is not None:
            if found.get("lifecycle_stage") == "deleted":
                self.post("/experiments/restore", {"experiment_id": found["experiment_id"]})
            return found["experiment_id"]
        try:
            return self.post("/experiments/create", {"name": name})["experiment_id"]
        except MlflowApiError:
            found = self.experiment_by_name(name)  # created concurrently
            if found is None:
                raise
            return found["experiment_id"]

    def create_run(self, experiment_id: str, run_name: str, tags: dict[str, str]) -> dict[str, Any]:
        return self.post("/runs/create", {
            "experiment_id": experiment_id, "run_name": run_name,
            "start_time": int(time.time() * 1000),
            "tags": [{"key": k, "value": str(v)} for k, v in tags.items()],
        })["run"]

    def log_batch(self, run_id: str, metrics: dict[str, float] | None = None,
                  params: dict[str, Any] | None = None, tags: dict[str, str] | None = None) -> None:
        now = int(time.time() * 1000)
        metric_list = [{"key": k, "value": float(v), "timestamp": now, "step": 0} for k, v in (metrics or {}).items()]
        param_list = [{"key": k, "value": str(v)} for k, v in (params or {}).items()]
        tag_list = [{"key": k, "value": str(v)} for k, v in (tags or {}).items()]
        # The API takes at most 1000 metrics, 100 params and 100 tags per batch.
        for i in range(0, max(len(metric_list), len(param_list), len(tag_list), 1), 100):
            self.post("/runs/log-batch", {
                "run_id": run_id, "metrics": metric_list[i:i + 100],
                "params": param_list[i:i + 100], "tags": tag_list[i:i + 100],
            })

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.post("/runs/update", {"run_id": run_id, "status": status, "end_time": int(time.time() * 1000)})

    def artifact_upload_url(self, artifact_uri: str, artifact_path: str) -> str:
        """Where ``PUT`` stores ``artifact_path`` under a run whose root is ``artifact_uri``."""
        parsed = urlparse(artifact_uri)
        if parsed.scheme == "mlflow-artifacts":
            root = parsed.path.lstrip("/")
            return f"{self.base_url}{ARTIFACTS_API}/{quote(root)}/{quote(artifact_path)}"
        if parsed.scheme in {"http", "https"} and ARTIFACTS_API in parsed.path:
            return f"{artifact_uri.rstrip('/')}/{quote(artifact_path)}"
        raise MlflowApiError(
            f"run artifact root {artifact_uri!r} is not proxied by the server: uploads need "
            "`mlflow server --serve-artifacts` (artifact URIs mlflow-artifacts:/...)"
        )

    def upload_artifact(self, artifact_uri: str, local: Path, artifact_path: str) -> None:
        url = self.artifact_upload_url(artifact_uri, artifact_path)
        content_type = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
        try:
            with local.open("rb") as handle:
                response = self.session.put(url, data=handle, headers={"Content-Type": content_type},
                                            timeout=self.timeout)
        except requests.RequestException as exc:
            raise MlflowApiError(f"upload of {artifact_path} failed: {exc}") from exc
        if response.status_code >= 400:
            raise MlflowApiError(
                f"PUT {artifact_path} → HTTP {response.status_code}: {response.text[:300]}",
                status=response.status_code,
            )
