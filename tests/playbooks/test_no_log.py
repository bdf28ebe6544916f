"""Lint: every task that carries a secret hides its output (``no_log: true``).

A task carries a secret when it sends an ``Authorization`` header, templates a variable
that holds a token or a password, registers or sets one, or generates one with the
``password`` lookup. Without ``no_log``, ``-v`` prints the result and ``-vvv`` the module
arguments (headers included) into CI logs. ``no_log`` is inherited from an enclosing block
or play; ``no_log: false`` on the task itself undoes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCANNED = [
    "site.yml",
    "playbooks/*.yml",
    "playbooks/tasks/*.yml",
    "roles/*/tasks/*.yml",
    "roles/*/handlers/*.yml",
    "molecule/*/*.yml",
    "molecule/*/tasks/*.yml",
]
# A variable's first name that says it holds a secret; a path, stat or directory *of* a
# secret is not one (…_password_file, …_secrets_dir).
SECRET_NAME = re.compile(r"(token|password|passwd|secret|credential|api_key)", re.IGNORECASE)
NOT_A_SECRET = re.compile(r"(_file|_files|_stat|_dir|_path|_mount)$")
# Lists of secret *names* (what files to mount or generate), not secret values.
SECRET_NAME_LISTS = {"__airflow_mounted_secrets", "__airflow_generated_secrets", "__airflow_derived_secrets"}
# Keys whose values are conditions Ansible evaluates but never prints.
CONDITIONS = {"when", "until", "changed_when", "failed_when", "that", "name", "no_log", "tags", "loop_control"}
BLOCK_KEYS = ("block", "rescue", "always")
PLAY_TASK_KEYS = ("pre_tasks", "tasks", "post_tasks", "handlers")
# The project's own modules that declare a parameter no_log: Ansible masks its value in every
# result, so passing a token there is safe without hiding the whole task.
MODULE_FILES = ["roles/*/library/*.py", "playbooks/library/*.py"]
JINJA = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
IDENT = re.compile(r"(?<![\w.'\"])([A-Za-z_]\w*)")


def masked_parameters() -> dict[str, set[str]]:
    """module name → its parameters declared ``no_log`` in its argument spec."""
    found: dict[str, set[str]] = {}
    for pattern in MODULE_FILES:
        for path in REPO.glob(pattern):
            params = re.findall(r"[\"'](\w+)[\"']\s*:\s*\{[^{}]*[\"']no_log[\"']\s*:\s*True", path.read_text())
            if params:
                found[path.stem] = set(params)
    return found


MASKED = masked_parameters()


def secret_variable(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) and not NOT_A_SECRET.search(name) and name not in SECRET_NAME_LISTS


def strings(value: object, skip: set[str] = frozenset()) -> Iterator[tuple[str, str]]:
    """(key, string) for every string under ``value``, keys in ``skip`` left out at the top."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in skip:
                continue
            if isinstance(item, str):
                yield str(key), item
            else:
                yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from (("", item),) if isinstance(item, str) else strings(item)


def keys(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys(item)


def secrets_in(task: dict) -> list[str]:
    """Why ``task`` carries a secret (empty: it does not). Blocks are walked, not judged."""
    reasons = []
    body = {key: value for key, value in task.items() if key not in BLOCK_KEYS}
    for module, params in MASKED.items():
        if isinstance(body.get(module), dict):
            body[module] = {key: value for key, value in body[module].items() if key not in params}
    if any(key.lower() == "authorization" for key in keys(body)):
        reasons.append("sends an Authorization header")
    for _, text in strings(body, CONDITIONS):
        if re.search(r"lookup\(\s*['\"](ansible\.builtin\.)?password['\"]", text):
            reasons.append("generates a password")
        for expression in JINJA.findall(text):
            for name in IDENT.findall(expression):
                if secret_variable(name):
                    reasons.append(f"templates {name}")
    register = task.get("register")
    if isinstance(register, str) and secret_variable(register):
        reasons.append(f"registers {register}")
    facts = task.get("ansible.builtin.set_fact") or task.get("set_fact")
    if isinstance(facts, dict):
        reasons += [f"sets {name}" for name in facts if secret_variable(str(name))]
    return sorted(set(reasons))


def walk(tasks: object, hidden: bool, where: str) -> Iterator[str]:
    """One finding per task that carries a secret and is not hidden."""
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, dict):
            continue
        own = task.get("no_log")
        task_hidden = (own is True) if own is not None else hidden
        if any(key in task for key in BLOCK_KEYS):
            for key in BLOCK_KEYS:
                yield from walk(task.get(key), task_hidden, where)
        reasons = secrets_in(task)
        if reasons and not task_hidden:
            yield f"{where}: {task.get('name', '<unnamed>')!r} {', '.join(reasons)} without no_log: true"


