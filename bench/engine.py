"""Benchmark of the rule engine: 1,000 residents, the default pack, one simulated night (20:00–08:00 local).

Prints one JSON object: evaluate_p50_us / evaluate_p99_us (one `Engine.feed` call), events_per_s (feed and tick
together, replay loop included), memory_per_resident_kib (what the engine holds after the night, traced by
tracemalloc in a second pass; the events themselves are not counted).
Goal: evaluate_p99_us <= 20 on the 2-core development machine.
"""

from __future__ import annotations

import gc
import json
import random
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alarms.directory import DeviceInfo, Directory, ResidentProfile
from alarms.engine import Engine
from alarms.rules import default_pack_path, load_rules
from hub.model import Event, EventKind

RESIDENTS = 1000
RESIDENTS_PER_SITE = 100
NIGHT_START = datetime(2026, 11, 26, 19, 0, tzinfo=UTC)  # 20:00 Stockholm
NIGHT_S = 12 * 3600
DEVICES = {
    "bed": ("bed_sensor", 3600, False),
    "motb": ("motion_bedroom", 3600, False),
    "motw": ("motion_bathroom", 3600, False),
    "moth": ("motion_hall", 3600, False),
    "pres": ("presence_bathroom", 3600, False),
    "door": ("door_entrance", 3600, False),
    "radar": ("fall_radar", 900, True),
    "button": ("alarm_button", 900, True),
    "thermo": ("thermometer", 1800, False),
    "water": ("water_sensor", 3600, False),
    "smoke": ("smoke_detector", 900, True),
}


def build_directory() -> Directory:
    """1,000 residents in 10 sites, each with eleven devices, some with a camera and a medication robot."""
    devices: dict[str, DeviceInfo] = {}
    residents: dict[str, ResidentProfile] = {}
    for n in range(RESIDENTS):
        rid, site = f"r{n:04d}", f"site{n // RESIDENTS_PER_SITE}"
        residents[rid] = ResidentProfile(rid, site, away=n % 50 == 0)
        kinds = dict(DEVICES)
        if n % 4 == 0:
            kinds["cam"] = ("camera", 3600, False)
            kinds["robot"] = ("medication_robot", 3600, False)
        for short, (kind, interval_s, safety) in kinds.items():
            device_id = f"{rid}-{short}"
            devices[device_id] = DeviceInfo(device_id, site, kind, rid, interval_s, safety)
    return Directory(
        site_zones={f"site{i}": "Europe/Stockholm" for i in range(10)}, devices=devices, residents=residents
    )


def build_night(directory: Directory, seed: int = 7) -> list[Event]:
    """Heartbeats at each device's interval plus a plausible night of movement, in time order."""
    rnd = random.Random(seed)
    raw: list[tuple[float, str, str, EventKind, float | None, str | None]] = []
    for dev in directory.devices.values():
        rid = dev.resident_id or ""
        phase = rnd.uniform(0, dev.supervision_interval_s * 0.8)
        beat_s = dev.supervision_interval_s * 0.8
        for k in range(int((NIGHT_S - phase) // beat_s) + 1):
            raw.append((phase + k * beat_s, dev.site, dev.device_id, EventKind.HEARTBEAT, None, None))
        level = 9.0 if rnd.random() < 0.01 else rnd.uniform(30, 100)
        raw.append((rnd.uniform(0, NIGHT_S), dev.site, dev.device_id, EventKind.BATTERY, level, None))
        prefix = dev.device_id.rsplit("-", 1)[0]
        if dev.kind == "thermometer":
            cold = rnd.random() < 0.05
            for k in range(0, NIGHT_S, 600):
                raw.append((k + 5.0, dev.site, dev.device_id, EventKind.TEMPERATURE, 15.2 if cold else 21.0, None))
        if dev.kind == "bed_sensor":
            for _ in range(rnd.randint(1, 3)):
                out_at = rnd.uniform(2 * 3600, NIGHT_S - 3600)
                back_s = rnd.choice([300, 600, 900, 1500])
                raw.append((out_at, dev.site, dev.device_id, EventKind.BED_EXIT, None, None))
                for m in range(0, back_s, 120):
                    raw.append((out_at + m + 30, dev.site, f"{prefix}-moth", EventKind.MOTION, None, None))
                raw.append((out_at + 60, dev.site, f"{prefix}-pres", EventKind.PRESENCE, 1.0, None))
                raw.append((out_at + back_s - 60, dev.site, f"{prefix}-pres", EventKind.PRESENCE, 0.0, None))
                raw.append((out_at + back_s, dev.site, dev.device_id, EventKind.BED_ENTRY, None, None))
        if dev.kind == "fall_radar" and rnd.random() < 0.02:
            t = rnd.uniform(0, NIGHT_S)
            raw.append((t, dev.site, dev.device_id, EventKind.FALL_DETECTED, None, f"f{rid}"))
            raw.append((t + 40, dev.site, dev.device_id, EventKind.FALL_CANCELLED, None, f"f{rid}"))
        if dev.kind == "door_entrance" and rnd.random() < 0.02:
            t = rnd.uniform(0, NIGHT_S)
            raw.append((t, dev.site, dev.device_id, EventKind.DOOR_OPEN, None, None))
            raw.append((t + 90, dev.site, dev.device_id, EventKind.DOOR_CLOSED, None, None))
    raw.sort(key=lambda item: item[0])
    return [
        Event(
            ts=NIGHT_START + timedelta(seconds=s),
            site=site,
            device_id=device_id,
            kind=kind,
            value=value,
            ref=ref,
            resident_id=directory.devices[device_id].resident_id,
        )
        for s, site, device_id, kind, value, ref in raw
    ]


def replay(engine: Engine, events: list[Event], stamps: list[float]) -> tuple[list[int], float, int]:
    """Feed the night as the hub does: its timer loop ticks when a deadline is due, ingest feeds each event.

    Returns the latency of every `feed` in ns (timers already ticked), the total seconds and the decision count.
    """
    latencies: list[int] = []
    decisions = 0
    clock = time.perf_counter_ns
    timers = engine.timers
    started = clock()
    for event, stamp in zip(events, stamps, strict=True):
        due = timers.next_due()
        if due is not None and due <= stamp:
            decisions += len(engine.tick(event.ts))
        t0 = clock()
        out = engine.feed(event, event.ts)
        latencies.append(clock() - t0)
        decisions += len(out)
    decisions += len(engine.tick(NIGHT_START + timedelta(seconds=NIGHT_S)))
    return latencies, (clock() - started) / 1e9, decisions


def main() -> None:
    """Run the benchmark and print one JSON object."""
    rules = load_rules([default_pack_path()])
    directory = build_directory()
    events = build_night(directory)
    stamps = [event.ts.timestamp() for event in events]
    gc.collect()
    gc.freeze()

    engine = Engine(rules, directory)
    engine.tick(NIGHT_START)
    latencies, elapsed_s, decisions = replay(engine, events, stamps)
    latencies.sort()

    del engine
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    engine = Engine(rules, directory)
    engine.tick(NIGHT_START)
    replay(engine, events, stamps)
    state_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    print(
        json.dumps(
            {
                "residents": RESIDENTS,
                "events": len(events),
                "decisions": decisions,
                "evaluate_p50_us": round(latencies[len(latencies) // 2] / 1000, 2),
                "evaluate_p99_us": round(latencies[int(len(latencies) * 0.99)] / 1000, 2),
                "evaluate_max_us": round(latencies[-1] / 1000, 1),
                "events_per_s": round(len(events) / elapsed_s),
                "memory_per_resident_kib": round(state_bytes / RESIDENTS / 1024, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
