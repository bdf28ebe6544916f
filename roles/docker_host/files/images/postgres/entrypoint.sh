#!/bin/sh
# First start: initialise the cluster with the given user, password (from a file, so it
# never shows in `docker inspect`) and database. Later starts: just run the server.
set -eu

: "${POSTGRES_USER:?set POSTGRES_USER}"
: "${POSTGRES_DB:?set POSTGRES_DB}"
: "${POSTGRES_PASSWORD_FILE:?set POSTGRES_PASSWORD_FILE (a file holding the password)}"
[ -s "$POSTGRES_PASSWORD_FILE" ] || { echo "pg-entrypoint: $POSTGRES_PASSWORD_FILE is empty or missing" >&2; exit 1; }

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 0700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    cat "$POSTGRES_PASSWORD_FILE" > "$pwfile"
    chown postgres "$pwfile"
    as_postgres initdb --username="$POSTGRES_USER" --pwfile="$pwfile" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    # Single-user mode creates the database without opening a socket to anyone.
    echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" \
        | as_postgres postgres --single -D "$PGDATA" -j postgres >/dev/null
    echo "pg-entrypoint: initialised $PGDATA with database $POSTGRES_DB"
fi

if [ "$1" = postgres ]; then
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
fi
exec "$@"
