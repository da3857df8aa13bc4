"""The local spool: an append-only log on disk that holds event batches while the database is away.

Layout: numbered segment files (`000000000001.seg`, …) in the spool directory. Each record is a header
(payload length, CRC-32, event count, creation time) followed by the payload (a msgpack batch, see `rows.py`).
Appends are group-committed: every appender waits for the next `fsync`, which runs in a worker thread so the event
loop never blocks on the disk; an append returns only once its record is on stable storage. Each process start
writes a new segment, so a record torn by a SIGKILL or power cut can only be the tail of an older segment: replay
stops there (the CRC tells) and everything before it is delivered. Segments are deleted once drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from hub.metrics import Metrics
from hub.model import VakaError
from hub.runtime.tasks import Spawner
from hub.settings import SpoolSettings

logger = logging.getLogger(__name__)

HEADER = struct.Struct("<IIId")  # payload length, crc32 (of count, time and payload), event count, created (unix s)
_TRAILER_OF_HEADER = struct.Struct("<Id")
SEGMENT_MAX_BYTES = 8 << 20
MAX_RECORD_BYTES = 256 << 20
SUFFIX = ".seg"


_FREE_CHECK_S = 0.2


class SpoolError(VakaError):
    """The spool cannot take a record (disk full, I/O error); nothing was acknowledged."""


@dataclass(slots=True)
class _Segment:
    number: int
    path: Path
    bytes: int = 0
    events: int = 0
    first_created_s: float | None = None


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One record read back from a segment."""

    events: int
    created_s: float
    payload: bytes


def frame(payload: bytes, events: int, created_s: float) -> bytes:
    """Header and payload of one record."""
    tail = _TRAILER_OF_HEADER.pack(events, created_s)
    crc = zlib.crc32(payload, zlib.crc32(tail))
    return HEADER.pack(len(payload), crc, events, created_s) + payload


def parse_segment(data: bytes, *, verify: bool = True) -> tuple[list[SpoolRecord], int]:
    """Records of a segment and the offset where valid data ends (a torn or corrupt tail is left out)."""
    records: list[SpoolRecord] = []
    offset = 0
    while offset + HEADER.size <= len(data):
        length, crc, events, created_s = HEADER.unpack_from(data, offset)
        end = offset + HEADER.size + length
        if length > MAX_RECORD_BYTES or end > len(data):
            break
        payload = data[offset + HEADER.size : end]
        if verify and zlib.crc32(payload, zlib.crc32(_TRAILER_OF_HEADER.pack(events, created_s))) != crc:
            break
        records.append(SpoolRecord(events, created_s, payload))
        offset = end
    return records, offset


def _scan_headers(path: Path) -> tuple[int, int, float | None, int]:
    """Walk a segment's record headers: (file size, events, first record's time, end of the last whole record)."""
    events = 0
    first_created_s: float | None = None
    offset = 0
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        while offset + HEADER.size <= size:
            file.seek(offset)
            length, _crc, count, created_s = HEADER.unpack(file.read(HEADER.size))
            end = offset + HEADER.size + length
            if length > MAX_RECORD_BYTES or end > size:
                break
            events += count
            if first_created_s is None:
                first_created_s = created_s
            offset = end
    return size, events, first_created_s, offset


def _fsync_all(fds: list[int], dir_fd: int | None) -> None:
    for fd in fds:
        os.fsync(fd)
    if dir_fd is not None:
        os.fsync(dir_fd)


