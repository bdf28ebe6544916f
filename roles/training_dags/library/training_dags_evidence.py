#!/usr/bin/python
"""Read each pipeline's model and last run from MLflow and Airflow, and judge them.

Six pipelines times six reads was 36 uri tasks (about 17 s of task overhead in every
verify and rollback); this module makes the same reads in parallel threads and returns
the same checks in about 1.5 s. The judging is in pure functions, unit-tested.
"""

DOCUMENTATION = r"""
module: training_dags_evidence
short_description: Check every training pipeline's model in MLflow and its newest DAG run
description:
  - For each pipeline, reads its MLflow experiment, the newest finished run tagged
    C(mlops.gate_passed=true), that run's C(val_accuracy) history, the C(champion) alias
    of its registered model, and the newest Airflow DAG run with its task instances.
  - Returns two checks per pipeline in C(checks) (C(name), C(passed), C(evidence)):
    the model (params, a learning curve of 2+ steps, accuracy above the gate, a champion)
    and the last run (every task succeeded at its first try, within C(execution_timeout)).
  - Reads only; changes nothing. Fails (naming the URL) when a service does not answer.
options:
  pipelines:
    description:
      - Pipeline key → its entry in the registry (C(mlops_training/pipelines.json)); C(dag_id),
        C(experiment) and C(plan_gate) are read.
    type: dict
    required: true
  gates:
    description: Pipeline key → accuracy the model must beat, where it differs from the entry's C(plan_gate).
    type: dict
    default: {}
  mlflow_url:
    description: MLflow base URL as seen from the target.
    type: str
    required: true
  airflow_url:
    description: Airflow API base URL as seen from the target.
    type: str
    required: true
  mlflow_username:
    description: MLflow account to read with (basic auth); empty for an MLflow without login.
    type: str
    default: ""
  mlflow_password_file:
    description: File on the target holding that account's password (read here, never passed as a value).
    type: path
    default: ""
  airflow_token:
    description: Bearer token for the Airflow REST API.
    type: str
    required: true
  execution_timeout_minutes:
    description: The DAGs' execution_timeout; a task that ran this long counts as timed out.
    type: float
    required: true
  timeout:
    description: Seconds each HTTP request may take.
    type: int
    default: 30
author: lakehouse-tick MLOps
"""

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from urllib.error import HTTPError
from urllib.parse import quote, urlencode

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url


class ReadError(Exception):
    """A service did not answer as expected; the message names the URL."""


def kv(items):
    """MLflow REST lists [{key, value}] → dict."""
    return {item["key"]: item["value"] for item in items or []}


def model_check(dag_id, gate, run, curve_steps, champion):
    """The 'model in MLflow' check from the newest passing run (or None)."""
    name = f"{dag_id}: model in MLflow"
    if not run:
        return {"name": name, "passed": False, "evidence": f"no passing run in experiment {dag_id}"}
    data = run.get("data") or {}
    metrics, params, tags = kv(data.get("metrics")), kv(data.get("params")), kv(data.get("tags"))
    accuracy = float(metrics.get("test_accuracy", 0))
    version = (champion or {}).get("version")
    passed = bool(params) and curve_steps >= 2 and accuracy > float(gate) and version is not None
    evidence = (
        f"accuracy {accuracy:.4f} (gate {float(gate):.2f}), {len(params)} params, "
        f"val_accuracy curve of {curve_steps} steps, "
        f"champion v{version if version is not None else 'none'} ({tags.get('mlops.registered_model', '?')})"
    )
    return {"name": name, "passed": passed, "evidence": evidence}


def last_run_check(dag_id, task_instances, timeout_minutes):
    """The 'last run stable' check: every task succeeded first time, within the timeout."""
    name = f"{dag_id}: last run stable"
    tis = task_instances or []
    if not tis:
        return {"name": name, "passed": False, "evidence": "never run"}
    limit = float(timeout_minutes) * 60
    problems = [ti["task_id"] for ti in tis if ti.get("state") != "success"]
    problems += [f"{ti['task_id']} (retried)" for ti in tis if (ti.get("try_number") or 0) > 1]
    problems += [f"{ti['task_id']} (hit execution_timeout)" for ti in tis
                 if isinstance(ti.get("duration"), (int, float)) and ti["duration"] >= limit]
    if problems:
        return {"name": name, "passed": False, "evidence": "problem tasks: " + ", ".join(problems)}
    return {"name": name, "passed": True,
            "evidence": f"all {len(tis)} tasks succeeded first time within {int(timeout_minutes)} min"}


