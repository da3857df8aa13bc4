"""The resident directory: names, homes, how to get in and who to call — what a night patrol visiting people in their
own homes needs, held apart from events.

Rows live in `resident_directory` (migration 160), keyed by the pseudonymous resident id; nothing here is copied into
events, alarms, logs or metrics. A person reads an entry only for residents of their own units, and the caller logs
every read in the append-only `resident_access_log` (`Desk.log_resident_reads`). Access instructions (key box code,
door code) are given only to the person on the way to an alarm of that resident.

`vaka site load` takes entries under `directory:`; `vaka resident import-csv FILE` takes a care-records export.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from pydantic import ValidationError

from hub.model import Contact, DirectoryEntry, VakaError
from hub.people.staff import StaffMember

# the columns of a care-records export, in Swedish or English (first match wins), one row per resident
CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "resident": ("resident_id", "resident", "boende_id", "pseudonym"),
    "name": ("name", "display_name", "namn"),
    "address": ("address", "adress", "home_address"),
    "access": ("access", "access_instructions", "tillgang", "tillgång", "nyckel"),
    "latitude": ("latitude", "lat"),
    "longitude": ("longitude", "lon", "lng"),
    "notes": ("notes", "anteckningar", "notering"),
}
# contacts: contact_name / contact_phone / contact_relation, or with a number: contact2_name …
_CONTACT_FIELDS = ("name", "phone", "relation")
_MAX_CONTACTS = 5
_UPSERT = """
INSERT INTO resident_directory (resident_id, display_name, address, access_instructions, latitude, longitude, contacts,
    notes, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, now())
ON CONFLICT (resident_id) DO UPDATE SET display_name = EXCLUDED.display_name, address = EXCLUDED.address,
    access_instructions = EXCLUDED.access_instructions, latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude,
    contacts = EXCLUDED.contacts, notes = EXCLUDED.notes, updated_at = now()
"""


class DirectoryError(VakaError):
    """Directory entries that cannot be stored; `problems` says which and why, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Home:
    """One resident's entry as a person may read it now (`access` empty unless they are on the way)."""

    resident_id: str
    site: str
    unit: str
    room: str
    name: str
    address: str
    access: str
    latitude: float | None
    longitude: float | None
    contacts: tuple[Contact, ...]
    notes: str


async def store_entries(conn: asyncpg.Connection, entries: list[DirectoryEntry]) -> int:
    """Insert or replace entries in one transaction; DirectoryError (nothing stored) naming unknown residents."""
    if not entries:
        return 0
    known = {
        r["id"]
        for r in await conn.fetch("SELECT id FROM residents WHERE id = ANY($1::text[])", [e.resident for e in entries])
    }
    unknown = [e.resident for e in entries if e.resident not in known]
    if unknown:
        msg = f"directory: no resident {', '.join(sorted(set(unknown)))} in the inventory (load the sites first)"
        raise DirectoryError([msg])
    async with conn.transaction():
        await conn.executemany(
            _UPSERT,
            [
                (
                    e.resident,
                    e.name,
                    e.address,
                    e.access,
                    e.latitude,
                    e.longitude,
                    json.dumps([c.model_dump() for c in e.contacts]),
                    e.notes,
                )
                for e in entries
            ],
        )
    return len(entries)


async def read_homes(
    conn: asyncpg.Connection, staff: StaffMember, resident_ids: list[str], *, with_access: frozenset[str] = frozenset()
) -> dict[str, Home]:
    """Entries of these residents that `staff` may read (their units only); access instructions only for the ids in
    `with_access`. The caller logs every entry returned as a read."""
    rows = await conn.fetch(
        "SELECT r.id, r.site, r.unit, r.room, d.display_name, d.address, d.access_instructions, d.latitude,"
        " d.longitude, d.contacts, d.notes FROM residents r JOIN resident_directory d ON d.resident_id = r.id"
        " WHERE r.id = ANY($1::text[])",
        resident_ids,
    )
    homes: dict[str, Home] = {}
    for r in rows:
        if not staff.sees(r["site"], r["unit"]):
            continue
        contacts = json.loads(r["contacts"]) if isinstance(r["contacts"], str) else r["contacts"]
        homes[r["id"]] = Home(
            resident_id=r["id"],
            site=r["site"],
            unit=r["unit"],
            room=r["room"],
            name=r["display_name"],
            address=r["address"],
            access=r["access_instructions"] if r["id"] in with_access else "",
            latitude=r["latitude"],
            longitude=r["longitude"],
            contacts=tuple(Contact.model_validate(c) for c in contacts),
            notes=r["notes"],
        )
    return homes


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def parse_csv(text: str) -> list[DirectoryEntry]:
    """Entries from a care-records export (comma or semicolon separated, header row); DirectoryError listing every
    bad row as "line N: …" — nothing is imported unless every row is right."""
    if not text.strip():
        raise DirectoryError(["the file is empty: expected a header row (resident_id;name;address;access;…)"])
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=";,\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = next(reader)
    where = {key: _column(header, names) for key, names in CSV_COLUMNS.items()}
    if where["resident"] is None:
        raise DirectoryError([f"line 1: no resident id column (one of {', '.join(CSV_COLUMNS['resident'])})"])
    contact_columns: list[dict[str, int]] = []
    for n in range(1, _MAX_CONTACTS + 1):
        prefix = "contact" if n == 1 else f"contact{n}"
        found = {f: i for f in _CONTACT_FIELDS if (i := _column(header, (f"{prefix}_{f}",))) is not None}
        if "name" in found:
            contact_columns.append(found)
    entries: list[DirectoryEntry] = []
    problems: list[str] = []
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue

        def cell(index: int | None, row: list[str] = row) -> str:
            return row[index].strip() if index is not None and index < len(row) else ""

        data: dict[str, object] = {k: cell(i) for k, i in where.items() if k not in ("latitude", "longitude")}
        before = len(problems)
        for key in ("latitude", "longitude"):
            raw = cell(where[key]).replace(",", ".")
            if raw:
                try:
                    data[key] = float(raw)
                except ValueError:
                    problems.append(f"line {line}: {key} {raw!r} is not a number")
        if len(problems) > before:
            continue  # one message per mistake: the row is not checked further
        data["contacts"] = [
            {f: cell(i) for f, i in columns.items()} for columns in contact_columns if cell(columns["name"])
        ]
        try:
            entries.append(DirectoryEntry.model_validate(data))
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or "row"
                problems.append(f"line {line}: {field}: {err['msg']}")
    if problems:
        raise DirectoryError(problems)
    return entries


def read_csv_file(path: Path) -> list[DirectoryEntry]:
    """`parse_csv` of a file (UTF-8, with or without BOM; Latin-1 as older exports write it)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return parse_csv(text)


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (latitude, longitude) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def travel_minutes(
    a: tuple[float, float], b: tuple[float, float], *, speed_kmh: float = 30.0, detour: float = 1.3
) -> float:
    """A night patrol's travel time by car: straight-line distance times a detour factor at town speed."""
    return distance_km(a, b) * detour / speed_kmh * 60.0


async def import_csv_main(path: Path, conn: asyncpg.Connection) -> int:
    """`vaka resident import-csv FILE`: every entry or none; each bad row named with its line."""
    try:
        entries = read_csv_file(path)
        count = await store_entries(conn, entries)
    except OSError as exc:
        print(f"vaka resident import-csv: cannot read {path}: {exc.strerror}")
        return 2
    except DirectoryError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}")
        print("nothing imported: correct the lines above and run again")
        return 1
    print(f"resident directory: {count} entries imported from {path}")
    return 0
