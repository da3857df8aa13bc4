"""How each vendor's messages end an alarm: one row per message in docs/vendors.md ("Endings"), one case per row.

Real payload shapes (tests/adapters/fixtures) through the adapter, the rule engine with the default pack and the desk's
state machine. Three kinds of ending: the condition ended, the sender withdrew its detection, and the sender gave up on
Vaka (SCAIP `RE`, SS 91100:2014 4.4) leave a care alarm with staff, saying so in words; a person who ended it at the
device (a presence, reset or check-out at the unit, SS 91100:2014 Annex C 0088, 0093, 0111) closed it. A technical
alarm nobody has taken closes itself when its condition ends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest

from adapters import fall_radar, frigate, medication_robot, native, scaip, zigbee2mqtt
from alarms.engine import Engine
from alarms.instant import ABORT_REASON
from hub.desk.alarm import Alarm
from hub.desk.directory import DeskDirectory
from hub.desk.machine import ChangeKind, DeskMachine
from hub.model import AlarmState, Event
from hub.people.staff import Role, StaffMember
from hub.settings import DeskSettings, PatrolSettings
from tests.adapters.support import RECEIVED, fixture
from tests.alarms.home import SITE, directory, with_rule

# the home's devices under the names the fixtures give them
ALIAS = {"korridor_2": "cam", "entre": "cam", "VYR-0A1B2C": "radar", "10149471": "button", "EVD-55213": "robot"}
ANNA = StaffMember(id=1, username="anna", role=Role.STAFF, units=frozenset({(SITE, "*")}))
ALARM = fixture("scaip", "alarm.xml")


def stats(camera_fps: float) -> bytes:
    msg = json.loads(fixture("frigate", "stats.json"))
    msg["cameras"]["entre"]["camera_fps"] = camera_fps
    del msg["cameras"]["korridor_2"]
    return json.dumps(msg).encode()


def parse(message: tuple[str, bytes]) -> list[Event]:
    topic, payload = message
    adapters = {
        "zigbee2mqtt": zigbee2mqtt,
        "frigate": frigate,
        "radar": fall_radar,
        "scaip": scaip,
        "medication": medication_robot,
        "vaka": native,
    }
    adapter = adapters[topic.split("/")[0]]
    events = adapter.parse(topic, payload, RECEIVED)
    return [replace(e, site=SITE, device_id=ALIAS.get(e.device_id, e.device_id)) for e in events]


@dataclass(frozen=True)
class Ending:
    """Messages that raise an alarm, the message that ends it, and what staff then see."""

    raised_by: list[tuple[str, bytes]]
    ended_by: tuple[str, bytes]
    rule: str
    note: str  # the card's "condition ended" line and the alarm log's detail
    actor: str  # the log's actor: "device" (the device withdrew or a person at it ended it) or "rule" (a clear)
    accepted: bool = False  # staff had taken it before the ending


ROWS = {
    # zigbee2mqtt: the condition ended
    "z2m-water-dry": Ending(
        [("zigbee2mqtt/water", fixture("zigbee2mqtt", "water_leak.json"))],
        ("zigbee2mqtt/water", fixture("zigbee2mqtt", "water_dry.json")),
        "water_leak",
        "the leak sensor is dry again",
        "rule",
    ),
    "z2m-door-closed": Ending(
        [("zigbee2mqtt/door", fixture("zigbee2mqtt", "door_open.json"))],
        ("zigbee2mqtt/door", fixture("zigbee2mqtt", "door_closed.json")),
        "entrance_door_night",
        "entrance door closed",
        "rule",
    ),
    "z2m-smoke-gone": Ending(
        [("zigbee2mqtt/smoke", fixture("zigbee2mqtt", "smoke.json"))],
        ("zigbee2mqtt/smoke", fixture("zigbee2mqtt", "smoke_cleared.json")),
        "smoke",
        "the smoke detector no longer senses smoke",
        "rule",
    ),
    # frigate: the condition ended (the camera ended its detection; the camera works again)
    "frigate-end": Ending(
        [("frigate/events", fixture("frigate", "event_new.json"))],
        ("frigate/events", fixture("frigate", "event_end.json")),
        "camera_person",
        "the camera's detection ended",
        "device",
    ),
    "frigate-camera-back-accepted": Ending(
        [("frigate/stats", stats(0.0))],
        ("frigate/stats", stats(5.0)),
        "camera_offline",
        "camera back online",
        "rule",
        accepted=True,
    ),
    # fall radar: the sender withdrew its detection; the condition ended
    "radar-canceled": Ending(
        [("radar/VYR-0A1B2C/fall", fixture("fall_radar", "fall_fall_detected.json"))],
        ("radar/VYR-0A1B2C/fall", fixture("fall_radar", "fall_canceled.json")),
        "fall",
        "the fall radar withdrew the fall (person got up)",
        "device",
    ),
    "radar-finished": Ending(
        [("radar/VYR-0A1B2C/fall", fixture("fall_radar", "fall_fall_detected.json"))],
        ("radar/VYR-0A1B2C/fall", fixture("fall_radar", "fall_finished.json")),
        "fall",
        "the fall radar sees nobody on the floor any more",
        "rule",
    ),
    # scaip: the resident cancelled at the unit (help may still be needed: it stays)
    "scaip-cancelled-at-unit": Ending(
        [("scaip/u1", ALARM)],
        ("scaip/u1", fixture("scaip", "cancel.xml")),
        "alarm_button",
        "cancelled at the alarm button",
        "device",
    ),
    # scaip: the unit aborted the alarm's session with Vaka (no status 0 in time) and goes on with its next alarm
    # action; nobody ended the alarm
    "scaip-re-sender-gave-up": Ending(
        [("scaip/u1", ALARM)],
        ("scaip/u1", fixture("scaip", "abort.xml")),
        "alarm_button",
        ABORT_REASON,
        "device",
    ),
    "scaip-re-sender-gave-up-accepted": Ending(
        [("scaip/u1", ALARM)],
        ("scaip/u1", fixture("scaip", "abort.xml")),
        "alarm_button",
        ABORT_REASON,
        "device",
        accepted=True,
    ),
}


def own(device: str, kind: str, seq: int, ref: str | None = None) -> tuple[str, bytes]:
    """A message of the native contract (docs/vendors.md §1) from one of the home's devices."""
    body: dict[str, object] = {"ts": RECEIVED.isoformat(), "kind": kind, "seq": seq}
    if ref is not None:
        body["ref"] = ref
    return (f"vaka/v1/{SITE}/{device}/event", json.dumps(body).encode())


