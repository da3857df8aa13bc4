"""A private RabbitMQ cluster (Debian's 3.10.8 with its MQTT plugin) on loopback, for the high-availability tests.

Three nodes with names, ports, data and logs of their own in a temporary directory and one Erlang cookie of their
own; the shared RabbitMQ on 127.0.0.1:5672 is never touched (only the machine's epmd is shared, as every Erlang
node on a machine shares it). Each node listens for MQTT on its own port, with durable subscriptions on quorum
queues, as docs/ha.md configures production:

    with PrivateRabbitCluster(3) as cluster:
        cluster.mqtt_ports           # one per node
        cluster.kill(1)              # SIGKILL node 1 (its Erlang VM), like a machine that died
        cluster.start(1)             # and back
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.services import StartedOnEnter, free_port, wait_for_port

RABBIT_BIN = Path(os.environ.get("VAKA_TEST_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))

DEPLOYED_RABBITMQ = Path(__file__).resolve().parents[1] / "deploy" / "ha" / "rabbitmq.conf"
# what the tests change in deploy/ha/rabbitmq.conf: the nodes join with rabbitmqctl (not the peer list), listen on
# loopback ports of their own without TLS (no certificates here), and take anonymous clients
_NOT_IN_TESTS = ("cluster_formation.", "listeners.", "mqtt.listeners.", "ssl_options.", "mqtt.allow_anonymous", "log.")
TEST_ONLY_CONF = """\
listeners.tcp.default = 127.0.0.1:{amqp_port}
mqtt.listeners.tcp.default = 127.0.0.1:{mqtt_port}
mqtt.allow_anonymous = true
loopback_users = none
log.file.level = info
log.console = false
"""


def node_conf(amqp_port: int, mqtt_port: int, prefetch: int | None = None) -> str:
    """deploy/ha/rabbitmq.conf as each test node runs it (see `_NOT_IN_TESTS`); `prefetch` overrides the file's."""
    kept = []
    for line in DEPLOYED_RABBITMQ.read_text().splitlines():
        if not line.strip() or line.startswith("#") or line.startswith(_NOT_IN_TESTS):
            continue
        if prefetch is not None and line.startswith("mqtt.prefetch"):
            line = f"mqtt.prefetch = {prefetch}"
        kept.append(line)
    return "\n".join([*kept, TEST_ONLY_CONF.format(amqp_port=amqp_port, mqtt_port=mqtt_port)])


# Erlang's schedulers spin while idle; on a small shared machine three nodes would burn the cores doing so
_ERL_ARGS = "+sbwt none +sbwtdcpu none +sbwtdio none"


def rabbit_available() -> bool:
    """True when Debian's RabbitMQ server and its MQTT plugin are installed."""
    return (RABBIT_BIN / "rabbitmq-server").exists() and any(
        p.name.startswith("rabbitmq_mqtt-") for p in (RABBIT_BIN.parent / "lib").glob("rabbitmq_server-*/plugins/*")
    )


@dataclass
class _Node:
    name: str
    amqp_port: int
    mqtt_port: int
    dist_port: int
    base: Path
    proc: subprocess.Popen[bytes] | None = None


