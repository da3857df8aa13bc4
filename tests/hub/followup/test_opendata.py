"""The open-data package as the national portal reads it: DCAT-AP SHACL shapes, closed periods only, and response
times only where enough alarms were answered."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pyshacl
import pytest
from rdflib import Graph, URIRef

from hub.followup import opendata
from hub.followup.indicators import Result, Scope, last_tiers, month, quarter
from hub.settings import DeskSettings
from hub.store import rollup
from tests.hub.followup.conftest import SITE
from tests.hub.followup.test_outputs import PUBLICATION

NOW = datetime(2027, 1, 2, 12, tzinfo=UTC)
SHAPES = Path(__file__).parent / "shapes"  # DCAT-AP 2.1.1 (SEMICeu/DCAT-AP releases/2.1.1), see shapes/README.md


async def _package(conn: asyncpg.Connection, out: Path) -> dict:  # type: ignore[type-arg]
    await rollup.refresh(conn, NOW)
    period = quarter("2026-Q4")
    results = await opendata.collect(conn, [SITE], period, 300, last_tiers(DeskSettings()))
    opendata.write_package(opendata.build_tables(results, 5), out, period, [SITE], PUBLICATION, 5, NOW)
    return json.loads((out / "dcat-ap-se.jsonld").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _shapes() -> Graph:
    shapes = Graph()
    for name in ("dcat-ap_2.1.1_shacl_shapes.ttl", "dcat-ap_2.1.1_shacl_shapes_recommended.ttl",
                 "dcat-ap_2.1.1_shacl_range.ttl"):  # fmt: skip
        shapes.parse(SHAPES / name, format="turtle")
    return shapes


async def test_the_dcat_metadata_passes_the_dcat_ap_shapes(known_month: asyncpg.Connection, tmp_path: Path) -> None:
    await _package(known_month, tmp_path)
    data = Graph().parse(tmp_path / "dcat-ap-se.jsonld", format="json-ld")
    conforms, results, report = pyshacl.validate(data, shacl_graph=_shapes(), inference="none", allow_warnings=True)
    assert conforms, report
    # what is left are warnings on the place: a bounding box or centre point for the municipality, which the shapes
    # recommend and the package does not give (a municipality's code is what the Swedish portal asks for)
    sh = "http://www.w3.org/ns/shacl#"
    warned = {str(p) for p in results.objects(None, URIRef(f"{sh}resultPath"))}
    assert warned <= {"http://www.w3.org/ns/dcat#bbox", "http://www.w3.org/ns/dcat#centroid"}, report
    # and the shapes do catch a dataset without what the portal needs
    broken = json.loads((tmp_path / "dcat-ap-se.jsonld").read_text())
    del broken["@graph"][0]["dct:publisher"]
    del broken["@graph"][0]["dcat:dataset"]["dct:description"]
    bad = Graph().parse(data=json.dumps(broken), format="json-ld")
    conforms, _, report = pyshacl.validate(bad, shacl_graph=_shapes(), inference="none")
    assert not conforms
    assert "publisher" in report
    assert "description" in report


async def test_what_the_swedish_portal_asks_for(known_month: asyncpg.Connection, tmp_path: Path) -> None:
    dcat = await _package(known_month, tmp_path)
    catalog = dcat["@graph"][0]
    assert catalog["@type"] == "dcat:Catalog"
    dataset = catalog["dcat:dataset"]
    assert dataset["dcat:contactPoint"]["vcard:hasEmail"] == {"@id": "mailto:oppnadata@exempel.se"}
    assert dataset["dct:publisher"]["@id"] == "https://www.exempel.se"
    assert dataset["dct:publisher"]["dct:type"]["@id"] == "http://purl.org/adms/publishertype/LocalAuthority"
    assert dataset["@id"].startswith("https://data.exempel.se/")
    for dist in dataset["dcat:distribution"]:
        assert dist["dcat:accessURL"]["@id"].startswith("https://data.exempel.se/valfardsteknik/2026-Q4/")
        assert all("2026-Q4" in t["@value"] for t in dist["dct:title"])
    assert all("2026-Q4" in t["@value"] for t in dataset["dct:title"])
    assert dataset["dct:spatial"]["dct:identifier"] == "0999"
    assert {lang["@id"].rsplit("/", 1)[1] for lang in dataset["dct:language"]} == {"SWE", "ENG"}
    assert dataset["dct:accrualPeriodicity"]["@id"].endswith("/frequency/QUARTERLY")
    # the quarter's last day, included
    assert dataset["dct:temporal"]["dcat:endDate"]["@value"] == "2026-12-31"


def test_a_percentile_needs_enough_answered_alarms_and_the_unanswered_stand_beside_it() -> None:
    period = month("2026-11")

    def unit(answered: int, unanswered: int, p50_s: float) -> Result:
        r = Result(Scope(SITE), period)
        r.add("response.care_alarms_answered", answered, rule="fall", status="answered")
        r.add("response.care_alarms_answered", unanswered, rule="fall", status="unanswered")
        r.add("response.care_alarms_answered", 5, rule="fall", status="withdrawn")
        r.add("response.accept_s", p50_s, stat="p50")
        return r

    # A: 42 care alarms but only 7 answered; B: 12 answered. With k = 10 only B's times are published (the gate
    # counted all alarms before: A's 42 let a median of 7 answered alarms through)
    results = {(SITE, "2026-11"): {"A": unit(7, 30, 120), "B": unit(12, 8, 300), opendata.ALL_SCOPE: unit(19, 38, 240)}}
    rows = {r["unit"]: r for r in opendata.build_tables(results, 5, 10)[2].rows}
    assert (rows["A"]["accept_p50_min"], rows["A"]["answered"], rows["A"]["unanswered"]) == ("", "7", "30")
    assert (rows["B"]["accept_p50_min"], rows["B"]["answered"], rows["B"]["unanswered"]) == ("5.0", "12", "8")
    assert (rows["alla"]["accept_p50_min"], rows["alla"]["care_alarms"]) == ("4.0", "67")
    # the reviewer's month: 3 answered of 36 gives no median whatever the threshold
    few = {(SITE, "2026-11"): {"A": unit(3, 33, 120), opendata.ALL_SCOPE: unit(3, 33, 120)}}
    assert {r["accept_p50_min"] for r in opendata.build_tables(few, 2, 5)[2].rows} == {""}


def test_the_current_month_is_refused_and_a_partial_one_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hub.cli import main

    today = datetime.now(UTC)
    current = f"{today:%Y-%m}"
    assert main(["opendata", "export", "--period", current, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "closed periods only" in err
    assert "--allow-partial" in err
    assert not (tmp_path / "x").exists()
    assert opendata.closed(month("2026-11"), datetime(2026, 12, 1, 0, 30, tzinfo=UTC))  # 01:30 local on 1 Dec
    assert not opendata.closed(month("2026-11"), datetime(2026, 11, 30, 22, 30, tzinfo=UTC))  # 23:30 local


async def test_a_partial_period_is_marked_in_every_title(known_month: asyncpg.Connection, tmp_path: Path) -> None:
    from datetime import date

    await rollup.refresh(known_month, NOW)
    period = quarter("2026-Q4")
    results = await opendata.collect(known_month, [SITE], period, 300)
    opendata.write_package(opendata.build_tables(results, 5), tmp_path, period, [SITE], PUBLICATION, 5, NOW,
                           partial_until=date(2026, 11, 30))  # fmt: skip
    dataset = json.loads((tmp_path / "dcat-ap-se.jsonld").read_text())["@graph"][0]["dcat:dataset"]
    titles = [t["@value"] for t in dataset["dct:title"]]
    titles += [t["@value"] for d in dataset["dcat:distribution"] for t in d["dct:title"]]
    assert all("preliminär" in t or "preliminary" in t for t in titles)
    assert dataset["dct:temporal"]["dcat:endDate"]["@value"] == "2026-11-30"
    assert json.loads((tmp_path / "datapackage.json").read_text())["partial"] is True


def test_missing_portal_metadata_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hub.cli import main

    assert main(["opendata", "export", "--period", "2025-Q4", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "contact e-mail" in err
    assert "--base-url" in err
    assert "four-digit code" in err
