"""The archive package checked as the archivist checks it: the METS schema (1.12.1), the E-ARK CSIP 2.1.0 rules,
FGS agents, and content that holds together (every logged alarm has its row; packages do not overlap)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import pytest
from lxml import etree, isoschematron

from hub.followup import archive
from tests.hub.followup.conftest import PERSONAL

SCHEMAS = Path(__file__).parent / "schemas"
CREATED = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
AGENTS = archive.Agents(
    archive_creator="Exempelkommun, vård- och omsorgsnämnden",
    archive_creator_id="212000-0000",
    owner="Exempelkommun",
    submitter="Exempelkommun, vård- och omsorgsförvaltningen",
    submission_agreement="LÖ 2026:1",
)
VOCABULARIES = {
    "@TYPE": "CSIPVocabularyContentCategory.xml",
    "@csip:CONTENTINFORMATIONTYPE": "CSIPVocabularyContentInformationType.xml",
    "@csip:OAISPACKAGETYPE": "CSIPVocabularyOAISPackageType.xml",
    "@STATUS": "CSIPVocabularyStatus.xml",
}


def _mets_schema() -> etree.XMLSchema:
    doc = etree.parse(str(SCHEMAS / "mets-1.12.1.xsd"))
    for imp in doc.getroot().iter("{http://www.w3.org/2001/XMLSchema}import"):
        imp.set("schemaLocation", (SCHEMAS / "xlink.xsd").as_uri())
    return etree.XMLSchema(doc)


def _csip_rules() -> list[tuple[str, isoschematron.Schematron]]:
    vocabs = SCHEMAS / "csip-2.1.0" / "vocabs"
    tests = {}
    for attribute, name in VOCABULARIES.items():
        terms = [t.text for t in etree.parse(str(vocabs / name)).iter() if etree.QName(t).localname == "Term"]
        tests[f"{attribute}_vocabulary_test"] = " or ".join(f"({attribute} = '{t}')" for t in terms)
    iana = (vocabs / "IANA.txt").read_text(encoding="utf-8").split()
    tests["@MIMETYPE_IANA_test"] = " or ".join(f"(@MIMETYPE = '{m}')" for m in iana)
    out = []
    for path in sorted((SCHEMAS / "csip-2.1.0").glob("*.xml")):
        text = path.read_text(encoding="utf-8")
        for placeholder, test in tests.items():
            text = text.replace(placeholder, test)
        out.append((path.name, isoschematron.Schematron(etree.XML(text.encode()), store_report=True)))
    return out


def _failed(rules: list[tuple[str, isoschematron.Schematron]], doc: etree._ElementTree) -> list[str]:
    """The CSIP rules with role ERROR that the document fails, as 'id: text'."""
    failed = []
    for _, rule in rules:
        if rule.validate(doc):
            continue
        for fa in rule.validation_report.iter("{http://purl.oclc.org/dsdl/svrl}failed-assert"):
            if fa.get("role") == "ERROR":
                failed.append(f"{fa.get('id')}: {''.join(fa.itertext()).strip()[:120]}")
    return failed


async def _export(conn: asyncpg.Connection, out: Path, **kw: object) -> tuple[Path, dict[str, int]]:
    return await archive.export(conn, date(2026, 12, 1), out, agents=AGENTS, created=CREATED, **kw)  # type: ignore[arg-type]


async def test_the_package_is_valid_mets_and_follows_the_csip_rules(
    known_month: asyncpg.Connection, tmp_path: Path
) -> None:
    root, _ = await _export(known_month, tmp_path)
    schema = _mets_schema()
    for mets in (root / "METS.xml", root / "representations/rep1/METS.xml"):
        doc = etree.parse(str(mets))
        assert schema.validate(doc), f"{mets.relative_to(root)}: {schema.error_log}"
    # the package METS against every CSIP rule of role ERROR
    rules = _csip_rules()
    assert _failed(rules, etree.parse(str(root / "METS.xml"))) == []
    # the representation's METS against every one that is not about the package's own divisions (documentation,
    # schemas, representations, metadata: the package METS has them)
    package_only = {"CSIP60", "CSIP113", "CSIP114", "CSIP88", "CSIP90", "CSIP95", "CSIP99", "CSIP103"}
    rep = _failed(rules, etree.parse(str(root / "representations/rep1/METS.xml")))
    assert [f for f in rep if f.split(":")[0] not in package_only] == []
    assert archive.verify(root) == []
    for path in (root / "metadata/preservation/premis.xml", root / "metadata/descriptive/dc.xml"):
        etree.parse(str(path))  # well-formed
    _no_personal_data_outside_the_data(root)


def test_the_rules_catch_what_the_reviewer_found(tmp_path: Path) -> None:
    # the manifest the hub wrote before: mdRef TYPE="simple", no CREATED, divs without IDs, non-CSIP labels
    old = b"""<?xml version='1.0' encoding='utf-8'?>
