"""Private PostgreSQL and Mosquitto instances on free ports, for tests that stop, kill or restart a service.

The shared services on 5432 and 1883 are never touched. Use them as context managers or through the fixtures:

    with PrivatePostgres() as pg:           # initdb (from a per-session template), start
        dsn = pg.dsn
        pg.stop(); pg.start(); pg.restart(); pg.kill()   # kill: an immediate shutdown, like a crash

    with PrivateMosquitto() as broker:      # persistence on, unlimited queues, nodelay
        broker.port; broker.restart(); broker.kill()

In a test module: `from tests.services import private_postgres, private_mosquitto  # noqa: F401` and ask for
`private_postgres` / `private_mosquitto` as fixtures.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

PG_BIN = Path(os.environ.get("VAKA_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
MOSQUITTO = os.environ.get("VAKA_TEST_MOSQUITTO", "/usr/sbin/mosquitto")
PG_USER = "postgres"

_template_dir: Path | None = None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 15.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    msg = f"nothing listens on 127.0.0.1:{port} after {timeout_s} s"
    raise TimeoutError(msg)


def _as_postgres(*args: str | Path) -> list[str]:
    cmd = [str(a) for a in args]
    return cmd if os.geteuid() != 0 else ["runuser", "-u", PG_USER, "--", *cmd]


def _chown_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, PG_USER, PG_USER)


def _template() -> Path:
    """An initdb'd data directory made once per session; instances copy it (faster than initdb each time)."""
    global _template_dir
    if _template_dir is None or not _template_dir.exists():
        base = Path(tempfile.mkdtemp(prefix="vaka-pg-template-"))
        atexit.register(shutil.rmtree, base, ignore_errors=True)
        _chown_postgres(base)
        data = base / "data"
        subprocess.run(
            _as_postgres(
                PG_BIN / "initdb",
                "-D",
                data,
                "-A",
                "trust",
                "-U",
                PG_USER,
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ),
            check=True,
            capture_output=True,
        )
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\nlisten_addresses = '127.0.0.1'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "shared_buffers = 32MB\nmax_connections = 60\nlog_min_messages = warning\n"
            )
        _template_dir = data
    return _template_dir


