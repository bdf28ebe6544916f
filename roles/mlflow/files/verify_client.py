"""MLflow client check, run by roles/mlflow/tasks/verify.yml in a throwaway container on
the compose network, so it reaches the server exactly as the Airflow workers do: through
the service name (http://mlflow:5000), which MLflow >= 3.5 must accept as Host header,
and logged in as the training account, as the DAGs are (MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD, which the image's entrypoint reads from a mounted credentials file).

Creates (or reuses) an experiment, logs a param, a metric history and an artifact, reads
all of them back (downloading the artifact and comparing its content), optionally deletes
what it logged, and prints one line `MLFLOW_VERIFY_RESULT {json}`. Any mismatch exits 1
with a message on stderr.
"""

import base64
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

URI = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
EXPERIMENT = os.environ.get("MLFLOW_VERIFY_EXPERIMENT", "lakehouse-tick-verify")
CLEANUP = os.environ.get("MLFLOW_VERIFY_CLEANUP", "true").lower() == "true"
USERNAME = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
PASSWORD = os.environ.get("MLFLOW_TRACKING_PASSWORD", "")


def get(url: str):
    """GET with the same login the MLflow client uses (basic auth)."""
    request = urllib.request.Request(url)
    if USERNAME:
        token = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
    return urllib.request.urlopen(request, timeout=30)


def fail(message: str) -> None:
    print(f"MLFLOW VERIFY FAILED: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def check_host_header() -> float:
    """A plain API request first: a 403 from the Host-header guard gets its own message."""
    started = time.monotonic()
    url = f"{URI}/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        with get(url) as response:
            json.load(response)
    except urllib.error.HTTPError as err:
        body = err.read().decode("utf-8", "replace").strip()
        host = urllib.parse.urlparse(URI).netloc
        if err.code == 401:
            fail(f"the server refused the login of {USERNAME or 'an anonymous client'!r} (HTTP 401)")
        if err.code == 403 and "Host" in body:
            fail(
                f"the server rejected the Host header {host!r} ({body}); "
                f"add it to mlflow_allowed_hosts (e.g. 'mlflow:*')"
            )
        fail(f"GET {url} answered HTTP {err.code}: {body[:300]}")
    except (urllib.error.URLError, OSError) as err:
        fail(f"cannot reach {URI} from the compose network: {err}")
    return time.monotonic() - started


def server_version() -> str:
    with get(f"{URI}/version") as response:
        return response.read().decode("utf-8").strip()


def main() -> None:
    host_check_s = check_host_header()
    version = server_version()

    import mlflow
    from mlflow import MlflowClient
    from mlflow.store.artifact.artifact_repository_registry import (
        get_artifact_repository,
    )

    started = time.monotonic()
    client = MlflowClient(tracking_uri=URI)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    created = experiment is None
    experiment_id = client.create_experiment(EXPERIMENT) if created else experiment.experiment_id

    token = uuid.uuid4().hex
    run = client.create_run(experiment_id, run_name=f"verify-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}",
                            tags={"lakehouse-tick.verify": "true"})
    run_id = run.info.run_id
    client.log_param(run_id, "verify_token", token)
    for step, value in enumerate((0.25, 0.5, 0.75)):
        client.log_metric(run_id, "verify_metric", value, step=step)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "verify.txt")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(token)
        client.log_artifact(run_id, path)
    client.set_terminated(run_id)

    # Read everything back through the API, as a different client would.
    fetched = client.get_run(run_id)
    if fetched.data.params.get("verify_token") != token:
        fail(f"param verify_token read back as {fetched.data.params.get('verify_token')!r}, expected {token!r}")
    history = [(m.step, m.value) for m in client.get_metric_history(run_id, "verify_metric")]
    if sorted(history) != [(0, 0.25), (1, 0.5), (2, 0.75)]:
        fail(f"metric history of verify_metric read back as {sorted(history)}")
    if fetched.info.status != "FINISHED":
        fail(f"run status is {fetched.info.status}, expected FINISHED")
    artifact_uri = fetched.info.artifact_uri
    if not artifact_uri.startswith("mlflow-artifacts:"):
        fail(f"artifact URI {artifact_uri} is not proxied by the server (--serve-artifacts)")
    listed = [f.path for f in client.list_artifacts(run_id)]
    if listed != ["verify.txt"]:
        fail(f"artifact list is {listed}, expected ['verify.txt']")
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="verify.txt", dst_path=tmp, tracking_uri=URI
        )
        with open(local, encoding="utf-8") as handle:
            content = handle.read()
    if content != token:
        fail(f"downloaded artifact holds {content[:64]!r}, expected {token!r}")
    roundtrip_s = time.monotonic() - started

    if CLEANUP:
        # The run's whole directory in the artifact store (<experiment>/<run>/), then the run.
        get_artifact_repository(artifact_uri.rsplit("/artifacts", 1)[0]).delete_artifacts()
        client.delete_run(run_id)

    print("MLFLOW_VERIFY_RESULT " + json.dumps({
        "tracking_uri": URI,
        "username": USERNAME,
        "server_version": version,
        "client_version": mlflow.__version__,
        "experiment": EXPERIMENT,
        "experiment_id": experiment_id,
        "experiment_created": created,
        "run_id": run_id,
        "param_ok": True,
        "metric_points": len(history),
        "artifact_uri": artifact_uri,
        "artifact_roundtrip_ok": True,
        "cleaned_up": CLEANUP,
        "host_header_check_s": round(host_check_s, 2),
        "roundtrip_s": round(roundtrip_s, 2),
    }, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
