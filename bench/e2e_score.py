"""Scoring for bench/e2e.py: alarms seen on MQTT against the simulator's ground truth."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MATCH_SLACK_S = 5.0  # an alarm may carry a time a few simulated seconds before its incident (clock interpolation)


@dataclass(slots=True)
class SeenAlarm:
    """One alarm as seen on `vaka/v1/{site}/alarms/#`."""

    id: str
    rule_id: str
    category: str
    resident_id: str | None
    device_id: str | None
    raised_at: float
    closed_at: float | None = None


def _ts(value: str | None) -> float:
    return datetime.fromisoformat(str(value)).timestamp()


def collect_alarms(kept: list[tuple[float, bytes]]) -> list[SeenAlarm]:
    """Every alarm seen, with its raise time and, if it closed, its close time (simulated)."""
    alarms: dict[str, SeenAlarm] = {}
    for _t, payload in kept:
        msg = json.loads(payload)
        alarm = alarms.get(msg["id"])
        if alarm is None:
            alarm = alarms[msg["id"]] = SeenAlarm(
                msg["id"], msg["rule_id"], msg["category"], msg["resident_id"], msg["device_id"], _ts(msg["raised_at"])
            )
        if msg["state"] in ("cancelled", "resolved"):
            alarm.closed_at = _ts(msg["updated_at"])
    return list(alarms.values())


def _same_subject(alarm: SeenAlarm, incident: dict[str, str | None]) -> bool:
    if alarm.device_id is not None and alarm.device_id == incident["device_id"]:
        return True
    return alarm.category == "care" and alarm.resident_id == incident["resident_id"]


def score(
    truth: list[dict[str, str | None]], alarms: list[SeenAlarm], resident_nights: float, start: float
) -> dict[str, Any]:
    """Recall against the ground truth, missed incidents with what was seen instead, and unexplained care alarms."""
    expected = [i for i in truth if i["expected"] is not None]
    explained: set[str] = set()
    missed: list[dict[str, Any]] = []
    covered = 0
    for inc in expected:
        at, by = _ts(inc["at"]), _ts(inc["must_raise_by"])
        same = [a for a in alarms if a.rule_id == inc["expected"] and _same_subject(a, inc)]
        in_time = [a for a in same if at - MATCH_SLACK_S <= a.raised_at <= by]
        # an alarm of the same rule still open (nobody resolves alarms here) takes the incident as an update
        still_open = [a for a in same if a.raised_at < at and (a.closed_at is None or a.closed_at > at)]
        explained.update(a.id for a in in_time + still_open)
        if in_time:
            continue
        if still_open:
            covered += 1
            continue
        late = [a for a in same if a.raised_at > by]
        explained.update(a.id for a in late)
        if late:
            seen = f"raised {min(a.raised_at for a in late) - by:.0f} s (simulated) after must_raise_by"
        else:
            nearby = sorted({a.rule_id for a in alarms if _same_subject(a, inc) and at - 600 <= a.raised_at <= by})
            seen = "no alarm" + (f"; for the same subject: {', '.join(nearby)}" if nearby else "")
        missed.append(
            {k: inc[k] for k in ("incident", "expected", "resident_id", "device_id", "at", "must_raise_by")}
            | {"seen": seen}
        )
    no_alarm_expected = [i for i in truth if i["expected"] is None]
    # the bench's hub has no staff on duty, so every escalation runs out of people: that site alarm is the hub
    # working as it should (issue 17), not a sensor's false alarm
    nobody_reached = [a for a in alarms if a.rule_id == "nobody_reached"]
    unexplained = [a for a in alarms if a.id not in explained and a not in nobody_reached]
    device_false_positives = [
        a
        for a in unexplained
        if any(
            _same_subject(a, i) and _ts(i["at"]) - MATCH_SLACK_S <= a.raised_at <= _ts(i["must_raise_by"]) + 60
            for i in no_alarm_expected
        )
    ]
    false_alarms = [a for a in unexplained if a.category == "care" and a not in device_false_positives]
    # the simulator's reference checker takes a rule firing again for the same resident within 30 min as one alarm
    repeats = [
        a
        for a in false_alarms
        if any(
            a.rule_id == i["expected"] and _same_subject(a, i) and 0 < a.raised_at - _ts(i["must_raise_by"]) <= 1800
            for i in expected
        )
    ]
    technical = [a for a in unexplained if a.category != "care" and a not in device_false_positives]
    by_rule = Counter(a.rule_id for a in false_alarms)
    return {
        "recall": round((len(expected) - len(missed)) / len(expected), 4) if expected else None,
        "incidents": len(expected),
        "incidents_no_alarm_expected": len(no_alarm_expected),
        "covered_by_open_alarm": covered,
        "missed": missed,
        "false_alarms_per_resident_night": round(len(false_alarms) / resident_nights, 4),
        "false_alarms_by_rule": dict(by_rule),
        "false_alarms_repeating_an_incident_within_30_min": len(repeats),
        "device_false_positive_alarms_per_resident_night": round(
            sum(a.category == "care" for a in device_false_positives) / resident_nights, 4
        ),
        "unexplained_technical_alarms": len(technical),
        "unexplained_technical_by_rule": dict(Counter(a.rule_id for a in technical)),
        # the hub's engine arms supervision on the wall clock before the first simulated clock message arrives
        "unexplained_technical_alarms_in_first_2_min": sum(a.raised_at < start + 120 for a in technical),
        "nobody_reached_alarms": len(nobody_reached),
        "alarms_seen": len(alarms),
    }
