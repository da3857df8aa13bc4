"""The one place that starts things: resources in an AsyncExitStack, long-running loops in one TaskGroup.

Start order: metrics and clock, the spawner (hub/runtime/tasks.py: the owner of every task a component starts on demand),
database (never waits for it), spool and writer, rules and engine (restored from the local snapshot, else the
database's), the desk, ingest, the MQTT connections, the web. Shutdown is the reverse: loops are cancelled, then
resources close last-in first-out, the writer flushes what it holds, and the spawner stops whatever is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self, TypeVar

import asyncpg
from aiohttp import web

from adapters import native
from alarms.directory import Directory
from alarms.engine import Engine
from alarms.gate import Gate, GateLimits, Verdict, freshness_by_kind, rule_freshness
from alarms.rules import default_pack_path, load_rules
from hub.checkins.gateway import HttpCameraGateway
from hub.checkins.service import CheckinService
from hub.checkins.service import run_loop as checkins_loop
from hub.desk.build import build_desk
from hub.desk.lane import TICK_S
from hub.devices.inventory import build_directory, devices_by_id
from hub.intake import paho_speed
from hub.intake.ingest import Ingest
from hub.intake.mqtt import Message, MqttConnection
from hub.metrics import Metrics
from hub.model import EARLIEST_EVENT, Site, VakaError
from hub.ownership.profile import HaProfile
from hub.recovery import replay, snapshots
from hub.runtime import heap
from hub.runtime.clock import Clock, SimulatedClock, WallClock
from hub.runtime.heap import GcPauses
from hub.runtime.tasks import Spawner
from hub.scaip.receiver import ScaipReceiver
from hub.settings import Settings
from hub.store import rollup
from hub.store.db import Database, VakaConnection
from hub.store.inventory import fetch_sites, inventory_version, rule_profiles, rule_profiles_version
from hub.store.migrate import MigrationError, ensure_current, maintain_partitions
from hub.store.roles import RoleError, privilege_problems
from hub.store.spool import Spool
from hub.store.state import load_engine_state, save_engine_state
from hub.store.writer import Writer
from hub.supervision.canary import TELEMETRY_TOPIC as CANARY_TELEMETRY_TOPIC
from hub.supervision.canary import TOPIC as CANARY_TOPIC
from hub.supervision.canary import Canary
from hub.supervision.devices import Sight, SupervisedEngine
from hub.supervision.gauges import ops_gauges_loop
from hub.supervision.hub_status import HubStatus
from hub.web import create_app
from hub.web.degraded import DEGRADED
from hub.web.ops import Readiness
from hub.web.relatives import setup_relatives
from hub.web.staff import setup_staff
from hub.web.staff.sessions import SessionStore

logger = logging.getLogger(__name__)
T = TypeVar("T")
D = TypeVar("D")

TELEMETRY_FILTER = "vaka/v1/+/+/telemetry"
SNAPSHOT_INTERVAL_S = 10.0  # to the local disk; the database's copy (for a new machine) every minute
DB_SNAPSHOT_INTERVAL_S = 60.0
MAINTENANCE_INTERVAL_S = 3600.0
SIMULATED_TICK_S = 0.05
DB_STEP_TIMEOUT_S = 30.0
HTTP_SHUTDOWN_S = 3.0
SIMULATION_SKEW = timedelta(days=1)


class Hub:
    """The running service. `async with Hub(settings) as hub:` starts it; leaving the block stops it."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics()
        self.clock: Clock = WallClock()
        # Telemetry gets a connection of its own so care events never queue behind it. A simulation instead runs
        # on one connection: its clock messages then arrive in order with the events, and the clock (which waits
        # at the earliest plausible time until the simulation speaks, and never runs ahead of its messages)
        # cannot pass an event still in flight on another connection.
        self._telemetry_lane = settings.mqtt.telemetry_connection and settings.clock.mode == "wall"
        if settings.clock.mode == "simulated":
            self.clock = SimulatedClock(EARLIEST_EVENT, max_lead_s=0.0)
        self._stack = AsyncExitStack()
        self.loops: list[asyncio.Task[None]] = []  # the forever-loops in the one TaskGroup (a failure stops the hub)
        self._connections: list[MqttConnection] = []
        self._sites: list[Site] = []
        self.scaip: ScaipReceiver | None = None
        self.http_port = 0
        self._simulation_started = False
        self._inventory_version: tuple[object, ...] | None = None
        # `vaka serve` sets this: what start-up and each inventory reload build goes to the permanent generation
        self.freeze_heap = False
        self._profiles: dict[str, str] = {}  # resident id -> rule profile name (resident_rule_profiles)
        self._profiles_version: tuple[object, ...] | None = None
        self._local_faults: list[tuple[str, OSError]] = []  # refused writes before the desk could raise them
        self._start_error: VakaError | None = (
            None  # a database the hub must not run on (schema behind, role too strong)
        )
        self.ha: HaProfile | None = None  # the HA profile (`ha.enabled`): sites owned by lease, hub/ownership/

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        s = self.settings
        stack = self._stack
        paho_speed.install()  # lean MQTT 5 properties in paho's packet parser, or stock paho with a warning
        s.spool.directory.mkdir(parents=True, exist_ok=True)
        # first in, last out: every component hands its background tasks to it, and has stopped them before it closes
        self.spawner = Spawner(self.metrics, on_failure=self._task_failed)
        stack.push_async_callback(self.spawner.aclose)

        stack.callback(GcPauses(self.metrics).close)
        self.db = Database(s.db, self.metrics, spawner=self.spawner)
        self.db.set_prepare(self._prepare_database)
        await self.db.open()
        stack.push_async_callback(self.db.close)
        if self._start_error is not None:
            raise self._start_error
        self._sites = await self._load_sites()
        self._profiles = await self._load_profiles()

        self.spool = Spool(s.spool, self.metrics, spawner=self.spawner)
        stack.push_async_callback(self.spool.close)
        await self.spool.open()
        self.writer = Writer(
            self.db,
            self.spool,
            s.db,
            self.metrics,
            spawner=self.spawner,
            on_deferred_recovered=self._ask_again,
            local_durability=not s.ha.enabled,
        )
        stack.push_async_callback(self.writer.close)

        rules = self.rules = load_rules(s.rules.packs or [default_pack_path()])
        # in simulated mode the devices are supervised from the simulation's first clock message, not from now
        directory = self._directory() if s.clock.mode == "wall" and not s.ha.enabled else build_directory([])
        # a simulation starts from its own beginning: timers from an earlier run would fire at the wrong times
        snapshot = None
        if s.clock.mode == "wall" and not s.ha.enabled:  # HA: each site's snapshot, read when it is taken
            snapshot = snapshots.load_local(s.spool.directory) or await self._db_call(load_engine_state, default=None)
        self.engine = Engine.restore(rules, directory, snapshot) if snapshot else Engine(rules, directory)
        limits = GateLimits(
            s.reliability.care_freshness_s, s.reliability.technical_freshness_s, s.reliability.rule_freshness_s
        )
        self.engine.freshness_s = rule_freshness(rules, limits)
        self.engine.offline_grace_s = s.reliability.offline_grace_s
        downtime_s = time.time() - float(snapshot.get("replay_from", time.time())) if snapshot else 0.0
        self.sight = Sight.at_start(
            s.reliability.blind_grace_s,
            s.reliability.blind_alarm_after_s,
            [site.id for site in self._sites],
            time.monotonic(),
            downtime_s,
            gap_s=s.reliability.input_gap_s,
        )
        # a simulation runs far faster than the wall clock the sight measures in: it is never blind
        watch_sight = s.clock.mode == "wall"
        self.engine.supervision_suspended = watch_sight
        self.metrics.supervision_blind.set(1 if watch_sight else 0)
        self.gate = Gate(freshness_by_kind(rules, limits))
        if snapshot:
            self.gate.restore(snapshot.get("gate"))
        self._exported: dict[str, int] = {}
        if s.ha.enabled:
            self.ha = HaProfile(
                s,
                self.db,
                self.metrics,
                spawner=self.spawner,
                rules=rules,
                clock=self.clock,
                directory_for=lambda site: build_directory(
                    [x for x in self._sites if x.id == site], self.rules, self._profiles
                ),
                rule_freshness=self.engine.freshness_s,
                gate_freshness=freshness_by_kind(rules, limits),
                inventory=lambda: [site.id for site in self._sites],
            )
            self.gate = self.ha.gates
        else:
            stack.callback(self._save_snapshot_at_exit)

        # --- issue 25: the hub's retained status per site, with its Last Will (hub/supervision/hub_status.py)
        self.hub_status = HubStatus(s.mqtt, self.metrics, self.spawner, lambda: datetime.now(UTC))
        stack.push_async_callback(self.hub_status.aclose)
        self.hub_status.set_sites(self._status_sites())
        # ---
        # the canary speaks as a device of its own (the hub's connections do not hear their own publishes)
        self.canary_conn = MqttConnection(
            s.mqtt,
            self.metrics,
            name="canary",
            client_id=f"{s.mqtt.client_id}-canary",
            subscriptions=[],
            on_message=lambda msg: None,
            spawner=self.spawner,
        )
        self.canary = Canary(
            self.canary_conn.publish,
            lambda decision: self.desk.lane.apply(decision),
            self.metrics,
            lambda: [site.id for site in self._sites],
            interval_s=s.reliability.canary_interval_s,
            timeout_s=s.reliability.canary_timeout_s,
            can_send=lambda: self.canary_conn.connected and self.events_conn.connected,
        )
        self._canaries = [self.canary]  # and the telemetry path's, once its connection exists
        self.events_conn = MqttConnection(
            s.mqtt,
            self.metrics,
            name="events",
            client_id=s.mqtt.client_id,
            subscriptions=self._event_subscriptions(),
            on_message=self._on_event_message,
            spawner=self.spawner,
            session_marker=s.spool.directory / f"{s.mqtt.client_id}.session",
        )
        self.sessions = SessionStore(
            self.db,
            s.http.session_idle_s,
            spawner=self.spawner,
            local_path=s.spool.directory / "staff_sessions.msgpack" if self.ha is None else None,
        )
        sessions = self.sessions
        self.desk = build_desk(
            s,
            self.db,
            self.metrics,
            publish=self.events_conn.publish,
            clock=self.clock,
            spawner=self.spawner,
            engine=SupervisedEngine(
                self.engine if self.ha is None else self.ha.engines,
                self.sight,
                lambda: self._connections,
                self._blind,
                input_lag_s=lambda: max(c.lag_s() for c in self._canaries),
            )
            if watch_sight
            else self.engine,
            gate=self.gate,
            tick_s=SIMULATED_TICK_S if s.clock.mode == "simulated" else TICK_S,
            # the HA profile keeps nothing the next owner could not read: no journal, no local copy
            journal_dir=s.spool.directory / "desk-journal" if self.ha is None else None,
            local_dir=s.spool.directory if self.ha is None else None,
            session_alive=lambda key: sessions.live(key) is not None,  # a page whose session ended gets nothing
            acts_for=self.ha.keeper.acts_for if self.ha is not None else None,
            fence=self.ha.keeper.fence if self.ha is not None else None,
            on_fenced=self.ha.keeper.fenced_row if self.ha is not None else None,
        )
        if self.ha is not None:
            self.ha.attach(self.desk.lane, flush_store=self.writer.flush)
            stack.push_async_callback(self.ha.leave)  # after the desk wrote what it owed
        stack.push_async_callback(self.desk.aclose)  # after the loops stop, before the database closes
        for what, exc in self._local_faults:  # writes refused before the desk existed (a full disk at start)
            self.desk.lane.local_write_failed(what, exc)
        self._local_faults.clear()
        gateway = (
            HttpCameraGateway(
                s.checkins.gateway_url,
                s.checkins.gateway_token.get_secret_value() if s.checkins.gateway_token else None,
            )
            if s.checkins.gateway_url
            else None
        )
        self.checkins = CheckinService(
            self.db,
            self.desk,
            self.events_conn.publish,
            self.clock,
            gateway,
            overdue_after_s=s.checkins.overdue_after_s,
            night_end=s.desk.night_end,
            owns=self.ha.keeper.acts_for if self.ha is not None else None,
        )
        if self.ha is None:
            await self.desk.restorer.restore(self._sites)  # with the database away it starts empty, restores later
        else:  # each site's open alarms come back when its lease is taken (hub/ownership/takeover.py)
            await self._ha_staff()
        if snapshot is not None and "replay_from" in snapshot:
            await self._recover(datetime.fromtimestamp(float(snapshot["replay_from"]), UTC))
        self._reconcile()
        # durable before the new snapshot says "replay from now", and before the hub takes events
        await self.desk.restorer.settle_recovery()
        if s.clock.mode == "wall" and self.ha is None:
            await self._write_local("engine_snapshot", snapshots.save_local, s.spool.directory, self._encode_snapshot())
        self.ingest = Ingest(
            self.metrics,
            self.writer,
            alarm_lane=self.desk.lane.feed if self.ha is None else self.ha.feed,
            routes=s.mqtt.routes,
            now=self._simulation_reference_time if s.clock.mode == "simulated" else None,
            max_future_skew_s=s.reliability.max_future_skew_s if s.clock.mode == "wall" else None,
        )
        self.ingest.set_devices(devices_by_id(self._sites))
        if s.scaip.enabled:  # social alarms over SIP: answered once their event is durable (hub/scaip/receiver.py)
            self.scaip = ScaipReceiver(
                s.scaip,
                self.ingest,
                self.metrics,
                spawner=self.spawner,
                db=self.db,
                owns=self.ha.keeper.acts_for if self.ha is not None else None,
            )
            self.scaip.set_sites(self._sites)
            await self.scaip.start()
            stack.push_async_callback(self.scaip.close)
        connections = self._connections = [self.events_conn]
        if self._telemetry_lane:
            self.telemetry_conn = MqttConnection(
                s.mqtt,
                self.metrics,
                name="telemetry",
                client_id=f"{s.mqtt.client_id}-telemetry",
                subscriptions=[TELEMETRY_FILTER],
                on_message=self._on_telemetry_message,
                spawner=self.spawner,
                session_marker=s.spool.directory / f"{s.mqtt.client_id}-telemetry.session",
                max_unacked=s.mqtt.receive_maximum,  # the broker's flow control is not enough (hub/intake/mqtt.py)
            )
            connections.append(self.telemetry_conn)
            telemetry_conn = self.telemetry_conn
            self._canaries.append(
                Canary(
                    self.canary_conn.publish,
                    lambda decision: self.desk.lane.apply(decision),
                    self.metrics,
                    lambda: [site.id for site in self._sites],
                    interval_s=s.reliability.canary_interval_s,
                    timeout_s=s.reliability.canary_timeout_s,
                    path="telemetry",
                    can_send=lambda: self.canary_conn.connected and telemetry_conn.connected,
                )
            )

        app = create_app(
            self.metrics,
            Readiness(
                database_up=lambda: self.db.up,
                broker_connected=lambda: all(c.connected for c in connections),
                store_state=lambda: self.writer.state,
            ),
            s.http,
        )
        app[DEGRADED] = self._degraded
        if self.ha is not None:
            self.ha.add_routes(app)
        setup_staff(
            app,
            desk=self.desk,
            sessions=self.sessions,
            db=self.db,
            settings=s,
            metrics=self.metrics,
            spawner=self.spawner,
            checkins=self.checkins,
            rules=rules,
        )
        setup_relatives(app, db=self.db, settings=s)
        # open staff pages hold WebSockets: shutdown closes them, and waits at most a few seconds for stragglers
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=HTTP_SHUTDOWN_S)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, s.http.host, s.http.port)
        await site.start()
        self.http_port = runner.addresses[0][1]

        group = await stack.enter_async_context(asyncio.TaskGroup())
        tasks = self.loops
        # registered after the group: runs first on exit, so the group's exit finds its loops cancelled
        stack.callback(lambda: [t.cancel() for t in tasks])
        tasks.append(group.create_task(self.writer.run_loop(), name="vaka.writer"))
        tasks.extend(group.create_task(loop, name=name) for name, loop in self.desk.loops().items())
        tasks.append(group.create_task(self._housekeeping_loop(), name="vaka.housekeeping"))
        if self.ha is not None:
            tasks.extend(group.create_task(loop, name=name) for name, loop in self.ha.loops().items())
        tasks.append(
            group.create_task(
                checkins_loop(self.checkins, s.checkins.tick_s, self.desk.clock_rate), name="vaka.checkins"
            )
        )
        if watch_sight:
            tasks.append(group.create_task(self.canary_conn.run_loop(), name="vaka.mqtt.canary"))
            for canary in self._canaries:
                name = "vaka.canary" if canary.path == "events" else f"vaka.canary.{canary.path}"
                tasks.append(group.create_task(canary.run_loop(), name=name))
        tasks.append(
            group.create_task(
                rollup.refresh_loop(
                    self.settings.db.dsn.get_secret_value(),
                    self.settings.db.db_schema,
                    self.settings.followup.refresh_interval_s,
                    self.clock.now,
                ),
                name="vaka.followup",
            )
        )
        gauges = ops_gauges_loop(self.metrics, self.desk.machine.open_alarms, lambda: self._sites, self.clock.now)
        tasks.append(group.create_task(gauges, name="vaka.ops_gauges"))
        for conn in connections:
            tasks.append(group.create_task(conn.run_loop(), name=f"vaka.mqtt.{conn.name}"))
        logger.info("hub started: http port %s, %s sites, clock %s", self.http_port, len(self._sites), s.clock.mode)

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        """Wait until every MQTT connection is up and subscribed (tests, benchmarks)."""
        for conn in self._connections:
            await conn.wait_connected(timeout_s)

    def _take_snapshot(self) -> dict[str, Any]:
        """Engine and gate as of now, with the point a replay after a crash starts from (hub/recovery/replay.py)."""
        extra = {"gate": self.gate.snapshot(), "replay_from": self.clock.now().timestamp()}
        return snapshots.take(self.engine, extra)

    def _encode_snapshot(self) -> bytes:
        return snapshots.encode(self._take_snapshot())

    async def _recover(self, replay_from: datetime) -> None:
        """Replay what was acknowledged after the snapshot (hub/recovery/replay.py): from the database and the spool."""
        since = replay_from - timedelta(seconds=self.settings.reliability.replay_margin_s)
        stored = await self._db_call(replay.stored_since, since, default=None)
        spooled = await replay.spooled_since(self.spool, since)
        history = await self._db_call(replay.DeskHistory.load, since, default=None)
        if stored is None or history is None:
            logger.warning("recovery: database away, replaying the spool only (%s events)", len(spooled))
        events = replay.merge(stored or [], spooled)
        desk = replay.DeskView(apply=self.desk.lane.apply, open_alarm=self._desk_open_alarm)
        closed_since = history.closed_since if history is not None else (lambda key, at: None)
        report = replay.replay(self.gate, self.engine, events, self.clock.now(), desk, closed_since)
        self.metrics.events_replayed.inc(report.replayed)
        logger.info(
            "recovery: replayed=%s raised=%s suppressed=%s reconciled=%s in %.3f s",
            report.replayed,
            report.raised,
            report.suppressed,
            report.reconciled,
            report.seconds,
        )

    def _reconcile(self) -> None:
        """The engine and the desk agree by key on what is open (issue 22.5; alarms/engine.py `reconcile`)."""
        decisions = self.engine.reconcile(self.desk.machine.open_alarms(), self.clock.now())
        for decision in decisions:
            self.desk.lane.apply(decision)
        logger.info(
            "engine and desk reconciled: open at the desk=%s cleared now=%s",
            len(self.desk.machine.open_alarms()),
            len(decisions),
        )

    def _desk_open_alarm(self, key: str) -> tuple[datetime, datetime] | None:
        """When the desk's open alarm of this key was raised and last changed; None when it holds none."""
        alarm = self.desk.machine.get_open_by_key(key)
        return None if alarm is None else (alarm.raised_at, alarm.updated_at)

    def _export_counts(self) -> None:
        """The gate's and the engine's plain counters into Prometheus (they are pure and count in ints)."""
        counts = {v.value: n for v, n in self.gate.counts.items() if v is not Verdict.APPLY}
        counts["withdrawals"] = self.engine.withdrawals_unmatched
        for name, total in counts.items():
            delta = total - self._exported.get(name, 0)
            if delta > 0:
                self._exported[name] = total
                if name == "withdrawals":
                    self.metrics.withdrawals_unmatched.inc(delta)
                else:
                    self.metrics.events_gated.labels(name).inc(delta)

    def _blind(self, blind: bool) -> None:
        self.metrics.supervision_blind.set(1 if blind else 0)

    def _degraded(self) -> bool:
        """The staff page's "go to physical rounds": the broker is away, the canary fails, or (the HA profile) a site
        is supervised by no hub."""
        return (
            not all(c.connected for c in self._connections)
            or any(c.failing for c in self._canaries)
            or (self.ha is not None and bool(self.ha.keeper.unowned))  # a site no hub supervises: physical rounds
        )

    def _on_event_message(self, msg: Message) -> None:
        self.sight.message(time.monotonic())
        if msg.topic == CANARY_TOPIC:
            # through the subscription, the native parser, the gate, the engine and the desk; not stored: the
            # events table holds what devices said, and every hub on a shared broker hears every canary
            self.canary.on_message(msg, self.desk.lane.feed)
            return
        if isinstance(self.clock, SimulatedClock) and msg.topic == self.settings.clock.topic:
            msg.ack()
            if msg.retain:
                return  # left by an earlier simulation: its time says nothing about the one now running
            self.clock.update_from_payload(msg.payload)
            if not self._simulation_started and self.clock.synced:
                self._simulation_started = True
                self.engine.set_directory(self._directory(), self.clock.now())
            return
        self.ingest.handle(msg)

    def _on_telemetry_message(self, msg: Message) -> None:
        if msg.topic == CANARY_TELEMETRY_TOPIC and len(self._canaries) > 1:
            # read, parsed, through the alarm lane and into the store: the round trip ends at the ack (hub/supervision/canary.py)
            self._canaries[1].on_message(msg, self.desk.lane.feed, self.writer.submit)
            return
        self.ingest.handle(msg)

    def _simulation_reference_time(self) -> datetime:
        """What a simulated device's timestamp is checked against: the simulation's clock, with a day of slack.

        Devices and the clock message travel on different connections, so an event may arrive before the clock
        message announcing its time; it must not be refused for it. Accepting it does not move the clock.
        """
        return self.clock.now() + SIMULATION_SKEW

    def _event_subscriptions(self) -> list[str]:
        filters = [f for f in native.TOPIC_FILTERS if not f.endswith("/telemetry")]
        if not self._telemetry_lane:
            filters.append(TELEMETRY_FILTER)
        filters.extend(route.topic_filter for route in self.settings.mqtt.routes)
        if self.settings.clock.mode == "simulated":
            filters.append(self.settings.clock.topic)
        return filters

    # --- housekeeping: inventory, snapshots, partitions -------------------------------------------------------------

    async def _write_local(self, what: str, write: Callable[..., None], *args: Any) -> None:
        """Write a piece of the hub's local state in a thread; a disk that refuses it (full) is a state, not a
        crash: logged, counted, raised to operations as `hub_disk_failure`, and the hub goes on (issue 22.2)."""
        try:
            await asyncio.to_thread(write, *args)
        except OSError as exc:
            self._local_write_failed(what, exc)

    def _local_write_failed(self, what: str, exc: OSError) -> None:
        logger.error("local state not written what=%s: %s; the hub goes on", what, exc)
        if hasattr(self, "desk"):
            self.desk.lane.local_write_failed(what, exc)
        else:
            self.metrics.local_write_failures.labels(what).inc()
            self._local_faults.append((what, exc))

    def _task_failed(self, task: str) -> None:
        """A background task failed (the spawner logged and counted it): a technical alarm for operations once the
        desk exists (a task cannot fail before the spawner has started one for the desk's parts)."""
        if hasattr(self, "desk"):
            self.desk.lane.background_task_failed(task)

    def _save_snapshot_at_exit(self) -> None:
        try:
            snapshots.save_local(self.settings.spool.directory, self._encode_snapshot())
        except OSError as exc:
            logger.error("engine snapshot not written at shutdown: %s (the next start replays from the last one)", exc)

    def _ask_again(self) -> None:
        """The store takes rows again after a full spool: the connections drop what they left unacknowledged and
        reconnect, so the broker sends it now (hub/store/writer.py)."""
        for conn in self._connections:
            conn.reconnect()

    async def _housekeeping_loop(self) -> None:
        last_snapshot = last_db_snapshot = last_inventory = last_maintenance = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            self._export_counts()
            if now - last_inventory >= self.settings.desk.inventory_refresh_s and self.db.up:
                last_inventory = now
                await self._refresh_inventory()
            elif self.db.up:
                await self._refresh_profiles()  # a nurse's change applies within a second
            if now - last_snapshot >= SNAPSHOT_INTERVAL_S and self.ha is None:
                last_snapshot = now
                # taken on the loop (a few ms), encoded in a thread in small pieces (docs/performance.md)
                snapshot_json = await asyncio.to_thread(snapshots.encode, self._take_snapshot())
                await self._write_local(
                    "engine_snapshot", snapshots.save_local, self.settings.spool.directory, snapshot_json
                )
                if now - last_db_snapshot >= DB_SNAPSHOT_INTERVAL_S and self.db.up:
                    last_db_snapshot = now
                    await self._db_call(save_engine_state, snapshot_json, default=None)
            if now - last_maintenance >= MAINTENANCE_INTERVAL_S and self.db.up:
                last_maintenance = now
                await self._db_call(maintain_partitions, self.settings.db, datetime.now(UTC).date(), default=None)

    async def _prepare_database(self, conn: VakaConnection) -> None:
        """Before the database counts as up (see Database.set_prepare): a current schema (migrated as the owner if
        one is configured, else refused), today's partitions, and a word if this role could rewrite the audit trail."""
        db = self.settings.db
        try:
            applied = await ensure_current(conn, db)
        except MigrationError as exc:
            self._start_error = exc
            raise
        if applied:
            logger.info("migrations applied as the owner: %s", ", ".join(applied))
        try:
            await maintain_partitions(conn, db, datetime.now(UTC).date())
        except asyncpg.PostgresError as exc:  # events still land, in the default partition
            logger.warning("events partition maintenance failed: %s; run `vaka migrate` to grant it", exc)
        problems = await privilege_problems(conn, db.db_schema)
        if problems and db.require_least_privilege:
            self._start_error = RoleError(
                "the hub's database role could rewrite the audit logs (" + "; ".join(problems) + "); "
                "connect db.dsn as the runtime role (see docs/operations.md)"
            )
            raise self._start_error
        if problems:
            logger.warning(
                "database role could rewrite the audit logs: %s (see docs/operations.md)", "; ".join(problems)
            )

    async def _load_sites(self) -> list[Site]:
        self._inventory_version = await self._db_call(inventory_version, default=None)
        sites = await self._db_call(fetch_sites, default=None)
        if sites is None:
            cached = snapshots.load_inventory(self.settings.spool.directory)
            logger.warning("database away at start: using the cached inventory (%s sites)", len(cached))
            return cached
        await self._write_local("inventory", snapshots.save_inventory, self.settings.spool.directory, sites)
        return sites

    async def _refresh_inventory(self) -> None:
        """Reload the inventory when it changed, for the engine, ingest and the desk (the one place that reads it)."""
        version = await self._db_call(inventory_version, default=None)
        if version is None or version == self._inventory_version:
            return
        sites = await self._db_call(fetch_sites, default=None)
        if sites is None:
            return
        self._inventory_version = version
        self._sites = sites
        self.desk.restorer.set_sites(sites)
        self.hub_status.set_sites(self._status_sites())  # issue 25
        await self._write_local("inventory", snapshots.save_inventory, self.settings.spool.directory, sites)
        profiles = await self._db_call(rule_profiles, default=None)
        if profiles is not None:
            self._profiles = profiles
        if self.settings.clock.mode == "wall" or self._simulation_started:
            self._set_directory()
        self.ingest.set_devices(devices_by_id(sites))
        if self.scaip is not None:
            self.scaip.set_sites(sites)
        if self.freeze_heap:
            heap.freeze_long_lived()
        logger.info("inventory reloaded: %s sites", len(sites))

    async def _load_profiles(self) -> dict[str, str]:
        """The residents' rule profiles; the cached ones while the database is away."""
        self._profiles_version = await self._db_call(rule_profiles_version, default=None)
        profiles = await self._db_call(rule_profiles, default=None)
        if profiles is None:
            return snapshots.load_profiles(self.settings.spool.directory)
        await self._write_local("profiles", snapshots.save_profiles, self.settings.spool.directory, profiles)
        return profiles

    async def _refresh_profiles(self) -> None:
        """Give the engine the residents' rule profiles again when one changed (the admin page, `vaka resident
        profile`, SQL from anywhere): a new assignment applies from the next event or window; a bed exit already being
        timed keeps its time."""
        version = await self._db_call(rule_profiles_version, default=None)
        if version is None or version == self._profiles_version:
            return
        profiles = await self._db_call(rule_profiles, default=None)
        if profiles is None:
            return
        self._profiles_version, self._profiles = version, profiles
        try:
            await self._write_local("profiles", snapshots.save_profiles, self.settings.spool.directory, profiles)
            if self.settings.clock.mode == "wall" or self._simulation_started:
                self._set_directory()
        except Exception:  # the housekeeping loop (and the alarm path beside it) must go on: tried at the next change
            logger.exception("rule profiles not applied; the engine keeps the residents' earlier ones")
            return
        logger.info("rule profiles applied residents=%s", len(profiles))

    def _status_sites(self) -> list[str]:
        """The sites whose retained hub status this hub publishes: every site; none in the HA profile, where a dead
        hub's Last Will ("offline") would overwrite the new owner's word, and a hub losing a site would say offline
        for it (docs/ha.md: the outside watch speaks for the hubs there)."""
        return [site.id for site in self._sites] if self.ha is None else []

    def _set_directory(self) -> None:
        """The inventory or the profiles changed: the engine (HA: each owned site's) gets them."""
        if self.ha is not None:
            self.ha.engines.set_directory(self.clock.now())
            return
        self.engine.set_directory(self._directory(), self.clock.now())

    async def _ha_staff(self) -> None:
        """The HA profile's start: the inventory and the staff for the desk, no open alarms yet."""
        self.desk.restorer.set_sites(self._sites)
        try:
            await self.desk.restorer.refresh()
        except Exception as exc:  # the desk's refresh loop tries again
            logger.warning("desk could not load the staff: %s", exc)

    def _directory(self) -> Directory:
        """The engine's view of the inventory with the residents' rule profiles."""
        return build_directory(self._sites, self.rules, self._profiles)

    async def _db_call(self, fn: Callable[..., Awaitable[T]], *args: object, default: D) -> T | D:
        """Run `fn(conn, *args)` with a timeout; on any database failure log it and return `default`."""
        try:
            async with asyncio.timeout(DB_STEP_TIMEOUT_S), self.db.acquire() as conn:
                return await fn(conn, *args)
        except Exception as exc:
            logger.warning("database step %s failed: %s", getattr(fn, "__name__", fn), exc)
            return default


async def run(settings: Settings) -> None:
    """Run the hub until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        hub = Hub(settings)
        hub.freeze_heap = True
        async with hub:
            frozen = heap.freeze_long_lived()
            heap.tune_collector()
            logger.info("start-up heap frozen: %s objects the collector no longer walks", frozen)
            await asyncio.Event().wait()
    logger.info("hub stopped")
