"""The canonical vocabulary of Vaka: events, the inventory and the alarm lifecycle.

`adapters/` and `alarms/` import nothing from `hub/` but this module, so it holds no I/O and
depends only on the standard library, msgspec (the hot-path wire format) and pydantic (inventory).

`Event` is a slotted frozen dataclass rather than a pydantic model: one is built for every MQTT
message on the hot path, where a pydantic model costs several microseconds more per event.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TOPIC_ROOT = "vaka/v1"
MAX_PAYLOAD_BYTES = 64 * 1024
# the contract's rate limit: messages one device may publish in any one second (events, telemetry and status together)
MAX_MESSAGES_PER_S = 10
MAX_FUTURE_SKEW = timedelta(hours=1)
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
# the hub's self-test device (hub/supervision/canary.py) and the two topics it publishes; the broker accounts grant them
CANARY_SITE = "vaka-canary"
CANARY_DEVICE = "canary"
CANARY_TOPIC = f"{TOPIC_ROOT}/{CANARY_SITE}/{CANARY_DEVICE}/event"
CANARY_TELEMETRY_TOPIC = f"{TOPIC_ROOT}/{CANARY_SITE}/{CANARY_DEVICE}/telemetry"


class VakaError(Exception):
    """Base of every error Vaka raises on purpose."""


class PayloadError(VakaError):
    """A message that cannot become an Event; `reason` is short, stable and safe to log and count."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class EventKind(enum.StrEnum):
    """What a device says happened. The documented vocabulary of the native contract."""

    # safety and care
    FALL_DETECTED = "fall_detected"
    FALL_CONFIRMED = "fall_confirmed"
    FALL_CANCELLED = "fall_cancelled"
    FALL_FINISHED = "fall_finished"
    ALARM_BUTTON = "alarm_button"
    ALARM_BUTTON_CANCEL = "alarm_button_cancel"
    ALARM_RESET = "alarm_reset"
    ALARM_ABORTED = "alarm_aborted"
    BED_EXIT = "bed_exit"
    BED_ENTRY = "bed_entry"
    DOOR_OPEN = "door_open"
    DOOR_CLOSED = "door_closed"
    MOTION = "motion"
    PRESENCE = "presence"
    WATER_LEAK = "water_leak"
    WATER_LEAK_ENDED = "water_leak_ended"
    SMOKE = "smoke"
    SMOKE_ENDED = "smoke_ended"
    TEMPERATURE = "temperature"
    HUMIDITY = "humidity"
    # medication robots and care robots
    MEDICATION_TAKEN = "medication_taken"
    MEDICATION_MISSED = "medication_missed"
    MEDICATION_DUE = "medication_due"
    MEDICATION_LATE = "medication_late"
    ROBOT_STATE = "robot_state"
    ROBOT_TASK = "robot_task"
    # camera event sources (events only: no images ever)
    CAMERA_PERSON_DETECTED = "camera_person_detected"
    CAMERA_CHECK_IN = "camera_check_in"
    CAMERA_OBJECT_DETECTED = "camera_object_detected"
    CAMERA_DETECTION_ENDED = "camera_detection_ended"
    CAMERA_REVIEW = "camera_review"
    # device health
    BATTERY = "battery"
    HEARTBEAT = "heartbeat"
    TAMPER = "tamper"
    DEVICE_ONLINE = "device_online"
    DEVICE_OFFLINE = "device_offline"
    DEVICE_FAULT = "device_fault"


