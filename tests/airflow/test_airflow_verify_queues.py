"""The airflow role's queue wiring outside the probe: verify's check of the Celery round trip
(run through the real Ansible on a recorded probe answer, no Docker) and the resume step."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "airflow"
PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
CHECK = "Check the worker answered through every queue it serves"
HOSTS_CHECK = "Check every worker host's worker answered, consuming its own queues"
# The failure message, with each failed item's own message first (a loop's msg says only that one failed).
FAILURE = ("{{ (ansible_failed_result.results | default([]) | selectattr('failed', 'defined') | selectattr('failed')"
           " | map(attribute='msg') | list + [ansible_failed_result.msg]) | join(' | ') }}")


def probe_answer(consumes: dict, answers: dict) -> dict:
    """What `healthcheck.py roundtrip` prints, as the exec module registers it."""
    line = json.dumps({"workers": sorted(consumes), "consumes": consumes, "answers": answers,
                       "seconds": dict.fromkeys(answers, 0.4), "answer": "pong"})
    return {"rc": 0, "stdout": line, "stdout_lines": [line], "stderr": ""}


def run_check(tmp_path: Path, cases: dict[str, tuple[list[str], dict]], check: str = CHECK,
              worker_hosts: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Run verify.yml's ``check`` task once per case; ``passed`` or the failure message for each.
    ``worker_hosts``: inventory hosts of group airflow_workers → their airflow_worker_queues."""
    if not PLAYBOOK.exists():
        pytest.skip("controller venv (.venv) missing")
    [task] = [t for t in yaml.safe_load((ROLE / "tasks" / "verify.yml").read_text()) if t["name"] == check]
    tasks = []
    hosts = worker_hosts or {}
    for case, (queues, registered) in cases.items():
        note = {"dest": str(tmp_path / case), "mode": "0644"}
        tasks.append({"name": case, "vars": {"airflow_worker_queues": queues, "__airflow_celery": registered,
                                             "airflow_worker_hosts": dict.fromkeys(hosts, "10.0.0.2")},
                      "block": [task, {"name": "Note it passed", "ansible.builtin.copy": {**note, "content": "passed"}}],
                      "rescue": [{"name": "Note the failure",
                                  "ansible.builtin.copy": {**note, "content": FAILURE}}]})
    play = [{"name": "Verify queues", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars_files": [str(ROLE / "vars" / "main.yml")], "tasks": tasks}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, allow_unicode=True))
    inventory = {"all": {"hosts": {"localhost": {},
                                   **{name: {"airflow_worker_queues": served} for name, served in hosts.items()}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    proc = subprocess.run([str(PLAYBOOK), "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"),
                           "-e", json.dumps({"ansible_python_interpreter": "{{ ansible_playbook_python }}"})],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {case: (tmp_path / case).read_text() for case in cases}


def test_verify_wants_every_served_queue_answered_and_consumed(tmp_path: Path) -> None:
    both = {"default": "pong", "heavy": "pong"}
    found = run_check(tmp_path, {
        "all": (["default", "heavy"], probe_answer({"celery@w": ["default", "heavy"]}, both)),
        "one_default": (["default"], probe_answer({"celery@w": ["default"]}, {"default": "pong"})),
        # a probe from before this change (one queue) must not pass for two
        "missing_answer": (["default", "heavy"], probe_answer({"celery@w": ["default", "heavy"]}, {"default": "pong"})),
        # another worker answered heavy, but no worker reports consuming it
        "not_consumed": (["default", "heavy"], probe_answer({"celery@w": ["default"]}, both)),
    })
    assert found["all"] == "passed" and found["one_default"] == "passed"
    for case in ("missing_answer", "not_consumed"):
        assert found[case].startswith("Celery round trip failed: the workers consume"), found[case]
        assert "the queues served are ['default', 'heavy']" in found[case]


def test_verify_wants_the_worker_hosts_queues_too(tmp_path: Path) -> None:
    """With worker hosts, the round trip covers their queues as well (one list, each once)."""
    hosts = {"w1": ["default", "light"], "w2": ["default", "heavy"]}
    three = {"default": "pong", "heavy": "pong", "light": "pong"}
    consumes = {"celery@cp": ["default"], "celery@w1": ["default", "light"], "celery@w2": ["default", "heavy"]}
    found = run_check(tmp_path, {
        "all": (["default"], probe_answer(consumes, three)),
        # the control plane's own queue alone is not enough once hosts serve more
        "light_unanswered": (["default"], probe_answer(consumes, {"default": "pong", "heavy": "pong"})),
    }, worker_hosts=hosts)
    assert found["all"] == "passed"
    assert "the queues served are ['default', 'heavy', 'light']" in found["light_unanswered"]


def test_verify_wants_every_worker_host_answering_with_its_own_queues(tmp_path: Path) -> None:
    hosts = {"w1": ["default", "light"], "w2": ["default", "heavy"]}
    three = {"default": "pong", "heavy": "pong", "light": "pong"}
    found = run_check(tmp_path, {
        "both": (["default"], probe_answer({"celery@cp": ["default"], "celery@w1": ["default", "light"],
                                            "celery@w2": ["default", "heavy"]}, three)),
        # w2 did not answer the ping: its name is missing from the report
        "w2_silent": (["default"], probe_answer({"celery@cp": ["default"], "celery@w1": ["default", "light"]}, three)),
        # w1 started with other queues than its inventory names
        "w1_wrong": (["default"], probe_answer({"celery@cp": ["default"], "celery@w1": ["default"],
                                                "celery@w2": ["default", "heavy"]}, three)),
    }, check=HOSTS_CHECK, worker_hosts=hosts)
    assert found["both"] == "passed"
    assert "Worker host w2: celery@w2 consumes nothing (no answer)" in found["w2_silent"]
    assert "Worker host w1: celery@w1 consumes ['default'], its airflow_worker_queues is ['default', 'light']" \
        in found["w1_wrong"]


def test_resume_adds_back_the_served_queues() -> None:
    """The drained worker consumes airflow_worker_queues again (resume.yml → healthcheck.py resume)."""
    [step] = [t for t in yaml.safe_load((ROLE / "tasks" / "resume.yml").read_text())
              if "community.docker.docker_container_exec" in t]
    assert step["community.docker.docker_container_exec"]["argv"][2:] == [
        "resume", "{{ airflow_worker_queues | join(',') }}"]
