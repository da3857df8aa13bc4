"""Status number 0 is sent only once the event is durable; a store that does not answer in time earns 5."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from hub.metrics import Metrics
from hub.model import Device, Event, Site
from hub.runtime.tasks import Spawner
from hub.scaip.receiver import ScaipReceiver
from hub.settings import ScaipSettings

SITE = Site(id="default", devices=[Device(id="u1", kind="alarm_button", vendor="scaip")])


def receiver_for(
    store: HeldStore, metrics: Metrics, spawner: Spawner, owns: Callable[[str], bool] | None = None, **settings: object
) -> ScaipReceiver:
    """A receiver that hears unit u1 from 127.0.0.1."""
    receiver = ScaipReceiver(
        ScaipSettings(senders={"127.0.0.1": ["u1"]}, **settings),  # type: ignore[arg-type]
        store,
        metrics,
        spawner=spawner,
        owns=owns,
    )
    receiver.set_sites([SITE])
    return receiver


BODY = b"<mrq><ref>r1</ref><cid>u1</cid><dty>2</dty><mty>ME</mty><stc>10</stc></mrq>"
REQUEST = (
    b"MESSAGE sip:arc@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1\r\n"
    b"From: <sip:u1@127.0.0.1>;tag=a\r\nTo: <sip:arc@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\n"
    b"Content-Type: application/scaip+xml\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


class HeldStore:
    """The ingest lane with the store's durability held back until the test lets it go."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.pending: list[Callable[[], None]] = []
        self.accepted = asyncio.Event()

    def accept(self, events: Sequence[Event], on_durable: Callable[[], None], *, telemetry: bool = False) -> None:
        self.events.extend(events)
        self.pending.append(on_durable)
        self.accepted.set()

    def reject(self, msg: object, reason: str, detail: str) -> None:
        raise AssertionError("a valid request is not refused")


async def test_no_status_zero_before_the_event_is_durable(metrics: Metrics, spawner: Spawner) -> None:
    store = HeldStore()
    receiver = receiver_for(store, metrics, spawner, durable_timeout_s=5)
    answer = asyncio.create_task(receiver.handle(REQUEST, "127.0.0.1"))
    await store.accepted.wait()
    await asyncio.sleep(0.05)  # time for an eager answer to show itself; there is no event for "not yet"
    assert not answer.done(), "answered before the event was durable"
    assert [e.kind.value for e in store.events] == ["alarm_button"], "the alarm lane had it at once"
    store.pending[0]()
    assert b"<snu>0</snu>" in await answer


async def test_a_store_that_does_not_answer_in_time_earns_not_treated(metrics: Metrics, spawner: Spawner) -> None:
    store = HeldStore()
    receiver = receiver_for(store, metrics, spawner, durable_timeout_s=0.1)
    answer = await receiver.handle(REQUEST, "127.0.0.1")
    assert b"SIP/2.0 200 OK" in answer
    assert b"<snu>5</snu>" in answer
    # the unit's retransmission gets the same answer and reaches the lane no second time
    assert await receiver.handle(REQUEST, "127.0.0.1") == answer
    assert len(store.events) == 1


async def test_a_hub_that_does_not_hold_the_site_leaves_the_alarm_to_the_units_other_receiver(
    metrics: Metrics, spawner: Spawner
) -> None:
    """The HA profile: the hub not acting for the receiving site stores nothing and answers 5, so the unit sends to
    its second receiver (SS 91100), the hub that holds the site. A status 0 here would end the unit's trying while no
    hub rang: this hub's alarm lane does not act for the site."""
    store = HeldStore()
    receiver = receiver_for(store, metrics, spawner, owns=lambda site: False, durable_timeout_s=5)
    answer = await receiver.handle(REQUEST, "127.0.0.1")
    assert b"<snu>5</snu>" in answer
    assert store.events == []