class PrivatePostgres:
    """A throwaway PostgreSQL 15 cluster on a free port, in its own temporary directory."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._base = Path(tempfile.mkdtemp(prefix="vaka-pg-"))
        _chown_postgres(self._base)
        self.data_dir = self._base / "data"
        self._initialised = False

    @property
    def dsn(self) -> str:
        """Connection string for the `postgres` database as the `postgres` superuser (trust auth)."""
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    @property
    def running(self) -> bool:
        """True while the server answers pg_ctl status."""
        if not self._initialised:
            return False
        result = subprocess.run(_as_postgres(PG_BIN / "pg_ctl", "status", "-D", self.data_dir), capture_output=True)
        return result.returncode == 0

    def start(self) -> None:
        """Start (initialising the cluster the first time) and wait until it accepts connections."""
        if not self._initialised:
            subprocess.run(["cp", "-a", str(_template()), str(self.data_dir)], check=True)
            self._initialised = True
        subprocess.run(
            _as_postgres(
                PG_BIN / "pg_ctl",
                "start",
                "-w",
                "-t",
                "30",
                "-D",
                self.data_dir,
                "-l",
                self._base / "server.log",
                "-o",
                f"-p {self.port} -k {self._base}",
            ),
            check=True,
            capture_output=True,
        )
        wait_for_port(self.port)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` disconnects clients cleanly, `immediate` is like a crash."""
        if self.running:
            subprocess.run(
                _as_postgres(PG_BIN / "pg_ctl", "stop", "-w", "-t", "30", "-m", mode, "-D", self.data_dir),
                check=True,
                capture_output=True,
            )

    def kill(self) -> None:
        """Stop without a clean shutdown (crash recovery on the next start)."""
        self.stop(mode="immediate")

    def restart(self) -> None:
        """Stop and start again on the same port, keeping the data."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop and delete the data directory."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop(mode="immediate")
        shutil.rmtree(self._base, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()


DEPLOYED_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "mosquitto.conf"
SHIPPED_AUTH_DIR = "/etc/mosquitto/vaka/"
SHIPPED_STATE_DIR = "/var/lib/mosquitto/"
_ACCESS_SETTINGS = (
    "per_listener_settings",
    "allow_anonymous",
    "password_file",
    "acl_file",
    "listener",
    "use_username_as_clientid",
    "cafile",
    "certfile",
    "keyfile",
    "require_certificate",
    "persistence_location",
    "log_dest",
)


def deployed_broker_conf(port: int, base: Path) -> str:
    """deploy/mosquitto/mosquitto.conf's durability settings as production runs them, for anonymous test clients.

    Listening on `port` (loopback) with its state and log under `base`; the access settings (accounts, ACL, TLS)
    are left out, so tests that stop and kill brokers need no credentials. `secured_broker_conf` keeps them.
    """
    kept = [line for line in DEPLOYED_CONF.read_text().splitlines() if not line.startswith(_ACCESS_SETTINGS)]
    return "\n".join(
        [
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            *kept,
            f"persistence_location {base}/",
            f"log_dest file {base}/mosquitto.log",
            "",
        ]
    )


def secured_broker_conf(port: int, tls_port: int, base: Path, auth_dir: Path) -> str:
    """deploy/mosquitto/mosquitto.conf verbatim, but on loopback ports and with its files under `auth_dir` and `base`.

    `auth_dir` holds what production keeps in /etc/mosquitto/vaka/: `passwd`, `acl`, `tls/{ca,server}.crt`,
    `tls/server.key`.
    """
    lines = []
    for line in DEPLOYED_CONF.read_text().splitlines():
        if line.startswith("listener 1883 "):
            line = f"listener {port} 127.0.0.1"
        elif line.startswith("listener 8883 "):
            line = f"listener {tls_port} 127.0.0.1"
        elif line.startswith("listener"):
            msg = f"the shipped broker configuration has a listener the tests do not know: {line!r}"
            raise AssertionError(msg)
        line = line.replace(SHIPPED_AUTH_DIR, f"{auth_dir}/").replace(SHIPPED_STATE_DIR, f"{base}/")
        lines.append(line)
    return "\n".join([*lines, f"log_dest file {base}/mosquitto.log", ""])


class PrivateMosquitto:
    """A throwaway Mosquitto 2 on a free port, configured as deploy/mosquitto/mosquitto.conf.

    Without `auth_dir`: its durability settings (persistence, no queue drops), anonymous clients welcome. With
    `auth_dir` (see `secured_broker_conf`): the shipped configuration whole, accounts, ACL and TLS on `tls_port`.
    """

    def __init__(self, port: int | None = None, extra_conf: str = "", auth_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.tls_port = free_port() if auth_dir is not None else 0
        self.auth_dir = auth_dir
        self.host = "127.0.0.1"
        self._base = Path(tempfile.mkdtemp(prefix="vaka-mqtt-"))
        self._base.chmod(0o777)  # mosquitto drops root privileges to its own user
        self._extra_conf = extra_conf
        self._proc: subprocess.Popen[bytes] | None = None
        self.conf_path = self._base / "mosquitto.conf"

    @property
    def running(self) -> bool:
        """True while the broker process lives."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        if self.auth_dir is None:
            conf = deployed_broker_conf(self.port, self._base)
        else:
            conf = secured_broker_conf(self.port, self.tls_port, self._base, self.auth_dir)
        self.conf_path.write_text(conf + f"{self._extra_conf}\n")
        with (self._base / "stderr.log").open("wb") as stderr:
            self._proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf_path)], stdout=subprocess.DEVNULL, stderr=stderr
            )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            if self._proc.poll() is not None:
                said = (self._base / "stderr.log").read_text(errors="replace") + self.log
                msg = f"mosquitto exited with {self._proc.returncode}: {said[-2000:]}"
                raise RuntimeError(msg) from None
            raise
        if self.tls_port:
            wait_for_port(self.tls_port)

    def reload(self) -> None:
        """SIGHUP: the broker re-reads its password file and ACL."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGHUP)

    @property
    def log(self) -> str:
        """What the broker logged so far."""
        path = self._base / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def forget_sessions(self) -> None:
        """Delete the saved sessions (while stopped), as if the broker had run without persistence."""
        (self._base / "mosquitto.db").unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop cleanly (SIGTERM: the broker saves its persistent sessions)."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL)."""
        self._signal(signal.SIGKILL)

    def restart(self) -> None:
        """Stop cleanly and start again on the same port."""
        self.stop()
        self.start()

    def _signal(self, sig: signal.Signals) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def cleanup(self) -> None:
        """Stop and delete the broker's directory."""
        self.kill()
        shutil.rmtree(self._base, ignore_errors=True)

    def __enter__(self) -> PrivateMosquitto:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private PostgreSQL; the test may stop, kill and start it. Removed afterwards."""
    with PrivatePostgres() as pg:
        yield pg


@pytest.fixture
def private_mosquitto() -> Iterator[PrivateMosquitto]:
    """A running private Mosquitto with persistence; the test may stop, kill and start it. Removed afterwards."""
    with PrivateMosquitto() as broker:
        yield broker


class StartedOnEnter:
    """A private service for a `with` block: `bring_up()` on enter (cleaned up if that fails), `cleanup()` on exit."""

    def bring_up(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.bring_up()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()
