"""The conformance check's judgement: observed MQTT traffic of one site in, a report of defects per device out.

Pure: `judge(observations, intervals, window)` takes what `vaka vendor check` recorded (hub/vendor/check.py) and the
supervision intervals the inventory declares, and returns a Report that renders as JSON and as Markdown for a
procurement officer. Each finding names the device, the check, and what was seen.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from adapters import native
from hub.model import KIND_BY_VALUE, MAX_MESSAGES_PER_S, PayloadError

CHECKS: dict[str, str] = {
    "qos": "events, telemetry and status published with QoS 1",
    "retained_status": "a retained status on …/status",
    "retained_events": "events and telemetry published without the retain flag",
    "rate": f"at most {MAX_MESSAGES_PER_S} messages per device in any one second",
    "last_will": "a Last Will that says offline when the device is lost",
    "heartbeat": "reports at least once per declared supervision interval",
    "clock": "timestamps within 30 s of the hub's clock (messages buffered while offline are welcome, not a defect)",
    "kinds": "only documented event kinds",
    "payloads": "every payload accepted",
    "seq": "care events carry seq; seq counts up by one, no gaps or repeats",
    "lifecycle": "every incident that starts also ends (same ref)",
}
# events that raise or end a care alarm: a re-delivery of one must be told from a new incident (seq)
CARE_KINDS = frozenset(
    {
        "fall_detected",
        "fall_confirmed",
        "fall_cancelled",
        "fall_finished",
        "alarm_button",
        "alarm_button_cancel",
        "alarm_reset",
        "alarm_aborted",
        "bed_exit",
        "bed_entry",
        "door_open",
        "door_closed",
        "water_leak",
        "smoke",
        "medication_missed",
    }
)
MAX_SKEW_S = 30.0
HUB_IDS = frozenset({"hub", "alarms", "checkins", "_sim"})  # second-level topics of the hub's own, never a device
DEFAULT_INTERVAL_S = 3600
# a kind that opens an incident, and the kinds that end it (same ref)
LIFECYCLES: dict[str, frozenset[str]] = {
    "fall_detected": frozenset({"fall_cancelled", "fall_finished"}),
    "fall_confirmed": frozenset({"fall_cancelled", "fall_finished"}),
    "camera_person_detected": frozenset({"camera_detection_ended"}),
    "camera_object_detected": frozenset({"camera_detection_ended"}),
    "medication_due": frozenset({"medication_taken", "medication_missed"}),
}
_ENDINGS = frozenset().union(*LIFECYCLES.values())
_probe = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class Observation:
    """One message as the check saw it."""

    received_at: datetime
    topic: str
    payload: bytes
    qos: int
    retain: bool
    at_subscribe: bool = False  # delivered because it was retained when the check subscribed


@dataclass(frozen=True, slots=True)
class Finding:
    """One defect: which device, which check, what was seen."""

    device_id: str
    check: str
    detail: str


@dataclass
class DeviceSummary:
    """What was seen of one device."""

    messages: int = 0
    events: int = 0
    interval_s: int = DEFAULT_INTERVAL_S
    interval_declared: bool = False
    max_gap_s: float = 0.0
    median_skew_s: float | None = None
    last_will: str = "not observed"
    peak_per_s: int = 0  # the most messages seen within one second
    late_messages: int = 0  # sent while offline and delivered later (ts well behind the device's own clock)
    max_late_s: float = 0.0


@dataclass
class Report:
    """The conformance report of one site's traffic over one window."""

    site: str
    device_prefix: str
    started_at: datetime
    ended_at: datetime
    devices: dict[str, DeviceSummary] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    other_topics: int = 0

    @property
    def clean(self) -> bool:
        """No defect found."""
        return not self.findings

    def failed(self, device_id: str, check: str) -> bool:
        """Whether `device_id` failed `check`."""
        return any(f.device_id == device_id and f.check == check for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "site": self.site,
            "device_prefix": self.device_prefix,
            "window": {
                "start": self.started_at.isoformat(),
                "end": self.ended_at.isoformat(),
                "duration_s": round((self.ended_at - self.started_at).total_seconds(), 1),
            },
            "clean": self.clean,
            "checks": CHECKS,
            "devices": {
                device_id: {
                    "messages": s.messages,
                    "events": s.events,
                    "supervision_interval_s": s.interval_s,
                    "interval_declared_in_inventory": s.interval_declared,
                    "longest_silence_s": round(s.max_gap_s, 1),
                    "median_clock_skew_s": None if s.median_skew_s is None else round(s.median_skew_s, 3),
                    "last_will": s.last_will,
                    "peak_messages_per_s": s.peak_per_s,
                    "late_messages": s.late_messages,
                    "latest_late_s": round(s.max_late_s, 1),
                    "failed": sorted({f.check for f in self.findings if f.device_id == device_id}),
                }
                for device_id, s in sorted(self.devices.items())
            },
            "findings": [{"device_id": f.device_id, "check": f.check, "detail": f.detail} for f in self.findings],
            "messages_on_other_topics": self.other_topics,
        }

    def to_markdown(self) -> str:
        """The report for people: a verdict, a table of checks per device, then every finding."""
        duration = (self.ended_at - self.started_at).total_seconds()
        verdict = "**No defects found.**" if self.clean else f"**{len(self.findings)} defect(s) found.**"
        lines = [
            f"# Vaka conformance report: site `{self.site}`",
            "",
            f"Traffic watched from {self.started_at.isoformat(timespec='seconds')} to "
            f"{self.ended_at.isoformat(timespec='seconds')} ({duration:.0f} s)"
            + (f", devices starting with `{self.device_prefix}`" if self.device_prefix else "")
            + f". {len(self.devices)} device(s) seen. {verdict}",
            "",
            "Checked against the device contract (docs/vendors.md, docs/contract/asyncapi.yaml):",
            "",
        ]
        lines += [f"- **{name}**: {text}" for name, text in CHECKS.items()]
        lines += ["", "| device | messages | " + " | ".join(CHECKS) + " |", "|---|---|" + "---|" * len(CHECKS)]
        for device_id, summary in sorted(self.devices.items()):
            marks = ["✗" if self.failed(device_id, check) else "✓" for check in CHECKS]
            lines.append(f"| `{device_id}` | {summary.messages} | " + " | ".join(marks) + " |")
        if self.findings:
            lines += ["", "## Findings", ""]
            lines += [f"- `{f.device_id}` — **{f.check}**: {f.detail}" for f in self.findings]
        lines += ["", "## Per device", ""]
        for device_id, s in sorted(self.devices.items()):
            skew = "n/a" if s.median_skew_s is None else f"{s.median_skew_s:+.1f} s"
            declared = "inventory" if s.interval_declared else "default, not in the inventory"
            late = (
                f", {s.late_messages} message(s) delivered late (buffered while offline, up to {s.max_late_s:.0f} s; "
                "welcome)"
                if s.late_messages
                else ""
            )
            lines.append(
                f"- `{device_id}`: supervision interval {s.interval_s} s ({declared}), longest silence "
                f"{s.max_gap_s:.1f} s, clock skew {skew}, at most {s.peak_per_s} message(s) in one second, "
                f"Last Will {s.last_will}{late}"
            )
        return "\n".join(lines) + "\n"


