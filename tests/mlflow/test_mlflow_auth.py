"""MLflow's login as the mlflow role sets it up, against a real `mlflow server --app-name basic-auth`.

The server runs on a loopback port with a SQLite backend and SQLite auth store (the role uses
PostgreSQL; the auth app's REST API and permission checks are the same). Covered: the
accounts module (roles/mlflow/library/mlflow_auth_users.py) creates, probes and repairs
idempotently, check mode writes nothing; the grants the role gives make the training
account a creator-owner and the tools account a reader; the tools log in from a file.
The molecule `mlflow` scenario proves the same on the real stack.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import local_mlflow
import pytest
import requests
from role_code import load

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from mlops_tools.mlflow_api import MlflowApiError, MlflowClient, read_login
from mlops_tools.status import mlflow_status

users = load("mlflow/library/mlflow_auth_users.py")

ADMIN_PASSWORD = "admin-Passw0rd-for-tests"
TOOLS_GRANTS = [
    {"resource_type": "experiment", "resource_id": "*", "permission": "READ"},
    {"resource_type": "registered_model", "resource_id": "*", "permission": "READ"},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """A basic-auth MLflow server with the role's auth settings (NO_PERMISSIONS, admin bootstrapped)."""
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs Flask-WTF: pip install 'mlflow[auth]'")
    root = tmp_path_factory.mktemp("mlflow-auth")
    ini = root / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
    )
    (root / "admin").write_text(ADMIN_PASSWORD)
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key-0123456789", "MLFLOW_DISABLE_TELEMETRY": "true"}
    # The first API request loads the auth app's handlers (tens of seconds on a busy host).
    with local_mlflow.mlflow_server(sys.executable, root, f"sqlite:///{root / 'mlflow.db'}", env=env, timeout=240,
                                    extra_args=("--app-name", "basic-auth")) as url:
        requests.get(f"{url}/api/2.0/mlflow/users/current", auth=("admin", ADMIN_PASSWORD), timeout=300)
        yield {"url": url, "root": root, "admin_file": root / "admin"}


def accounts(server, tmp_path: Path, training_pw: str, tools_pw: str, tools_grants=None) -> dict:
    (tmp_path / "training").write_text(training_pw)
    (tmp_path / "tools").write_text(tools_pw + "\n")  # a trailing newline is not part of the password
    return {
        "url": server["url"], "admin_username": "admin", "admin_password_file": str(server["admin_file"]),
        "timeout": 60,
        "users": [
            {"username": "training", "password_file": str(tmp_path / "training"), "grants": []},
            {"username": "tools", "password_file": str(tmp_path / "tools"),
             "grants": TOOLS_GRANTS if tools_grants is None else tools_grants},
        ],
    }


def status(url: str, auth, method: str, path: str, **kwargs) -> int:
    return requests.request(method, url + path, auth=auth, timeout=60, **kwargs).status_code


@pytest.fixture(scope="module")
def provisioned(server, tmp_path_factory):
    """The accounts as the role leaves them: check mode first (writes nothing), then a real run."""
    params = accounts(server, tmp_path_factory.mktemp("secrets"), "training-Passw0rd-1", "tools-Passw0rd-1")
    changed, report = users.run(params, check_mode=True)
    assert changed and report["training"]["created"] and report["tools"]["granted"]
    assert status(server["url"], ("admin", ADMIN_PASSWORD), "GET", users.USERS_GET,
                  params={"username": "training"}) == 404, "check mode created a user"
    changed, report = users.run(params, check_mode=False)
    assert changed and report["training"]["created"] and report["tools"]["created"]
    assert report["tools"]["granted"] == ["READ on experiment *", "READ on registered_model *"]
    return params


def test_a_second_run_changes_nothing(server, provisioned):
    assert users.run(provisioned, check_mode=False) == (False, {
        "training": {"created": False, "password_reset": False, "granted": []},
        "tools": {"created": False, "password_reset": False, "granted": []},
    })


def test_the_password_file_is_the_truth(server, provisioned, tmp_path):
    params = accounts(server, tmp_path, "training-Passw0rd-2", "tools-Passw0rd-1")
    changed, report = users.run(params, check_mode=True)
    assert changed and report["training"]["password_reset"]
    assert status(server["url"], ("training", "training-Passw0rd-1"), "GET", users.USERS_CURRENT) == 200
    changed, report = users.run(params, check_mode=False)
    assert changed and report["training"]["password_reset"] and not report["tools"]["password_reset"]
    assert status(server["url"], ("training", "training-Passw0rd-2"), "GET", users.USERS_CURRENT) == 200
    assert status(server["url"], ("training", "training-Passw0rd-1"), "GET", users.USERS_CURRENT) == 401
    assert users.run(params, check_mode=False)[0] is False
    # Back to the fixture's password for the other tests.
    users.run(provisioned, check_mode=False)


def test_a_grant_held_with_another_permission_is_replaced_and_others_kept(server, provisioned, tmp_path):
    edit = [{"resource_type": "experiment", "resource_id": "*", "permission": "EDIT"}, TOOLS_GRANTS[1]]
    params = accounts(server, tmp_path, "training-Passw0rd-1", "tools-Passw0rd-1", edit)
    assert users.run(params, check_mode=False)[1]["tools"]["granted"] == ["EDIT on experiment *"]
    assert users.run(params, check_mode=False)[0] is False
    assert users.run(provisioned, check_mode=False)[1]["tools"]["granted"] == ["READ on experiment *"]


