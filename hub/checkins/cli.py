"""`vaka checkin plan FILE.yaml`: validate and store residents' check-in plans (docs/checkins.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hub.checkins.plan import PlanError, load_plans
from hub.settings import Settings


def add_commands(sub: Any) -> None:
    """Register `vaka checkin …`."""
    checkin = sub.add_parser("checkin", help="night check-ins by camera (digital tillsyn)").add_subparsers(
        dest="checkin_command", required=True
    )
    p = checkin.add_parser("plan", help="validate and store check-in plans from YAML; file:line for every mistake")
    p.add_argument("file", type=Path)
    p.add_argument("--check", action="store_true", help="validate only, store nothing")


async def main(args: argparse.Namespace, settings: Settings) -> int:
    """Run `vaka checkin plan`."""
    from hub.checkins.service import CheckinError, save_plans
    from hub.store.db import VakaConnection
    from hub.store.oneshot import with_database as _with_database

    try:
        plans = load_plans(args.file)
    except PlanError as exc:
        print(exc)
        return 1
    if args.check:
        print(f"{args.file}: {len(plans)} plan(s) OK")
        return 0

    async def work(conn: VakaConnection) -> int:
        await save_plans(conn, plans)
        return len(plans)

    try:
        stored = await _with_database(settings, "checkin plan", work)
    except CheckinError as exc:
        print(f"vaka checkin plan: {exc}; nothing stored")
        return 1
    if stored is None:
        return 2
    slots = sum(len(p.slots) for p in plans)
    print(f"{stored} check-in plan(s) stored, {slots} slot(s) a night (the running hub creates the tasks at each slot)")
    return 0