def judge(
    observations: list[Observation],
    site: str,
    started_at: datetime,
    ended_at: datetime,
    intervals: dict[str, int],
    device_prefix: str = "",
) -> Report:
    """Judge one site's recorded traffic against the contract."""
    report = Report(site, device_prefix, started_at, ended_at)
    by_device: dict[str, list[Observation]] = defaultdict(list)
    for obs in observations:
        parts = obs.topic.split("/")
        if len(parts) != 5 or parts[2] != site or parts[4] not in ("event", "telemetry", "status"):
            report.other_topics += 1
            continue
        if parts[3] in HUB_IDS:
            continue  # the hub's own (its retained status): no device under test
        if not parts[3].startswith(device_prefix):
            continue
        by_device[parts[3]].append(obs)
    for device_id, seen in sorted(by_device.items()):
        summary = report.devices[device_id] = DeviceSummary(messages=len(seen))
        summary.interval_declared = device_id in intervals
        summary.interval_s = intervals.get(device_id, DEFAULT_INTERVAL_S)
        _judge_device(report, device_id, summary, seen)
    return report


def _judge_device(report: Report, device_id: str, summary: DeviceSummary, seen: list[Observation]) -> None:
    def find(check: str, detail: str) -> None:
        report.findings.append(Finding(device_id, check, detail))

    live = [o for o in seen if not o.at_subscribe]
    qos0 = [o for o in live if o.qos == 0]
    if qos0:
        find("qos", f"{len(qos0)} message(s) with QoS 0 (e.g. on {qos0[0].topic.rsplit('/', 1)[1]}); QoS 1 is required")

    statuses = [o for o in seen if o.topic.endswith("/status")]
    states = [(o, _status_state(o.payload)) for o in statuses]
    if not statuses:
        find("retained_status", 'no status on …/status: publish {"state": "online"} retained on connect')
    elif unretained := [o for o in statuses if not o.retain and not o.at_subscribe]:
        find("retained_status", f"{len(unretained)} status message(s) published without the retain flag")

    # (an empty retained message is how a retained one is cleared: the fix, not the defect)
    retained = [o for o in seen if o.retain and o.payload and not o.topic.endswith("/status")]
    if retained:
        channels = sorted({o.topic.rsplit("/", 1)[1] for o in retained})
        find(
            "retained_events",
            f"{len(retained)} message(s) on {' and '.join(channels)} published with the retain flag: the broker "
            "hands a retained message to every new subscriber as if it had just happened (an old fall after each "
            "restart of the hub); publish events and telemetry without retain",
        )

    peak = _peak_per_second(live)
    summary.peak_per_s = peak
    if peak > MAX_MESSAGES_PER_S:
        find(
            "rate",
            f"published {peak} messages within one second; the contract allows {MAX_MESSAGES_PER_S} per device: a "
            "flood delays every other device's alarms on the same hub, so send readings less often or in one message",
        )

    if any(state == "offline" and not o.at_subscribe for o, state in states):
        summary.last_will = "seen (offline published when the device was lost)"

    # every message on a device topic counts as a sign of life
    times = sorted(o.received_at for o in live)
    edges = [report.started_at, *times, report.ended_at]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(edges)]
    summary.max_gap_s = max(gaps) if gaps else 0.0
    window_s = (report.ended_at - report.started_at).total_seconds()
    last_state = next((state for _, state in reversed(states) if state is not None), None)
    trailing_s = gaps[-1] if gaps else window_s
    if summary.max_gap_s > summary.interval_s:
        find(
            "heartbeat",
            f"silent for {summary.max_gap_s:.1f} s, longer than its supervision interval of {summary.interval_s} s",
        )
        if trailing_s > summary.interval_s and last_state == "online":
            summary.last_will = "missing"
            find("last_will", "went silent while its retained status still says online: no Last Will (offline)")

    skews: list[float] = []
    seqs: list[tuple[int, str, datetime]] = []
    open_incidents: dict[str, tuple[str, datetime]] = {}
    unknown: set[str] = set()
    rejected: dict[str, int] = defaultdict(int)
    lifecycle_without_ref: set[str] = set()
    care_without_seq: dict[str, int] = defaultdict(int)
    for obs in live:
        if obs.topic.endswith("/status"):
            if obs.payload and _status_state(obs.payload) is None:
                rejected["invalid_status"] += 1
            continue
        kind = _probe_kind(obs.payload)
        if kind is not None and kind not in KIND_BY_VALUE:
            unknown.add(kind)
        try:
            [event] = native.parse(obs.topic, obs.payload, obs.received_at)
        except PayloadError as exc:
            if kind is None or kind in KIND_BY_VALUE:
                rejected[exc.reason] += 1
            skew = _probe_skew(obs)
            if skew is not None:
                skews.append(skew)
            continue
        summary.events += 1
        skews.append((event.ts - obs.received_at).total_seconds())
        if event.kind.value in CARE_KINDS and not _has_field(obs.payload, "seq"):
            care_without_seq[event.kind.value] += 1
        else:
            seqs.append((event.seq, event.kind.value, event.ts))
        if event.kind.value in LIFECYCLES or event.kind.value in _ENDINGS:
            if event.ref is None:
                lifecycle_without_ref.add(event.kind.value)
            elif event.kind.value in LIFECYCLES:
                open_incidents.setdefault(event.ref, (event.kind.value, event.ts))
            elif event.ref in open_incidents and event.kind.value in LIFECYCLES[open_incidents[event.ref][0]]:
                del open_incidents[event.ref]
    if skews:
        _judge_clock(summary, skews, find)
    if unknown:
        find("kinds", "undocumented kind(s): " + ", ".join(sorted(unknown)))
    for reason, n in sorted(rejected.items()):
        find("payloads", f"{n} payload(s) rejected: {reason}")
    for kind, n in sorted(care_without_seq.items()):
        find(
            "seq",
            f"{n} {kind} event(s) without seq: a care event sent again after a reconnect cannot be told from a new "
            "one (a second alarm, or a lost one); give every message its own seq",
        )
    _judge_seq(seqs, find)
    for ref, (kind, at) in sorted(open_incidents.items()):
        find("lifecycle", f"{kind} ref {ref!r} at {at.isoformat(timespec='seconds')} never ended")
    for kind in sorted(lifecycle_without_ref):
        find(
            "lifecycle",
            f"{kind} without a ref: Vaka cannot tell which alarm its ending (or its start) belongs to; send the same "
            "ref with every stage of one incident",
        )


