"""DAG integrity: the six training DAGs and their six tuning DAGs parse (also without any ML
library, Optuna included), with the shape we promise.

Runs wherever Airflow is importable: a full dev env, the worker image, and
the lean control-plane image (which has no TensorFlow, PyTorch, XGBoost,
LightGBM, MLflow or even NumPy).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

pytest.importorskip("airflow.sdk", reason="Airflow is not installed here; the DAG integrity tests need it")

from airflow.dag_processing.dagbag import DagBag

DAGS_DIR = Path(__file__).resolve().parents[2] / "files" / "dags"
if str(DAGS_DIR) not in sys.path:
    sys.path.insert(0, str(DAGS_DIR))
EXPECTED = {
    "xgboost_pipeline": ("xgboost_pipeline_dag.py", "xgboost"),
    "lightgbm_pipeline": ("lightgbm_pipeline_dag.py", "lightgbm"),
    "tensorflow_mnist_mlp": ("tensorflow_mnist_mlp_dag.py", "tensorflow"),
    "tensorflow_mnist_cnn": ("tensorflow_mnist_cnn_dag.py", "tensorflow"),
    "pytorch_mnist_mlp": ("pytorch_mnist_mlp_dag.py", "pytorch"),
    "pytorch_mnist_cnn": ("pytorch_mnist_cnn_dag.py", "pytorch"),
}
ORDER = ["validate", "train", "evaluate", "register"]
TUNING = {f"{dag_id}_tuning": (f"{dag_id}_tuning_dag.py", library) for dag_id, (_, library) in EXPECTED.items()}
TUNING_ORDER = ["validate", "start_study", "ask", "trial", "select_best", "evaluate", "register", "finish_study"]
ALL_FILES = [f for f, _ in EXPECTED.values()] + [f for f, _ in TUNING.values()]


def _bag(monkeypatch: pytest.MonkeyPatch | None = None, settings_file: Path | None = None) -> DagBag:
    if monkeypatch is not None and settings_file is not None:
        monkeypatch.setenv("MLOPS_SETTINGS_FILE", str(settings_file))
    return DagBag(dag_folder=str(DAGS_DIR))


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> DagBag:
    # Package defaults, whatever settings.json a deployment may have left in the tree.
    empty = tmp_path_factory.mktemp("settings") / "settings.json"
    empty.write_text("{}")
    old = os.environ.get("MLOPS_SETTINGS_FILE")
    os.environ["MLOPS_SETTINGS_FILE"] = str(empty)
    try:
        return _bag()
    finally:
        if old is None:
            os.environ.pop("MLOPS_SETTINGS_FILE")
        else:
            os.environ["MLOPS_SETTINGS_FILE"] = old


def test_no_import_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}


def test_exactly_the_six_dags_and_their_tuning_dags(dagbag: DagBag) -> None:
    assert sorted(dagbag.dag_ids) == sorted(EXPECTED | TUNING)
    for dag_id, (filename, _) in (EXPECTED | TUNING).items():
        assert Path(dagbag.dags[dag_id].fileloc).name == filename


def test_the_package_is_not_parsed_as_dags(dagbag: DagBag) -> None:
    assert "mlops_training/" in (DAGS_DIR / ".airflowignore").read_text().split()
    assert not [f for f in dagbag.file_last_changed if "mlops_training" in str(f)]


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_shape(dagbag: DagBag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    library = EXPECTED[dag_id][1]
    assert {"mlops", library} <= set(dag.tags)
    assert dag.doc_md and "validate → train → evaluate → register" in dag.doc_md
    assert dag.timetable.__class__.__name__ == "NullTimetable"  # schedule=None: manual/API runs only
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert sorted(dag.task_ids) == sorted(ORDER)
    for task in dag.tasks:
        assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
        assert isinstance(task.execution_timeout, timedelta) and task.execution_timeout > timedelta(0)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_task_order_is_validate_train_evaluate_register(dagbag: DagBag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    for upstream, downstream in itertools.pairwise(ORDER):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}
    assert dag.get_task("validate").upstream_task_ids == set()
    assert dag.get_task("register").downstream_task_ids == set()
    assert [t.task_id for t in dag.topological_sort()] == ORDER


@pytest.mark.parametrize("dag_id", sorted(TUNING))
def test_tuning_dag_shape(dagbag: DagBag, dag_id: str) -> None:
    from mlops_training.tuning import PARAM_KEYS

    dag = dagbag.dags[dag_id]
    assert {"mlops", "tuning", TUNING[dag_id][1]} <= set(dag.tags)
    assert dag.doc_md and "validate → start_study → ask → trial × n_trials (mapped)" in dag.doc_md
    assert dag.timetable.__class__.__name__ == "NullTimetable"
    assert (dag.catchup, dag.max_active_runs) == (False, 1)  # one study per model: no race for its champion
    assert [t.task_id for t in dag.topological_sort()] == TUNING_ORDER
    assert set(dag.params.keys()) == set(PARAM_KEYS)
    for task in dag.tasks:
        assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
        assert isinstance(task.execution_timeout, timedelta) and task.execution_timeout > timedelta(0)


@pytest.mark.parametrize("dag_id", sorted(TUNING))
def test_tuning_trials_are_mapped_and_the_study_always_ends(dagbag: DagBag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    trial = dag.get_task("trial")
    assert trial.is_mapped  # dynamic task mapping: one task instance per trial, on any worker slot
    assert trial.upstream_task_ids == {"ask", "start_study"}
    assert dag.get_task("validate").upstream_task_ids == set()  # the params are checked first
    # A killed or failed trial does not stop the study; select_best decides what is left.
    assert dag.get_task("select_best").trigger_rule == "all_done"
    assert dag.get_task("select_best").upstream_task_ids == {"trial"}
    assert dag.get_task("evaluate").upstream_task_ids == {"select_best"}
    assert dag.get_task("register").upstream_task_ids == {"evaluate"}
    # The parent run is opened by a setup task and always closed by its teardown, which does
    # not decide the DAG run's state (a failed validate or gate still fails the run).
    start, finish = dag.get_task("start_study"), dag.get_task("finish_study")
    assert start.is_setup and finish.is_teardown and not finish.on_failure_fail_dagrun
    assert finish.upstream_task_ids == {"start_study", "select_best", "evaluate", "register"}
    # Airflow judges a run by its leaves, teardowns left out: only register's outcome counts, so
    # a killed trial does not fail a study whose best was registered, and a bad space still does.
    leaves = {t.task_id for t in dag.tasks if not t.is_teardown
              and all(dag.get_task(d).is_teardown for d in t.downstream_task_ids)}
    assert leaves == {"register"}


def test_tabular_dags_take_optional_data_params(dagbag: DagBag) -> None:
    for dag_id in ("xgboost_pipeline", "lightgbm_pipeline"):
        params = dagbag.dags[dag_id].params
        assert params["data_path"] is None and params["label_column"] == "label"
    assert "data_path" not in dagbag.dags["pytorch_mnist_cnn"].params


@pytest.mark.parametrize("filename", [*ALL_FILES, "mlops_training/dag_factory.py"])
def test_dag_files_stay_thin(filename: str) -> None:
    """The DAG files and the factory that builds their DAGs follow the same parse-time rules."""
    source = (DAGS_DIR / filename).read_text()
    # API-triggered runs have logical_date None in Airflow 3: nothing may template it.
    assert not re.search(r"\{\{|logical_date|execution_date|\bds\b", source)
    # No ML library or MLflow at module level; no Airflow 2 imports; no metadata-DB access.
    top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in top_level
                if re.search(r"tensorflow|torch|xgboost|lightgbm|mlflow|numpy|pandas|optuna", line)]
    assert "from airflow.sdk import" in source
    assert not re.search(r"airflow\.(models|operators|decorators)|settings\.Session|create_session", source)


@pytest.mark.parametrize("filename", ALL_FILES)
def test_each_dag_file_is_its_docstring_and_one_factory_call(filename: str) -> None:
    source = (DAGS_DIR / filename).read_text()
    factory = "build_tuning_dag" if filename.endswith("_tuning_dag.py") else "build_training_dag"
    assert len(re.findall(r"build_\w+_dag\(", source)) == 1 and f"{factory}(" in source
    assert not re.search(r"@task|@dag|\bdef ", source)


@pytest.mark.parametrize("filename", ALL_FILES)
def test_safe_mode_discovery_finds_each_dag_file(filename: str) -> None:
    """dag_discovery_safe_mode (on by default) skips files without "airflow" and "dag" in them."""
    from airflow.utils.file import might_contain_dag

    assert might_contain_dag(str(DAGS_DIR / filename), safe_mode=True)


def test_parse_needs_no_ml_library() -> None:
    """Parse in a fresh interpreter with the heavy libraries blocked, as the dag-processor would."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("parse_dags_blocked.py")), str(DAGS_DIR)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["import_errors"] == {}
    assert report["script_errors"] == {}  # `python <dag file>` (the execution plan's syntax check) works too
    assert report["dag_ids"] == sorted(EXPECTED | TUNING)
    assert report["blocked_attempts"] == []
    assert report["heavy_loaded"] == []