EVENT_KIND_DOCS: dict[EventKind, str] = {
    EventKind.FALL_DETECTED: "a fall-detection radar or wearable saw a fall (may later be confirmed or cancelled, same `ref`)",
    EventKind.FALL_CONFIRMED: "the device confirmed its earlier fall detection (same `ref`)",
    EventKind.FALL_CANCELLED: "the device withdrew its fall detection, e.g. the person got up (same `ref`)",
    EventKind.FALL_FINISHED: "the device's fall lifecycle ended: nobody on the floor any more (same `ref`)",
    EventKind.ALARM_BUTTON: "the resident pressed the alarm button",
    EventKind.ALARM_BUTTON_CANCEL: "the resident cancelled the alarm at the button",
    EventKind.ALARM_RESET: (
        "a person ended the alarm at the unit with a reset or presence button (same `ref`; SCAIP status codes 0088 "
        "presence upon alarm, 0093 manual reset, 0111 check-out): it closes; send it only for that, a resident's "
        "cancel is `alarm_button_cancel`"
    ),
    EventKind.ALARM_ABORTED: (
        "the alarm unit gave up on this receiver for the alarm (same `ref`; SCAIP `RE`, SS 91100:2014 4.4: no answer "
        "in time, it goes on with its next alarm action, e.g. another receiver): nobody ended it, it stays with staff"
    ),
    EventKind.BED_EXIT: "the bed sensor saw the resident leave the bed",
    EventKind.BED_ENTRY: "the bed sensor saw the resident return to bed",
    EventKind.DOOR_OPEN: "a door contact opened",
    EventKind.DOOR_CLOSED: "a door contact closed",
    EventKind.MOTION: "a motion sensor saw movement",
    EventKind.PRESENCE: "presence in a room; value 1 present, 0 empty",
    EventKind.WATER_LEAK: "a water leak sensor is wet",
    EventKind.WATER_LEAK_ENDED: "the water leak sensor is dry again: the condition ended (the alarm stays with staff)",
    EventKind.SMOKE: "a smoke detector is in alarm",
    EventKind.SMOKE_ENDED: "the smoke detector no longer senses smoke: the condition ended (the alarm stays with staff)",
    EventKind.TEMPERATURE: "room temperature; value in unit `Cel`",
    EventKind.HUMIDITY: "relative humidity; value in unit `%`",
    EventKind.MEDICATION_TAKEN: "the medication robot handed out a dose and it was taken",
    EventKind.MEDICATION_MISSED: "a dose was not taken within the robot's own window",
    EventKind.MEDICATION_DUE: "a dose is due now (attrs.dose_id); not an alarm, the start of the dose's lifecycle",
    EventKind.MEDICATION_LATE: "a due dose is not yet taken past the robot's grace time; taken or missed follows",
    EventKind.ROBOT_STATE: "a care or medication robot's state; attrs.state names it",
    EventKind.ROBOT_TASK: "a robot task started or finished; attrs.task and attrs.status",
    EventKind.CAMERA_PERSON_DETECTED: "a camera's analytics saw a person (an event, never an image)",
    EventKind.CAMERA_CHECK_IN: "a digital check-in (tillsyn) by camera took place; attrs.outcome",
    EventKind.CAMERA_OBJECT_DETECTED: "a camera's analytics saw something other than a person (attrs.label); no alarm",
    EventKind.CAMERA_DETECTION_ENDED: "a camera detection ended (same `ref` as its start)",
    EventKind.CAMERA_REVIEW: "a camera review item (a group of detections) changed; attrs.severity, attrs.objects",
    EventKind.BATTERY: "battery level; value in unit `%`",
    EventKind.HEARTBEAT: "the device is alive; sent at its supervision interval",
    EventKind.TAMPER: "the device was opened or moved",
    EventKind.DEVICE_ONLINE: "the device's retained status topic says online",
    EventKind.DEVICE_OFFLINE: "the device's retained status topic says offline (also its Last Will)",
    EventKind.DEVICE_FAULT: "the device reports a fault of its own (attrs.code, attrs.text)",
}

KIND_BY_VALUE: dict[str, EventKind] = {k.value: k for k in EventKind}


@dataclass(frozen=True, slots=True)
class Event:
    """One normalised fact from a device. `ts` is UTC and timezone-aware.

    `resident_id` is the pseudonymous id from the inventory, filled in by ingest; adapters leave it None.
    `(device_id, ts, seq)` identifies an event: a re-delivered message yields an equal key and is stored once.
    """

    ts: datetime
    site: str
    device_id: str
    kind: EventKind
    value: float | None = None
    unit: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    seq: int = 0
    ref: str | None = None
    resident_id: str | None = None
    # the topic the event came on: lets the store lane tell care events from telemetry
    topic: str = field(default="", compare=False)


