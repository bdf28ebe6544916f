"""The preflight play's cross-role checks (playbooks/filter_plugins/preflight.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "playbooks" / "filter_plugins" / "preflight.py"
_SPEC = importlib.util.spec_from_file_location("preflight_filters_under_test", _PATH)
preflight = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(preflight)


def ports(mlflow=5000, airflow=8082, mlflow_address="127.0.0.1", airflow_address="127.0.0.1"):
    return [
        {"variable": "mlflow_port", "port": str(mlflow), "address": mlflow_address, "service": "mlflow"},
        {"variable": "airflow_api_port", "port": airflow, "address": airflow_address, "service": "airflow-apiserver"},
    ]


def test_distinct_ports_pass():
    assert preflight.port_collisions(ports()) == []


def test_equal_ports_on_one_address_name_both_variables():
    [problem] = preflight.port_collisions(ports(airflow=5000))
    assert "mlflow_port=5000" in problem
    assert "airflow_api_port=5000" in problem
    assert "e.g. airflow_api_port=5001" in problem


@pytest.mark.parametrize(
    ("mlflow_address", "airflow_address", "collides"),
    [
        ("0.0.0.0", "127.0.0.1", True),  # the wildcard takes the port on every address
        ("127.0.0.1", "0.0.0.0", True),
        ("127.0.0.1", "10.0.0.5", False),  # two addresses, two sockets: Docker accepts it
    ],
)
def test_addresses_decide_whether_equal_ports_collide(mlflow_address, airflow_address, collides):
    found = preflight.port_collisions(ports(5000, 5000, mlflow_address, airflow_address))
    assert bool(found) is collides


def test_every_colliding_pair_is_reported_and_the_suggestion_is_free():
    published = ports(5000, 5000) + [{"variable": "extra_port", "port": 5000, "address": "127.0.0.1"}]
    problems = preflight.port_collisions(published)
    assert len(problems) == 3
    assert all("5000" in p and "=5001" in p for p in problems)
    taken = ports(5000, 5001) + [{"variable": "extra_port", "port": 5001, "address": "127.0.0.1"}]
    [problem] = preflight.port_collisions(taken)
    assert "e.g. extra_port=5002" in problem


def test_shared_settings_that_differ_are_named():
    groups = {
        "compose project": {"docker_host_compose_project": "lakehouse-tick", "mlflow_compose_project": "lakehouse-tick"},
        "project dir": {"docker_host_project_dir": "/opt/lakehouse-tick", "airflow_project_dir": "/opt/other"},
    }
    assert preflight.setting_mismatches(groups) == [
        (
            "The roles must share one project dir, got docker_host_project_dir=/opt/lakehouse-tick, "
            "airflow_project_dir=/opt/other."
        )
    ]
