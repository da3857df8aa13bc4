#!/bin/sh
# The periodic test restore: the newest dump in BACKUP_DIR restored into a scratch database next to the real one,
# the way docs/operations.md restores (timescaledb_pre_restore / post_restore when the dump has TimescaleDB),
# checked, and dropped. Run inside the database container, weekly:
#   docker compose exec -T timescaledb vaka-restore-test
# Metrics for node-exporter's textfile collector (VakaBackupRestoreTestFailing):
#   vaka_backup_restore_test_last_success_timestamp_seconds, vaka_backup_restore_test_last_run_failed,
#   vaka_backup_restore_test_events (events in the restored copy), vaka_backup_restore_test_duration_seconds
# The roles must exist (they do on the server the dump came from); objects are restored as VAKA_RESTORE_ROLE
# (vaka_owner). Connection: PG* variables, as vaka-backup.
set -eu

dir=${BACKUP_DIR:-/backups}
metrics=${BACKUP_METRICS_DIR:-$dir/metrics}
user=${PGUSER:-${POSTGRES_USER:-postgres}}
scratch=${VAKA_RESTORE_TEST_DB:-vaka_restore_test}
started=$(date +%s)
mkdir -p "$metrics"

write_metrics() {
    tmp=$(mktemp "$metrics/.vaka_restore_test.XXXXXX")
    {
        echo "# HELP vaka_backup_restore_test_last_success_timestamp_seconds When a backup was last restored and checked."
        echo "# TYPE vaka_backup_restore_test_last_success_timestamp_seconds gauge"
        echo "vaka_backup_restore_test_last_success_timestamp_seconds $1"
        echo "# HELP vaka_backup_restore_test_events Events in the last successfully restored copy."
        echo "# TYPE vaka_backup_restore_test_events gauge"
        echo "vaka_backup_restore_test_events $2"
        echo "# HELP vaka_backup_restore_test_duration_seconds How long the last test restore took."
        echo "# TYPE vaka_backup_restore_test_duration_seconds gauge"
        echo "vaka_backup_restore_test_duration_seconds $3"
        echo "# HELP vaka_backup_restore_test_last_run_failed 1 when the last test restore failed."
        echo "# TYPE vaka_backup_restore_test_last_run_failed gauge"
        echo "vaka_backup_restore_test_last_run_failed $4"
    } > "$tmp"
    chmod 644 "$tmp"
    mv "$tmp" "$metrics/vaka_restore_test.prom"
}

previous() {
    awk -v name="$1" '$1 == name { print $2 }' "$metrics/vaka_restore_test.prom" 2>/dev/null || true
}

sql() { psql -X -v ON_ERROR_STOP=1 -q -U "$user" "$@"; }

cleanup() { sql -d postgres -c "DROP DATABASE IF EXISTS \"$scratch\" WITH (FORCE)" > /dev/null 2>&1 || true; }

fail() {
    echo "vaka-restore-test: FAILED: $1" >&2
    cleanup
    write_metrics "$(previous vaka_backup_restore_test_last_success_timestamp_seconds | grep . || echo 0)" \
        "$(previous vaka_backup_restore_test_events | grep . || echo 0)" "$(($(date +%s) - started))" 1
    exit 1
}

# the newest complete dump (vaka-YYYY-MM-DD.dump sorts by date)
dump=$(ls "$dir"/vaka-*.dump 2>/dev/null | sort | tail -n 1)
[ -n "$dump" ] || fail "no dump in $dir"
cleanup
sql -d postgres -c "CREATE DATABASE \"$scratch\"" || fail "cannot create $scratch"
timescale=false
if pg_restore --list "$dump" | grep -q ' EXTENSION - timescaledb'; then timescale=true; fi
if [ "$timescale" = true ]; then
    sql -d "$scratch" -c 'CREATE EXTENSION IF NOT EXISTS timescaledb' -c 'SELECT timescaledb_pre_restore()' \
        > /dev/null || fail "timescaledb_pre_restore"
fi
# as the restore in docs/operations.md: objects owned by the owner role, no ownership from the dump
pg_restore -U "$user" -d "$scratch" --no-owner --role="${VAKA_RESTORE_ROLE:-vaka_owner}" --exit-on-error "$dump" 2> "$dir/restore-test.log" \
    || fail "pg_restore (see $dir/restore-test.log)"
if [ "$timescale" = true ]; then
    sql -d "$scratch" -c 'SELECT timescaledb_post_restore()' > /dev/null || fail "timescaledb_post_restore"
fi
migrations=$(sql -d "$scratch" -tAc 'SELECT count(*) FROM schema_migrations') || fail "no schema_migrations"
[ "$migrations" -gt 0 ] || fail "schema_migrations is empty"
events=$(sql -d "$scratch" -tAc 'SELECT count(*) FROM events') || fail "no events table"
cleanup
write_metrics "$(date +%s)" "$events" "$(($(date +%s) - started))" 0
echo "vaka-restore-test: $dump restored and checked ($migrations migrations, $events events)"
