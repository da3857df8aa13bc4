"""The paho speed patch: active on the paho we ship, parsing exactly as paho does, and stepping aside (stock paho,
a warning) when paho's internals are not what it was written against."""

from __future__ import annotations

import importlib
import logging

import paho.mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import hub.intake.mqtt  # noqa: F401  (installs the patch, as the hub does)
from hub.intake import paho_speed

PACKET = importlib.import_module("paho.mqtt._packet")


def test_the_patch_is_active_on_the_paho_this_project_installs() -> None:
    assert paho_speed.install()
    assert paho_speed.active()
    assert PACKET.Properties is paho_speed.LeanProperties


@pytest.mark.parametrize("empty", [True, False])
def test_lean_properties_read_a_publish_exactly_as_paho_does(empty: bool) -> None:
    sent = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if not empty:
        sent.MessageExpiryInterval = 30
        sent.UserProperty = [("site", "s1"), ("vendor", "x")]
    wire = sent.pack()  # type: ignore[no-untyped-call]
    stock, stock_n = Properties(PacketTypes.PUBLISH).unpack(wire + b"rest")  # type: ignore[no-untyped-call]
    lean, lean_n = paho_speed.LeanProperties(PacketTypes.PUBLISH).unpack(wire + b"rest")
    assert (lean.json(), lean_n) == (stock.json(), stock_n)  # type: ignore[no-untyped-call]


def test_changed_internals_leave_paho_stock_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Elsewhere:
        pass

    monkeypatch.setattr(PACKET, "Properties", Elsewhere)
    with caplog.at_level(logging.WARNING, logger="hub.intake.paho_speed"):
        assert paho_speed.install() is False
    assert PACKET.Properties is Elsewhere
    assert "using stock paho" in caplog.text


def test_a_paho_version_it_was_not_tested_on_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(PACKET, "Properties", Properties)
    monkeypatch.setattr(paho.mqtt, "__version__", "2.1.0")
    with caplog.at_level(logging.WARNING, logger="hub.intake.paho_speed"):
        assert paho_speed.install() is False
    assert not paho_speed.active()
    assert "paho-mqtt 2.1.0 is not a version it was tested on" in caplog.text
