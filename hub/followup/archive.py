"""The archive export: alarms with their log and escalation history, the check-in log and the access log of one
period, as an archival information package in the shape of E-ARK CSIP 2.1 (and the Swedish National Archives' FGS
package structure, which follows it).

Layout: `METS.xml` (the package: header with the software, archive creator, owner and submitter agents and the
submission agreement; descriptive, preservation and file sections; structural map), `metadata/descriptive/dc.xml`
(Dublin Core), `metadata/preservation/premis.xml` (PREMIS: every data file with its fixity, the export event and the
agents), `documentation/README.txt` (what is in the package and how it is cut), `schemas/*.schema.json` (a typed
Table Schema per data file), and `representations/rep1/METS.xml` with `representations/rep1/data/*.csv`.

Cut: records from `after` (the day the previous package ended, or `--after`) to `before`, local days. An alarm
belongs to the package in which it is closed, with every row of its log and escalation history; an alarm still open at
the cut-off goes, whole, into a later package, so every alarm id in the logs has its alarm row. The access log and the
check-in log are cut by their own times.

The data files are a function of the data: exporting the same period again gives the same bytes; METS and PREMIS
also carry the time the package was made. `--purge` deletes exported rows past retention only after the package on
disk has been verified, in one transaction, and records what it deleted in `archive_exports`.

An export is a read of every resident whose data the package holds: `vaka archive export` writes one access-log row
per such resident (role `operator`, purpose `archive_export`, from `cli:<login name>`), so the resident's own
export and `vaka access-log` show it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.metadata
import io
import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

import asyncpg

from hub.model import VakaError
from hub.settings import FollowupSettings, Settings
from hub.store.access_log import record_operator_read
from hub.store.rollup import ZONE

logger = logging.getLogger(__name__)

METS = "http://www.loc.gov/METS/"
XLINK = "http://www.w3.org/1999/xlink"
CSIP = "https://DILCIS.eu/XML/METS/CSIPExtensionMETS"
DC = "http://purl.org/dc/elements/1.1/"
PREMIS = "http://www.loc.gov/premis/v3"
ET.register_namespace("mets", METS)
ET.register_namespace("xlink", XLINK)
ET.register_namespace("csip", CSIP)
ET.register_namespace("dc", DC)
ET.register_namespace("premis", PREMIS)
PROFILE = "https://earkcsip.dilcis.eu/profile/E-ARK-CSIP.xml"
REPRESENTATION = "rep1"


class ArchiveError(VakaError):
    """The package could not be written or did not verify."""


@dataclass(frozen=True, slots=True)
class Record:
    """One kind of record in the package: its file name, description, query and columns (with Table Schema types).

    The query takes the window's start ($1, an instant or NULL for no lower bound) and its end ($2)."""

    name: str
    title: str
    sql: str
    columns: tuple[tuple[str, str], ...]


