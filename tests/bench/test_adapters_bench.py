"""The adapter benchmark's parse part runs over every adapter's fixtures (and so fails when one stops parsing them)."""

from __future__ import annotations

from bench.adapters import fixture_messages, parse_bench


def test_every_adapter_is_measured_on_fixtures_that_become_events() -> None:
    measured = parse_bench(rounds=2)
    assert set(measured) == {"native", "zigbee2mqtt", "frigate", "fall_radar", "medication_robot", "scaip"}
    for name, (_, messages) in fixture_messages().items():
        assert messages, f"{name} has no fixtures"
        assert measured[name]["events_per_s"] > 0
        assert measured[name]["us_per_message"] > 0
