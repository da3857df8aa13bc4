"""Open data: the indicators that are safe to publish, per site, care unit and month, as a Frictionless Data Package
(CSV + `datapackage.json` with a Table Schema per resource) with DCAT-AP-SE metadata in Swedish and English.

Safe means: no resident, staff or device identifier, no room, nothing finer than a month; every count below the
threshold published as '<5' and enough further cells as '..' that none can be worked out from the totals
(`suppression.py`). Response times are published only where the number of alarms they describe is.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from hub.followup import rollup
from hub.followup.indicators import Period, Result, Scope, compute, parse_period, units
from hub.followup.suppression import Hidden, Line, suppress
from hub.settings import Settings

ALL = "alla"
OUTCOMES = ("assisted", "false_alarm", "technical", "no_action", "cancelled", "open")
DEVICE_MEASURES = ("installed", "reporting", "active")
_DEVICE_INDICATOR = {"installed": "tech.devices_installed", "reporting": "tech.devices_reporting",
                     "active": "tech.devices_active"}  # fmt: skip
LICENSE = {"name": "CC0-1.0", "path": "https://creativecommons.org/publicdomain/zero/1.0/", "title": "CC0 1.0"}
PRIMARY, SECONDARY = "<5", ".."


@dataclass(slots=True)
class Table:
    """One resource: rows of cells, some of which are hidden, with their lines (what adds up to what)."""

    name: str
    fields: list[dict[str, Any]]
    rows: list[dict[str, Any]] = field(default_factory=list)


def _mark(value: float | None, hidden: Hidden | None, threshold: int) -> str:
    if hidden == "primary":
        return f"<{threshold}"
    if hidden == "secondary":
        return SECONDARY
    return "" if value is None else f"{value:g}"


def _grid(
    cells: dict[tuple[str, str], int], rows: list[str], cols: list[str], threshold: int
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], Hidden]]:
    """Add the totals (row ALL, column ALL) and suppress."""
    values = dict(cells)
    for r in rows:
        values[(r, ALL)] = sum(cells.get((r, c), 0) for c in cols)
    for c in [*cols, ALL]:
        values[(ALL, c)] = sum(values.get((r, c), 0) for r in rows)
    for r in rows:
        for c in cols:
            values.setdefault((r, c), 0)
    lines = [Line(tuple((r, c) for c in cols), (r, ALL)) for r in [*rows, ALL]]
    lines += [Line(tuple((r, c) for r in rows), (ALL, c)) for c in [*cols, ALL]]
    return values, suppress(values, lines, threshold)


def build_tables(results: dict[tuple[str, str], dict[str, Result]], threshold: int) -> list[Table]:
    """The resources from per-(site, month) results keyed by unit (the site total computed from the units)."""
    outcomes = Table("alarm_outcomes", [
        {"name": "site", "type": "string", "title": "Plats / Site"},
        {"name": "unit", "type": "string", "title": "Avdelning / Care unit ('alla' = all units)"},
        {"name": "month", "type": "yearmonth", "title": "Månad / Month"},
        {"name": "outcome", "type": "string", "title": "Utfall / Outcome ('alla' = all)",
         "constraints": {"enum": [*OUTCOMES, ALL]}},
        {"name": "alarms", "type": "integer", "title": "Larm / Alarms", "constraints": {"minimum": 0}},
    ])  # fmt: skip
    devices = Table("devices", [
        {"name": "site", "type": "string", "title": "Plats / Site"},
        {"name": "unit", "type": "string", "title": "Avdelning / Care unit ('alla' = all units)"},
        {"name": "month", "type": "yearmonth", "title": "Månad / Month"},
        {"name": "device_class", "type": "string", "title": "Enhetstyp / Device class ('alla' = all)"},
        *({"name": m, "type": "integer", "constraints": {"minimum": 0},
           "title": {"installed": "Installerade / Installed", "reporting": "Har rapporterat / Reported",
                     "active": "I aktiv användning / In active use"}[m]} for m in DEVICE_MEASURES),
    ])  # fmt: skip
    response = Table("response_times", [
        {"name": "site", "type": "string", "title": "Plats / Site"},
        {"name": "unit", "type": "string", "title": "Avdelning / Care unit ('alla' = all units)"},
        {"name": "month", "type": "yearmonth", "title": "Månad / Month"},
        {"name": "care_alarms", "type": "integer", "title": "Trygghetslarm / Care alarms", "constraints": {"minimum": 0}},
        {"name": "accept_p50_min", "type": "number", "title": "Median tid till kvittens (min) / Median time to accept (min)"},
        {"name": "accept_p90_min", "type": "number", "title": "90:e percentil tid till kvittens (min) / 90th percentile time to accept (min)"},
        {"name": "on_site_p50_min", "type": "number", "title": "Median tid till på plats (min) / Median time to on site (min)"},
    ])  # fmt: skip
    for (site, month_label), by_unit in sorted(results.items()):
        unit_names = sorted(u for u in by_unit if u != ALL_SCOPE)
        # alarm outcomes: units x outcomes
        cells = {(u, o): int(by_unit[u].get("alarms.outcome", category="care", outcome=o) or 0)
                 + int(by_unit[u].get("alarms.outcome", category="technical", outcome=o) or 0)
                 for u in unit_names for o in OUTCOMES}  # fmt: skip
        values, hidden = _grid(cells, unit_names, list(OUTCOMES), threshold)
        for u in [*unit_names, ALL]:
            for o in [*OUTCOMES, ALL]:
                outcomes.rows.append({"site": site, "unit": u, "month": month_label, "outcome": o,
                                      "alarms": _mark(values[(u, o)], hidden.get((u, o)), threshold)})  # fmt: skip
        # devices: units x classes, one grid per measure
        classes = sorted({dict(k)["device_class"] for r in by_unit.values()
                          for k in r.values.get("tech.devices_installed", {})})  # fmt: skip
        grids = {}
        for m in DEVICE_MEASURES:
            cells = {(u, c): int(by_unit[u].get(_DEVICE_INDICATOR[m], device_class=c) or 0)
                     for u in unit_names for c in classes}  # fmt: skip
            grids[m] = _grid(cells, unit_names, classes, threshold)
        for u in [*unit_names, ALL]:
            for c in [*classes, ALL]:
                row: dict[str, Any] = {"site": site, "unit": u, "month": month_label, "device_class": c}
                for m, (values, hidden) in grids.items():
                    row[m] = _mark(values[(u, c)], hidden.get((u, c)), threshold)
                devices.rows.append(row)
        # response times: care alarms per unit, times only where that count is published
        cells = {(u, "care"): int(sum(v or 0 for k, v in by_unit[u].values.get("alarms.outcome", {}).items()
                                      if dict(k)["category"] == "care")) for u in unit_names}  # fmt: skip
        values, hidden = _grid(cells, unit_names, ["care"], threshold)
        for u in [*unit_names, ALL]:
            h = hidden.get((u, "care"))
            row = {
                "site": site,
                "unit": u,
                "month": month_label,
                "care_alarms": _mark(values[(u, "care")], h, threshold),
            }
            # the site's own percentiles need every alarm of the site: computed for the site scope ('alla' key)
            result = by_unit.get(u) if u != ALL else by_unit.get(ALL_SCOPE)
            for name, ind, stat in (("accept_p50_min", "response.accept_s", "p50"),
                                    ("accept_p90_min", "response.accept_s", "p90"),
                                    ("on_site_p50_min", "response.on_site_s", "p50")):  # fmt: skip
                seconds = result.get(ind, stat=stat) if result is not None else None
                row[name] = SECONDARY if h else ("" if seconds is None else f"{seconds / 60:.1f}")
            response.rows.append(row)
    return [outcomes, devices, response]


ALL_SCOPE = "\x00site"  # the key of the whole-site result in `results` (never a unit name: units match [A-Za-z0-9_.-])


async def collect(
    conn: asyncpg.Connection, sites: Iterable[str], period: Period, accept_policy_s: float
) -> dict[tuple[str, str], dict[str, Result]]:
    """Indicators per (site, month) and unit, plus the whole site under ALL_SCOPE."""
    out: dict[tuple[str, str], dict[str, Result]] = {}
    for site in sites:
        unit_names = await units(conn, site)
        for part in period.split("month"):
            by_unit = {
                u: await compute(conn, Scope(site, u), part, accept_policy_s=accept_policy_s) for u in unit_names
            }
            site_result = await compute(conn, Scope(site), part, accept_policy_s=accept_policy_s)
            out[(site, part.label)] = {**by_unit, ALL_SCOPE: site_result}
    return out


def write_package(
    tables: list[Table], out: Path, period: Period, sites: list[str], publisher: str, threshold: int, now: datetime
) -> None:
    """Write the CSV files, `datapackage.json` and `dcat-ap-se.jsonld` into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    missing = ["", f"<{threshold}", SECONDARY]
    resources = []
    for table in tables:
        path = out / f"{table.name}.csv"
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[fd["name"] for fd in table.fields], lineterminator="\n")
            writer.writeheader()
            writer.writerows(table.rows)
        resources.append({
            "name": table.name, "path": path.name, "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
            "title": _TITLES[table.name], "description": _DESCRIPTIONS[table.name],
            "schema": {"fields": table.fields, "missingValues": missing,
                       "primaryKey": [fd["name"] for fd in table.fields if fd["type"] in ("string", "yearmonth")]},
        })  # fmt: skip
    package = {
        "name": f"vaka-valfardsteknik-{period.label.lower()}",
        "title": f"Välfärdsteknik i äldreomsorgen / Welfare technology in elderly care {period.label}",
        "description": (
            "Användning av välfärdsteknik, larm och svarstider per avdelning och månad. Antal under "
            f"{threshold} visas som '<{threshold}', och celler som döljs för att skydda dem som '..'. / "
            "Use of welfare technology, alarms and response times per care unit and month. Counts below "
            f"{threshold} are shown as '<{threshold}', and cells hidden to protect them as '..'."
        ),
        "licenses": [LICENSE],
        "created": now.replace(microsecond=0).isoformat(),
        "keywords": ["välfärdsteknik", "äldreomsorg", "trygghetslarm", "welfare technology", "elderly care"],
        "temporal": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "sites": sites,
        "resources": resources,
    }
    (out / "datapackage.json").write_text(json.dumps(package, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "dcat-ap-se.jsonld").write_text(
        json.dumps(_dcat(package, publisher, now), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


_TITLES = {
    "alarm_outcomes": "Larm efter utfall / Alarms by outcome",
    "devices": "Installerad och använd välfärdsteknik / Welfare technology installed and in use",
    "response_times": "Svarstider för trygghetslarm / Response times to care alarms",
}
_DESCRIPTIONS = {
    "alarm_outcomes": "Antal larm per avdelning, månad och utfall. / Alarms per care unit, month and outcome.",
    "devices": "Enheter per typ: installerade, som rapporterat, i aktiv användning. / Devices per class: installed, reported, in active use.",
    "response_times": "Tid från larm till kvittens och till på plats, i minuter. / Time from alarm to accept and to on site, in minutes.",
}


def _dcat(package: dict[str, Any], publisher: str, now: datetime) -> dict[str, Any]:
    """DCAT-AP-SE (2.x) metadata for the package as JSON-LD, titles and descriptions in Swedish and English."""
    sv_title, en_title = package["title"].split(" / ", 1)
    sv_desc, en_desc = package["description"].split(" / ", 1)
    return {
        "@context": {
            "dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/", "vcard": "http://www.w3.org/2006/vcard/ns#",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
        },
        "@id": f"urn:vaka:dataset:{package['name']}",
        "@type": "dcat:Dataset",
        "dct:title": [{"@language": "sv", "@value": sv_title}, {"@language": "en", "@value": en_title}],
        "dct:description": [{"@language": "sv", "@value": sv_desc}, {"@language": "en", "@value": en_desc}],
        "dct:publisher": {"@type": "foaf:Agent", "foaf:name": publisher or "Kommunen / The municipality"},
        "dcat:contactPoint": {"@type": "vcard:Organization", "vcard:fn": publisher or "Kommunen / The municipality"},
        "dcat:theme": [{"@id": "http://publications.europa.eu/resource/authority/data-theme/HEAL"},
                       {"@id": "http://publications.europa.eu/resource/authority/data-theme/SOCI"}],
        "dcat:keyword": [{"@language": "sv" if i < 3 else "en", "@value": k} for i, k in enumerate(package["keywords"])],
        "dct:issued": {"@type": "xsd:dateTime", "@value": now.replace(microsecond=0).isoformat()},
        "dct:temporal": {"@type": "dct:PeriodOfTime",
                         "dcat:startDate": {"@type": "xsd:date", "@value": package["temporal"]["start"]},
                         "dcat:endDate": {"@type": "xsd:date", "@value": package["temporal"]["end"]}},
        "dct:accrualPeriodicity": {"@id": "http://publications.europa.eu/resource/authority/frequency/QUARTERLY"},
        "dct:accessRights": {"@id": "http://publications.europa.eu/resource/authority/access-right/PUBLIC"},
        "dcat:distribution": [
            {"@type": "dcat:Distribution", "dct:title": r["title"], "dcat:accessURL": {"@id": r["path"]},
             "dcat:downloadURL": {"@id": r["path"]}, "dcat:mediaType": {"@id": "https://www.iana.org/assignments/media-types/text/csv"},
             "dct:format": {"@id": "http://publications.europa.eu/resource/authority/file-type/CSV"},
             "dct:license": {"@id": LICENSE["path"]}, "dct:conformsTo": {"@id": "https://specs.frictionlessdata.io/table-schema/"}}
            for r in package["resources"]
        ],
    }  # fmt: skip


async def export_main(args: argparse.Namespace, settings: Settings, now: datetime) -> int:
    """`vaka opendata export --period P --out DIR`."""
    from hub.cli import _with_database
    from hub.store.db import VakaConnection

    period = parse_period(args.period)
    threshold = settings.followup.suppress_below

    async def work(conn: VakaConnection) -> tuple[list[str], dict[tuple[str, str], dict[str, Result]]]:
        await rollup.refresh(conn, now)
        sites = args.site or [r["id"] for r in await conn.fetch("SELECT id FROM sites ORDER BY id")]
        return sites, await collect(conn, sites, period, settings.followup.accept_policy_s)

    got = await _with_database(settings, "opendata export", work)
    if got is None:
        return 2
    sites, results = got
    tables = build_tables(results, threshold)
    write_package(tables, args.out, period, sites, args.publisher, threshold, now)
    print(f"open data for {period.label} ({len(sites)} site(s)) written to {args.out}: "
          + ", ".join(f"{t.name}.csv ({len(t.rows)} rows)" for t in tables))  # fmt: skip
    return 0
