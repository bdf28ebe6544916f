"""MLflow 3 tracking: runs that never stay RUNNING, explicit logging, registry and champion.

Nothing is autologged: autolog is untested on these library versions, and
explicit calls keep metric names identical across the six pipelines so they
can be compared side by side. ``mlflow`` is imported inside functions (the
dag-processor image need not have it).

Names the verify step can rely on (constants in ``mlops_training.registry``):

* run metrics ``train_loss``/``train_accuracy``/``val_loss``/``val_accuracy``
  (one value per epoch or boosting round, ``step`` = 1..n), ``train_seconds``,
  ``test_accuracy``, ``evaluate_seconds``;
* run tags ``mlops.pipeline``, ``mlops.gate``, ``mlops.gate_passed``
  (``true``/``false``), ``mlops.registered_version``, ``mlops.champion``,
  ``mlops.version.<library>``;
* registered-model alias ``champion``; version tags ``test_accuracy``, ``pipeline``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from typing import Any

import numpy as np

from mlops_training.gates import champion_decision
from mlops_training.gates import check as check_gate
from mlops_training.recipes import HISTORY_KEYS, TrainResult
from mlops_training.registry import (
    CHAMPION_ALIAS,
    METRIC_TEST_ACCURACY,
    METRIC_TRAIN_SECONDS,
    TAG_ATTEMPT,
    TAG_CHAMPION,
    TAG_DAG_RUN_ID,
    TAG_END_REASON,
    TAG_PIPELINE,
    TAG_REGISTERED_MODEL,
    TAG_REGISTERED_VERSION,
    VERSION_TAG_PREFIX,
)

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
MODEL_NAME = "model"  # log_model(name=...)

# pip requirements recorded with each model. Passing them explicitly skips
# MLflow's requirement inference, which reloads the model in a subprocess
# (seconds for TensorFlow) only to guess what we already know.
_FLAVOR_DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    "xgboost": (("xgboost-cpu", "xgboost"),),
    "lightgbm": (("lightgbm",),),
    "tensorflow": (("tensorflow-cpu", "tensorflow"), ("keras",)),
    "pytorch": (("torch",),),
}


class TrackingError(RuntimeError):
    """MLflow is not configured or holds something unexpected."""


class RunTerminated(RuntimeError):
    """The task process received SIGTERM (Airflow kill or shutdown) during a run."""


def tracking_uri() -> str:
    """The tracking server from ``$MLFLOW_TRACKING_URI`` (the compose stack sets http://mlflow:5000)."""
    uri = os.environ.get(TRACKING_URI_ENV, "").strip()
    if not uri:
        raise TrackingError(
            f"{TRACKING_URI_ENV} is not set; the worker needs it to reach MLflow (e.g. http://mlflow:5000)"
        )
    return uri


def _client() -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def configure(uri: str | None = None) -> str:
    """Point the ``mlflow`` module at ``uri`` (default: the environment) and return it."""
    import mlflow

    target = uri or tracking_uri()
    mlflow.set_tracking_uri(target)
    mlflow.set_registry_uri(target)
    return target


def ensure_experiment(name: str) -> str:
    """Experiment id for ``name``, creating it if needed (tolerates a concurrent create)."""
    from mlflow.exceptions import MlflowException

    client = _client()
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


# Version tag name → the distributions that provide it (first one installed wins):
# the worker has mlflow-skinny and xgboost-cpu, a dev box may have mlflow and xgboost.
_VERSION_SOURCES: dict[str, tuple[str, ...]] = {
    "mlflow": ("mlflow", "mlflow-skinny"),
    "xgboost": ("xgboost-cpu", "xgboost"),
    "lightgbm": ("lightgbm",),
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "keras": ("keras",),
    "torch": ("torch",),
}
_LIBRARY_VERSION_TAGS: dict[str, tuple[str, ...]] = {
    "xgboost": ("xgboost",), "lightgbm": ("lightgbm",), "tensorflow": ("tensorflow", "keras"), "torch": ("torch",),
}


def _installed_version(names: tuple[str, ...]) -> str | None:
    for dist in names:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def library_versions(library: str) -> dict[str, str]:
    """Versions worth recording with every run: Python, NumPy, MLflow and the model's library."""
    versions = {"python": sys.version.split()[0], "numpy": np.__version__}
    for tag in ("mlflow", *_LIBRARY_VERSION_TAGS.get(library, ())):
        found = _installed_version(_VERSION_SOURCES[tag])
        if found:
            versions[tag] = found
    return versions


def sweep_stale_runs(
    experiment_id: str,
    pipeline: str,
    dag_run_id: str | None = None,
    older_than_seconds: float | None = None,
    now_ms: int | None = None,
) -> list[str]:
    """Mark RUNNING runs of ``pipeline`` that no process will ever finish as KILLED.

    A run is stale when it belongs to the same DAG run (an earlier try of this
    task: that try is over, or Airflow would not start another), or when it
    started longer ago than ``older_than_seconds`` (beyond the task's
    execution_timeout, so Airflow has killed it). This covers SIGKILL and
    out-of-memory kills, which no handler sees. Returns the swept run ids.
    """
    client = _client()
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_PIPELINE}` = '{pipeline}' and attributes.status = 'RUNNING'",
        max_results=500,
    )
    swept = []
    for run in runs:
        same_dag_run = dag_run_id is not None and run.data.tags.get(TAG_DAG_RUN_ID) == dag_run_id
        too_old = older_than_seconds is not None and (now_ms - run.info.start_time) > older_than_seconds * 1000
        if not (same_dag_run or too_old):
            continue
        reason = "earlier try of the same DAG run" if same_dag_run else f"older than {older_than_seconds:.0f}s"
        client.set_tag(run.info.run_id, TAG_END_REASON, f"swept: left RUNNING by an {reason}")
        client.set_terminated(run.info.run_id, "KILLED", end_time=now_ms)
        swept.append(run.info.run_id)
    return swept


@contextmanager
def training_run(experiment_id: str, run_name: str, tags: Mapping[str, str]) -> Iterator[str]:
    """Start an MLflow run and guarantee it ends FINISHED, FAILED or KILLED, never RUNNING.

    An exception ends it FAILED (mlflow's run context manager). SIGTERM (Airflow
    kills a task with SIGTERM, then SIGKILL) marks it KILLED at once, before the
    SIGKILL can land, then calls the handler that was installed before ours
    (the Task SDK's, which runs on_kill) and raises :class:`RunTerminated` so
    training stops. SIGINT (the first step of Airflow's kill) ends it KILLED too.

    Airflow's execution_timeout raises from a SIGALRM handler, at any bytecode: also
    inside ``mlflow.start_run`` after the server created the run but before the
    ``with`` block owns it, or inside the request that ends it. So every run carries
    a fresh ``mlops.attempt`` tag, and on the way out any run of this attempt that is
    still RUNNING is ended FAILED.
    """
    import mlflow

    attempt = uuid.uuid4().hex
    try:
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name,
                              tags={**tags, TAG_ATTEMPT: attempt}) as run:
            run_id = run.info.run_id
            client = _client()
            previous: Any = None
            terminated = threading.Event()

            def on_sigterm(signum: int, frame: Any) -> None:
                if terminated.is_set():
                    return
                terminated.set()
                try:
                    client.set_tag(run_id, TAG_END_REASON, f"signal {signum} (task killed or timed out)")
                    client.set_terminated(run_id, "KILLED")
                except Exception as exc:  # noqa: BLE001 - whatever fails, still stop; the next try's sweep ends the run
                    print(f"could not mark MLflow run {run_id} KILLED: {exc}", file=sys.stderr)
                if callable(previous):
                    previous(signum, frame)
                raise RunTerminated(f"signal {signum} received; MLflow run {run_id} marked KILLED")

            # Signal handlers can only be installed from the main thread.
            in_main = threading.current_thread() is threading.main_thread()
            if in_main:
                previous = signal.signal(signal.SIGTERM, on_sigterm)
            try:
                yield run_id
            except (RunTerminated, KeyboardInterrupt):
                mlflow.end_run("KILLED")
                raise
            finally:
                if in_main:
                    signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    finally:
        _end_attempt_runs(experiment_id, attempt, sys.exc_info()[1])


def _end_attempt_runs(experiment_id: str, attempt: str, error: BaseException | None) -> list[str]:
    """End FAILED the runs of one training_run attempt that are still RUNNING; return their ids."""
    import mlflow

    ended = []
    try:
        client = _client()
        runs = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TAG_ATTEMPT}` = '{attempt}' and attributes.status = 'RUNNING'",
            max_results=10,
        )
        for run in runs:
            reason = f"{type(error).__name__} while MLflow started or ended the run" if error else "left RUNNING"
            client.set_tag(run.info.run_id, TAG_END_REASON, reason)
            client.set_terminated(run.info.run_id, "FAILED")
            ended.append(run.info.run_id)
        active = mlflow.active_run()
        if active is not None and active.info.run_id in ended:
            mlflow.end_run("FAILED")  # drop it from the fluent API's stack as well
    except Exception as exc:  # noqa: BLE001 - never mask the error that brought us here
        print(f"could not check the MLflow runs of attempt {attempt}: {exc}", file=sys.stderr)
    return ended


