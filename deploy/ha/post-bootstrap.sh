#!/bin/sh
# Patroni's post_bootstrap for the high-availability profile (deploy/ha/patroni.yml): run once, on the node that
# initialised the cluster, with its new primary up. It makes what the single-node stack's first start makes: the
# database, then deploy/timescaledb/vaka-init.sh (the extension and the roles, passwords from secrets). Patroni passes
# a connection URL as $1; psql goes over the local socket instead (trusted in pg_hba), as vaka-init.sh does.
set -eu
db=${POSTGRES_DB:-vaka}
user=${POSTGRES_USER:-postgres}
exists=$(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$user" --dbname postgres -tA \
    -c "SELECT 1 FROM pg_database WHERE datname = '$db'")
if [ "$exists" != "1" ]; then
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$user" --dbname postgres -c "CREATE DATABASE \"$db\""
fi
exec sh "${VAKA_INIT_SCRIPT:-/usr/local/share/vaka/vaka-init.sh}"
