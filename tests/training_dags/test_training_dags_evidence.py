"""The training_dags_evidence module: how a pipeline's model and last run are judged, and
how the reads behave when a service answers 404 or fails.

The judging decides whether verify (and so a rollback or a converge) passes. The HTTP
part runs against a real local HTTP server; the full module runs against the live stack
in the molecule scenarios.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from role_code import load

evidence = load("training_dags/library/training_dags_evidence.py")


def mlflow_run(accuracy=0.97, params=3, model="mnist-xgboost"):
    return {
        "info": {"run_id": "r1"},
        "data": {
            "metrics": [{"key": "test_accuracy", "value": accuracy}],
            "params": [{"key": f"p{i}", "value": "1"} for i in range(params)],
            "tags": [{"key": "mlops.registered_model", "value": model}],
        },
    }


def task(task_id, state="success", try_number=1, duration=5.0):
    return {"task_id": task_id, "state": state, "try_number": try_number, "duration": duration}


# ----------------------------------------------------------------------------- judging


def test_model_passes_with_params_curve_gate_and_champion():
    check = evidence.model_check("xgboost_pipeline", 0.85, mlflow_run(), 8, {"version": "2"})
    assert check == {
        "name": "xgboost_pipeline: model in MLflow",
        "passed": True,
        "evidence": "accuracy 0.9700 (gate 0.85), 3 params, val_accuracy curve of 8 steps, champion v2 (mnist-xgboost)",
    }


@pytest.mark.parametrize(
    ("run", "steps", "champion", "says"),
    [
        (mlflow_run(accuracy=0.85), 8, {"version": "1"}, "accuracy 0.8500 (gate 0.85)"),  # equal is not above
        (mlflow_run(params=0), 8, {"version": "1"}, "0 params"),
        (mlflow_run(), 1, {"version": "1"}, "curve of 1 steps"),
        (mlflow_run(), 8, None, "champion vnone"),
    ],
)
def test_model_fails_and_says_what_is_missing(run, steps, champion, says):
    check = evidence.model_check("xgboost_pipeline", 0.85, run, steps, champion)
    assert check["passed"] is False
    assert says in check["evidence"]


def test_model_without_a_passing_run():
    check = evidence.model_check("lightgbm_pipeline", 0.87, None, 0, None)
    assert check == {"name": "lightgbm_pipeline: model in MLflow", "passed": False,
                     "evidence": "no passing run in experiment lightgbm_pipeline"}


def test_last_run_passes_when_every_task_succeeded_first_time():
    check = evidence.last_run_check("pytorch_mnist_mlp", [task("train"), task("evaluate")], 30)
    assert check["passed"] is True
    assert check["evidence"] == "all 2 tasks succeeded first time within 30 min"


def test_last_run_names_failed_retried_and_timed_out_tasks():
    tis = [task("validate"), task("train", state="failed", duration=180.0),
           task("evaluate", try_number=2), task("register", duration=None)]
    check = evidence.last_run_check("pytorch_mnist_mlp", tis, 3)
    assert check["passed"] is False
    assert check["evidence"] == "problem tasks: train, evaluate (retried), train (hit execution_timeout)"


def test_never_run():
    assert evidence.last_run_check("x", [], 30) == {"name": "x: last run stable", "passed": False,
                                                     "evidence": "never run"}


# ----------------------------------------------------------------------------- reading


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, object]]] = {}
    seen: ClassVar[list[tuple[str, str, dict | None]]] = []

    def _answer(self, body):
        path = self.path.split("?")[0]
        self.seen.append((self.command, self.path, body))
        status, payload = self.routes.get(path, (404, {"error_code": "RESOURCE_DOES_NOT_EXIST"}))
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # http.server's naming
        self._answer(None)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self._answer(json.loads(self.rfile.read(length) or b"null"))

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.routes, _Handler.seen = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()


def test_reads_a_trained_pipeline(server):
    url, handler = server
    handler.routes = {
        "/api/2.0/mlflow/experiments/get-by-name": (200, {"experiment": {"experiment_id": "7"}}),
        "/api/2.0/mlflow/runs/search": (200, {"runs": [mlflow_run()]}),
        "/api/2.0/mlflow/metrics/get-history": (200, {"metrics": [{"step": 0}, {"step": 1}, {"step": 2}]}),
        "/api/2.0/mlflow/registered-models/alias": (200, {"model_version": {"version": "3"}}),
        "/api/v2/dags/xgboost_pipeline/dagRuns": (200, {"dag_runs": [{"dag_run_id": "manual__2026-11-27T10:00:00+00:00"}]}),
        "/api/v2/dags/xgboost_pipeline/dagRuns/manual__2026-11-27T10%3A00%3A00%2B00%3A00/taskInstances":
            (200, {"task_instances": [task("train")]}),
    }
    reader = evidence.Reader(5, "tok")
    run, steps, champion, tis = evidence.read_pipeline(reader, url, url, "xgboost_pipeline", "xgboost_experiment")
    assert run["info"]["run_id"] == "r1"
    assert (steps, champion, [t["task_id"] for t in tis]) == (3, {"version": "3"}, ["train"])
    # The experiment is the registry's, looked up by name; the DAG runs by the DAG id.
    assert any("experiment_name=xgboost_experiment" in path for _, path, _ in handler.seen)
    search = next(body for method, _, body in handler.seen if method == "POST")
    assert search["experiment_ids"] == ["7"]
    assert "mlops.gate_passed" in search["filter"]


def test_a_pipeline_never_trained_reads_as_nothing(server):
    url, _ = server  # every path answers 404
    run, steps, champion, tis = evidence.read_pipeline(evidence.Reader(5, "tok"), url, url, "lightgbm_pipeline", "lightgbm_pipeline")
    assert (run, steps, champion, tis) == (None, 0, None, [])


def test_a_failing_service_is_an_error_naming_the_url(server):
    url, handler = server
    handler.routes = {"/api/2.0/mlflow/experiments/get-by-name": (503, {"error": "down"})}
    with pytest.raises(evidence.ReadError, match=r"GET .*/api/2.0/mlflow/experiments/get-by-name answered HTTP 503"):
        evidence.read_pipeline(evidence.Reader(5, "tok"), url, url, "xgboost_pipeline", "xgboost_pipeline")


def test_a_service_that_is_not_there_is_an_error():
    with pytest.raises(evidence.ReadError, match="failed"):
        evidence.Reader(2, "tok").get("http://127.0.0.1:9/api/2.0/mlflow/experiments/get-by-name")