def _log_batch(run_id: str, metrics: list[Any] = (), params: Mapping[str, Any] | None = None,
               tags: Mapping[str, str] | None = None) -> None:
    from mlflow.entities import Param, RunTag

    client = _client()
    param_list = [Param(k, str(v)) for k, v in (params or {}).items()]
    tag_list = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    # The REST API takes at most 1000 metrics and 100 params per batch.
    for i in range(0, max(len(metrics), 1), 1000):
        client.log_batch(run_id, metrics=list(metrics[i:i + 1000]),
                         params=param_list[:100] if i == 0 else [], tags=tag_list if i == 0 else [])
    for i in range(100, len(param_list), 100):
        client.log_batch(run_id, params=param_list[i:i + 100])


def log_training(run_id: str, result: TrainResult, params: Mapping[str, Any] | None = None,
                 curves: bool = True) -> None:
    """Log params, per-step learning curves (``step`` = epoch/round, 1-based), time and versions.

    ``curves=False`` when a :class:`StepLogger` has logged them as they happened (tuning trials).
    """
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(key, float(value), now, step)
        for key in (HISTORY_KEYS if curves else ())
        for step, value in enumerate(result.history.get(key, []), start=1)
    ]
    metrics.append(Metric(METRIC_TRAIN_SECONDS, float(result.train_seconds), now, 0))
    versions = library_versions(result.library)
    versions.update(result.extra.get("versions", {}))
    tags = {f"{VERSION_TAG_PREFIX}{k}": v for k, v in versions.items()}
    all_params = {**result.params, **(params or {})}
    _log_batch(run_id, metrics, all_params, tags)


