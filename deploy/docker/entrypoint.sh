#!/bin/sh
# The hub container's entrypoint: migrations as the owner role, then `vaka serve` as the least-privilege runtime role.
# Passwords come from files (Docker secrets under /run/secrets/), never from the image or the compose file; the DSNs
# in the environment carry no password (asyncpg takes it from PGPASSWORD).
#   VAKA_DB__DSN                 runtime DSN without password (the hub's own setting)
#   VAKA_DB_PASSWORD_FILE        the runtime role's password
#   VAKA_OWNER_DSN               owner DSN without password, for `vaka migrate`
#   VAKA_OWNER_PASSWORD_FILE     the owner role's password
#   VAKA_MIGRATE_AT_START        true (default) or false: run `vaka migrate` before `vaka serve`
set -eu

secret() {
    # the first line of a secret file, without its line end
    if [ ! -r "$1" ]; then
        echo "vaka-entrypoint: cannot read secret file $1; check the secrets of the hub service" >&2
        exit 2
    fi
    head -n 1 "$1" | tr -d '\r\n'
}

if [ "$#" -eq 0 ]; then set -- serve; fi

if [ "$1" = "serve" ] && [ "${VAKA_MIGRATE_AT_START:-true}" = "true" ]; then
    owner_dsn=${VAKA_OWNER_DSN:-${VAKA_DB__DSN:-}}
    owner_password=""
    if [ -n "${VAKA_OWNER_PASSWORD_FILE:-}" ]; then owner_password=$(secret "$VAKA_OWNER_PASSWORD_FILE"); fi
    echo "vaka-entrypoint: migrating as the owner role" >&2
    # the alarm path never waits for the database: if migrating fails the hub still serves (events go to the spool)
    # and the next container start migrates again
    if ! PGPASSWORD=$owner_password VAKA_DB__DSN=$owner_dsn vaka migrate --wait-s "${VAKA_MIGRATE_WAIT_S:-120}"; then
        echo "vaka-entrypoint: migration failed; serving anyway (events are spooled until the database is migrated)" >&2
    fi
fi

if [ -n "${VAKA_DB_PASSWORD_FILE:-}" ]; then
    PGPASSWORD=$(secret "$VAKA_DB_PASSWORD_FILE")
    export PGPASSWORD
fi
unset VAKA_OWNER_DSN VAKA_OWNER_PASSWORD_FILE VAKA_DB_PASSWORD_FILE
exec vaka "$@"
