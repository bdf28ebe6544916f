"""Render the mlflow role's Dockerfile with its defaults: the server image installs only the
wheels of its hash lock (docker_host writes requirements.lock into the wheelhouse, which is
the build context). The real `ansible.builtin.template` action renders it, as the role does.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "mlflow"
PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"


@pytest.fixture(scope="module")
def dockerfile(tmp_path_factory: pytest.TempPathFactory) -> str:
    if not PLAYBOOK.exists():
        pytest.skip("controller venv (.venv) missing")
    work = tmp_path_factory.mktemp("mlflow-dockerfile")
    (work / "templates").symlink_to(ROLE / "templates")
    (work / "files").symlink_to(ROLE / "files")  # the entrypoint embedded by lookup('file')
    play = [{
        "name": "Render", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
        "tasks": [{"name": "Render the Dockerfile",
                   "ansible.builtin.template": {"src": "Dockerfile.j2", "dest": f"{work}/Dockerfile", "mode": "0644"}}],
    }]
    (work / "render.yml").write_text(yaml.safe_dump(play))
    extra = {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    proc = subprocess.run([str(PLAYBOOK), "-i", "localhost,", str(work / "render.yml"), "-e", json.dumps(extra)],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return (work / "Dockerfile").read_text()


def test_the_server_installs_only_the_locked_wheels(dockerfile: str) -> None:
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    installs = [part.strip() for line in joined.splitlines() if line.startswith("RUN ")
                for part in line[4:].split("&&") if "pip install" in part]
    assert installs == [("/opt/mlflow/bin/pip install --no-cache-dir --no-index --find-links /wheels "
                        "--require-hashes -r /wheels/requirements.lock")]
    assert "COPY . /wheels" in dockerfile
    assert dockerfile.count("\nFROM ") == 2 and "FROM debian:bookworm-slim AS build" in dockerfile
    assert "/opt/mlflow/bin/pip check" in dockerfile