class StepLogger:
    """Logs a run's learning curves while it trains, one batch every ``every_seconds`` at most.

    A tuning trial's curves are in MLflow up to the last flush even when the trial is killed;
    batching keeps a boosting run (hundreds of rounds a minute) from making a request per round.
    """

    def __init__(self, run_id: str, every_seconds: float = 2.0) -> None:
        self.run_id = run_id
        self.every_seconds = every_seconds
        self._pending: list[Any] = []
        self._last = time.monotonic()

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending.extend(Metric(key, float(value), now, step) for key, value in metrics.items())
        if time.monotonic() - self._last >= self.every_seconds:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            _log_batch(self.run_id, self._pending)
        self._pending = []
        self._last = time.monotonic()


def create_run(experiment_id: str, run_name: str, tags: Mapping[str, str],
               params: Mapping[str, Any] | None = None) -> str:
    """A run that stays RUNNING after this returns (a study's parent run); the caller ends it."""
    run = _client().create_run(experiment_id, run_name=run_name, tags=dict(tags))
    if params:
        _log_batch(run.info.run_id, params=params)
    return run.info.run_id


def end_running_runs(experiment_id: str, tags: Mapping[str, str], status: str, reason: str) -> list[str]:
    """End every RUNNING run of the experiment that carries all ``tags`` with ``status``; return their ids.

    For runs whose process is gone without ending them (SIGKILL, OOM, a lost worker): a tuning
    trial's retry sweeps its earlier try's run, and a study's teardown sweeps its trials.
    """
    client = _client()
    clauses = [f"tags.`{key}` = '{value}'" for key, value in tags.items()]
    runs = client.search_runs([experiment_id], filter_string=" and ".join([*clauses, "attributes.status = 'RUNNING'"]),
                              max_results=1000)
    ended = []
    for run in runs:
        client.set_tag(run.info.run_id, TAG_END_REASON, reason)
        client.set_terminated(run.info.run_id, status)
        ended.append(run.info.run_id)
    return ended


def _pip_requirements(flavor: str) -> list[str]:
    requirements = []
    for candidates in _FLAVOR_DISTRIBUTIONS.get(flavor, ()):
        for dist in candidates:
            version = _installed_version((dist,))
            if version:
                requirements.append(f"{dist}=={version}")
                break
    requirements.append(f"numpy=={np.__version__}")
    return requirements


def log_model(result: TrainResult, input_example: np.ndarray, n_classes: int) -> str:
    """Log the trained model with its MLflow flavor (``log_model(name="model")``); return its URI.

    The signature is declared, not inferred: inference would run the model
    through pyfunc once more. Inputs are float32 pixels in [0, 1] shaped like
    ``input_example`` (any batch size); outputs are per-class scores.
    PyTorch models are saved in MLflow 3's default ``pt2`` format
    (``torch.export``, no pickle), which traces ``input_example``.
    """
    import importlib

    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    example = np.ascontiguousarray(input_example, dtype=np.float32)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *example.shape[1:]))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, n_classes))]),
    )
    extra: dict[str, Any] = {}
    if result.flavor == "pytorch":
        # torch.export needs a batch > 1 to keep the batch dimension dynamic.
        extra["input_example"] = example if len(example) > 1 else np.repeat(example, 2, axis=0)
        # An input example makes MLflow reload the saved model and predict it once more
        # before uploading; the evaluate task does that on the whole test set anyway.
        extra["validate_serving_input"] = False
    flavor = importlib.import_module(f"mlflow.{result.flavor}")
    info = flavor.log_model(
        result.model, name=MODEL_NAME, signature=signature,
        pip_requirements=_pip_requirements(result.flavor), **extra,
    )
    return info.model_uri


