"""The dashboards: generated JSON up to date, and every panel's query answered for real.

The slow test runs a simulated night through a real hub (private Mosquitto, the test database — TimescaleDB when
VAKA_TEST_TIMESCALE_DSN is set), with a night nurse accepting and resolving some alarms over HTTP, a webhook channel
that fails and a few malformed messages, and a second hub on the wall clock (its canary and telemetry connection).
A private Prometheus (Debian's) scrapes both hubs and Debian's node exporter with the repository's alert rules. Then every SQL panel runs (Grafana's macros expanded as its PostgreSQL data source expands them) as a role
that may only SELECT, and every PromQL target runs against that Prometheus; each must return data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from dashboards.generate import DB, PROM, render

REPO = Path(__file__).resolve().parents[2]
JSON_DIR = REPO / "dashboards" / "json"


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p.get("type") != "row"]


def all_targets() -> list[tuple[str, str, dict[str, Any]]]:
    """(dashboard file, panel title, target) for every query of every committed dashboard."""
    found = []
    for path in sorted(JSON_DIR.glob("*.json")):
        for panel in panels(json.loads(path.read_text())):
            for target in panel["targets"]:
                found.append((path.name, panel["title"], target))
    return found


def test_the_committed_json_is_what_the_generator_makes() -> None:
    generated = render()
    committed = {p.name: p.read_text() for p in JSON_DIR.glob("*.json")}
    assert committed.keys() == generated.keys(), "run: python -m dashboards.generate"
    stale = [name for name, text in generated.items() if committed[name] != text]
    assert not stale, f"dashboards/json is out of date for {stale}; run: python -m dashboards.generate"


def test_every_panel_has_a_provisioned_data_source_and_a_query() -> None:
    provisioning = (REPO / "deploy/grafana/provisioning/datasources/vaka.yml").read_text()
    uids = set(re.findall(r"uid: (\S+)", provisioning))
    assert {PROM.uid, DB.uid} <= uids
    titles = set()
    for path in JSON_DIR.glob("*.json"):
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"].startswith("vaka-")
        assert dashboard["uid"] not in titles
        titles.add(dashboard["uid"])
        for panel in panels(dashboard):
            assert panel["datasource"]["uid"] in uids, panel["title"]
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            assert panel.get("description"), f"{path.name}: {panel['title']} says not what it shows"


def test_no_panel_reads_a_field_a_person_typed_or_a_secret() -> None:
    for name, title, target in all_targets():
        text = target.get("rawSql", "")
        for column in ("note", "detail", "password_hash", "payload", "token", "staff_sessions"):
            assert not re.search(rf"\b{column}\b", text), f"{name}: {title} reads {column}"


def test_the_four_dashboards_cover_what_operations_asked_for() -> None:
    text = {p.stem: p.read_text() for p in JSON_DIR.glob("*.json")}
    for needle in ("vaka_events_ingested_total", "vaka_mqtt_ack_latency_seconds", "vaka_spool_events",
                   "vaka_spool_oldest_age_seconds", "vaka_database_up", "vaka_mqtt_connected",
                   "vaka_mqtt_session_lost_total", "vaka_messages_rejected_total", "vaka_event_loop_lag_seconds"):  # fmt: skip
        assert needle in text["hub-health"], needle
    for needle in ("rule_id", "percentile_cont(0.9)", "on_site", "escalated", "vaka_alarms_open",
                   "vaka_notifications_failed_total"):  # fmt: skip
        assert needle in text["alarm-flow"], needle
    for needle in ("silent", "vendor", "battery", "Never heard from"):
        assert needle in text["devices"], needle
    for needle in ("followup_device_day", "unused share", "false_alarm", "med_taken"):
        assert needle in text["follow-up"], needle


def test_the_alarm_path_dashboard_comes_first_and_answers_do_alarms_reach_people() -> None:
    from dashboards.generate import DASHBOARDS

    assert next(iter(DASHBOARDS)) == "alarm-path"
    compose = (REPO / "docker-compose.yml").read_text()
    # Grafana opens on it: the on-call's first screen
    assert "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH: /var/lib/grafana/dashboards/vaka/alarm-path.json" in compose
    text = (JSON_DIR / "alarm-path.json").read_text()
    for needle in ("vaka_canary_round_trip_seconds", "vaka_canary_failing", "vaka_supervision_blind",
                   "supervision_lost", "vaka_alarms_raised_total", 'state=\\"accepted\\"',
                   "vaka_alarms_nobody_reached_total", "vaka_alarm_accept_seconds_bucket",
                   "vaka_alarm_oldest_unaccepted_seconds", "vaka_websocket_clients",
                   "vaka_notifications_delivered_total", "vaka_notifications_failed_total",
                   'vaka_mqtt_unacked{connection=\\"telemetry\\"}',
                   'vaka_mqtt_read_paused_total{connection=\\"telemetry\\"}'):  # fmt: skip
        assert needle in text, needle


# Panels whose exporter cannot run on these machines (no Debian or PyPI package), and how they are checked instead.
ELSEWHERE = {
    ("alarm-path.json", "Mosquitto"): "sapcc/mosquitto-exporter ships as a container image only: the test checks "
    "that this Mosquitto publishes the $SYS topics the exporter turns into the panel's metrics",
}


def exporter_metric(sys_topic: str) -> str:
    """The metric name sapcc/mosquitto-exporter gives a $SYS topic (its parseTopic, v0.8.0)."""
    name = sys_topic.replace("$SYS/", "", 1)
    for char in "/ -.":
        name = name.replace(char, "_")
    return name


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_every_panel_query_returns_data_from_a_simulated_night(night: Any) -> None:
    from tests.dashboards.stack import run_promql, run_sql

    empty = []
    checked = 0
    for name, title, target in all_targets():
        if (name, title) in ELSEWHERE:
            checked += 1
            continue
        if "rawSql" in target:
            rows = await run_sql(night, target["rawSql"])
        else:
            rows = await run_promql(night, target["expr"], instant=bool(target.get("instant")))
        checked += 1
        if not rows:
            empty.append(f"{name}: {title} [{target['refId']}]")
    assert checked == len(all_targets()) > 30
    assert not empty, "panels without data: " + "; ".join(empty)

    # what the exporters report is what happened: the night's certificate (30 days), tonight's backup and test restore
    left = await run_promql(night, 'min(probe_ssl_earliest_cert_expiry{job="broker-tls"}) - time()', instant=True)
    assert 29 * 86400 < float(left[0]["value"][1]) <= 30 * 86400
    for metric in (
        "vaka_backup_last_success_timestamp_seconds",
        "vaka_backup_restore_test_last_success_timestamp_seconds",
    ):
        since = await run_promql(night, f"time() - max({metric})", instant=True)
        assert 0 <= float(since[0]["value"][1]) < 600, metric
    assert float((await run_promql(night, "min(pg_up)", instant=True))[0]["value"][1]) == 1


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_the_broker_publishes_what_the_mosquitto_panel_reads(night: Any) -> None:
    import paho.mqtt.subscribe as subscribe

    panel = next(p for p in panels(json.loads((JSON_DIR / "alarm-path.json").read_text())) if p["title"] == "Mosquitto")
    wanted = {m for t in panel["targets"] for m in re.findall(r"\b(broker_[a-z_]+)\b", t["expr"])}
    assert wanted == {"broker_clients_connected", "broker_messages_received"}
    topics = ["$SYS/broker/clients/connected", "$SYS/broker/messages/received"]
    assert {exporter_metric(t) for t in topics} == wanted
    for topic in topics:  # retained by the broker, refreshed every sys_interval
        msg = subscribe.simple(topic, hostname="127.0.0.1", port=night.broker.port, retained=True, keepalive=10)
        assert float(msg.payload) >= 0, topic