class PrivateRabbitCluster(StartedOnEnter):
    """`size` RabbitMQ nodes clustered on loopback, each with the MQTT plugin on a port of its own."""

    def __init__(self, size: int = 3, prefetch: int | None = None) -> None:
        self._base = Path(tempfile.mkdtemp(prefix="vaka-rabbit-"))
        tag = secrets.token_hex(3)
        self._home = self._base / "home"
        self._home.mkdir()
        cookie = self._home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        self.prefetch = prefetch
        self.nodes = [
            _Node(
                name=f"vaka{tag}n{i}@localhost",
                amqp_port=free_port(),
                mqtt_port=free_port(),
                dist_port=free_port(),
                base=self._base / f"n{i}",
            )
            for i in range(size)
        ]

    @property
    def mqtt_ports(self) -> list[int]:
        """Each node's MQTT port, in node order."""
        return [n.mqtt_port for n in self.nodes]

    def _env(self, node: _Node) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self._home),
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_USE_LONGNAME": "false",
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_CONFIG_FILE": str(node.base / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(node.base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(node.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.base / "log"),
            "RABBITMQ_PID_FILE": str(node.base / "pid"),
            "RABBITMQ_CONF_ENV_FILE": str(node.base / "rabbitmq-env.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": _ERL_ARGS,
            "RABBITMQ_CTL_ERL_ARGS": _ERL_ARGS,
        }

    def ctl(self, i: int, *args: str, timeout_s: float = 120.0) -> str:
        """rabbitmqctl against node `i`; its output."""
        node = self.nodes[i]
        result = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", node.name, *args],
            env=self._env(node),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
        if result.returncode != 0:
            msg = (
                f"rabbitmqctl {' '.join(args)} on {node.name} failed: {result.stderr.decode(errors='replace')[-1500:]}"
            )
            raise RuntimeError(msg)
        return result.stdout.decode(errors="replace")

    def start(self, i: int) -> None:
        """Start node `i` (a fresh one, or again after `kill`) and wait until its MQTT listener accepts."""
        node = self.nodes[i]
        for sub in ("mnesia", "log"):
            (node.base / sub).mkdir(parents=True, exist_ok=True)
        (node.base / "rabbitmq.conf").write_text(node_conf(node.amqp_port, node.mqtt_port, self.prefetch))
        (node.base / "advanced.config").write_text("[].\n")
        shutil.copyfile(DEPLOYED_RABBITMQ.with_name("enabled_plugins"), node.base / "enabled_plugins")
        (node.base / "rabbitmq-env.conf").write_text("")
        with (node.base / "stdout.log").open("ab") as out:
            node.proc = subprocess.Popen(
                [str(RABBIT_BIN / "rabbitmq-server")],
                env=self._env(node),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill takes the VM and its helpers
            )
        self._wait_listening(i)

    def _wait_listening(self, i: int, timeout_s: float = 120.0) -> None:
        node = self.nodes[i]
        deadline = time.monotonic() + timeout_s
        while True:
            if node.proc is None or node.proc.poll() is not None:
                said = (node.base / "stdout.log").read_text(errors="replace")
                msg = f"rabbitmq node {node.name} exited: {said[-2000:]}"
                raise RuntimeError(msg)
            try:
                wait_for_port(node.mqtt_port, timeout_s=1.0)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
            else:
                return

    def form(self) -> None:
        """Start every node and join them into one cluster (node 0 first, the others join it)."""
        self.start(0)
        for i in range(1, len(self.nodes)):
            self.start(i)
            self.ctl(i, "stop_app")
            self.ctl(i, "join_cluster", self.nodes[0].name)
            self.ctl(i, "start_app")
            self._wait_listening(i)
        status = self.ctl(0, "cluster_status", "--formatter", "json")
        for node in self.nodes:
            if node.name not in status:
                msg = f"{node.name} did not join the cluster: {status[-1500:]}"
                raise RuntimeError(msg)

    def forget_client(self, client_id: str) -> None:
        """Delete the durable session queues of the MQTT clients whose id starts with `client_id` (a hub gone for
        good): they would otherwise go on taking a copy of every message their wildcards match, forever."""
        live = next(i for i in range(len(self.nodes)) if self.running(i))
        names = self.ctl(live, "list_queues", "name", "--silent", "--no-table-headers").split()
        for name in names:
            if name.startswith(f"mqtt-subscription-{client_id}"):
                self.ctl(live, "delete_queue", name)

    def kill(self, i: int) -> None:
        """SIGKILL node `i`: the Erlang VM dies at once, without a word to its peers or its clients."""
        node = self.nodes[i]
        proc, node.proc = node.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def running(self, i: int) -> bool:
        """True while node `i`'s VM lives."""
        proc = self.nodes[i].proc
        return proc is not None and proc.poll() is None

    def node_of_port(self, port: int) -> int:
        """The index of the node whose MQTT listener is `port`."""
        return self.mqtt_ports.index(port)

    def log(self, i: int) -> str:
        """Node `i`'s log so far."""
        logs = sorted((self.nodes[i].base / "log").glob("*.log"))
        return "".join(p.read_text(errors="replace") for p in logs)

    def cleanup(self) -> None:
        """Kill every node and delete the cluster's directory."""
        for i in range(len(self.nodes)):
            self.kill(i)
        shutil.rmtree(self._base, ignore_errors=True)

    def bring_up(self) -> None:
        self.form()


