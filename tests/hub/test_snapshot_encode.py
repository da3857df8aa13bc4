"""The snapshot encoded in pieces (hub/recovery/snapshots.py `encode`, run in a worker thread while serving) is the same JSON
document as one msgspec call would make, and a hub restores from it as from that."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import msgspec

from alarms.engine import Engine
from alarms.gate import Gate, GateLimits, freshness_by_kind
from hub.model import EventKind
from hub.recovery import snapshots
from tests.alarms.home import PACK, directory, ev, fresh, local

FRESHNESS = freshness_by_kind(PACK, GateLimits())


def _whole(value: Any) -> Any:
    return json.loads(msgspec.json.encode(value))


def _pieces(value: dict[str, Any]) -> Any:
    return json.loads(snapshots.encode(value))


def test_pieces_make_the_same_document_at_every_size() -> None:
    big = snapshots._CHUNK * 2 + 7
    document = {
        "version": 3,
        "empty": {},
        "empty_list": [],
        "small": {"a": 1, "b": [1.5, None, True], "c": {"nested": "x"}},
        "large_dict": {f"dev-{i}": (float(i), i) for i in range(big)},
        "large_list": [(float(i), i, "rule", f"subject-{i}", 0.25) for i in range(big)],
        "exactly_one_chunk": list(range(snapshots._CHUNK)),
        "rules": {
            "many_keys": {str(i): {"last": float(i), "where": ("room", i)} for i in range(snapshots._FEW + 1)},
            "few_keys": {str(i): [i] for i in range(snapshots._FEW)},
            "bytes": b"\x00\x01raw",
            'quote"and\\key': 'value with \u00e5 and "quotes"',
        },
    }
    assert _pieces(document) == _whole(document)


def _busy_engine() -> tuple[Engine, Gate]:
    start = local("2026-11-10 22:00")
    engine = fresh(start)
    gate = Gate(FRESHNESS)
    for day in range(2):
        for minute in range(0, 240, 3):
            at = start + timedelta(days=day, minutes=minute)
            event = ev(at, "mot", EventKind.MOTION, seq=day * 1000 + minute)
            gate.admit(event, at)
            engine.feed(event, at)
    return engine, gate


def test_an_engine_restores_from_the_pieces_as_from_one_encoding() -> None:
    engine, gate = _busy_engine()
    taken = snapshots.take(engine, {"gate": gate.snapshot(), "replay_from": 1.0})
    assert _pieces(taken) == _whole(taken)
    from_pieces = Engine.restore(PACK, directory(), json.loads(snapshots.encode(taken)))
    from_whole = Engine.restore(PACK, directory(), _whole(taken))
    assert _whole(from_pieces.snapshot()) == _whole(from_whole.snapshot())
    assert len(from_pieces.timers) == len(engine.timers) > 0
    again = Gate(FRESHNESS)
    again.restore(json.loads(snapshots.encode(taken))["gate"])
    assert again.marks == gate.marks


async def test_encoding_in_a_thread_takes_what_the_loop_took() -> None:
    engine, _ = _busy_engine()
    taken = snapshots.take(engine)
    before = _whole(taken)
    for at in range(3):  # the engine goes on while the thread encodes: the taken snapshot does not change
        moment = local("2026-11-12 23:00") + timedelta(minutes=at)
        engine.feed(ev(moment, "mot", EventKind.MOTION), moment)
    encoded = await asyncio.to_thread(snapshots.encode, taken)
    assert json.loads(encoded) == before
