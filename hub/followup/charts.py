"""The monthly report's charts, drawn with matplotlib (Figure objects, no pyplot, no screen): alarms per night, response-time
distribution, devices reporting vs installed. Each returns a Figure; the report writes it as SVG or into the PDF."""

from __future__ import annotations

from datetime import date

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

_LABELS = {
    "alarms_per_night": {"sv": "Trygghetslarm per natt", "en": "Care alarms per night"},
    "night": {"sv": "Natt (datum då natten började)", "en": "Night (date it began)"},
    "alarms": {"sv": "Larm", "en": "Alarms"},
    "response": {"sv": "Tid från larm till kvittens", "en": "Time from alarm to accept"},
    "minutes": {"sv": "Minuter", "en": "Minutes"},
    "devices": {"sv": "Enheter som rapporterat av installerade", "en": "Devices reporting of installed"},
    "installed": {"sv": "Installerade", "en": "Installed"},
    "reporting": {"sv": "Rapporterat", "en": "Reported"},
}


def localized(table: dict[str, dict[str, str]], key: str, lang: str) -> str:
    """`table[key]` in `lang`: Swedish for 'sv', English otherwise."""
    return table[key]["sv" if lang == "sv" else "en"]


def label(key: str, lang: str) -> str:
    """A chart label in `lang`."""
    return localized(_LABELS, key, lang)


def alarms_per_night(nights: list[tuple[date, int]], lang: str) -> Figure:
    """Bars: care alarms per night of the month."""
    fig = Figure(figsize=(8, 3), layout="constrained")
    ax = fig.subplots()
    ax.bar([f"{d.day}" for d, _ in nights], [n for _, n in nights], color="#1f5f8b")
    ax.set_title(label("alarms_per_night", lang))
    ax.set_xlabel(label("night", lang))
    ax.set_ylabel(label("alarms", lang))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def response_distribution(accept_s: list[float], lang: str) -> Figure:
    """Histogram: minutes from raised to the first staff action."""
    fig = Figure(figsize=(8, 3), layout="constrained")
    ax = fig.subplots()
    minutes = [s / 60 for s in accept_s]
    ax.hist(minutes, bins=min(20, max(1, len(minutes))), color="#2e7d32")
    ax.set_title(label("response", lang))
    ax.set_xlabel(label("minutes", lang))
    ax.set_ylabel(label("alarms", lang))
    return fig


def devices_reporting(classes: list[tuple[str, int, int]], lang: str) -> Figure:
    """Grouped bars per device class: installed and reporting."""
    fig = Figure(figsize=(8, 3), layout="constrained")
    ax = fig.subplots()
    xs = list(range(len(classes)))
    ax.bar([x - 0.2 for x in xs], [c[1] for c in classes], width=0.4, label=label("installed", lang), color="#9e9e9e")
    ax.bar([x + 0.2 for x in xs], [c[2] for c in classes], width=0.4, label=label("reporting", lang), color="#1f5f8b")
    ax.set_xticks(xs, [c[0] for c in classes], rotation=20, ha="right")
    ax.set_title(label("devices", lang))
    ax.legend()
    return fig
