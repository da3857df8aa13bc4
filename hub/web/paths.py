"""Where the web pages' files are and what time the people's side of the hub runs on: shared by the staff and the
relatives apps from below both (neither imports the other)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static" / "staff"
RELATIVES_STATIC_DIR = WEB_DIR / "static" / "relatives"


def wall_clock() -> datetime:
    """Consents, sessions and the access log run on wall time, whatever clock the alarm lane follows."""
    return datetime.now(UTC)
