"""The monthly follow-up report: every indicator beside the previous period's, and three charts; as JSON (the
machine-readable form), HTML (inline SVG charts, one self-contained file) or PDF (table pages, then the charts)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import asyncpg
import jinja2
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from hub.followup import charts
from hub.followup.indicators import BY_ID, CATEGORY_SQL, INDICATORS, Period, Result, Scope, compute
from hub.followup.rollup import ZONE

Format = Literal["json", "html", "pdf"]
Lang = Literal["sv", "en"]

_TEXT = {
    "title": {"sv": "Uppföljning av välfärdsteknik", "en": "Welfare technology follow-up"},
    "site": {"sv": "Plats", "en": "Site"},
    "unit": {"sv": "Avdelning", "en": "Unit"},
    "all_units": {"sv": "alla avdelningar", "en": "all units"},
    "indicator": {"sv": "Indikator", "en": "Indicator"},
    "breakdown": {"sv": "Uppdelning", "en": "Breakdown"},
    "generated": {"sv": "Skapad", "en": "Generated"},
    "definitions": {
        "sv": "Definitionerna finns i docs/indicators.md. Rapporten innehåller inga uppgifter om enskilda personer.",
        "en": "The definitions are in docs/indicators.md. The report holds nothing about any single person.",
    },
}


def report_lang(lang: str) -> Lang:
    """The report language for a person's page language: Swedish, else English."""
    return "sv" if lang == "sv" else "en"


def text(key: str, lang: str) -> str:
    """A report label in `lang`."""
    return charts.localized(_TEXT, key, lang)


@dataclass(slots=True)
class Report:
    """One report: the period's indicators, the previous period's, and the charts' data."""

    scope: Scope
    current: Result
    previous: Result
    nights: list[tuple[date, int]]
    accept_s: list[float]
    generated_at: datetime

    def rows(self) -> list[dict[str, Any]]:
        """Every indicator value with the previous period's value for the same breakdown."""
        out = []
        for ind in INDICATORS:
            keys = sorted(set(self.current.values.get(ind.id, {})) | set(self.previous.values.get(ind.id, {})))
            for key in keys:
                out.append(
                    {
                        "indicator": ind.id,
                        "dims": dict(key),
                        "value": self.current.values.get(ind.id, {}).get(key),
                        "previous": self.previous.values.get(ind.id, {}).get(key),
                    }
                )
        return out

    def device_classes(self) -> list[tuple[str, int, int]]:
        """(class, installed, reporting) for the devices chart."""
        out = []
        for key, installed in sorted(self.current.values.get("tech.devices_installed", {}).items()):
            reporting = self.current.values.get("tech.devices_reporting", {}).get(key) or 0
            out.append((dict(key)["device_class"], int(installed or 0), int(reporting)))
        return out


_NIGHTS_SQL = f"""
SELECT (((raised_at AT TIME ZONE '{ZONE}') - INTERVAL '12 hours'))::date AS night, count(*) AS n
FROM desk_alarms
WHERE site = $1 AND ($2::text IS NULL OR unit = $2) AND raised_at >= $3 AND raised_at < $4 AND {CATEGORY_SQL} = 'care'
GROUP BY 1
"""
_ACCEPT_SQL = f"""
WITH a AS (
    SELECT id, raised_at FROM desk_alarms
    WHERE site = $1 AND ($2::text IS NULL OR unit = $2) AND raised_at >= $3 AND raised_at < $4 AND {CATEGORY_SQL} = 'care'
)
SELECT extract(epoch FROM min(l.at) - min(a.raised_at))::float8 AS s
FROM a JOIN desk_alarm_log l ON l.alarm_id = a.id
WHERE l.at >= $3 AND l.actor LIKE 'staff:%'
GROUP BY a.id
"""


async def build(
    conn: asyncpg.Connection,
    scope: Scope,
    period: Period,
    now: datetime,
    *,
    accept_policy_s: float = 300.0,
    last_tiers: dict[str, int] | None = None,
) -> Report:
    """Compute the report for `scope` and `period` (and the period before it)."""
    current = await compute(conn, scope, period, accept_policy_s=accept_policy_s, last_tiers=last_tiers)
    previous = await compute(conn, scope, period.previous(), accept_policy_s=accept_policy_s, last_tiers=last_tiers)
    start_ts, end_ts = period.bounds()
    # a night is named by the date it began: an alarm at 02:14 on the 11th belongs to the night of the 10th
    counts = {r["night"]: int(r["n"]) for r in await conn.fetch(_NIGHTS_SQL, scope.site, scope.unit, start_ts, end_ts)}
    nights = [(d, counts.get(d, 0)) for d in (period.start + timedelta(days=i) for i in range(period.days))]
    accept = [
        r["s"] for r in await conn.fetch(_ACCEPT_SQL, scope.site, scope.unit, start_ts, end_ts) if r["s"] is not None
    ]
    return Report(scope, current, previous, nights, sorted(accept), now)


