"""docker_host's daemon.json filters: what the role writes, what it keeps, and what a change needs.

Worker hosts get the control plane's registry in insecure-registries (re-read on SIGHUP, so
a running engine and its containers are not restarted for it); simulated hosts get a
cgroup-parent (read only at start). The host's own keys must survive the role.
"""
from __future__ import annotations

import json
import re

import pytest
from ansible.errors import AnsibleFilterError
from role_code import load

daemon = load("docker_host/filter_plugins/docker_daemon.py")


def test_the_roles_keys_are_set_and_the_hosts_own_kept() -> None:
    existing = json.dumps({"log-driver": "local", "insecure-registries": ["old:5000"]})
    config = daemon.docker_daemon_config(existing, {"cgroup-parent": "/worker-1"}, ["10.0.0.5:5050"])
    assert config == {"log-driver": "local", "cgroup-parent": "/worker-1", "insecure-registries": ["10.0.0.5:5050"]}


def test_no_registries_leave_an_existing_list_alone() -> None:
    existing = json.dumps({"insecure-registries": ["mine:5000"]})
    assert daemon.docker_daemon_config(existing, {"debug": True}, []) == {"insecure-registries": ["mine:5000"], "debug": True}


def test_a_missing_or_empty_file_is_an_empty_config() -> None:
    assert daemon.docker_daemon_config("", {}, ["r:1"]) == {"insecure-registries": ["r:1"]}
    assert daemon.docker_daemon_config(None, {}, []) == {}
    assert daemon.docker_daemon_config("  \n", {"debug": False}, []) == {"debug": False}


def test_a_broken_file_is_named_not_overwritten() -> None:
    with pytest.raises(AnsibleFilterError, match="/etc/docker/daemon.json is not valid JSON"):
        daemon.docker_daemon_config("{not json", {}, ["r:1"])
    with pytest.raises(AnsibleFilterError, match="does not hold a JSON object"):
        daemon.docker_daemon_config("[1]", {}, [], "/x/daemon.json")


def test_a_new_registry_needs_only_a_reload() -> None:
    old = json.dumps({"cgroup-parent": "/w1", "insecure-registries": ["a:1"]})
    assert daemon.docker_daemon_action(old, {"cgroup-parent": "/w1", "insecure-registries": ["a:1", "b:2"]}) == "reload"
    assert daemon.docker_daemon_action("", {"insecure-registries": ["a:1"]}) == "reload"


def test_a_start_only_key_needs_a_restart() -> None:
    old = json.dumps({"insecure-registries": ["a:1"]})
    assert daemon.docker_daemon_action(old, {"insecure-registries": ["b:1"], "cgroup-parent": "/w1"}) == "restart"
    assert daemon.docker_daemon_action(json.dumps({"data-root": "/d"}), {}) == "restart"


def test_the_same_config_needs_nothing() -> None:
    config = {"cgroup-parent": "/w1", "insecure-registries": ["a:1"]}
    assert daemon.docker_daemon_action(json.dumps(config, indent=2, sort_keys=True), config) == "none"


@pytest.mark.parametrize("registry", ["10.0.0.5:5050", "registry.example.internal:443", "[fd00::5]:5050", "reg",
                                      "10.0.0.0/8"])
def test_registry_addresses_accepted(registry: str) -> None:
    assert daemon.docker_daemon_problems({}, [registry]) == []


@pytest.mark.parametrize(("registry", "message"), [
    ("http://10.0.0.5:5050", "neither host\\[:port\\] nor a CIDR"),
    ("10.0.0.5:5050/v2", "neither host\\[:port\\] nor a CIDR"),
    ("10.0.0.5:0", "no valid port"),
    ("10.0.0.5:70000", "no valid port"),
    ("reg istry:5000", "is not host\\[:port\\]"),
    ("10.0.0.5:5050\n", "is not host\\[:port\\]"),
])
def test_registry_addresses_refused(registry: str, message: str) -> None:
    problems = daemon.docker_daemon_problems({}, [registry])
    assert len(problems) == 1
    assert problems[0].startswith("docker_host_insecure_registries:")
    assert re.search(message, problems[0])


def test_options_refused_with_the_reason() -> None:
    problems = daemon.docker_daemon_problems({"hosts": ["tcp://0.0.0.0:2375"], "insecure-registries": ["a:1"],
                                              "Bad_Key": 1}, [])
    assert problems == [
        ("docker_host_daemon_options: 'hosts' is not accepted: the systemd unit passes -H already "
         "(dockerd refuses a setting given twice)."),
        "docker_host_daemon_options: 'insecure-registries' is not accepted: set docker_host_insecure_registries instead.",
        "docker_host_daemon_options: 'Bad_Key' is not a daemon.json key (lower case, dashes).",
    ]


def test_wrong_types_are_named() -> None:
    assert daemon.docker_daemon_problems(["cgroup-parent"], "a:1") == [
        "docker_host_daemon_options must be a dict of daemon.json keys, got ['cgroup-parent'].",
        "docker_host_insecure_registries must be a list, got 'a:1'.",
    ]


def test_the_changed_keys_are_named() -> None:
    old = json.dumps({"cgroup-parent": "/w1", "debug": False, "log-driver": "local"})
    config = {"cgroup-parent": "/w2", "debug": False, "insecure-registries": ["a:1"]}
    assert daemon.docker_daemon_changes(old, config) == ["cgroup-parent", "insecure-registries", "log-driver"]
