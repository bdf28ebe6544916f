"""The training_dags role's filters: release entries, quarantine index, import-error matching.

They decide which files go live and which are quarantined, so what they accept and reject is
pinned here. Runs in milliseconds, without Ansible or Docker.
"""
from __future__ import annotations

import pytest
from role_code import load

filters = load("training_dags/filter_plugins/training_dags.py")

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64


def test_release_entry_keeps_the_path_under_the_root():
    entry = filters.combine_release_entry({"path": "/src/dags/mlops_training/data.py", "checksum": SHA_A}, "/src/dags")
    assert entry == {"src": "/src/dags/mlops_training/data.py", "dest": "mlops_training/data.py", "sha256": SHA_A}


def test_release_entry_without_root_lands_at_the_top():
    entry = filters.combine_release_entry({"path": "/elsewhere/extra_dag.py", "checksum": SHA_B}, None)
    assert entry["dest"] == "extra_dag.py"


def test_release_entry_outside_its_root_is_refused():
    with pytest.raises(ValueError, match="outside"):
        filters.combine_release_entry({"path": "/other/x.py", "checksum": SHA_A}, "/src/dags")


def test_seconds_between_reads_airflow_timestamps():
    assert filters.seconds_between("2026-11-27T10:00:00.5Z", "2026-11-27T10:01:02Z") == 61.5
    assert filters.seconds_between("2026-11-27T10:00:00+00:00", "2026-11-27T11:00:00+01:00") == 0.0
    assert filters.seconds_between(None, "2026-11-27T10:00:00Z") is None


def test_mlflow_kv_turns_a_list_into_a_dict():
    assert filters.mlflow_kv([{"key": "gate", "value": "0.85"}, {"key": "model", "value": "xgb"}]) == {
        "gate": "0.85", "model": "xgb"}
    assert filters.mlflow_kv(None) == {}


def test_quarantine_entries_skip_known_contents_and_duplicates():
    bad = [
        {"src": "/r/a.py", "dest": "a.py", "sha256": SHA_A},
        {"src": "/r/b.py", "dest": "b.py", "sha256": SHA_B},
        {"src": "/r/b_copy.py", "dest": "b_copy.py", "sha256": SHA_B},
    ]
    index = [{"name": "a.py", "sha256": SHA_A, "reason": "syntax error"}]
    details = [{"path": "/r/b.py", "error": "line 3: invalid syntax"}]
    new = filters.quarantine_entries(bad, index, "syntax error", details, "2026-11-27T10:00:00Z")
    assert new == [{
        "name": "b.py", "sha256": SHA_B, "reason": "syntax error", "detail": "line 3: invalid syntax",
        "file": f"b.py.{SHA_B[:12]}", "quarantined_at": "2026-11-27T10:00:00Z",
    }]


def test_import_errors_match_release_files_by_relative_path():
    files = [
        {"src": "/ctl/dags/xgboost_pipeline_dag.py", "dest": "xgboost_pipeline_dag.py", "sha256": SHA_A},
        {"src": "/ctl/dags/broken.py", "dest": "broken.py", "sha256": SHA_B},
        {"src": "/ctl/dags/sub/deep.py", "dest": "sub/deep.py", "sha256": SHA_C},
    ]
    errors = [
        {"filename": "/opt/airflow/dags/../dag-releases/current/broken.py",
         "stack_trace": "Traceback (most recent call last):\n  ...\nNameError: name 'x' is not defined\n"},
        {"filename": "/opt/airflow/dag-releases/0123456789ab/sub/deep.py", "stack_trace": ""},
        {"filename": "/somewhere/else/not_ours.py", "stack_trace": "boom"},
    ]
    out = filters.import_error_files(errors, files, "/opt/lt/dag-releases/0123456789ab")
    assert out == [
        {"src": "/opt/lt/dag-releases/0123456789ab/broken.py", "dest": "broken.py", "sha256": SHA_B,
         "detail": "NameError: name 'x' is not defined"},
        {"src": "/opt/lt/dag-releases/0123456789ab/sub/deep.py", "dest": "sub/deep.py", "sha256": SHA_C,
         "detail": "import error"},
    ]
