#!/bin/sh
# Writes the config with the password read from a file (never on a command line), then
# runs redis as its own user. A Celery broker needs no persistence.
set -eu

: "${REDIS_PASSWORD_FILE:?set REDIS_PASSWORD_FILE (a file holding the password)}"
[ -s "$REDIS_PASSWORD_FILE" ] || { echo "redis-entrypoint: $REDIS_PASSWORD_FILE is empty or missing" >&2; exit 1; }

umask 077
{
    echo "bind * -::*"
    echo "protected-mode no"
    echo "port 6379"
    echo "dir /data"
    echo "save \"\""
    echo "appendonly no"
    printf 'requirepass "%s"\n' "$(cat "$REDIS_PASSWORD_FILE")"
} > /etc/redis/lakehouse-tick.conf
chown redis:redis /etc/redis/lakehouse-tick.conf

exec setpriv --reuid=redis --regid=redis --init-groups "$@"
