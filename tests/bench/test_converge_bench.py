"""bench/converge.py's reading of ansible.posix.profile_tasks' summary (the ten slowest tasks)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "bench_converge", Path(__file__).resolve().parents[2] / "bench" / "converge.py")
converge = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(converge)

# The shape profile_tasks prints after the recap (ansible.posix 2.x): name, dashes, seconds.
SUMMARY = """\
PLAY RECAP *********************************************************************
localhost                  : ok=12   changed=0    unreachable=0    failed=0    skipped=3    rescued=0    ignored=0

Thursday 03 December 2026  14:20:00 +0000 (0:00:01.234)       0:01:00.000 ******
===============================================================================
airflow : Wait until every Airflow service is healthy ------------------ 12.50s
docker_host : Build the worker image - a name -- with dashes ----------- 30.01s
Gathering Facts ---------------------------------------------------------- 1.02s
training_dags : Read the evidence ---------------------------------------- 0.40s
"""


def test_slowest_first_and_names_kept_whole() -> None:
    slowest = converge.slowest_tasks(SUMMARY.splitlines(), limit=3)
    assert slowest == [
        ("docker_host : Build the worker image - a name -- with dashes", 30.01),
        ("airflow : Wait until every Airflow service is healthy", 12.5),
        ("Gathering Facts", 1.02),
    ]


def test_recap_and_header_lines_are_not_tasks() -> None:
    names = [name for name, _ in converge.slowest_tasks(SUMMARY.splitlines(), limit=99)]
    assert len(names) == 4
    assert not any(name.startswith(("PLAY", "localhost", "Thursday", "=")) for name in names)
