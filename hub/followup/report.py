"""The monthly follow-up report: every indicator beside the previous period's, with words for every id and a total
per breakdown, and three charts with the previous month beside the current one; as JSON (the machine-readable
form), HTML (inline SVG charts, one self-contained file) or PDF (the charts on the first page, then compact tables).
A period not yet over is marked as preliminary wherever its name is shown."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
import jinja2
import matplotlib.image
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from hub.followup import charts, labels
from hub.followup.charts import Night
from hub.followup.indicators import BY_ID, CATEGORY_SQL, INDICATORS, Period, Result, Scope, compute, dims_order
from hub.store.rollup import ZONE

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
    "total": {"sv": "Totalt", "en": "Total"},
    "partial": {"sv": "preliminär, t.o.m.", "en": "preliminary, up to"},
    "section.technology": {"sv": "Teknik i användning", "en": "Technology in use"},
    "section.alarms": {"sv": "Larm", "en": "Alarms"},
    "section.response": {"sv": "Svarstider (trygghetslarm)", "en": "Response (care alarms)"},
    "section.technical": {"sv": "Tekniska fel", "en": "Technical faults"},
    "section.medication": {"sv": "Läkemedelsrobotar", "en": "Medication robots"},
    "section.checkins": {"sv": "Nattliga tillsyner", "en": "Night check-ins"},
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
    """One report: the period's indicators, the previous period's, and the charts' data for both."""

    scope: Scope
    current: Result
    previous: Result
    nights: list[Night]
    accept_s: list[float]
    generated_at: datetime
    previous_nights: list[Night]
    previous_accept_s: list[float]

    @property
    def partial_until(self) -> date | None:
        """The last day with data when the period is not over when the report is made (None: a closed period)."""
        today = self.generated_at.astimezone(ZoneInfo(ZONE)).date()
        if today >= self.current.period.end:
            return None
        return max(self.current.period.start, today)

    def period_label(self, lang: str) -> str:
        """The period's name, marked when it is not over yet."""
        label = self.current.period.label
        until = self.partial_until
        return f"{label} ({text('partial', lang)} {until.isoformat()})" if until else label

    def rows(self) -> list[dict[str, Any]]:
        """Every indicator value with the previous period's value for the same breakdown."""
        out = []
        for ind in INDICATORS:
            keys = sorted(set(self.current.values.get(ind.id, {})) | set(self.previous.values.get(ind.id, {})),
                          key=dims_order)  # fmt: skip
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
        return _device_classes(self.current)

    def previous_device_classes(self) -> list[tuple[str, int, int]]:
        """The same for the previous period."""
        return _device_classes(self.previous)


def _device_classes(result: Result) -> list[tuple[str, int, int]]:
    out = []
    for key, installed in sorted(result.values.get("tech.devices_installed", {}).items()):
        reporting = result.values.get("tech.devices_reporting", {}).get(key) or 0
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
    nights, accept = await _chart_data(conn, scope, period)
    previous_nights, previous_accept = await _chart_data(conn, scope, period.previous())
    return Report(scope, current, previous, nights, accept, now, previous_nights, previous_accept)


async def _chart_data(conn: asyncpg.Connection, scope: Scope, period: Period) -> tuple[list[Night], list[float]]:
    """Care alarms per night and the times to accept, for one period."""
    start_ts, end_ts = period.bounds()
    # a night is named by the date it began: an alarm at 02:14 on the 11th belongs to the night of the 10th. The
    # period's alarms fall in the nights from the one before its first day to its last day's: every one has its bar
    counts = {r["night"]: int(r["n"]) for r in await conn.fetch(_NIGHTS_SQL, scope.site, scope.unit, start_ts, end_ts)}
    first, last = period.start - timedelta(days=1), period.end - timedelta(days=1)
    nights = [
        Night(d, counts.get(d, 0), d in (first, last))
        for d in (first + timedelta(days=i) for i in range((last - first).days + 1))
    ]
    accept = [
        r["s"] for r in await conn.fetch(_ACCEPT_SQL, scope.site, scope.unit, start_ts, end_ts) if r["s"] is not None
    ]
    return nights, sorted(accept)


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
        "partial": report.partial_until is not None,
        "partial_until": report.partial_until.isoformat() if report.partial_until else None,
        "zone": ZONE,
        "indicators": [
            {"id": i.id, "section": i.section, "unit": i.unit, "dims": list(i.dims), "title_sv": i.title_sv,
             "title_en": i.title_en}
            for i in INDICATORS
        ],
        "values": [{**row, "breakdown_sv": labels.breakdown(row["dims"], "sv"),
                    "breakdown_en": labels.breakdown(row["dims"], "en")} for row in report.rows()],
        "charts": {
            "care_alarms_per_night": [{"night": n.began.isoformat(), "alarms": n.alarms, "partial": n.partial}
                                      for n in report.nights],
            "previous_care_alarms_per_night": [{"night": n.began.isoformat(), "alarms": n.alarms,
                                                "partial": n.partial} for n in report.previous_nights],
            "accept_s": report.accept_s,
            "previous_accept_s": report.previous_accept_s,
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
    labels_ = (report.period_label(lang), report.previous.period.label)
    return [
        charts.alarms_per_night(report.nights, report.previous_nights, labels_, lang),
        charts.response_distribution(report.accept_s, report.previous_accept_s, labels_, lang),
        charts.devices_reporting(report.device_classes(), report.previous_device_classes(), labels_, lang),
    ]


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


# the report's table is read in five minutes: alarms by category and type (severities added up), the median per
# alarm type, answers by status (alarm types added up); the JSON keeps every breakdown
_COMPACT: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "alarms.count": (("category", "rule"), {}),
    "response.accept_by_rule_s": (("rule", "stat"), {"stat": "p50"}),
    "response.care_alarms_answered": (("status",), {}),
}


