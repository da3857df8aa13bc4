"""Just enough SIP (RFC 3261) for a SCAIP receiver: read a request, frame a TCP stream, write a response."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from hub.model import VakaError

MAX_MESSAGE_BYTES = 16384
_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    500: "Server Internal Error",
    503: "Service Unavailable",
}
_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "l": "content-length", "c": "content-type"}


class SipError(VakaError):
    """A message that is not a SIP request we can answer; `status` is the response code to send, when one can be."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SipRequest:
    """One SIP request: method, the headers (lower-case names, in order) and the body."""

    method: str
    uri: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a header, by lower-case name."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def transaction_key(self) -> tuple[str, str, str]:
        """Call-ID, CSeq and the Via branch: a retransmission has the same key."""
        via = self.header("via") or ""
        branch = next((p[7:] for p in via.split(";") if p.strip().startswith("branch=")), "")
        return (self.header("call-id") or "", self.header("cseq") or "", branch.strip())


def read_request(data: bytes) -> SipRequest:
    """Parse one complete SIP request; raise SipError (400) when it is not one."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipError(413, "message too large")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    lines = head.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] != "SIP/2.0":
        raise SipError(400, "not a SIP request line")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded header line
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipError(400, "malformed header line")
        key = name.strip().lower()
        headers.append((_COMPACT.get(key, key), value.strip()))
    request = SipRequest(parts[0], parts[1], headers, body)
    for needed in ("via", "from", "to", "call-id", "cseq"):
        if request.header(needed) is None:
            raise SipError(400, f"missing {needed} header")
    length = request.header("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > len(body):
            raise SipError(400, "Content-Length larger than the body")
        request = SipRequest(request.method, request.uri, headers, body[: int(length)])
    return request


def split_stream(buffer: bytearray) -> bytes | None:
    """Take one whole message off a TCP stream buffer (headers + Content-Length bytes), or None if incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_MESSAGE_BYTES:
            raise SipError(413, "headers too large")
        return None
    length = 0
    for line in bytes(buffer[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            if not value.strip().isdigit():
                raise SipError(400, "bad Content-Length")
            length = int(value.strip())
    total = end + 4 + length
    if total > MAX_MESSAGE_BYTES:
        raise SipError(413, "message too large")
    if len(buffer) < total:
        return None
    message = bytes(buffer[:total])
    del buffer[:total]
    return message


def response(
    request: SipRequest,
    status: int,
    body: bytes = b"",
    content_type: str = "application/scaip+xml",
    extra: list[tuple[str, str]] | None = None,
) -> bytes:
    """The response to `request`: its Via, From, Call-ID and CSeq, its To with our tag, `extra` headers, the body."""
    lines = [f"SIP/2.0 {status} {_REASONS.get(status, 'Error')}"]
    lines += [f"Via: {value}" for key, value in request.headers if key == "via"]
    lines.append(f"From: {request.header('from')}")
    to = request.header("to") or ""
    if ";tag=" not in to:
        # a fixed tag per transaction: a retransmitted request gets the very same answer
        to += ";tag=" + hashlib.blake2b("|".join(request.transaction_key).encode(), digest_size=6).hexdigest()
    lines.append(f"To: {to}")
    lines.append(f"Call-ID: {request.header('call-id')}")
    lines.append(f"CSeq: {request.header('cseq')}")
    lines.append("Server: Vaka SCAIP receiver")
    lines += [f"{name}: {value}" for name, value in extra or []]
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def bare_response(data: bytes, status: int) -> bytes | None:
    """A response to a request too broken to parse, when it still has the headers a response needs; else None."""
    try:
        text = data.decode("utf-8", "replace").replace("\r\n", "\n").split("\n\n")[0].split("\n")
    except Exception:
        return None
    keep = [
        line
        for line in text[1:]
        if line.split(":")[0].strip().lower() in ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq")
    ]
    if len(keep) < 5:
        return None
    lines = [f"SIP/2.0 {status} {_REASONS.get(status, 'Error')}", *keep, "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
