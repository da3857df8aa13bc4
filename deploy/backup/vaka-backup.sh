#!/bin/sh
# The nightly backup of Vaka's database, run inside the database container where pg_dump matches the server:
#   docker compose exec -T timescaledb vaka-backup            (docs/operations.md, "Backup and restore")
# Writes BACKUP_DIR/vaka-<date>.dump (pg_dump, custom format) and roles-<date>.sql (the roles, for a restore), then
# the metrics node-exporter's textfile collector serves to Prometheus (VakaBackupStale):
#   vaka_backup_last_success_timestamp_seconds, vaka_backup_size_bytes, vaka_backup_duration_seconds,
#   vaka_backup_last_run_failed (1 when this run failed: the success time then stays the old one)
# Connection: the usual PG* variables (default: the superuser over the container's socket); database VAKA_DB (vaka).
set -eu

dir=${BACKUP_DIR:-/backups}
metrics=${BACKUP_METRICS_DIR:-$dir/metrics}
db=${VAKA_DB:-vaka}
user=${PGUSER:-${POSTGRES_USER:-postgres}}
stamp=$(date -u +%F)
started=$(date +%s)
mkdir -p "$dir" "$metrics"

write_metrics() {
    # atomically (the collector must never read half a file): a temporary file in the same directory, renamed
    tmp=$(mktemp "$metrics/.vaka_backup.XXXXXX")
    {
        echo "# HELP vaka_backup_last_success_timestamp_seconds When the last backup of the database completed."
        echo "# TYPE vaka_backup_last_success_timestamp_seconds gauge"
        echo "vaka_backup_last_success_timestamp_seconds $1"
        echo "# HELP vaka_backup_size_bytes Size of the last successful database dump."
        echo "# TYPE vaka_backup_size_bytes gauge"
        echo "vaka_backup_size_bytes $2"
        echo "# HELP vaka_backup_duration_seconds How long the last backup run took."
        echo "# TYPE vaka_backup_duration_seconds gauge"
        echo "vaka_backup_duration_seconds $3"
        echo "# HELP vaka_backup_last_run_failed 1 when the last backup run failed."
        echo "# TYPE vaka_backup_last_run_failed gauge"
        echo "vaka_backup_last_run_failed $4"
    } > "$tmp"
    chmod 644 "$tmp"
    mv "$tmp" "$metrics/vaka_backup.prom"
}

previous() {
    # a value from the last metrics file, so a failed run keeps the last success's time and size
    awk -v name="$1" '$1 == name { print $2 }' "$metrics/vaka_backup.prom" 2>/dev/null || true
}

fail() {
    echo "vaka-backup: FAILED: $1" >&2
    rm -f "$dir/vaka-$stamp.dump.partial" "$dir/roles-$stamp.sql.partial"
    write_metrics "$(previous vaka_backup_last_success_timestamp_seconds | grep . || echo 0)" \
        "$(previous vaka_backup_size_bytes | grep . || echo 0)" "$(($(date +%s) - started))" 1
    exit 1
}

dump="$dir/vaka-$stamp.dump"
pg_dump -U "$user" -d "$db" -Fc -f "$dump.partial" 2>"$dir/vaka-$stamp.log" || fail "pg_dump (see $dir/vaka-$stamp.log)"
pg_dumpall -U "$user" --roles-only -f "$dir/roles-$stamp.sql.partial" || fail "pg_dumpall --roles-only"
# a dump that pg_restore cannot list is no backup
pg_restore --list "$dump.partial" > /dev/null || fail "pg_restore cannot read $dump.partial"
mv "$dump.partial" "$dump"
mv "$dir/roles-$stamp.sql.partial" "$dir/roles-$stamp.sql"
size=$(wc -c < "$dump" | tr -d ' ')
write_metrics "$(date +%s)" "$size" "$(($(date +%s) - started))" 0
echo "vaka-backup: $dump ($size bytes)"