<mets:mets xmlns:mets="http://www.loc.gov/METS/" xmlns:xlink="http://www.w3.org/1999/xlink"
  xmlns:csip="https://DILCIS.eu/XML/METS/CSIPExtensionMETS" OBJID="p" LABEL="x" TYPE="OTHER"
  csip:OTHERTYPE="Vaka logs" PROFILE="https://earkcsip.dilcis.eu/profile/E-ARK-CSIP.xml">
  <mets:metsHdr CREATEDATE="2026-12-01T00:00:00+00:00" RECORDSTATUS="NEW" csip:OAISPACKAGETYPE="SIP">
    <mets:agent ROLE="CREATOR" TYPE="OTHER" OTHERTYPE="SOFTWARE"><mets:name>Vaka</mets:name></mets:agent>
  </mets:metsHdr>
  <mets:dmdSec ID="dmd-dc" CREATED="2026-12-01T00:00:00+00:00" STATUS="CURRENT">
    <mets:mdRef LOCTYPE="URL" MDTYPE="DC" TYPE="simple" MIMETYPE="text/xml" SIZE="1" CHECKSUM="0"
      CHECKSUMTYPE="SHA-256" xlink:href="metadata/descriptive/dc.xml"/>
  </mets:dmdSec>
  <mets:fileSec ID="filesec"><mets:fileGrp ID="grp-data" USE="Representations/rep1/Data"/></mets:fileSec>
  <mets:structMap TYPE="PHYSICAL" LABEL="CSIP"><mets:div ID="struct-root" LABEL="p">
    <mets:div LABEL="Metadata" DMDID="dmd-dc"/></mets:div></mets:structMap>
