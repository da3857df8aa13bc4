#!/bin/sh
# Vaka's part of the database's first start. docker-compose.yml mounts this one file beside the timescale/timescaledb
# image's own init scripts, as /docker-entrypoint-initdb.d/100-vaka-init.sh, so the image's run first:
# 000_install_timescaledb.sh (the extension in the database, telemetry off) and 001_timescaledb_tune.sh (memory and
# workers for TS_TUNE_*). The image's entrypoint runs it once, when it creates the database, as the superuser over
# the temporary server's socket (POSTGRES_USER, POSTGRES_DB set).
#
# 1. The timescaledb extension, explicitly (a no-op after the image's script): with VAKA_STORAGE=timescaledb (the
#    default) a server without TimescaleDB preloaded fails here, loudly, instead of giving the hub a database whose
#    events table would be a plain one. VAKA_STORAGE=native skips it (plain PostgreSQL, and then db.storage=auto).
# 2. The roles the stack uses, each with its password from a Docker secret:
#   vaka_owner    owns the database and everything in it; `vaka migrate` runs as it
#   vaka_hub      the hub at run time: reads and writes rows, owns nothing; on the audit logs INSERT only
#   vaka_readonly NOLOGIN; SELECT on the tables and columns dashboards need; Grafana's role is a member
#   vaka_grafana  Grafana's SQL data source
#   vaka_monitor  postgres_exporter: member of pg_monitor (statistics), no table of Vaka's
# Their privileges on Vaka's tables are granted by every `vaka migrate` (db.runtime_role, db.readonly_role;
# hub/store/roles.py), so tables added by later versions are covered. The extension is created by the superuser, so
# the owner role needs no superuser right to use it.
set -eu

secret() { head -n 1 "$1" | tr -d '\r\n'; }

owner_password=$(secret "${VAKA_OWNER_PASSWORD_FILE:-/run/secrets/db_owner_password}")
hub_password=$(secret "${VAKA_HUB_PASSWORD_FILE:-/run/secrets/db_hub_password}")
grafana_password=$(secret "${VAKA_GRAFANA_PASSWORD_FILE:-/run/secrets/db_grafana_password}")
monitor_password=$(secret "${VAKA_MONITOR_PASSWORD_FILE:-/run/secrets/db_monitor_password}")
db=${POSTGRES_DB:-vaka}
storage=${VAKA_STORAGE:-timescaledb}

run_sql() {
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "$db" "$@"
}

case "$storage" in
timescaledb)
    run_sql <<'SQL'
CREATE EXTENSION IF NOT EXISTS timescaledb;
SQL
    echo "vaka: timescaledb $(run_sql -tAc "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'") in $db"
    ;;
native) echo "vaka: VAKA_STORAGE=native: no timescaledb extension (events on native partitions)" ;;
*)
    echo "vaka: VAKA_STORAGE must be timescaledb or native, not '$storage'" >&2
    exit 1
    ;;
esac

run_sql -v db="$db" -v owner_password="$owner_password" -v hub_password="$hub_password" \
    -v grafana_password="$grafana_password" -v monitor_password="$monitor_password" <<'SQL'
CREATE ROLE vaka_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'owner_password';
CREATE ROLE vaka_hub LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'hub_password';
CREATE ROLE vaka_readonly NOLOGIN;
CREATE ROLE vaka_grafana LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'grafana_password' IN ROLE vaka_readonly;
ALTER ROLE vaka_grafana SET default_transaction_read_only = on;
ALTER ROLE vaka_grafana SET statement_timeout = '30s';
CREATE ROLE vaka_monitor LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'monitor_password' IN ROLE pg_monitor;
ALTER ROLE vaka_monitor SET default_transaction_read_only = on;
ALTER DATABASE :"db" OWNER TO vaka_owner;
ALTER SCHEMA public OWNER TO vaka_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
echo "vaka roles created: vaka_owner, vaka_hub, vaka_readonly, vaka_grafana, vaka_monitor"
