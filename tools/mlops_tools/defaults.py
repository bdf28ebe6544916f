"""Default endpoints and paths of the platform (every one is also a CLI option).

They mirror ``inventory/group_vars/all/main.yml`` (project dir, compose project,
bind address) and the role defaults (ports 5000 and 8082). Environment
variables override the built-in values so the same defaults reach the CLIs,
the e2e tests and ``make`` targets.
"""

from __future__ import annotations

import os

PROJECT_DIR = os.environ.get("MLOPS_PROJECT_DIR", "/opt/lakehouse-tick")
COMPOSE_PROJECT = os.environ.get("MLOPS_COMPOSE_PROJECT", "lakehouse-tick")
COMPOSE_FILE = os.environ.get("MLOPS_COMPOSE_FILE", f"{PROJECT_DIR}/docker-compose-mlops.yml")
REPORTS_DIR = os.environ.get("MLOPS_REPORTS_DIR", f"{PROJECT_DIR}/reports")
SECRETS_DIR = os.environ.get("MLOPS_SECRETS_DIR", f"{PROJECT_DIR}/secrets")

MLFLOW_URL = os.environ.get("MLOPS_MLFLOW_URL", "http://127.0.0.1:5000")
AIRFLOW_URL = os.environ.get("MLOPS_AIRFLOW_URL", "http://127.0.0.1:8082")
AIRFLOW_USER = os.environ.get("MLOPS_AIRFLOW_USER", "admin")
# The airflow role writes the generated admin password here (0600). The file may hold
# the bare password or Airflow's simple-auth-manager JSON ({"admin": "..."}).
AIRFLOW_PASSWORD_FILE = os.environ.get(
    "MLOPS_AIRFLOW_PASSWORD_FILE", f"{SECRETS_DIR}/airflow_admin_password"
)
# MLflow login: the mlflow role's tools account; its password file (0600) is generated
# once into the secrets dir. The password is read from the file, never from a command line.
MLFLOW_USER = os.environ.get("MLOPS_MLFLOW_USER", "tools")
MLFLOW_PASSWORD_FILE = os.environ.get("MLOPS_MLFLOW_PASSWORD_FILE", f"{SECRETS_DIR}/mlflow_tools_password")
DOCKER_ROOT = os.environ.get("MLOPS_DOCKER_ROOT", "")  # empty: ask `docker info`

# Services of the compose project (`airflow-init` is a one-shot: exited 0 is its healthy state).
SERVICES: tuple[str, ...] = (
    "mlflow", "mlflow-db",
    "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
    "airflow-worker", "airflow-db", "airflow-redis", "airflow-init",
)
ONE_SHOT_SERVICES: frozenset[str] = frozenset({"airflow-init"})