</mets:mets>"""
    doc = etree.parse(io.BytesIO(old))
    assert not _mets_schema().validate(doc)
    failed = {f.split(":")[0] for f in _failed(_csip_rules(), doc)}
    assert {"CSIP15", "CSIP28", "CSIP23", "CSIP89", "CSIP60"} <= failed


async def test_fgs_agents_and_the_package_time(known_month: asyncpg.Connection, tmp_path: Path) -> None:
    root, _ = await _export(known_month, tmp_path)
    ns = {"mets": archive.METS, "csip": archive.CSIP, "dc": archive.DC}
    mets = etree.parse(str(root / "METS.xml"))
    hdr = mets.find("mets:metsHdr", ns)
    assert hdr is not None
    assert hdr.get("CREATEDATE") == CREATED.isoformat()  # the time the package was made, not the cut-off
    agents = {
        (a.get("ROLE"), a.get("OTHERROLE")): a.findtext("mets:name", namespaces=ns)
        for a in hdr.iterfind("mets:agent", ns)
    }
    assert agents[("ARCHIVIST", None)] == AGENTS.archive_creator
    assert agents[("IPOWNER", None)] == AGENTS.owner
    assert agents[("OTHER", "SUBMITTER")] == AGENTS.submitter
    assert hdr.findtext("mets:altRecordID[@TYPE='SUBMISSIONAGREEMENT']", namespaces=ns) == "LÖ 2026:1"
    software = hdr.find("mets:agent[@OTHERTYPE='SOFTWARE']", ns)
    assert software is not None
    assert software.find("mets:note", ns).get(f"{{{archive.CSIP}}}NOTETYPE") == "SOFTWARE VERSION"  # type: ignore[union-attr]
    dc = etree.parse(str(root / "metadata/descriptive/dc.xml"))
    assert dc.findtext("dc:creator", namespaces=ns) == AGENTS.archive_creator


def _rows(root: Path, name: str) -> list[dict[str, str]]:
    text = (root / f"representations/rep1/data/{name}.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


async def test_every_logged_alarm_has_its_row_and_packages_do_not_overlap(
    known_month: asyncpg.Connection, tmp_path: Path
) -> None:
    # a5 is still open at the cut-off: it and its log wait for the package in which it is closed
    first, counts = await _export(known_month, tmp_path / "1", after=None)
    alarm_ids = {r["id"] for r in _rows(first, "alarms")}
    assert {r["alarm_id"] for r in _rows(first, "alarm_log")} <= alarm_ids
    assert {r["alarm_id"] for r in _rows(first, "escalations")} <= alarm_ids
    assert "a5" not in alarm_ids
    assert counts["alarms"] == 7
    assert "1 of them" in (first / "documentation/README.txt").read_text()
    # a5 is closed in December; the next package starts where the first ended and holds only it
    await known_month.execute(
        "UPDATE desk_alarms SET state = 'resolved', closed_at = '2026-12-03T10:00Z' WHERE id = 'a5'"
    )
    await known_month.execute(
        "INSERT INTO archive_exports (package_id, after, before, mets_sha256, rows_exported) "
        "VALUES ($1, NULL, '2026-12-01', '', '{}')", first.name,
    )  # fmt: skip
    assert await archive.lower_bound(known_month, date(2027, 1, 1)) == date(2026, 12, 1)
    second, _ = await archive.export(known_month, date(2027, 1, 1), tmp_path / "2", after=date(2026, 12, 1),
                                     agents=AGENTS, created=CREATED)  # fmt: skip
    # and a7, raised at 00:30 local on 1 December
    assert [r["id"] for r in _rows(second, "alarms")] == ["a5", "a7"]
    assert {r["alarm_id"] for r in _rows(second, "alarm_log")} == {"a5"}
    assert _rows(second, "access_log") == []  # both access-log rows were in the first package
    assert second.name == "vaka-archive-2026-12-01-to-2027-01-01"
    with pytest.raises(archive.ArchiveError, match="not before"):
        await archive.export(known_month, date(2026, 12, 1), tmp_path / "3", after=date(2026, 12, 1))


async def test_the_table_schemas_are_typed(known_month: asyncpg.Connection, tmp_path: Path) -> None:
    root, _ = await _export(known_month, tmp_path)
    checkin = json.loads((root / "schemas/checkin_log.schema.json").read_text())
    assert {f["name"]: f["type"] for f in checkin["fields"]} == {
        "seq": "integer", "checkin_id": "string", "at": "datetime", "actor": "string", "action": "string",
        "detail": "string",
    }  # fmt: skip
    for path in (root / "schemas").glob("*.json"):
        assert all(f["type"] != "any" for f in json.loads(path.read_text())["fields"]), path.name


def _no_personal_data_outside_the_data(root: Path) -> None:
    # the data files are the records themselves; the metadata, documentation and schemas name no one
    for path in root.rglob("*"):
        if path.is_file() and "/data/" not in path.as_posix():
            text = path.read_text(encoding="utf-8")
            assert not [p for p in PERSONAL if p in text], path