CARE_KINDS: frozenset[EventKind] = frozenset(
    {
        EventKind.FALL_DETECTED,
        EventKind.FALL_CONFIRMED,
        EventKind.FALL_CANCELLED,
        EventKind.FALL_FINISHED,
        EventKind.ALARM_BUTTON,
        EventKind.ALARM_BUTTON_CANCEL,
        EventKind.BED_EXIT,
        EventKind.BED_ENTRY,
        EventKind.DOOR_OPEN,
        EventKind.DOOR_CLOSED,
        EventKind.WATER_LEAK,
        EventKind.SMOKE,
        EventKind.MEDICATION_MISSED,
        EventKind.CAMERA_PERSON_DETECTED,
        EventKind.CAMERA_DETECTION_ENDED,
        EventKind.DEVICE_OFFLINE,
        EventKind.DEVICE_ONLINE,
    }
)


def check_event_time(ts: datetime, received_at: datetime) -> datetime:
    """Return `ts` in UTC, or raise PayloadError when it is naive or absurd (before 2000, or in the future)."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise PayloadError("naive_timestamp", "ts needs an offset, e.g. 2026-11-26T03:00:00+01:00")
    ts = ts.astimezone(UTC)
    if ts < EARLIEST_EVENT or ts > received_at + MAX_FUTURE_SKEW:
        raise PayloadError("absurd_timestamp", ts.isoformat())
    return ts


def check_value(value: float | None) -> float | None:
    """Reject NaN and infinities, which JSON cannot carry and PostgreSQL would store as surprises."""
    if value is not None and not math.isfinite(value):
        raise PayloadError("non_finite_value")
    return value


# --- the native MQTT contract (wire format, decoded with msgspec) -------------------------------------------------


class NativePayload(msgspec.Struct, forbid_unknown_fields=True):
    """Payload of `vaka/v1/{site}/{device_id}/event` and `.../telemetry`: one JSON object per event."""

    ts: Annotated[
        datetime,
        msgspec.Meta(
            description="when it happened, RFC 3339 with an offset (2026-11-29T03:12:00+01:00); at most 1 h ahead"
        ),
    ]
    kind: Annotated[EventKind, msgspec.Meta(description="what happened; the vocabulary is the EventKind enum")]
    value: Annotated[float | None, msgspec.Meta(description="a measured value, finite; its unit in `unit`")] = None
    unit: Annotated[str | None, msgspec.Meta(description="UCUM unit of `value`: Cel, %, … (≤ 16 characters)")] = None
    attrs: Annotated[
        dict[str, Any], msgspec.Meta(description="further facts, kept as they are; never names or images")
    ] = msgspec.field(default_factory=dict)
    seq: Annotated[
        int,
        msgspec.Meta(
            description="the device's own counter, +1 per message; with ts it identifies the event, so a resend is "
            "stored once"
        ),
    ] = 0
    ref: Annotated[
        str | None,
        msgspec.Meta(description="ties the stages of one incident together (a fall and its cancel); ≤ 128 characters"),
    ] = None


class NativeStatus(msgspec.Struct, forbid_unknown_fields=True):
    """Payload of the retained `vaka/v1/{site}/{device_id}/status` topic, also the device's Last Will."""

    state: Annotated[Literal["online", "offline"], msgspec.Meta(description="online on connect; offline as Last Will")]
    ts: Annotated[datetime | None, msgspec.Meta(description="when the state began, RFC 3339 with an offset")] = None


class AlarmMessage(msgspec.Struct, forbid_unknown_fields=True):
    """Payload Vaka publishes on `vaka/v1/{site}/alarms/{alarm_id}` at every state change (hub.desk.alarm.Alarm.public)."""

    id: Annotated[str, msgspec.Meta(description="the alarm's id")]
    rule_id: Annotated[str, msgspec.Meta(description="the rule that raised it, e.g. fall, alarm_button")]
    category: Annotated[Literal["care", "technical"], msgspec.Meta(description="care alarms go to the patrol")]
    severity: Annotated[Literal["low", "medium", "high", "critical"], msgspec.Meta(description="how urgent")]
    state: Annotated[
        Literal["raised", "accepted", "en_route", "on_site", "resolved", "cancelled"],
        msgspec.Meta(description="where the alarm stands in its lifecycle"),
    ]
    resident_id: Annotated[str | None, msgspec.Meta(description="pseudonymous resident id, never a name")]
    device_id: Annotated[str | None, msgspec.Meta(description="the device that raised it")]
    raised_at: Annotated[datetime, msgspec.Meta(description="RFC 3339")]
    updated_at: Annotated[datetime, msgspec.Meta(description="RFC 3339, the last change")]
    accepted_by: Annotated[str | None, msgspec.Meta(description="the staff member's user name once accepted")]
    count: Annotated[int, msgspec.Meta(description="how often the rule matched while the alarm was open")] = 1
    incidents: Annotated[
        int, msgspec.Meta(description="how many separate incidents (a new press, a new fall ref) it holds")
    ] = 1
    condition_ended_at: Annotated[
        datetime | None,
        msgspec.Meta(description="RFC 3339, when the device or rule said the condition ended; staff still close it"),
    ] = None


