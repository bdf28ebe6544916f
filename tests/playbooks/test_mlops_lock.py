"""The one-run-at-a-time lock (playbooks/library/mlops_lock.py), on tmp_path."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def _load(relative: str):
    path = PLAYBOOKS / relative
    spec = importlib.util.spec_from_file_location(path.stem + "_under_test_" + path.parent.name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock = _load("library/mlops_lock.py")
action = _load("action_plugins/mlops_lock.py")
HOST = socket.gethostname()


def owner_for(pid: int, command: str = "ansible-playbook site.yml", host: str = HOST) -> dict:
    return {
        "pid": pid,
        "start_ticks": lock.process_start_ticks(pid) or 0,
        "command": command,
        "started": "2026-12-01T08:00:00Z",
        "host": host,
    }


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def me() -> dict:
    return owner_for(os.getpid(), "ansible-playbook playbooks/rollback.yml")


@pytest.fixture
def alive_other():
    """Another live process on this host, as a run holding the lock."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield owner_for(child.pid, "ansible-playbook site.yml -e airflow_worker_cpus=2")
    child.kill()
    child.wait()


def test_acquire_creates_the_lock_holding_the_owner(tmp_path, me):
    path = str(tmp_path / "project" / ".mlops.lock")  # the directory is created too
    assert lock.acquire(path, me) == {"acquired": True, "took_over": None}
    held = json.loads(Path(path).read_text())
    assert {k: held[k] for k in me} == me
    assert held["created"] > 0


def test_release_removes_the_directory_it_created_only_while_empty(tmp_path, me):
    path = tmp_path / "new-project" / ".mlops.lock"
    lock.acquire(str(path), me)
    assert lock.release(str(path), me) is True
    assert not path.parent.exists()
    lock.acquire(str(path), me)
    (path.parent / "compose").mkdir()  # the run created the project in it
    lock.release(str(path), me)
    assert path.parent.is_dir()
    assert not path.exists()
    lock.acquire(str(path), me)  # an existing dir is never removed
    lock.release(str(path), me)
    assert path.parent.is_dir()


def test_second_acquire_is_refused_naming_the_holder(tmp_path, me, alive_other):
    path = str(tmp_path / ".mlops.lock")
    lock.acquire(path, alive_other)
    with pytest.raises(lock.LockHeld) as refused:
        lock.acquire(path, me)
    message = str(refused.value)
    assert f"pid {alive_other['pid']}" in message
    assert "ansible-playbook site.yml -e airflow_worker_cpus=2" in message
    assert "started 2026-12-01T08:00:00Z" in message
    assert json.loads(Path(path).read_text())["pid"] == alive_other["pid"]  # untouched


def test_acquire_again_by_the_same_run_is_fine(tmp_path, me):
    path = str(tmp_path / ".mlops.lock")
    lock.acquire(path, me)
    assert lock.acquire(path, me) == {"acquired": True, "took_over": None}


def test_a_lock_whose_pid_is_gone_is_taken_over(tmp_path, me):
    path = str(tmp_path / ".mlops.lock")
    gone = owner_for(dead_pid())
    Path(path).write_text(json.dumps(dict(gone, created=0)))
    result = lock.acquire(path, me)
    assert result["acquired"] is True
    assert result["took_over"]["holder"]["pid"] == gone["pid"]
    assert "no longer runs" in result["took_over"]["reason"]
    assert json.loads(Path(path).read_text())["pid"] == me["pid"]


def test_a_reused_pid_does_not_keep_a_lock_alive(tmp_path, me, alive_other):
    path = str(tmp_path / ".mlops.lock")
    reused = dict(alive_other, start_ticks=alive_other["start_ticks"] - 1)
    Path(path).write_text(json.dumps(dict(reused, created=0)))
    assert "now another process" in lock.acquire(path, me)["took_over"]["reason"]


def test_an_unreadable_lock_is_stale(tmp_path, me):
    path = tmp_path / ".mlops.lock"
    path.write_text('{"pid": 12')  # a run killed while writing
    assert "unreadable" in lock.acquire(str(path), me)["took_over"]["reason"]


def test_a_remote_controllers_lock_holds_until_it_is_older_than_the_bound(tmp_path, me):
    path = str(tmp_path / ".mlops.lock")
    remote = dict(owner_for(1, host="controller-elsewhere"), created=1_000.0)
    Path(path).write_text(json.dumps(remote))
    with pytest.raises(lock.LockHeld, match="on controller-elsewhere"):
        lock.acquire(path, me, stale_after=600, now=1_500.0)
    result = lock.acquire(path, me, stale_after=600, now=1_700.0)
    assert "700 s ago (stale after 600 s)" in result["took_over"]["reason"]


def test_release_only_by_the_owner(tmp_path, me, alive_other):
    path = tmp_path / ".mlops.lock"
    lock.acquire(str(path), alive_other)
    assert lock.release(str(path), me) is False
    assert path.exists()
    assert lock.release(str(path), alive_other) is True
    assert not path.exists()
    assert lock.release(str(path), alive_other) is False  # nothing left to release


def test_check_mode_writes_nothing_and_still_refuses_a_live_holder(tmp_path, me, alive_other):
    missing = tmp_path / "not-yet" / ".mlops.lock"
    assert lock.acquire(str(missing), me, check_mode=True)["acquired"] is False
    assert not missing.parent.exists()
    path = tmp_path / ".mlops.lock"
    assert lock.acquire(str(path), me, check_mode=True)["acquired"] is False
    assert not path.exists()
    lock.acquire(str(path), alive_other)
    with pytest.raises(lock.LockHeld):
        lock.acquire(str(path), me, check_mode=True)
    assert lock.release(str(path), alive_other, check_mode=True) is False
    assert path.exists()


def _race(path: str, barrier, results) -> None:
    owner = owner_for(os.getpid(), f"racer {os.getpid()}")
    barrier.wait()
    try:
        results.put(lock.acquire(path, owner)["acquired"])
    except lock.LockHeld:
        results.put(False)
    barrier.wait()  # every racer stays alive until all have tried: the winner is a live holder


def test_racing_takeovers_of_a_stale_lock_leave_one_winner(tmp_path):
    path = str(tmp_path / ".mlops.lock")
    Path(path).write_text(json.dumps(dict(owner_for(dead_pid()), created=0)))
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    racers = [ctx.Process(target=_race, args=(path, barrier, results)) for _ in range(6)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(30)
    outcomes = [results.get(timeout=5) for _ in racers]
    assert outcomes.count(True) == 1
    assert json.loads(Path(path).read_text())["command"].startswith("racer ")


def test_the_action_plugin_names_the_controller_process():
    owner = action.controller_owner(os.getpid())
    assert owner["pid"] == os.getpid()
    assert owner["start_ticks"] == lock.process_start_ticks(os.getpid())
    assert "pytest" in owner["command"] or "python" in owner["command"]
    assert owner["host"] == HOST
    assert owner["started"].endswith("Z")