def test_settings_file_drives_retries_and_timeouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"pipelines": {
        "pytorch_cnn": {"retries": 3, "execution_timeout_minutes": 7, "retry_delay_seconds": 11},
    }}))
    bag = _bag(monkeypatch, path)
    assert bag.import_errors == {}
    task = bag.dags["pytorch_mnist_cnn"].get_task("train")
    assert (task.retries, task.execution_timeout, task.retry_delay) == (3, timedelta(minutes=7), timedelta(seconds=11))
    assert bag.dags["pytorch_mnist_mlp"].get_task("train").retries == 1  # others keep the defaults
    trial = bag.dags["pytorch_mnist_cnn_tuning"].get_task("trial")  # a pipeline's study runs under its settings
    assert (trial.retries, trial.execution_timeout) == (3, timedelta(minutes=7))


def test_bad_settings_surface_as_import_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"pipelines": {"xgboost": {"gate": 0.5}}}))
    bag = _bag(monkeypatch, path)
    assert sorted(Path(f).name for f in bag.import_errors) == sorted(ALL_FILES)
    assert all("gate 0.5 is below the plan's floor 0.85" in e for e in bag.import_errors.values())


def test_no_queue_in_settings_leaves_every_task_on_the_default_queue(dagbag: DagBag) -> None:
    """Without a queue in settings.json every task goes to Airflow's [operators] default_queue."""
    from airflow.configuration import conf

    assert conf.get("operators", "default_queue") == "default"
    assert {(dag_id, task.task_id): task.queue for dag_id, dag in dagbag.dags.items() for task in dag.tasks
            if task.queue != "default"} == {}


def test_a_queue_in_settings_reaches_every_task_of_that_pipelines_dags(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"pipelines": {"tensorflow_cnn": {"queue": "heavy"}, "pytorch_cnn": {"queue": "heavy"}}}))
    bag = _bag(monkeypatch, path)
    assert bag.import_errors == {}
    routed = {"tensorflow_mnist_cnn", "tensorflow_mnist_cnn_tuning", "pytorch_mnist_cnn", "pytorch_mnist_cnn_tuning"}
    queues = {dag_id: {task.task_id: task.queue for task in dag.tasks} for dag_id, dag in bag.dags.items()}
    for dag_id in routed:  # mapped trials, setup and teardown included
        assert set(queues[dag_id].values()) == {"heavy"}, queues[dag_id]
    assert "trial" in queues["pytorch_mnist_cnn_tuning"] and bag.dags["pytorch_mnist_cnn_tuning"].get_task("trial").is_mapped
    for dag_id in set(bag.dags) - routed:  # the other pipelines stay on the default queue
        assert set(queues[dag_id].values()) == {"default"}, dag_id