def dose(name: str, event: str) -> tuple[str, bytes]:
    """The robot's message about one dose of the night, due 90 minutes before RECEIVED."""
    msg = json.loads(fixture("medication_robot", name))
    due, at = RECEIVED - timedelta(minutes=90), RECEIVED - timedelta(minutes=5)
    msg |= {"event": event, "doseId": "d-night", "scheduledTime": due.isoformat(), "time": at.isoformat()}
    return ("medication/EVD-55213/events", json.dumps(msg).encode())


# the native contract: the kinds a device of its own sends to end what it raised
NATIVE_ROWS = {
    "native-fall-cancelled": Ending(
        [own("radar", "fall_detected", 1, "f1")],
        own("radar", "fall_cancelled", 2, "f1"),
        "fall",
        "the fall radar withdrew the fall (person got up)",
        "device",
    ),
    "native-fall-finished": Ending(
        [own("radar", "fall_detected", 1, "f1")],
        own("radar", "fall_finished", 2, "f1"),
        "fall",
        "the fall radar sees nobody on the floor any more",
        "rule",
    ),
    "native-button-cancel": Ending(
        [own("button", "alarm_button", 1, "b1")],
        own("button", "alarm_button_cancel", 2, "b1"),
        "alarm_button",
        "cancelled at the alarm button",
        "device",
    ),
    "native-aborted": Ending(
        [own("button", "alarm_button", 1, "b1")],
        own("button", "alarm_aborted", 2, "b1"),
        "alarm_button",
        ABORT_REASON,
        "device",
    ),
    "native-door-closed": Ending(
        [own("door", "door_open", 1)],
        own("door", "door_closed", 2),
        "entrance_door_night",
        "entrance door closed",
        "rule",
    ),
    "native-leak-ended": Ending(
        [own("water", "water_leak", 1)],
        own("water", "water_leak_ended", 2),
        "water_leak",
        "the leak sensor is dry again",
        "rule",
    ),
    "native-smoke-ended": Ending(
        [own("smoke", "smoke", 1)],
        own("smoke", "smoke_ended", 2),
        "smoke",
        "the smoke detector no longer senses smoke",
        "rule",
    ),
}
ROWS |= NATIVE_ROWS


