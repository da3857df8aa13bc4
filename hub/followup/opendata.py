"""Open data: the indicators that are safe to publish, per site, care unit and month, as a Frictionless Data Package
(CSV + `datapackage.json` with a Table Schema per resource) with DCAT-AP-SE metadata in Swedish and English.

Safe means: no resident, staff or device identifier, no room, nothing finer than a month; every count below the
threshold published as '<5' and enough further cells as '..' that none can be worked out from the totals
(`suppression.py`). A response-time percentile is published only where at least `percentile_min_answered` (>= 5)
alarms were answered, with the unanswered alarms counted beside it. Only closed periods are published, unless the
caller asks for a partial one, which is then marked as such in every title.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from hub.followup.indicators import (
    CATEGORIES,
    Period,
    PeriodError,
    Result,
    Scope,
    compute,
    last_tiers,
    parse_period,
    units,
)
from hub.followup.suppression import Hidden, Line, suppress
from hub.model import VakaError
from hub.settings import FollowupSettings, Settings
from hub.store import rollup

ALL = "alla"
OUTCOMES = ("assisted", "false_alarm", "technical", "no_action", "cancelled", "open")
DEVICE_MEASURES = ("installed", "reporting", "active")
_DEVICE_INDICATOR = {"installed": "tech.devices_installed", "reporting": "tech.devices_reporting",
                     "active": "tech.devices_active"}  # fmt: skip
LICENSE = {"name": "CC0-1.0", "path": "https://creativecommons.org/publicdomain/zero/1.0/", "title": "CC0 1.0"}
PRIMARY, SECONDARY = "<5", ".."
ANSWER_STATUSES = ("answered", "unanswered", "withdrawn")


class OpenDataError(VakaError):
    """An export that must not be written (an unfinished period, metadata the portal would refuse)."""


def closed(period: Period, now: datetime) -> bool:
    """True once the period is over in the follow-up zone (its last local day has ended)."""
    return now.astimezone(ZoneInfo(rollup.ZONE)).date() >= period.end


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


def _answers(result: Result | None, status: str) -> int:
    if result is None:
        return 0
    return int(sum(v or 0 for k, v in result.values.get("response.care_alarms_answered", {}).items()
                   if dict(k)["status"] == status))  # fmt: skip


def build_tables(
    results: dict[tuple[str, str], dict[str, Result]], threshold: int, min_answered: int = 5
) -> list[Table]:
    """The resources from per-(site, month) results keyed by unit (the site total computed from the units).

    A response-time percentile is published only where at least `min_answered` alarms were answered."""
    outcomes = Table("alarm_outcomes", [
        {"name": "site", "type": "string", "title": "Plats / Site"},
        {"name": "unit", "type": "string", "title": "Avdelning / Care unit ('alla' = all units)"},
        {"name": "month", "type": "yearmonth", "title": "Månad / Month"},
        {"name": "category", "type": "string",
         "title": "Kategori / Category (care = trygghetslarm, technical = tekniska, staff_process = personalens process)",
         "constraints": {"enum": list(CATEGORIES)}},
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
        {"name": "answered", "type": "integer", "title": "Besvarade / Answered (a staff action)",
         "constraints": {"minimum": 0}},
        {"name": "unanswered", "type": "integer", "title": "Obesvarade / Unanswered (no staff action, not withdrawn)",
         "constraints": {"minimum": 0}},
        {"name": "withdrawn", "type": "integer", "title": "Återkallade / Withdrawn by the device before an answer",
         "constraints": {"minimum": 0}},
        {"name": "accept_p50_min", "type": "number", "title": "Median tid tills larmet togs (min) / Median time to accept (min)"},
        {"name": "accept_p90_min", "type": "number", "title": "90:e percentil tid tills larmet togs (min) / 90th percentile time to accept (min)"},
        {"name": "on_site_p50_min", "type": "number", "title": "Median tid till på plats (min) / Median time to on site (min)"},
    ])  # fmt: skip
    for (site, month_label), by_unit in sorted(results.items()):
        unit_names = sorted(u for u in by_unit if u != ALL_SCOPE)
        # alarm outcomes: units x outcomes, one grid per category (care, technical and staff-process kept apart)
        for category in CATEGORIES:
            cells = {(u, o): int(by_unit[u].get("alarms.outcome", category=category, outcome=o) or 0)
                     for u in unit_names for o in OUTCOMES}  # fmt: skip
            values, hidden = _grid(cells, unit_names, list(OUTCOMES), threshold)
            for u in [*unit_names, ALL]:
                for o in [*OUTCOMES, ALL]:
                    outcomes.rows.append({"site": site, "unit": u, "month": month_label, "category": category,
                                          "outcome": o,
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
        # response times: care alarms per unit by answer (answered, unanswered, withdrawn; all = care alarms), and
        # the times only where the answered count is published and at least `min_answered` alarms were answered
        cells = {(u, st): _answers(by_unit[u], st) for u in unit_names for st in ANSWER_STATUSES}
        values, hidden = _grid(cells, unit_names, list(ANSWER_STATUSES), threshold)
        for u in [*unit_names, ALL]:
            row = {"site": site, "unit": u, "month": month_label,
                   "care_alarms": _mark(values[(u, ALL)], hidden.get((u, ALL)), threshold)}  # fmt: skip
            for st in ANSWER_STATUSES:
                row[st] = _mark(values[(u, st)], hidden.get((u, st)), threshold)
            # the site's own percentiles need every alarm of the site: computed for the site scope ('alla' key)
            result = by_unit.get(u) if u != ALL else by_unit.get(ALL_SCOPE)
            answered = _answers(result, "answered")
            shown = not hidden.get((u, "answered")) and answered >= min_answered
            for name, ind, stat in (("accept_p50_min", "response.accept_s", "p50"),
                                    ("accept_p90_min", "response.accept_s", "p90"),
                                    ("on_site_p50_min", "response.on_site_s", "p50")):  # fmt: skip
                seconds = result.get(ind, stat=stat) if result is not None else None
                row[name] = f"{seconds / 60:.1f}" if shown and seconds is not None else ""
            response.rows.append(row)
    return [outcomes, devices, response]


ALL_SCOPE = "\x00site"  # the key of the whole-site result in `results` (never a unit name: units match [A-Za-z0-9_.-])


async def collect(
    conn: asyncpg.Connection,
    sites: Iterable[str],
    period: Period,
    accept_policy_s: float,
    tiers: dict[str, int] | None = None,
) -> dict[tuple[str, str], dict[str, Result]]:
    """Indicators per (site, month) and unit, plus the whole site under ALL_SCOPE."""
    out: dict[tuple[str, str], dict[str, Result]] = {}
    for site in sites:
        unit_names = await units(conn, site)
        for part in period.split("month"):
            by_unit = {
                u: await compute(conn, Scope(site, u), part, accept_policy_s=accept_policy_s, last_tiers=tiers)
                for u in unit_names
            }
            site_result = await compute(conn, Scope(site), part, accept_policy_s=accept_policy_s, last_tiers=tiers)
            out[(site, part.label)] = {**by_unit, ALL_SCOPE: site_result}
    return out


@dataclass(frozen=True, slots=True)
class Publication:
    """Who publishes the package, where and for which place: what DCAT-AP-SE and the national portal ask for."""

    publisher: str
    publisher_uri: str
    contact_email: str
    municipality_code: str
    base_url: str
    publisher_type: str = "http://purl.org/adms/publishertype/LocalAuthority"
    spatial_uri: str = ""

    @classmethod
    def from_settings(cls, followup: FollowupSettings, **overrides: str | None) -> Publication:
        """The settings' values, each replaced by a command-line value given."""
        values = {f: getattr(followup, f) for f in ("publisher", "publisher_uri", "contact_email",
                                                      "municipality_code", "base_url", "publisher_type",
                                                      "spatial_uri")}  # fmt: skip
        values.update({k: v for k, v in overrides.items() if v})
        return cls(**values)

    def problems(self) -> list[str]:
        """What the portal's harvester would refuse, in words (empty: fine)."""
        out = []
        if not self.publisher:
            out.append("the publisher's name (--publisher or followup.publisher)")
        if not self.publisher_uri.startswith(("http://", "https://")):
            out.append("the publisher's URI as http(s)://… (--publisher-uri or followup.publisher_uri)")
        if "@" not in self.contact_email:
            out.append("a contact e-mail address (--contact-email or followup.contact_email)")
        if not (len(self.municipality_code) == 4 and self.municipality_code.isdigit()):
            out.append("the municipality's four-digit code (--municipality-code or followup.municipality_code)")
        if not self.base_url.startswith(("http://", "https://")):
            out.append("the address the package is published at, http(s)://… (--base-url or followup.base_url)")
        return out

    def url(self, name: str) -> str:
        """An absolute URL under the base URL."""
        return f"{self.base_url.rstrip('/')}/{name}"


