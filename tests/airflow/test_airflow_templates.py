"""Render the airflow role's templates with its defaults and check what they promise.

The rendering runs the real `ansible.builtin.template` action (same Jinja, filters and
includes as the role) through a throwaway playbook; no Docker is needed except for the
optional `docker compose config` check.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "airflow"
PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
CP_REF = "lakehouse-tick/airflow:aaaaaaaaaaaa"
WORKER_REF = "lakehouse-tick/airflow-worker:bbbbbbbbbbbb"
CELERY_CONFIG = (ROLE / "files" / "celery_worker_config.py").read_text()
AIRFLOW_SERVICES = ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker"]


def compose_cli() -> list[str] | None:
    """`docker compose`, or the venv's standalone Compose v2 (``config`` needs no engine)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 check=False).returncode == 0:
        return ["docker", "compose"]
    standalone = REPO / ".venv" / "bin" / "docker-compose"
    return [str(standalone)] if standalone.exists() else None


def compose_config(path: Path) -> dict:
    cli = compose_cli()
    if cli is None:
        pytest.skip("no docker compose")
    proc = subprocess.run([*cli, "-f", str(path), "config", "--format", "json"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def render(work: Path, overrides: dict, drop: tuple[str, ...] = ()) -> Path:
    """Render the role's templates into work/out with its defaults, the test's values and
    ``overrides``, without the test values named in ``drop``."""
    if not PLAYBOOK.exists():
        pytest.skip("controller venv (.venv) missing")
    (work / "templates").symlink_to(ROLE / "templates")
    out = work / "out"
    extra = {
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "airflow_project_dir": "/opt/lt-test", "airflow_secrets_dir": "/opt/lt-test/secrets",
        "__airflow_image_ref": CP_REF, "__airflow_worker_image_ref": WORKER_REF,
        "__airflow_db_image": "lakehouse-tick/postgres:cccccccccccc",
        "__airflow_redis_image": "lakehouse-tick/redis:dddddddddddd",
        "__airflow_celery_config": CELERY_CONFIG,
        "__airflow_worker_cpus": 2.0, "__airflow_host_cpus": 2, "__airflow_worker_memory_bytes": 8589934592,
        "airflow_worker_ml_requirements": ["xgboost-cpu==3.2.0", "torch==2.13.0+cpu", "tensorflow-cpu==2.21.0",
                                           "tabulate==0.9.0"],
        **overrides,
    }
    for name in drop:
        del extra[name]
    templates = {
        "airflow.yml.j2": "airflow.yml",
        "images/Dockerfile.airflow.j2": "Dockerfile.airflow",
        "images/Dockerfile.airflow-worker.j2": "Dockerfile.airflow-worker",
        "requirements-airflow.txt.j2": "requirements-airflow.txt",
        "requirements-control-plane.txt.j2": "requirements-control-plane.txt",
    }
    play = [{
        "name": "Render", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
        "tasks": [{"name": "Render the templates", "ansible.builtin.template": {"src": src, "dest": f"{out}/{dest}",
                                                                            "mode": "0644"},
                   "loop_control": {"label": src}, "loop": [0], "vars": {}}
                  for src, dest in templates.items()],
    }]
    out.mkdir()
    (work / "render.yml").write_text(yaml.safe_dump(play))
    proc = subprocess.run([str(PLAYBOOK), "-i", "localhost,", str(work / "render.yml"), "-e", json.dumps(extra)],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("airflow-render"), {"airflow_extra_env": EXTRA_ENV})


# An extra variable whose value holds '$' the way a password or a template string might.
EXTRA_ENV = {"MLOPS_TEST_LITERAL": "a$b ${HOME} $$c"}


def compose(rendered: Path) -> dict:
    return yaml.safe_load((rendered / "airflow.yml").read_text())


def test_compose_services_and_images(rendered: Path) -> None:
    doc = compose(rendered)
    assert set(doc["services"]) == {"airflow-db", "airflow-redis", *AIRFLOW_SERVICES}
    for name in AIRFLOW_SERVICES:
        expected = WORKER_REF if name == "airflow-worker" else CP_REF
        assert doc["services"][name]["image"] == expected, name


def test_every_airflow_service_shares_the_secret_commands(rendered: Path) -> None:
    doc = compose(rendered)
    for name in AIRFLOW_SERVICES:
        env = doc["services"][name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        # A *_CMD whose file is not mounted fails the moment Airflow reads that option.
        for key, value in env.items():
            if key.endswith("_CMD"):
                assert value.startswith("cat /run/secrets/"), (name, key)
                assert value.removeprefix("cat /run/secrets/") in doc["services"][name]["secrets"], (name, key)
    for name in AIRFLOW_SERVICES[1:]:  # the long-running ones share one JWT secret
        env = doc["services"][name]["environment"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET_CMD"] == "cat /run/secrets/airflow_jwt_secret", name
        assert "airflow_jwt_secret" in doc["services"][name]["secrets"]


def test_secrets_reach_only_the_services_that_need_them(rendered: Path) -> None:
    services = compose(rendered)["services"]
    holders = {secret: sorted(name for name in AIRFLOW_SERVICES if secret in services[name]["secrets"])
               for secret in ("airflow_admin_password", "airflow_sql_alchemy_conn", "airflow_fernet_key",
                              "airflow_celery_broker_url", "airflow_db_password")}
    assert holders["airflow_admin_password"] == ["airflow-init"]
    assert holders["airflow_db_password"] == []  # the DB owner's password: PostgreSQL alone
    assert "airflow-worker" not in holders["airflow_sql_alchemy_conn"]
    assert "airflow-worker" not in holders["airflow_fernet_key"]
    assert holders["airflow_celery_broker_url"] == ["airflow-scheduler", "airflow-worker"]
    # The worker runs third-party ML code: the broker, its result store, the JWT secret and
    # the key its log server checks, nothing else.
    worker = services["airflow-worker"]
    assert set(worker["secrets"]) == {"airflow_celery_broker_url", "airflow_celery_result_backend",
                                      "airflow_jwt_secret", "airflow_api_secret_key"}
    assert not {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD", "AIRFLOW__CORE__FERNET_KEY_CMD"} & set(worker["environment"])


def test_the_result_store_is_not_the_metadata_db_owner() -> None:
    """The worker's one database URL (Celery results) logs in as a role of its own."""
    files = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__airflow_secret_files"]
    urls = {entry["path"]: entry for entry in files if "template" in entry}
    results = urls["airflow_celery_result_backend"]
    assert "airflow_db_user" not in results["template"]
    assert results["sources"] == {"password": "airflow_celery_db_password"}
    assert results["template"].endswith("/{{ __airflow_celery_db }}")
    assert "airflow_db_user" in urls["airflow_sql_alchemy_conn"]["template"]
    assert urls["airflow_sql_alchemy_conn"]["sources"] == {"password": "airflow_db_password"}


def test_no_secret_value_in_the_fragment(rendered: Path) -> None:
    text = (rendered / "airflow.yml").read_text()
    for word in ("PASSWORD:", "SQL_ALCHEMY_CONN:", "BROKER_URL:", "FERNET_KEY:", "JWT_SECRET:", "redis://", "postgresql+", "postgresql://"):
        assert word not in text, word


def test_init_runs_once_before_the_others(rendered: Path) -> None:
    services = compose(rendered)["services"]
    assert services["airflow-init"]["restart"] == "no"
    for name in AIRFLOW_SERVICES[1:]:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert "healthcheck" in services[name], name


def test_services_are_stopped_around_a_recreated_database_or_redis(rendered: Path) -> None:
    """restart: true on the database and Redis: Compose stops and starts the services around
    their recreation, so no service loses its connection and gets restarted by the engine
    (which verify reports as a restarting container)."""
    services = compose(rendered)["services"]
    for name in AIRFLOW_SERVICES[1:]:
        for dependency in ("airflow-db", "airflow-redis"):
            assert services[name]["depends_on"][dependency] == {"condition": "service_healthy", "restart": True}, name


def test_health_probes_do_not_import_airflow(rendered: Path) -> None:
    """Every probe runs the mounted stdlib/psycopg2/celery script, never `airflow ...`."""
    services = compose(rendered)["services"]
    for name in AIRFLOW_SERVICES[1:]:
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python3", "/opt/mlops/healthcheck.py"], (name, test)
        # The directory, not the file: a file mount keeps the replaced file's old inode.
        assert "/opt/lt-test/airflow:/opt/mlops:ro" in services[name]["volumes"], name
    assert services["airflow-dag-processor"]["healthcheck"]["test"][3:] == ["job", "DagProcessorJob", "30"]
    assert services["airflow-triggerer"]["healthcheck"]["test"][3:] == ["job", "TriggererJob", "30"]
    assert services["airflow-worker"]["healthcheck"]["test"][3] == "celery"
    env = services["airflow-dag-processor"]["environment"]
    assert env["AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"] == "600"
    assert services["airflow-worker"]["environment"]["GIT_PYTHON_REFRESH"] == "quiet"
    # No telemetry thread in the tasks: it calls out and races the task over os.environ.
    assert services["airflow-worker"]["environment"]["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert services["airflow-worker"]["environment"]["AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT"] == "30"


def test_every_long_running_service_is_limited(rendered: Path) -> None:
    services = compose(rendered)["services"]
    for name, service in services.items():
        if name == "airflow-init":
            continue
        limits = service["deploy"]["resources"]["limits"]
        assert 0 < float(limits["cpus"]) <= 2.0, name
        assert limits["memory"], name
        assert service["security_opt"] == ["no-new-privileges:true"], name
    assert services["airflow-worker"]["cpu_shares"] == 512


def test_worker_drains_as_long_as_it_stops(rendered: Path) -> None:
    services = compose(rendered)["services"]
    assert services["airflow-worker"]["stop_grace_period"] == "600s"
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == "120"


def test_worker_limits_and_port(rendered: Path) -> None:
    services = compose(rendered)["services"]
    limits = services["airflow-worker"]["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) == 2.0
    assert int(limits["memory"]) == 8589934592
    assert services["airflow-apiserver"]["ports"] == ["127.0.0.1:8082:8080"]


def test_the_worker_alone_preloads_the_task_libraries(rendered: Path) -> None:
    """The worker reads Airflow's Celery settings through the mounted module, which imports the
    listed modules before the pool forks; a new module file recreates the worker (the label)."""
    services = compose(rendered)["services"]
    worker = services["airflow-worker"]
    env = worker["environment"]
    assert env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] == "mlops_celery_config.CELERY_CONFIG"
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["airflow_worker_preload_modules"]
    assert env["MLOPS_WORKER_PRELOAD"].split(",") == defaults
    assert "/opt/lt-test/airflow/celery_worker_config.py:/opt/airflow/config/mlops_celery_config.py:ro" in worker["volumes"]
    assert worker["labels"]["io.lakehouse-tick.celery-config-sha256"] == hashlib.sha256(CELERY_CONFIG.encode()).hexdigest()
    for name in AIRFLOW_SERVICES[:-1]:  # the scheduler keeps Airflow's own settings, no ML library
        assert "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS" not in services[name]["environment"], name
        assert "MLOPS_WORKER_PRELOAD" not in services[name]["environment"], name


def test_an_empty_preload_list_imports_nothing(tmp_path: Path) -> None:
    worker = compose(render(tmp_path, {"airflow_worker_preload_modules": []}))["services"]["airflow-worker"]
    assert worker["environment"]["MLOPS_WORKER_PRELOAD"] == ""


def test_requirements_pin_airflow_in_the_worker_install(rendered: Path) -> None:
    worker = (rendered / "requirements-airflow.txt").read_text().splitlines()
    control = (rendered / "requirements-control-plane.txt").read_text().splitlines()
    assert "apache-airflow[celery,postgres,redis]==3.3.2" in worker
    assert "apache-airflow[celery,postgres,redis]==3.3.2" in control
    assert "torch==2.13.0+cpu" in worker and "tabulate==0.9.0" in worker
    assert not any(line.startswith(("torch", "tensorflow", "xgboost")) for line in control)


@pytest.mark.parametrize("name", ["Dockerfile.airflow", "Dockerfile.airflow-worker"])
def test_dockerfiles(rendered: Path, name: str) -> None:
    text = (rendered / name).read_text()
    assert 'LABEL org.apache.airflow.version="3.3.2"' in text
    assert "--no-index" in text
    assert "USER 50000:0" in text
    # every instruction starts a line (an include that swallowed a newline would glue two)
    assert "*/COPY" not in text and "airflowCOPY" not in text
    assert text.count("\nFROM ") == 2


def pip_installs(text: str) -> list[str]:
    """Each `pip install` command of a Dockerfile's RUN instructions (continuations joined)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [part.strip() for line in joined.splitlines() if line.startswith("RUN ")
            for part in line[4:].split("&&") if " install " in part and "/pip " in part]


@pytest.mark.parametrize("name", ["Dockerfile.airflow", "Dockerfile.airflow-worker"])
def test_every_pip_install_takes_only_locked_wheels(rendered: Path, name: str) -> None:
    """Hash-locked images: pip reads the lock docker_host wrote beside the wheels, never the
    requirements, and refuses any wheel whose sha256 is not in it."""
    installs = pip_installs((rendered / name).read_text())
    assert installs
    for command in installs:
        assert "--no-index" in command and "--require-hashes" in command, command
        assert "requirements.txt" not in command and ".whl" not in command, command
    assert any(c.endswith("-r /wheels/requirements.lock") for c in installs)


def test_worker_layers_the_big_libraries_first(rendered: Path) -> None:
    text = (rendered / "Dockerfile.airflow-worker").read_text()
    assert "COPY requirements-layered.lock torch-*.whl tensorflow_cpu-*.whl /wheels-layered/" in text
    assert text.index("/wheels-layered/") < text.index("COPY . /wheels/")
    [layered, rest] = pip_installs(text)
    # The layer holds only the layered wheels and their lines of the lock: it stays cached
    # while those are byte-identical, and every wheel in it is hash-checked too.
    assert "--no-deps" in layered and "--find-links /wheels-layered" in layered
    assert layered.endswith("-r /wheels-layered/requirements-layered.lock")
    assert "--no-deps" not in rest and "--find-links /wheels " in rest


def test_worker_without_layered_packages_installs_everything_from_the_lock(tmp_path: Path) -> None:
    text = (render(tmp_path, {"airflow_worker_layered_packages": []}) / "Dockerfile.airflow-worker").read_text()
    assert "wheels-layered" not in text
    assert pip_installs(text) == [("/opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels "
                                  "--require-hashes -r /wheels/requirements.lock")]


def test_fragment_is_valid_compose(rendered: Path) -> None:
    assert set(compose_config(rendered / "airflow.yml")["services"]) == {"airflow-db", "airflow-redis",
                                                                        *AIRFLOW_SERVICES}


def test_extra_env_reaches_every_airflow_service_literally(rendered: Path) -> None:
    """A '$' is doubled in the file, so compose passes the value as written (no interpolation)."""
    services = compose(rendered)["services"]
    for name in AIRFLOW_SERVICES:
        assert services[name]["environment"]["MLOPS_TEST_LITERAL"] == "a$$b $${HOME} $$$$c", name
    # `config` writes a literal '$' back as '$$' (so its output loads again): the value
    # came through as written, nothing was interpolated (${HOME} would read /root).
    env = compose_config(rendered / "airflow.yml")["services"]["airflow-worker"]["environment"]
    assert env["MLOPS_TEST_LITERAL"] == EXTRA_ENV["MLOPS_TEST_LITERAL"].replace("$", "$$")


def test_reserved_env_keys_are_the_ones_the_fragment_sets(rendered: Path) -> None:
    """airflow_extra_env may not repeat a key the fragment sets (a key twice breaks the mapping);
    preflight refuses exactly the keys the template writes."""
    services = compose(rendered)["services"]
    written = set().union(*(services[name]["environment"] for name in AIRFLOW_SERVICES)) - set(EXTRA_ENV)
    reserved = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__airflow_env_keys"]
    assert written == set(reserved)


def test_git_python_refresh_reaches_every_process_that_runs_tasks(rendered: Path) -> None:
    """The worker runs task processes as its children (they inherit its environment); the
    others import MLflow too (dag-processor parsing, api-server serving logs)."""
    services = compose(rendered)["services"]
    for name in AIRFLOW_SERVICES:
        assert services[name]["environment"]["GIT_PYTHON_REFRESH"] == "quiet", name


def test_an_ipv6_bind_address_is_bracketed(tmp_path: Path) -> None:
    out = render(tmp_path, {"airflow_bind_address": "::1"})
    services = compose(out)["services"]
    assert services["airflow-apiserver"]["ports"] == ["[::1]:8082:8080"]
    [port] = compose_config(out / "airflow.yml")["services"]["airflow-apiserver"]["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("::1", "8082", 8080)


def test_worker_consumes_the_default_queue_by_default(rendered: Path) -> None:
    """Airflow's [operators] default_queue stays `default`: the worker names it explicitly."""
    services = compose(rendered)["services"]
    assert services["airflow-worker"]["command"] == ["airflow", "celery", "worker", "--queues", "default",
                                                      "--without-gossip", "--without-mingle"]
    assert not any("DEFAULT_QUEUE" in key for name in AIRFLOW_SERVICES for key in services[name]["environment"])


def test_worker_consumes_every_listed_queue(tmp_path: Path) -> None:
    out = render(tmp_path, {"airflow_worker_queues": ["default", "heavy", "gpu.v1"]})
    worker = compose_config(out / "airflow.yml")["services"]["airflow-worker"]
    assert worker["command"] == ["airflow", "celery", "worker", "--queues", "default,heavy,gpu.v1",
                                 "--without-gossip", "--without-mingle"]


def test_mlflow_login_reaches_only_the_worker_as_its_credentials_file(rendered: Path, tmp_path: Path) -> None:
    """Without a credentials file nothing is mounted; with one, the worker (only) reads it where
    MLflow's client looks (~/.mlflow/credentials of the airflow user), as a file secret."""
    assert "airflow_mlflow_credentials" not in compose(rendered).get("secrets", {})
    doc = compose(render(tmp_path, {"airflow_mlflow_credentials_file": "/opt/lt-test/secrets/mlflow_training_credentials"}))
    mount = {"source": "airflow_mlflow_credentials", "target": "/opt/airflow/.mlflow/credentials"}
    for name in AIRFLOW_SERVICES:
        secrets = doc["services"][name]["secrets"]
        assert (mount in secrets) == (name == "airflow-worker"), name
    assert doc["secrets"]["airflow_mlflow_credentials"] == {"file": "/opt/lt-test/secrets/airflow_mlflow_credentials"}
    assert "MLFLOW_TRACKING_PASSWORD" not in (tmp_path / "out" / "airflow.yml").read_text()


CLUSTER = {"airflow_cluster_address": "10.9.0.1",
           "airflow_worker_hosts": {"gpu-1": "10.9.0.21", "cpu-1": "10.9.0.11"}}


def test_one_host_publishes_nothing_for_workers(rendered: Path) -> None:
    services = compose(rendered)["services"]
    assert "ports" not in services["airflow-redis"]
    assert "ports" not in services["airflow-db"]
    assert services["airflow-apiserver"]["ports"] == ["127.0.0.1:8082:8080"]
    assert "extra_hosts" not in services["airflow-apiserver"]
    assert "hostname" not in services["airflow-worker"] and "ports" not in services["airflow-worker"]


def test_a_cluster_address_publishes_what_worker_hosts_reach(tmp_path: Path) -> None:
    """The control plane publishes the broker, the result store and the Execution API on the
    cluster address (besides the UI on its bind address), and resolves each worker host's name
    for its logs."""
    out = render(tmp_path, CLUSTER)
    services = compose_config(out / "airflow.yml")["services"]

    def published(name: str) -> list[tuple]:
        return sorted((p["host_ip"], p["published"], p["target"]) for p in services[name].get("ports", []))

    assert published("airflow-redis") == [("10.9.0.1", "6379", 6379)]
    assert published("airflow-db") == [("10.9.0.1", "5432", 5432)]
    assert published("airflow-apiserver") == [("10.9.0.1", "8082", 8080), ("127.0.0.1", "8082", 8080)]
    assert sorted(services["airflow-apiserver"]["extra_hosts"]) == ["cpu-1=10.9.0.11", "gpu-1=10.9.0.21"] or \
        sorted(services["airflow-apiserver"]["extra_hosts"]) == ["cpu-1:10.9.0.11", "gpu-1:10.9.0.21"]
    assert published("airflow-worker") == []  # the local worker's logs stay on the compose network


def test_a_worker_host_runs_the_worker_alone_against_the_cluster_address(tmp_path: Path) -> None:
    out = render(tmp_path, {**CLUSTER, "__airflow_remote_worker": True, "inventory_hostname": "gpu-1",
                            "airflow_mlflow_credentials_file": "/opt/lt-test/secrets/mlflow_training_credentials",
                            "airflow_mlflow_tracking_uri": "http://10.9.0.1:5000"},
                 # A worker host builds nothing: the control-plane image is unknown there.
                 drop=("__airflow_image_ref", "__airflow_db_image", "__airflow_redis_image", "__airflow_host_cpus"))
    doc = compose_config(out / "airflow.yml")
    assert set(doc["services"]) == {"airflow-worker"}
    worker = doc["services"]["airflow-worker"]
    assert worker["image"] == WORKER_REF
    assert worker["hostname"] == "gpu-1"  # the name its tasks record; the api-server maps it
    assert [(p["host_ip"], p["published"], p["target"]) for p in worker["ports"]] == [("10.9.0.21", "8793", 8793)]
    env = worker["environment"]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://10.9.0.1:8082/execution/"
    assert env["MLFLOW_TRACKING_URI"] == "http://10.9.0.1:5000"
    assert "depends_on" not in worker
    # Its own secrets and nothing more: no metadata DB URL, Fernet key, admin or DB password.
    assert set(doc["secrets"]) == {"airflow_celery_broker_url", "airflow_celery_result_backend", "airflow_jwt_secret",
                                   "airflow_api_secret_key", "airflow_mlflow_credentials"}
    assert set(doc["volumes"]) == {"airflow-logs"}
