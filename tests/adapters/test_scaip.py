"""SCAIP request bodies as social alarm units send them (shapes from deployed units), their events and answers."""

from __future__ import annotations

import pytest

from adapters.scaip import (
    ScaipError,
    StatusNumber,
    event_kind,
    events_for,
    heartbeat_minutes,
    read_request,
    response_body,
)
from hub.model import EventKind
from tests.adapters.support import RECEIVED

# the element order and zero-padding differ between vendors; each is a valid request
ALARM_PADDED = (
    b"<mrq><ref>lmepivnFqmI8Jvv1</ref><cid>999998</cid><dty>0002</dty><mty>ME</mty><stc>0010</stc>"
    b"<lco>002</lco><crd>gsm:+46701234567</crd><cha>0</cha></mrq>"
)
ALARM_SHORT = (
    b"<mrq><ref>1193308443</ref><cid>10149471</cid><dty>3</dty><mty>ME</mty><stc>10</stc><crd>gsm:</crd></mrq>"
)
HEARTBEAT = b"<mrq><mty>PI</mty><ref>1998218577</ref><cid>10149471</cid><dty>2</dty><hbo>001</hbo></mrq>"
TEST_CALL = b"<mrq><ref>00001A85</ref><cha>0</cha><mty>ME</mty><cid>26317</cid><dty>02</dty><stc>102</stc></mrq>"


@pytest.mark.parametrize(
    ("body", "kind", "device"),
    [
        (ALARM_PADDED, EventKind.ALARM_BUTTON, "999998"),
        (ALARM_SHORT, EventKind.ALARM_BUTTON, "10149471"),
        (HEARTBEAT, EventKind.HEARTBEAT, "10149471"),
        (TEST_CALL, EventKind.HEARTBEAT, "26317"),
        # SS 91100:2014 4.4: RE aborts the session (the unit gave up on this receiver), nobody ended the alarm
        (ALARM_SHORT.replace(b"<mty>ME</mty>", b"<mty>RE</mty>"), EventKind.ALARM_ABORTED, "10149471"),
        # Annex C: presence upon alarm, manual reset, check-out (intervention completed): a person at the unit
        (ALARM_SHORT.replace(b"<stc>10</stc>", b"<stc>0088</stc>"), EventKind.ALARM_RESET, "10149471"),
        (ALARM_SHORT.replace(b"<stc>10</stc>", b"<stc>0093</stc>"), EventKind.ALARM_RESET, "10149471"),
        (ALARM_SHORT.replace(b"<stc>10</stc>", b"<stc>0111</stc>"), EventKind.ALARM_RESET, "10149471"),
        (ALARM_SHORT.replace(b"<stc>10</stc>", b"<stc>0103</stc>"), EventKind.HEARTBEAT, "10149471"),
        (ALARM_SHORT.replace(b"<stc>10</stc>", b"<stc>19</stc>"), EventKind.ALARM_BUTTON_CANCEL, "10149471"),
        (ALARM_SHORT.replace(b"<mty>ME</mty>", b"<mty>IN</mty>"), EventKind.ALARM_BUTTON, "10149471"),
        (ALARM_SHORT.replace(b"<stc>10</stc>", b"<stc>0067</stc>"), EventKind.ALARM_BUTTON, "10149471"),
    ],
)
def test_requests_become_events_with_the_ref(body: bytes, kind: EventKind, device: str) -> None:
    request = read_request(body)
    [event] = events_for(request, RECEIVED, "scaip/x")
    assert (event.kind, event.device_id, event.ref) == (kind, device, request.ref)
    assert "crd" not in event.attrs, "the caller id is a phone number: not kept"


def test_an_alarm_and_its_reset_share_the_ref_but_are_stored_apart() -> None:
    alarm = events_for(read_request(ALARM_SHORT), RECEIVED, "t")[0]
    reset = events_for(read_request(ALARM_SHORT.replace(b"ME", b"RE")), RECEIVED, "t")[0]
    assert alarm.ref == reset.ref
    assert alarm.seq != reset.seq


def test_a_site_may_name_its_vendors_codes() -> None:
    request = read_request(ALARM_SHORT.replace(b"<stc>10</stc>", b"<stc>31</stc>"))
    assert event_kind(request, {31: EventKind.FALL_DETECTED}) is EventKind.FALL_DETECTED
    reset = read_request(ALARM_SHORT.replace(b"<stc>10</stc>", b"<stc>31</stc>").replace(b"ME", b"RE"))
    assert event_kind(reset, {31: EventKind.FALL_DETECTED}) is EventKind.ALARM_ABORTED  # an abort, whatever the alarm


def test_updates_of_one_alarm_with_different_codes_are_stored_apart() -> None:
    presence, check_out = (
        events_for(read_request(ALARM_SHORT.replace(b"ME", b"IN").replace(b">10<", code)), RECEIVED, "t")[0]
        for code in (b">88<", b">111<")
    )
    assert presence.ref == check_out.ref
    assert presence.seq != check_out.seq


@pytest.mark.parametrize(
    ("body", "snu"),
    [
        (b"<mrq><ref>1</ref>", StatusNumber.FORMAT_ERROR),
        (b"<alarm/>", StatusNumber.FORMAT_ERROR),
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><mrq><ref>&a;</ref></mrq>', StatusNumber.FORMAT_ERROR),
        (b"<mrq><ref>1</ref><dty>2</dty><mty>ME</mty><stc>10</stc></mrq>", StatusNumber.MANDATORY_MISSING),
        (b"<mrq><ref>1</ref><cid>2</cid><dty>2</dty><mty>ME</mty></mrq>", StatusNumber.MANDATORY_MISSING),
        (b"<mrq><ref>1</ref><cid>2</cid><dty>2</dty><mty>ZZ</mty></mrq>", StatusNumber.CONTENT_ERROR),
        (b"<mrq><ref>1</ref><cid>2</cid><dty>x</dty><mty>PI</mty></mrq>", StatusNumber.CONTENT_ERROR),
        (b"<mrq><ref>a b</ref><cid>2</cid><dty>2</dty><mty>PI</mty></mrq>", StatusNumber.CONTENT_ERROR),
        (b"<mrq>" + b"<x>1</x>" * 2000 + b"</mrq>", StatusNumber.MESSAGE_TOO_LONG),
    ],
)
def test_refusals_carry_their_status_number(body: bytes, snu: StatusNumber) -> None:
    with pytest.raises(ScaipError) as err:
        read_request(body)
    assert err.value.snu is snu


def test_the_answer_names_the_ref_the_status_and_the_heartbeat_interval_in_minutes() -> None:
    # SS 91100:2014 Table 2: hbi is minutes, 1 to 1440 (300 s sent as 300 would ask for a heartbeat every 5 hours)
    body = response_body("1193308443", StatusNumber.OK, heartbeat_interval_min=heartbeat_minutes(300))
    assert body.endswith(b"<mrs><ref>1193308443</ref><snu>0</snu><hbi>5</hbi></mrs>")
    assert [heartbeat_minutes(s) for s in (60, 61, 86400)] == [1, 2, 1440]


@pytest.mark.parametrize(("hbo", "adjusts"), [(b"<hbo>001</hbo>", True), (b"<hbo>0</hbo>", False), (b"", False)])
def test_only_a_unit_whose_hbo_says_so_takes_a_heartbeat_interval(hbo: bytes, adjusts: bool) -> None:
    request = read_request(HEARTBEAT.replace(b"<hbo>001</hbo>", hbo))
    assert request.adjusts_heartbeat is adjusts
