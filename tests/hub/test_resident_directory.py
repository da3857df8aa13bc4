"""The resident directory: a care-records CSV in, entries held apart from events, read only by staff of the unit,
access instructions only for the person on the way; `vaka site load` takes entries too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from hub.metrics import Metrics
from hub.model import DirectoryEntry, Inventory
from hub.people.residents import DirectoryError, parse_csv, read_homes, store_entries, travel_minutes
from hub.people.staff import StaffMember
from hub.settings import Settings
from hub.store.db import Database
from tests.conftest import PG_DSN
from tests.hub.desk_support import add_inventory_and_staff, migrated_database, sites_for
from tests.hub.test_cli import vaka

EXPORT = """resident_id;namn;adress;tillgång;lat;lon;contact_name;contact_phone;contact_relation;anteckningar
{site}-r1;Karin Berg;Storgatan 1, Umeå;Nyckelbox vid dörren, kod 4411;63,8258;20,2630;Eva Berg;070-111 22 33;dotter;Hund (snäll)
{site}-r3;Nils Ek;Ågatan 9;Digitalt lås: appen;;;;;;
"""


def test_a_care_records_export_with_swedish_headers_and_decimal_commas() -> None:
    entries = parse_csv(EXPORT.format(site="s"))
    assert [e.resident for e in entries] == ["s-r1", "s-r3"]
    karin = entries[0]
    assert (karin.name, karin.address, karin.access) == (
        "Karin Berg",
        "Storgatan 1, Umeå",
        "Nyckelbox vid dörren, kod 4411",
    )
    assert (karin.latitude, karin.longitude) == (63.8258, 20.263)
    assert [(c.name, c.phone, c.relation) for c in karin.contacts] == [("Eva Berg", "070-111 22 33", "dotter")]
    assert entries[1].contacts == []


def test_every_bad_row_is_named_and_nothing_is_imported() -> None:
    text = "resident_id,name,lat,lon\nr1,A,63.8,\nbad id!,B,,\nr3,C,north,20\n"
    with pytest.raises(DirectoryError) as caught:
        parse_csv(text)
    assert caught.value.problems == [
        "line 2: row: Value error, give both latitude and longitude, or neither",
        "line 3: resident: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}$'",
        "line 4: latitude 'north' is not a number",
    ]
    with pytest.raises(DirectoryError, match="no resident id column"):
        parse_csv("name;address\nA;B\n")


def test_travel_time_orders_homes_by_distance() -> None:
    umea = (63.8258, 20.2630)
    assert travel_minutes(umea, umea) == 0
    assert 5 < travel_minutes(umea, (63.8500, 20.3300)) < 15  # about 4 km across town


@pytest.fixture
async def db(settings: Settings, metrics: Metrics) -> AsyncIterator[Database]:
    async with migrated_database(settings, metrics) as database:
        yield database


@pytest.fixture
async def staff(db: Database, unique: str) -> dict[str, StaffMember]:
    return await add_inventory_and_staff(db, unique)


async def test_only_staff_of_the_unit_read_an_entry_and_access_only_when_asked(
    db: Database, staff: dict[str, StaffMember], unique: str
) -> None:
    async with db.acquire() as conn:
        assert await store_entries(conn, parse_csv(EXPORT.format(site=unique))) == 2
        r1, r3 = f"{unique}-r1", f"{unique}-r3"
        anna = await read_homes(conn, staff["anna"], [r1, r3])  # unit A: r1 only
        assert list(anna) == [r1]
        assert anna[r1].name == "Karin Berg"
        assert anna[r1].access == ""  # not on the way
        on_the_way = await read_homes(conn, staff["anna"], [r1], with_access=frozenset({r1}))
        assert on_the_way[r1].access == "Nyckelbox vid dörren, kod 4411"
        assert list(await read_homes(conn, staff["carl"], [r1, r3])) == [r3]
        with pytest.raises(DirectoryError, match="no resident nobody-1"):
            await store_entries(conn, [DirectoryEntry(resident="nobody-1", name="X")])
        # held apart: nothing of it in the events or the inventory tables
        assert await conn.fetchval("SELECT count(*) FROM residents WHERE room LIKE '%Berg%'") == 0


def test_site_load_and_import_csv_commands(db_schema: str, unique: str, tmp_path: Path) -> None:
    env = {"VAKA_DB__DSN": PG_DSN, "VAKA_DB__DB_SCHEMA": db_schema}
    inventory = Inventory(
        sites=sites_for(unique),
        directory=[DirectoryEntry(resident=f"{unique}-r2", name="Olle Ström", address="Backen 2", access="Kod 1234")],
    )
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump(inventory.model_dump(mode="json")), encoding="utf-8")
    loaded = vaka("site", "load", str(site_file), env=env)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert "1 directory entries" in loaded.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("resident_id;namn\nnobody-9;X\n", encoding="utf-8")
    refused = vaka("resident", "import-csv", str(bad), env=env)
    assert refused.returncode == 1
    assert "no resident nobody-9" in refused.stdout
    assert "nothing imported" in refused.stdout
    good = tmp_path / "export.csv"
    good.write_text(EXPORT.format(site=unique), encoding="utf-8-sig")
    imported = vaka("resident", "import-csv", str(good), env=env)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "2 entries imported" in imported.stdout