class Reader:
    """JSON over HTTP with open_url; 404 is an answer (None), anything else an error."""

    def __init__(self, timeout, airflow_token, mlflow_login=None):
        self.timeout = timeout
        self.airflow_headers = {"Authorization": f"Bearer {airflow_token}"}
        self.mlflow_headers = {}
        if mlflow_login:
            token = base64.b64encode(":".join(mlflow_login).encode()).decode("ascii")
            self.mlflow_headers = {"Authorization": f"Basic {token}"}

    def get(self, url, headers=None):
        return self._call(url, "GET", None, headers)

    def post(self, url, body, headers=None):
        return self._call(url, "POST", body, headers)

    def _call(self, url, method, body, headers):
        all_headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body)
            all_headers["Content-Type"] = "application/json"
        try:
            response = open_url(url, method=method, data=data, headers=all_headers, timeout=self.timeout)
            return json.loads(response.read() or b"{}")
        except HTTPError as exc:
            if exc.code == 404:
                return None
            raise ReadError(f"{method} {url.split('?')[0]} answered HTTP {exc.code}") from exc
        except Exception as exc:  # connection refused, timeout, bad JSON
            raise ReadError(f"{method} {url.split('?')[0]} failed: {exc}") from exc


def read_pipeline(reader, mlflow, airflow, dag_id, experiment):
    """Everything the two checks of one pipeline need: run, curve steps, champion, TIs."""
    run, steps, champion = None, 0, None
    exp = reader.get(f"{mlflow}/api/2.0/mlflow/experiments/get-by-name?"
                     + urlencode({"experiment_name": experiment}), reader.mlflow_headers)
    if exp:
        found = reader.post(f"{mlflow}/api/2.0/mlflow/runs/search", {
            "experiment_ids": [exp["experiment"]["experiment_id"]],
            "filter": "attributes.status = 'FINISHED' and tags.`mlops.gate_passed` = 'true'",
            "order_by": ["attributes.start_time DESC"],
            "max_results": 1,
        }, reader.mlflow_headers) or {}
        run = (found.get("runs") or [None])[0]
    if run:
        history = reader.get(f"{mlflow}/api/2.0/mlflow/metrics/get-history?"
                             + urlencode({"run_id": run["info"]["run_id"], "metric_key": "val_accuracy"}),
                             reader.mlflow_headers) or {}
        steps = len(history.get("metrics") or [])
        model = kv((run.get("data") or {}).get("tags")).get("mlops.registered_model")
        if model:
            alias = reader.get(f"{mlflow}/api/2.0/mlflow/registered-models/alias?"
                               + urlencode({"name": model, "alias": "champion"}), reader.mlflow_headers) or {}
            champion = alias.get("model_version")
    runs = reader.get(f"{airflow}/api/v2/dags/{quote(dag_id)}/dagRuns?order_by=-start_date&limit=1",
                      reader.airflow_headers) or {}
    tis = []
    if runs.get("dag_runs"):
        run_id = quote(runs["dag_runs"][0]["dag_run_id"], safe="")
        answer = reader.get(f"{airflow}/api/v2/dags/{quote(dag_id)}/dagRuns/{run_id}/taskInstances",
                            reader.airflow_headers) or {}
        tis = answer.get("task_instances") or []
    return run, steps, champion, tis


def main():
    module = AnsibleModule(
        argument_spec={
            "pipelines": {"type": "dict", "required": True},
            "gates": {"type": "dict", "default": {}},
            "mlflow_url": {"type": "str", "required": True},
            "airflow_url": {"type": "str", "required": True},
            "mlflow_username": {"type": "str", "default": ""},
            "mlflow_password_file": {"type": "path", "default": ""},
            "airflow_token": {"type": "str", "required": True, "no_log": True},
            "execution_timeout_minutes": {"type": "float", "required": True},
            "timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    p = module.params
    unknown = sorted(set(p["gates"]) - set(p["pipelines"]))
    if unknown:
        module.fail_json(msg=f"gates for unknown pipeline(s) {unknown}")
    login = None
    if p["mlflow_username"]:
        try:
            with open(p["mlflow_password_file"], encoding="utf-8") as handle:
                login = (p["mlflow_username"], handle.read().rstrip("\r\n"))
        except OSError as exc:
            module.fail_json(msg=f"Could not read the MLflow password (mlflow_password_file): {exc}")
    reader = Reader(p["timeout"], p["airflow_token"], login)
    mlflow, airflow = p["mlflow_url"].rstrip("/"), p["airflow_url"].rstrip("/")
    keys = list(p["pipelines"])
    try:
        with ThreadPoolExecutor(max_workers=len(keys) or 1) as pool:
            reads = list(pool.map(lambda key: read_pipeline(reader, mlflow, airflow, p["pipelines"][key]["dag_id"],
                                                            p["pipelines"][key]["experiment"]), keys))
    except ReadError as exc:
        module.fail_json(msg=f"Could not read the pipelines' evidence: {exc}")
    checks = []
    for key, (run, steps, champion, tis) in zip(keys, reads):
        entry = p["pipelines"][key]
        dag_id, gate = entry["dag_id"], p["gates"].get(key, entry["plan_gate"])
        checks.append(model_check(dag_id, gate, run, steps, champion))
        checks.append(last_run_check(dag_id, tis, p["execution_timeout_minutes"]))
    module.exit_json(changed=False, checks=checks)


if __name__ == "__main__":
    main()
