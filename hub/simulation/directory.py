"""A fictional resident directory for the demo: names, homes, how to get in and a relative, one row per simulated
resident, as the care-records CSV `vaka resident import-csv` reads. Nobody here is a real person; the names are
common Swedish first names and surnames put together, the street is made up and the coordinates lie in a field."""

from __future__ import annotations

import csv
from pathlib import Path

from hub.simulation.devices import SimResident

_FIRST = ("Karin", "Sven", "Ingrid", "Bertil", "Margit", "Gunnar", "Elsa", "Stig", "Britt", "Holger", "Astrid", "Folke")
_LAST = ("Berg", "Lindqvist", "Holm", "Sjöberg", "Nyström", "Ek", "Dahl", "Lund", "Forsberg", "Strand", "Viklund")
_STREET = "Fiktiva vägen"
_CENTRE = (59.3000, 18.1000)  # a made-up place; the route page orders homes by distance from the user
_ACCESS = (
    "Nyckelbox vid ytterdörren, kod {code}",
    "Nyckel i nyckelskåpet på kontoret, bricka {code}",
    "Porttelefon 'Hemtjänst', sedan kod {code}",
)


def directory_rows(residents: list[SimResident]) -> list[dict[str, str]]:
    """One fictional directory row per resident, the same for the same population."""
    rows: list[dict[str, str]] = []
    for r in residents:
        n = r.number
        first, last = _FIRST[n % len(_FIRST)], _LAST[(n * 7) % len(_LAST)]
        rows.append(
            {
                "resident_id": r.id,
                "name": f"{first} {last}",
                "address": f"{_STREET} {n}, lgh {r.room}",
                "access": _ACCESS[n % len(_ACCESS)].format(code=f"{(n * 7919) % 9000 + 1000}"),
                "latitude": f"{_CENTRE[0] + (n % 5) * 0.004:.5f}",
                "longitude": f"{_CENTRE[1] + (n // 5) * 0.006:.5f}",
                "notes": "Demo: påhittad person" if n % 4 else "Demo: påhittad person. Katt, släpp inte ut den",
                "contact_name": f"{_FIRST[(n + 5) % len(_FIRST)]} {last}",
                "contact_phone": f"070-000 {n:02d} {n:02d}",
                "contact_relation": "barn" if n % 2 else "make/maka",
            }
        )
    return rows


def write_directory(residents: list[SimResident], path: Path) -> None:
    """Write the fictional directory as a semicolon-separated CSV with a header row."""
    rows = directory_rows(residents)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["resident_id"], delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
