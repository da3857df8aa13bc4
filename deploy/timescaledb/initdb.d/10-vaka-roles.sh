#!/bin/sh
# Run once by the timescale/timescaledb image when it creates the database (docker-entrypoint-initdb.d): the roles
# the stack uses, each with its password from a Docker secret.
#   vaka_owner    owns the database and everything in it; `vaka migrate` runs as it
#   vaka_hub      the hub at run time: reads and writes rows, owns nothing; on the audit logs INSERT only
#   vaka_readonly NOLOGIN; SELECT on the tables and columns dashboards need; Grafana's role is a member
#   vaka_grafana  Grafana's SQL data source
# Their privileges on Vaka's tables are granted by every `vaka migrate` (db.runtime_role, db.readonly_role;
# hub/store/roles.py), so tables added by later versions are covered.
# The image has already created the timescaledb extension in this database (as the superuser), so the owner role
# needs no superuser right to use it.
set -eu

secret() { head -n 1 "$1" | tr -d '\r\n'; }

owner_password=$(secret "${VAKA_OWNER_PASSWORD_FILE:-/run/secrets/db_owner_password}")
hub_password=$(secret "${VAKA_HUB_PASSWORD_FILE:-/run/secrets/db_hub_password}")
grafana_password=$(secret "${VAKA_GRAFANA_PASSWORD_FILE:-/run/secrets/db_grafana_password}")
db=${POSTGRES_DB:-vaka}

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "$db" \
    -v db="$db" -v owner_password="$owner_password" -v hub_password="$hub_password" \
    -v grafana_password="$grafana_password" <<'SQL'
CREATE ROLE vaka_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'owner_password';
CREATE ROLE vaka_hub LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'hub_password';
CREATE ROLE vaka_readonly NOLOGIN;
CREATE ROLE vaka_grafana LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'grafana_password' IN ROLE vaka_readonly;
ALTER ROLE vaka_grafana SET default_transaction_read_only = on;
ALTER ROLE vaka_grafana SET statement_timeout = '30s';
ALTER DATABASE :"db" OWNER TO vaka_owner;
ALTER SCHEMA public OWNER TO vaka_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
echo "vaka roles created: vaka_owner, vaka_hub, vaka_readonly, vaka_grafana"
