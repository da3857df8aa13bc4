"""Generate the Vaka dashboards with grafana-foundation-sdk into dashboards/json/ (`python -m dashboards.generate`).

The JSON is committed and provisioned into Grafana (deploy/grafana/provisioning/dashboards/vaka.yml); a test
regenerates it and fails when the committed files differ, and runs every panel's query against a real database and
a real Prometheus. Data sources are referred to by the uids provisioned in deploy/grafana/provisioning/datasources.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

from dashboards import sql

OUT = Path(__file__).parent / "json"
PROM = DataSourceRef(type_val="prometheus", uid="vaka-prometheus")
DB = DataSourceRef(type_val="grafana-postgresql-datasource", uid="vaka-postgres")
RATE = "$__rate_interval"


class SqlTarget(cogvariants.Dataquery):
    """A raw SQL query for Grafana's PostgreSQL data source (the SDK has no builder for it)."""

    def __init__(self, ref_id: str, raw_sql: str, fmt: str) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql.strip()
        self.fmt = fmt

    def to_json(self) -> dict[str, object]:
        """The target as Grafana stores it."""
        return {
            "datasource": {"type": DB.type_val, "uid": DB.uid},
            "editorMode": "code",
            "format": self.fmt,
            "rawQuery": True,
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }


class Sql(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder for SqlTarget: `Sql(sql.OUTCOMES, "table")`."""

    def __init__(self, raw_sql: str, fmt: str = "time_series", ref_id: str = "A") -> None:
        self._target = SqlTarget(ref_id, raw_sql, fmt)

    def build(self) -> cogvariants.Dataquery:
        return self._target


def promql(expr: str, legend: str = "", ref_id: str = "A", *, instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref_id)
    if legend:
        query = query.legend_format(legend)
    return query.instant() if instant else query.range()


def graph(title: str, description: str, unit: str = "short", *, span: int = 12) -> timeseries.Panel:
    return timeseries.Panel().title(title).description(description).unit(unit).height(8).span(span)


def number(title: str, description: str, unit: str = "short", *, span: int = 4) -> stat.Panel:
    return stat.Panel().title(title).description(description).unit(unit).height(4).span(span)


def listing(title: str, description: str, *, span: int = 12) -> table.Panel:
    return table.Panel().title(title).description(description).height(8).span(span)


def site_variable() -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable("site")
        .label("Site")
        .datasource(DB)
        .query(sql.SITES)
        .multi(True)
        .include_all(True)
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
    )


def base(uid: str, title: str, description: str, time_from: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["vaka"])
        .timezone("browser")
        .time(time_from, "now")
        .refresh("1m")
        .readonly()
    )


def alarm_path() -> dashboard.Dashboard:
    """The on-call overview: do alarms reach people right now? Every alert's runbook names one of its panels."""
    d = base(
        "vaka-alarm-path",
        "Vaka · alarm path",
        "Do alarms reach people right now? Device to broker to hub to staff page, and what it stands on"
        " (each alert's runbook in docs/operations.md names its panel here)",
        "now-6h",
    )
    d = d.with_variable(site_variable())
    d = d.with_row(dashboard.Row("Is the path alive?"))
    for title, description, expr in (
        ("Hub scraped", "1 while Prometheus can scrape the hub (VakaHubDown)", 'min(up{job="vaka-hub"})'),
        (
            "Engine loop",
            "Seconds since the rule engine's loop last ran (VakaHubStalled past 60 s)",
            "time() - max(vaka_hub_heartbeat_timestamp_seconds)",
        ),
        ("Broker connected", "1 while every hub connection to the broker is up (VakaBrokerUnreachable)",
         "min(vaka_mqtt_connected)"),
        ("Database up", "1 while the hub's database answers; 0: events go to the spool (VakaDatabaseDown)",
         "min(vaka_database_up)"),
        ("Canary failing", "1 while the hub's own test event does not make the round trip (VakaCanaryFailing)",
         "max(vaka_canary_failing)"),
        ("Supervision blind", "1 while device silence cannot be judged: broker away or just back"
         " (VakaSupervisionBlind)", "max(vaka_supervision_blind)"),
    ):  # fmt: skip
        unit = "s" if title == "Engine loop" else "short"
        d = d.with_panel(number(title, description, unit).datasource(PROM).with_target(promql(expr, instant=True)))
    d = d.with_row(dashboard.Row("Alarms reach people"))
    d = d.with_panel(
        graph(
            "Alarms raised, accepted, nobody reached",
            "Per hour: alarms raised, accepted by staff, and those whose escalation found nobody on duty"
            " (VakaAlarmReachedNobody)",
            "short",
            span=8,
        )
        .datasource(PROM)
        .with_target(promql("sum(increase(vaka_alarms_raised_total[1h]))", "raised"))
        .with_target(promql('sum(increase(vaka_alarm_transitions_total{state="accepted"}[1h]))', "accepted", "B"))
        .with_target(promql("sum(increase(vaka_alarms_nobody_reached_total[1h]))", "nobody reached", "C"))
    )
    d = d.with_panel(
        graph(
            "Time to accept",
            "Raised to accepted over the last hour (p50, p90), and the oldest open alarm nobody accepted"
            " (VakaAlarmNotAccepted past 5 min for care)",
            "s",
            span=8,
        )
        .datasource(PROM)
        .with_target(
            promql("histogram_quantile(0.5, sum by (le) (increase(vaka_alarm_accept_seconds_bucket[1h])))", "p50")
        )
        .with_target(
            promql("histogram_quantile(0.9, sum by (le) (increase(vaka_alarm_accept_seconds_bucket[1h])))", "p90", "B")
        )
        .with_target(
            promql("max by (category) (vaka_alarm_oldest_unaccepted_seconds)", "oldest unaccepted {{category}}", "C")
        )
    )
    d = d.with_panel(
        graph(
            "Staff pages connected",
            "Staff phone pages holding a live connection to the hub: 0 at night means nobody hears an alarm ring",
            "short",
            span=8,
        )
        .datasource(PROM)
        .with_target(promql("sum(vaka_websocket_clients)", "pages"))
    )
    d = d.with_panel(
        graph(
            "Notifications per channel",
            "Per hour and channel: confirmed by the staff page (delivered), handed to the push/webhook/SMS service"
            " (sent), failed",
            "short",
            span=12,
        )
        .datasource(PROM)
        .with_target(
            promql("sum by (channel) (increase(vaka_notifications_delivered_total[1h]))", "{{channel}} delivered")
        )
        .with_target(promql("sum by (channel) (increase(vaka_notifications_sent_total[1h]))", "{{channel}} sent", "B"))
        .with_target(
            promql("sum by (channel) (increase(vaka_notifications_failed_total[1h]))", "{{channel}} failed", "C")
        )
    )
    d = d.with_panel(
        graph(
            "Canary round trip",
            "The hub's test events per path (p50, p99): events, publish to the rule engine; telemetry, publish to"
            " stored and acknowledged; and seconds since the staler path last made it (VakaCanaryFailing)",
            "s",
            span=12,
        )
        .datasource(PROM)
        .with_target(
            promql(
                "histogram_quantile(0.5, sum by (le, path) (rate(vaka_canary_round_trip_seconds_bucket[5m])))",
                "{{path}} p50",
            )
        )
        .with_target(
            promql(
                "histogram_quantile(0.99, sum by (le, path) (rate(vaka_canary_round_trip_seconds_bucket[5m])))",
                "{{path}} p99",
                "B",
            )
        )
        .with_target(promql("time() - min(vaka_canary_last_success_timestamp_seconds)", "since last success", "C"))
    )
    d = d.with_row(dashboard.Row("Supervision per site"))
    d = d.with_panel(
        listing(
            "Supervision per site",
            "In the range: supervision-lost alarms (the hub blind to the broker past reliability.blind_alarm_after_s),"
            " still blind at the end, canary failures (VakaSupervisionBlind, VakaCanaryFailing)",
        )
        .datasource(DB)
        .with_target(Sql(sql.SUPERVISION_BY_SITE, "table"))
    )
    d = d.with_panel(
        graph(
            "Silent devices per site",
            "Share of a site's devices with an open silence alarm (VakaDevicesSilentEnMasse past 10 % and 5 devices)",
            "percentunit",
        )
        .datasource(PROM)
        .with_target(
            promql(
                "sum by (site) (vaka_devices_silent) / clamp_min(sum by (site) (vaka_devices_installed), 1)",
                "{{site}}",
            )
        )
    )
    d = d.with_row(dashboard.Row("Intake and store"))
    d = d.with_panel(
        graph(
            "Telemetry connection",
            "Unacknowledged messages the telemetry connection holds (mqtt.receive_maximum is its limit) and its read"
            " pauses per hour at that limit (VakaTelemetryBehind); care events use the events connection",
            "short",
            span=8,
        )
        .datasource(PROM)
        .with_target(promql('max(vaka_mqtt_unacked{connection="telemetry"})', "unacked"))
        .with_target(promql('sum(increase(vaka_mqtt_read_paused_total{connection="telemetry"}[1h]))', "pauses", "B"))
    )
    d = d.with_panel(
        graph(
            "Spool",
            "Events waiting in the hub's local spool for the database, and the oldest one's age in seconds"
            " (VakaSpoolGrowing, VakaSpoolOld past 15 min)",
            "short",
            span=8,
        )
        .datasource(PROM)
        .with_target(promql("sum(vaka_spool_events)", "events"))
        .with_target(promql("max(vaka_spool_oldest_age_seconds)", "oldest (s)", "B"))
    )
    d = d.with_panel(
        graph(
            "Rejected share",
            "Share of device messages rejected instead of becoming events (VakaRejectedMessagesSpike past 1 %)",
            "percentunit",
            span=8,
        )
        .datasource(PROM)
        .with_target(
            promql(
                f"sum(rate(vaka_messages_rejected_total[{RATE}])) / clamp_min(sum(rate(vaka_messages_rejected_total"
                f"[{RATE}])) + sum(rate(vaka_events_ingested_total[{RATE}])), 1e-9)",
                "rejected",
            )
        )
    )
    d = d.with_panel(
        graph(
            "Hub process",
            "Event-loop lag (VakaEventLoopLag past 0.5 s), MQTT sessions the broker had lost per hour"
            " (VakaMqttSessionLost), background tasks failed per hour (VakaBackgroundTaskFailed), writes of the hub's"
            " state its disk refused (VakaLocalDiskRefusing), alarm outputs failed (VakaAlarmOutputFailing), desk"
            " rows the database refused (VakaDeskRowRefused), telemetry left in the broker for a full spool",
            "short",
            span=12,
        )
        .datasource(PROM)
        .with_target(promql("max(vaka_event_loop_lag_seconds)", "loop lag (s)"))
        .with_target(promql("sum(increase(vaka_mqtt_session_lost_total[1h]))", "sessions lost", "B"))
        .with_target(promql("sum(increase(vaka_background_task_failures_total[1h])) or vector(0)", "tasks failed", "C"))
        .with_target(promql("sum(increase(vaka_local_write_failures_total[1h])) or vector(0)", "disk refused", "D"))
        .with_target(promql("sum(increase(vaka_alarm_output_failures_total[1h]))", "outputs failed", "E"))
        .with_target(promql("sum(increase(vaka_desk_rows_refused_total[1h])) or vector(0)", "rows refused", "F"))
        .with_target(promql("sum(increase(vaka_events_deferred_total[1h]))", "telemetry deferred", "G"))
    )
    d = d.with_panel(
        graph(
            "Disk free",
            "Free share of each filesystem the node exporter sees (VakaDiskFilling below 15 %, VakaDiskAlmostFull"
            " below 5 %)",
            "percentunit",
            span=12,
        )
        .datasource(PROM)
        .with_target(
            promql(
                'min by (mountpoint) (node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"}'
                ' / node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs"})',
                "{{mountpoint}}",
            )
        )
    )
    d = d.with_panel(
        listing("Firing alerts", "What Prometheus is alerting on now (the Watchdog always fires)", span=24)
        .datasource(PROM)
        .with_target(promql('ALERTS{alertstate="firing"}', "{{alertname}}", instant=True))
    )
    # appended, never inserted: the alerts link these panels by id
    d = d.with_row(dashboard.Row("What it stands on"))
    d = d.with_panel(
        graph(
            "Backups",
            "Seconds since the last good database backup and since a backup was last restored and checked"
            " (deploy/backup; VakaBackupStale past 26 h, VakaBackupRestoreTestFailing past 8 days)",
            "s",
            span=6,
        )
        .datasource(PROM)
        .with_target(promql("time() - max(vaka_backup_last_success_timestamp_seconds)", "since backup"))
        .with_target(
            promql("time() - max(vaka_backup_restore_test_last_success_timestamp_seconds)", "since test restore", "B")
        )
    )
    d = d.with_panel(
        graph(
            "Broker certificate",
            "Time left on the broker's TLS certificate, from a verified handshake by the blackbox exporter"
            " (VakaBrokerCertificateExpiring under 21 days; no value while the handshake fails: VakaBrokerTlsFailing)",
            "s",
            span=6,
        )
        .datasource(PROM)
        .with_target(
            promql('min by (instance) (probe_ssl_earliest_cert_expiry{job="broker-tls"}) - time()', "{{instance}}")
        )
    )
    d = d.with_panel(
        graph(
            "PostgreSQL",
            "From postgres_exporter: 1 while it reaches the database, and the connections per database"
            " (VakaExporterDown when the exporter itself is gone)",
            "short",
            span=6,
        )
        .datasource(PROM)
        .with_target(promql("min(pg_up)", "up"))
        .with_target(
            promql(
                'sum by (datname) (pg_stat_database_numbackends{datname!~"template.*|postgres"})',
                "{{datname}} connections",
                "B",
            )
        )
    )
    d = d.with_panel(
        graph(
            "Mosquitto",
            "From the broker's $SYS topics (mosquitto-exporter): clients connected, messages received per second",
            "short",
            span=6,
        )
        .datasource(PROM)
        .with_target(promql("max(broker_clients_connected)", "clients"))
        .with_target(promql(f"sum(rate(broker_messages_received[{RATE}]))", "received/s", "B"))
    )
    return d


def hub_health() -> dashboard.Dashboard:
    d = base(
        "vaka-hub-health", "Vaka · hub health", "Is the hub taking in, storing and deciding? (Prometheus)", "now-6h"
    )
    d = d.with_row(dashboard.Row("Up"))
    d = d.with_panel(
        number("Hub scraped", "1 while Prometheus can scrape the hub's /metrics")
        .datasource(PROM)
        .with_target(promql('min(up{job="vaka-hub"})', instant=True))
    )
    d = d.with_panel(
        number("Database up", "1 while the hub's database answers; 0: events go to the spool")
        .datasource(PROM)
        .with_target(promql("min(vaka_database_up)", instant=True))
    )
    d = d.with_panel(
        number("Broker connected", "1 while every hub connection to the broker is up")
        .datasource(PROM)
        .with_target(promql("min(vaka_mqtt_connected)", instant=True))
    )
    d = d.with_row(dashboard.Row("Ingest"))
    d = d.with_panel(
        graph("Ingest rate", "Events parsed from MQTT messages, per lane (event, telemetry)", "ops", span=12)
        .datasource(PROM)
        .with_target(promql(f"sum by (lane) (rate(vaka_events_ingested_total[{RATE}]))", "{{lane}} events"))
    )
    d = d.with_panel(
        graph("Durable lag", "Receive to PUBACK, i.e. until stored or spooled (p50, p99)", "s", span=12)
        .datasource(PROM)
        .with_target(
            promql(f"histogram_quantile(0.5, sum by (le) (rate(vaka_mqtt_ack_latency_seconds_bucket[{RATE}])))", "p50")
        )
        .with_target(
            promql(
                f"histogram_quantile(0.99, sum by (le) (rate(vaka_mqtt_ack_latency_seconds_bucket[{RATE}])))",
                "p99",
                "B",
            )
        )
    )
    d = d.with_panel(
        graph(
            "MQTT unacknowledged and read pauses",
            "Messages waiting for the store's ack, per connection (sampled each second); pauses per hour when the"
            " telemetry connection held mqtt.receive_maximum and stopped reading (a steady rise: the database takes"
            " telemetry more slowly than it comes; alarms never wait for it)",
            "short",
            span=12,
        )
        .datasource(PROM)
        .with_target(promql("max by (connection) (vaka_mqtt_unacked)", "{{connection}} unacked"))
        .with_target(
            promql("sum by (connection) (increase(vaka_mqtt_read_paused_total[1h]))", "{{connection}} pauses", "B")
        )
    )
    d = d.with_panel(
        graph("Rejected messages by reason", "Messages kept in rejected_messages instead of becoming events", "short")
        .datasource(PROM)
        .with_target(promql("sum by (reason) (increase(vaka_messages_rejected_total[1h]))", "{{reason}}"))
    )
    d = d.with_panel(
        graph(
            "Write batches by outcome",
            "ok: committed; spooled/failed: the database was away; error: a refused batch",
            "ops",
        )
        .datasource(PROM)
        .with_target(promql(f"sum by (outcome) (rate(vaka_write_batches_total[{RATE}]))", "{{outcome}}"))
    )
    d = d.with_row(dashboard.Row("Spool and sessions"))
    d = d.with_panel(
        graph("Spool depth", "Events waiting in the local spool for the database", "short", span=8)
        .datasource(PROM)
        .with_target(promql("sum(vaka_spool_events)", "events"))
    )
    d = d.with_panel(
        graph("Spool age", "Age of the oldest spooled event (the VakaSpoolOld alert fires past 15 min)", "s", span=8)
        .datasource(PROM)
        .with_target(promql("max(vaka_spool_oldest_age_seconds)", "oldest"))
    )
    d = d.with_panel(
        graph(
            "MQTT session losses",
            "Reconnects where the broker had lost the hub's session: a possible loss window",
            "short",
            span=8,
        )
        .datasource(PROM)
        .with_target(promql("sum by (connection) (increase(vaka_mqtt_session_lost_total[1h]))", "{{connection}}"))
    )
    d = d.with_row(dashboard.Row("The process"))
    d = d.with_panel(
        graph("Event-loop lag", "Worst lateness of a 0.5 s timer over 5 s: what every alarm waits in addition", "s")
        .datasource(PROM)
        .with_target(promql("max(vaka_event_loop_lag_seconds)", "lag"))
    )
    d = d.with_panel(
        graph(
            "Garbage-collector pauses",
            "Worst collector pause by generation (each stalls every alarm in flight; hub/runtime/heap.py)",
            "s",
        )
        .datasource(PROM)
        .with_target(
            promql(
                f"histogram_quantile(0.99, sum by (le, generation) (rate(vaka_gc_pause_seconds_bucket[{RATE}])))",
                "generation {{generation}}",
            )
        )
    )
    d = d.with_panel(
        graph("Seconds since the engine loop ran", "The rule engine's heartbeat (VakaHubStalled past 60 s)", "s")
        .datasource(PROM)
        .with_target(promql("time() - max(vaka_hub_heartbeat_timestamp_seconds)", "since heartbeat"))
    )
    d = d.with_panel(
        listing("Firing alerts", "What Prometheus is alerting on now (the Watchdog always fires)", span=24)
        .datasource(PROM)
        .with_target(promql('ALERTS{alertstate="firing"}', "{{alertname}}", instant=True))
    )
    return d


def alarm_flow() -> dashboard.Dashboard:
    d = base(
        "vaka-alarm-flow",
        "Vaka · alarm flow",
        "Alarms raised, answered and escalated (database and Prometheus)",
        "now-24h",
    )
    d = d.with_variable(site_variable())
    d = d.with_row(dashboard.Row("Now"))
    d = d.with_panel(
        graph("Open alarms", "Open alarms by category and state", "short", span=12)
        .datasource(PROM)
        .with_target(promql("sum by (category, state) (vaka_alarms_open)", "{{category}} {{state}}"))
    )
    d = d.with_panel(
        graph(
            "Oldest unaccepted alarm",
            "Age of the oldest open alarm nobody accepted (VakaAlarmNotAccepted past 5 min for care)",
            "s",
            span=12,
        )
        .datasource(PROM)
        .with_target(promql("max by (category) (vaka_alarm_oldest_unaccepted_seconds)", "{{category}}"))
    )
    d = d.with_row(dashboard.Row("Raised"))
    d = d.with_panel(
        graph("Alarms raised by category", "Per hour, from the alarm desk's records", "short")
        .datasource(DB)
        .with_target(Sql(sql.ALARMS_BY_CATEGORY_OVER_TIME))
    )
    d = d.with_panel(
        graph("Alarms raised (hub counter)", "Raised per hour by category and severity (Prometheus)", "short")
        .datasource(PROM)
        .with_target(
            promql("sum by (category, severity) (increase(vaka_alarms_raised_total[1h]))", "{{category}} {{severity}}")
        )
    )
    d = d.with_panel(
        listing("Alarms by rule, category and site", "In the dashboard's time range", span=16)
        .datasource(DB)
        .with_target(Sql(sql.ALARMS_BY_RULE_CATEGORY_SITE, "table"))
    )
    d = d.with_panel(
        listing("Outcomes", "How the alarms of the range ended (open: not closed yet)", span=8)
        .datasource(DB)
        .with_target(Sql(sql.OUTCOMES, "table"))
    )
    d = d.with_row(dashboard.Row("Response"))
    d = d.with_panel(
        listing(
            "Time to accept and to on site (care)",
            "Raised to the first staff action, and to the first 'on site' (p50, p90, seconds)",
            span=8,
        )
        .datasource(DB)
        .with_target(Sql(sql.RESPONSE_PERCENTILES, "table"))
    )
    d = d.with_panel(
        graph("Time to accept over time (care)", "p50 and p90 per hour of raising", "s", span=8)
        .datasource(DB)
        .with_target(Sql(sql.RESPONSE_OVER_TIME))
    )
    d = d.with_panel(
        graph("Accept latency (hub histogram)", "Raised to accepted, p50 and p90 (Prometheus)", "s", span=8)
        .datasource(PROM)
        .with_target(
            promql("histogram_quantile(0.5, sum by (le) (increase(vaka_alarm_accept_seconds_bucket[1h])))", "p50")
        )
        .with_target(
            promql("histogram_quantile(0.9, sum by (le) (increase(vaka_alarm_accept_seconds_bucket[1h])))", "p90", "B")
        )
    )
    d = d.with_row(dashboard.Row("Escalations and channels"))
    d = d.with_panel(
        listing("Escalations by tier", "Escalation steps taken in the range, by category and tier", span=8)
        .datasource(DB)
        .with_target(Sql(sql.ESCALATIONS_BY_TIER, "table"))
    )
    d = d.with_panel(
        graph("Escalations (hub counter)", "Tiers notified per hour, by category", "short", span=8)
        .datasource(PROM)
        .with_target(promql("sum by (category) (increase(vaka_alarm_escalations_total[1h]))", "{{category}}"))
    )
    d = d.with_panel(
        graph(
            "Channel failures",
            "Notifications a channel failed to deliver, per hour (webhook, push, SMS)",
            "short",
            span=8,
        )
        .datasource(PROM)
        .with_target(promql("sum by (channel) (increase(vaka_notifications_failed_total[1h]))", "{{channel}} failed"))
    )
    return d


def devices() -> dashboard.Dashboard:
    d = base(
        "vaka-devices",
        "Vaka · devices",
        "Which devices report, which are silent, batteries, never heard from",
        "now-24h",
    )
    d = d.with_variable(site_variable())
    d = d.with_panel(
        listing(
            "Devices by state",
            "At the end of the range: reporting within their supervision interval, silent, not heard for 7 days",
            span=8,
        )
        .datasource(DB)
        .with_target(Sql(sql.DEVICE_STATE_TOTALS, "table"))
    )
    d = d.with_panel(
        listing("Reporting and silent by class and vendor", "At the end of the dashboard's range", span=16)
        .datasource(DB)
        .with_target(Sql(sql.DEVICES_BY_STATE, "table"))
    )
    d = d.with_panel(
        graph(
            "Silent devices now (hub)", "Devices with an open device_silent or camera_offline alarm, by class", "short"
        )
        .datasource(PROM)
        .with_target(promql("sum by (kind, vendor) (vaka_devices_silent)", "{{kind}} ({{vendor}})"))
        .with_target(
            promql("sum(vaka_devices_silent) / clamp_min(sum(vaka_devices_installed), 1)", "share of all", "B")
        )
    )
    d = d.with_panel(
        graph("Lowest battery by class", "Lowest reported battery level per class and hour", "percent")
        .datasource(DB)
        .with_target(Sql(sql.BATTERY_LEVELS_OVER_TIME))
    )
    d = d.with_panel(
        listing("Lowest batteries", "The 20 devices with the lowest last battery report in the range")
        .datasource(DB)
        .with_target(Sql(sql.BATTERIES_LOWEST, "table"))
    )
    d = d.with_panel(
        listing("Never heard from", "Devices in the inventory with no event at all (not set up, or in a drawer)")
        .datasource(DB)
        .with_target(Sql(sql.NEVER_HEARD, "table"))
    )
    d = d.with_panel(
        graph("Events by kind", "Events per 15 minutes by kind (heartbeats left out)", "short", span=24)
        .datasource(DB)
        .with_target(Sql(sql.EVENTS_OVER_TIME))
    )
    return d


def follow_up() -> dashboard.Dashboard:
    d = base("vaka-follow-up", "Vaka · follow-up", "Usage indicators (docs/indicators.md) from the database", "now-30d")
    d = d.with_variable(site_variable())
    d = d.with_panel(
        listing(
            "Technology in use by class",
            "Installed, reporting (any event), in use (an activity event) and the unused share",
            span=16,
        )
        .datasource(DB)
        .with_target(Sql(sql.TECHNOLOGY_IN_USE, "table"))
    )
    d = d.with_panel(
        number("False alarms per resident-night", "Care alarms resolved as false alarm / (residents x nights)", span=8)
        .datasource(DB)
        .with_target(Sql(sql.FALSE_ALARMS_PER_RESIDENT_NIGHT, "table"))
    )
    d = d.with_panel(
        graph("Activity per day", "Events, activity events and devices reporting per local day (the rollup)", "short")
        .datasource(DB)
        .with_target(Sql(sql.ACTIVITY_PER_DAY))
    )
    d = d.with_panel(
        listing("Medication robots", "Doses due, taken, missed and late in the range")
        .datasource(DB)
        .with_target(Sql(sql.MEDICATION, "table"))
    )
    d = d.with_panel(
        listing("Alarms per unit", "Alarms, outcomes and those never accepted, per care unit and category")
        .datasource(DB)
        .with_target(Sql(sql.ALARMS_PER_UNIT, "table"))
    )
    d = d.with_panel(
        listing("Technical repair time", "Technical alarms closed in the range: mean raised to closed, by rule")
        .datasource(DB)
        .with_target(Sql(sql.TECHNICAL_REPAIR, "table"))
    )
    return d


DASHBOARDS = {
    "alarm-path": alarm_path,
    "hub-health": hub_health,
    "alarm-flow": alarm_flow,
    "devices": devices,
    "follow-up": follow_up,
}


def render() -> dict[str, str]:
    """file name -> JSON text of every dashboard."""
    out = {}
    for name, make in DASHBOARDS.items():
        model: Any = make().build()
        # fixed panel ids, so a runbook's link (/d/<uid>?viewPanel=<id>) opens the panel it names
        for panel_id, panel in enumerate(model.panels, start=1):
            panel.id_val = panel_id
        out[f"{name}.json"] = json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
    return out


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"dashboards/json/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
