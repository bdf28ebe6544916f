"""bench/hosts.py's arithmetic: the scheduling gaps of one DAG run's task chain."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
_SPEC = importlib.util.spec_from_file_location("hosts_bench_under_test", BENCH / "hosts.py")
hosts = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(hosts)

RUN = {"queued_at": "2026-12-07T10:00:00+00:00"}


def ti(start: str | None, end: str | None) -> dict:
    return {"start_date": start and f"2026-12-07T10:{start}+00:00", "end_date": end and f"2026-12-07T10:{end}+00:00"}


def test_each_gap_is_the_wait_after_the_task_before():
    chain = {"validate": ti("00:02", "00:05"), "train": ti("00:08", "01:08"),
             "evaluate": ti("01:09.5", "01:20"), "register": ti("01:21", "01:25")}
    assert hosts.task_gaps(RUN, chain) == [2.0, 3.0, 1.5, 1.0]


def test_the_chain_stops_at_a_task_that_never_started():
    chain = {"validate": ti("00:04", "00:05"), "train": ti(None, None), "evaluate": ti("01:00", "01:01")}
    assert hosts.task_gaps(RUN, chain) == [4.0]
    assert hosts.task_gaps(RUN, {}) == []
