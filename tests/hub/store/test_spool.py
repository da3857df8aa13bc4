"""The spool on a real disk: order, restarts, torn tails, and the size limit that sheds telemetry but not care."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hub.metrics import Metrics
from hub.model import EventKind
from hub.runtime.tasks import Spawner
from hub.settings import DbSettings, SpoolSettings
from hub.store.db import Database
from hub.store.rows import decode_batch, encode_batch, event_row
from hub.store.spool import Spool, frame, parse_segment
from hub.store.writer import Writer
from tests.hub.store.conftest import BASE_TS, Acks, damage_file, make_events, segment_files
from tests.services import free_port


def _payload(n: int) -> bytes:
    return encode_batch([event_row(e, BASE_TS) for e in make_events("s", 1, start=n)], [])


async def _replay(spool: Spool) -> list[int]:
    seqs: list[int] = []
    for path in spool.sealed_segments():
        for record in await spool.read(path):
            seqs.extend(row[8] for row in decode_batch(record.payload).events)
    return seqs


async def test_records_replay_in_order_across_restarts(
    spool_settings: SpoolSettings, metrics: Metrics, spawner: Spawner
) -> None:
    first = Spool(spool_settings, metrics, segment_max_bytes=400, spawner=spawner)  # small segments: several files
    await asyncio.gather(*(first.append(_payload(i), 1) for i in range(20)))
    await first.close()

    second = Spool(spool_settings, metrics, spawner=spawner)
    assert second.events == 20
    await second.append(_payload(20), 1)
    assert await _replay(second) == list(range(21))
    assert metrics.spool_events._value.get() == 21
    for path in second.sealed_segments():
        second.remove(path)
    assert second.empty
    assert segment_files(spool_settings.directory) == []
    await second.close()


async def test_a_torn_tail_is_ignored_and_the_rest_replays(
    spool_settings: SpoolSettings, metrics: Metrics, spawner: Spawner
) -> None:
    first = Spool(spool_settings, metrics, spawner=spawner)
    for i in range(3):
        await first.append(_payload(i), 1)
    await first.close()
    (segment,) = segment_files(spool_settings.directory)
    damage_file(segment, cut=7)  # as if killed in the middle of the last write

    second = Spool(spool_settings, metrics, spawner=spawner)
    await second.append(_payload(3), 1)
    assert await _replay(second) == [0, 1, 3]
    await second.close()


async def test_a_corrupt_record_ends_its_segment(
    spool_settings: SpoolSettings, metrics: Metrics, spawner: Spawner
) -> None:
    first = Spool(spool_settings, metrics, spawner=spawner)
    for i in range(3):
        await first.append(_payload(i), 1)
    await first.close()
    (segment,) = segment_files(spool_settings.directory)
    damage_file(segment, flip_from_end=3)  # a flipped byte in the last record: its CRC no longer matches
    assert await _replay(Spool(spool_settings, metrics, spawner=spawner)) == [0, 1]


async def test_a_full_spool_leaves_telemetry_in_the_broker_and_still_takes_care_events(
    tmp_path: Path, metrics: Metrics, db_schema: str, spawner: Spawner
) -> None:
    # a database nobody listens on: the writer spools everything
    settings = DbSettings(
        dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/none",
        db_schema=db_schema,
        connect_timeout_s=0.5,
        batch_size=500,
        flush_interval_s=0.01,
    )
    spool = Spool(
        SpoolSettings(directory=tmp_path / "spool", max_bytes=1 << 20, fsync_interval_s=0), metrics, spawner=spawner
    )
    db = Database(settings, metrics, spawner=spawner)
    await db.open()
    assert not db.up
    writer = Writer(db, spool, settings, metrics, spawner=spawner)
    acks = Acks()
    key = 0
    while not spool.full:  # fill the spool with telemetry
        writer.submit(make_events("s", 500, start=key * 500), [], acks.callback(key))
        key += 1
        await writer.flush()
    spooled_before = spool.events
    telemetry = make_events("s", 300, start=10**6)
    care = make_events("s", 200, start=2 * 10**6, kind=EventKind.FALL_DETECTED)
    writer.submit(telemetry, [], acks.callback(-1))
    writer.submit(care, [], acks.callback(-2))
    await writer.flush()

    assert writer.state == "spooling"
    # nothing acknowledged is dropped: the telemetry is not acknowledged and waits in the broker (issue 22.2);
    # on the old main it was acknowledged and thrown away ("shed")
    assert acks.calls.pop(-1) == 0
    assert acks.all_once()
    assert metrics.events_deferred._value.get() == 300
    assert spool.events == spooled_before + 200
    assert sorted(await _replay(spool))[-200:] == [c.seq for c in care]
    await writer.close()
    await db.close()
    await spool.close()


_APPENDER = """
import asyncio, sys
from pathlib import Path
from hub.metrics import Metrics
from hub.settings import SpoolSettings
from hub.store.spool import Spool
from hub.runtime.tasks import Spawner

async def main() -> None:
    metrics = Metrics()
    spool = Spool(
        SpoolSettings(directory=Path(sys.argv[1]), fsync_interval_s=0.002),
        metrics,
        segment_max_bytes=20_000,
        spawner=Spawner(metrics),
    )
    seq = 0
    while True:
        batch = [seq + i for i in range(10)]
        await asyncio.gather(*(spool.append(str(n).encode() * 50, 1) for n in batch))
        print(batch[-1], flush=True)  # everything up to here is acknowledged
        seq += 10

asyncio.run(main())
"""


def test_a_sigkilled_spool_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    proc = subprocess.Popen(
        [sys.executable, "-c", _APPENDER, str(directory)], stdout=subprocess.PIPE, cwd=Path(__file__).parents[3]
    )
    assert proc.stdout is not None
    acked = -1
    while acked < 3000:
        line = proc.stdout.readline()
        assert line, "the appender died"
        acked = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    async def replay() -> list[int]:
        metrics = Metrics()
        async with Spawner(metrics) as spawner:
            spool = Spool(SpoolSettings(directory=directory), metrics, spawner=spawner)
            found: list[int] = []
            for path in spool.sealed_segments():
                found.extend(int(r.payload[: len(r.payload) // 50]) for r in await spool.read(path))
            await spool.close()
        return found

    found = asyncio.run(replay())
    assert found[: acked + 1] == list(range(acked + 1))
    assert len(segment_files(directory)) > 2


@given(
    seqs=st.lists(st.integers(0, 10**6), min_size=1, max_size=8),
    cut=st.integers(0, 400),
    flip=st.one_of(st.none(), st.integers(0, 399)),
)
def test_parsing_a_damaged_segment_yields_a_prefix_and_never_raises(
    seqs: list[int], cut: int, flip: int | None
) -> None:
    records = [frame(str(n).encode() * 3, 1, 1.0) for n in seqs]
    data = bytearray(b"".join(records))
    if flip is not None and flip < len(data):
        data[flip] ^= 0x5A
    data = data[: max(0, len(data) - cut)]
    parsed, end = parse_segment(bytes(data))
    payloads = [r.payload for r in parsed]
    assert payloads == [str(n).encode() * 3 for n in seqs[: len(payloads)]]
    assert end == sum(len(r) for r in records[: len(payloads)])