class Spool:
    """Append-only, fsynced, size-limited local log of batches; replayed oldest first."""

    def __init__(
        self,
        settings: SpoolSettings,
        metrics: Metrics,
        segment_max_bytes: int = SEGMENT_MAX_BYTES,
        *,
        spawner: Spawner,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._spawner = spawner
        self._segment_max_bytes = segment_max_bytes
        self._dir = Path(settings.directory)
        self._segments: list[_Segment] = []  # oldest first; the last one is active once it has an fd
        self._active: _Segment | None = None
        self._fd: int | None = None
        self._dirty: set[int] = set()
        self._retired: list[int] = []
        self._dir_dirty = False
        self._waiters: list[asyncio.Future[None]] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._next_number = 1
        self._bytes = 0
        self._events = 0
        self._free = 0
        self._free_checked_at = -_FREE_CHECK_S
        self._scan()

    @property
    def directory(self) -> Path:
        """Where the segments live."""
        return self._dir

    @property
    def events(self) -> int:
        """Events waiting in the spool."""
        return self._events

    @property
    def empty(self) -> bool:
        """True when no record waits to be drained."""
        return all(s.bytes == 0 for s in self._segments)

    @property
    def full(self) -> bool:
        """True at or past `max_bytes`, or with less free disk than the reserve: telemetry is then left in the
        broker, unacknowledged; care events are still appended while half the reserve is free (`takes_care`)."""
        return self._bytes >= self._settings.max_bytes or self._free_bytes() < self._settings.disk_reserve_bytes

    @property
    def takes_care(self) -> bool:
        """False once less than half the disk reserve is free: the rest is kept for the desk's journal."""
        return self._free_bytes() >= self._settings.disk_reserve_bytes // 2

    def _free_bytes(self) -> int:
        """Free bytes on the spool's filesystem for an unprivileged writer (statvfs, at most every 0.2 s)."""
        now = time.monotonic()
        if now - self._free_checked_at >= _FREE_CHECK_S:
            try:
                st = os.statvfs(self._dir)
                self._free = st.f_bavail * st.f_frsize
            except OSError:
                self._free = 0
            self._free_checked_at = now
        return self._free

    def oldest_age_s(self, now_s: float | None = None) -> float:
        """Age of the oldest waiting record (0 when empty)."""
        now_s = time.time() if now_s is None else now_s
        for seg in self._segments:
            if seg.first_created_s is not None and seg.events:
                return max(0.0, now_s - seg.first_created_s)
        return 0.0

    async def open(self) -> None:
        """Nothing left to do: the directory is scanned when the spool is built (kept for a symmetric lifecycle)."""

    def _scan(self) -> None:
        """Find the segments left by earlier runs (their records will be replayed); appends go to a fresh segment."""
        self._dir.mkdir(parents=True, exist_ok=True)
        numbers = sorted(int(p.stem) for p in self._dir.glob(f"*{SUFFIX}") if p.stem.isdigit())
        for number in numbers:
            path = self._segment_path(number)
            size, events, first_created_s, end = _scan_headers(path)
            if end < size:
                logger.warning("spool segment %s has a torn tail of %s bytes; it is ignored", path.name, size - end)
            if events == 0 and end == 0:
                path.unlink(missing_ok=True)
                continue
            seg = _Segment(number, path, size, events, first_created_s)
            self._segments.append(seg)
            self._bytes += seg.bytes
            self._events += seg.events
        self._next_number = (numbers[-1] + 1) if numbers else 1
        if self._segments:
            logger.info("spool holds %s events in %s segments from before", self._events, len(self._segments))
        self.update_metrics()

    async def close(self) -> None:
        """Finish pending fsyncs and close the files."""
        while self._flush_task is not None:
            await asyncio.shield(self._flush_task)
        self._retire_active()
        for fd in self._retired:
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)
        self._retired.clear()

    async def append(self, payload: bytes, events: int) -> None:
        """Append one record and return once it is fsynced; raises SpoolError when the disk refuses it."""
        record = frame(payload, events, time.time())
        seg = self._writable_segment()
        assert self._fd is not None
        fd = self._fd
        try:
            view = memoryview(record)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except OSError as exc:
            # leave no half record behind: cut the file back and start a new segment
            with contextlib.suppress(OSError):
                os.ftruncate(fd, seg.bytes)
            self._retire_active()
            msg = f"spool append failed: {exc}"
            raise SpoolError(msg) from exc
        seg.bytes += len(record)
        seg.events += events
        if seg.first_created_s is None:
            seg.first_created_s = time.time()
        self._bytes += len(record)
        self._events += events
        self._metrics.events_spooled.inc(events)
        self.update_metrics()
        self._dirty.add(fd)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._flush_task is None:
            self._flush_task = self._spawner.spawn(self._flush_loop(), name="vaka.spool.fsync")
        await asyncio.shield(waiter)

    def sealed_segments(self, *, seal_active: bool = True) -> list[Path]:
        """Segments ready to drain, oldest first; with `seal_active`, the active one is closed for appends first."""
        if seal_active and self._active is not None and self._active.bytes:
            self._retire_active()
        return [s.path for s in self._segments if s is not self._active]

    async def read(self, path: Path) -> list[SpoolRecord]:
        """The valid records of a sealed segment, in order (a torn tail is left out and logged)."""
        data = await asyncio.to_thread(path.read_bytes)
        records, end = parse_segment(data)
        if end < len(data):
            logger.warning("spool segment %s: %s bytes after the last valid record ignored", path.name, len(data) - end)
        return records

    def consumed(self, path: Path, events: int) -> None:
        """Count `events` of segment `path` as delivered to the database (metrics only)."""
        for seg in self._segments:
            if seg.path == path:
                taken = min(events, seg.events)
                seg.events -= taken
                self._events -= taken
                break
        self.update_metrics()

    def remove(self, path: Path) -> None:
        """Delete a drained segment."""
        for seg in list(self._segments):
            if seg.path == path and seg is not self._active:
                self._segments.remove(seg)
                self._bytes -= seg.bytes
                self._events -= seg.events
        path.unlink(missing_ok=True)
        self.update_metrics()

    def update_metrics(self) -> None:
        """Refresh the spool gauges (depth in bytes and events, age of the oldest)."""
        self._metrics.spool_bytes.set(self._bytes)
        self._metrics.spool_events.set(self._events)
        self._metrics.spool_oldest_age.set(self.oldest_age_s())

    def _segment_path(self, number: int) -> Path:
        return self._dir / f"{number:012d}{SUFFIX}"

    def _writable_segment(self) -> _Segment:
        if self._active is not None and self._active.bytes >= self._segment_max_bytes:
            self._retire_active()
        if self._active is None:
            number = self._next_number
            self._next_number += 1
            path = self._segment_path(number)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            self._active = _Segment(number, path)
            self._segments.append(self._active)
            self._dir_dirty = True
        return self._active

    def _retire_active(self) -> None:
        """Stop appending to the active segment; its fd is fsynced once more and closed by the flusher."""
        if self._fd is not None:
            self._retired.append(self._fd)
        self._fd = None
        active, self._active = self._active, None
        if active is not None and active.bytes == 0:
            self._segments.remove(active)
            active.path.unlink(missing_ok=True)

    async def _flush_loop(self) -> None:
        try:
            if self._settings.fsync_interval_s > 0:
                await asyncio.sleep(self._settings.fsync_interval_s)
            while self._waiters or self._retired:
                waiters, self._waiters = self._waiters, []
                retired, self._retired = self._retired, []
                fds = sorted(self._dirty | set(retired))
                self._dirty.clear()
                dir_fd = os.open(self._dir, os.O_RDONLY) if self._dir_dirty else None
                self._dir_dirty = False
                try:
                    await asyncio.to_thread(_fsync_all, fds, dir_fd)
                except OSError as exc:
                    logger.error("spool fsync failed: %s", exc)
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(SpoolError(f"spool fsync failed: {exc}"))
                else:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
                finally:
                    if dir_fd is not None:
                        os.close(dir_fd)
                    for fd in retired:
                        with contextlib.suppress(OSError):
                            os.close(fd)
        finally:
            self._flush_task = None