def _judge_clock(summary: DeviceSummary, skews: list[float], find: Any) -> None:
    """Clock skew apart from buffering: a device that sent messages while offline delivers them late, but its
    freshest message shows its clock. The least-late message is the clock's measure; the rest are late, not wrong."""
    summary.median_skew_s = statistics.median(skews)
    clock = max(skews)  # ahead: the worst; behind: even its freshest message is behind
    if clock > 2 * MAX_SKEW_S or (clock > MAX_SKEW_S and summary.median_skew_s > MAX_SKEW_S):
        find("clock", f"timestamps {clock:+.1f} s ahead of the hub's clock: keep the device clock on NTP")
    elif clock < -MAX_SKEW_S:
        find(
            "clock",
            f"even the freshest message is {-clock:.1f} s behind the hub's clock: keep the device clock on NTP",
        )
    late = [clock - s for s in skews if clock - s > MAX_SKEW_S]
    summary.late_messages = len(late)
    summary.max_late_s = max(late, default=0.0)


def _peak_per_second(seen: list[Observation]) -> int:
    """The most messages received within any one second."""
    times = sorted(o.received_at.timestamp() for o in seen)
    peak, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


def _has_field(payload: bytes, name: str) -> bool:
    try:
        data = _probe.decode(payload)
    except msgspec.DecodeError:
        return False
    return isinstance(data, dict) and name in data


