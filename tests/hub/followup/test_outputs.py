"""The report, the open-data package and the archive package, written from the known month."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import pytest

from hub.followup import archive, opendata, report
from hub.followup.indicators import Scope, month, quarter
from hub.store import rollup
from tests.hub.followup.conftest import PERSONAL, SITE

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)
PUBLICATION = opendata.Publication(
    publisher="Exempelkommun",
    publisher_uri="https://www.exempel.se",
    contact_email="oppnadata@exempel.se",
    municipality_code="0999",
    base_url="https://data.exempel.se/valfardsteknik/2026-Q4",
)


def _no_personal_data(path: Path) -> None:
    for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
        text = file.read_bytes().decode("utf-8", errors="replace")
        found = [p for p in PERSONAL if p in text]
        assert not found, f"{file.name} names {found}"


async def test_report_in_every_format_without_personal_data(known_month: asyncpg.Connection, tmp_path: Path) -> None:
    await rollup.refresh(known_month, NOW)
    built = await report.build(known_month, Scope(SITE), month("2026-11"), NOW)
    for fmt in ("json", "html", "pdf"):
        for lang in ("sv", "en"):
            out = tmp_path / f"r-{lang}.{fmt}"
            report.write(built, fmt, lang, out)  # type: ignore[arg-type]
            _no_personal_data(out)
    data = json.loads((tmp_path / "r-sv.json").read_text())
    assert data["period"]["label"] == "2026-11"
    assert data["previous_period"]["label"] == "2026-10"
    # the October alarm a6 (23:30 local on 31 October) is the previous month's
    fall = next(v for v in data["values"] if v["indicator"] == "alarms.count" and v["dims"]["rule"] == "fall")
    assert (fall["value"], fall["previous"]) == (2, 1)
    # the night of the 9th holds the fall at 04:00 local on the 10th
    nights = {n["night"]: n["alarms"] for n in data["charts"]["care_alarms_per_night"]}
    assert (nights["2026-11-09"], nights["2026-11-10"]) == (1, 0)
    html = (tmp_path / "r-sv.html").read_text()
    assert html.count("<svg") == 3
    assert "Installerade enheter" in html
    assert "5,5 min" in html  # the median time to accept, 330 s, in Swedish
    assert (tmp_path / "r-en.pdf").read_bytes().startswith(b"%PDF")


def test_report_command_help_and_bad_month(capsys: pytest.CaptureFixture[str]) -> None:
    from hub.cli import main

    assert main(["report", "--site", "x", "--month", "2026-13", "--format", "json"]) == 2
    assert "YYYY-MM" in capsys.readouterr().err


async def test_opendata_package_validates_and_hides_small_counts(
    known_month: asyncpg.Connection, tmp_path: Path
) -> None:
    await rollup.refresh(known_month, NOW)
    period = quarter("2026-Q4")
    results = await opendata.collect(known_month, [SITE], period, 300)
    tables = opendata.build_tables(results, 5)
    out = tmp_path / "open"
    opendata.write_package(tables, out, period, [SITE], PUBLICATION, 5, NOW)
    _no_personal_data(out)
    # in this small month every published count is at least 5; the rest reads '<5' or '..'
    cells = [r["alarms"] for r in tables[0].rows if r["month"] == "2026-11"]
    cells += [r[m] for r in tables[1].rows if r["month"] == "2026-11" for m in opendata.DEVICE_MEASURES]
    assert "<5" in cells
    shown = set(cells) - {"<5", ".."}
    assert shown
    assert all(int(v) >= 5 for v in shown)
    proc = subprocess.run(  # noqa: ASYNC221  (the validator's own CLI, once, after all the awaiting)
        [str(Path(sys.executable).parent / "frictionless"), "validate", str(out / "datapackage.json")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dataset = json.loads((out / "dcat-ap-se.jsonld").read_text())["@graph"][0]["dcat:dataset"]
    assert {t["@language"] for t in dataset["dct:title"]} == {"sv", "en"}
    assert len(dataset["dcat:distribution"]) == 3


def test_opendata_publishes_large_counts_and_protects_a_small_one() -> None:
    from hub.followup.indicators import Result

    period = month("2026-11")

    def unit_result(assisted: int, false_alarm: int) -> Result:
        r = Result(Scope(SITE), period)
        r.add("alarms.outcome", assisted, category="care", outcome="assisted")
        r.add("alarms.outcome", false_alarm, category="care", outcome="false_alarm")
        return r

    results = {
        (SITE, "2026-11"): {"A": unit_result(30, 2), "B": unit_result(25, 9), opendata.ALL_SCOPE: unit_result(55, 11)}
    }
    rows = {(r["unit"], r["outcome"]): r["alarms"] for r in opendata.build_tables(results, 5)[0].rows
            if r["category"] == "care"}  # fmt: skip
    assert rows[("A", "false_alarm")] == "<5"
    assert rows[("alla", "alla")] == "66"
    # A's row total and the false-alarm column total would give the 2 away: each line hides a second cell
    a_row = [rows[("A", o)] for o in (*opendata.OUTCOMES, "alla")]
    false_col = [rows[(u, "false_alarm")] for u in ("A", "B", "alla")]
    assert a_row.count("<5") + a_row.count("..") >= 2
    assert false_col.count("<5") + false_col.count("..") >= 2


async def test_archive_package_verifies_reexports_identically_and_purges(
    known_month: asyncpg.Connection, tmp_path: Path
) -> None:
    made = datetime(2026, 12, 7, 10, tzinfo=UTC)
    root, counts = await archive.export(known_month, date(2026, 12, 1), tmp_path / "a", created=made)
    # a5 is open at the cut-off: neither it nor its one log row is in this package
    assert counts == {"alarms": 7, "alarm_log": 19, "escalations": 7, "access_log": 2, "checkin_log": 0}
    assert archive.verify(root) == []
    again, _ = await archive.export(known_month, date(2026, 12, 1), tmp_path / "b", created=made)
    first = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first == second
    # a changed file is caught, and then nothing is purged
    data = root / "representations/rep1/data/alarm_log.csv"
    data.write_bytes(data.read_bytes().replace(b"staff:1", b"staff:9"))
    assert any("alarm_log.csv: SHA-256" in p for p in archive.verify(root))
    with pytest.raises(archive.ArchiveError, match="does not verify"):
        await archive.purge(known_month, root, date(2026, 12, 1), 30, datetime(2027, 6, 1, tzinfo=UTC))
    assert await known_month.fetchval("SELECT count(*) FROM desk_alarm_log") == 20
    # the intact package: rows past retention go, in one transaction, and the append-only trigger is back after
    await known_month.execute(
        "INSERT INTO archive_exports (package_id, before, mets_sha256, rows_exported) VALUES ($1, '2026-12-01', '', '{}')",
        again.name,
    )
    purged = await archive.purge(known_month, again, date(2026, 12, 1), 30, datetime(2027, 6, 1, tzinfo=UTC))
    assert purged == {"access_log": 2, "alarm_log": 19, "alarms": 7}
    await known_month.execute(
        "INSERT INTO desk_alarm_log (alarm_id, at, actor, action, state) VALUES ('a5', now(), 'rule', 'updated', 'raised')"
    )
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await known_month.execute("DELETE FROM desk_alarm_log")
    # the open alarm a5 stays, the records within retention are kept
    assert await known_month.fetchval("SELECT count(*) FROM desk_alarms WHERE closed_at IS NULL") == 1
