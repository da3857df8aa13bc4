"""No single hub silences the alarms (issue 30, the hubs' slice; docs/ha.md).

Two `vaka serve` processes of the HA profile (`ha.enabled`) share one private Mosquitto and one private PostgreSQL;
hub a prefers site 1, hub b site 2, either may take the other's. Devices of site 1 publish a steady QoS 1 load with a
ledger of every PUBACK, and alarm buttons are pressed, each press once, by a resident of its own (the ledger of
injected alarms). Then:
- kill -9 of hub a (site 1's owner): every acknowledged event is in the database exactly once, every press is one
  alarm under one id, the alarm open before the kill goes on escalating on hub b, and the takeover time is measured;
- SIGSTOP of hub a past its lease, hub b takes site 1, SIGCONT: hub a writes no row for site 1 afterwards (its token
  is fenced) and publishes nothing for it (a press after its wake-up is one alarm, published once, by hub b).
The figures are printed (run with -s) and recorded in docs/ha.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.metrics import Metrics
from hub.model import Device, Inventory, Resident, Site
from hub.people.staff import Role
from hub.runtime.tasks import Spawner
from hub.settings import DbSettings
from hub.store.db import Database
from hub.store.inventory import load_inventory
from hub.store.migrate import migrate
from hub.store.staff import create_staff
from tests.hub.test_durability import Broker, HubProcess, Ledger, assert_ledger_stored_once
from tests.hub.test_ha_cluster import logged_at
from tests.services import PrivateMosquitto, PrivatePostgres

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# shorter than the defaults (10 s, 2 s) to keep the tier short; VAKA_TEST_HA_LEASE_S=10 VAKA_TEST_HA_RENEW_S=2 runs
# it with the defaults (docs/ha.md has both)
LEASE_S = float(os.environ.get("VAKA_TEST_HA_LEASE_S", "4"))
RENEW_S = float(os.environ.get("VAKA_TEST_HA_RENEW_S", "1"))
RATE_PER_S = 200.0
TOTAL = 4000  # 20 s of load
BEFORE = 1000  # acknowledged before the fault
# the goal for a hub: an alarm of its sites on another hub within 15 s. The lease (4 s here, 10 s by default)
# plus one renewal interval plus the restore is the bound the design gives (docs/ha.md)
TAKEOVER_BOUND_S = 15.0
UNOWNED_AFTER_S = 5.0  # ha.unowned_alarm_after_s: 30 s by default
PASSWORD = "correct horse battery"
PUBLIC_URL = "http://127.0.0.1:8080"  # http.public_url: one address for every hub's staff page (docs/ha.md)
POLICIES = [{"category": "*", "tiers": [{"after_s": 0, "audience": "unit"}], "repeat_s": 2.0}]


def inventory(sites: list[str]) -> Inventory:
    out = []
    for site in sites:
        residents = [Resident(id=f"{site}-r{i}", room=f"{100 + i}", unit="A") for i in range(4)]
        devices = [
            Device(id=f"{site}-button{i}", kind="alarm_button", resident=f"{site}-r{i}", safety=True) for i in range(4)
        ]
        out.append(Site(id=site, residents=residents, devices=devices))
    return Inventory(sites=out)


async def prepare(dsn: str, sites: list[str]) -> None:
    settings = DbSettings(dsn=dsn)  # type: ignore[arg-type]
    metrics = Metrics()
    async with Spawner(metrics) as spawner:
        db = Database(settings, metrics, spawner=spawner)
        await db.open()
        try:
            async with db.acquire() as conn:
                await migrate(conn, settings)
                await load_inventory(conn, inventory(sites))
                await create_staff(conn, username="anna", password=PASSWORD, role=Role.STAFF, units=[(sites[0], "A")])
        finally:
            await db.close()


def query(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def owner(pg: PrivatePostgres, site: str) -> tuple[str, int] | None:
    """The hub holding `site` now and its token, or None."""
    rows = query(pg.dsn, "SELECT hub_id, token FROM site_leases WHERE site = $1 AND expires_at > now()", site)
    return (rows[0]["hub_id"], rows[0]["token"]) if rows else None


def wait_for(what: str, check: object, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except (OSError, asyncpg.PostgresError):
            pass
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


class Buttons:
    """Alarm buttons of a site on one MQTT connection; each press is one resident's, pressed once."""

    def __init__(self, broker: Broker, site: str, protocol: int = paho.MQTTv5) -> None:
        self.site = site
        self.pressed: dict[int, datetime] = {}
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"buttons-{site}", protocol=protocol)
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()

    def press(self, i: int) -> datetime:
        at = datetime.now(UTC)
        body = {"ts": at.isoformat(), "kind": "alarm_button", "seq": 1}
        info = self._client.publish(f"vaka/v1/{self.site}/{self.site}-button{i}/event", json.dumps(body), qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published()
        self.pressed[i] = at
        return at

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class AlarmWatch:
    """An integration listening to a site's alarm states (`vaka/v1/{site}/alarms/+`)."""

    def __init__(self, broker: PrivateMosquitto, site: str) -> None:
        self.seen: list[tuple[float, str, dict[str, object]]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{site}", protocol=paho.MQTTv5)
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.connect(broker.host, broker.port)
        self._client.subscribe(f"vaka/v1/{site}/alarms/+", qos=1)
        self._client.loop_start()
        assert self._subscribed.wait(10)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.seen.append((time.monotonic(), msg.topic, json.loads(msg.payload)))

    def since(self, t: float) -> list[tuple[str, dict[str, object]]]:
        with self._lock:
            return [(topic, body) for at, topic, body in self.seen if at >= t]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class StaffPhone:
    """A staff member's browser: one cookie jar, whichever hub answers (the hubs share one public address)."""

    def __init__(self) -> None:
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    @property
    def session(self) -> str:
        return next(c.value for c in self.cookies if c.name == "vaka_session" and c.value is not None)

    def _open(self, url: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(url, data=data, headers={"Origin": PUBLIC_URL})
        try:
            with self._opener.open(request, timeout=10) as resp:
                return resp.status, resp.geturl(), resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, url, exc.read().decode()

    def log_in(self, hub: HubProcess, username: str) -> None:
        base = f"http://127.0.0.1:{hub.http_port}"
        _, _, page = self._open(f"{base}/staff/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        status, _, _ = self._open(
            f"{base}/staff/login", {"csrf": csrf.group(1), "username": username, "password": PASSWORD}
        )
        assert status == 200, status  # redirected to the alarms page

    def alarms_page(self, hub: HubProcess) -> tuple[str, str]:
        """The alarms page as this phone gets it from `hub`: (where it ended up, the page)."""
        _, url, page = self._open(f"http://127.0.0.1:{hub.http_port}/staff/")
        return url, page

    def degraded(self, hub: HubProcess) -> bool:
        """What the page's banner poll says: go to physical rounds."""
        _, _, body = self._open(f"http://127.0.0.1:{hub.http_port}/staff/health")
        return bool(json.loads(body)["degraded"])

    def accept(self, hub: HubProcess, alarm_id: str, csrf: str) -> int:
        status, _, _ = self._open(f"http://127.0.0.1:{hub.http_port}/staff/alarms/{alarm_id}/accept", {"csrf": csrf})
        return status


class PageSocket:
    """A staff page's live connection (its WebSocket) to one hub: every message with the monotonic time it came."""

    def __init__(self, hub: HubProcess, session: str) -> None:
        self.messages: list[tuple[float, dict[str, object]]] = []
        self.close_code: int | None = None  # the hub closed the page's WebSocket with this code
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._read(hub, session),))
        self._thread.start()
        assert self._ready.wait(10), "the page could not connect"

    async def _read(self, hub: HubProcess, session: str) -> None:
        self._stop = asyncio.Event()
        headers = {"Origin": PUBLIC_URL, "Cookie": f"vaka_session={session}"}
        url = f"ws://127.0.0.1:{hub.http_port}/staff/ws"
        async with aiohttp.ClientSession(headers=headers) as client, client.ws_connect(url) as ws:
            self._ready.set()
            stop = asyncio.ensure_future(self._stop.wait())
            while not stop.done():
                receive = asyncio.ensure_future(ws.receive())
                await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not receive.done():
                    receive.cancel()
                    break
                msg = receive.result()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    self.close_code = ws.close_code
                    break
                data = json.loads(msg.data)
                with self._lock:
                    self.messages.append((time.monotonic(), data))
                if data.get("type") == "alarm":  # the page's receipt, as the real page sends it
                    await ws.send_str(json.dumps({"type": "receipt", "nid": data["nid"]}))
            stop.cancel()

    def first(self, alarm_id: str) -> float | None:
        """When the page first got this alarm (pushed as a change, or in the snapshot at connect)."""
        with self._lock:
            for at, data in self.messages:
                if data.get("type") == "alarm" and data["alarm"]["id"] == alarm_id:  # type: ignore[index]
                    return at
                if data.get("type") == "snapshot" and any(a["id"] == alarm_id for a in data["alarms"]):  # type: ignore[attr-defined]
                    return at
        return None

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        self._loop.close()


@dataclass
class Pair:
    pg: PrivatePostgres
    broker: PrivateMosquitto
    a: HubProcess
    b: HubProcess
    s1: str
    s2: str


def ha_hub(
    pg: PrivatePostgres, broker: Broker, tmp: Path, name: str, prefer: str, *, only_its_own: bool = False
) -> HubProcess:
    (tmp / name).mkdir()
    hub = HubProcess(pg, broker, tmp / name, f"hub-{name}")
    hub.env.update(
        {
            "VAKA_HA__ENABLED": "true",
            "VAKA_HA__HUB_ID": name,
            "VAKA_HA__PREFER": json.dumps([prefer]),
            "VAKA_HA__LEASE_S": str(LEASE_S),
            "VAKA_HA__RENEW_S": str(RENEW_S),
            "VAKA_HA__SNAPSHOT_S": "2",
            "VAKA_HA__SITES": json.dumps([prefer]) if only_its_own else "any",
            "VAKA_HA__UNOWNED_ALARM_AFTER_S": str(UNOWNED_AFTER_S),
            "VAKA_MQTT__CLIENT_ID": f"hub-{name}",
            "VAKA_MQTT__TELEMETRY_CONNECTION": "false",
            "VAKA_DESK__POLICIES": json.dumps(POLICIES),
        }
    )
    return hub


@pytest.fixture
def pair(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Iterator[Pair]:
    """Two hubs, a preferring site 1 and b site 2; each may take the other's (or, with the parameter "own", not)."""
    only_its_own = getattr(request, "param", "any") == "own"
    s1, s2 = f"one{unique}", f"two{unique}"
    with PrivatePostgres() as pg, PrivateMosquitto() as broker:
        asyncio.run(prepare(pg.dsn, [s1, s2]))
        a = ha_hub(pg, broker, tmp_path, "a", s1, only_its_own=only_its_own)
        b = ha_hub(pg, broker, tmp_path, "b", s2, only_its_own=only_its_own)
        try:
            # together: a hub alone for a lease takes every site it may (and keeps them: no hand-back, docs/ha.md)
            starting = threading.Thread(target=b.start, name="start-b")
            starting.start()
            a.start()
            starting.join()
            wait_for("hub a holds site 1", lambda: owner(pg, s1) == ("a", 1), 30)
            wait_for("hub b holds site 2", lambda: owner(pg, s2) == ("b", 1), 30)
            a.wait_status("ready")
            b.wait_status("ready")
            yield Pair(pg, broker, a, b, s1, s2)
        finally:
            for hub in (a, b):
                if hub.running:
                    hub.resume()  # a test that failed while it was stopped
                hub.stop()


def wait_logged(hub: HubProcess, pattern: str, after: datetime, timeout_s: float = 30.0) -> datetime:
    """When the hub logged the first line matching `pattern` after `after`, once it has."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return logged_at(hub.log, pattern, after)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def held_sites(hub: HubProcess) -> tuple[int, list[str]] | None:
    """What `/ha/sites` says (a load balancer's health check of the staff pages): status and sites; None: no answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{hub.http_port}/ha/sites", timeout=2) as resp:
            return resp.status, json.loads(resp.read())["sites"]
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["sites"]
    except OSError:
        return None


def line_time(line: str) -> datetime:
    """When the hub wrote a line of its log (local time, to the millisecond)."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)


def button_alarms(pg: PrivatePostgres, site: str) -> dict[str, list[str]]:
    """Alarm ids per button key of a site (one id per press is right)."""
    rows = query(pg.dsn, "SELECT key, id FROM desk_alarms WHERE site = $1 AND rule_id = 'alarm_button'", site)
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["key"], []).append(r["id"])
    return out


def escalations(pg: PrivatePostgres, alarm_id: str) -> list[tuple[datetime, int | None]]:
    rows = query(
        pg.dsn,
        "SELECT at, fence FROM desk_alarm_log WHERE alarm_id = $1 AND action = 'escalated' ORDER BY seq",
        alarm_id,
    )
    return [(r["at"], r["fence"]) for r in rows]


def test_the_hub_owning_a_site_killed_under_load_loses_nothing_and_the_other_hub_goes_on(pair: Pair) -> None:
    pg, broker, a, b, s1 = pair.pg, pair.broker, pair.a, pair.b, pair.s1
    buttons = Buttons(broker, s1)
    ledger = Ledger(broker, s1)
    live: PageSocket | None = None
    try:
        buttons.press(0)  # before the fault: open, ringing and escalating on hub a
        wait_for("the first press is an alarm", lambda: len(button_alarms(pg, s1)) == 1, 30)
        first_id = next(iter(button_alarms(pg, s1).values()))[0]
        wait_for("hub a escalates it", lambda: len(escalations(pg, first_id)) >= 2, 30)
        assert held_sites(a) == (200, [s1])
        assert held_sites(b) == (200, [pair.s2])
        phone = StaffPhone()
        phone.log_in(a, "anna")
        assert first_id in phone.alarms_page(a)[1]
        live = PageSocket(b, phone.session)  # anna's page already open on hub b, which does not hold site 1 yet

        load_started = time.monotonic()
        load = threading.Thread(target=ledger.publish, args=(0, TOTAL, RATE_PER_S), name="ledger", daemon=True)
        load.start()
        wait_for("load acknowledged before the fault", lambda: len(ledger.acked) >= BEFORE, 60)

        killed_at = datetime.now(UTC)
        a.kill()
        during_mono = time.monotonic()
        during = buttons.press(1)  # nobody owns site 1 until hub b takes it
        wait_for("hub b holds site 1", lambda: owner(pg, s1) == ("b", 2), 60)
        taken = wait_logged(b, rf"ha: site taken site={s1} ", killed_at)
        raised_during = wait_logged(b, rf"ALARM id=\S+ state=raised .* site={s1} rule=alarm_button", during)
        after_mono = time.monotonic()
        after = buttons.press(2)
        wait_for("the press after the takeover is an alarm", lambda: len(button_alarms(pg, s1)) == 3, 30)
        raised_after = wait_logged(b, rf"ALARM id=\S+ state=raised .* site={s1} rule=alarm_button", after)
        # the alarm open before the kill goes on escalating, now from hub b under its token
        wait_for(
            "the first alarm escalates on hub b",
            lambda: sum(1 for at, fence in escalations(pg, first_id) if at > killed_at and fence == 2) >= 2,
            30,
        )
        second_id = next(ids[0] for key, ids in button_alarms(pg, s1).items() if key.endswith("-r1"))
        wait_for("the page on hub b shows both alarms", lambda: live.first(first_id) and live.first(second_id), 30)
        to_page_s = live.first(second_id) - during_mono  # type: ignore[operator]
        third_id = next(ids[0] for key, ids in button_alarms(pg, s1).items() if key.endswith("-r2"))
        wait_for("the page shows the press after", lambda: live.first(third_id), 30)
        after_to_page_s = live.first(third_id) - after_mono  # type: ignore[operator]
        assert held_sites(a) is None
        assert held_sites(b) == (200, sorted([s1, pair.s2]))
        # anna's phone, logged in on hub a, gets the page from hub b with the same session: no new login, the alarm
        # is there, and taking it there stops its escalation
        where, page = phone.alarms_page(b)
        assert where.endswith("/staff/"), f"sent to log in again: {where}"
        assert first_id in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        assert phone.accept(b, first_id, csrf.group(1)) == 200
        accepted = query(
            pg.dsn, "SELECT fence FROM desk_alarm_log WHERE alarm_id = $1 AND action = 'accepted'", first_id
        )
        assert [r["fence"] for r in accepted] == [2]
        taken_by_anna = datetime.now(UTC)
        time.sleep(3 * POLICIES[0]["repeat_s"])  # type: ignore[operator]
        assert [at for at, _ in escalations(pg, first_id) if at > taken_by_anna] == [], (
            "it escalated after anna took it"
        )

        load.join(timeout=120)
        assert not load.is_alive(), "the publisher never finished its load"
        ledger.settle(timeout_s=60)
        assert len(ledger.acked) == TOTAL, "hub b took the load on: the broker acknowledged all of it"
        assert_ledger_stored_once(pg, ledger, timeout_s=120)  # 0 acknowledged events lost, none stored twice
        alarms = button_alarms(pg, s1)
        assert sorted(len(ids) for ids in alarms.values()) == [1, 1, 1], f"each press one alarm under one id: {alarms}"
        open_rows = query(
            pg.dsn,
            "SELECT key, count(*) AS n FROM desk_alarms WHERE closed_at IS NULL GROUP BY key HAVING count(*) > 1",
        )
        assert open_rows == [], f"an alarm open twice under two ids: {open_rows}"
        stall_s = ledger.longest_stall_s(load_started)
        restore = re.search(rf"ha: site restored site={s1} token=2 (.*)", b.log)
        assert restore is not None
        print(
            f"\nHA takeover figures: kill -> site taken {(taken - killed_at).total_seconds():.2f} s;"
            f" press during the gap -> alarm {(raised_during - during).total_seconds():.2f} s;"
            f" press after -> alarm {(raised_after - after).total_seconds():.3f} s;"
            f" acknowledged {len(ledger.acked)}/{TOTAL}, lost 0; devices' longest wait for a PUBACK {stall_s:.2f} s;"
            f" stored twice by the two hubs (dropped by the key) {b.metric('vaka_events_duplicate_total')};"
            f" restore: {restore.group(1)}; press during the gap -> on the page open on hub b {to_page_s:.2f} s,"
            f" the press after {after_to_page_s:.3f} s"
        )
        assert (taken - killed_at).total_seconds() < TAKEOVER_BOUND_S
        assert (raised_during - during).total_seconds() < TAKEOVER_BOUND_S
    finally:
        ledger.close()
        buttons.close()
        if live is not None:
            live.close()


def test_a_hub_that_wakes_after_losing_its_site_writes_and_publishes_nothing_for_it(pair: Pair) -> None:
    pg, broker, a, b, s1 = pair.pg, pair.broker, pair.a, pair.b, pair.s1
    buttons = Buttons(broker, s1)
    watch = AlarmWatch(broker, s1)
    live: PageSocket | None = None
    try:
        buttons.press(0)
        wait_for("the first press is an alarm", lambda: len(button_alarms(pg, s1)) == 1, 30)
        first_id = next(iter(button_alarms(pg, s1).values()))[0]
        wait_for("hub a escalates it", lambda: len(escalations(pg, first_id)) >= 2, 30)
        phone = StaffPhone()
        phone.log_in(a, "anna")
        live = PageSocket(a, phone.session)  # anna's page on hub a, which is about to stall
        wait_for("her page has the alarm", lambda: live.first(first_id), 10)  # type: ignore[union-attr]

        stopped_at = datetime.now(UTC)
        a.pause()  # SIGSTOP: its sockets stay open, its lease runs out
        wait_for("hub b takes site 1", lambda: owner(pg, s1) == ("b", 2), 60)
        taken = wait_logged(b, rf"ha: site taken site={s1} ", stopped_at)
        wait_for(
            "the first alarm escalates on hub b",
            lambda: any(fence == 2 for at, fence in escalations(pg, first_id) if at > stopped_at),
            30,
        )
        last_seq = query(pg.dsn, "SELECT coalesce(max(seq), 0) AS s FROM desk_alarm_log")[0]["s"]
        resumed = time.monotonic()
        resumed_at = datetime.now(UTC)
        a.resume()  # SIGCONT, and at once a press: the woken hub must not take it as its own
        pressed = buttons.press(1)
        wait_for("hub a learns it lost site 1", lambda: f"ha: site lost site={s1}" in a.log, 30)
        # her page on hub a is closed, to reconnect (through the hubs' one address) to hub b
        wait_for("hub a closes her page", lambda: live.close_code == 4410, 10)  # type: ignore[union-attr]
        # its open-alarm gauges no longer count site 1's alarms (hub b counts them now)
        assert a.metric("vaka_alarms_open", 'category="care",state="raised"') == 0.0
        assert (b.metric("vaka_alarms_open", 'category="care",state="raised"') or 0) >= 1
        wait_for("the press is an alarm", lambda: len(button_alarms(pg, s1)) == 2, 30)
        wait_for(
            "hub b escalates after the wake-up",
            lambda: any(fence == 2 for at, fence in escalations(pg, first_id) if at > resumed_at),
            30,
        )
        time.sleep(3 * RENEW_S)  # let a woken hub that acts for the site show it: rounds, ticks, escalations

        stale = query(
            pg.dsn,
            "SELECT l.seq, l.action, l.fence FROM desk_alarm_log l JOIN desk_alarms d ON d.id = l.alarm_id"
            " WHERE d.site = $1 AND l.seq > $2 AND l.fence IS DISTINCT FROM 2",
            s1,
            last_seq,
        )
        assert stale == [], f"rows for site 1 not under hub b's token after hub a woke: {stale}"
        woken = [ln for ln in a.log.splitlines() if "ALARM id=" in ln and s1 in ln and line_time(ln) >= resumed_at]
        assert woken == [], f"hub a acted for site 1 after it woke: {woken}"
        second = [ids for key, ids in button_alarms(pg, s1).items() if key.endswith("-r1")]
        assert second
        assert len(second[0]) == 1
        after_wake = watch.since(resumed)
        raised = {
            body["id"] for _, body in after_wake if body["state"] == "raised" and body["rule_id"] == "alarm_button"
        }
        assert raised == {second[0][0]}, f"the press published as raised under more than its one id: {raised}"
        stored = {r["id"] for r in query(pg.dsn, "SELECT id FROM desk_alarms WHERE site = $1", s1)}
        phantoms = {body["id"] for _, body in after_wake} - stored
        assert phantoms == set(), f"alarms published after the wake-up that the site's owner never had: {phantoms}"
        # a planned stop (SIGTERM) of hub b lets its leases go: hub a takes both sites at its next round, well
        # inside a lease
        stopping = time.monotonic()
        b.stop()
        wait_for("hub a holds both sites", lambda: owner(pg, s1) == ("a", 3) and owner(pg, pair.s2) == ("a", 2), 30)
        handed_over_s = time.monotonic() - stopping
        assert handed_over_s < LEASE_S + RENEW_S
        print(
            f"\nHA fencing figures: stop -> site taken by hub b {(taken - stopped_at).total_seconds():.2f} s;"
            f" SIGTERM of hub b -> both sites on hub a {handed_over_s:.2f} s (the hub's stop included);"
            f" press at the wake-up -> one alarm, published once; rows of hub a after the wake-up: 0;"
            f" hub a log: {[ln[24:] for ln in a.log.splitlines() if 'ha:' in ln and ('lost' in ln or 'stood' in ln)]}"
            f" (pressed {pressed:%H:%M:%S.%f})"
        )
    finally:
        if live is not None:
            live.close()
        watch.close()
        buttons.close()


def test_with_the_database_away_nothing_is_acknowledged_that_lives_only_on_a_hubs_disk(pair: Pair) -> None:
    """The HA profile keeps no spool: while the database is away the hubs decide alarms but acknowledge nothing, so
    losing both hubs and their disks then loses nothing the broker acknowledged to a device."""
    pg, broker, a, b, s1 = pair.pg, pair.broker, pair.a, pair.b, pair.s1
    buttons = Buttons(broker, s1)
    ledger = Ledger(broker, s1)
    try:
        ledger.publish(0, 500, RATE_PER_S)
        wait_for("the first events stored", lambda: len(ledger.acked) == 500, 30)
        pg.stop()
        ledger.publish(500, 1500, RATE_PER_S)
        ledger.settle(timeout_s=30)
        assert len(ledger.acked) == 1500, "the broker acknowledged the devices: it holds the events"
        pressed = buttons.press(0)
        raised = wait_logged(a, rf"ALARM id=\S+ state=raised .* site={s1} rule=alarm_button", pressed)
        wait_for(
            "the hubs hold the events unacknowledged",
            lambda: all((hub.metric("vaka_mqtt_unacked", 'connection="events"') or 0) > 0 for hub in (a, b)),
            30,
        )
        for hub in (a, b):
            assert (hub.metric("vaka_spool_events") or 0) == 0, "an event kept on a hub's disk only"
        # both hubs and their disks are lost; the database comes back; two new hubs under the same names
        a.kill()
        b.kill()
        for hub in (a, b):
            for path in sorted(hub.log_path.parent.rglob("*"), reverse=True):
                if path.is_file() and path != hub.log_path:
                    path.unlink()
        pg.start()
        starting = threading.Thread(target=b.start, name="start-b")
        starting.start()
        a.start()
        starting.join()
        wait_for("site 1 held again", lambda: owner(pg, s1) is not None and owner(pg, s1) != ("a", 1), 60)  # type: ignore[comparison-overlap]
        assert_ledger_stored_once(pg, ledger, timeout_s=120)  # 0 acknowledged events lost
        wait_for("the press is one alarm", lambda: len(button_alarms(pg, s1)) == 1, 60)
        time.sleep(2 * RENEW_S)
        assert [len(ids) for ids in button_alarms(pg, s1).values()] == [1]
        print(
            f"\nHA database-away figures: press -> alarm with the database away {(raised - pressed).total_seconds():.3f} s;"
            f" 1500 acknowledged by the broker, stored after both hubs and their disks were lost: all, once"
        )
    finally:
        ledger.close()
        buttons.close()


@pytest.mark.parametrize("pair", ["own"], indirect=True)
def test_a_site_no_hub_can_take_is_raised_as_supervision_lost_from_outside(pair: Pair) -> None:
    """Hub b may not own site 1: when hub a dies, b raises 'supervision lost' for site 1 (the outside watch); when a
    hub holds site 1 again, it closes that alarm and b lets go of it."""
    pg, a, b, s1 = pair.pg, pair.a, pair.b, pair.s1
    killed_at = datetime.now(UTC)
    a.kill()

    def unowned() -> list[asyncpg.Record]:
        return query(
            pg.dsn, "SELECT id, closed_at, fence FROM desk_alarms WHERE site = $1 AND rule_id = 'site_unowned'", s1
        )

    wait_for("hub b raises site 1 unowned", lambda: len(unowned()) == 1, 60)
    raised = wait_logged(b, rf"ALARM id=\S+ state=raised .* site={s1} rule=site_unowned", killed_at)
    # a staff page on hub b (anna's: her unit is site 1's) says "go to physical rounds" while no hub holds site 1
    phone = StaffPhone()
    phone.log_in(b, "anna")
    assert phone.degraded(b) is True
    assert unowned()[0]["fence"] is None
    assert owner(pg, s1) is None
    a.start()  # a new process: a new owner, a new token
    wait_for("hub a holds site 1 again", lambda: owner(pg, s1) == ("a", 2), 30)
    wait_for("the unowned alarm is closed", lambda: unowned()[0]["closed_at"] is not None, 30)
    wait_for("hub b let go of it", lambda: f"ha: site dropped site={s1}" in b.log, 30)
    wait_for("the banner goes", lambda: phone.degraded(b) is False, 30)
    assert len(unowned()) == 1, "raised once, by one hub"
    bound_s = LEASE_S + UNOWNED_AFTER_S + 2 * RENEW_S
    print(
        f"\nHA outside watch: kill -> 'supervision lost' raised by the other hub {(raised - killed_at).total_seconds():.2f} s"
        f" (bound: lease {LEASE_S} s + unowned_alarm_after_s {UNOWNED_AFTER_S} s + a renewal interval or two)"
    )
    assert (raised - killed_at).total_seconds() < bound_s + 2.0


class CuttableLink:
    """A TCP forwarder in front of the database for one hub: `cut()` drops its connections and refuses new ones (a
    partition between that hub and the database, the broker still reachable), `heal()` lets it through again."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closing = False
        threading.Thread(target=self._accept, name="link-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self._open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def heal(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closing = True
        self.cut()
        self._server.close()


@pytest.mark.parametrize("act_without_database", ["true", "false"])
def test_a_hub_cut_off_from_the_database_alone(tmp_path: Path, unique: str, act_without_database: str) -> None:
    """A partition: hub a (site 1's owner) loses the database, not the broker; hub b keeps both. With
    `ha.act_without_database` on (the default) hub a goes on escalating site 1's alarm from memory, and after the
    lease hub b takes the site and escalates it too, until hub a reaches the database again and drops it; its rows of
    that time are refused. Off, hub a stops within its lease and the two never ring together. Measured either way."""
    s1, s2 = f"one{unique}", f"two{unique}"
    with PrivatePostgres() as pg, PrivateMosquitto() as broker:
        asyncio.run(prepare(pg.dsn, [s1, s2]))
        link = CuttableLink(pg.port)
        a = ha_hub(pg, broker, tmp_path, "a", s1)
        b = ha_hub(pg, broker, tmp_path, "b", s2)
        via_link = pg.dsn.replace(f":{pg.port}/", f":{link.port}/")
        a.env.update(
            {
                "VAKA_DB__DSN": via_link,
                "VAKA_DB__OWNER_DSN": via_link,
                "VAKA_HA__ACT_WITHOUT_DATABASE": act_without_database,
            }
        )
        b.env["VAKA_HA__ACT_WITHOUT_DATABASE"] = act_without_database
        for hub in (a, b):  # every escalation reaches anna: one log line each (who rang, when)
            hub.env["VAKA_PATROL__DUTY_REQUIRED"] = "false"
        buttons = Buttons(broker, s1)
        try:
            starting = threading.Thread(target=b.start, name="start-b")
            starting.start()
            a.start()
            starting.join()
            wait_for("hub a holds site 1", lambda: owner(pg, s1) == ("a", 1), 30)
            buttons.press(0)
            wait_for("the press is an alarm", lambda: len(button_alarms(pg, s1)) == 1, 30)
            first_id = next(iter(button_alarms(pg, s1).values()))[0]
            wait_for("hub a escalates it", lambda: len(escalations(pg, first_id)) >= 2, 30)

            cut_at = datetime.now(UTC)
            link.cut()
            wait_for("hub b takes site 1", lambda: owner(pg, s1) == ("b", 2), 60)
            taken = wait_logged(b, rf"ha: site taken site={s1} ", cut_at)
            time.sleep(3 * POLICIES[0]["repeat_s"])  # type: ignore[operator]  # both may ring now
            healed_at = datetime.now(UTC)
            link.heal()
            lost = wait_logged(a, rf"ha: site lost site={s1}", healed_at, timeout_s=60)

            a_rang = [line_time(ln) for ln in a.log.splitlines() if f"ALARM id={first_id} escalated" in ln]
            b_rang = [line_time(ln) for ln in b.log.splitlines() if f"ALARM id={first_id} escalated" in ln]
            both = [t for t in a_rang if t >= taken]
            last_a = max((t for t in a_rang if t >= cut_at), default=None)
            stale = query(
                pg.dsn,
                "SELECT seq FROM desk_alarm_log WHERE alarm_id = $1 AND at > $2 AND fence IS DISTINCT FROM 2",
                first_id,
                taken,
            )
            assert stale == [], "hub a's rows of the partition reached the database"
            assert any(t >= taken for t in b_rang), "hub b did not escalate the alarm it took over"
            if act_without_database == "true":
                assert both, "hub a stopped ringing although the setting says go on"
            else:
                assert both == [], f"hub a rang after hub b took the site: {both}"
            print(
                f"\nHA partition (act_without_database={act_without_database}): cut -> hub b holds site 1"
                f" {(taken - cut_at).total_seconds():.2f} s; hub a's escalations after the cut until"
                f" {(last_a - cut_at).total_seconds() if last_a else 0:.2f} s, {len(both)} of them while hub b held the"
                f" site; healed -> hub a drops the site {(lost - healed_at).total_seconds():.2f} s; its rows of that"
                f" time in the database: 0"
            )
        finally:
            buttons.close()
            for hub in (a, b):
                hub.stop()
            link.close()
