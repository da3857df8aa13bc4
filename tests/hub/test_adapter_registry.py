"""Adapters are found through the `vaka.adapters` entry-point group: the built-ins and a vendor's own package."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.intake.adapter_registry import available_adapters, load_adapter
from hub.model import EventKind
from hub.settings import SettingsError

VENDOR_MODULE = """
from hub.model import Event, EventKind

TOPIC_FILTERS = ("acme/#",)


def parse(topic, payload, received_at):
    return [Event(ts=received_at, site="", device_id=topic.split("/")[1], kind=EventKind.ALARM_BUTTON, topic=topic)]
"""


@pytest.fixture
def vendor_package(tmp_path: Path, unique: str) -> Iterator[str]:
    """A vendor's adapter installed as its own distribution (a package and its dist-info on sys.path)."""
    package = f"acme_vaka_{unique}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "radar.py").write_text(VENDOR_MODULE)
    dist_info = tmp_path / f"{package}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[vaka.adapters]\nacme_radar_{unique} = {package}.radar\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield f"acme_radar_{unique}"
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith(package)]:
            del sys.modules[name]


def test_built_in_adapters_are_registered_by_name() -> None:
    names = available_adapters()
    for name in ("native", "zigbee2mqtt", "frigate", "fall_radar", "medication_robot"):
        assert names[name] == f"adapters.{name}"
        assert callable(load_adapter(name).parse)


def test_a_vendor_package_registered_by_entry_point_is_found_and_parses(vendor_package: str) -> None:
    assert vendor_package in available_adapters()
    adapter = load_adapter(vendor_package)
    [event] = adapter.parse("acme/r1/event", b"{}", datetime(2026, 11, 29, 3, tzinfo=UTC))
    assert (event.device_id, event.kind) == ("r1", EventKind.ALARM_BUTTON)


def test_an_unknown_adapter_name_says_what_is_installed() -> None:
    with pytest.raises(SettingsError, match=r"installed: .*zigbee2mqtt"):
        load_adapter("no_such_vendor")