# --- inventory -------------------------------------------------------------------------------------------------------

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class Resident(BaseModel):
    """A person cared for, known to Vaka only by a pseudonym and a room."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID_PATTERN, description="pseudonymous id, never a name or personal number")
    room: str = Field(min_length=1, max_length=32, description="room or flat label the night staff use")
    unit: str = Field(default="default", pattern=_ID_PATTERN, description="care unit (night patrol area)")
    away: bool = Field(
        default=False,
        description="away or in hospital: raises no care alarms; set with `vaka resident away`, not by site load",
    )


class Device(BaseModel):
    """A device in a home, with how often it must report to count as alive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID_PATTERN, description="device id as it appears in its MQTT topic")
    kind: str = Field(min_length=1, max_length=32, description="bed_sensor, fall_radar, alarm_button, camera, …")
    vendor: str = Field(default="native", max_length=32, description="adapter that understands it")
    resident: str | None = Field(default=None, pattern=_ID_PATTERN, description="resident id, if personal")
    supervision_interval_s: int = Field(
        default=3600, ge=10, le=7 * 86400, description="silence longer than this is a technical alarm"
    )
    maintenance: bool = Field(
        default=False,
        description="out for service: raises no technical alarms; set with `vaka device maintenance`, not by site load",
    )
    safety: bool = Field(
        default=False, description="a safety device (fall radar, alarm button, smoke): its silence may wake the patrol"
    )
    installed: date | None = Field(
        default=None, description="the day it was installed (default: the day it first enters the inventory)"
    )
    removed: date | None = Field(default=None, description="the day it was taken away: not counted as installed after")

    @model_validator(mode="after")
    def _removed_after_installed(self) -> Device:
        if self.installed and self.removed and self.removed < self.installed:
            msg = f"device {self.id}: removed {self.removed} is before installed {self.installed}"
            raise ValueError(msg)
        return self


class Gateway(BaseModel):
    """A bridge that publishes a vendor's own topics (zigbee2mqtt, Frigate) for a site, with a broker account of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID_PATTERN, description="gateway id; also its MQTT user name and client id")
    topics: list[str] = Field(
        min_length=1, description="topic filters it publishes under, e.g. zigbee2mqtt/# (never vaka/... or $...)"
    )

    @field_validator("topics")
    @classmethod
    def _vendor_topics_only(cls, value: list[str]) -> list[str]:
        for topic in value:
            if not topic or topic.startswith(("vaka/", "$", "/", "#", "+")) or topic == "vaka":
                msg = f"gateway topic {topic!r} must be a vendor prefix such as zigbee2mqtt/# (not vaka/..., $..., #)"
                raise ValueError(msg)
        return value


class Integration(BaseModel):
    """A system that follows alarm states (a DECT or nurse-call bridge): read-only, for the sites it lists."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID_PATTERN, description="integration id; also its MQTT user name and client id")
    sites: list[str] = Field(min_length=1, description="site ids whose alarm states it may read")


class Site(BaseModel):
    """A care site: its zone, residents and devices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID_PATTERN)
    name: str = Field(default="", max_length=80)
    timezone: str = Field(default="Europe/Stockholm", description="IANA zone for schedules and displays")
    residents: list[Resident] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)
    gateways: list[Gateway] = Field(default_factory=list, description="vendor-format bridges with broker accounts")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            msg = f"unknown time zone {value!r}"
            raise ValueError(msg) from exc
        return value


class Contact(BaseModel):
    """Someone staff may call about a resident (next of kin, home-care nurse, locksmith)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=120, description="who")
    phone: str = Field(default="", max_length=40, description="number to call")
    relation: str = Field(default="", max_length=60, description="daughter, neighbour with key, district nurse …")