def findings(document: object, where: str) -> list[str]:
    """Task files are lists of tasks; playbooks are lists of plays."""
    if not isinstance(document, list):
        return []
    found = []
    for item in document:
        if isinstance(item, dict) and ("hosts" in item or "import_playbook" in item or "ansible.builtin.import_playbook" in item):
            for key in PLAY_TASK_KEYS:
                found += walk(item.get(key), item.get("no_log") is True, where)
        else:
            found += walk([item], False, where)
    return found


def scanned_files() -> list[Path]:
    files = {path for pattern in SCANNED for path in REPO.glob(pattern)}
    return sorted(path for path in files if path.name != "molecule.yml")


def test_the_masked_parameters_are_found() -> None:
    assert "airflow_token" in MASKED["training_dags_evidence"]


def test_the_scan_covers_the_task_files() -> None:
    names = {str(path.relative_to(REPO)) for path in scanned_files()}
    for expected in ("roles/airflow/tasks/api.yml", "roles/training_dags/tasks/run_one.yml",
                     "playbooks/site.yml", "molecule/rollback/verify.yml"):
        assert expected in names


def test_every_task_that_carries_a_secret_has_no_log() -> None:
    found = []
    for path in scanned_files():
        found += findings(yaml.safe_load(path.read_text()), str(path.relative_to(REPO)))
    assert found == [], "\n".join(found)


# The lint itself: what it must catch and what it must let pass.
CAUGHT = {
    "header": [{"name": "t", "ansible.builtin.uri": {"url": "u", "headers": {"Authorization": "Bearer {{ x }}"}}}],
    "token variable": [{"name": "t", "ansible.builtin.command": {"argv": ["tool", "{{ airflow_api_token }}"]}}],
    "password in a body": [{"name": "t", "ansible.builtin.uri": {"body": {"p": "{{ __rb_password.content | b64decode }}"}}}],
    "registered token": [{"name": "t", "ansible.builtin.uri": {"url": "u"}, "register": "__x_token"}],
    "set_fact of a token": [{"name": "t", "ansible.builtin.set_fact": {"airflow_api_token": "{{ r.json.t }}"}}],
    "generated password": [{"name": "t", "ansible.builtin.copy": {
        "content": "{{ lookup('ansible.builtin.password', '/dev/null', length=32) }}", "dest": "/x"}}],
    "inside a block": [{"name": "b", "block": [{"name": "t", "ansible.builtin.uri": {
        "headers": {"Authorization": "Bearer {{ t }}"}}}]}],
    "inside a rescue": [{"name": "b", "block": [], "rescue": [{"name": "t", "ansible.builtin.debug": {
        "msg": "{{ airflow_api_token }}"}}]}],
    "no_log false undoes the block's": [{"name": "b", "no_log": True, "block": [{"name": "t", "no_log": False,
                                         "ansible.builtin.uri": {"headers": {"Authorization": "Bearer {{ t }}"}}}]}],
    "in a play": [{"hosts": "all", "tasks": [{"name": "t", "ansible.builtin.uri": {
        "headers": {"Authorization": "Bearer {{ t }}"}}}]}],
}
PASSED = {
    "a token for a parameter the module masks": [{"name": "t", "training_dags_evidence": {
        "airflow_token": "{{ airflow_api_token }}", "airflow_url": "{{ airflow_api_url }}"}}],
    "hidden": [{"name": "t", "no_log": True, "ansible.builtin.uri": {"headers": {"Authorization": "Bearer {{ t }}"}}}],
    "hidden by its block": [{"name": "b", "no_log": True, "block": [{"name": "t", "ansible.builtin.uri": {
        "headers": {"Authorization": "Bearer {{ t }}"}}}]}],
    "hidden by its play": [{"hosts": "all", "no_log": True, "tasks": [{"name": "t", "ansible.builtin.set_fact": {
        "airflow_api_token": "x"}}]}],
    "a path to a secret": [{"name": "t", "ansible.builtin.stat": {"path": "{{ __mlflow_db_password_file }}"},
                            "register": "__mlflow_db_password_stat"}],
    "a secrets dir": [{"name": "t", "ansible.builtin.file": {"path": "{{ airflow_secrets_dir }}", "state": "directory"}}],
    "a condition on a token's result": [{"name": "t", "ansible.builtin.assert": {"that": "__airflow_token is succeeded"}}],
}


@pytest.mark.parametrize("case", sorted(CAUGHT))
def test_the_lint_catches(case: str) -> None:
    assert findings(CAUGHT[case], "x.yml"), case


@pytest.mark.parametrize("case", sorted(PASSED))
def test_the_lint_lets_pass(case: str) -> None:
    assert findings(PASSED[case], "x.yml") == [], case
