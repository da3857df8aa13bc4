"""The SCAIP receiver: SIP MESSAGE over UDP and TCP, each answered with a SIP response carrying the SCAIP `<mrs>`.

Contract, in the order a request meets it:
- Every request gets a SIP response: 400/413 when the SIP itself is broken, 405 for methods other than MESSAGE (and
  OPTIONS, answered 200 as a keep-alive), 415 when the body is not XML, else 200 with the SCAIP response body.
- The SCAIP status number is 0 only once the request's event is durable (committed, or in the local spool): the same
  rule as the MQTT PUBACK. A store slower than `durable_timeout_s` earns 5 (not treated), so the unit sends again.
  Format errors earn 2, content errors 3, missing mandatory elements 7, a body too long 1; such requests are kept in
  `rejected_messages` with the reason.
- A retransmission (same Call-ID, CSeq and Via branch) is answered from a cache with the very same response, and
  reaches neither the alarm lane nor the store again. A unit that sends the same alarm again as a new transaction
  (same `ref`) gets the first time it was seen as the event time, so it is stored once and rings no second time.
- Heartbeats (mty PI) are device events like any other, so they feed supervision; each response to a unit that lets
  the receiver set its interval (`hbo` 001) asks for heartbeats every `heartbeat_interval_s` (`<hbi>`, in minutes).
- Only listed senders are heard (`scaip.senders`, hub/scaip/senders.py): a source address not on the list gets SIP
  403 and nothing else; a listed source speaks only for the site's inventory devices of vendor `scaip` named for it
  (any other `cid`, the reserved `hub` included, is refused with status 3 and kept as `unknown_device`), so an `RE`
  can only withdraw its own unit's alarms. Each source may send `burst_per_source` at once and `rate_per_source_s`
  a second; beyond that it gets SIP 503 with Retry-After, and the unit sends again.
- The first time a (unit, ref, type) was seen is kept in the database (`scaip_first_seen`), so a resend after a
  restart is still stored once and rings no second time; a database that does not answer within a second counts
  the message as new (ring rather than drop).
- A refused body is logged as its length and the reason only; the answer's `<ref>` has identity numbers masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from adapters._common import device_id_from_name
from adapters.scaip import ScaipError, StatusNumber, events_for, heartbeat_minutes, read_request, response_body
from hub.metrics import Metrics
from hub.model import Event, Site
from hub.runtime.redact import mask_identity_numbers
from hub.runtime.tasks import Spawner
from hub.scaip import sip
from hub.scaip.senders import Senders, SourceRate
from hub.settings import ScaipSettings

if TYPE_CHECKING:
    from hub.store.pool import Database

logger = logging.getLogger(__name__)

_PORT_PICKS = 5

TRANSACTION_TTL_S = 64.0  # RFC 3261 timer J for UDP: 64 × T1
MAX_TRANSACTIONS = 20_000
MAX_FIRST_SEEN = 50_000
FIRST_SEEN_TIMEOUT_S = 1.0
_PRUNE = "DELETE FROM scaip_first_seen WHERE site = $1 AND first_seen < now() - interval '7 days'"
_FIRST_SEEN = (
    "INSERT INTO scaip_first_seen (site, device_id, ref, mty, first_seen) VALUES ($1, $2, $3, $4, $5)"
    " ON CONFLICT (site, device_id, ref, mty) DO UPDATE SET site = EXCLUDED.site RETURNING first_seen"
)


class IngestLane(Protocol):
    """What the receiver needs of hub.intake.ingest.Ingest."""

    def accept(self, events: Sequence[Event], on_durable: Callable[[], None], *, telemetry: bool = False) -> None: ...
    def reject(self, msg: _Kept, reason: str, detail: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Kept:
    """A refused request, handed to ingest to be kept with its reason (hub.intake.ingest.Received)."""

    topic: str
    payload: bytes
    received_at: datetime
    kept: asyncio.Future[None]

    def ack(self) -> None:
        """The refusal is durable."""
        if not self.kept.done():
            self.kept.set_result(None)


class ScaipReceiver:
    """Listens on UDP and TCP; `start()` binds, `close()` stops and waits for requests in progress."""

    def __init__(
        self,
        settings: ScaipSettings,
        ingest: IngestLane,
        metrics: Metrics,
        now: Callable[[], datetime] | None = None,
        *,
        spawner: Spawner,
        db: Database | None = None,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        self._settings = settings
        # the HA profile (hub/ownership/): a hub that does not act for the receiving site answers "not treated" and
        # stores nothing, so the unit sends to its other receiver (SS 91100), the hub that holds the site
        self._owns = owns or (lambda site: True)
        self._db = db
        self._senders = Senders(settings.senders, settings.site)
        self._rate = SourceRate(settings.rate_per_source_s, settings.burst_per_source)
        self._ingest = ingest
        self._metrics = metrics
        self._spawner = spawner
        self._now = now or (lambda: datetime.now(UTC))
        self._transactions: OrderedDict[tuple[str, str, str], tuple[float, asyncio.Future[bytes]]] = OrderedDict()
        self._first_seen: OrderedDict[tuple[str, str, str], datetime] = OrderedDict()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.udp_port = 0
        self.tcp_port = 0

    def set_sites(self, sites: Sequence[Site]) -> None:
        """The inventory: only the receiving site's devices of vendor `scaip` are heard."""
        self._senders.set_sites(sites)

    async def start(self) -> None:
        """Bind the configured transports (port 0: any free port, see `udp_port` and `tcp_port`)."""
        loop = asyncio.get_running_loop()
        s = self._settings
        if self._db is not None:
            with contextlib.suppress(Exception):  # a database away at start: pruned next time
                async with asyncio.timeout(5.0), self._db.acquire() as conn:
                    await conn.execute(_PRUNE, s.site)
        if not s.senders:
            logger.warning("scaip receiver: no senders listed (scaip.senders): every request will be refused")
        # port 0: one free port for both transports; the TCP port of the UDP port the system picked may be taken
        # by something else, so a few picks are tried (was a test's "address already in use" now and then)
        for attempt in range(_PORT_PICKS if s.port == 0 else 1):
            if "udp" in s.transports:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(self), local_addr=(s.host, s.port)
                )
                self._udp = transport
                self.udp_port = transport.get_extra_info("sockname")[1]
            if "tcp" in s.transports:
                port = self.udp_port if s.port == 0 and self.udp_port else s.port
                try:
                    self._tcp = await asyncio.start_server(self._stream, s.host, port)
                except OSError:
                    if self._udp is None or attempt == _PORT_PICKS - 1 or s.port != 0:
                        raise
                    self._udp.close()
                    self._udp, self.udp_port = None, 0
                    continue
                self.tcp_port = self._tcp.sockets[0].getsockname()[1]
            break
        logger.info("scaip receiver listening udp=%s tcp=%s", self.udp_port or "-", self.tcp_port or "-")

    async def close(self) -> None:
        """Stop listening; requests in progress are cancelled (their units will send again)."""
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self._tcp.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- transports -------------------------------------------------------------------------------------------------

    def _spawn_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        task = self._spawner.spawn(self._answer_datagram(data, addr), name="vaka.scaip.udp")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            answer = await self.handle(data, addr[0])
        except Exception:
            logger.exception("scaip request failed peer=%s", addr[0])
            return
        if answer is not None and self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(answer, addr)

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str((writer.get_extra_info("peername") or ("?",))[0])
        buffer = bytearray()
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while chunk := await reader.read(65536):
                buffer += chunk
                while (message := sip.split_stream(buffer)) is not None:
                    answer = await self.handle(message, peer)
                    if answer is not None:
                        writer.write(answer)
                        await writer.drain()
        except sip.SipError as exc:
            self._metrics.scaip_requests.labels("sip_error").inc()
            logger.info("scaip tcp stream refused peer=%s: %s", peer, exc.detail)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # --- requests ---------------------------------------------------------------------------------------------------

    async def handle(self, data: bytes, peer: str) -> bytes | None:
        """The response to one SIP message, or None when none can be given (no headers to answer with)."""
        try:
            request = sip.read_request(data)
        except sip.SipError as exc:
            self._metrics.scaip_requests.labels("sip_error").inc()
            logger.info("scaip sip error peer=%s status=%s detail=%s", peer, exc.status, exc.detail)
            return sip.bare_response(data, exc.status)
        if request.method == "OPTIONS":
            return sip.response(request, 200)
        if request.method != "MESSAGE":
            self._metrics.scaip_requests.labels("sip_error").inc()
            return sip.response(request, 405)
        if not self._senders.known(peer):
            self._metrics.scaip_requests.labels("unknown_source").inc()
            logger.info("scaip refused peer=%s reason=unknown_source length=%d", peer, len(request.body))
            return sip.response(request, 403)
        key = request.transaction_key
        self._expire_transactions()
        known = self._transactions.get(key)
        if known is not None:
            self._metrics.scaip_requests.labels("retransmission").inc()
            return await asyncio.shield(known[1])
        if not self._rate.take(peer, time.monotonic()):
            self._metrics.scaip_requests.labels("rate_limited").inc()
            logger.info("scaip refused peer=%s reason=rate_limited length=%d", peer, len(request.body))
            return sip.response(request, 503, extra=[("Retry-After", "1")])
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._transactions[key] = (time.monotonic() + TRANSACTION_TTL_S, answer)
        try:
            result = await self._process(request, peer)
        except BaseException:
            del self._transactions[key]
            answer.cancel()
            raise
        answer.set_result(result)
        return result

    async def _process(self, request: sip.SipRequest, peer: str) -> bytes:
        received_at = self._now()
        content_type = (request.header("content-type") or "").lower()
        if "xml" not in content_type:
            self._metrics.scaip_requests.labels("unsupported_media_type").inc()
            await self._keep(peer, request.body, received_at, "unsupported_media_type", content_type[:64])
            body = response_body("", StatusNumber.FORMAT_ERROR, "Content-Type must be application/scaip+xml")
            return sip.response(request, 415, body)
        try:
            scaip = read_request(request.body)
        except ScaipError as exc:
            self._metrics.scaip_requests.labels(exc.reason).inc()
            # the body may carry anything a unit put in it (a personnummer in <ref>): its length and the reason only
            logger.info(
                "scaip refused peer=%s snu=%s reason=%s length=%d", peer, int(exc.snu), exc.reason, len(request.body)
            )
            await self._keep(peer, request.body, received_at, exc.reason, mask_identity_numbers(exc.detail))
            return sip.response(request, 200, response_body(mask_identity_numbers(exc.ref), exc.snu, exc.reason))
        if not self._owns(self._settings.site):
            self._metrics.scaip_requests.labels("not_served_here").inc()
            logger.info("scaip site=%s not served by this hub now: answered not treated", self._settings.site)
            ref = mask_identity_numbers(scaip.ref)
            return sip.response(request, 200, response_body(ref, StatusNumber.NOT_TREATED, "not served here"))
        device_id = device_id_from_name(scaip.cid)
        if not self._senders.may_send_for(peer, device_id):
            self._metrics.scaip_requests.labels("unknown_device").inc()
            logger.info("scaip refused peer=%s reason=unknown_device length=%d", peer, len(request.body))
            await self._keep(peer, request.body, received_at, "unknown_device", "not a scaip device of this sender")
            ref = mask_identity_numbers(scaip.ref)
            return sip.response(request, 200, response_body(ref, StatusNumber.CONTENT_ERROR, "unknown unit"))
        ts = await self._first_time(device_id, scaip.ref, scaip.mty, received_at)
        events = [
            dataclasses.replace(ev, site=self._settings.site)
            for ev in events_for(scaip, ts, f"scaip/{scaip.cid}", dict(self._settings.status_codes))
        ]
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_durable() -> None:
            if not durable.done():
                durable.set_result(None)

        self._ingest.accept(events, on_durable)
        hbi = heartbeat_minutes(self._settings.heartbeat_interval_s) if scaip.adjusts_heartbeat else None
        try:
            async with asyncio.timeout(self._settings.durable_timeout_s):
                await asyncio.shield(durable)
        except TimeoutError:
            self._metrics.scaip_requests.labels("not_treated").inc()
            logger.warning(
                "scaip event not durable in %.1f s ref=%s: answered not treated",
                self._settings.durable_timeout_s,
                mask_identity_numbers(scaip.ref),
            )
            return sip.response(request, 200, response_body(scaip.ref, StatusNumber.NOT_TREATED, "not stored yet"))
        self._metrics.scaip_requests.labels("ok").inc()
        return sip.response(request, 200, response_body(scaip.ref, StatusNumber.OK, heartbeat_interval_min=hbi))

    async def _keep(self, peer: str, body: bytes, received_at: datetime, reason: str, detail: str) -> None:
        """Keep a refused request with its reason, and answer once that is durable (or the wait is over)."""
        kept = _Kept(f"scaip/{peer}", body, received_at, asyncio.get_running_loop().create_future())
        self._ingest.reject(kept, reason, detail)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.durable_timeout_s):
                await asyncio.shield(kept.kept)

    async def _first_time(self, device_id: str, ref: str, mty: str, received_at: datetime) -> datetime:
        """When this unit's message (ref, type) was first seen: a resend keeps the first time, so it is stored once;
        remembered in the database too, so a resend after a restart is recognised."""
        key = (device_id, ref, mty)
        first = self._first_seen.get(key)
        if first is not None:
            return first
        first = received_at
        if self._db is not None:
            try:
                async with asyncio.timeout(FIRST_SEEN_TIMEOUT_S), self._db.acquire() as conn:
                    first = await conn.fetchval(_FIRST_SEEN, self._settings.site, device_id, ref, mty, received_at)
            except Exception as exc:  # a missing database must not stop an alarm: count it as new
                logger.warning("scaip first-seen not read (%s): counted as new", type(exc).__name__)
                first = received_at
        self._first_seen[key] = first
        while len(self._first_seen) > MAX_FIRST_SEEN:
            self._first_seen.popitem(last=False)
        return first

    def _expire_transactions(self) -> None:
        now = time.monotonic()
        while self._transactions:
            key, (expires, answer) = next(iter(self._transactions.items()))
            if (expires > now or not answer.done()) and len(self._transactions) <= MAX_TRANSACTIONS:
                break
            del self._transactions[key]


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, receiver: ScaipReceiver) -> None:
        self._receiver = receiver

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._receiver._spawn_datagram(data, addr)
