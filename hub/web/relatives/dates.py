"""Dates and times on the relatives page in the page's language (Babel's CLDR data), never as ISO strings.

The status carries ISO values (the API's contract); these turn them into what a relative reads: "söndag 6 december
2026", "02:14", "6 december 2026 23:06", in the resident's zone (the values already carry the site's offset).
"""

from __future__ import annotations

from datetime import date, datetime, time

from babel.dates import format_date, format_time


def night_date(iso: str, lang: str) -> str:
    """The night's date ("2026-12-06") in full: weekday, day, month, year."""
    return str(format_date(date.fromisoformat(iso), "full", locale=lang))


def clock_time(hhmm: str, lang: str) -> str:
    """A local time of day ("02:14") as the language writes it."""
    return str(format_time(time.fromisoformat(hhmm), "short", locale=lang))


def moment(iso: str, lang: str) -> str:
    """An instant with the site's offset ("2026-12-06T23:06+01:00") as a date and a time, in that zone."""
    at = datetime.fromisoformat(iso)
    return f"{format_date(at, 'long', locale=lang)} {format_time(at, 'short', locale=lang)}"