def _judge_seq(seqs: list[tuple[int, str, datetime]], find: Any) -> None:
    if len(seqs) < 2:
        return
    numbers = [s for s, _, _ in seqs]
    if len(set(numbers)) == 1:
        find("seq", f"seq is {numbers[0]} on all {len(numbers)} events: count it up by one per message")
        return
    first_ts: dict[int, datetime] = {}
    repeats = 0
    for seq, _, ts in seqs:
        if seq in first_ts and first_ts[seq] != ts:
            repeats += 1
        first_ts.setdefault(seq, ts)
    ordered = sorted(first_ts)
    missing = sum(b - a - 1 for a, b in itertools.pairwise(ordered) if b - a > 1)
    if missing:
        find("seq", f"{missing} seq number(s) missing between {ordered[0]} and {ordered[-1]}")
    if repeats:
        find("seq", f"{repeats} seq number(s) re-used for a different event")


def _status_state(payload: bytes) -> str | None:
    text = payload.strip()
    if text in (b"online", b"offline"):
        return text.decode()
    try:
        data = _probe.decode(payload)
    except msgspec.DecodeError:
        return None
    state = data.get("state") if isinstance(data, dict) else None
    return state if state in ("online", "offline") else None


def _probe_kind(payload: bytes) -> str | None:
    try:
        data = _probe.decode(payload)
    except msgspec.DecodeError:
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def _probe_skew(obs: Observation) -> float | None:
    """The clock skew of a payload that was refused, when its `ts` can still be read (a refused future ts)."""
    try:
        data = _probe.decode(obs.payload)
        ts = datetime.fromisoformat(data["ts"])
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        return None
    if ts.tzinfo is None:
        return None
    return (ts - obs.received_at).total_seconds()
