"""Gauges for operations that no single event updates: event-loop lag, unaccepted alarms, silent devices.

`ops_gauges_loop` wakes every half second: how late it woke is the event loop's lag (a handler that blocks the loop
shows here before anything else), and once a second it recomputes the alarm and device gauges from the desk's open
alarms and the inventory. `alarm_gauges` and `device_gauges` are pure, so they are tested with plain data.
"""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from hub.desk.alarm import Alarm
from hub.metrics import Metrics
from hub.model import AlarmCategory, AlarmState, Site

TICK_S = 0.5
LAG_WINDOW_S = 5.0
SILENCE_RULES = frozenset({"device_silent", "camera_offline"})

DeviceKey = tuple[str, str, str]  # site, kind, vendor


def alarm_gauges(alarms: Iterable[Alarm], now: datetime) -> dict[str, float]:
    """Per category: seconds since the oldest open alarm still waiting for someone to accept it was raised (or 0)."""
    oldest = {category.value: 0.0 for category in AlarmCategory}
    for alarm in alarms:
        if alarm.state is AlarmState.RAISED:
            age_s = max((now - alarm.raised_at).total_seconds(), 0.0)
            oldest[alarm.category.value] = max(oldest[alarm.category.value], age_s)
    return oldest


def device_index(sites: Sequence[Site]) -> tuple[dict[str, DeviceKey], dict[DeviceKey, int]]:
    """Each device's (site, kind, vendor), and how many of each are installed: once per inventory, not per second
    (a walk over 24,000 devices every second was a tenth of the hub's CPU and a stall of its own under load)."""
    where: dict[str, DeviceKey] = {}
    installed: Tally[DeviceKey] = Tally()
    for site in sites:
        for device in site.devices:
            key = (site.id, device.kind, device.vendor)
            where[device.id] = key
            installed[key] += 1
    return where, dict(installed)


def silent_devices(
    where: dict[str, DeviceKey], installed: Iterable[DeviceKey], alarms: Iterable[Alarm]
) -> dict[DeviceKey, int]:
    """Devices with an open silence alarm, by (site, kind, vendor); every installed class present (0 if none)."""
    silent: Tally[DeviceKey] = Tally({key: 0 for key in installed})
    for device_id in {a.device_id for a in alarms if a.rule_id in SILENCE_RULES and a.device_id in where}:
        silent[where[device_id]] += 1
    return dict(silent)


def device_gauges(sites: Sequence[Site], alarms: Iterable[Alarm]) -> tuple[dict[DeviceKey, int], dict[DeviceKey, int]]:
    """Installed devices and devices with an open silence alarm, by (site, kind, vendor)."""
    where, installed = device_index(sites)
    return installed, silent_devices(where, installed, alarms)


async def ops_gauges_loop(
    metrics: Metrics,
    open_alarms: Callable[[], Sequence[Alarm]],
    sites: Callable[[], Sequence[Site]],
    now: Callable[[], datetime],
) -> None:
    """Keep the gauges above current until cancelled."""
    loop = asyncio.get_running_loop()
    lags: list[tuple[float, float]] = []
    last_recount = 0.0
    known: set[DeviceKey] = set()
    indexed: Sequence[Site] | None = None
    where: dict[str, DeviceKey] = {}
    installed: dict[DeviceKey, int] = {}
    while True:
        before = loop.time()
        await asyncio.sleep(TICK_S)
        woke = loop.time()
        lags = [(t, lag) for t, lag in lags if woke - t < LAG_WINDOW_S]
        lags.append((woke, max(woke - before - TICK_S, 0.0)))
        metrics.event_loop_lag.set(max(lag for _, lag in lags))
        if woke - last_recount < 1.0:
            continue
        last_recount = woke
        alarms = open_alarms()
        for category, age_s in alarm_gauges(alarms, now()).items():
            metrics.alarm_oldest_unaccepted.labels(category).set(age_s)
        current = sites()
        if current is not indexed:  # the hub replaces the list when the inventory is reloaded
            indexed = current
            where, installed = device_index(current)
        silent = silent_devices(where, installed, alarms)
        for key in known - installed.keys():  # a device class removed from the inventory stops being reported
            metrics.devices_installed.remove(*key)
            metrics.devices_silent.remove(*key)
        known = set(installed)
        for key, count in installed.items():
            metrics.devices_installed.labels(*key).set(count)
            metrics.devices_silent.labels(*key).set(silent.get(key, 0))