# the alarms closed in the window; their log and escalations go with them, whole
_CLOSED = "SELECT id FROM desk_alarms WHERE closed_at < $2 AND ($1::timestamptz IS NULL OR closed_at >= $1)"
RECORDS = (
    Record("alarms", "Larm och resultat / Alarms and outcomes",
           "SELECT id, rule_id, category, severity, site, unit, resident_id, device_id, reason, unregistered, state, "
           "outcome, note, count, raised_at, accepted_at, accepted_by, closed_at FROM desk_alarms "
           f"WHERE id IN ({_CLOSED}) ORDER BY raised_at, id",
           (("id", "string"), ("rule_id", "string"), ("category", "string"), ("severity", "integer"),
            ("site", "string"), ("unit", "string"), ("resident_id", "string"), ("device_id", "string"),
            ("reason", "string"), ("unregistered", "boolean"), ("state", "string"), ("outcome", "string"),
            ("note", "string"), ("count", "integer"), ("raised_at", "datetime"), ("accepted_at", "datetime"),
            ("accepted_by", "string"), ("closed_at", "datetime"))),
    Record("alarm_log", "Larmlogg: varje steg / Alarm log: every step",
           "SELECT seq, alarm_id, at, actor, action, state, detail FROM desk_alarm_log "
           f"WHERE alarm_id IN ({_CLOSED}) ORDER BY seq",
           (("seq", "integer"), ("alarm_id", "string"), ("at", "datetime"), ("actor", "string"),
            ("action", "string"), ("state", "string"), ("detail", "string"))),
    Record("escalations", "Eskaleringar / Escalation history",
           "SELECT seq, alarm_id, at, substring(detail FROM 'tier=([0-9]+)')::int AS tier, detail FROM desk_alarm_log "
           f"WHERE action = 'escalated' AND alarm_id IN ({_CLOSED}) ORDER BY seq",
           (("seq", "integer"), ("alarm_id", "string"), ("at", "datetime"), ("tier", "integer"),
            ("detail", "string"))),
    Record("access_log", "Åtkomstlogg / Access log",
           "SELECT seq, at, staff_id, relative_id, role, site, resident_id, purpose, address FROM resident_access_log "
           "WHERE at < $2 AND ($1::timestamptz IS NULL OR at >= $1) ORDER BY seq",
           (("seq", "integer"), ("at", "datetime"), ("staff_id", "integer"), ("relative_id", "integer"),
            ("role", "string"), ("site", "string"), ("resident_id", "string"), ("purpose", "string"),
            ("address", "string"))),
)  # fmt: skip
# the check-in log joins the package once the check-in workflow keeps one (a table named `checkin_log`)
CHECKIN_RECORD = Record(
    "checkin_log",
    "Tillsynslogg / Check-in log",
    "SELECT seq, checkin_id, at, actor, action, detail FROM checkin_log "
    "WHERE at < $2 AND ($1::timestamptz IS NULL OR at >= $1) ORDER BY seq",
    (("seq", "integer"), ("checkin_id", "string"), ("at", "datetime"), ("actor", "string"), ("action", "string"),
     ("detail", "string")),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Agents:
    """Who the package is from, as FGS asks: archive creator (arkivbildare) with its identifier, owner (arkivägare),
    submitter (levererande organisation) and the submission agreement (leveransöverenskommelse)."""

    archive_creator: str = ""
    archive_creator_id: str = ""
    owner: str = ""
    submitter: str = ""
    submission_agreement: str = ""

    @classmethod
    def from_settings(cls, followup: FollowupSettings) -> Agents:
        """The agents from `followup.archive_*` and `followup.submission_agreement`."""
        return cls(followup.archive_creator, followup.archive_creator_id, followup.archive_owner,
                   followup.archive_submitter, followup.submission_agreement)  # fmt: skip

    def problems(self) -> list[str]:
        """What the archive would refuse the package without."""
        out = []
        if not self.archive_creator:
            out.append("the archive creator (followup.archive_creator)")
        if not self.owner:
            out.append("the records' owner (followup.archive_owner)")
        if not self.submitter:
            out.append("the submitter (followup.archive_submitter)")
        if not self.submission_agreement:
            out.append("the submission agreement (followup.submission_agreement)")
        return out


def _cutoff(day: date) -> datetime:
    """The start of local `day` (the follow-up zone) as an instant."""
    return datetime.combine(day, time(), tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


# the residents whose rows a package holds, cut as RECORDS are: alarms closed in the window (with their log), the
# access log and the check-in log's tasks by their own times
_RESIDENTS_SQL = (
    f"SELECT resident_id FROM desk_alarms WHERE id IN ({_CLOSED}) "
    "UNION SELECT resident_id FROM resident_access_log WHERE at < $2 AND ($1::timestamptz IS NULL OR at >= $1)"
)
_CHECKIN_RESIDENTS_SQL = (
    " UNION SELECT c.resident_id FROM checkin_log l JOIN checkins c ON c.id = l.checkin_id"
    " WHERE l.at < $2 AND ($1::timestamptz IS NULL OR l.at >= $1)"
)


async def log_export_reads(conn: asyncpg.Connection, after: date | None, before: date, at: datetime) -> list[str]:
    """One access-log row per resident the package from `after` to `before` holds (an export reads their data);
    returns them."""
    sql = _RESIDENTS_SQL
    if await conn.fetchval("SELECT to_regclass('checkin_log') IS NOT NULL"):
        sql += _CHECKIN_RESIDENTS_SQL
    rows = await conn.fetch(f"SELECT DISTINCT resident_id FROM ({sql}) r WHERE resident_id IS NOT NULL ORDER BY 1",
                            _cutoff(after) if after else None, _cutoff(before))  # fmt: skip
    residents = [r["resident_id"] for r in rows]
    for resident_id in residents:
        await record_operator_read(conn, at=at, resident_id=resident_id, what="archive_export")
    return residents


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv(columns: list[str], rows: list[asyncpg.Record]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
    return buf.getvalue().encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def software_version() -> str:
    """The version of Vaka that wrote the package."""
    try:
        return importlib.metadata.version("vaka")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


async def lower_bound(conn: asyncpg.Connection, before: date) -> date | None:
    """Where the next package starts: the end of the latest package that ended before `before` (None: the first)."""
    value = await conn.fetchval("SELECT max(before) FROM archive_exports WHERE before < $1", before)
    return value if isinstance(value, date) else None


def package_name(after: date | None, before: date) -> str:
    """The package's id (and directory name)."""
    return f"vaka-archive-{after.isoformat()}-to-{before.isoformat()}" if after else f"vaka-archive-before-{before}"


async def export(
    conn: asyncpg.Connection,
    before: date,
    out: Path,
    *,
    after: date | None = None,
    agents: Agents | None = None,
    created: datetime | None = None,
) -> tuple[Path, dict[str, int]]:
    """Write the package for the records from `after` (None: from the start) to `before` into `out`; returns its
    directory and the row counts. `created` is the package time (default: now)."""
    if after is not None and after >= before:
        msg = f"--after {after} is not before --before {before}: the package would be empty"
        raise ArchiveError(msg)
    agents = agents or Agents()
    created = (created or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    start, end = (_cutoff(after) if after else None), _cutoff(before)
    records = list(RECORDS)
    if await conn.fetchval("SELECT to_regclass('checkin_log') IS NOT NULL"):
        records.append(CHECKIN_RECORD)
    data: dict[str, bytes] = {}
    schemas: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    for record in records:
        rows = await conn.fetch(record.sql, start, end)
        columns = [c for c, _ in record.columns]
        data[f"representations/{REPRESENTATION}/data/{record.name}.csv"] = _csv(columns, rows)
        schema = {"title": record.title, "fields": [{"name": c, "type": t} for c, t in record.columns],
                  "missingValues": [""]}  # fmt: skip
        schemas[f"schemas/{record.name}.schema.json"] = (
            json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        ).encode()
        counts[record.name] = len(rows)
    still_open = int(await conn.fetchval("SELECT count(*) FROM desk_alarms WHERE raised_at < $1 AND "
                                          "(closed_at IS NULL OR closed_at >= $1)", end))  # fmt: skip
    package_id = package_name(after, before)
    docs = {"documentation/README.txt": _readme(package_id, after, before, counts, still_open, agents)}
    descriptive = {"metadata/descriptive/dc.xml": _dublin_core(package_id, after, before, counts, agents, created)}
    preservation = {"metadata/preservation/premis.xml": _premis(package_id, data, created)}
    rep_mets = _representation_mets(data, created)
    root = out / package_id
    for rel, content in {**data, **schemas, **docs, **descriptive, **preservation}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / f"representations/{REPRESENTATION}/METS.xml").write_bytes(rep_mets)
    files = {**docs, **schemas, f"representations/{REPRESENTATION}/METS.xml": rep_mets}
    (root / "METS.xml").write_bytes(_mets(package_id, files, descriptive, preservation, agents, created))
    problems = verify(root)
    if problems:
        msg = f"the package in {root} does not verify: {'; '.join(problems)}"
        raise ArchiveError(msg)
    return root, counts


def _readme(
    package_id: str, after: date | None, before: date, counts: dict[str, int], still_open: int, agents: Agents
) -> bytes:
    start = after.isoformat() if after else "the first record"
    lines = [
        f"{package_id}: records of the Vaka welfare-technology hub from {start} up to (not including) "
        f"{before.isoformat()}, local days in {ZONE}.",
        "",
        f"Archive creator: {agents.archive_creator or '-'} {agents.archive_creator_id}".rstrip(),
        f"Owner: {agents.owner or '-'}; submitter: {agents.submitter or '-'}; "
        f"submission agreement: {agents.submission_agreement or '-'}",
        "",
        "An alarm is in the package in which it was closed, with every row of its log and escalation history (every",
        "alarm id in alarm_log.csv and escalations.csv has its row in alarms.csv). Alarms still open at the cut-off",
        f"({still_open} of them) go, whole, into a later package. The access log and the check-in log are cut by",
        "their own times. Times are UTC (ISO 8601). Each CSV file has a Table Schema in schemas/.",
        "",
        *(f"{name}: {n} rows" for name, n in counts.items()),
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _dublin_core(
    package_id: str, after: date | None, before: date, counts: dict[str, int], agents: Agents, created: datetime
) -> bytes:
    root = ET.Element("metadata")
    last_day = (before - timedelta(days=1)).isoformat()
    for tag, value in (
        ("title", "Vaka: larm, larmlogg, eskaleringar och åtkomstlogg / alarms, alarm log, escalations and access log"),
        ("identifier", package_id),
        ("creator", agents.archive_creator or "-"),
        ("publisher", agents.owner or "-"),
        ("contributor", f"Vaka {software_version()} (software)"),
        ("coverage", f"{after.isoformat() if after else ''}/{last_day}"),
        ("date", created.isoformat()),
        ("type", "Dataset"),
        ("format", "text/csv"),
        ("language", "swe"),
        ("description", "; ".join(f"{k}: {n} rows" for k, n in counts.items())),
    ):
        ET.SubElement(root, f"{{{DC}}}{tag}").text = value
    return _xml(root)


def _premis(package_id: str, data: dict[str, bytes], created: datetime) -> bytes:
    """PREMIS 3: each data file as an object with its fixity, the package's creation as an event, the software agent."""
    root = ET.Element(f"{{{PREMIS}}}premis", {"version": "3.0"})

    def ident(parent: ET.Element, kind: str, value: str) -> None:
        el = ET.SubElement(parent, f"{{{PREMIS}}}{kind}Identifier")
        ET.SubElement(el, f"{{{PREMIS}}}{kind}IdentifierType").text = "local"
        ET.SubElement(el, f"{{{PREMIS}}}{kind}IdentifierValue").text = value

    for rel, content in data.items():
        obj = ET.SubElement(
            root, f"{{{PREMIS}}}object", {"{http://www.w3.org/2001/XMLSchema-instance}type": "premis:file"}
        )
        ident(obj, "object", rel)
        chars = ET.SubElement(obj, f"{{{PREMIS}}}objectCharacteristics")
        fixity = ET.SubElement(chars, f"{{{PREMIS}}}fixity")
        ET.SubElement(fixity, f"{{{PREMIS}}}messageDigestAlgorithm").text = "SHA-256"
        ET.SubElement(fixity, f"{{{PREMIS}}}messageDigest").text = _sha256(content)
        ET.SubElement(chars, f"{{{PREMIS}}}size").text = str(len(content))
        fmt = ET.SubElement(ET.SubElement(chars, f"{{{PREMIS}}}format"), f"{{{PREMIS}}}formatDesignation")
        ET.SubElement(fmt, f"{{{PREMIS}}}formatName").text = "text/csv"
    event = ET.SubElement(root, f"{{{PREMIS}}}event")
    ident(event, "event", f"{package_id}-creation")
    ET.SubElement(event, f"{{{PREMIS}}}eventType").text = "creation"
    ET.SubElement(event, f"{{{PREMIS}}}eventDateTime").text = created.isoformat()
    outcome = ET.SubElement(ET.SubElement(event, f"{{{PREMIS}}}eventOutcomeInformation"), f"{{{PREMIS}}}eventOutcome")
    outcome.text = "success"
    link = ET.SubElement(event, f"{{{PREMIS}}}linkingAgentIdentifier")
    ET.SubElement(link, f"{{{PREMIS}}}linkingAgentIdentifierType").text = "local"
    ET.SubElement(link, f"{{{PREMIS}}}linkingAgentIdentifierValue").text = "vaka"
    agent = ET.SubElement(root, f"{{{PREMIS}}}agent")
    ident(agent, "agent", "vaka")
    ET.SubElement(agent, f"{{{PREMIS}}}agentName").text = "Vaka"
    ET.SubElement(agent, f"{{{PREMIS}}}agentType").text = "software"
    ET.SubElement(agent, f"{{{PREMIS}}}agentVersion").text = software_version()
    return _xml(root)


def _xml(root: ET.Element) -> bytes:
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def _mime(rel: str) -> str:
    if rel.endswith(".csv"):
        return "text/csv"
    if rel.endswith(".json"):
        return "application/json"
    if rel.endswith(".txt"):
        return "text/plain"
    return "application/xml"


def _locate(el: ET.Element, rel: str, content: bytes, created: datetime, *, as_attr: bool = False) -> None:
    """MIMETYPE, SIZE, CREATED, CHECKSUM (SHA-256) and the location, as CSIP asks of a file or a metadata reference."""
    el.set("MIMETYPE", _mime(rel))
    el.set("SIZE", str(len(content)))
    el.set("CREATED", created.isoformat())
    el.set("CHECKSUM", _sha256(content))
    el.set("CHECKSUMTYPE", "SHA-256")
    target = el if as_attr else ET.SubElement(el, f"{{{METS}}}FLocat")
    target.set("LOCTYPE", "URL")
    target.set(f"{{{XLINK}}}type", "simple")
    target.set(f"{{{XLINK}}}href", rel)


def _mets_root(objid: str, label: str) -> ET.Element:
    return ET.Element(f"{{{METS}}}mets", {
        "OBJID": objid, "LABEL": label, "TYPE": "Datasets",
        f"{{{CSIP}}}CONTENTINFORMATIONTYPE": "OTHER", f"{{{CSIP}}}OTHERCONTENTINFORMATIONTYPE": "Vaka logs (CSV)",
        "PROFILE": PROFILE,
    })  # fmt: skip


def _header(mets: ET.Element, created: datetime, agents: Agents | None) -> None:
    hdr = ET.SubElement(mets, f"{{{METS}}}metsHdr", {"CREATEDATE": created.isoformat(),
                                                      "LASTMODDATE": created.isoformat(), "RECORDSTATUS": "NEW",
                                                      f"{{{CSIP}}}OAISPACKAGETYPE": "SIP"})  # fmt: skip
    software = ET.SubElement(hdr, f"{{{METS}}}agent", {"ROLE": "CREATOR", "TYPE": "OTHER", "OTHERTYPE": "SOFTWARE"})
    ET.SubElement(software, f"{{{METS}}}name").text = "Vaka"
    ET.SubElement(software, f"{{{METS}}}note", {f"{{{CSIP}}}NOTETYPE": "SOFTWARE VERSION"}).text = software_version()
    if agents is None:
        return
    # FGS: the archive creator (arkivbildare) with its identifier, the owner and the submitter
    if agents.archive_creator:
        creator = ET.SubElement(hdr, f"{{{METS}}}agent", {"ROLE": "ARCHIVIST", "TYPE": "ORGANIZATION"})
        ET.SubElement(creator, f"{{{METS}}}name").text = agents.archive_creator
        if agents.archive_creator_id:
            ET.SubElement(creator, f"{{{METS}}}note").text = f"ORG:{agents.archive_creator_id}"
    if agents.owner:
        owner = ET.SubElement(hdr, f"{{{METS}}}agent", {"ROLE": "IPOWNER", "TYPE": "ORGANIZATION"})
        ET.SubElement(owner, f"{{{METS}}}name").text = agents.owner
    if agents.submitter:
        submitter = ET.SubElement(hdr, f"{{{METS}}}agent", {"ROLE": "OTHER", "OTHERROLE": "SUBMITTER",
                                                            "TYPE": "ORGANIZATION"})  # fmt: skip
        ET.SubElement(submitter, f"{{{METS}}}name").text = agents.submitter
    if agents.submission_agreement:
        ET.SubElement(hdr, f"{{{METS}}}altRecordID", {"TYPE": "SUBMISSIONAGREEMENT"}).text = agents.submission_agreement


def _file_group(parent: ET.Element, group_id: str, use: str, files: dict[str, bytes], created: datetime) -> None:
    grp = ET.SubElement(parent, f"{{{METS}}}fileGrp", {
        "ID": group_id, "USE": use, f"{{{CSIP}}}CONTENTINFORMATIONTYPE": "OTHER",
        f"{{{CSIP}}}OTHERCONTENTINFORMATIONTYPE": "Vaka logs (CSV)",
    })  # fmt: skip
    for n, rel in enumerate(sorted(files)):
        _locate(ET.SubElement(grp, f"{{{METS}}}file", {"ID": f"{group_id}-file-{n}"}), rel, files[rel], created)


def _representation_mets(data: dict[str, bytes], created: datetime) -> bytes:
    """The representation's own METS: its data files, with paths relative to the representation's folder."""
    prefix = f"representations/{REPRESENTATION}/"
    files = {rel.removeprefix(prefix): content for rel, content in data.items()}
    mets = _mets_root(REPRESENTATION, "Vaka logs, CSV")
    _header(mets, created, None)
    file_sec = ET.SubElement(mets, f"{{{METS}}}fileSec", {"ID": "filesec"})
    _file_group(file_sec, "grp-data", "Data", files, created)
    struct = ET.SubElement(mets, f"{{{METS}}}structMap", {"ID": "structmap", "TYPE": "PHYSICAL", "LABEL": "CSIP"})
    top = ET.SubElement(struct, f"{{{METS}}}div", {"ID": "div-rep", "LABEL": REPRESENTATION})
    div = ET.SubElement(top, f"{{{METS}}}div", {"ID": "div-data", "LABEL": "Data"})
    ET.SubElement(div, f"{{{METS}}}fptr", {"FILEID": "grp-data"})
    return _xml(mets)


def _mets(
    package_id: str,
    files: dict[str, bytes],
    descriptive: dict[str, bytes],
    preservation: dict[str, bytes],
    agents: Agents,
    created: datetime,
) -> bytes:
    mets = _mets_root(package_id, "Vaka archive export")
    _header(mets, created, agents)
    dmd = ET.SubElement(
        mets, f"{{{METS}}}dmdSec", {"ID": "dmd-dc", "CREATED": created.isoformat(), "STATUS": "CURRENT"}
    )
    for rel, content in descriptive.items():
        ref = ET.SubElement(dmd, f"{{{METS}}}mdRef", {"MDTYPE": "DC"})
        _locate(ref, rel, content, created, as_attr=True)
    amd = ET.SubElement(mets, f"{{{METS}}}amdSec", {"ID": "amd"})
    digiprov = ET.SubElement(amd, f"{{{METS}}}digiprovMD", {"ID": "digiprov-premis", "STATUS": "CURRENT"})
    for rel, content in preservation.items():
        ref = ET.SubElement(digiprov, f"{{{METS}}}mdRef", {"MDTYPE": "PREMIS"})
        _locate(ref, rel, content, created, as_attr=True)
    file_sec = ET.SubElement(mets, f"{{{METS}}}fileSec", {"ID": "filesec"})
    groups = (("grp-documentation", "Documentation", "documentation/"), ("grp-schemas", "Schemas", "schemas/"),
              ("grp-rep1", f"Representations/{REPRESENTATION}", f"representations/{REPRESENTATION}/"))  # fmt: skip
    for group_id, use, prefix in groups:
        _file_group(file_sec, group_id, use, {r: c for r, c in files.items() if r.startswith(prefix)}, created)
    struct = ET.SubElement(mets, f"{{{METS}}}structMap", {"ID": "structmap", "TYPE": "PHYSICAL", "LABEL": "CSIP"})
    top = ET.SubElement(struct, f"{{{METS}}}div", {"ID": "div-package", "LABEL": package_id})
    ET.SubElement(top, f"{{{METS}}}div", {"ID": "div-metadata", "LABEL": "Metadata", "DMDID": "dmd-dc",
                                          "ADMID": "digiprov-premis"})  # fmt: skip
    for group_id, label in (("grp-documentation", "Documentation"), ("grp-schemas", "Schemas")):
        div = ET.SubElement(top, f"{{{METS}}}div", {"ID": f"div-{label.lower()}", "LABEL": label})
        ET.SubElement(div, f"{{{METS}}}fptr", {"FILEID": group_id})
    reps = ET.SubElement(top, f"{{{METS}}}div", {"ID": "div-representations", "LABEL": "Representations"})
    ET.SubElement(reps, f"{{{METS}}}fptr", {"FILEID": "grp-rep1"})
    rep = ET.SubElement(reps, f"{{{METS}}}div", {"ID": f"div-{REPRESENTATION}", "LABEL": REPRESENTATION})
    ET.SubElement(rep, f"{{{METS}}}mptr", {"LOCTYPE": "URL", f"{{{XLINK}}}type": "simple",
                                           f"{{{XLINK}}}href": f"representations/{REPRESENTATION}/METS.xml",
                                           f"{{{XLINK}}}title": REPRESENTATION})  # fmt: skip
    return _xml(mets)


def verify(root: Path) -> list[str]:
    """Every file the package's METS (and its representations' METS) lists exists with its size and SHA-256, and
    no file is unlisted; the problems found."""
    problems: list[str] = []
    listed = _check_mets(root, root, problems)
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel != "METS.xml" and rel not in listed:
            problems.append(f"{rel} is not in the manifest")
    return problems


def _check_mets(root: Path, folder: Path, problems: list[str]) -> set[str]:
    """Check the files `folder/METS.xml` lists (recursing into a representation's METS); the paths it lists, from
    the package root."""
    mets_path = folder / "METS.xml"
    if not mets_path.exists():
        problems.append(f"{mets_path.relative_to(root).as_posix()} is missing")
        return set()
    listed = set()
    for el in ET.parse(mets_path).iter():
        if "CHECKSUM" not in el.attrib:
            continue
        href_el = el if f"{{{XLINK}}}href" in el.attrib else el.find(f"{{{METS}}}FLocat")
        href = href_el.attrib[f"{{{XLINK}}}href"] if href_el is not None else ""
        path = folder / href
        rel = path.relative_to(root).as_posix()
        listed.add(rel)
        if not path.is_file():
            problems.append(f"{rel} is listed but missing")
            continue
        data = path.read_bytes()
        if _sha256(data) != el.attrib["CHECKSUM"]:
            problems.append(f"{rel}: SHA-256 does not match the manifest")
        if str(len(data)) != el.attrib.get("SIZE"):
            problems.append(f"{rel}: size does not match the manifest")
        if path.name == "METS.xml" and path.parent != folder:
            listed |= _check_mets(root, path.parent, problems)
    return listed


# what is purged: the access log by its time; the alarm log only for alarms closed before the cut-off (those are the
# ones exported, whole; an open alarm's log waits for the package in which it closes)
_PURGE = (
    ("access_log", "resident_access_log", "at < $1"),
    ("alarm_log", "desk_alarm_log",
     "alarm_id IN (SELECT id FROM desk_alarms WHERE closed_at IS NOT NULL AND closed_at < $1 AND raised_at < $1)"),
)  # fmt: skip


async def purge(
    conn: asyncpg.Connection, root: Path, before: date, retention_days: int, now: datetime
) -> dict[str, int]:
    """Delete the exported rows past retention, in one transaction, after verifying the package again."""
    problems = verify(root)
    if problems:
        msg = f"not purging: the package in {root} does not verify ({'; '.join(problems)})"
        raise ArchiveError(msg)
    cutoff = min(_cutoff(before), now - timedelta(days=retention_days))
    purged: dict[str, int] = {}
    try:
        async with conn.transaction():
            for name, table, where in _PURGE:
                # the logs are append-only by trigger; only their owner (the migration role) can lift it, and only
                # inside this transaction
                await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
                status = await conn.execute(f"DELETE FROM {table} WHERE {where}", cutoff)
                await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
                purged[name] = int(status.split()[-1])
            status = await conn.execute(
                "DELETE FROM desk_alarms WHERE closed_at IS NOT NULL AND closed_at < $1 AND raised_at < $1", cutoff
            )
            purged["alarms"] = int(status.split()[-1])
            await conn.execute(
                "UPDATE archive_exports SET rows_purged = $2::jsonb, purged_at = $3"
                " WHERE id = (SELECT max(id) FROM archive_exports WHERE package_id = $1)",
                root.name, json.dumps(purged), now,
            )  # fmt: skip
    except asyncpg.InsufficientPrivilegeError as exc:
        msg = f"not purged (nothing deleted): {exc}; run `vaka archive export --purge` with the owner's database DSN"
        raise ArchiveError(msg) from exc
    return purged


async def export_main(args: argparse.Namespace, settings: Settings) -> int:
    """`vaka archive export --before DATE [--after DATE] --out DIR [--purge]`."""
    from hub.store.db import VakaConnection
    from hub.store.oneshot import as_owner as _as_owner
    from hub.store.oneshot import with_database as _with_database

    now = datetime.now(UTC)
    agents = Agents.from_settings(settings.followup)
    missing = agents.problems()
    if missing:
        print("vaka archive export: FGS needs " + "; ".join(missing))
        return 2

    async def work(conn: VakaConnection) -> tuple[Path, dict[str, int], dict[str, int] | None]:
        after = args.after if args.after is not None else await lower_bound(conn, args.before)
        root, counts = await export(conn, args.before, args.out, after=after, agents=agents, created=now)
        await log_export_reads(conn, after, args.before, now)
        mets_sha = _sha256((root / "METS.xml").read_bytes())
        await conn.execute(
            # each run is a row of its own: the runtime role adds records and never rewrites one (migration 346)
            "INSERT INTO archive_exports (package_id, after, before, mets_sha256, rows_exported) "
            "VALUES ($1, $2, $3, $4, $5::jsonb)",
            root.name, after, args.before, mets_sha, json.dumps(counts),
        )  # fmt: skip
        purged = None
        if args.purge:
            purged = await purge(conn, root, args.before, settings.followup.archive_retention_days, now)
        return root, counts, purged

    try:
        # purging lifts the logs' append-only trigger: only their owner may (db.owner_dsn), never the runtime role
        got = await _with_database(_as_owner(settings) if args.purge else settings, "archive export", work)
    except ArchiveError as exc:
        print(f"vaka archive export: {exc}")
        return 1
    if got is None:
        return 2
    root, counts, purged = got
    print(f"archive package written and verified: {root}")
    print("exported: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    if purged is not None:
        print("purged (past retention): " + ", ".join(f"{n} {k}" for k, n in purged.items()))
    return 0
