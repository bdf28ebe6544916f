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


def local(*queues):
    """The one worker of today's single host, as site.yml's preflight play passes it."""
    return [{"worker": "localhost", "variable": "airflow_worker_queues", "queues": list(queues)}]


def test_pipelines_on_served_queues_pass():
    assert preflight.unserved_queues({}, local("default")) == []
    assert preflight.unserved_queues({"tensorflow_cnn": "heavy", "pytorch_cnn": "heavy"},
                                     local("default", "heavy")) == []
    assert preflight.unserved_queues({"xgboost": None, "lightgbm": ""}, local("default")) == []  # no queue: default


def test_a_queue_no_worker_serves_names_the_pipeline_the_queue_and_the_variables():
    [problem] = preflight.unserved_queues({"tensorflow_cnn": "heavy", "xgboost": None}, local("default"))
    assert problem == (
        "Pipeline tensorflow_cnn sends its tasks to queue 'heavy' (training_dags_queues.tensorflow_cnn), which no "
        "worker serves (airflow_worker_queues of localhost: default). Add heavy to airflow_worker_queues, or route "
        "tensorflow_cnn to a served queue (or drop it from training_dags_queues for the default queue).")


def test_every_unserved_route_is_reported():
    problems = preflight.unserved_queues({"pytorch_cnn": "heavy", "tensorflow_cnn": "heavy", "xgboost": "cpu"},
                                         local("default"))
    assert [p.split(" ")[1] for p in problems] == ["pytorch_cnn", "tensorflow_cnn", "xgboost"]


def test_the_default_queue_must_be_served_naming_who_relies_on_it():
    [problem] = preflight.unserved_queues({"tensorflow_cnn": "heavy", "xgboost": None}, local("heavy"))
    assert problem.startswith("No worker serves Airflow's default queue 'default', where pipelines xgboost and "
                              "every task that names no queue goes (airflow_worker_queues of localhost: heavy).")
    assert problem.endswith("Add default to airflow_worker_queues.")


def test_several_workers_serve_together():
    """Later: one entry per worker host; a queue counts as served when any worker consumes it.
    Plain lists are taken too."""
    hosts = [{"worker": "cp", "variable": "airflow_worker_queues", "queues": ["default"]},
             {"worker": "gpu1", "variable": "airflow_worker_queues", "queues": ["heavy"]}]
    assert preflight.unserved_queues({"pytorch_cnn": "heavy"}, hosts) == []
    assert preflight.unserved_queues({"pytorch_cnn": "heavy"}, [["default"], ["heavy"]]) == []
    [problem] = preflight.unserved_queues({"pytorch_cnn": "gpu"}, hosts)
    assert "(airflow_worker_queues of cp: default; airflow_worker_queues of gpu1: heavy)" in problem
    assert "Add gpu to airflow_worker_queues of a worker host" in problem


def test_site_preflight_checks_the_queues_after_the_roles_own_checks():
    """The play feeds the filter the pipelines' routes and the worker queues, and runs it
    after the airflow and training_dags preflights refused malformed names."""
    import yaml

    [play] = [p for p in yaml.safe_load((_PATH.parents[1] / "site.yml").read_text()) if "preflight" in p["name"].lower()
              or p["name"].startswith("Check inputs")]
    assert play["vars"]["__mlops_queue_routes"] == "{{ training_dags_queues }}"
    block = next(t for t in play["tasks"] if "block" in t)["block"]
    names = [t["name"] for t in block]
    check = names.index("Check a worker serves every queue a pipeline sends tasks to")
    assert check > names.index("Check the Airflow settings and the worker's resources")
    assert check > names.index("Check the training settings")
    assert "unserved_queues(__mlops_worker_queues)" in block[check]["vars"]["__mlops_problems"]


def test_site_preflight_lists_the_queues_of_this_host_and_every_worker_host(tmp_path):
    """__mlops_worker_queues as the real Ansible templates it: one entry per worker, the control
    plane's first, each with the airflow_worker_queues of its own host."""
    import json
    import subprocess

    import yaml

    repo = _PATH.parents[2]
    playbook = repo / ".venv" / "bin" / "ansible-playbook"
    if not playbook.exists():
        pytest.skip("controller venv (.venv) missing")
    [play] = [p for p in yaml.safe_load((_PATH.parents[1] / "site.yml").read_text()) if p["name"].startswith("Check inputs")]
    out = tmp_path / "queues.json"
    names = ("__mlops_workers", "__mlops_worker_queues")
    test_play = [{"hosts": "cp", "connection": "local", "gather_facts": False,
                  "vars": {name: play["vars"][name] for name in names},
                  "tasks": [{"ansible.builtin.copy": {"content": "{{ __mlops_worker_queues | to_json }}",
                                                      "dest": str(out), "mode": "0644"}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(test_play))
    inventory = {"all": {"children": {
        "mlops_hosts": {"hosts": {"cp": {"airflow_worker_queues": ["default"]}}},
        "airflow_workers": {"hosts": {"w1": {"airflow_worker_queues": ["default", "light"]},
                                      "w2": {"airflow_worker_queues": ["heavy"]}}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    proc = subprocess.run([str(playbook), "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"),
                           "-e", json.dumps({"ansible_python_interpreter": "{{ ansible_playbook_python }}"})],
                          cwd=repo, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    entries = json.loads(out.read_text())
    assert entries == [
        {"worker": "cp", "queues": ["default"], "variable": "airflow_worker_queues"},
        {"worker": "w1", "queues": ["default", "light"], "variable": "airflow_worker_queues"},
        {"worker": "w2", "queues": ["heavy"], "variable": "airflow_worker_queues"},
    ]
    # fed to the filter: heavy and light are served, by the worker hosts
    assert preflight.unserved_queues({"pytorch_cnn": "heavy", "pytorch_mlp": "light"}, entries) == []
    [problem] = preflight.unserved_queues({"pytorch_cnn": "gpu"}, entries)
    assert "queue 'gpu'" in problem and "of w2" in problem


# --- hosts_without: which targeted worker hosts did not finish a step ---------------------

WORKER_FACTS = {
    "w1": {"__mlops_worker_joined": True},
    "w2": {"__mlops_worker_joined": False, "__mlops_worker_failure": "pull failed: no route to host"},
    "w3": {},  # never ran the step: unreachable
}


def test_hosts_without_names_each_missing_host_and_why():
    assert preflight.hosts_without(["w1", "w2", "w3"], WORKER_FACTS, "__mlops_worker_joined") == [
        "w2: pull failed: no route to host",
        "w3: unreachable",
    ]


def test_hosts_without_keeps_to_the_hosts_the_limit_targets():
    assert preflight.hosts_without(["w1", "w2", "w3"], WORKER_FACTS, "__mlops_worker_joined", ["w1", "w3", "cp"]) == [
        "w3: unreachable",
    ]


def test_hosts_without_is_empty_when_every_host_set_the_fact_or_none_is_targeted():
    assert preflight.hosts_without(["w1"], WORKER_FACTS, "__mlops_worker_joined") == []
    assert preflight.hosts_without(["w1", "w2"], WORKER_FACTS, "__mlops_worker_joined", []) == []
    assert preflight.hosts_without([], WORKER_FACTS, "__mlops_worker_joined") == []


def test_hosts_without_reads_the_fact_it_is_given():
    facts = {"w1": {"__mlops_worker_joined": True}}
    assert preflight.hosts_without(["w1"], facts, "__mlops_worker_preflight_passed") == ["w1: unreachable"]
