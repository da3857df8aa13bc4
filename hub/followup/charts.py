"""The monthly report's charts, drawn with matplotlib (Figure objects, no pyplot, no screen), each with the previous
month beside the current one: care alarms per night, the time from alarm to first staff action, devices reporting
of installed per class. Each returns a Figure; the report writes it as SVG or into the PDF."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from hub.followup import labels


@dataclass(frozen=True, slots=True)
class Night:
    """Care alarms of one night (named by the date it began). `partial`: the period's edge cuts it: the night
    before the first day (only its hours after midnight are in the period) and the last day's night (only the
    hours before midnight)."""

    began: date
    alarms: int
    partial: bool


CURRENT, PREVIOUS, INSTALLED = "#1f5f8b", "#e08a3c", "#b0b0b0"
_LABELS = {
    "alarms_per_night": {"sv": "Trygghetslarm per natt", "en": "Care alarms per night"},
    "night": {"sv": "Natt (dag i månaden då natten började)", "en": "Night (day of the month it began)"},
    "alarms": {"sv": "Larm", "en": "Alarms"},
    "partial": {"sv": "natt som periodens gräns delar", "en": "night cut by the period's edge"},
    "response": {"sv": "Tid från larm tills någon tog det", "en": "Time from alarm to accept"},
    "minutes": {"sv": "Minuter", "en": "Minutes"},
    "share": {"sv": "Andel av besvarade larm", "en": "Share of answered alarms"},
    "devices": {"sv": "Enheter som rapporterat av installerade", "en": "Devices reporting of installed"},
    "devices_axis": {"sv": "Enheter", "en": "Devices"},
    "installed": {"sv": "Installerade", "en": "Installed"},
    "reporting": {"sv": "Rapporterat", "en": "Reported"},
    "answered": {"sv": "besvarade", "en": "answered"},
}


def localized(table: dict[str, dict[str, str]], key: str, lang: str) -> str:
    """`table[key]` in `lang`: Swedish for 'sv', English otherwise."""
    return table[key]["sv" if lang == "sv" else "en"]


def label(key: str, lang: str) -> str:
    """A chart label in `lang`."""
    return localized(_LABELS, key, lang)


def _legend(fig: Figure, handles: list[Patch], ncol: int) -> None:
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, frameon=False, fontsize=8)


def alarms_per_night(nights: list[Night], previous: list[Night], periods: tuple[str, str], lang: str) -> Figure:
    """Bars: care alarms per night, the previous month's beside each (by day of the month); every night the
    period's alarms fall in has its bar, and a night the period's edge cuts is hatched."""
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.subplots()
    prev_by_day = {n.began.day: n for n in previous[1:]}
    xs = list(range(len(nights)))
    ticks = [f"{n.began.day}" if i else f"{n.began.day}/{n.began.month}" for i, n in enumerate(nights)]
    ax.bar([x + 0.2 for x in xs], [n.alarms for n in nights], width=0.4, color=CURRENT,
           hatch=None, label=periods[0])  # fmt: skip
    for x, n in zip(xs, nights, strict=True):
        if n.partial:
            ax.bar(x + 0.2, n.alarms, width=0.4, color="white", edgecolor=CURRENT, hatch="////")
    prev_values = [(prev_by_day[n.began.day].alarms if n.began.day in prev_by_day and i else 0)
                   for i, n in enumerate(nights)]  # fmt: skip
    ax.bar([x - 0.2 for x in xs], prev_values, width=0.4, color=PREVIOUS)
    ax.set_xticks(xs, ticks, fontsize=7)
    ax.set_title(label("alarms_per_night", lang))
    ax.set_xlabel(label("night", lang))
    ax.set_ylabel(label("alarms", lang))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(fig, [Patch(color=CURRENT, label=periods[0]), Patch(color=PREVIOUS, label=periods[1]),
                  Patch(facecolor="white", edgecolor=CURRENT, hatch="////", label=label("partial", lang))], 3)  # fmt: skip
    return fig


def response_distribution(
    accept_s: list[float], previous_s: list[float], periods: tuple[str, str], lang: str
) -> Figure:
    """Histogram: minutes from raised to the first staff action, as shares so two months of different size
    compare; the previous month as an outline over the same bins."""
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.subplots()
    minutes, prev_minutes = [s / 60 for s in accept_s], [s / 60 for s in previous_s]
    top = max([*minutes, *prev_minutes, 1.0])
    bins = [top * i / 20 for i in range(21)]
    if minutes:
        ax.hist(minutes, bins=bins, color=CURRENT, weights=[1 / len(minutes)] * len(minutes))
    if prev_minutes:
        ax.hist(prev_minutes, bins=bins, histtype="step", linewidth=1.8, color=PREVIOUS,
                weights=[1 / len(prev_minutes)] * len(prev_minutes))  # fmt: skip
    ax.set_title(label("response", lang))
    ax.set_xlabel(label("minutes", lang))
    ax.set_ylabel(label("share", lang))
    ax.yaxis.set_major_formatter(lambda v, _: f"{v * 100:.0f} %")
    n, pn = len(minutes), len(prev_minutes)
    _legend(fig, [Patch(color=CURRENT, label=f"{periods[0]} ({n} {label('answered', lang)})"),
                  Patch(facecolor="white", edgecolor=PREVIOUS, linewidth=1.8,
                        label=f"{periods[1]} ({pn} {label('answered', lang)})")], 2)  # fmt: skip
    return fig


def devices_reporting(
    classes: list[tuple[str, int, int]], previous: list[tuple[str, int, int]], periods: tuple[str, str], lang: str
) -> Figure:
    """Bars per device class: installed, reported this month, reported the previous month."""
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax = fig.subplots()
    names = sorted({c[0] for c in classes} | {c[0] for c in previous})
    now = {c[0]: c for c in classes}
    before = {c[0]: c for c in previous}
    xs = list(range(len(names)))
    ax.bar([x - 0.27 for x in xs], [now[n][1] if n in now else 0 for n in names], width=0.27, color=INSTALLED)
    ax.bar(xs, [now[n][2] if n in now else 0 for n in names], width=0.27, color=CURRENT)
    ax.bar([x + 0.27 for x in xs], [before[n][2] if n in before else 0 for n in names], width=0.27, color=PREVIOUS)
    ax.set_xticks(xs, [labels.word("device_class", n, lang) for n in names], rotation=20, ha="right", fontsize=8)
    ax.set_title(label("devices", lang))
    ax.set_ylabel(label("devices_axis", lang))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(fig, [Patch(color=INSTALLED, label=f"{label('installed', lang)} {periods[0]}"),
                  Patch(color=CURRENT, label=f"{label('reporting', lang)} {periods[0]}"),
                  Patch(color=PREVIOUS, label=f"{label('reporting', lang)} {periods[1]}")], 3)  # fmt: skip
    return fig
