"""SCAIP (SS 91100:2014, CLC/TS 50134-9): a social alarm's `<mrq>` request in, Events and the `<mrs>` response out.

Pure, like every adapter: `read_request` validates one request body and says which SCAIP status number (`snu`) it
earns; `events_for` turns a valid one into Events; `response_body` writes the `<mrs>` answer. The SIP transport and
the rule "status 0 only once the event is durable" live in hub/scaip/.

Request elements read (others are ignored): `ref` (the alarm's reference, shared by its updates and its reset),
`cid` (controller, i.e. the alarm unit: the Vaka device id), `dty` (device type), `did` (device within the unit, e.g.
a pendant), `mty` (ME message, RE reset, IN information update, PI heartbeat), `stc` (status code, SS 91100:2014
Annex C), `stt` (status text), `lco` (location code),
`pri` (priority), `hbo` (heartbeat options: `001` when the unit lets the receiver set its heartbeat interval),
`crd` (caller id: not kept, it is
a phone number).
"""

from __future__ import annotations

import enum
import hashlib
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from adapters._common import device_id_from_name
from hub.model import Event, EventKind, PayloadError

TOPIC_FILTERS = ("scaip/#",)
MAX_BODY_BYTES = 8192
MANDATORY = ("ref", "cid", "dty", "mty")
MESSAGE_TYPES = frozenset({"ME", "RE", "IN", "PI"})
_ROOTS = frozenset({"mrq", "scaip"})
_FIELDS = ("ref", "ver", "cid", "dty", "did", "dco", "mty", "stc", "stt", "pri", "lco", "lte", "hbo", "ame")
_TOKEN = re.compile(r"[A-Za-z0-9_.:\-]{1,128}\Z")

# Status codes (stc, SS 91100:2014 Annex C) with a meaning of their own; any other alarm (ME) is a call for help:
# `alarm_button`. A code a unit uses differently is a site override (scaip.status_codes).
STATUS_KINDS: dict[int, EventKind] = {
    9: EventKind.ALARM_BUTTON,  # 0009 alarm (automatic)
    10: EventKind.ALARM_BUTTON,  # 0010 alarm (manual)
    19: EventKind.ALARM_BUTTON_CANCEL,  # 0019 cancel: cancelled at the unit (the alarm stays with staff)
    # a person at the unit ended the alarm: it closes, but only the alarm whose ref it carries
    88: EventKind.ALARM_RESET,  # 0088 presence, upon alarm (the carer's presence button)
    93: EventKind.ALARM_RESET,  # 0093 reset (manual)
    111: EventKind.ALARM_RESET,  # 0111 check-out (intervention completed)
    102: EventKind.HEARTBEAT,  # 0102 test transmission, primary channel
    103: EventKind.HEARTBEAT,  # 0103 test transmission, redundant channel
}


class StatusNumber(enum.IntEnum):
    """SCAIP response status numbers (`snu`)."""

    OK = 0
    MESSAGE_TOO_LONG = 1
    FORMAT_ERROR = 2
    CONTENT_ERROR = 3
    HOLD = 4
    NOT_TREATED = 5
    BUSY = 6
    MANDATORY_MISSING = 7


class ScaipError(PayloadError):
    """A request that cannot be handled, with the status number it is answered with."""

    def __init__(self, snu: StatusNumber, reason: str, detail: str = "", ref: str = "") -> None:
        super().__init__(reason, detail)
        self.snu = snu
        self.ref = ref


@dataclass(frozen=True, slots=True)
class ScaipRequest:
    """One valid `<mrq>`: the fields read, as text."""

    ref: str
    cid: str
    dty: str
    mty: str
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def stc(self) -> int | None:
        """The status code as a number, when given."""
        text = self.fields.get("stc")
        return int(text) if text else None

    @property
    def adjusts_heartbeat(self) -> bool:
        """The unit lets the receiver set its heartbeat interval (`hbo` `001`, SS 91100:2014 Table 1)."""
        text = self.fields.get("hbo", "")
        return text.isdigit() and int(text) == 1


