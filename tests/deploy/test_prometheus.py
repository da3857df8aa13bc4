"""The alerting chain's files, checked by the tools that will run them: Debian's promtool and amtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy" / "prometheus"
RULES = PROM / "rules" / "vaka.yml"
RULE_TESTS = PROM / "tests" / "vaka_test.yml"
ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None or shutil.which("amtool") is None,
    reason="promtool/amtool are not installed (Debian packages prometheus and prometheus-alertmanager)",
)


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60, check=False)


def alert_names() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def test_rule_unit_tests_pass() -> None:
    result = run("promtool", "test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_broken_rule_fails_its_unit_test(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    # the spool alert with the policy loosened to an hour: the test's 17-minute spool no longer pages
    (tmp_path / "rules" / "vaka.yml").write_text(RULES.read_text().replace("> 15 * 60", "> 60 * 60"))
    shutil.copy(RULE_TESTS, tmp_path / "tests" / "vaka_test.yml")
    result = run("promtool", "test", "rules", tmp_path / "tests" / "vaka_test.yml")
    assert result.returncode != 0
    assert "VakaSpoolOld" in result.stdout + result.stderr


def test_every_alert_has_a_unit_test_a_severity_and_a_runbook_entry() -> None:
    tested = set(re.findall(r"alertname:\s*(\w+)", RULE_TESTS.read_text()))
    operations = (REPO / "docs" / "operations.md").read_text()
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    wanted = {
        "VakaHubDown", "VakaBrokerUnreachable", "VakaDatabaseDown", "VakaSpoolGrowing", "VakaSpoolOld",
        "VakaMqttSessionLost", "VakaRejectedMessagesSpike", "VakaAlarmNotAccepted", "VakaDevicesSilentEnMasse",
        "VakaDiskFilling", "VakaCanaryFailing", "Watchdog",
    }  # fmt: skip
    assert wanted <= {r["alert"] for r in rules}
    for rule in rules:
        name = rule["alert"]
        assert name in tested, f"{name} has no promtool unit test"
        assert rule["labels"]["severity"] in {"page", "warning", "none"}
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert anchor == name.lower()
        assert f"### {name}" in operations, f"docs/operations.md has no runbook entry for {name}"


def test_every_alert_opens_a_panel_of_the_alarm_path_dashboard_that_its_runbook_names() -> None:
    dashboard = json.loads((REPO / "dashboards" / "json" / "alarm-path.json").read_text())
    titles = {p["id"]: p["title"] for p in dashboard["panels"] if p["type"] != "row"}
    operations = (REPO / "docs" / "operations.md").read_text()
    groups = yaml.safe_load(RULES.read_text())["groups"]
    for rule in (r for g in groups for r in g["rules"] if "alert" in r):
        name = rule["alert"]
        link = rule["annotations"].get("dashboard", "")
        found = re.fullmatch(r"/d/vaka-alarm-path\?viewPanel=(\d+)", link)
        assert found, f"{name} has no link to the alarm path dashboard: {link!r}"
        title = titles.get(int(found.group(1)))
        assert title, f"{name} links panel {found.group(1)}, which the alarm path dashboard does not have"
        runbook = operations.split(f"### {name}\n", 1)[1].split("\n### ", 1)[0]
        assert f"Panel: **Alarm path › {title}** (Grafana `{link}`" in runbook, f"{name}'s runbook names not {title}"


def test_the_watchdog_always_fires() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    watchdog = next(r for g in groups for r in g["rules"] if r.get("alert") == "Watchdog")
    assert watchdog["expr"].strip() == "vector(1)"
    assert "for" not in watchdog


def test_prometheus_configuration_is_valid_with_its_rules(tmp_path: Path) -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]  # where docker-compose.yml mounts them
    config["rule_files"] = [str(PROM / "rules" / "*.yml")]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # the hub's /metrics takes the compose secret as a bearer token; promtool wants the file to exist
    assert jobs["vaka-hub"]["authorization"] == {"type": "Bearer", "credentials_file": "/run/secrets/metrics_token"}
    token = tmp_path / "metrics_token"
    token.write_text("token\n")
    jobs["vaka-hub"]["authorization"]["credentials_file"] = str(token)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = run("promtool", "check", "config", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout
    assert jobs["vaka-hub"]["static_configs"][0]["targets"] == ["hub:8080"]
    assert "node" in jobs  # the disk alerts need node-exporter
    # the exporters VakaExporterDown watches, each scraped
    assert {"postgres", "mosquitto", "broker-tls"} <= jobs.keys()
    assert jobs["broker-tls"]["params"] == {"module": ["broker_tls"]}
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_alertmanager_configuration_is_valid_and_routes_the_watchdog_to_the_dead_mans_switch(tmp_path: Path) -> None:
    text = ALERTMANAGER.read_text()
    # url_file (Alertmanager 0.26+, the compose image) is newer than Debian's amtool 0.25: check the rest with a URL
    older = tmp_path / "alertmanager.yml"
    older.write_text(re.sub(r"url_file: \S+", "url: http://127.0.0.1:9/hook", text))
    result = run("amtool", "check-config", older)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 receivers" in result.stdout
    for labels, receiver in (
        (["alertname=Watchdog", "severity=none"], "deadman"),
        (["alertname=VakaHubDown", "severity=page"], "oncall"),
        (["alertname=VakaDiskFilling", "severity=warning"], "oncall"),
    ):
        routed = run("amtool", "config", "routes", "test", "--config.file", older, *labels)
        assert routed.stdout.strip() == receiver, (labels, routed.stdout, routed.stderr)