def load_model(flavor: str, model_uri: str) -> Any:
    """Load a logged model back with its native flavor (Booster, Keras model, torch module)."""
    import importlib

    return importlib.import_module(f"mlflow.{flavor}").load_model(model_uri)


def set_run_tags(run_id: str, tags: Mapping[str, str]) -> None:
    """Set tags on a run, running or finished."""
    _log_batch(run_id, tags=tags)


def set_run_params(run_id: str, params: Mapping[str, Any]) -> None:
    """Log params (MLflow refuses to change one: a param logged again must keep its value)."""
    _log_batch(run_id, params=params)


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    """Store ``text`` as the run's artifact ``artifact_file`` (a study's table and plot)."""
    _client().log_text(run_id, text, artifact_file)


def record_evaluation(run_id: str, metrics: Mapping[str, float], tags: Mapping[str, str],
                      model_id: str | None = None) -> None:
    """Add test metrics and gate tags to a finished run, without reopening it (so no RUNNING window).

    With ``model_id`` the metrics are also linked to the MLflow 3 logged model.
    """
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    _log_batch(run_id, [Metric(k, float(v), now, 0, model_id=model_id) for k, v in metrics.items()], tags=tags)


def model_id_from_uri(model_uri: str) -> str | None:
    """``models:/m-abc`` → ``m-abc``; None for other URI forms."""
    prefix = "models:/"
    if model_uri.startswith(prefix) and "/" not in model_uri[len(prefix):]:
        return model_uri[len(prefix):]
    return None


def _accuracy_of_version(client: Any, version: Any) -> float | None:
    from mlflow.exceptions import MlflowException

    raw = (version.tags or {}).get(METRIC_TEST_ACCURACY)
    if raw is not None:
        try:
            return float(raw)
        except ValueError:
            pass
    if version.run_id:
        try:
            return client.get_run(version.run_id).data.metrics.get(METRIC_TEST_ACCURACY)
        except MlflowException:
            return None  # the champion's run was deleted
    return None


def register_and_promote(
    model_uri: str,
    registered_model_name: str,
    run_id: str,
    accuracy: float,
    version_tags: Mapping[str, str] | None = None,
    alias: str = CHAMPION_ALIAS,
    gate: float | None = None,
) -> dict[str, Any]:
    """Register the run's model and move ``alias`` to it only if it beats the current holder.

    Idempotent on task retry: a version already registered from ``run_id`` is
    reused instead of creating a duplicate. A tie keeps the current champion. The
    decision is :func:`mlops_training.gates.champion_decision`; with ``gate`` the accuracy
    is checked against it once more here, and a miss registers nothing.
    """
    if gate is not None:
        check_gate(registered_model_name, accuracy, gate)
    import mlflow
    from mlflow.exceptions import MlflowException

    client = _client()
    existing = client.search_model_versions(f"name = '{registered_model_name}' and run_id = '{run_id}'")
    if existing:
        version = max(existing, key=lambda v: int(v.version))
    else:
        version = mlflow.register_model(model_uri, registered_model_name, await_registration_for=300)
    tags = {METRIC_TEST_ACCURACY: f"{accuracy:.6f}", "run_id": run_id, **(version_tags or {})}
    for key, value in tags.items():
        client.set_model_version_tag(registered_model_name, version.version, key, value)

    try:
        champion = client.get_model_version_by_alias(registered_model_name, alias)
    except MlflowException:
        champion = None  # no alias yet
    previous_version = int(champion.version) if champion is not None else None
    previous_accuracy = _accuracy_of_version(client, champion) if champion is not None else None
    # Versions are ints from the sqlite store and strings over REST: compared as ints. Without a
    # gate the caller has checked it (the gate is the decision's first half): -1 lets any accuracy by.
    is_champion, reason = champion_decision(
        accuracy, gate if gate is not None else -1.0, previous_version, previous_accuracy, int(version.version),
    )
    if is_champion:
        client.set_registered_model_alias(registered_model_name, alias, version.version)
    _log_batch(run_id, tags={
        TAG_REGISTERED_MODEL: registered_model_name,
        TAG_REGISTERED_VERSION: str(version.version),
        TAG_CHAMPION: str(is_champion).lower(),
    })
    return {
        "registered_model": registered_model_name,
        "version": int(version.version),
        "champion": is_champion,
        "reason": reason,
        "accuracy": accuracy,
        "previous_champion_version": previous_version,
        "previous_champion_accuracy": previous_accuracy,
    }