def test_plan_grants_keeps_what_it_was_not_asked_about():
    held = [{"resource_type": "experiment", "resource_pattern": "7", "permission": "MANAGE"},
            {"resource_type": "experiment", "resource_pattern": "*", "permission": "READ"}]
    wanted = [{"resource_type": "experiment", "resource_id": "*", "permission": "READ"},
              {"resource_type": "registered_model", "resource_id": "*", "permission": "READ"}]
    assert users.plan_grants(wanted, held) == ([wanted[1]], [])


def test_a_wrong_admin_password_fails_naming_the_request(server, provisioned, tmp_path):
    (tmp_path / "admin").write_text("not-the-admin-password")
    with pytest.raises(users.AuthError, match="users/current answered HTTP 401"):
        users.run({**provisioned, "admin_password_file": str(tmp_path / "admin")}, check_mode=True)


def test_anonymous_and_the_historic_default_are_refused_and_health_stays_open(server, provisioned):
    url = server["url"]
    assert status(url, None, "GET", "/api/2.0/mlflow/experiments/search", params={"max_results": 1}) == 401
    assert status(url, ("admin", "password1234"), "GET", "/api/2.0/mlflow/experiments/search",
                  params={"max_results": 1}) == 401
    assert status(url, None, "GET", "/health") == 200


def test_training_owns_what_it_creates_and_nothing_else(server, provisioned):
    url, admin, training = server["url"], ("admin", ADMIN_PASSWORD), ("training", "training-Passw0rd-1")
    tools = ("tools", "tools-Passw0rd-1")
    api = "/api/2.0/mlflow"
    admin_exp = requests.post(f"{url}{api}/experiments/create", json={"name": "owned-by-admin"}, auth=admin,
                              timeout=60).json()["experiment_id"]
    mine = requests.post(f"{url}{api}/experiments/create", json={"name": "owned-by-training"}, auth=training,
                         timeout=60)
    assert mine.status_code == 200
    mine_id = mine.json()["experiment_id"]
    run = requests.post(f"{url}{api}/runs/create", json={"experiment_id": mine_id}, auth=training, timeout=60)
    assert run.status_code == 200
    info = run.json()["run"]["info"]
    assert status(url, training, "POST", f"{api}/runs/log-metric",
                  json={"run_id": info["run_id"], "key": "acc", "value": 0.9, "timestamp": 0, "step": 0}) == 200
    assert status(url, training, "POST", f"{api}/registered-models/create", json={"name": "m-training"}) == 200
    assert status(url, training, "POST", f"{api}/model-versions/create",
                  json={"name": "m-training", "source": f"{info['artifact_uri']}/model", "run_id": info["run_id"]}) == 200
    assert status(url, training, "POST", f"{api}/registered-models/alias",
                  json={"name": "m-training", "alias": "champion", "version": "1"}) == 200
    # Not its own: refused. Users: refused.
    assert status(url, training, "POST", f"{api}/experiments/delete", json={"experiment_id": admin_exp}) == 403
    assert status(url, training, "GET", f"{api}/experiments/get", params={"experiment_id": admin_exp}) == 403
    assert status(url, training, "POST", users.USERS_CREATE,
                  json={"username": "intruder", "password": "intruder-Passw0rd"}) == 403
    # The tools account reads everything, deletes nothing it did not create.
    assert status(url, tools, "GET", f"{api}/experiments/get", params={"experiment_id": mine_id}) == 200
    assert status(url, tools, "GET", f"{api}/registered-models/alias",
                  params={"name": "m-training", "alias": "champion"}) == 200
    assert status(url, tools, "POST", f"{api}/experiments/delete", json={"experiment_id": mine_id}) == 403
    # Admin may do everything.
    assert status(url, admin, "POST", f"{api}/experiments/delete", json={"experiment_id": mine_id}) == 200


def test_the_tools_log_in_from_the_password_file(server, provisioned, tmp_path):
    password_file = Path(provisioned["users"][1]["password_file"])
    login = read_login("tools", password_file)
    assert login == ("tools", "tools-Passw0rd-1")
    assert read_login("tools", tmp_path / "missing") is None
    assert read_login("", password_file) is None
    assert MlflowClient(server["url"], timeout=60, auth=login).search_experiments(max_results=1) is not None
    with pytest.raises(MlflowApiError, match="--mlflow-password-file") as refused:
        MlflowClient(server["url"], timeout=60).search_experiments(max_results=1)
    assert refused.value.status == 401
    assert mlflow_status(server["url"], 60, "tools", str(password_file))["reachable"] is True
    anonymous = mlflow_status(server["url"], 60, "tools", str(tmp_path / "missing"))
    assert anonymous["reachable"] is False and "401" in anonymous["error"]


def test_the_credentials_file_the_worker_gets_is_what_mlflow_reads(tmp_path, monkeypatch):
    """The role writes the training credentials in the format of ~/.mlflow/credentials."""
    from mlflow.utils.credentials import read_mlflow_creds

    (tmp_path / ".mlflow").mkdir()
    (tmp_path / ".mlflow" / "credentials").write_text(
        "[mlflow]\nmlflow_tracking_username = training\nmlflow_tracking_password = abcDEF123456\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    creds = read_mlflow_creds()
    assert (creds.username, creds.password) == ("training", "abcDEF123456")
