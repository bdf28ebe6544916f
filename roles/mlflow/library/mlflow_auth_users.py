#!/usr/bin/python
"""Ensure MLflow basic-auth accounts and their grants, idempotently, over MLflow's REST API.

The passwords never pass through Ansible: the module reads them from files on the target
(the role's 0600 secrets), so no task argument or result carries one. Each account is
probed before anything is written (exists? password right? grant present?), so a second
run changes nothing; check mode reports what would change and writes nothing.
"""

DOCUMENTATION = r"""
module: mlflow_auth_users
short_description: Ensure MLflow basic-auth users, their passwords and their permission grants
description:
  - Logs in as the admin (password read from C(admin_password_file)), then for each entry in
    C(users) creates the user when missing, resets the password when the one in its file no
    longer logs in, and adds the grants it lacks (C(POST /api/3.0/mlflow/users/permissions/grant)).
    A grant held with another permission is revoked and granted again with the one asked for.
  - Grants the server made itself (C(MANAGE) on what a user created) are left alone.
  - Supports check mode. Fails, naming the URL, when the server does not answer as expected.
options:
  url:
    description: MLflow base URL as seen from the target (the published port).
    type: str
    required: true
  admin_username:
    description: The admin account (bootstrapped by the server on its first start).
    type: str
    required: true
  admin_password_file:
    description: File on the target holding the admin password.
    type: path
    required: true
  users:
    description:
      - Accounts to ensure; each C(username), C(password_file) and C(grants), a list of
        C(resource_type), C(resource_id) (C(*) for every resource of the type) and C(permission).
    type: list
    elements: dict
    required: true
  timeout:
    description: Seconds each HTTP request may take.
    type: int
    default: 30
author: lakehouse-tick MLOps
"""

RETURN = r"""
users:
  description: Per username, what was (or would be) done.
  returned: always
  type: dict
  sample: {"training": {"created": true, "password_reset": false, "granted": []}}
"""

import base64
import json
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

USERS_GET = "/api/2.0/mlflow/users/get"
USERS_CREATE = "/api/2.0/mlflow/users/create"
USERS_CURRENT = "/api/2.0/mlflow/users/current"
USERS_UPDATE_PASSWORD = "/api/2.0/mlflow/users/update-password"
PERMISSIONS_LIST = "/api/3.0/mlflow/users/permissions/list"
PERMISSIONS_GRANT = "/api/3.0/mlflow/users/permissions/grant"
PERMISSIONS_REVOKE = "/api/3.0/mlflow/users/permissions/revoke"


class AuthError(Exception):
    """The server did not answer as expected; the message names the request."""


def read_secret(path):
    with open(path, encoding="utf-8") as handle:
        value = handle.read().rstrip("\r\n")
    if not value:
        raise AuthError(f"{path} is empty")
    return value


def basic(username, password):
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class Client:
    """Minimal JSON client: returns (status, body) and raises only when the server is unreachable."""

    def __init__(self, url, timeout):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def call(self, method, path, auth, query=None, body=None):
        url = self.url + path + ("?" + urlencode(query) if query else "")
        headers = {"Authorization": auth, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            response = open_url(url, method=method, data=data, headers=headers, timeout=self.timeout,
                                follow_redirects="none")
            status, raw = response.getcode(), response.read()
        except HTTPError as err:
            status, raw = err.code, err.read()
        except (URLError, OSError) as err:
            raise AuthError(f"{method} {url}: {err}") from err
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw.decode("utf-8", "replace")[:300]}
        return status, parsed

    def expect(self, method, path, auth, query=None, body=None, ok=(200,)):
        status, parsed = self.call(method, path, auth, query, body)
        if status not in ok:
            raise AuthError(f"{method} {path} answered HTTP {status}: {json.dumps(parsed)[:300]}")
        return status, parsed


def grant_key(grant):
    return (grant["resource_type"], str(grant["resource_id"]))


def plan_grants(wanted, held):
    """(to_grant, to_replace) from the grants asked for and the rows the server lists.

    ``held`` rows come from ``permissions/list`` (resource_type, resource_pattern, permission);
    a grant held with another permission is replaced, grants not asked for are kept.
    """
    current = {(row["resource_type"], row["resource_pattern"]): row["permission"] for row in held}
    to_grant, to_replace = [], []
    for grant in wanted:
        key = grant_key(grant)
        if key not in current:
            to_grant.append(grant)
        elif current[key] != grant["permission"]:
            to_replace.append(grant)
    return to_grant, to_replace


def ensure_user(client, admin_auth, user, check_mode):
    name = user["username"]
    password = read_secret(user["password_file"])
    done = {"created": False, "password_reset": False, "granted": []}

    status, _ = client.expect("GET", USERS_GET, admin_auth, {"username": name}, ok=(200, 404))
    if status == 404:
        done["created"] = True
        if not check_mode:
            client.expect("POST", USERS_CREATE, admin_auth, body={"username": name, "password": password})
    else:
        # The file is the source of truth: a password that no longer logs in is reset.
        status, _ = client.expect("GET", USERS_CURRENT, basic(name, password), ok=(200, 401))
        if status == 401:
            done["password_reset"] = True
            if not check_mode:
                client.expect("PATCH", USERS_UPDATE_PASSWORD, admin_auth,
                              body={"username": name, "password": password})

    held = []
    if not done["created"]:
        _, listed = client.expect("GET", PERMISSIONS_LIST, admin_auth, {"username": name})
        held = listed.get("permissions", [])
    to_grant, to_replace = plan_grants(user.get("grants") or [], held)
    for grant in to_replace + to_grant:
        done["granted"].append(f"{grant['permission']} on {grant['resource_type']} {grant['resource_id']}")
        if check_mode:
            continue
        body = {"username": name, "resource_type": grant["resource_type"], "resource_id": str(grant["resource_id"])}
        if grant in to_replace:
            client.expect("POST", PERMISSIONS_REVOKE, admin_auth, body=body)
        client.expect("POST", PERMISSIONS_GRANT, admin_auth, body={**body, "permission": grant["permission"]})
    return done


def run(params, check_mode):
    client = Client(params["url"], params["timeout"])
    admin_auth = basic(params["admin_username"], read_secret(params["admin_password_file"]))
    _, current = client.expect("GET", USERS_CURRENT, admin_auth)
    if not current.get("user", {}).get("is_admin"):
        raise AuthError(f"{params['admin_username']} logged in but is not an admin")
    report = {user["username"]: ensure_user(client, admin_auth, user, check_mode) for user in params["users"]}
    changed = any(r["created"] or r["password_reset"] or r["granted"] for r in report.values())
    return changed, report


GRANT_SPEC = {
    "resource_type": {"type": "str", "required": True},
    "resource_id": {"type": "str", "required": True},
    "permission": {"type": "str", "required": True,
                   "choices": ["READ", "USE", "EDIT", "MANAGE", "DENY", "NO_PERMISSIONS"]},
}
USER_SPEC = {
    "username": {"type": "str", "required": True},
    "password_file": {"type": "path", "required": True, "no_log": False},
    "grants": {"type": "list", "elements": "dict", "default": [], "options": GRANT_SPEC},
}


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "admin_username": {"type": "str", "required": True},
            "admin_password_file": {"type": "path", "required": True, "no_log": False},
            "users": {"type": "list", "elements": "dict", "required": True, "options": USER_SPEC},
            "timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    try:
        changed, report = run(module.params, module.check_mode)
    except (AuthError, OSError) as err:
        module.fail_json(msg=str(err))
    module.exit_json(changed=changed, users=report)


if __name__ == "__main__":
    main()
