"""`vaka vendor check`: watch a site's live MQTT traffic for a while and write a conformance report.

Two broker connections: one reads the retained messages present when the check starts (the devices' retained
status), the other every live message with its QoS and its retain flag as published (MQTT 5 "retain as published",
no retained replay). The judgement is hub/vendor/conformance.py; the supervision intervals come from the inventory.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from hub.intake.mqtt import configure_tool_client
from hub.model import TOPIC_ROOT, VakaError
from hub.settings import MqttSettings
from hub.vendor.conformance import Observation, Report, judge

SNAPSHOT_S = 2.0
PROGRESS_EVERY_S = 10.0
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)?$")


class CheckError(VakaError):
    """The check could not watch the traffic; the message says what to fix."""


def parse_duration(text: str) -> float:
    """`90`, `90s`, `10m`, `1h` → seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        msg = f"duration {text!r}: expected e.g. 30s, 10m or 1h"
        raise CheckError(msg)
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]


def _client(settings: MqttSettings, name: str) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"vaka-check-{name}-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5
    )
    configure_tool_client(client, settings, "tools-snapshot" if name == "snap" else "tools")
    return client


def watch(
    settings: MqttSettings,
    site: str,
    duration_s: float,
    progress: Callable[[float, int], None] | None = None,
) -> tuple[list[Observation], datetime, datetime]:
    """Record every message on the site's device topics for `duration_s` (blocking; run it in a thread)."""
    topic = f"{TOPIC_ROOT}/{site}/+/+"
    seen: list[Observation] = []
    subscribed = threading.Event()

    def on_live(c: paho.Client, u: object, msg: paho.MQTTMessage) -> None:
        seen.append(Observation(datetime.now(UTC), msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)))

    def on_snapshot(c: paho.Client, u: object, msg: paho.MQTTMessage) -> None:
        if msg.retain:  # without retain-as-published only the replay at subscribe carries the flag
            seen.append(Observation(datetime.now(UTC), msg.topic, bytes(msg.payload), msg.qos, True, True))

    live, snapshot = _client(settings, "live"), _client(settings, "snap")
    live.on_message, snapshot.on_message = on_live, on_snapshot
    live.on_subscribe = lambda *args: subscribed.set()
    live_options = SubscribeOptions(qos=2, retainAsPublished=True, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
    live.on_connect = lambda c, *a: c.subscribe(topic, options=live_options)
    snapshot.on_connect = lambda c, *a: c.subscribe(topic, options=SubscribeOptions(qos=2))
    try:
        live.connect(settings.host, settings.port)
        snapshot.connect(settings.host, settings.port)
    except OSError as exc:
        msg = f"cannot reach the broker at {settings.host}:{settings.port}: {exc}; check mqtt.host and mqtt.port"
        raise CheckError(msg) from None
    live.loop_start()
    snapshot.loop_start()
    try:
        if not subscribed.wait(10):
            msg = f"the broker did not confirm the subscription to {topic}: may this account read it?"
            raise CheckError(msg)
        started = datetime.now(UTC)
        began = time.monotonic()
        snapshot_open = True
        next_progress = PROGRESS_EVERY_S
        while (elapsed := time.monotonic() - began) < duration_s:
            time.sleep(min(0.2, duration_s - elapsed))
            if snapshot_open and elapsed >= SNAPSHOT_S:
                snapshot.disconnect()
                snapshot_open = False
            if progress is not None and elapsed >= next_progress:
                progress(elapsed, len(seen))
                next_progress += PROGRESS_EVERY_S
        ended = datetime.now(UTC)
    finally:
        for client in (live, snapshot):
            client.disconnect()
            client.loop_stop()
    return sorted(seen, key=lambda o: o.received_at), started, ended


def check(
    settings: MqttSettings,
    site: str,
    duration_s: float,
    intervals: dict[str, int],
    device_prefix: str = "",
    progress: Callable[[float, int], None] | None = None,
) -> Report:
    """Watch and judge: the conformance report of `site` over `duration_s`."""
    observations, started, ended = watch(settings, site, duration_s, progress)
    return judge(observations, site, started, ended, intervals, device_prefix)


def write_report(report: Report, directory: Path) -> tuple[Path, Path]:
    """Write the report as Markdown and JSON; return both paths."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"vendor-check-{report.site}-{report.started_at.strftime('%Y%m%dT%H%M%SZ')}"
    markdown, data = stem.with_suffix(".md"), stem.with_suffix(".json")
    markdown.write_text(report.to_markdown(), encoding="utf-8")
    data.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return markdown, data


def print_progress(elapsed_s: float, messages: int) -> None:
    """Long work shows progress: one line every ten seconds on stderr."""
    print(f"vaka vendor check: {elapsed_s:.0f} s, {messages} messages so far", file=sys.stderr, flush=True)
