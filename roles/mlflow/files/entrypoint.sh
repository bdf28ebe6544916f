#!/bin/sh
# Entrypoint of the MLflow image (source: roles/mlflow/files/entrypoint.sh).
# `server ARGS`: build the backend store URI from the mounted password file (so the
# password is never on a command line, in the compose file or in `docker inspect`),
# own the artifact store, bring the database schema to this MLflow version (`mlflow db
# upgrade`: the server refuses an older schema, and a converge that changes mlflow_version
# starts this image on the old database; on a current schema it is a no-op), then run
# `mlflow server ARGS` as the unprivileged mlflow user.
# Anything else (clients, one-shot checks) runs as the mlflow user, unchanged.
set -eu

as_mlflow() { exec setpriv --reuid=mlflow --regid=mlflow --init-groups "$@"; }

if [ "${1:-}" != server ]; then
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
unset MLFLOW_DB_PASSWORD_FILE

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

as_mlflow mlflow server "$@"