# totals that would mean nothing: a resident with two kinds of technology is one resident; doses due are the doses
# taken and missed again
_NOT_ADDITIVE = ("tech.residents_with", "medication.doses")


def _compact(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    grouped: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {}
    for row in rows:
        spec = _COMPACT.get(row["indicator"])
        if spec is None:
            out.append(row)
            continue
        keep, only = spec
        if any(row["dims"].get(d) != v for d, v in only.items()):
            continue
        dims = {d: row["dims"][d] for d in keep}
        key = (row["indicator"], tuple(dims.items()))
        if key not in grouped:
            grouped[key] = {"indicator": row["indicator"], "dims": dims, "value": None, "previous": None}
            out.append(grouped[key])
        for field in ("value", "previous"):
            if row[field] is not None:
                grouped[key][field] = (grouped[key][field] or 0) + row[field]
    return out


def _table_rows(report: Report, lang: str) -> list[tuple[str, str, str, str]]:
    """(indicator, breakdown in words, value, previous value) rows, a total after every count with a breakdown, and
    a heading row (indicator only, nothing else) before each section."""
    out: list[tuple[str, str, str, str]] = []
    rows = _compact(report.rows())
    section = ""
    for ind in INDICATORS:
        mine = [r for r in rows if r["indicator"] == ind.id]
        if not mine:
            continue
        if ind.section != section:
            section = ind.section
            out.append((text(f"section.{section}", lang), "", "", ""))
        for row in mine:
            out.append((ind.title(lang), labels.breakdown(row["dims"], lang),
                        format_value(ind.id, row["value"], lang), format_value(ind.id, row["previous"], lang)))  # fmt: skip
        if ind.unit == "count" and ind.dims and len(mine) > 1 and ind.id not in _NOT_ADDITIVE:
            out.append((ind.title(lang), text("total", lang), format_value(ind.id, report.current.total(ind.id), lang),
                        format_value(ind.id, report.previous.total(ind.id), lang)))  # fmt: skip
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
    """A PDF on A4: the title and the three charts on the first page, then the table in compact pages."""
    rows = _table_rows(report, lang)
    header = (text("indicator", lang), text("breakdown", lang), report.current.period.label,
              report.previous.period.label)  # fmt: skip
    unit = report.scope.unit or text("all_units", lang)
    title = f"{text('title', lang)} — {report.period_label(lang)}"
    meta = f"{text('site', lang)}: {report.scope.site}   {text('unit', lang)}: {unit}   " + (
        f"{text('generated', lang)}: {report.generated_at:%Y-%m-%d %H:%M} UTC"
    )
    per_page = 70
    with PdfPages(out, metadata={"Title": f"{text('title', lang)} {report.scope.site} {report.current.period.label}",
                                 "CreationDate": None, "ModDate": None}) as pdf:  # fmt: skip
        page = Figure(figsize=(8.27, 11.69))
        page.text(0.06, 0.965, title, fontsize=13, weight="bold")
        page.text(0.06, 0.945, meta, fontsize=8)
        for n, fig in enumerate(_figures(report, lang)):
            png = io.BytesIO()
            fig.savefig(png, format="png", dpi=150)
            png.seek(0)
            ax = page.add_axes((0.04, 0.64 - n * 0.31, 0.92, 0.29))
            ax.imshow(matplotlib.image.imread(png))
            ax.axis("off")
        pdf.savefig(page)
        for start in range(0, len(rows), per_page):
            fig = Figure(figsize=(8.27, 11.69))
            fig.text(0.06, 0.965, title, fontsize=11, weight="bold")
            ax = fig.add_axes((0.05, 0.03, 0.9, 0.92))
            ax.axis("off")
            chunk = rows[start : start + per_page]
            table = ax.table(cellText=[list(r) for r in chunk], colLabels=list(header), loc="upper left",
                             colWidths=[0.36, 0.38, 0.13, 0.13], cellLoc="left")  # fmt: skip
            table.auto_set_font_size(False)
            table.set_fontsize(7.5)
            for (r, c), cell in table.get_celld().items():
                cell.set_height(1 / (per_page + 2))
                cell.set_linewidth(0.2)
                if c >= 2:
                    cell.set_text_props(ha="right")
                if r == 0 or (r > 0 and chunk[r - 1][1:] == ("", "", "")):
                    cell.set_text_props(weight="bold")
                    cell.set_facecolor("#eef2f5")
            pdf.savefig(fig)


def write(report: Report, fmt: Format, lang: Lang, out: Path) -> None:
    """Write the report to `out` in `fmt`."""
    if fmt == "json":
        out.write_text(json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    elif fmt == "html":
        out.write_text(to_html(report, lang), encoding="utf-8")
    else:
        to_pdf(report, lang, out)
