"""Render the mlflow role's compose fragment with its defaults and check the published port.

The real `ansible.builtin.template` action renders it (same Jinja and variables as the
role); `docker compose config` then reads it back where a Compose v2 CLI is available.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "mlflow"
PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"


def render(work: Path, overrides: dict) -> Path:
    if not PLAYBOOK.exists():
        pytest.skip("controller venv (.venv) missing")
    (work / "templates").symlink_to(ROLE / "templates")
    out = work / "mlflow.yml"
    extra = {"ansible_python_interpreter": "{{ ansible_playbook_python }}",
             "mlflow_image_ref": "lakehouse-tick/mlflow:aaaaaaaaaaaa",
             "mlflow_db_image_ref": "lakehouse-tick/postgres:bbbbbbbbbbbb", **overrides}
    play = [{
        "name": "Render", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
        "tasks": [
            {"name": "Render the fragment", "ansible.builtin.template": {"src": "mlflow.yml.j2", "dest": str(out),
                                                                        "mode": "0644"}},
            {"name": "Write the host URI", "ansible.builtin.copy": {"content": "{{ __mlflow_host_uri }}",
                                                                   "dest": f"{work}/host_uri", "mode": "0644"}},
            {"name": "Render the auth ini", "ansible.builtin.template": {"src": "basic_auth.ini.j2",
                                                                        "dest": f"{work}/basic_auth.ini",
                                                                        "mode": "0644"}},
        ],
    }]
    (work / "render.yml").write_text(yaml.safe_dump(play))
    proc = subprocess.run([str(PLAYBOOK), "-i", "localhost,", str(work / "render.yml"), "-e", json.dumps(extra)],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def compose_cli() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 check=False).returncode == 0:
        return ["docker", "compose"]
    standalone = REPO / ".venv" / "bin" / "docker-compose"
    return [str(standalone)] if standalone.exists() else None


@pytest.mark.parametrize(
    ("address", "port_entry", "host_uri", "host_ip"),
    [
        ("127.0.0.1", "127.0.0.1:5000:5000", "http://127.0.0.1:5000", "127.0.0.1"),
        ("0.0.0.0", "0.0.0.0:5000:5000", "http://127.0.0.1:5000", "0.0.0.0"),
        ("::1", "[::1]:5000:5000", "http://[::1]:5000", "::1"),
        ("::", "[::]:5000:5000", "http://[::1]:5000", "::"),
    ],
)
def test_bind_address_reaches_the_port_and_the_host_uri(tmp_path: Path, address: str, port_entry: str,
                                                        host_uri: str, host_ip: str) -> None:
    fragment = render(tmp_path, {"mlflow_bind_address": address})
    assert yaml.safe_load(fragment.read_text())["services"]["mlflow"]["ports"] == [port_entry]
    assert (tmp_path / "host_uri").read_text() == host_uri
    cli = compose_cli()
    if cli is None:
        pytest.skip("no docker compose")
    proc = subprocess.run([*cli, "-f", str(fragment), "config", "--format", "json"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    [port] = json.loads(proc.stdout)["services"]["mlflow"]["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == (host_ip, "5000", 5000)


def test_the_server_runs_the_basic_auth_app_with_no_secret_in_its_configuration(tmp_path: Path) -> None:
    """The login's wiring: the auth app, its ini mounted read-only, secrets as files only."""
    fragment = yaml.safe_load(render(tmp_path, {}).read_text())
    mlflow = fragment["services"]["mlflow"]
    assert mlflow["command"][:3] == ["server", "--app-name", "basic-auth"]
    env = mlflow["environment"]
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == "/etc/mlflow/basic_auth.ini"
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD_FILE"] == "/run/secrets/mlflow_admin_password"
    assert not {"MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "PGPASSWORD"} & set(env)
    assert set(mlflow["secrets"]) == {"mlflow_db_password", "mlflow_admin_password", "mlflow_flask_secret_key"}
    assert "/opt/lakehouse-tick/config/mlflow:/etc/mlflow:ro" in mlflow["volumes"]
    assert fragment["secrets"]["mlflow_admin_password"] == {"file": "/opt/lakehouse-tick/secrets/mlflow_admin_password"}


@pytest.mark.parametrize("permission", ["NO_PERMISSIONS", "READ"])
def test_the_auth_ini_keeps_users_in_mlflows_database_without_its_password(tmp_path: Path, permission: str) -> None:
    import configparser

    render(tmp_path, {"mlflow_auth_default_permission": permission, "mlflow_db_user": "tracker"})
    text = (tmp_path / "basic_auth.ini").read_text()
    assert text.startswith("#")  # ansible_managed
    ini = configparser.ConfigParser()
    ini.read_string(text)
    auth = ini["mlflow"]
    # user@host, no ':password@': libpq takes PGPASSWORD from the entrypoint.
    assert auth["database_uri"] == "postgresql+psycopg2://tracker@mlflow-db:5432/mlflow"
    assert auth["default_permission"] == permission
    assert auth["admin_username"] == "admin"
    assert auth["auth_cache_ttl_seconds"] == "300"  # a login hashed once per worker and 5 minutes
    assert "admin_password" not in auth
    assert auth["authorization_function"] == "mlflow.server.auth:authenticate_request_basic_auth"
