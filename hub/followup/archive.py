"""The archive export: the alarm log, alarm outcomes, escalation history, check-in log and access log before a day,
as an archival information package in the shape of E-ARK CSIP (and the Swedish National Archives' FGS package
structure, which follows it): a METS manifest listing every file with its SHA-256, descriptive metadata (Dublin
Core), CSV data files with a Table Schema each.

The package is a function of the data: exporting the same period again gives the same bytes (the package's date is
the cut-off day, not the time of export). `--purge` deletes exported rows past retention only after the package on
disk has been verified, in one transaction, and records what it deleted in `archive_exports`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
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

from hub.followup.rollup import ZONE
from hub.model import VakaError
from hub.settings import Settings

logger = logging.getLogger(__name__)

METS = "http://www.loc.gov/METS/"
XLINK = "http://www.w3.org/1999/xlink"
CSIP = "https://DILCIS.eu/XML/METS/CSIPExtensionMETS"
DC = "http://purl.org/dc/elements/1.1/"
ET.register_namespace("mets", METS)
ET.register_namespace("xlink", XLINK)
ET.register_namespace("csip", CSIP)
ET.register_namespace("dc", DC)


class ArchiveError(VakaError):
    """The package could not be written or did not verify."""


@dataclass(frozen=True, slots=True)
class Record:
    """One kind of record in the package: its file name, description, query and columns (with Table Schema types)."""

    name: str
    title: str
    sql: str
    columns: tuple[tuple[str, str], ...]


RECORDS = (
    Record("alarms", "Larm och utfall / Alarms and outcomes",
           "SELECT id, rule_id, category, severity, site, unit, resident_id, device_id, reason, unregistered, state, "
           "outcome, note, count, raised_at, accepted_at, accepted_by, closed_at FROM desk_alarms "
           "WHERE raised_at < $1 AND closed_at IS NOT NULL AND closed_at < $1 ORDER BY raised_at, id",
           (("id", "string"), ("rule_id", "string"), ("category", "string"), ("severity", "integer"),
            ("site", "string"), ("unit", "string"), ("resident_id", "string"), ("device_id", "string"),
            ("reason", "string"), ("unregistered", "boolean"), ("state", "string"), ("outcome", "string"),
            ("note", "string"), ("count", "integer"), ("raised_at", "datetime"), ("accepted_at", "datetime"),
            ("accepted_by", "string"), ("closed_at", "datetime"))),
    Record("alarm_log", "Larmlogg: varje steg / Alarm log: every step",
           "SELECT seq, alarm_id, at, actor, action, state, detail FROM desk_alarm_log WHERE at < $1 ORDER BY seq",
           (("seq", "integer"), ("alarm_id", "string"), ("at", "datetime"), ("actor", "string"),
            ("action", "string"), ("state", "string"), ("detail", "string"))),
    Record("escalations", "Eskaleringar / Escalation history",
           "SELECT seq, alarm_id, at, substring(detail FROM 'tier=([0-9]+)')::int AS tier, detail FROM desk_alarm_log "
           "WHERE at < $1 AND action = 'escalated' ORDER BY seq",
           (("seq", "integer"), ("alarm_id", "string"), ("at", "datetime"), ("tier", "integer"),
            ("detail", "string"))),
    Record("access_log", "Åtkomstlogg / Access log",
           "SELECT seq, at, staff_id, relative_id, role, site, resident_id, purpose, address FROM resident_access_log "
           "WHERE at < $1 ORDER BY seq",
           (("seq", "integer"), ("at", "datetime"), ("staff_id", "integer"), ("relative_id", "integer"),
            ("role", "string"), ("site", "string"), ("resident_id", "string"), ("purpose", "string"),
            ("address", "string"))),
)  # fmt: skip
# the check-in log joins the package once the check-in workflow keeps one (a table named `checkin_log`)
CHECKIN_RECORD = Record(
    "checkin_log", "Tillsynslogg / Check-in log", "SELECT * FROM checkin_log WHERE at < $1 ORDER BY 1", ()
)


def _cutoff(before: date) -> datetime:
    """The start of local day `before` (the follow-up zone) as an instant."""
    return datetime.combine(before, time(), tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


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


async def export(conn: asyncpg.Connection, before: date, out: Path) -> tuple[Path, dict[str, int]]:
    """Write the package for everything before `before` into `out`; returns its directory and the row counts."""
    cutoff = _cutoff(before)
    records = list(RECORDS)
    if await conn.fetchval("SELECT to_regclass('checkin_log') IS NOT NULL"):
        records.append(CHECKIN_RECORD)
    files: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    for record in records:
        rows = await conn.fetch(record.sql, cutoff)
        columns = [c for c, _ in record.columns] or (list(rows[0].keys()) if rows else [])
        types = dict(record.columns)
        files[f"representations/rep1/data/{record.name}.csv"] = _csv(columns, rows)
        schema = {"fields": [{"name": c, "type": types.get(c, "any")} for c in columns], "missingValues": [""]}
        files[f"representations/rep1/schemas/{record.name}.schema.json"] = (
            json.dumps({"title": record.title, **schema}, indent=2, ensure_ascii=False) + "\n"
        ).encode()
        counts[record.name] = len(rows)
    package_id = f"vaka-archive-before-{before.isoformat()}"
    files["metadata/descriptive/dc.xml"] = _dublin_core(package_id, before, counts)
    root = out / package_id
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "METS.xml").write_bytes(_mets(package_id, before, files))
    problems = verify(root)
    if problems:
        msg = f"the package in {root} does not verify: {'; '.join(problems)}"
        raise ArchiveError(msg)
    return root, counts


def _dublin_core(package_id: str, before: date, counts: dict[str, int]) -> bytes:
    root = ET.Element("metadata")
    for tag, value in (
        ("title", "Vaka: larm, larmlogg, eskaleringar och åtkomstlogg / alarms, alarm log, escalations and access log"),
        ("identifier", package_id),
        ("creator", "Vaka welfare-technology monitoring hub"),
        ("coverage", f"--{before.isoformat()}"),
        ("date", before.isoformat()),
        ("type", "Dataset"),
        ("format", "text/csv"),
        ("language", "swe"),
        ("description", "; ".join(f"{k}: {n} rows" for k, n in counts.items())),
    ):
        ET.SubElement(root, f"{{{DC}}}{tag}").text = value
    return _xml(root)


def _xml(root: ET.Element) -> bytes:
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def _mets(package_id: str, before: date, files: dict[str, bytes]) -> bytes:
    created = datetime.combine(before, time(), tzinfo=UTC).isoformat()
    mets = ET.Element(f"{{{METS}}}mets", {
        "OBJID": package_id, "LABEL": "Vaka archive export", "TYPE": "OTHER", f"{{{CSIP}}}OTHERTYPE": "Vaka logs",
        "PROFILE": "https://earkcsip.dilcis.eu/profile/E-ARK-CSIP.xml",
    })  # fmt: skip
    hdr = ET.SubElement(mets, f"{{{METS}}}metsHdr", {"CREATEDATE": created, "RECORDSTATUS": "NEW",
                                                      f"{{{CSIP}}}OAISPACKAGETYPE": "SIP"})  # fmt: skip
    agent = ET.SubElement(hdr, f"{{{METS}}}agent", {"ROLE": "CREATOR", "TYPE": "OTHER", "OTHERTYPE": "SOFTWARE"})
    ET.SubElement(agent, f"{{{METS}}}name").text = "Vaka"
    dmd = ET.SubElement(mets, f"{{{METS}}}dmdSec", {"ID": "dmd-dc", "CREATED": created, "STATUS": "CURRENT"})
    _file_ref(ET.SubElement(dmd, f"{{{METS}}}mdRef", {"LOCTYPE": "URL", "MDTYPE": "DC", "TYPE": "simple"}),
              "metadata/descriptive/dc.xml", files, href_attr=True)  # fmt: skip
    file_sec = ET.SubElement(mets, f"{{{METS}}}fileSec", {"ID": "filesec"})
    groups = {"data": "Representations/rep1/Data", "schemas": "Schemas"}
    struct = ET.SubElement(mets, f"{{{METS}}}structMap", {"TYPE": "PHYSICAL", "LABEL": "CSIP"})
    top = ET.SubElement(struct, f"{{{METS}}}div", {"ID": "struct-root", "LABEL": package_id})
    ET.SubElement(top, f"{{{METS}}}div", {"LABEL": "Metadata", "DMDID": "dmd-dc"})
    for kind, use in groups.items():
        grp = ET.SubElement(file_sec, f"{{{METS}}}fileGrp", {"ID": f"grp-{kind}", "USE": use})
        div = ET.SubElement(top, f"{{{METS}}}div", {"LABEL": use})
        ET.SubElement(div, f"{{{METS}}}fptr", {"FILEID": f"grp-{kind}"})
        for n, rel in enumerate(sorted(r for r in files if f"/{kind}/" in r)):
            file_el = ET.SubElement(grp, f"{{{METS}}}file", {"ID": f"file-{kind}-{n}"})
            _file_ref(file_el, rel, files)
    return _xml(mets)


def _file_ref(el: ET.Element, rel: str, files: dict[str, bytes], *, href_attr: bool = False) -> None:
    data = files[rel]
    mime = "text/csv" if rel.endswith(".csv") else "application/json" if rel.endswith(".json") else "text/xml"
    el.set("MIMETYPE", mime)
    el.set("SIZE", str(len(data)))
    el.set("CHECKSUM", _sha256(data))
    el.set("CHECKSUMTYPE", "SHA-256")
    target = (
        el if href_attr else ET.SubElement(el, f"{{{METS}}}FLocat", {"LOCTYPE": "URL", f"{{{XLINK}}}type": "simple"})
    )
    target.set(f"{{{XLINK}}}href", rel)


def verify(root: Path) -> list[str]:
    """Every file the METS manifest lists exists with its size and SHA-256, and no file is unlisted; problems found."""
    mets_path = root / "METS.xml"
    if not mets_path.exists():
        return [f"{mets_path} is missing"]
    tree = ET.parse(mets_path)
    problems = []
    listed = set()
    for el in tree.iter():
        if "CHECKSUM" not in el.attrib:
            continue
        href_el = el if f"{{{XLINK}}}href" in el.attrib else el.find(f"{{{METS}}}FLocat")
        rel = href_el.attrib[f"{{{XLINK}}}href"] if href_el is not None else ""
        listed.add(rel)
        path = root / rel
        if not path.is_file():
            problems.append(f"{rel} is listed but missing")
            continue
        data = path.read_bytes()
        if _sha256(data) != el.attrib["CHECKSUM"]:
            problems.append(f"{rel}: SHA-256 does not match the manifest")
        if str(len(data)) != el.attrib.get("SIZE"):
            problems.append(f"{rel}: size does not match the manifest")
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel != "METS.xml" and rel not in listed:
            problems.append(f"{rel} is not in the manifest")
    return problems


_PURGE = (
    ("access_log", "resident_access_log", "at"),
    ("alarm_log", "desk_alarm_log", "at"),
)


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
            for name, table, column in _PURGE:
                # the logs are append-only by trigger; only their owner (the migration role) can lift it, and only
                # inside this transaction
                await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
                status = await conn.execute(f"DELETE FROM {table} WHERE {column} < $1", cutoff)
                await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
                purged[name] = int(status.split()[-1])
            status = await conn.execute(
                "DELETE FROM desk_alarms WHERE closed_at IS NOT NULL AND closed_at < $1 AND raised_at < $1", cutoff
            )
            purged["alarms"] = int(status.split()[-1])
            await conn.execute(
                "UPDATE archive_exports SET rows_purged = $2::jsonb, purged_at = $3 WHERE package_id = $1",
                root.name, json.dumps(purged), now,
            )  # fmt: skip
    except asyncpg.InsufficientPrivilegeError as exc:
        msg = f"not purged (nothing deleted): {exc}; run `vaka archive export --purge` with the owner's database DSN"
        raise ArchiveError(msg) from exc
    return purged


async def export_main(args: argparse.Namespace, settings: Settings) -> int:
    """`vaka archive export --before DATE --out DIR [--purge]`."""
    from hub.cli import _as_owner, _with_database
    from hub.store.db import VakaConnection

    now = datetime.now(UTC)

    async def work(conn: VakaConnection) -> tuple[Path, dict[str, int], dict[str, int] | None]:
        root, counts = await export(conn, args.before, args.out)
        mets_sha = _sha256((root / "METS.xml").read_bytes())
        await conn.execute(
            "INSERT INTO archive_exports (package_id, before, mets_sha256, rows_exported) VALUES ($1, $2, $3, $4::jsonb) "
            "ON CONFLICT (package_id) DO UPDATE SET mets_sha256 = EXCLUDED.mets_sha256, "
            "rows_exported = EXCLUDED.rows_exported, exported_at = now()",
            root.name, args.before, mets_sha, json.dumps(counts),
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
