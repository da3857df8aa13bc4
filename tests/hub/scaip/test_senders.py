"""Who the SCAIP receiver hears: the allow-list per source, the rate per source, and what a refusal leaves behind."""

from __future__ import annotations

import logging

import pytest

from hub.metrics import Metrics
from hub.model import Device, Site
from hub.runtime.tasks import Spawner
from hub.scaip.senders import Senders, SourceRate
from tests.hub.scaip.test_durability import HeldStore, receiver_for

SITES = [
    Site(
        id="north",
        devices=[
            Device(id="u1", kind="alarm_button", vendor="scaip"),
            Device(id="u2", kind="alarm_button", vendor="scaip"),
            Device(id="radar1", kind="fall_radar"),
        ],
    ),
    Site(id="south", devices=[Device(id="s1", kind="alarm_button", vendor="scaip")]),
]


@pytest.mark.parametrize(
    ("peer", "device", "heard"),
    [
        ("10.20.0.5", "u1", True),  # the gateway's network, any unit
        ("10.20.0.5", "u2", True),
        ("10.20.0.5", "radar1", False),  # an MQTT-native device of the site
        ("10.20.0.5", "s1", False),  # another site's unit
        ("10.20.0.5", "hub", False),
        ("192.0.2.7", "u2", True),  # one unit's own address: that unit only
        ("192.0.2.7", "u1", False),
        ("::ffff:192.0.2.7", "u2", True),
        ("198.51.100.1", "u1", False),  # not listed
        ("not an address", "u1", False),
    ],
)
def test_a_source_speaks_only_for_its_own_units(peer: str, device: str, heard: bool) -> None:
    senders = Senders({"10.20.0.0/16": ["*"], "192.0.2.7": ["u2"]}, "north")
    senders.set_sites(SITES)
    assert senders.may_send_for(peer, device) is heard


def test_the_rate_per_source_allows_a_burst_then_the_average() -> None:
    rate = SourceRate(rate_s=2.0, burst=5)
    assert [rate.take("a", 0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert rate.take("b", 0.0), "each source has its own allowance"
    assert not rate.take("a", 0.4)
    assert rate.take("a", 0.5)  # one more after half a second at 2/s


PNR = "19121212-1212"


async def test_a_refused_body_is_logged_as_its_length_and_reason_and_the_answer_masks_identity_numbers(
    metrics: Metrics, spawner: Spawner, caplog: pytest.LogCaptureFixture
) -> None:
    store = HeldStore()
    store.reject = lambda msg, reason, detail: msg.ack()  # type: ignore[method-assign,attr-defined]
    receiver = receiver_for(store, metrics, spawner)
    body = f"<mrq><ref>{PNR}</ref><cid>u1</cid><dty>2</dty><mty>XX</mty><stc>10</stc></mrq>".encode()
    request = (
        b"MESSAGE sip:arc@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-2\r\n"
        b"From: <sip:u1@127.0.0.1>;tag=a\r\nTo: <sip:arc@127.0.0.1>\r\nCall-ID: c2\r\nCSeq: 1 MESSAGE\r\n"
        b"Content-Type: application/scaip+xml\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with caplog.at_level(logging.DEBUG):
        answer = await receiver.handle(request, "127.0.0.1")
    assert answer is not None
    assert b"<snu>3</snu>" in answer
    assert PNR.encode() not in answer
    assert "19121212" not in caplog.text
    assert f"length={len(body)}" in caplog.text
