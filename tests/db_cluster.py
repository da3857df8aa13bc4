"""A private PostgreSQL 15 cluster managed by Patroni with etcd on loopback, for the high-availability tests.

One etcd member and `size` Patroni nodes (each a PostgreSQL of its own: one primary, the others streaming replicas,
synchronous mode on) with names, ports, data and logs in a temporary directory; the shared PostgreSQL on 5432 is
never touched. PostgreSQL runs as the `postgres` user when the tests run as root (initdb refuses root). The nodes'
Patroni settings are deploy/ha/patroni.yml's, with the ports and paths of this machine put in (docs/ha.md):

    with PrivatePatroniCluster(3) as db:
        db.dsn                      # every node in one DSN, target_session_attrs=read-write
        db.primary()                # the index of the node Patroni made the leader
        db.kill(i)                  # SIGKILL node i's Patroni and PostgreSQL at once, like a machine that died
        db.kill_patroni(i)          # SIGKILL its Patroni only: its PostgreSQL lives on, a primary nobody demotes
        db.wait_primary(other_than=i)
        db.start(i)                 # back: it rejoins as a replica
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.services import PG_BIN, PG_USER, StartedOnEnter, free_port, wait_for_port

ETCD = Path(os.environ.get("VAKA_TEST_ETCD", "/usr/bin/etcd"))
PATRONI = Path(os.environ.get("VAKA_TEST_PATRONI", "/usr/bin/patroni"))
DEPLOYED_PATRONI = Path(__file__).resolve().parents[1] / "deploy" / "ha" / "patroni.yml"
POST_BOOTSTRAP = DEPLOYED_PATRONI.with_name("post-bootstrap.sh")
VAKA_INIT = Path(__file__).resolve().parents[1] / "deploy" / "timescaledb" / "vaka-init.sh"
INIT_ROLES = ("vaka_owner", "vaka_hub", "vaka_grafana", "vaka_monitor")


def patroni_available() -> bool:
    """True when Debian's patroni and etcd-server (and PostgreSQL 15) are installed."""
    return PATRONI.exists() and ETCD.exists() and (PG_BIN / "initdb").exists()


def _as_postgres(*args: str | Path) -> list[str]:
    cmd = [str(a) for a in args]
    return cmd if os.geteuid() != 0 else ["runuser", "-u", PG_USER, "--", *cmd]


def _chown_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, PG_USER, PG_USER)


