"""Every use of paho-mqtt's private surface, in one place: lean MQTT 5 properties for received packets, a read
buffer under paho's socket, and the raw topic of a message whose topic is not UTF-8.

`install()` (called once by the hub at start-up, never on import) patches the packet parser:

paho builds two dictionaries of ~27 entries in `Properties.__init__` and walks them again in `unpack`, for every
packet: about half of paho's cost per received message. `install()` replaces the `Properties` paho's packet parser
(`paho.mqtt._packet`, paho 2.2) uses by `LeanProperties`, which shares the constant tables and recognises an empty
property block (what devices send) from its single zero length byte; anything else takes paho's own path unchanged.
It first checks that paho's internals are what this was written against; if not, it leaves paho alone and warns, and
the hub runs on stock paho (slower, never wrong). pyproject.toml admits only the paho versions this was tested on.
"""

from __future__ import annotations

import importlib
import logging
import socket
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

logger = logging.getLogger(__name__)

_READ_CHUNK_BYTES = 65536

TESTED_ON = ("2.2",)  # paho-mqtt minor versions whose internals this patch was checked against


class LeanProperties(Properties):
    """paho's MQTT 5 Properties, without rebuilding its lookup tables for every received PUBLISH."""

    _tables: dict[int, tuple[Any, Any, Any]] = {}  # noqa: RUF012  (class-level cache on purpose)

    def __init__(self, packetType: int) -> None:
        tables = self._tables.get(packetType)
        if tables is None:
            full = Properties(packetType)  # type: ignore[no-untyped-call]
            tables = self._tables[packetType] = (full.types, full.names, full.properties)
        object.__setattr__(self, "packetType", packetType)
        object.__setattr__(self, "types", tables[0])
        object.__setattr__(self, "names", tables[1])
        object.__setattr__(self, "properties", tables[2])

    def unpack(self, buffer: bytes | bytearray) -> tuple[Properties, int]:
        if buffer[:1] == b"\x00":
            return self, 1
        result: tuple[Properties, int] = super().unpack(buffer)  # type: ignore[no-untyped-call]
        return result


def _packet_module() -> Any | None:
    try:
        return importlib.import_module("paho.mqtt._packet")
    except ImportError:
        return None


def _why_not() -> str | None:
    """None when paho's internals are as expected, else what differs."""
    import paho.mqtt

    version = getattr(paho.mqtt, "__version__", "?")
    if not any(version == v or version.startswith(f"{v}.") for v in TESTED_ON):
        return f"paho-mqtt {version} is not a version it was tested on ({', '.join(TESTED_ON)})"
    module = _packet_module()
    if module is None:
        return "paho.mqtt._packet does not exist"
    current = getattr(module, "Properties", None)
    if current is not Properties and current is not LeanProperties:
        return "paho.mqtt._packet no longer parses with paho.mqtt.properties.Properties"
    try:
        probe = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        tables = (probe.types, probe.names, probe.properties)
    except (AttributeError, TypeError) as exc:
        return f"Properties has changed shape ({exc})"
    if not all(isinstance(t, list | dict) for t in tables):
        return "Properties has changed shape (its tables are not lists and dicts)"
    return None


def install() -> bool:
    """Patch paho for speed when its internals are as expected; True when the patch is active."""
    if active():
        return True
    reason = _why_not()
    if reason is not None:
        logger.warning("paho speed patch not installed, using stock paho (slower): %s", reason)
        return False
    module = _packet_module()
    assert module is not None
    module.Properties = LeanProperties
    return True


def active() -> bool:
    """Whether paho's packet parser uses LeanProperties."""
    module = _packet_module()
    return module is not None and getattr(module, "Properties", None) is LeanProperties


class BufferedSocket:
    """The broker socket with a read buffer: paho reads each packet in three or more tiny `recv` calls.

    One `recv` of up to 64 KiB here serves many of those; `pending` says whether whole packets may still wait in
    the buffer (the socket itself then no longer looks readable to the event loop). Everything else is the socket's.
    """

    __slots__ = ("_data", "_pos", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0

    @property
    def buffered(self) -> bool:
        """True while received bytes wait in the buffer."""
        return self._pos < len(self._data)

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._data):
            data = self._sock.recv(_READ_CHUNK_BYTES)  # BlockingIOError when nothing is there: paho expects it
            if not data:
                return b""
            self._data, self._pos = data, 0
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def buffer_reads(client: Any, sock: socket.socket | Any) -> BufferedSocket | None:
    """Give paho a read buffer under its socket (paho calls `recv`/`send` on its private `_sock`); None for anything
    that is not a socket (paho then reads as it always does)."""
    if not isinstance(sock, socket.socket):
        return None
    buffered = BufferedSocket(sock)
    client._sock = buffered
    return buffered


def raw_topic(message: Any) -> str:
    """A message's topic when paho cannot decode it as UTF-8 (its private bytes, replaced where invalid)."""
    return bytes(message._topic).decode("utf-8", "replace")