def read_request(body: bytes) -> ScaipRequest:
    """Validate one request body; raise ScaipError with the status number it must be answered with."""
    if len(body) > MAX_BODY_BYTES:
        raise ScaipError(StatusNumber.MESSAGE_TOO_LONG, "message_too_long", f"{len(body)} bytes")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ScaipError(StatusNumber.FORMAT_ERROR, "format_error", "no DTD or entities in SCAIP")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ScaipError(StatusNumber.FORMAT_ERROR, "format_error", str(exc)[:120]) from None
    if root.tag not in _ROOTS:
        raise ScaipError(StatusNumber.FORMAT_ERROR, "format_error", f"root element <{root.tag[:32]}>, expected <mrq>")
    fields: dict[str, str] = {}
    for name in _FIELDS:
        element = root.find(name)
        if element is not None and element.text is not None and element.text.strip():
            fields[name] = element.text.strip()
    ref = fields.get("ref", "")
    missing = [name for name in MANDATORY if name not in fields]
    if missing:
        raise ScaipError(StatusNumber.MANDATORY_MISSING, "mandatory_missing", ", ".join(missing), ref=ref[:128])
    if not _TOKEN.match(ref) or not _TOKEN.match(fields["cid"]):
        raise ScaipError(StatusNumber.CONTENT_ERROR, "content_error", "ref and cid: 1-128 letters, digits, _.:-")
    if fields["mty"] not in MESSAGE_TYPES:
        raise ScaipError(StatusNumber.CONTENT_ERROR, "content_error", f"mty {fields['mty'][:8]!r}", ref=ref)
    for number in ("stc", "dty", "pri", "lco"):
        if number in fields and not fields[number].isdigit():
            raise ScaipError(StatusNumber.CONTENT_ERROR, "content_error", f"{number} is not a number", ref=ref)
    if fields["mty"] == "ME" and "stc" not in fields:
        raise ScaipError(StatusNumber.MANDATORY_MISSING, "mandatory_missing", "stc (an alarm needs its code)", ref=ref)
    return ScaipRequest(ref=ref, cid=fields["cid"], dty=fields["dty"], mty=fields["mty"], fields=fields)


def event_kind(request: ScaipRequest, status_kinds: dict[int, EventKind] | None = None) -> EventKind:
    """The kind of event a request is: by its message type, then its status code (site overrides first)."""
    if request.mty == "PI":
        return EventKind.HEARTBEAT
    if request.mty == "RE":
        # SS 91100:2014 4.4: the unit aborts the message session when it got no status 0 in time, and goes on with
        # its next alarm action (another receiver, a voice call). Nobody ended the alarm: the rules of the alarm
        # kinds a unit raises (alarm button, fall) mark it under the alarm's ref, and it stays with staff.
        return EventKind.ALARM_ABORTED
    codes = STATUS_KINDS if status_kinds is None else {**STATUS_KINDS, **status_kinds}
    return codes.get(request.stc or -1, EventKind.ALARM_BUTTON)


def events_for(
    request: ScaipRequest, ts: datetime, topic: str, status_kinds: dict[int, EventKind] | None = None
) -> list[Event]:
    """The Event a valid request stands for; `ts` is when it was first received (SCAIP carries no time)."""
    attrs: dict[str, Any] = {"mty": request.mty, "dty": request.dty}
    for name in ("did", "dco", "stc", "stt", "lco", "lte", "pri"):
        if name in request.fields:
            attrs[name] = request.fields[name][:64]
    if "hbo" in request.fields:
        attrs["hbo"] = request.fields["hbo"][:8]
    return [
        Event(
            ts=ts,
            site="",
            device_id=device_id_from_name(request.cid),
            kind=event_kind(request, status_kinds),
            attrs=attrs,
            seq=_seq(request.ref, request.mty if request.mty != "IN" else f"IN{request.stc}"),
            ref=request.ref,
            topic=topic,
        )
    ]


def heartbeat_minutes(interval_s: float) -> int:
    """A heartbeat interval as `<hbi>` says it: whole minutes, 1 to 1440 (SS 91100:2014 Table 2), rounded up."""
    return max(1, min(1440, math.ceil(interval_s / 60)))


def response_body(ref: str, snu: StatusNumber, text: str = "", heartbeat_interval_min: int | None = None) -> bytes:
    """The `<mrs>` answer: the request's ref, the status number, a short text, and the heartbeat interval asked (in
    minutes, as `<hbi>` counts them; only for a unit whose `hbo` says it takes one)."""
    root = ET.Element("mrs")
    ET.SubElement(root, "ref").text = ref
    ET.SubElement(root, "snu").text = str(int(snu))
    if text:
        ET.SubElement(root, "ste").text = text[:80]
    if heartbeat_interval_min is not None:
        ET.SubElement(root, "hbi").text = str(heartbeat_interval_min)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>' + body


def parse(topic: str, payload: bytes, received_at: datetime) -> list[Event]:
    """SCAIP bodies relayed over MQTT (a gateway publishing `<mrq>` on `scaip/…`): the same Events."""
    return events_for(read_request(payload), received_at, topic)


def _seq(ref: str, mty: str) -> int:
    """An alarm, its updates (each by its status code) and its reset share a ref but must be stored apart."""
    return int.from_bytes(hashlib.blake2b(f"{ref}/{mty}".encode(), digest_size=7).digest(), "big")
