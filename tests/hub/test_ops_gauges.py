"""The operations gauges from plain data: unaccepted alarms by age, silent devices by site, class and vendor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hub.desk.alarm import Alarm
from hub.metrics import Metrics
from hub.model import AlarmCategory, AlarmState, Device, Severity, Site
from hub.supervision.gauges import alarm_gauges, device_gauges, ops_gauges_loop

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def alarm(rule: str, category: AlarmCategory, age_s: float, state: AlarmState, device: str | None = None) -> Alarm:
    raised = NOW - timedelta(seconds=age_s)
    return Alarm(
        id=f"{rule}-{age_s}", key=rule, rule_id=rule, category=category, severity=Severity.HIGH, site="s", unit=None,
        resident_id=None, device_id=device, reason="", unregistered=False, raised_at=raised, updated_at=raised,
        state=state,
    )  # fmt: skip


def test_the_oldest_alarm_nobody_accepted_counts_per_category() -> None:
    alarms = [
        alarm("fall", AlarmCategory.CARE, 400, AlarmState.ACCEPTED),  # older, but someone has it
        alarm("alarm_button", AlarmCategory.CARE, 90, AlarmState.RAISED),
        alarm("bed_exit_no_return", AlarmCategory.CARE, 30, AlarmState.RAISED),
        alarm("battery_low", AlarmCategory.TECHNICAL, 7200, AlarmState.RAISED),
    ]
    assert alarm_gauges(alarms, NOW) == {"care": 90.0, "technical": 7200.0}
    assert alarm_gauges([], NOW) == {"care": 0.0, "technical": 0.0}


def test_silent_devices_are_counted_by_site_class_and_vendor_once_each() -> None:
    sites = [
        Site(id="north", devices=[
            Device(id="n-bed-1", kind="bed_sensor"), Device(id="n-bed-2", kind="bed_sensor"),
            Device(id="n-door", kind="door_entrance", vendor="zigbee2mqtt"),
        ]),
        Site(id="south", devices=[Device(id="s-bed-1", kind="bed_sensor")]),
    ]  # fmt: skip
    alarms = [
        alarm("device_silent", AlarmCategory.TECHNICAL, 60, AlarmState.RAISED, "n-bed-1"),
        alarm("device_silent", AlarmCategory.TECHNICAL, 30, AlarmState.ACCEPTED, "n-bed-1"),  # same device
        alarm("camera_offline", AlarmCategory.TECHNICAL, 30, AlarmState.RAISED, "n-door"),
        alarm("fall", AlarmCategory.CARE, 30, AlarmState.RAISED, "s-bed-1"),  # not a silence alarm
        alarm("device_silent", AlarmCategory.TECHNICAL, 30, AlarmState.RAISED, "not-in-inventory"),
    ]
    installed, silent = device_gauges(sites, alarms)
    assert installed == {
        ("north", "bed_sensor", "native"): 2,
        ("north", "door_entrance", "zigbee2mqtt"): 1,
        ("south", "bed_sensor", "native"): 1,
    }
    assert silent == {
        ("north", "bed_sensor", "native"): 1,
        ("north", "door_entrance", "zigbee2mqtt"): 1,
        ("south", "bed_sensor", "native"): 0,
    }


async def test_a_blocked_event_loop_shows_as_lag(metrics: Metrics) -> None:
    task = asyncio.get_running_loop().create_task(
        ops_gauges_loop(metrics, lambda: [], lambda: [], lambda: NOW), name="test.ops_gauges"
    )
    try:
        await asyncio.sleep(0.6)
        time.sleep(1.0)  # noqa: ASYNC251 (on purpose: a handler that blocks the loop past the next 0.5 s tick)
        for _ in range(40):
            await asyncio.sleep(0.05)
            if metrics.event_loop_lag._value.get() >= 0.4:
                break
        assert metrics.event_loop_lag._value.get() >= 0.4
        assert metrics.alarm_oldest_unaccepted.labels("care")._value.get() == 0.0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 (a metric the loop sets each second, not an event)
            await asyncio.sleep(0.05)


async def test_the_device_gauges_follow_an_inventory_reload_and_silence_as_it_opens(metrics: Metrics) -> None:
    """The inventory is indexed once per reload (the hub replaces its list), the silence counts every second."""
    inventory: list[Site] = [Site(id="north", devices=[Device(id="n-bed-1", kind="bed_sensor")])]
    open_alarms: list[Alarm] = []
    task = asyncio.get_running_loop().create_task(
        ops_gauges_loop(metrics, lambda: open_alarms, lambda: inventory, lambda: NOW), name="test.ops_gauges"
    )

    def installed(site: str, kind: str, vendor: str = "native") -> float | None:
        return metrics.registry.get_sample_value(
            "vaka_devices_installed", {"site": site, "kind": kind, "vendor": vendor}
        )

    def silent(site: str, kind: str, vendor: str = "native") -> float | None:
        return metrics.registry.get_sample_value("vaka_devices_silent", {"site": site, "kind": kind, "vendor": vendor})

    try:
        await wait_for(lambda: installed("north", "bed_sensor") == 1)
        inventory = [
            Site(id="north", devices=[Device(id="n-bed-1", kind="bed_sensor"), Device(id="n-bed-2", kind="bed_sensor")]),
            Site(id="south", devices=[Device(id="s-door", kind="door_entrance")]),
        ]  # fmt: skip
        await wait_for(lambda: installed("north", "bed_sensor") == 2 and installed("south", "door_entrance") == 1)
        open_alarms.append(alarm("device_silent", AlarmCategory.TECHNICAL, 60, AlarmState.RAISED, "s-door"))
        await wait_for(lambda: silent("south", "door_entrance") == 1)
        inventory = [Site(id="north", devices=[Device(id="n-bed-1", kind="bed_sensor")])]
        await wait_for(lambda: installed("south", "door_entrance") is None)  # a class removed stops being reported
        assert installed("north", "bed_sensor") == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