def deployed_patroni_conf(
    *, scope: str, name: str, etcd: str, rest_port: int, pg_port: int, base: Path
) -> dict[str, Any]:
    """deploy/ha/patroni.yml as production runs it, for node `name` on loopback with its files under `base`.

    What changes: the addresses (loopback ports instead of the compose service names), the data directory, the
    passwords (production reads them from secrets), TimescaleDB (not packaged here), and the durability knobs a test
    on a shared machine turns off for speed (fsync: the tests kill processes, not machines).
    Timing, synchronous mode and replication are the deployed ones.
    """
    conf: dict[str, Any] = yaml.safe_load(DEPLOYED_PATRONI.read_text())
    conf["scope"] = scope
    conf["name"] = name
    conf["restapi"]["listen"] = conf["restapi"]["connect_address"] = f"127.0.0.1:{rest_port}"
    conf["etcd3"] = {"hosts": etcd}
    pg = conf["postgresql"]
    pg["listen"] = pg["connect_address"] = f"127.0.0.1:{pg_port}"
    pg["data_dir"] = str(base / "data")
    pg["bin_dir"] = str(PG_BIN)
    pg["pgpass"] = str(base / "pgpass")
    local = pg.setdefault("parameters", {})
    local["unix_socket_directories"] = str(base)
    for timescale in [name for name in local if name.startswith("timescaledb.")] + ["shared_preload_libraries"]:
        local.pop(timescale, None)  # TimescaleDB is not packaged for these machines
    pg["authentication"]["superuser"]["password"] = "postgres"  # pg_hba trusts loopback; Patroni wants one
    pg["authentication"]["replication"]["password"] = "replicator"
    conf["log"] = {"dir": str(base / "log"), "level": "INFO"}
    conf["bootstrap"]["post_bootstrap"] = str(base.parent / "bin" / POST_BOOTSTRAP.name)
    parameters = conf["bootstrap"]["dcs"]["postgresql"]["parameters"]
    parameters.update({"fsync": "off", "full_page_writes": "off", "shared_buffers": "32MB", "max_connections": 60})
    return conf


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _running_under(base: Path) -> list[int]:
    """The processes whose command line names a path under `base` (Patroni, PostgreSQL, etcd of one cluster)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if str(base).encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
    return found


@dataclass
class _Node:
    name: str
    pg_port: int
    rest_port: int
    base: Path
    proc: subprocess.Popen[bytes] | None = None


class PrivatePatroniCluster(StartedOnEnter):
    """etcd and `size` Patroni-managed PostgreSQL 15 nodes on loopback; see the module docstring."""

    def __init__(self, size: int = 3) -> None:
        self._base = Path(tempfile.mkdtemp(prefix="vaka-patroni-"))
        _chown_postgres(self._base)
        self.scope = f"vaka-{os.getpid()}-{int(time.time())}"
        self.etcd_port = free_port()
        self._etcd_peer_port = free_port()
        self._etcd: subprocess.Popen[bytes] | None = None
        self.nodes = [
            _Node(name=f"pg{i}", pg_port=free_port(), rest_port=free_port(), base=self._base / f"pg{i}")
            for i in range(size)
        ]

    @property
    def dsn(self) -> str:
        """Every node in one connection string: a client connects to whichever accepts writes (the primary)."""
        hosts = ",".join(f"127.0.0.1:{n.pg_port}" for n in self.nodes)
        return f"postgresql://{PG_USER}@{hosts}/postgres?target_session_attrs=read-write"

    def dsn_from(self, i: int, database: str = "postgres") -> str:
        """`dsn` (to `database`) with node `i` first in the list (a client tries the hosts in order)."""
        order = self.nodes[i:] + self.nodes[:i]
        hosts = ",".join(f"127.0.0.1:{n.pg_port}" for n in order)
        return f"postgresql://{PG_USER}@{hosts}/{database}?target_session_attrs=read-write"

    def node_dsn(self, i: int, database: str = "postgres") -> str:
        """Node `i` alone (a replica answers reads only)."""
        return f"postgresql://{PG_USER}@127.0.0.1:{self.nodes[i].pg_port}/{database}"

    def _start_etcd(self) -> None:
        data = self._base / "etcd"
        peer = f"http://127.0.0.1:{self._etcd_peer_port}"
        client = f"http://127.0.0.1:{self.etcd_port}"
        with (self._base / "etcd.log").open("ab") as out:
            self._etcd = subprocess.Popen(
                [
                    str(ETCD),
                    "--name=e0",
                    f"--data-dir={data}",
                    f"--listen-client-urls={client}",
                    f"--advertise-client-urls={client}",
                    f"--listen-peer-urls={peer}",
                    f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster=e0={peer}",
                    "--initial-cluster-state=new",
                    "--logger=zap",
                    "--log-outputs=stderr",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_port(self.etcd_port, timeout_s=30)

    def start(self, i: int) -> None:
        """Start node `i`'s Patroni (a fresh node bootstraps or clones a replica; a killed one rejoins)."""
        node = self.nodes[i]
        for sub in ("", "log"):
            (node.base / sub).mkdir(parents=True, exist_ok=True)
            _chown_postgres(node.base / sub)
        conf = deployed_patroni_conf(
            scope=self.scope,
            name=node.name,
            etcd=f"127.0.0.1:{self.etcd_port}",
            rest_port=node.rest_port,
            pg_port=node.pg_port,
            base=node.base,
        )
        path = node.base / "patroni.yml"
        path.write_text(yaml.safe_dump(conf))
        _chown_postgres(path)
        with (node.base / "stdout.log").open("ab") as out:
            node.proc = subprocess.Popen(
                _as_postgres(PATRONI, path),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group (PostgreSQL starts a session of its own)
                env=self._env(node),
            )

    def _env(self, node: _Node) -> dict[str, str]:
        """Patroni's environment: what deploy/ha/post-bootstrap.sh and vaka-init.sh read (compose sets the same)."""
        secrets = self._base / "secrets"
        scripts = self._base / "bin"  # where the postgres user can read them (the work tree may be closed to it)
        if not scripts.exists():
            scripts.mkdir()
            for script in (POST_BOOTSTRAP, VAKA_INIT):
                shutil.copy2(script, scripts / script.name)
            for path in (scripts, *scripts.iterdir()):
                _chown_postgres(path)
        if not secrets.exists():
            secrets.mkdir()
            for role in INIT_ROLES:
                (secrets / role).write_text(f"{role}-test-password\n")
            for path in (secrets, *secrets.iterdir()):
                _chown_postgres(path)
        return {
            "PATH": f"{PG_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "LANG": "C.UTF-8",
            "HOME": str(node.base),
            "PGHOST": str(node.base),  # the socket directory
            "PGPORT": str(node.pg_port),
            "POSTGRES_DB": "vaka",
            "POSTGRES_USER": PG_USER,
            "VAKA_STORAGE": "native",  # no TimescaleDB here
            "VAKA_INIT_SCRIPT": str(scripts / VAKA_INIT.name),
            "VAKA_OWNER_PASSWORD_FILE": str(secrets / "vaka_owner"),
            "VAKA_HUB_PASSWORD_FILE": str(secrets / "vaka_hub"),
            "VAKA_GRAFANA_PASSWORD_FILE": str(secrets / "vaka_grafana"),
            "VAKA_MONITOR_PASSWORD_FILE": str(secrets / "vaka_monitor"),
        }

    def status(self, i: int) -> dict[str, Any] | None:
        """Node `i`'s Patroni REST status (GET /patroni), or None while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.nodes[i].rest_port}/patroni", timeout=1) as resp:
                body: dict[str, Any] = json.loads(resp.read())
                return body
        except urllib.error.HTTPError as exc:  # 503 with the body: a replica, or not running
            body = json.loads(exc.read())
            return body
        except (OSError, ValueError):
            return None

    def role(self, i: int) -> str | None:
        """`primary`, `replica`, or None (not answering, not running)."""
        status = self.status(i)
        if status is None or status.get("state") != "running":
            return None
        role = status.get("role")
        return "primary" if role in ("master", "primary") else str(role)

    def primary(self) -> int | None:
        """The index of the node that is primary now, if any."""
        for i in range(len(self.nodes)):
            if self.running(i) and self.role(i) == "primary":
                return i
        return None

    def wait_primary(self, other_than: int | None = None, timeout_s: float = 120.0) -> int:
        """Wait until a node (not `other_than`) is primary and writable; its index."""
        deadline = time.monotonic() + timeout_s
        while True:
            i = self.primary()
            if i is not None and i != other_than:
                return i
            if time.monotonic() > deadline:
                msg = f"no primary after {timeout_s} s: {self.logs()[-3000:]}"
                raise TimeoutError(msg)
            time.sleep(0.1)

    def sync_standby(self) -> int | None:
        """The node the primary waits for at each commit (synchronous mode), from the cluster's view in etcd."""
        primary = self.primary()
        if primary is None:
            return None
        try:
            url = f"http://127.0.0.1:{self.nodes[primary].rest_port}/cluster"
            with urllib.request.urlopen(url, timeout=1) as resp:
                members = json.loads(resp.read())["members"]
        except (OSError, ValueError, KeyError):
            return None
        for member in members:
            if member.get("role") in ("sync_standby", "sync_replica") and member.get("state") in (
                "running",
                "streaming",
            ):
                return next(i for i, n in enumerate(self.nodes) if n.name == member["name"])
        return None

    def wait_replicas(self, count: int, timeout_s: float = 180.0) -> None:
        """Wait until `count` nodes are running replicas and one of them is the synchronous standby."""
        deadline = time.monotonic() + timeout_s
        while True:
            replicas = [i for i in range(len(self.nodes)) if self.running(i) and self.role(i) == "replica"]
            if len(replicas) >= count and self.sync_standby() is not None:
                return
            if time.monotonic() > deadline:
                msg = f"{len(replicas)} replica(s) of {count} after {timeout_s} s: {self.logs()[-3000:]}"
                raise TimeoutError(msg)
            time.sleep(0.2)

    def form(self) -> None:
        """Start etcd and every node; wait for a primary and the replicas to stream, one synchronously."""
        self._start_etcd()
        self.start(0)
        self.wait_primary(timeout_s=120)
        for i in range(1, len(self.nodes)):
            self.start(i)
        self.wait_replicas(len(self.nodes) - 1)

    def _postmaster_pid(self, i: int) -> int | None:
        """Node `i`'s running postmaster: the pid file's, and only while that process is this node's PostgreSQL (a
        killed postmaster leaves its file behind, and its pid may be another process's by now)."""
        data = self.nodes[i].base / "data"
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((data / "postmaster.pid").read_text().splitlines()[0])
            if str(data).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        return None

    def kill(self, i: int) -> None:
        """SIGKILL node `i`: its Patroni and its PostgreSQL (postmaster and every backend) at once, no word to anyone.

        Patroni's leader key in etcd is left to expire (its `ttl`), as when a machine dies.
        """
        node = self.nodes[i]
        postmaster = self._postmaster_pid(i)
        proc, node.proc = node.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        if postmaster is not None:
            # Patroni starts PostgreSQL in a session of its own: killing Patroni leaves it running, a primary nobody
            # demotes (docs/ha.md, what this does not survive). A dead machine takes it along: the postmaster's
            # process group, the postmaster, and every backend it forked
            backends = _children(postmaster)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(postmaster), signal.SIGKILL)
            for pid in (postmaster, *backends):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        if proc is not None:
            proc.wait(timeout=10)

    def kill_patroni(self, i: int) -> None:
        """SIGKILL node `i`'s Patroni only: its PostgreSQL goes on, a primary that nobody will demote (docs/ha.md)."""
        proc, self.nodes[i].proc = self.nodes[i].proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def running(self, i: int) -> bool:
        """True while node `i`'s Patroni lives."""
        proc = self.nodes[i].proc
        return proc is not None and proc.poll() is None

    def logs(self) -> str:
        """Every node's Patroni log and PostgreSQL log so far (for a failure message)."""
        parts = []
        for node in self.nodes:
            for path in [node.base / "stdout.log", *sorted((node.base / "log").glob("*"))]:
                if path.is_file():
                    parts.append(f"--- {node.name} {path.name}\n{path.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)

    def cleanup(self) -> None:
        """Kill every node and etcd and delete the cluster's directory."""
        for i in range(len(self.nodes)):
            self.kill(i)
        if self._etcd is not None and self._etcd.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._etcd.pid, signal.SIGKILL)
            self._etcd.wait(timeout=10)
        for pid in _running_under(self._base):  # anything of this cluster a test started another way
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self._base, ignore_errors=True)

    def bring_up(self) -> None:
        self.form()
