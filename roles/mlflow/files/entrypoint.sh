#!/bin/sh
# Entrypoint of the MLflow image (source: roles/mlflow/files/entrypoint.sh).
# `server ARGS`: build the backend store URI from the mounted password file (so the
# password is never on a command line, in the compose file or in `docker inspect`),
# own the artifact store, bring the database schema to this MLflow version (`mlflow db
# upgrade`: the server refuses an older schema, and a converge that changes mlflow_version
# starts this image on the old database; on a current schema it is a no-op), then run
# `mlflow server ARGS` as the unprivileged mlflow user.
# With basic auth (MLFLOW_AUTH_CONFIG_PATH set): the auth store's database URI in the
# mounted ini carries no password (libpq takes PGPASSWORD from this process's environment),
# the Flask secret key comes from its secret file, and the admin password reaches MLflow
# only while the admin user does not exist yet (its first start).
# Anything else (clients, one-shot checks) runs as the mlflow user; a client given
# MLFLOW_TRACKING_CREDENTIALS_FILE (a root-only ini as in ~/.mlflow/credentials) gets its
# username and password in its environment, never in `docker inspect`.
set -eu

as_mlflow() { exec setpriv --reuid=mlflow --regid=mlflow --init-groups "$@"; }
read_secret() { python -c 'import sys; print(open(sys.argv[1], encoding="utf-8").read().rstrip("\r\n"))' "$1"; }

if [ "${1:-}" != server ]; then
    if [ -n "${MLFLOW_TRACKING_CREDENTIALS_FILE:-}" ]; then
        eval "$(python -c '
import configparser, os, shlex
c = configparser.ConfigParser(interpolation=None)
c.read(os.environ["MLFLOW_TRACKING_CREDENTIALS_FILE"], encoding="utf-8")
for key in ("mlflow_tracking_username", "mlflow_tracking_password"):
    print("export %s=%s" % (key.upper(), shlex.quote(c["mlflow"][key])))
')"
        unset MLFLOW_TRACKING_CREDENTIALS_FILE
    fi
    as_mlflow "$@"
fi
shift

: "${MLFLOW_DB_HOST:?set MLFLOW_DB_HOST}"
: "${MLFLOW_DB_NAME:?set MLFLOW_DB_NAME}"
: "${MLFLOW_DB_USER:?set MLFLOW_DB_USER}"
: "${MLFLOW_DB_PASSWORD_FILE:?set MLFLOW_DB_PASSWORD_FILE (a file holding the password)}"
[ -s "$MLFLOW_DB_PASSWORD_FILE" ] || { echo "mlflow-entrypoint: $MLFLOW_DB_PASSWORD_FILE is empty or missing" >&2; exit 1; }

# The secret file is root-only (0600): read it here, before dropping privileges.
MLFLOW_BACKEND_STORE_URI=$(python -c '
import os
from urllib.parse import quote
e = os.environ
with open(e["MLFLOW_DB_PASSWORD_FILE"], encoding="utf-8") as f:
    password = f.read().rstrip("\r\n")
print("postgresql+psycopg2://%s:%s@%s:%s/%s" % (
    quote(e["MLFLOW_DB_USER"], safe=""), quote(password, safe=""),
    e["MLFLOW_DB_HOST"], e.get("MLFLOW_DB_PORT", "5432"), quote(e["MLFLOW_DB_NAME"], safe="")))
')
export MLFLOW_BACKEND_STORE_URI

artifacts=${MLFLOW_ARTIFACTS_DESTINATION:-/mlflow/artifacts}
mkdir -p "$artifacts"
chown mlflow:mlflow "$artifacts"

# Not exec'd: the server starts only after the upgrade succeeded (set -e stops here
# otherwise). Through python -c so the URI (with the password) is on no command line.
setpriv --reuid=mlflow --regid=mlflow --init-groups python -c '
import os
from mlflow.cli import cli
cli(["db", "upgrade", os.environ["MLFLOW_BACKEND_STORE_URI"]], prog_name="mlflow")
'

if [ -n "${MLFLOW_AUTH_CONFIG_PATH:-}" ]; then
    : "${MLFLOW_FLASK_SECRET_KEY_FILE:?set MLFLOW_FLASK_SECRET_KEY_FILE (basic auth signs its CSRF tokens with it)}"
    : "${MLFLOW_AUTH_ADMIN_PASSWORD_FILE:?set MLFLOW_AUTH_ADMIN_PASSWORD_FILE (the admin password for the first start)}"
    PGPASSWORD=$(read_secret "$MLFLOW_DB_PASSWORD_FILE")
    MLFLOW_FLASK_SERVER_SECRET_KEY=$(read_secret "$MLFLOW_FLASK_SECRET_KEY_FILE")
    export PGPASSWORD MLFLOW_FLASK_SERVER_SECRET_KEY
    # Brings the auth tables (alembic_version_auth) to this version and asks whether the
    # admin exists; only when it does not is the password handed to the server.
    admin=$(setpriv --reuid=mlflow --regid=mlflow --init-groups python -c '
from mlflow.server.auth.config import read_auth_config
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
config = read_auth_config()
store = SqlAlchemyStore()
store.init_db(config.database_uri)
print("present" if store.has_user(config.admin_username, use_primary=True) else "absent")
')
    case $admin in
        *absent)
            MLFLOW_AUTH_ADMIN_PASSWORD=$(read_secret "$MLFLOW_AUTH_ADMIN_PASSWORD_FILE")
            export MLFLOW_AUTH_ADMIN_PASSWORD
            echo "mlflow-entrypoint: first start of basic auth: the server creates its admin user" >&2 ;;
    esac
    unset MLFLOW_AUTH_ADMIN_PASSWORD_FILE MLFLOW_FLASK_SECRET_KEY_FILE
fi
unset MLFLOW_DB_PASSWORD_FILE

as_mlflow mlflow server "$@"
