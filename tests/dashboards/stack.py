"""A simulated night through a real hub, watched by a real Prometheus: what the dashboard test queries.

`NightStack.start()` builds it (a minute or two); `run_sql` and `run_promql` answer one panel query each.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import paho.mqtt.publish as publish
import yaml

from hub.settings import HttpSettings
from hub.store import rollup
from tests.conftest import PG_DSN
from tests.services import PrivateMosquitto, free_port, wait_for_port
from tests.tls_certs import TestPki

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules" / "vaka.yml"
TIMESCALE_DSN = os.environ.get("VAKA_TEST_TIMESCALE_DSN", "")
ZONE = ZoneInfo("Europe/Stockholm")
NURSE_PASSWORD = "night-nurse-pw-1"


def get_json(url: str, timeout_s: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return json.loads(resp.read().decode())


def wait_until(what: str, check: Any, timeout_s: float = 60.0, every_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    msg = f"timed out after {timeout_s} s waiting for {what}"
    raise TimeoutError(msg)


@dataclass
class NightStack:
    """Private broker, hub and Prometheus around one schema holding a simulated night."""

    dsn: str = field(default_factory=lambda: TIMESCALE_DSN or PG_DSN)
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vaka-night-")))
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    broker: PrivateMosquitto | None = None
    tls_port: int = 0
    pki_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vaka-night-tls-")))
    timescale: bool = False
    start: datetime = field(default_factory=lambda: datetime.now(UTC))
    end: datetime = field(default_factory=lambda: datetime.now(UTC))
    http_port: int = 0
    wall_port: int = 0
    prom_port: int = 0

    @property
    def site(self) -> str:
        return f"n{self.token}"

    @property
    def schema(self) -> str:
        return f"night_{self.token}"

    @property
    def backup_db(self) -> str:
        return f"nightbk_{self.token}"

    @property
    def wall_schema(self) -> str:
        return f"wall_{self.token}"

    @property
    def reader(self) -> str:
        return f"vaka_dash_{self.token}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VAKA_")}
        env.update(
            VAKA_DB__DSN=self.dsn,
            VAKA_DB__DB_SCHEMA=self.schema,
            # migrations grant the dashboards' role what it may read (hub/store/roles.py READABLE), nothing more
            VAKA_DB__READONLY_ROLE=self.reader,
            PYTHONPATH=str(REPO),
        )
        return env

    def vaka(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "hub.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            env={**self.env(), **(env or {})},
            cwd=self.workdir,
            check=False,
        )
        assert result.returncode == 0, f"vaka {' '.join(args)}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
        return result.stdout

    # --- building it ------------------------------------------------------------------------------------------------

    def up(self) -> None:
        """Everything, in order; raises with the hub's log when a step fails."""
        # the broker gets a TLS listener too: the blackbox exporter's handshake reads its certificate's expiry
        self.pki_dir.chmod(0o755)  # the broker drops root before it reads these
        pki = TestPki(self.pki_dir)
        cert, key = pki.server("broker", ["127.0.0.1", "localhost"])
        self.tls_port = free_port()
        tls = f"listener {self.tls_port} 127.0.0.1\ncafile {pki.ca_file}\ncertfile {cert}\nkeyfile {key}\n"
        self.broker = PrivateMosquitto(extra_conf=tls)
        self.broker.start()
        yesterday = datetime.now(ZONE).date() - timedelta(days=1)
        self.start = datetime(yesterday.year, yesterday.month, yesterday.day, 20, 0, tzinfo=ZONE)
        sim = [
            "simulate", "--site", self.site, "--residents", "6", "--seed", "11", "--incident-scale", "12",
            "--start", self.start.replace(tzinfo=None).isoformat(), "--hours", "13",
        ]  # fmt: skip
        inventory = self.workdir / "inventory.yaml"
        self.vaka(*sim, "--write-only", "--inventory", str(inventory))
        data = yaml.safe_load(inventory.read_text())
        # a device installed but never set up: the "never heard from" panel
        data["sites"][0]["devices"].append({"id": f"{self.site}-drawer-button", "kind": "alarm_button"})
        inventory.write_text(yaml.safe_dump(data))
        asyncio.run(self._prepare_database())
        self.vaka("migrate")
        self.vaka("site", "load", str(inventory))
        self.vaka(
            "staff",
            "add",
            "nurse",
            "--unit",
            f"{self.site}/*",
            "--lang",
            "en",
            "--password-stdin",
            stdin=NURSE_PASSWORD,
        )
        self._start_hub()
        self.wall_port = free_port()
        self._start_prometheus()
        self.vaka(*sim, "--port", str(self.broker.port), "--speed", "0", "--quiet", "--client-id", f"sim-{self.token}")
        self.end = self.start + timedelta(hours=13)
        self._wait_stored()
        asyncio.run(self._night_nurse())
        self._start_wall_hub()  # after the night: it hears none of it
        for payload in (b"{not json", b'{"kind": "no_such_kind"}', b"\xff\xfe"):
            publish.single(
                f"vaka/v1/{self.site}/{self.site}-r0001-bed/event", payload, qos=1, hostname="127.0.0.1",
                port=self.broker.port,
            )  # fmt: skip
        wait_until("rejections counted", lambda: "vaka_messages_rejected_total{" in self.metrics_text())
        asyncio.run(self._refresh_rollup())
        self._wait_scraped()

    async def _prepare_database(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            self.timescale = bool(
                await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
            ) or bool(TIMESCALE_DSN)
            if TIMESCALE_DSN:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb SCHEMA public")
            await conn.execute(f"CREATE SCHEMA {self.schema}")
            await conn.execute(f"CREATE SCHEMA {self.wall_schema}")
            await conn.execute(f"CREATE ROLE {self.reader} NOLOGIN")
        finally:
            await conn.close()

    def _start_hub(self) -> None:
        assert self.broker is not None
        self.http_port = free_port()
        env = {
            **self.env(),
            "VAKA_MQTT__HOST": "127.0.0.1",
            "VAKA_MQTT__PORT": str(self.broker.port),
            "VAKA_MQTT__CLIENT_ID": f"hub-{self.token}",
            "VAKA_SPOOL__DIRECTORY": str(self.workdir / "spool"),
            "VAKA_HTTP__PORT": str(self.http_port),
            "VAKA_HTTP__COOKIE_SECURE": "false",
            "VAKA_CLOCK__MODE": "simulated",
            # a channel that fails: nothing listens on the discard port
            "VAKA_NOTIFY__WEBHOOK_URLS": '["http://127.0.0.1:9/hook"]',
            "VAKA_NOTIFY__WEBHOOK_ATTEMPTS": "1",
        }
        log = (self.workdir / "hub.log").open("ab")
        self.procs.append(
            subprocess.Popen([sys.executable, "-m", "hub.cli", "serve"], env=env, stdout=log, stderr=log, cwd=REPO)
        )
        wait_until("the hub to be ready", lambda: self._ready(), timeout_s=60)

    def _start_wall_hub(self) -> None:
        """A second hub on the wall clock, in a schema of its own, beside the simulated one.

        A simulated clock runs one connection and no canary, and never judges silence; what the alarm path
        dashboard shows of those (the canary's round trip, the telemetry connection, supervision) comes from this
        hub, as it would from a production one.
        """
        assert self.broker is not None
        env = {**self.env(), "VAKA_DB__DB_SCHEMA": self.wall_schema}
        self.vaka("migrate", env={"VAKA_DB__DB_SCHEMA": self.wall_schema})
        env.update(
            VAKA_MQTT__HOST="127.0.0.1",
            VAKA_MQTT__PORT=str(self.broker.port),
            VAKA_MQTT__CLIENT_ID=f"wall-{self.token}",
            VAKA_SPOOL__DIRECTORY=str(self.workdir / "wall-spool"),
            VAKA_HTTP__PORT=str(self.wall_port),
            VAKA_HTTP__COOKIE_SECURE="false",
            # the canary every 2 s: its round trip is on the alarm path dashboard
            VAKA_RELIABILITY__CANARY_INTERVAL_S="2",
        )
        log = (self.workdir / "hub.log").open("ab")
        self.procs.append(
            subprocess.Popen([sys.executable, "-m", "hub.cli", "serve"], env=env, stdout=log, stderr=log, cwd=REPO)
        )
        wait_until("the wall-clock hub to be ready", lambda: self._ready(self.wall_port), timeout_s=60)

    def _ready(self, port: int = 0) -> bool:
        if self.procs[-1].poll() is not None:
            msg = f"hub exited: {self.hub_log()}"
            raise RuntimeError(msg)
        try:
            return (
                '"ready"'
                in urllib.request.urlopen(f"http://127.0.0.1:{port or self.http_port}/readyz", timeout=2)
                .read()
                .decode()
            )
        except OSError:
            return False

    def hub_log(self) -> str:
        return (self.workdir / "hub.log").read_text(errors="replace")[-4000:]

    def metrics_text(self) -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5).read().decode()

    def _start_node_exporter(self) -> int:
        """Debian's node exporter, filesystems and the textfile collector (the backups' metrics), as in the stack."""
        port = free_port()
        self.procs.append(
            subprocess.Popen(
                [
                    "prometheus-node-exporter",
                    "--collector.disable-defaults",
                    "--collector.filesystem",
                    "--collector.textfile",
                    f"--collector.textfile.directory={self.workdir / 'textfile'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=(self.workdir / "node-exporter.log").open("ab"),
            )
        )
        wait_for_port(port, timeout_s=30)
        return port

    def _backup(self) -> None:
        """deploy/backup's nightly backup and test restore, for real, of a small migrated database of the night's."""
        asyncio.run(self._create_backup_db())
        parts = urllib.parse.urlsplit(self.dsn)
        backup_dsn = urllib.parse.urlunsplit(parts._replace(path=f"/{self.backup_db}"))
        self.vaka("migrate", env={"VAKA_DB__DSN": backup_dsn, "VAKA_DB__DB_SCHEMA": "public"})  # as in the stack
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAKA_", "PG"))}
        env.update(
            PGHOST=parts.hostname or "127.0.0.1", PGPORT=str(parts.port or 5432), PGUSER=parts.username or "postgres",
            VAKA_DB=self.backup_db, BACKUP_DIR=str(self.workdir / "backups"),
            BACKUP_METRICS_DIR=str(self.workdir / "textfile"), VAKA_RESTORE_TEST_DB=f"{self.backup_db}_rt",
            VAKA_RESTORE_ROLE=parts.username or "postgres",
        )  # fmt: skip
        for script in ("vaka-backup.sh", "vaka-restore-test.sh"):
            done = subprocess.run([str(REPO / "deploy" / "backup" / script)], env=env, capture_output=True, text=True,
                                  timeout=120, check=False)  # fmt: skip
            assert done.returncode == 0, f"{script}: {done.stdout}{done.stderr}"

    async def _create_backup_db(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f"CREATE DATABASE {self.backup_db}")
        finally:
            await conn.close()

    def _start_postgres_exporter(self) -> int:
        """Debian's postgres_exporter on the night's database server."""
        port = free_port()
        parts = urllib.parse.urlsplit(self.dsn)
        dsn = urllib.parse.urlunsplit(parts._replace(query="sslmode=disable"))
        self.procs.append(
            subprocess.Popen(
                ["prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{port}"],
                env={**os.environ, "DATA_SOURCE_NAME": dsn},
                stdout=subprocess.DEVNULL,
                stderr=(self.workdir / "postgres-exporter.log").open("ab"),
            )
        )
        wait_for_port(port, timeout_s=30)
        return port

    def _start_blackbox_exporter(self) -> int:
        """Debian's blackbox exporter with deploy/blackbox/blackbox.yml, pointed at the night's CA and broker name."""
        port = free_port()
        config = yaml.safe_load((REPO / "deploy" / "blackbox" / "blackbox.yml").read_text())
        tls = config["modules"]["broker_tls"]["tcp"]["tls_config"]
        tls.update(ca_file=str(self.pki_dir / "ca.crt"), server_name="localhost")
        (self.workdir / "blackbox.yml").write_text(yaml.safe_dump(config))
        self.procs.append(
            subprocess.Popen(
                [
                    "prometheus-blackbox-exporter",
                    f"--config.file={self.workdir / 'blackbox.yml'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=(self.workdir / "blackbox.log").open("ab"),
            )
        )
        wait_for_port(port, timeout_s=30)
        return port

    def _start_prometheus(self) -> None:
        self._backup()
        node_port = self._start_node_exporter()
        postgres_port = self._start_postgres_exporter()
        blackbox_port = self._start_blackbox_exporter()
        # the compose stack's broker-tls job (deploy/prometheus/prometheus.yml), its target this broker's TLS port
        stack_jobs = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
        broker_tls = next(j for j in stack_jobs if j["job_name"] == "broker-tls")
        broker_tls["static_configs"] = [{"targets": [f"127.0.0.1:{self.tls_port}"]}]
        broker_tls["relabel_configs"][-1]["replacement"] = f"127.0.0.1:{blackbox_port}"
        self.prom_port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {
                    "job_name": "vaka-hub",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.http_port}", f"127.0.0.1:{self.wall_port}"]}],
                },
                {"job_name": "node", "static_configs": [{"targets": [f"127.0.0.1:{node_port}"]}]},
                {"job_name": "postgres", "static_configs": [{"targets": [f"127.0.0.1:{postgres_port}"]}]},
                broker_tls,
            ],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.procs.append(
            subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={self.workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.workdir / 'prometheus'}",
                    f"--web.listen-address=127.0.0.1:{self.prom_port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=(self.workdir / "prometheus.log").open("ab"),
            )
        )
        wait_for_port(self.prom_port, timeout_s=30)
        wait_until("Prometheus ready", self._prom_ready, timeout_s=30)
        wait_until("a first scrape", lambda: self.prom("up") != [], timeout_s=30)

    def _prom_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.prom_port}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:  # refused, or 503 while the TSDB opens
            return False

    def prom(self, expr: str, *, instant: bool = True) -> list[Any]:
        base = f"http://127.0.0.1:{self.prom_port}/api/v1"
        now = time.time()
        if instant:
            query = urllib.parse.urlencode({"query": expr, "time": f"{now:.3f}"})
            body = get_json(f"{base}/query?{query}")
        else:
            query = urllib.parse.urlencode(
                {"query": expr, "start": f"{now - 300:.3f}", "end": f"{now:.3f}", "step": "5"}
            )
            body = get_json(f"{base}/query_range?{query}")
        assert body["status"] == "success", body
        result = body["data"]["result"]
        return result if isinstance(result, list) else [result]

    def _wait_stored(self) -> None:
        """Until the hub has stored what the simulator published (the written counter stops moving)."""
        last = -1.0
        stable_since = time.monotonic()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            written = sum(
                float(line.split()[-1])
                for line in self.metrics_text().splitlines()
                if line.startswith(("vaka_events_written_total ", "vaka_events_duplicate_total "))
            )
            if written != last:
                last, stable_since = written, time.monotonic()
            elif written > 0 and time.monotonic() - stable_since > 3:
                return
            time.sleep(0.5)
        msg = f"events still arriving after 240 s: {self.hub_log()}"
        raise TimeoutError(msg)

    async def _night_nurse(self) -> None:
        """Log in over HTTP and handle some open care alarms: accept, on site, resolve (assisted, false alarm)."""
        import aiohttp

        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f"SET search_path TO {self.schema}")
            open_ids = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM desk_alarms WHERE closed_at IS NULL AND category = 'care' ORDER BY raised_at"
                )
            ]
        finally:
            await conn.close()
        assert len(open_ids) >= 2, f"the night raised too few care alarms to handle: {self.hub_log()}"
        url = f"http://127.0.0.1:{self.http_port}"
        async with aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": HttpSettings().public_url}
        ) as session:
            async with session.get(f"{url}/staff/login") as resp:
                token = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
            assert token is not None
            data = {"csrf": token.group(1), "username": "nurse", "password": NURSE_PASSWORD}
            async with session.post(f"{url}/staff/login", data=data, allow_redirects=False) as resp:
                assert resp.status == 303, await resp.text()
            async with session.get(f"{url}/staff/") as page:
                csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
            assert csrf is not None
            headers = {"X-Requested-With": "fetch"}
            for i, alarm_id in enumerate(open_ids[:4]):
                steps = ["accept", "on_site", "resolve"] if i < 3 else ["accept"]
                for step in steps:
                    form = {"csrf": csrf.group(1)}
                    if step == "resolve":
                        form["outcome"] = "false_alarm" if i == 0 else "assisted"
                    async with session.post(f"{url}/staff/alarms/{alarm_id}/{step}", data=form, headers=headers) as r:
                        assert r.status == 200, f"{step} {alarm_id}: {r.status} {await r.text()}"

    async def _refresh_rollup(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f"SET search_path TO {self.schema}, public")
            await rollup.refresh(conn, self.end + timedelta(hours=3), since=self.start.date() - timedelta(days=1))
        finally:
            await conn.close()

    def _wait_scraped(self) -> None:
        """Until Prometheus has seen the nurse's accepts and the rejections (its scrape is 1 s)."""
        wait_until("accepts in Prometheus", lambda: self.prom("vaka_alarm_accept_seconds_count > 0"), timeout_s=30)
        wait_until("rejections in Prometheus", lambda: self.prom("vaka_messages_rejected_total"), timeout_s=30)
        wait_until("rules evaluated", lambda: self.prom('ALERTS{alertname="Watchdog"}'), timeout_s=30)
        wait_until("canary round trips", lambda: self.prom("increase(vaka_canary_round_trip_seconds_count[1m]) > 0"))
        time.sleep(3)  # a few more scrapes for rate() windows

    # --- taking it down ---------------------------------------------------------------------------------------------

    def down(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        if self.broker is not None:
            self.broker.cleanup()
        asyncio.run(self._drop())
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(self.pki_dir, ignore_errors=True)

    async def _drop(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
            await conn.execute(f"DROP SCHEMA IF EXISTS {self.wall_schema} CASCADE")
            await conn.execute(f"DROP DATABASE IF EXISTS {self.backup_db} WITH (FORCE)")
            await conn.execute(f"DROP DATABASE IF EXISTS {self.backup_db}_rt WITH (FORCE)")
            if await conn.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", self.reader):
                await conn.execute(f"DROP OWNED BY {self.reader}")
                await conn.execute(f"DROP ROLE {self.reader}")
        finally:
            await conn.close()


# --- what Grafana would do with a panel's query --------------------------------------------------------------------


def expand_sql(sql: str, stack: NightStack) -> str:
    """Grafana's PostgreSQL macros and the $site variable, as the data source expands them (TimescaleDB on/off)."""
    start = (stack.start - timedelta(hours=1)).isoformat()
    end = (stack.end + timedelta(hours=1)).isoformat()

    def group(match: re.Match[str]) -> str:
        column, interval = match.group(1).strip(), match.group(2).strip().strip("'")
        seconds = {"m": 60, "h": 3600, "d": 86400}[interval[-1]] * int(interval[:-1])
        if stack.timescale:
            return f"time_bucket('{seconds}.000s',{column}) AS \"time\""
        return f'floor(extract(epoch from {column})/{seconds})*{seconds} AS "time"'

    sql = re.sub(r"\$__timeGroupAlias\(([^,]+),\s*([^)]+)\)", group, sql)
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN '{start}' AND '{end}'", sql)
    sql = sql.replace("$__timeFrom()", f"'{start}'").replace("$__timeTo()", f"'{end}'")
    sql = sql.replace("$site", f"'{stack.site}'")
    assert "$" not in sql.replace("$$", ""), f"an unexpanded macro or variable in: {sql}"
    return sql


async def run_sql(stack: NightStack, sql: str) -> list[asyncpg.Record]:
    """The panel's SQL as the read-only role, in a read-only transaction."""
    conn = await asyncpg.connect(stack.dsn)
    try:
        await conn.execute(f"SET search_path TO {stack.schema}, public")
        await conn.execute(f"SET ROLE {stack.reader}")
        async with conn.transaction(readonly=True):
            rows = await conn.fetch(expand_sql(sql, stack))
    finally:
        await conn.close()
    # a table of one row of NULLs (an aggregate over nothing) is no data
    return [r for r in rows if any(v is not None for v in r.values())]


async def run_promql(stack: NightStack, expr: str, *, instant: bool) -> list[Any]:
    """The panel's PromQL with Grafana's $__rate_interval (4 scrape intervals), at now."""
    return await asyncio.to_thread(stack.prom, expr.replace("$__rate_interval", "15s"), instant=instant)
