"""The conformance judgement on recorded traffic: each check against a device that breaks it, in plain sentences.

(tests/hub/vendor/test_check.py runs the whole `vaka vendor check` against devices on the real broker.)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hub.model import MAX_MESSAGES_PER_S
from hub.vendor.conformance import Observation, Report, judge

SITE = "s1"
START = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
END = START + timedelta(minutes=10)


def message(
    at: float,
    kind: str = "heartbeat",
    *,
    seq: int | None = None,
    ts_at: float | None = None,
    channel: str = "event",
    retain: bool = False,
    ref: str | None = None,
) -> Observation:
    """What the check saw `at` seconds into the window from device d1: an event sent at `ts_at` (default `at`)."""
    body: dict[str, object] = {"ts": (START + timedelta(seconds=at if ts_at is None else ts_at)).isoformat()}
    body["kind"] = kind
    if seq is not None:
        body["seq"] = seq
    if ref is not None:
        body["ref"] = ref
    topic = f"vaka/v1/{SITE}/d1/{channel}"
    return Observation(START + timedelta(seconds=at), topic, json.dumps(body).encode(), 1, retain)


def status(at: float) -> Observation:
    return Observation(START + timedelta(seconds=at), f"vaka/v1/{SITE}/d1/status", b'{"state": "online"}', 1, True)


def report_of(*observations: Observation) -> Report:
    """A device that is otherwise well-behaved: a retained status and a heartbeat every 50 s with seq."""
    beats = [message(t, seq=i) for i, t in enumerate(range(25, 600, 50))]  # seq 0 … 11
    return judge([status(0), *beats, *observations], SITE, START, END, {"d1": 60})


def findings(report: Report, check: str) -> list[str]:
    return [f.detail for f in report.findings if f.check == check]


def test_the_well_behaved_device_is_clean() -> None:
    report = report_of()
    assert report.clean, report.findings
    assert report.devices["d1"].peak_per_s == 1


def test_the_hubs_own_retained_status_is_not_judged_as_a_device() -> None:
    hub = Observation(START, f"vaka/v1/{SITE}/hub/status", b'{"state":"online"}', 1, True)
    report = report_of(hub)
    assert (report.clean, sorted(report.devices)) == (True, ["d1"])


def test_an_event_published_retained_is_named_with_what_it_does() -> None:
    report = report_of(
        message(5, "fall_detected", seq=12, ref="f1", retain=True), message(6, "fall_finished", seq=13, ref="f1")
    )
    [detail] = findings(report, "retained_events")
    assert detail.startswith("1 message(s) on event published with the retain flag")
    assert "as if it had just happened" in detail
    telemetry = report_of(message(7, "temperature", seq=12, channel="telemetry", retain=True))
    assert findings(telemetry, "retained_events")[0].startswith("1 message(s) on telemetry")


def test_a_flood_is_measured_against_the_contracts_rate_limit() -> None:
    flood = [message(101 + i / 400, seq=12 + i) for i in range(300)]  # 300 in 0.75 s
    [detail] = findings(report_of(*flood), "rate")
    assert detail.startswith(f"published 300 messages within one second; the contract allows {MAX_MESSAGES_PER_S}")
    steady = [message(101 + i / MAX_MESSAGES_PER_S, seq=12 + i) for i in range(30)]  # 10 a second for 3 s
    assert findings(report_of(*steady), "rate") == []


def test_a_care_event_without_seq_is_named_as_such_not_as_missing_numbers() -> None:
    report = report_of(message(5, "fall_detected", ref="f1"), message(30, "fall_finished", seq=12, ref="f1"))
    assert findings(report, "seq") == [
        "1 fall_detected event(s) without seq: a care event sent again after a reconnect cannot be told from a new "
        "one (a second alarm, or a lost one); give every message its own seq"
    ]


def test_a_fall_without_ref_says_what_it_breaks() -> None:
    report = report_of(message(5, "fall_detected", seq=12))
    assert any("without a ref: Vaka cannot tell which alarm" in d for d in findings(report, "lifecycle"))


def test_telemetry_buffered_while_offline_is_late_not_a_clock_defect() -> None:
    # offline from 200 to 290 s: nine readings taken meanwhile arrive together at 290 s, up to 90 s old
    buffered = [message(290, "temperature", seq=12 + i, ts_at=200 + 10 * i, channel="telemetry") for i in range(9)]
    report = report_of(*buffered)
    assert findings(report, "clock") == []
    summary = report.devices["d1"]
    assert (summary.late_messages, round(summary.max_late_s)) == (6, 90)  # more than 30 s late
    assert "delivered late (buffered while offline, up to 90 s; welcome)" in report.to_markdown()


def test_a_clock_behind_is_a_defect_even_in_the_freshest_message() -> None:
    behind = [message(t, seq=i, ts_at=t - 90) for i, t in enumerate(range(0, 600, 50))]
    report = judge([status(0), *behind], SITE, START, END, {"d1": 60})
    assert findings(report, "clock") == [
        "even the freshest message is 90.0 s behind the hub's clock: keep the device clock on NTP"
    ]
    ahead = [message(t, seq=i, ts_at=t + 120) for i, t in enumerate(range(0, 600, 50))]
    report = judge([status(0), *ahead], SITE, START, END, {"d1": 60})
    assert findings(report, "clock") == ["timestamps +120.0 s ahead of the hub's clock: keep the device clock on NTP"]


def test_clearing_a_retained_event_is_not_a_defect() -> None:
    cleared = Observation(START + timedelta(seconds=5), f"vaka/v1/{SITE}/d1/event", b"", 1, True)
    assert findings(report_of(cleared), "retained_events") == []