def to_json(report: Report) -> dict[str, Any]:
    """The machine-readable report."""
    return {
        "site": report.scope.site,
        "unit": report.scope.unit,
        "period": {"label": report.current.period.label, "start": report.current.period.start.isoformat(),
                   "end": report.current.period.end.isoformat()},
        "previous_period": {"label": report.previous.period.label, "start": report.previous.period.start.isoformat(),
                            "end": report.previous.period.end.isoformat()},
        "generated_at": report.generated_at.isoformat(),
        "zone": ZONE,
        "indicators": [
            {"id": i.id, "section": i.section, "unit": i.unit, "dims": list(i.dims), "title_sv": i.title_sv,
             "title_en": i.title_en}
            for i in INDICATORS
        ],
        "values": report.rows(),
        "charts": {
            "care_alarms_per_night": [{"night": d.isoformat(), "alarms": n} for d, n in report.nights],
            "accept_s": report.accept_s,
            "devices": [{"device_class": c, "installed": i, "reporting": r} for c, i, r in report.device_classes()],
        },
    }  # fmt: skip


def format_value(indicator_id: str, value: float | None, lang: str) -> str:
    """A value as a reader expects it: counts whole, shares in per cent, durations in minutes."""
    if value is None:
        return "–"
    unit = BY_ID[indicator_id].unit
    if unit == "share":
        return f"{value * 100:.0f} %"
    if unit == "seconds":
        minutes = value / 60
        text_ = f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
        return text_.replace(".", ",") if lang == "sv" else text_
    if unit == "per_resident_night":
        text_ = f"{value:.3f}"
        return text_.replace(".", ",") if lang == "sv" else text_
    return f"{value:.0f}"


def _figures(report: Report, lang: str) -> list[Figure]:
    return [
        charts.alarms_per_night(report.nights, lang),
        charts.response_distribution(report.accept_s, lang),
        charts.devices_reporting(report.device_classes(), lang),
    ]


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


def _table_rows(report: Report, lang: str) -> list[tuple[str, str, str, str]]:
    out = []
    for row in report.rows():
        ind = BY_ID[row["indicator"]]
        dims = ", ".join(f"{v}" for v in row["dims"].values())
        out.append((ind.title(lang), dims, format_value(ind.id, row["value"], lang),
                    format_value(ind.id, row["previous"], lang)))  # fmt: skip
    return out


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True, trim_blocks=True
)


def to_html(report: Report, lang: Lang) -> str:
    """One self-contained HTML page: the table and the charts as inline SVG."""
    return _env.get_template("report.html").render(
        lang=lang,
        t=lambda key: text(key, lang),
        report=report,
        rows=_table_rows(report, lang),
        charts=[_svg(fig) for fig in _figures(report, lang)],
    )


def to_pdf(report: Report, lang: Lang, out: io.BufferedIOBase | io.BytesIO | Path) -> None:
    """A PDF: the table over as many A4 pages as it needs, then one page per chart."""
    rows = _table_rows(report, lang)
    header = (text("indicator", lang), text("breakdown", lang), report.current.period.label,
              report.previous.period.label)  # fmt: skip
    unit = report.scope.unit or text("all_units", lang)
    per_page = 34
    with PdfPages(out, metadata={"Title": f"{text('title', lang)} {report.scope.site} {report.current.period.label}",
                                 "CreationDate": None, "ModDate": None}) as pdf:  # fmt: skip
        for page in range(0, max(1, len(rows)), per_page):
            fig = Figure(figsize=(8.27, 11.69))
            fig.text(0.05, 0.96, f"{text('title', lang)} — {report.current.period.label}", fontsize=14, weight="bold")
            fig.text(
                0.05, 0.935, f"{text('site', lang)}: {report.scope.site}   {text('unit', lang)}: {unit}", fontsize=9
            )
            ax = fig.add_axes((0.05, 0.05, 0.9, 0.86))
            ax.axis("off")
            chunk = rows[page : page + per_page] or [("–", "", "", "")]
            table = ax.table(cellText=[list(r) for r in chunk], colLabels=list(header), loc="upper left",
                             colWidths=[0.45, 0.25, 0.15, 0.15], cellLoc="left")  # fmt: skip
            table.auto_set_font_size(False)
            table.set_fontsize(7)
            pdf.savefig(fig)
        for fig in _figures(report, lang):
            pdf.savefig(fig)


def write(report: Report, fmt: Format, lang: Lang, out: Path) -> None:
    """Write the report to `out` in `fmt`."""
    if fmt == "json":
        out.write_text(json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    elif fmt == "html":
        out.write_text(to_html(report, lang), encoding="utf-8")
    else:
        to_pdf(report, lang, out)
