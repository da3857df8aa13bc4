#!/bin/sh
# Run once by the timescale/timescaledb image when it creates the database (docker-entrypoint-initdb.d): the roles
# the stack uses, each with its password from a Docker secret.
#   vaka_owner    owns the database and everything in it; `vaka migrate` runs as it
#   vaka_hub      the hub at run time: reads and writes rows, owns nothing (the audit logs' limits come from the
#                 migrations, which revoke what the runtime role must not do)
#   vaka_readonly NOLOGIN; SELECT on Vaka's tables (granted by migration 130); Grafana's role is a member
#   vaka_grafana  Grafana's SQL data source
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
CREATE ROLE vaka_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE vaka_hub LOGIN PASSWORD :'hub_password';
CREATE ROLE vaka_readonly NOLOGIN;
CREATE ROLE vaka_grafana LOGIN PASSWORD :'grafana_password' IN ROLE vaka_readonly;
ALTER ROLE vaka_grafana SET default_transaction_read_only = on;
ALTER ROLE vaka_grafana SET statement_timeout = '30s';
ALTER DATABASE :"db" OWNER TO vaka_owner;
ALTER SCHEMA public OWNER TO vaka_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO vaka_hub, vaka_readonly;
-- rows in tables the owner creates from now on (every migration) are readable and writable by the hub
ALTER DEFAULT PRIVILEGES FOR ROLE vaka_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO vaka_hub;
ALTER DEFAULT PRIVILEGES FOR ROLE vaka_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO vaka_hub;
ALTER DEFAULT PRIVILEGES FOR ROLE vaka_owner IN SCHEMA public GRANT SELECT ON TABLES TO vaka_readonly;
SQL
echo "vaka roles created: vaka_owner, vaka_hub, vaka_readonly, vaka_grafana"
