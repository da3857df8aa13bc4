"""Fixtures of vendors' real payload shapes, and the time the hub received them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
RECEIVED = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def fixture(vendor: str, name: str) -> bytes:
    """The bytes of one fixture file, as the vendor would publish them."""
    return (FIXTURES / vendor / name).read_bytes()
