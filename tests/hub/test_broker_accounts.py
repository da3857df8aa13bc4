"""`vaka mqtt credentials`: the broker's password file and ACL for an inventory, as an operator runs it."""

from __future__ import annotations

import base64
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from hub.devices.broker_accounts import CredentialsError, accounts_for, hash_password, read_secrets, render_acl
from hub.model import Inventory
from tests.hub.test_cli import vaka

SITE = {
    "id": "north",
    "devices": [{"id": "north-radar-1", "kind": "fall_radar"}, {"id": "north-bed-1", "kind": "bed_sensor"}],
    "gateways": [{"id": "north-z2m", "topics": ["zigbee2mqtt/#"]}],
}


def _write_inventory(path: Path, devices: list[dict[str, str]] | None = None) -> Path:
    site = dict(SITE, devices=devices if devices is not None else SITE["devices"])
    path.write_text(yaml.safe_dump({"sites": [site], "integrations": [{"id": "dect", "sites": ["north"]}]}))
    return path


def test_the_hash_is_mosquittos_own(tmp_path: Path) -> None:
    """What mosquitto_passwd writes for a password, hash_password writes too (same salt, same iterations)."""
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pwfile), "alice", "night shift"], check=True)
    theirs = pwfile.read_text().strip().split(":", 1)[1]
    _, seven, iterations, salt, _ = theirs.split("$")
    assert seven == "7"
    assert hash_password("night shift", salt=base64.b64decode(salt), iterations=int(iterations)) == theirs


def test_onboarding_is_one_command_and_prints_no_password(tmp_path: Path) -> None:
    inventory = _write_inventory(tmp_path / "inventory.yaml")
    out = tmp_path / "mqtt"
    result = vaka("mqtt", "credentials", "--inventory", str(inventory), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    secrets = read_secrets(out / "credentials.secret")
    tools = {"vaka-hub-tools", "vaka-hub-tools-snapshot"}
    assert (
        set(secrets)
        == {
            "vaka-hub",
            "vaka-hub-telemetry",
            "vaka-hub-canary",
            "vaka-hub-monitor",
            "vaka-hub-status-north",  # the hub's retained status of the site, with its Last Will (hub/supervision/hub_status.py)
            *tools,
            "north-radar-1",
            "north-bed-1",
            "north-z2m",
            "dect",
        }
    )
    for password in secrets.values():
        assert len(password) >= 32
        assert password not in result.stdout + result.stderr
        assert password not in (out / "passwd").read_text() + (out / "acl").read_text()
    assert stat.S_IMODE((out / "credentials.secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "vaka-hub.password").stat().st_mode) == 0o600
    assert (out / "vaka-hub.password").read_text().strip() == secrets["vaka-hub"]
    assert "11 (11 new, 0 kept, 0 removed)" in result.stdout
    # the stack's mosquitto-exporter gets its account from an env_file (its image has no shell to read a file)
    assert stat.S_IMODE((out / "monitor.env").stat().st_mode) == 0o600
    assert (out / "monitor.env").read_text().splitlines() == [
        "MQTT_USER=vaka-hub-monitor",
        f"MQTT_PASS={secrets['vaka-hub-monitor']}",
        "MQTT_CLIENT_ID=vaka-hub-monitor",
    ]

    # a new device: one more run; everyone else keeps their password, the removed device loses its account
    devices = [{"id": "north-radar-1", "kind": "fall_radar"}, {"id": "north-door-2", "kind": "door"}]
    result = vaka("mqtt", "credentials", "--inventory", str(_write_inventory(inventory, devices)), "--out", str(out))
    assert result.returncode == 0, result.stdout
    again = read_secrets(out / "credentials.secret")
    assert again["north-radar-1"] == secrets["north-radar-1"]
    assert again["vaka-hub"] == secrets["vaka-hub"]
    assert "north-bed-1" not in again
    assert "north-bed-1" not in (out / "passwd").read_text()
    assert "new: north-door-2" in result.stdout
    assert "removed: north-bed-1" in result.stdout


def test_the_acl_gives_each_account_only_its_own(tmp_path: Path) -> None:
    accounts = {
        a.name: a
        for a in accounts_for(
            Inventory.model_validate(
                yaml.safe_load(yaml.safe_dump({"sites": [SITE], "integrations": [{"id": "dect", "sites": ["north"]}]}))
            )
        )
    }
    assert accounts["north-radar-1"].acl == ("topic readwrite vaka/v1/north/north-radar-1/#",)
    assert accounts["north-z2m"].acl == ("topic readwrite zigbee2mqtt/#",)
    assert accounts["dect"].acl == ("topic read vaka/v1/north/alarms/#", "topic read vaka/v1/north/hub/status")
    assert "topic read zigbee2mqtt/#" in accounts["vaka-hub"].acl
    assert accounts["vaka-hub-tools"].acl == ("topic read vaka/v1/#", "topic read zigbee2mqtt/#")
    assert accounts["vaka-hub-status-north"].acl == ("topic write vaka/v1/north/hub/status",)


@pytest.mark.parametrize(
    ("inventory", "says"),
    [
        ({"sites": [{"id": "s", "devices": [{"id": "alarms", "kind": "x"}]}]}, "reserved"),
        ({"sites": [{"id": "s", "devices": [{"id": "hub", "kind": "x"}]}]}, "reserved"),
        ({"sites": [{"id": "s", "devices": [{"id": "vaka-hub", "kind": "x"}]}]}, "same name"),
        (
            {
                "sites": [
                    {"id": "s", "devices": [{"id": "d", "kind": "x"}], "gateways": [{"id": "d", "topics": ["z/#"]}]}
                ]
            },
            "same name",
        ),
        ({"sites": [{"id": "s"}], "integrations": [{"id": "i", "sites": ["elsewhere"]}]}, "unknown site"),
    ],
)
def test_an_account_that_would_break_the_acl_is_refused(inventory: dict[str, object], says: str) -> None:
    with pytest.raises(CredentialsError, match=says):
        accounts_for(Inventory.model_validate(inventory))


@pytest.mark.parametrize("topic", ["vaka/v1/#", "#", "$SYS/#", "+/x"])
def test_a_gateway_cannot_claim_vakas_topics(topic: str) -> None:
    with pytest.raises(ValueError, match="vendor prefix"):
        Inventory.model_validate({"sites": [{"id": "s", "gateways": [{"id": "g", "topics": [topic]}]}]})


@pytest.mark.parametrize("device_id", ["d+1", "d#", "a/b", "d:1", "%u"])
def test_ids_with_wildcards_never_become_user_names(device_id: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        Inventory.model_validate({"sites": [{"id": "s", "devices": [{"id": device_id, "kind": "x"}]}]})


def test_the_shipped_example_acl_is_what_the_command_writes_for_the_example_inventory() -> None:
    deploy = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
    source = "deploy/mosquitto/inventory.example.yaml"
    inventory = Inventory.model_validate(yaml.safe_load((deploy / "inventory.example.yaml").read_text()))
    assert (deploy / "acl.example").read_text() == render_acl(accounts_for(inventory), source)
