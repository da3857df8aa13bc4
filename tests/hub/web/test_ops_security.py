"""/metrics and every other response of the top-level app: security headers everywhere (unknown paths too), and
/metrics only with its bearer token, or without one only on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from hub.metrics import Metrics
from hub.settings import HttpSettings
from hub.web import create_app
from hub.web.ops import Readiness
from tests.hub.web.conftest import free_port

READY = Readiness(database_up=lambda: True, broker_connected=lambda: True, store_state=lambda: "ok")


async def serve(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, host, port).start()
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def with_token(tmp_path: Path) -> AsyncIterator[str]:
    token_file = tmp_path / "metrics_token"
    token_file.write_text("s3cret-token\n")
    async for url in serve(create_app(Metrics(), READY, HttpSettings(metrics_token_file=token_file))):
        yield url


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/no-such-page", "/staff/../etc"])
async def test_every_response_carries_the_security_headers(with_token: str, path: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(with_token + path) as resp:
        assert resp.headers.get("X-Content-Type-Options") == "nosniff"
        assert "Content-Security-Policy" in resp.headers


async def test_metrics_take_the_bearer_token(with_token: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{with_token}/metrics") as resp:
            assert resp.status == 401
        async with http.get(f"{with_token}/metrics", headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401
        async with http.get(f"{with_token}/metrics", headers={"Authorization": "Bearer s3cret-token"}) as resp:
            assert resp.status == 200
            assert "vaka_" in await resp.text()


async def test_without_a_token_metrics_answer_only_on_loopback() -> None:
    """The same app on a non-loopback address of this machine refuses a scrape from it; loopback is served."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the address of the default route
        own = s.getsockname()[0]
    if own.startswith("127."):
        pytest.skip("this machine has no address but loopback")
    async for url in serve(create_app(Metrics(), READY, HttpSettings()), host="0.0.0.0"):
        port = url.rsplit(":", 1)[1]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://{own}:{port}/metrics") as resp:
                assert resp.status == 403
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200