class DirectoryEntry(BaseModel):
    """What the night patrol needs to reach a person at home: held apart from events (`resident_directory`), read
    only by staff of the resident's unit, every read in the access log; `access` shown only once on the way."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resident: str = Field(pattern=_ID_PATTERN, description="the resident's pseudonymous id in this inventory")
    name: str = Field(default="", max_length=120, description="display name staff use")
    address: str = Field(default="", max_length=300, description="home address")
    access: str = Field(
        default="", max_length=1000, description="how to get in (key box code, digital lock, door code)"
    )
    latitude: float | None = Field(default=None, ge=-90, le=90, description="for the patrol view's travel order")
    longitude: float | None = Field(default=None, ge=-180, le=180)
    contacts: list[Contact] = Field(default_factory=list, description="who to call")
    notes: str = Field(default="", max_length=2000, description="what to know before entering (dog, oxygen, …)")

    @model_validator(mode="after")
    def _both_coordinates(self) -> DirectoryEntry:
        if (self.latitude is None) != (self.longitude is None):
            msg = "give both latitude and longitude, or neither"
            raise ValueError(msg)
        return self


class Inventory(BaseModel):
    """The file `vaka site load` reads: a list of sites."""

    model_config = ConfigDict(extra="forbid")

    sites: list[Site]
    directory: list[DirectoryEntry] = Field(
        default_factory=list, description="names, homes and how to get in, per resident id (kept apart from events)"
    )
    integrations: list[Integration] = Field(default_factory=list, description="read-only alarm-state subscribers")


# --- alarm lifecycle -------------------------------------------------------------------------------------------------


class AlarmCategory(enum.StrEnum):
    """Care alarms go to the patrol; technical alarms to their own recipients."""

    CARE = "care"
    TECHNICAL = "technical"


class Severity(enum.IntEnum):
    """How urgent: higher first on the staff page."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class AlarmState(enum.StrEnum):
    """raised → accepted → en_route → on_site → resolved, or cancelled."""

    RAISED = "raised"
    ACCEPTED = "accepted"
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


OPEN_STATES = frozenset({AlarmState.RAISED, AlarmState.ACCEPTED, AlarmState.EN_ROUTE, AlarmState.ON_SITE})


class Outcome(enum.StrEnum):
    """How a resolved alarm ended."""

    ASSISTED = "assisted"
    FALSE_ALARM = "false_alarm"
    TECHNICAL = "technical"
    NO_ACTION = "no_action"


class DecisionAction(enum.StrEnum):
    """What the rule engine asks the alarm desk to do."""

    RAISE = "raise"  # open a new alarm under `key`
    UPDATE = "update"  # the open alarm happened again (count, last seen); `repeat`: a new incident
    CLEAR = "clear"  # the rule's condition cleared: the desk marks "condition ended" (closes only with `auto_close`)
    CANCEL = "cancel"  # the device withdrew it (fall_cancelled, button cancel): marked like a clear, reason recorded


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmDecision:
    """One output of the rule engine. `key` is "{rule_id}:{subject}": one open alarm per rule and resident or device."""

    action: DecisionAction
    key: str
    rule_id: str
    category: AlarmCategory
    severity: Severity
    site: str
    at: datetime
    reason: str
    resident_id: str | None = None
    device_id: str | None = None
    ref: str | None = None
    count: int = 1
    unregistered: bool = False
    repeat: bool = False  # UPDATE: a new incident (button pressed again, another missed dose): it rings again
    auto_close: bool = False  # CLEAR/CANCEL of a technical rule that may close itself while nobody has taken it
    by_person: bool = False  # CANCEL: a person ended it at the device (a reset or presence button at the unit)


def hub_alarm(
    action: DecisionAction, rule_id: str, site: str, at: datetime, reason: str, key: str | None = None
) -> AlarmDecision:
    """A decision about the hub itself (its lane, disk, canary, supervision): technical, high, per site, keyed
    `{rule_id}:{site}` unless given; a CLEAR closes it while nobody has taken it. The one constructor of them all."""
    return AlarmDecision(
        action=action,
        key=key if key is not None else f"{rule_id}:{site}",
        rule_id=rule_id,
        category=AlarmCategory.TECHNICAL,
        severity=Severity.HIGH,
        site=site,
        at=at,
        reason=reason,
        auto_close=action is DecisionAction.CLEAR,
    )
