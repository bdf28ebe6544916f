"""The verify checks' filters (playbooks/filter_plugins/verify.py)."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

_PATH = Path(__file__).resolve().parents[2] / "playbooks" / "filter_plugins" / "verify.py"
_SPEC = importlib.util.spec_from_file_location("verify_filters_under_test", _PATH)
verify = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(verify)

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


def container(name, restarts, started):
    """The fields of a `docker inspect` document the filter reads (Docker writes nanoseconds)."""
    return {"Name": f"/{name}", "RestartCount": restarts, "State": {"Status": "running", "StartedAt": started}}


def test_a_restart_during_the_run_counts():
    containers = [container("lt-airflow-scheduler-1", 1, "2026-12-07T11:58:01.123456789Z")]
    assert verify.restarted_containers(containers, "2026-12-07T11:50:00+00:00", now=NOW) == ["lt-airflow-scheduler-1"]


def test_an_old_recovered_crash_does_not_count():
    # Crashed and restarted by its policy last week, running since: not restarting now.
    containers = [container("lt-airflow-triggerer-1", 3, "2026-11-30T08:00:00.000000001Z")]
    assert verify.restarted_containers(containers, "2026-12-07T11:50:00+00:00", now=NOW) == []


def test_a_container_never_restarted_does_not_count_however_recent():
    containers = [container("lt-airflow-worker-1", 0, "2026-12-07T11:59:59.5Z")]
    assert verify.restarted_containers(containers, "2026-12-07T11:50:00Z", now=NOW) == []


def test_without_a_run_start_the_last_window_counts():
    containers = [
        container("recent", 1, "2026-12-07T11:55:00Z"),
        container("older", 1, "2026-12-07T11:40:00Z"),
    ]
    assert verify.restarted_containers(containers, "", 600, now=NOW) == ["recent"]
    assert verify.restarted_containers(containers, "", 1800, now=NOW) == ["recent", "older"]


def test_run_start_without_offset_is_utc():
    containers = [container("c", 1, "2026-12-07T11:58:00Z")]
    assert verify.restarted_containers(containers, "2026-12-07T11:57:00", now=NOW) == ["c"]
    assert verify.restarted_containers(containers, "2026-12-07T11:59:00", now=NOW) == []


def test_offsets_compare_as_instants():
    # 12:58 at +01:00 is 11:58 UTC: after a run that began 11:57 UTC.
    containers = [container("c", 2, "2026-12-07T12:58:00+01:00")]
    assert verify.restarted_containers(containers, "2026-12-07T11:57:00Z", now=NOW) == ["c"]


def test_a_malformed_run_start_names_the_variable():
    with pytest.raises(AnsibleFilterError, match="verify_restarts_since"):
        verify.restarted_containers([container("c", 1, "2026-12-07T11:58:00Z")], "yesterday", now=NOW)
