"""The follow-up commands: `vaka indicators`, `vaka report`, `vaka opendata export`, `vaka archive export`."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from hub.settings import Settings

COMMANDS = ("indicators", "report", "opendata", "archive")


def add_commands(sub: Any) -> None:
    """Register the follow-up commands on the `vaka` parser's subparsers."""
    p = sub.add_parser("indicators", help="usage indicators of a site (unit) as CSV or JSON (docs/indicators.md)")
    p.add_argument("--site", required=True)
    p.add_argument("--unit", help="one care unit (default: the whole site)")
    p.add_argument("--period", required=True, help="month 2026-11, quarter 2026-Q4 or year 2026")
    p.add_argument("--by", choices=["day", "week", "month"], help="break the period down")
    p.add_argument("--format", choices=["csv", "json"], default="csv", help="csv (default) or json")
    p.add_argument("--out", type=Path, help="file to write (default: standard output)")
    p.add_argument("--refresh-from", type=date.fromisoformat, metavar="DATE",
                   help="recompute the daily rollup from this day (events that arrived after their day was final)")  # fmt: skip

    p = sub.add_parser("report", help="the monthly follow-up report with charts (HTML, PDF or JSON)")
    p.add_argument("--site", required=True)
    p.add_argument("--unit", help="one care unit (default: the whole site)")
    p.add_argument("--month", required=True, help="e.g. 2026-11")
    p.add_argument("--format", choices=["html", "pdf", "json"], default="html", help="html (default), pdf or json")
    p.add_argument("--lang", choices=["sv", "en"], default="sv", help="the report's language (default sv)")
    p.add_argument("--out", type=Path, help="file to write (default: report-SITE-MONTH.FORMAT)")

    opendata = sub.add_parser("opendata", help="open data").add_subparsers(dest="opendata_command", required=True)
    p = opendata.add_parser(
        "export", help="a Frictionless data package with DCAT-AP-SE metadata; counts below 5 suppressed"
    )
    p.add_argument("--period", required=True, help="quarter 2026-Q4, month 2026-11 or year 2026")
    p.add_argument("--site", action="append", help="only these sites (default: all)")
    p.add_argument("--out", type=Path, required=True, help="directory to write the package to")
    p.add_argument("--publisher", help="the publishing municipality's name (default: followup.publisher)")
    p.add_argument("--publisher-uri", help="the publisher's URI (default: followup.publisher_uri)")
    p.add_argument("--contact-email", help="the contact point's e-mail (default: followup.contact_email)")
    p.add_argument(
        "--municipality-code", help="the municipality's four-digit code (default: followup.municipality_code)"
    )
    p.add_argument("--base-url", help="where the package will be published (default: followup.base_url)")
    p.add_argument("--allow-partial", action="store_true",
                   help="export a period not yet over, marked as preliminary in every title")  # fmt: skip

    archive = sub.add_parser("archive", help="e-archive").add_subparsers(dest="archive_command", required=True)
    p = archive.add_parser("export", help="an archival information package (E-ARK CSIP / FGS) of the logs before DATE")
    p.add_argument("--before", required=True, type=date.fromisoformat, help="export records older than this day")
    p.add_argument("--after", type=date.fromisoformat,
                   help="export records from this day on (default: where the latest package ended)")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="directory to write the package into")
    p.add_argument("--purge", action="store_true",
                   help="after the package is written and verified, delete the exported rows past retention")  # fmt: skip


async def main(args: argparse.Namespace, settings: Settings) -> int:
    """Run one follow-up command."""
    from hub.store.db import VakaConnection
    from hub.store.oneshot import with_database as _with_database

    now = datetime.now(UTC)
    if args.command == "indicators":
        from hub.followup.indicators import Scope, compute, last_tiers, parse_period
        from hub.store import rollup

        period = parse_period(args.period)
        periods = list(period.split(args.by)) if args.by else [period]

        async def indicators(conn: VakaConnection) -> list[dict[str, Any]]:
            await rollup.refresh(conn, now, since=args.refresh_from)
            rows = []
            for part in periods:
                result = await compute(conn, Scope(args.site, args.unit), part,
                                       accept_policy_s=settings.followup.accept_policy_s,
                                       last_tiers=last_tiers(settings.desk))  # fmt: skip
                rows += [{"site": args.site, "unit": args.unit or "", "period": part.label, **r} for r in result.rows()]
            return rows

        rows = await _with_database(settings, "indicators", indicators)
        if rows is None:
            return 2
        text = _csv(rows) if args.format == "csv" else json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
        if args.out:
            args.out.write_text(text, encoding="utf-8")
            print(f"{len(rows)} values written to {args.out}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return 0
    if args.command == "report":
        from hub.followup import report
        from hub.followup.indicators import Scope, last_tiers, month
        from hub.store import rollup

        period = month(args.month)
        out = args.out or Path(f"report-{args.site}{'-' + args.unit if args.unit else ''}-{period.label}.{args.format}")

        async def build(conn: VakaConnection) -> report.Report:
            await rollup.refresh(conn, now)
            return await report.build(conn, Scope(args.site, args.unit), period, now,
                                      accept_policy_s=settings.followup.accept_policy_s,
                                      last_tiers=last_tiers(settings.desk))  # fmt: skip

        built = await _with_database(settings, "report", build)
        if built is None:
            return 2
        report.write(built, args.format, args.lang, out)
        print(f"report for {args.site} {period.label} written to {out}")
        return 0
    if args.command == "opendata":
        from hub.followup.opendata import export_main as opendata_main

        return await opendata_main(args, settings, now)
    if args.command == "archive":
        from hub.followup.archive import export_main as archive_main

        return await archive_main(args, settings)
    return 2


def _csv(rows: list[dict[str, Any]]) -> str:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
