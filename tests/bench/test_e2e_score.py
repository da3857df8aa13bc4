"""bench/e2e.py's scoring: what counts as raised in time, missed, a false alarm, or a device's own false positive."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bench.e2e_score import SeenAlarm, collect_alarms, score

T0 = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def incident(
    name: str, expected: str | None, resident: str, device: str, start_s: float, by_s: float
) -> dict[str, str | None]:
    return {
        "incident": name, "site": "s", "resident_id": resident, "device_id": device,
        "at": at(start_s), "expected": expected, "must_raise_by": at(by_s),
    }  # fmt: skip


def alarm(
    rule: str, category: str, resident: str, device: str, raised_s: float, closed_s: float | None = None
) -> SeenAlarm:
    closed = None if closed_s is None else T0.timestamp() + closed_s
    return SeenAlarm(
        f"{rule}-{resident}-{raised_s}", rule, category, resident, device, T0.timestamp() + raised_s, closed
    )


def test_an_alarm_in_time_counts_and_a_late_one_is_missed_with_how_late() -> None:
    truth = [
        incident("fall", "fall", "r-1", "r1-radar", 0, 100),
        incident("bed_exit_no_return", "bed_exit_no_return", "r-2", "r2-bed", 0, 1320),
    ]
    alarms = [alarm("fall", "care", "r-1", "r1-radar", 1), alarm("bed_exit_no_return", "care", "r-2", "r2-bed", 1450)]
    result = score(truth, alarms, resident_nights=2.0, start=T0.timestamp())
    assert result["recall"] == 0.5
    [missed] = result["missed"]
    assert missed["incident"] == "bed_exit_no_return"
    assert missed["seen"] == "raised 130 s (simulated) after must_raise_by"
    assert result["false_alarms_per_resident_night"] == 0.0  # late is missed, not false


def test_technical_rules_match_the_device_not_just_the_resident() -> None:
    truth = [incident("device_silent", "device_silent", "r-1", "r1-door", 0, 1920)]
    alarms = [alarm("device_silent", "technical", "r-1", "r1-smoke", 700)]
    result = score(truth, alarms, resident_nights=1.0, start=T0.timestamp() - 3600)
    assert result["recall"] == 0.0
    assert result["missed"][0]["seen"] == "no alarm"
    assert result["unexplained_technical_alarms"] == 1
    assert result["false_alarms_per_resident_night"] == 0.0  # technical alarms are not care false alarms


def test_a_second_door_alarm_and_a_withdrawn_fall_are_reported_apart() -> None:
    truth = [
        incident("wandering", "entrance_door_night", "r-1", "r1-door", 0, 120),
        incident("fall_cancelled", None, "r-2", "r2-radar", 0, 150),
    ]
    alarms = [
        alarm("entrance_door_night", "care", "r-1", "r1-door", 0.5, 30),
        alarm("entrance_door_night", "care", "r-1", "r1-door", 600, 630),  # the resident comes back in
        alarm("fall", "care", "r-2", "r2-radar", 0.2, 20),  # the radar withdraws it
        alarm("alarm_button", "care", "r-3", "r3-button", 900),  # nothing explains this one
    ]
    result = score(truth, alarms, resident_nights=4.0, start=T0.timestamp())
    assert result["recall"] == 1.0
    assert result["false_alarms_by_rule"] == {"entrance_door_night": 1, "alarm_button": 1}
    assert result["false_alarms_per_resident_night"] == 0.5
    assert result["false_alarms_repeating_an_incident_within_30_min"] == 1
    assert result["device_false_positive_alarms_per_resident_night"] == 0.25


def test_an_alarm_still_open_covers_a_second_incident_of_its_rule() -> None:
    messages = [
        {"id": "a1", "rule_id": "alarm_button", "category": "care", "state": "raised", "resident_id": "r-1",
         "device_id": "r1-button", "raised_at": at(0), "updated_at": at(0), "accepted_by": None},
        {"id": "a2", "rule_id": "fall", "category": "care", "state": "raised", "resident_id": "r-2",
         "device_id": "r2-radar", "raised_at": at(10), "updated_at": at(10), "accepted_by": None},
        {"id": "a2", "rule_id": "fall", "category": "care", "state": "cancelled", "resident_id": "r-2",
         "device_id": "r2-radar", "raised_at": at(10), "updated_at": at(30), "accepted_by": None},
    ]  # fmt: skip
    alarms = collect_alarms([(0.0, json.dumps(m).encode()) for m in messages])
    assert [(a.id, a.closed_at) for a in alarms] == [("a1", None), ("a2", T0.timestamp() + 30)]
    truth = [
        incident("alarm_button", "alarm_button", "r-1", "r1-button", 0, 120),
        incident("alarm_button", "alarm_button", "r-1", "r1-button", 3000, 3120),  # the first alarm is still open
        incident("fall", "fall", "r-2", "r2-radar", 3000, 3100),  # the earlier fall alarm was closed by then
    ]
    result = score(truth, alarms, resident_nights=1.0, start=T0.timestamp())
    assert result["covered_by_open_alarm"] == 1
    assert [m["incident"] for m in result["missed"]] == ["fall"]
    assert result["recall"] == round(2 / 3, 4)


def test_escalation_running_out_of_people_is_reported_apart_from_false_alarms() -> None:
    """The bench's hub has nobody on duty: its site alarm `nobody_reached` is the hub doing its job, not a sensor's
    false alarm (it was counted as one, 0.025 per resident-night, in a run before this test)."""
    truth = [incident("fall", "fall", "r-1", "r1-radar", 0, 100)]
    nobody = SeenAlarm("n-1", "nobody_reached", "care", None, None, T0.timestamp() + 400)
    result = score(truth, [alarm("fall", "care", "r-1", "r1-radar", 1), nobody], resident_nights=40.0, start=0.0)
    assert result["false_alarms_per_resident_night"] == 0.0
    assert result["false_alarms_by_rule"] == {}
    assert result["nobody_reached_alarms"] == 1