HAPROXY = Path(os.environ.get("VAKA_TEST_HAPROXY", "/usr/sbin/haproxy"))
DEPLOYED_HAPROXY = Path(__file__).resolve().parents[1] / "deploy" / "ha" / "haproxy.cfg"


def haproxy_available() -> bool:
    """True when Debian's haproxy is installed."""
    return HAPROXY.exists()


def deployed_haproxy_conf(mqtt_port: int, mqtts_port: int, node_ports: list[int], base: Path) -> str:
    """deploy/ha/haproxy.cfg verbatim, but listening on loopback ports and pointing at the test cluster's nodes.

    Node N of the file (`rabbitN`) is `node_ports[N-1]`: its plain MQTT port, and also (the test cluster has no TLS
    listener) where the TLS backend's traffic goes; the admin socket is under `base`.
    """
    lines = []
    for line in DEPLOYED_HAPROXY.read_text().splitlines():
        words = line.split()
        if words[:2] == ["bind", ":1883"]:
            line = f"    bind 127.0.0.1:{mqtt_port}"
        elif words[:2] == ["bind", ":8883"]:
            line = f"    bind 127.0.0.1:{mqtts_port}"
        elif words[:1] == ["bind"]:
            msg = f"the shipped HAProxy configuration has a listener the tests do not know: {line!r}"
            raise AssertionError(msg)
        elif words[:1] == ["server"]:
            port = node_ports[int(words[1].removeprefix("rabbit")) - 1]
            rest = " ".join(words[3:]).replace("port 1883", f"port {port}")
            line = f"    server {words[1]} 127.0.0.1:{port} {rest}"
        elif words[:2] == ["stats", "socket"]:
            line = line.replace(words[2], str(base / "admin.sock"))
        lines.append(line)
    return "\n".join([*lines, ""])


class PrivateHAProxy(StartedOnEnter):
    """Debian's HAProxy with deploy/ha/haproxy.cfg in front of a test cluster: the devices' one address."""

    def __init__(self, node_ports: list[int]) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.tls_port = free_port()
        self._base = Path(tempfile.mkdtemp(prefix="vaka-haproxy-"))
        self._conf = self._base / "haproxy.cfg"
        self._conf.write_text(deployed_haproxy_conf(self.port, self.tls_port, node_ports, self._base))
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start in the foreground (-db) and wait until the MQTT frontend accepts."""
        with (self._base / "haproxy.log").open("ab") as out:
            self._proc = subprocess.Popen(
                [str(HAPROXY), "-db", "-f", str(self._conf)], stdout=out, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port)

    def servers(self) -> dict[str, tuple[str, int]]:
        """Each server of the MQTT backend: its state (UP, DOWN …) and the sessions it has now (admin socket)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(self._base / "admin.sock"))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        header, *rows = data.decode().splitlines()
        names = header.lstrip("# ").split(",")
        found = {}
        for row in rows:
            fields = dict(zip(names, row.split(","), strict=False))
            if fields.get("pxname") == "rabbit_mqtt" and fields.get("svname", "").startswith("rabbit"):
                found[fields["svname"]] = (fields["status"], int(fields["scur"] or 0))
        return found

    @property
    def log(self) -> str:
        """What HAProxy logged so far (its connection log)."""
        return (self._base / "haproxy.log").read_text(errors="replace")

    def cleanup(self) -> None:
        """Stop and delete its directory."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
        shutil.rmtree(self._base, ignore_errors=True)

    def bring_up(self) -> None:
        self.start()