def period_text(period: Period, partial_until: date | None) -> tuple[str, str]:
    """The period as a title names it, in Swedish and English; a partial period says up to which day."""
    if partial_until is None:
        return period.label, period.label
    day = partial_until.isoformat()
    return f"{period.label} (preliminär, t.o.m. {day})", f"{period.label} (preliminary, up to {day})"


def write_package(
    tables: list[Table],
    out: Path,
    period: Period,
    sites: list[str],
    publication: Publication,
    threshold: int,
    now: datetime,
    *,
    min_answered: int = 5,
    partial_until: date | None = None,
) -> None:
    """Write the CSV files, `datapackage.json` and `dcat-ap-se.jsonld` into `out`.

    `partial_until` (the last day with data) marks a period not yet over: every title says so."""
    out.mkdir(parents=True, exist_ok=True)
    missing = ["", f"<{threshold}", SECONDARY]
    sv_period, en_period = period_text(period, partial_until)
    last_day = partial_until or (period.end - timedelta(days=1))
    resources = []
    for table in tables:
        path = out / f"{table.name}.csv"
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[fd["name"] for fd in table.fields], lineterminator="\n")
            writer.writeheader()
            writer.writerows(table.rows)
        sv_title, en_title = _TITLES[table.name].split(" / ", 1)
        resources.append({
            "name": table.name, "path": path.name, "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
            "title": f"{sv_title}, {sv_period} / {en_title}, {en_period}", "description": _DESCRIPTIONS[table.name],
            "schema": {"fields": table.fields, "missingValues": missing,
                       "primaryKey": [fd["name"] for fd in table.fields
                                      if fd["type"] in ("string", "yearmonth")]},
        })  # fmt: skip
    package = {
        "name": f"vaka-valfardsteknik-{period.label.lower()}" + ("-preliminar" if partial_until else ""),
        "title": f"Välfärdsteknik i äldreomsorgen, {sv_period} / Welfare technology in elderly care, {en_period}",
        "description": (
            f"Användning av välfärdsteknik, larm och svarstider per avdelning och månad, {sv_period}. Antal under "
            f"{threshold} visas som '<{threshold}', och celler som döljs för att skydda dem som '..'. Svarstider "
            f"visas bara där minst {min_answered} larm besvarats. / "
            f"Use of welfare technology, alarms and response times per care unit and month, {en_period}. Counts "
            f"below {threshold} are shown as '<{threshold}', and cells hidden to protect them as '..'. Response "
            f"times are shown only where at least {min_answered} alarms were answered."
        ),
        "licenses": [LICENSE],
        "created": now.replace(microsecond=0).isoformat(),
        "keywords": ["välfärdsteknik", "äldreomsorg", "trygghetslarm", "welfare technology", "elderly care"],
        # both days included
        "temporal": {"start": period.start.isoformat(), "end": last_day.isoformat()},
        "partial": partial_until is not None,
        # how often a package like this one is published: a month's monthly, a quarter's quarterly, a year's yearly
        "frequency": "QUARTERLY" if "-Q" in period.label else "MONTHLY" if len(period.label) == 7 else "ANNUAL",
        "sites": sites,
        "resources": resources,
    }
    (out / "datapackage.json").write_text(json.dumps(package, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "dcat-ap-se.jsonld").write_text(
        json.dumps(_dcat(package, publication, now), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


_TITLES = {
    "alarm_outcomes": "Larm efter resultat / Alarms by outcome",
    "devices": "Installerad och använd välfärdsteknik / Welfare technology installed and in use",
    "response_times": "Svarstider för trygghetslarm / Response times to care alarms",
}
_DESCRIPTIONS = {
    "alarm_outcomes": "Antal larm per avdelning, månad och resultat. / Alarms per care unit, month and outcome.",
    "devices": "Enheter per typ: installerade, som rapporterat, i aktiv användning. / Devices per class: installed, reported, in active use.",
    "response_times": "Tid från larm tills någon tog det och till på plats, i minuter. / Time from alarm to accept and to on site, in minutes.",
}


_EU = "http://publications.europa.eu/resource/authority"


def _concept(iri: str, kind: str = "skos:Concept", **labels: str) -> dict[str, Any]:
    """A controlled-vocabulary term with its class (and, for a concept, its labels as the vocabulary gives them)."""
    out: dict[str, Any] = {"@id": iri, "@type": kind}
    if labels:
        out["skos:prefLabel"] = [{"@language": lang, "@value": text} for lang, text in labels.items()]
    return out


# labels as the EU vocabularies (data-theme, planned-availability) and ADMS give them
_THEMES = {
    "HEAL": {"sv": "Hälsa", "en": "Health"},
    "SOCI": {"sv": "Befolkning och samhälle", "en": "Population and society"},
}
_PUBLISHER_TYPES = {"http://purl.org/adms/publishertype/LocalAuthority": "Local Authority"}


def _dcat(package: dict[str, Any], pub: Publication, now: datetime) -> dict[str, Any]:
    """DCAT-AP-SE (2.x, on DCAT-AP 2.1.1) metadata as JSON-LD: a catalog holding the dataset and its distributions,
    titles and descriptions in Swedish and English, every URL absolute."""
    sv_title, en_title = package["title"].split(" / ", 1)
    sv_desc, en_desc = package["description"].split(" / ", 1)
    issued = {"@type": "xsd:dateTime", "@value": now.replace(microsecond=0).isoformat()}
    publisher = {
        "@id": pub.publisher_uri,
        "@type": "foaf:Agent",
        "foaf:name": pub.publisher,
        "dct:type": _concept(pub.publisher_type, en=_PUBLISHER_TYPES.get(pub.publisher_type, pub.publisher_type)),
    }
    spatial: dict[str, Any] = {"@type": "dct:Location", "dct:identifier": pub.municipality_code,
                               "skos:prefLabel": {"@language": "sv", "@value": pub.publisher}}  # fmt: skip
    if pub.spatial_uri:
        spatial["@id"] = pub.spatial_uri
    languages = [_concept(f"{_EU}/language/SWE", "dct:LinguisticSystem"),
                 _concept(f"{_EU}/language/ENG", "dct:LinguisticSystem")]  # fmt: skip
    licence = _concept(LICENSE["path"], "dct:LicenseDocument")
    licence["dct:type"] = _concept("http://purl.org/adms/licencetype/PublicDomain", en="Public domain")
    dataset_id = pub.url(package["name"])
    dataset = {
        "@id": dataset_id,
        "@type": "dcat:Dataset",
        "dct:identifier": dataset_id,
        "dct:title": [{"@language": "sv", "@value": sv_title}, {"@language": "en", "@value": en_title}],
        "dct:description": [{"@language": "sv", "@value": sv_desc}, {"@language": "en", "@value": en_desc}],
        "dct:publisher": publisher,
        "dcat:contactPoint": {
            "@type": ["vcard:Kind", "vcard:Organization"],
            "vcard:fn": pub.publisher,
            "vcard:hasEmail": {"@id": f"mailto:{pub.contact_email}"},
        },
        "dcat:theme": [_concept(f"{_EU}/data-theme/{code}", **labels) for code, labels in _THEMES.items()],
        "dcat:keyword": [{"@language": "sv" if i < 3 else "en", "@value": k} for i, k in enumerate(package["keywords"])],
        "dct:language": languages,
        "dct:spatial": spatial,
        "dct:issued": issued,
        "dct:temporal": {"@type": "dct:PeriodOfTime",
                         "dcat:startDate": {"@type": "xsd:date", "@value": package["temporal"]["start"]},
                         "dcat:endDate": {"@type": "xsd:date", "@value": package["temporal"]["end"]}},
        "dct:accrualPeriodicity": _concept(f"{_EU}/frequency/{package['frequency']}", "dct:Frequency"),
        "dct:accessRights": _concept(f"{_EU}/access-right/PUBLIC", "dct:RightsStatement"),
        "dcat:distribution": [
            {"@id": pub.url(r["path"]), "@type": "dcat:Distribution",
             "dct:title": [{"@language": "sv", "@value": r["title"].split(" / ", 1)[0]},
                           {"@language": "en", "@value": r["title"].split(" / ", 1)[1]}],
             "dct:description": [{"@language": "sv", "@value": r["description"].split(" / ", 1)[0]},
                                 {"@language": "en", "@value": r["description"].split(" / ", 1)[1]}],
             "dcat:accessURL": {"@id": pub.url(r["path"])}, "dcat:downloadURL": {"@id": pub.url(r["path"])},
             "dcat:mediaType": _concept("https://www.iana.org/assignments/media-types/text/csv", "dct:MediaType"),
             "dct:format": _concept(f"{_EU}/file-type/CSV", "dct:MediaTypeOrExtent"),
             "dct:license": licence,
             "dcatap:availability": _concept(f"{_EU}/planned-availability/STABLE", sv="stabil", en="stable"),
             "dct:conformsTo": _concept("https://specs.frictionlessdata.io/table-schema/", "dct:Standard")}
            for r in package["resources"]
        ],
    }  # fmt: skip
    catalog = {
        "@id": pub.url("catalog"),
        "@type": "dcat:Catalog",
        "dct:title": [{"@language": "sv", "@value": f"Öppna data om välfärdsteknik: {pub.publisher}"},
                      {"@language": "en", "@value": f"Open data on welfare technology: {pub.publisher}"}],
        "dct:description": [
            {"@language": "sv", "@value": "Uppföljning av välfärdsteknik i äldreomsorgen, per kvartal och månad."},
            {"@language": "en", "@value": "Follow-up of welfare technology in elderly care, by quarter and month."},
        ],
        "dct:publisher": publisher,
        "dct:language": languages,
        "dct:license": licence,
        "dct:spatial": spatial,
        "dct:issued": issued,
        "dct:modified": issued,
        "foaf:homepage": _concept(pub.base_url, "foaf:Document"),
        "dcat:themeTaxonomy": {"@id": f"{_EU}/data-theme", "@type": "skos:ConceptScheme",
                               "dct:title": {"@language": "en", "@value": "Data theme"}},
        "dcat:dataset": dataset,
    }  # fmt: skip
    return {
        "@context": {
            "dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/", "vcard": "http://www.w3.org/2006/vcard/ns#",
            "xsd": "http://www.w3.org/2001/XMLSchema#", "skos": "http://www.w3.org/2004/02/skos/core#",
            "dcatap": "http://data.europa.eu/r5r/",
        },
        "@graph": [catalog],
    }  # fmt: skip


async def export_main(args: argparse.Namespace, settings: Settings, now: datetime) -> int:
    """`vaka opendata export --period P --out DIR [--allow-partial]`."""
    from hub.store.db import VakaConnection
    from hub.store.oneshot import with_database as _with_database

    try:
        period = parse_period(args.period)
    except PeriodError as exc:
        print(f"vaka opendata export: {exc}", file=sys.stderr)
        return 2
    partial_until = None
    if not closed(period, now):
        today = now.astimezone(ZoneInfo(rollup.ZONE)).date()
        if not args.allow_partial:
            print(f"vaka opendata export: {period.label} is not over until {period.end.isoformat()}: open data is "
                  "published for closed periods only (two exports of an unfinished period on different days could "
                  "be subtracted). Use --allow-partial to publish it marked as preliminary.", file=sys.stderr)  # fmt: skip
            return 2
        if today <= period.start:
            print(f"vaka opendata export: {period.label} has not begun", file=sys.stderr)
            return 2
        partial_until = today - timedelta(days=1)
    publication = Publication.from_settings(
        settings.followup, publisher=args.publisher, publisher_uri=args.publisher_uri,
        contact_email=args.contact_email, municipality_code=args.municipality_code, base_url=args.base_url,
    )  # fmt: skip
    problems = publication.problems()
    if problems:
        print("vaka opendata export: the national portal needs " + "; ".join(problems), file=sys.stderr)
        return 2
    threshold = settings.followup.suppress_below

    async def work(conn: VakaConnection) -> tuple[list[str], dict[tuple[str, str], dict[str, Result]]]:
        await rollup.refresh(conn, now)
        sites = args.site or [r["id"] for r in await conn.fetch("SELECT id FROM sites ORDER BY id")]
        return sites, await collect(conn, sites, period, settings.followup.accept_policy_s, last_tiers(settings.desk))

    got = await _with_database(settings, "opendata export", work)
    if got is None:
        return 2
    sites, results = got
    min_answered = settings.followup.percentile_min_answered
    tables = build_tables(results, threshold, min_answered)
    write_package(tables, args.out, period, sites, publication, threshold, now, min_answered=min_answered,
                  partial_until=partial_until)  # fmt: skip
    print(f"open data for {period.label}{' (preliminary)' if partial_until else ''} ({len(sites)} site(s)) "
          f"written to {args.out}: " + ", ".join(f"{t.name}.csv ({len(t.rows)} rows)" for t in tables))  # fmt: skip
    return 0
