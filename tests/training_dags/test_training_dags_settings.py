"""The training_dags role's settings: what settings.json.j2 renders from the role inputs, and
what the role's preflight refuses, run through the real Ansible (a throwaway playbook on
localhost that only renders and reads; no Docker)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "training_dags"
PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
DAGS_DIR = REPO / "files" / "dags"
if str(DAGS_DIR) not in sys.path:
    sys.path.insert(0, str(DAGS_DIR))

from mlops_training.settings import parse_settings


def run(work: Path, tasks: list[dict], extra: dict) -> subprocess.CompletedProcess[str]:
    if not PLAYBOOK.exists():
        pytest.skip("controller venv (.venv) missing")
    play = [{"name": "Settings", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}]
    (work / "play.yml").write_text(yaml.safe_dump(play))
    env_vars = {"ansible_python_interpreter": "{{ ansible_playbook_python }}", **extra}
    return subprocess.run([str(PLAYBOOK), "-i", "localhost,", str(work / "play.yml"), "-e", json.dumps(env_vars)],
                          cwd=REPO, capture_output=True, text=True, check=False,
                          env={"ANSIBLE_ROLES_PATH": str(REPO / "roles"), "PATH": "/usr/bin:/bin",
                               "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")})


def render(work: Path, **inputs: object) -> dict:
    out = work / "settings.json"
    # The template itself, with the role's defaults for what the test does not set.
    tasks = [{"name": "Render the settings", "ansible.builtin.template": {
        "src": str(ROLE / "templates" / "settings.json.j2"), "dest": str(out), "mode": "0644"}}]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values = {key: defaults[key] for key in ("training_dags_gates", "training_dags_retries",
                                             "training_dags_execution_timeout_minutes",
                                             "training_dags_hyperparameters", "training_dags_queues")}
    values["training_dags_pipelines"] = json.loads((DAGS_DIR / "mlops_training" / "pipelines.json").read_text())
    proc = run(work, tasks, {**values, **inputs})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_no_queue_by_default(tmp_path: Path) -> None:
    document = render(tmp_path)
    assert not any("queue" in pipeline for pipeline in document["pipelines"].values())
    assert all(cfg.queue is None for cfg in parse_settings(document).values())


def test_a_queue_per_pipeline_reaches_settings_json(tmp_path: Path) -> None:
    document = render(tmp_path, training_dags_queues={"tensorflow_cnn": "heavy", "pytorch_cnn": "heavy"})
    assert {key: p.get("queue") for key, p in document["pipelines"].items() if "queue" in p} == {
        "tensorflow_cnn": "heavy", "pytorch_cnn": "heavy"}
    parsed = parse_settings(document)
    assert (parsed["tensorflow_cnn"].queue, parsed["pytorch_cnn"].queue, parsed["xgboost"].queue) == (
        "heavy", "heavy", None)


def test_preflight_refuses_an_unknown_pipeline_or_a_bad_queue_name(tmp_path: Path) -> None:
    """Both refusals name the variable; the run stops in preflight (the role's own check)."""
    cases = {"unknown": {"catboost": "heavy"}, "bad_name": {"pytorch_cnn": "heavy,gpu"}}
    tasks = []
    for case, queues in cases.items():
        tasks.append({"name": f"Preflight with {case}", "block": [
            {"name": "Run the preflight", "ansible.builtin.include_role": {"name": "training_dags",
                                                                           "tasks_from": "preflight"},
             "vars": {"training_dags_queues": queues}},
            {"name": "Note it passed", "ansible.builtin.copy": {"content": "passed", "dest": str(tmp_path / case),
                                                                "mode": "0644"}},
        ], "rescue": [
            {"name": "Note the refusal", "ansible.builtin.copy": {
                "content": "{{ ansible_failed_result.msg }}", "dest": str(tmp_path / case), "mode": "0644"}},
        ]})
    proc = run(tmp_path, tasks, {"training_dags_source_dir": str(DAGS_DIR)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    unknown, bad = (tmp_path / "unknown").read_text(), (tmp_path / "bad_name").read_text()
    assert unknown.startswith("training_dags_queues names unknown pipeline(s) catboost; known: xgboost,"), unknown
    assert "pipelines.pytorch_cnn.queue must be a Celery queue name" in bad and "'heavy,gpu'" in bad, bad
    assert "training_dags_queues" in bad