def desk_after(row: Ending) -> tuple[Alarm, list[tuple[ChangeKind, str, str]]]:
    """Run the row's messages through adapter, engine and desk; the alarm and the changes the ending made."""
    engine = Engine(with_rule("camera_person", enabled=True), directory())
    desk = DeskMachine(DeskSettings(), DeskDirectory(), PatrolSettings(duty_required=False))
    alarm: Alarm | None = None
    for message in row.raised_by:
        for event in parse(message):
            for decision in engine.feed(event, event.ts):
                for change in desk.apply(decision, event.ts):
                    if change.alarm.rule_id == row.rule:
                        alarm = change.alarm
    assert alarm is not None, f"{row.rule} was not raised"
    if row.accepted:
        desk.advance(alarm.id, ANNA, AlarmState.ACCEPTED, alarm.raised_at)
    ended = []
    for event in parse(row.ended_by):
        for decision in engine.feed(event, event.ts):
            ended += [(c.kind, c.actor, c.detail) for c in desk.apply(decision, event.ts) if c.alarm is alarm]
    return alarm, ended


@pytest.mark.parametrize("name", ROWS)
def test_a_care_alarm_ended_at_the_device_stays_with_staff_and_says_how_it_ended(name: str) -> None:
    row = ROWS[name]
    alarm, changes = desk_after(row)
    assert changes == [(ChangeKind.CONDITION_ENDED, row.actor, row.note)]
    assert (alarm.is_open, alarm.condition_note) == (True, row.note)
    assert alarm.state is (AlarmState.ACCEPTED if row.accepted else AlarmState.RAISED)


def test_a_technical_alarm_nobody_took_closes_itself_when_the_device_is_fine_again() -> None:
    row = replace(ROWS["frigate-camera-back-accepted"], accepted=False)
    alarm, changes = desk_after(row)
    assert changes == [(ChangeKind.CLOSE, "rule", "camera back online")]
    assert alarm.state is AlarmState.CANCELLED


@pytest.mark.parametrize("accepted", [False, True])
@pytest.mark.parametrize(
    ("raised", "ended"),
    [
        # SCAIP: sent as an information update in the alarm's own session, so with the same ref
        (("scaip/u1", ALARM), ("scaip/u1", fixture("scaip", "presence.xml"))),
        (("scaip/u1", ALARM), ("scaip/u1", fixture("scaip", "manual_reset.xml"))),
        (("scaip/u1", ALARM), ("scaip/u1", fixture("scaip", "check_out.xml"))),
        (own("button", "alarm_button", 1, "b1"), own("button", "alarm_reset", 2, "b1")),
    ],
    ids=["scaip-presence", "scaip-manual-reset", "scaip-check-out", "native-alarm-reset"],
)
def test_a_person_ending_the_alarm_at_the_unit_closes_it(
    raised: tuple[str, bytes], ended: tuple[str, bytes], accepted: bool
) -> None:
    row = Ending([raised], ended, "alarm_button", "reset at the alarm unit", "device")
    alarm, changes = desk_after(replace(row, accepted=accepted))
    assert changes == [(ChangeKind.CLOSE, "device", "reset at the alarm unit")]
    assert (alarm.is_open, alarm.state, alarm.condition_note) == (
        False,
        AlarmState.CANCELLED,
        "reset at the alarm unit",
    )


def test_a_reset_in_a_session_of_its_own_names_no_alarm_and_leaves_it_with_staff() -> None:
    # a new ref: Vaka cannot tell which alarm the person ended, so it does not guess (and no alarm rings for it)
    reset = fixture("scaip", "manual_reset.xml").replace(b"1193308443", b"1193308999")
    row = Ending([("scaip/u1", ALARM)], ("scaip/u1", reset), "alarm_button", "", "")
    alarm, changes = desk_after(row)
    assert (changes, alarm.condition_ended_at, alarm.state, alarm.count) == ([], None, AlarmState.RAISED, 1)


@pytest.mark.parametrize(
    ("raised", "then", "rule"),
    [
        # a Zigbee2MQTT SOS button has no cancel: the press stays with staff until they close it
        (
            ("zigbee2mqtt/button", fixture("zigbee2mqtt", "sos_button.json")),
            ("zigbee2mqtt/button", fixture("zigbee2mqtt", "remote_single.json")),
            "alarm_button",
        ),
        # a missed dose stays with staff: the same dose taken late does not undo it
        (dose("dose_missed.json", "DOSE_MISSED"), dose("dose_taken.json", "DOSE_TAKEN"), "medication_missed"),
    ],
    ids=["z2m-sos", "medication-missed"],
)
def test_messages_that_end_nothing_leave_the_alarm_as_it_was(
    raised: tuple[str, bytes], then: tuple[str, bytes], rule: str
) -> None:
    alarm, changes = desk_after(Ending([raised], then, rule, "", ""))
    assert (changes, alarm.condition_ended_at, alarm.state) == ([], None, AlarmState.RAISED)
