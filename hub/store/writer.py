"""The store lane: batches events into PostgreSQL, falls back to the local spool, and says when each is durable.

A submission (the events and rejections of one MQTT message) is acknowledged through its `on_durable` callback
exactly once: when its rows are committed, or appended and fsynced to the spool, or (telemetry only, spool full)
shed and counted. Batches are written with COPY into a per-connection TEMP staging table and moved with
`INSERT … ON CONFLICT (device_id, ts, seq) DO NOTHING`, so a re-delivered message or a re-drained spool segment
never makes a second row. Up to `MAX_INFLIGHT_BATCHES` batches are written at once while `submit` keeps accepting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import asyncpg
import msgspec

from hub.metrics import Metrics
from hub.model import Event
from hub.runtime.backoff import Backoff
from hub.runtime.tasks import Spawner
from hub.settings import DbSettings
from hub.store.db import Database, is_connection_error
from hub.store.rows import (
    EVENT_COLUMNS,
    EventRow,
    Rejection,
    RejectionRow,
    decode_batch,
    encode_batch,
    event_row,
    rejection_row,
    row_is_care,
)
from hub.store.spool import Spool, SpoolError

__all__ = ["Rejection", "Writer", "WriterState"]

logger = logging.getLogger(__name__)

WriterState = Literal["ok", "spooling", "draining"]
MAX_INFLIGHT_BATCHES = 3
BATCH_ROWS_FACTOR = 4  # a batch formed while writes were busy may hold up to this many times batch_size rows
RETRY_MIN_S = 0.2
RETRY_MAX_S = 10.0

STAGING_TABLE = "vaka_events_staging"
_COLUMNS_SQL = ", ".join(EVENT_COLUMNS)
_CREATE_STAGING_SQL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGING_TABLE} (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_MOVE_SQL = (
    f"INSERT INTO events ({_COLUMNS_SQL}) SELECT {_COLUMNS_SQL} FROM {STAGING_TABLE} "
    "ON CONFLICT (device_id, ts, seq) DO NOTHING"
)
_REJECTION_SQL = (
    "INSERT INTO rejected_messages (received_at, topic, payload, reason) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
)
_json = msgspec.json.Encoder()
# what the database (or asyncpg, for a value it cannot encode) says about a row it will not take
_REFUSED = (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError, TypeError)


@dataclass(slots=True)
class _Submission:
    rows: list[EventRow]
    rejections: list[RejectionRow]
    on_durable: Callable[[], None] | None
    at: float = field(default=0.0)

    @property
    def size(self) -> int:
        return max(1, len(self.rows) + len(self.rejections))


class Writer:
    """Batches submissions into the database, or the spool while it is away; see the module docstring."""

    def __init__(
        self,
        db: Database,
        spool: Spool,
        settings: DbSettings,
        metrics: Metrics,
        *,
        spawner: Spawner,
        on_deferred_recovered: Callable[[], None] | None = None,
        local_durability: bool = True,
    ) -> None:
        self._db = db
        # the HA profile has none (docs/ha.md): with the database away nothing is acknowledged; the broker keeps it
        self._local_durability = local_durability
        self._spawner = spawner
        self._spool = spool
        self._settings = settings
        self._metrics = metrics
        self._pending: deque[_Submission] = deque()
        self._pending_rows = 0
        self._has_work = asyncio.Event()
        self._batch_full = asyncio.Event()
        self._slots = asyncio.Semaphore(MAX_INFLIGHT_BATCHES)
        self._inflight: set[asyncio.Task[None]] = set()
        self._drain_task: asyncio.Task[None] | None = None
        self._state: WriterState = "ok"
        self._retry = Backoff(RETRY_MIN_S, RETRY_MAX_S)
        self._deferred = False  # messages were left unacknowledged because the spool was full
        self.on_deferred_recovered = on_deferred_recovered

    @property
    def state(self) -> WriterState:
        """ok: writing to the database; spooling: the database is away; draining: replaying the spool."""
        if self._state == "ok" and not self._db.up:
            return "spooling"
        return self._state

    @property
    def pending(self) -> int:
        """Rows accepted but not yet being written."""
        return self._pending_rows

    def submit(
        self,
        events: Sequence[Event],
        rejections: Sequence[Rejection],
        on_durable: Callable[[], None] | None = None,
    ) -> None:
        """Queue one message's events and rejections; never blocks or raises. `on_durable` runs once, on the loop."""
        try:
            now = datetime.now(UTC)
            rows: list[EventRow] = []
            rejected = [rejection_row(r) for r in rejections]
            for event in events:
                try:
                    rows.append(event_row(event, now))
                except (TypeError, ValueError, msgspec.EncodeError) as exc:
                    # cannot happen for adapter output, but an unstorable event must not take its message with it
                    rejected.append((now, event.topic, repr(event).encode()[:4096], f"unstorable_event: {exc}"[:200]))
            if not rows and not rejected:
                if on_durable is not None:
                    asyncio.get_running_loop().call_soon(_call, on_durable)
                return
            sub = _Submission(rows, rejected, on_durable, time.monotonic())
        except Exception:
            logger.exception("writer.submit failed; message will not be acknowledged")
            return
        self._pending.append(sub)
        self._pending_rows += sub.size
        self._has_work.set()
        if self._pending_rows >= self._settings.batch_size:
            self._batch_full.set()

    async def run_loop(self) -> None:
        """Forever: form batches by size or flush interval and write them, pipelined; drain the spool when needed."""
        if not self._spool.empty:
            self._state = "draining" if self._db.up else "spooling"
            self._ensure_draining()
        try:
            while True:
                if not self._pending:
                    self._has_work.clear()
                    await self._has_work.wait()
                    continue  # flush() may have taken everything meanwhile
                if self._pending_rows < self._settings.batch_size:
                    self._batch_full.clear()
                    wait_s = self._pending[0].at + self._settings.flush_interval_s - time.monotonic()
                    if wait_s > 0:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(wait_s):
                                await self._batch_full.wait()
                await self._slots.acquire()
                batch = self._take(self._settings.batch_size * BATCH_ROWS_FACTOR)
                if not batch:
                    self._slots.release()
                    continue
                task = self._spawner.spawn(self._write(batch), name="vaka.store.write")
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
        finally:
            if self._drain_task is not None:
                self._drain_task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(self._settings.write_deadline_s * 2):
                    await asyncio.shield(self.flush())

    async def flush(self) -> None:
        """Write everything accepted so far (to the database or the spool) and wait for it."""
        while self._pending or self._inflight:
            if self._pending:
                await self._slots.acquire()
                batch = self._take(self._settings.batch_size * BATCH_ROWS_FACTOR)
                task = self._spawner.spawn(self._write(batch), name="vaka.store.write")
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            else:
                await asyncio.gather(*list(self._inflight), return_exceptions=True)
        # a message with nothing to store (an emptied retained status) is acknowledged by a call_soon from submit():
        # one turn of the loop, so that "flushed" also means "acknowledged" for those
        await asyncio.sleep(0)

    async def close(self) -> None:
        """Write what is buffered, then stop draining (call after cancelling `run_loop`, before closing the spool)."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._settings.write_deadline_s * 2):
                await self.flush()
        task, self._drain_task = self._drain_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def wait_drained(self, timeout_s: float) -> bool:
        """Wait until the spool is empty and the state is ok (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._state == "ok" and self._spool.empty and not self._pending and not self._inflight:
                return True
            await asyncio.sleep(0.05)
        return False

    # --- batches --------------------------------------------------------------------------------------------------

    def _take(self, max_rows: int) -> list[_Submission]:
        batch: list[_Submission] = []
        rows = 0
        while self._pending and (not batch or rows + self._pending[0].size <= max_rows):
            sub = self._pending.popleft()
            batch.append(sub)
            rows += sub.size
        self._pending_rows -= rows
        return batch

    async def _write(self, batch: list[_Submission]) -> None:
        try:
            if self._state == "spooling" or not self._db.up:
                self._enter_spooling("database down")
                await self._to_spool(batch)
                return
            try:
                await self._to_db(batch)
            except Exception as exc:
                if is_connection_error(exc):
                    self._enter_spooling(type(exc).__name__)
                    self._metrics.write_batches.labels(outcome="failed").inc()
                else:
                    # not the database's absence: spool it; the drain salvages row by row
                    logger.error("batch write failed (%s); spooled for row-by-row salvage", type(exc).__name__)
                    self._metrics.write_batches.labels(outcome="error").inc()
                await self._to_spool(batch)
                self._ensure_draining()
        except SpoolError as exc:
            logger.error("batch neither written nor spooled (%s); will retry, nothing acknowledged", exc)
            for sub in reversed(batch):
                self._pending.appendleft(sub)
                self._pending_rows += sub.size
            await asyncio.sleep(RETRY_MIN_S * 5)
            self._has_work.set()
        except Exception:
            logger.exception("batch write crashed; will retry, nothing acknowledged")
            for sub in reversed(batch):
                self._pending.appendleft(sub)
                self._pending_rows += sub.size
            await asyncio.sleep(RETRY_MIN_S * 5)
            self._has_work.set()
        finally:
            self._slots.release()

    async def _to_db(self, batch: list[_Submission]) -> None:
        rows = [row for sub in batch for row in sub.rows]
        rejections = [rej for sub in batch for rej in sub.rejections]
        started = time.perf_counter()
        async with asyncio.timeout(self._settings.write_deadline_s):
            inserted = await self._write_rows(rows, rejections)
        self._metrics.write_latency.observe(time.perf_counter() - started)
        self._metrics.write_batches.labels(outcome="ok").inc()
        self._count_written(len(rows), inserted)
        self._stored_again()
        for sub in batch:
            _call(sub.on_durable)

    async def _to_spool(self, batch: list[_Submission]) -> None:
        """Append the batch and acknowledge it; with the spool full, only care messages go in. The rest is not
        acknowledged: it waits in the broker (the telemetry connection stops reading at its limit) and comes again
        on the next connection, which the writer asks for once it can store again (`on_deferred_recovered`)."""
        deferred: list[_Submission] = []
        if not self._local_durability:
            deferred, batch = batch, []
        elif self._spool.full:
            kept = [sub for sub in batch if sub.rows and all(row_is_care(row) for row in sub.rows)]
            deferred = [sub for sub in batch if not (sub.rows and all(row_is_care(row) for row in sub.rows))]
            batch = kept
            if batch and not self._spool.takes_care:
                msg = "the spool's disk is down to the desk's reserve"
                raise SpoolError(msg)
        rows = [row for sub in batch for row in sub.rows]
        rejections = [rej for sub in batch for rej in sub.rejections]
        if rows or rejections:
            await self._spool.append(encode_batch(rows, rejections), len(rows))
        if deferred:
            count = sum(sub.size for sub in deferred)
            self._metrics.events_deferred.inc(count)
            if not self._deferred:
                what = "spool full: telemetry" if self._local_durability else "database away: events"
                logger.warning("%s left in the broker, not acknowledged (first %s rows)", what, count)
            self._deferred = True
        self._metrics.write_batches.labels(outcome="spooled").inc()
        for sub in batch:
            _call(sub.on_durable)

    def _stored_again(self) -> None:
        """The store takes rows again: what was left in the broker meanwhile is asked for now, not at the next
        keepalive timeout of a connection that stopped reading."""
        if not self._deferred:
            return
        self._deferred = False
        logger.info("store takes rows again: asking the broker for the telemetry left with it")
        if self.on_deferred_recovered is not None:
            try:
                self.on_deferred_recovered()
            except Exception:
                logger.exception("could not ask the broker for the telemetry left with it")

    def _count_written(self, rows: int, inserted: int) -> None:
        self._metrics.events_written.inc(inserted)
        if rows > inserted:
            self._metrics.events_duplicate.inc(rows - inserted)

    async def _write_rows(self, rows: list[EventRow], rejections: list[RejectionRow]) -> int:
        """Commit rows and rejections in one transaction; returns the number of new event rows."""
        inserted = 0
        async with self._db.acquire() as conn:
            if rows and not conn.staging_ready():
                # outside the batch's transaction, so a failed batch cannot roll the staging table back
                await conn.execute(_CREATE_STAGING_SQL)
                conn.set_staging_ready(True)
            try:
                async with conn.transaction():
                    if rows:
                        await conn.copy_records_to_table(STAGING_TABLE, records=rows, columns=EVENT_COLUMNS)
                        status = await conn.execute(_MOVE_SQL)
                        inserted = int(status.rsplit(" ", 1)[-1])
                    if rejections:
                        await conn.executemany(_REJECTION_SQL, rejections)
            except asyncpg.UndefinedTableError:
                conn.set_staging_ready(False)
                raise
        return inserted

    # --- spooling and draining ------------------------------------------------------------------------------------

    def _enter_spooling(self, reason: str) -> None:
        if self._state != "spooling":
            logger.warning("writer state spooling: %s", reason)
            self._state = "spooling"
        self._ensure_draining()

    def _ensure_draining(self) -> None:
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = self._spawner.spawn(self._drain_loop(), name="vaka.store.drain")

    async def _drain_loop(self) -> None:
        while True:
            if self._state == "spooling" or not self._db.up:
                while not await self._db.wait_up(timeout_s=1.0):
                    self._spool.update_metrics()
                await self._retry.sleep()
                if self._state != "draining":
                    logger.info("writer state draining: %s events in the spool", self._spool.events)
                self._state = "draining"
            try:
                await self._drain_sealed()
            except Exception as exc:
                if not is_connection_error(exc):
                    logger.exception("spool drain failed")
                self._enter_spooling(f"drain failed: {type(exc).__name__}")
                continue
            self._retry.reset()
            if self._spool.empty:
                if self._state == "draining":
                    self._state = "ok"
                    logger.info("writer state ok: spool drained")
                self._stored_again()
                return
            await asyncio.sleep(0.01)  # appends arrived while draining: go round again

    async def _drain_sealed(self) -> None:
        max_rows = self._settings.batch_size * BATCH_ROWS_FACTOR
        for path in self._spool.sealed_segments():
            rows: list[EventRow] = []
            rejections: list[RejectionRow] = []
            counted = 0
            for record in await self._spool.read(path):
                try:
                    batch = decode_batch(record.payload)
                except msgspec.DecodeError:
                    logger.error("spool record in %s cannot be decoded; skipped", path.name)
                    continue
                rows.extend(batch.events)
                rejections.extend(batch.rejections)
                counted += record.events
                if len(rows) + len(rejections) >= max_rows:
                    await self._drain_rows(rows, rejections)
                    self._spool.consumed(path, counted)
                    rows, rejections, counted = [], [], 0
            if rows or rejections:
                await self._drain_rows(rows, rejections)
            self._spool.consumed(path, counted)
            self._spool.remove(path)

    async def _drain_rows(self, rows: list[EventRow], rejections: list[RejectionRow]) -> None:
        try:
            async with asyncio.timeout(self._settings.write_deadline_s * BATCH_ROWS_FACTOR):
                inserted = await self._write_rows(rows, rejections)
        except Exception as exc:
            if is_connection_error(exc) or isinstance(exc, asyncio.CancelledError):
                raise
            inserted = await self._salvage(rows, rejections)
        self._count_written(len(rows), inserted)

    async def _salvage(self, rows: list[EventRow], rejections: list[RejectionRow]) -> int:
        """Write rows one by one; a row the database refuses is stored as a rejection instead of blocking the drain."""
        inserted = 0
        for row in rows:
            try:
                inserted += await self._write_rows([row], [])
            except _REFUSED as exc:
                if is_connection_error(exc):
                    raise
                payload = _json.encode([str(v) if isinstance(v, datetime) else v for v in row])[:4096]
                topic = f"vaka/store/{row[1]}/{row[2]}".replace("\x00", "\ufffd")
                logger.error("spooled event refused by the database (%s); kept as a rejection", _sqlstate(exc))
                try:
                    await self._write_rows([], [(row[-1], topic, payload, f"unstorable_event: {_sqlstate(exc)}")])
                except _REFUSED as again:
                    if is_connection_error(again):
                        raise
                    logger.error(
                        "refused event could not be kept as a rejection either (%s); dropped", _sqlstate(again)
                    )
        for rejection in rejections:
            try:
                await self._write_rows([], [rejection])
            except _REFUSED as exc:
                if is_connection_error(exc):
                    raise
                logger.error("spooled rejection refused by the database (%s); dropped", _sqlstate(exc))
        return inserted


def _sqlstate(exc: BaseException) -> str:
    return str(getattr(exc, "sqlstate", None) or type(exc).__name__)


def _call(callback: Callable[[], None] | None) -> None:
    if callback is None:
        return
    try:
        callback()
    except Exception:
        logger.exception("on_durable callback failed")
