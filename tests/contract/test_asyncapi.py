"""The published contract (docs/contract/asyncapi.yaml) is up to date, valid AsyncAPI 3, and true to the hub."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
import yaml

from hub.cli import main
from hub.desk.alarm import Alarm
from hub.model import (
    MAX_MESSAGES_PER_S,
    AlarmCategory,
    AlarmMessage,
    AlarmState,
    EventKind,
    NativeStatus,
    Severity,
)
from hub.supervision.hub_status import OFFLINE, hub_status_topic
from hub.vendor.contract import asyncapi_document, asyncapi_yaml

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
COMMITTED = ROOT / "docs" / "contract" / "asyncapi.yaml"
PARSER = HERE / "node_modules" / "@asyncapi" / "parser"


@pytest.fixture(scope="module")
def asyncapi_parser() -> Path:
    """The AsyncAPI project's parser from npm, installed from the committed package-lock.json when missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run @asyncapi/parser (apt install nodejs npm)")
    if not PARSER.is_dir():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, capture_output=True, timeout=300
        )
        if done.returncode != 0:
            pytest.skip(f"npm ci in tests/contract failed (offline?): {done.stderr.decode()[-300:]}")
    return HERE / "validate.mjs"


def validate(validator: Path, document: Path) -> dict[str, object]:
    done = subprocess.run(["node", str(validator), str(document)], cwd=HERE, capture_output=True, timeout=120)
    assert done.stdout, done.stderr.decode()
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_committed_contract_is_what_the_code_generates(tmp_path: Path) -> None:
    assert COMMITTED.read_text(encoding="utf-8") == asyncapi_yaml(), (
        "docs/contract/asyncapi.yaml is stale: run `vaka schema asyncapi --output docs/contract/asyncapi.yaml`"
    )
    out = tmp_path / "asyncapi.yaml"
    assert main(["schema", "asyncapi", "--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8")


def test_the_asyncapi_parser_finds_no_error_or_warning(asyncapi_parser: Path) -> None:
    result = validate(asyncapi_parser, COMMITTED)
    assert result["valid"] is True
    assert result["version"] == "3.0.0"
    problems = [d for d in result["diagnostics"] if d["severity"] in ("error", "warning")]  # type: ignore[attr-defined]
    assert problems == []


def test_the_parser_would_catch_a_broken_contract(asyncapi_parser: Path, tmp_path: Path) -> None:
    broken = asyncapi_document()
    broken["operations"]["receiveDeviceEvent"]["channel"] = {"$ref": "#/channels/noSuchChannel"}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(broken))))
    result = validate(asyncapi_parser, path)
    assert result["valid"] is False


def test_every_topic_but_the_simulated_clock_is_in_the_contract() -> None:
    addresses = {c["address"] for c in asyncapi_document()["channels"].values()}
    assert addresses == {
        "vaka/v1/{site}/{device_id}/event",
        "vaka/v1/{site}/{device_id}/telemetry",
        "vaka/v1/{site}/{device_id}/status",
        "vaka/v1/{site}/alarms/{alarm_id}",
        "vaka/v1/{site}/hub/status",
    }
    kinds = asyncapi_document()["components"]["schemas"]["EventKind"]
    assert sorted(kinds["enum"]) == sorted(k.value for k in EventKind)
    assert all(f"`{k.value}`" in kinds["description"] for k in EventKind)


def test_the_alarm_message_schema_is_what_the_desk_publishes() -> None:
    at = datetime(2026, 11, 29, 3, tzinfo=UTC)
    alarm = Alarm(
        id="a1",
        key="fall:r1",
        rule_id="fall",
        category=AlarmCategory.CARE,
        severity=Severity.CRITICAL,
        site="s1",
        unit="u1",
        resident_id="r1",
        device_id="radar1",
        reason="fall detected",
        unregistered=False,
        raised_at=at,
        updated_at=at,
        state=AlarmState.ACCEPTED,
        accepted_by="nurse1",
    )
    published = json.dumps(alarm.public()).encode()
    msgspec.json.decode(published, type=AlarmMessage)  # raises if the desk publishes what the contract does not say


def test_the_servers_say_how_a_device_connects_and_tls_is_secure_mqtt() -> None:
    servers = asyncapi_document()["servers"]
    assert {(s["protocol"], s["host"].rsplit(":", 1)[1]) for s in servers.values()} == {
        ("secure-mqtt", "8883"),
        ("mqtt", "1883"),
    }
    for server in servers.values():
        mqtt = server["bindings"]["mqtt"]
        assert mqtt["lastWill"] == {
            "topic": "vaka/v1/{site}/{device_id}/status",
            "qos": 1,
            "message": '{"state": "offline"}',
            "retain": True,
        }
        assert (mqtt["cleanSession"], mqtt["sessionExpiryInterval"] >= 3600) == (False, True)
        assert server["x-max-messages-per-second-per-device"] == MAX_MESSAGES_PER_S
    operations = asyncapi_document()["operations"]
    assert {
        name: (op["bindings"]["mqtt"]["qos"], op["bindings"]["mqtt"]["retain"]) for name, op in operations.items()
    } == {
        "receiveDeviceEvent": (1, False),
        "receiveDeviceTelemetry": (1, False),
        "receiveDeviceStatus": (1, True),
        "sendHubStatus": (1, True),
        "sendAlarmState": (1, False),
    }


def test_the_hub_status_is_what_the_hub_publishes_and_its_last_will() -> None:
    operation = asyncapi_document()["operations"]["sendHubStatus"]
    will = operation["x-last-will"]
    assert (will["topic"], will["qos"], will["retain"]) == (hub_status_topic("{site}"), 1, True)
    as_contract = msgspec.json.decode(will["message"], type=NativeStatus)
    assert as_contract == msgspec.json.decode(OFFLINE, type=NativeStatus) == NativeStatus(state="offline")


def test_the_parser_checks_the_mqtt_bindings(asyncapi_parser: Path, tmp_path: Path) -> None:
    broken = asyncapi_document()
    broken["servers"]["site-broker"]["bindings"]["mqtt"]["lastWill"]["qos"] = 3
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(broken))))
    result = validate(asyncapi_parser, path)
    problems = [d for d in result["diagnostics"] if d["severity"] == "error"]  # type: ignore[attr-defined]
    assert result["valid"] is False or problems, result
