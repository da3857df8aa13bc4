"""Personal data stays out of the logs (issue 9, finding 6): identity numbers masked, rejected payloads unprinted."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from hub.intake.ingest import Ingest
from hub.metrics import Metrics
from hub.model import Event
from hub.runtime.redact import MASK, mask_identity_numbers
from hub.store.writer import Rejection
from tests.hub.test_ingest import FakeMessage


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("19121212-1212", MASK),
        ("121212-1212", MASK),
        ("121212+1212", MASK),  # a hundred years or older
        ("191212121212", MASK),
        ("1212121212", MASK),
        ("pnr 20011231-0000 in room 4", f"pnr {MASK} in room 4"),
        ("19701063-2391", MASK),  # samordningsnummer: day + 60
        ("1712345678", "1712345678"),  # ten digits failing the check digit: a counter, kept
        ("ts=1732870000123", "ts=1732870000123"),
        ("19121312-1212", "19121312-1212"),  # month 13: not a date
        ("room 101, bed 2", "room 101, bed 2"),
    ],
)
def test_personal_identity_numbers_are_masked(text: str, expected: str) -> None:
    assert mask_identity_numbers(text) == expected


@dataclass
class DeadLetters:
    """Where ingest hands rejections (the test's own receiver standing in for the store lane)."""

    rejections: list[Rejection] = field(default_factory=list)

    def submit(
        self, events: Sequence[Event], rejections: Sequence[Rejection], on_durable: Callable[[], None] | None = None
    ) -> None:
        self.rejections.extend(rejections)
        if on_durable is not None:
            on_durable()


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("vaka/v1/s1/bed-7/event", b'{"kind": 12, "patient": "Karin Andersson", "pnr": "19121212-1212"}'),
        ("vaka/v1/s1/bed-7/event", b"Karin Andersson 191212121212 not json"),
        ("vaka/v1/s1/19121212-1212/event", b"{}"),
    ],
)
def test_a_rejected_payload_is_logged_by_reason_topic_and_length_only(
    caplog: pytest.LogCaptureFixture, metrics: Metrics, topic: str, payload: bytes
) -> None:
    sink = DeadLetters()
    ingest = Ingest(metrics, sink, alarm_lane=lambda ev: None)
    with caplog.at_level(logging.DEBUG):
        ingest.handle(FakeMessage(topic, payload))
    assert len(sink.rejections) == 1
    assert sink.rejections[0].payload == payload  # the dead letter keeps it for operators
    logged = caplog.text
    assert "rejected message" in logged
    assert f"bytes={len(payload)}" in logged
    for secret in ("Karin", "Andersson", "1212-1212", "191212121212"):
        assert secret not in logged
