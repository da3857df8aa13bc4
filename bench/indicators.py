"""Follow-up benchmark: the indicator queries and a whole monthly report over a year of data for 1,000 residents.

The year is built from the simulator: `--sample-days` simulated days of the whole care organisation (every device's
real traffic, incidents with their ground truth) are aggregated into the daily rollup the indicators read and tiled
over the year; each incident the simulator injected becomes an alarm with a seeded response (accept, on site,
resolve, an escalation now and then), plus technical alarms. Raw events are not kept: the indicators never read
them (the rollup's refresh from raw events is measured by the store benchmarks and `--refresh-day`).

Prints one JSON object: rows loaded, each indicator query's median time (whole site and one unit, a mid-year
month) and the time of a whole monthly report (computed, rendered as JSON, HTML and PDF).
Uses VAKA_BENCH_DSN (default the local `test` database) in a throwaway schema.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import statistics
import time
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from hub.followup import indicators, report
from hub.followup.indicators import Scope, month
from hub.settings import DbSettings
from hub.simulation import SimConfig, Simulation
from hub.store import rollup
from hub.store.inventory import load_inventory
from hub.store.migrate import migrate

DSN = os.environ.get("VAKA_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/test")
ZONE = ZoneInfo(rollup.ZONE)
MED = {"medication_due": 2, "medication_taken": 3, "medication_missed": 4, "medication_late": 5}
CARE_RULES = {"fall", "alarm_button", "bed_exit_no_return", "entrance_door_night", "no_morning_activity",
              "long_bathroom_visit", "medication_missed", "water_leak", "smoke", "low_room_temperature"}  # fmt: skip


def _sample(
    residents: int, days: int, start: date
) -> tuple[Simulation, list[dict[str, list[int]]], list[dict[str, str | None]]]:
    """Simulate `days` days; per day and device [events, activity, due, taken, missed, late]; the incidents."""
    sim = Simulation(SimConfig(residents=residents, hours=24 * days, seed=11,
                               start=datetime(start.year, start.month, start.day, tzinfo=ZONE)))  # fmt: skip
    decode = msgspec.json.Decoder().decode
    per_day: list[dict[str, list[int]]] = [defaultdict(lambda: [0] * 6) for _ in range(days)]
    for msg in sim.iter_messages():
        parts = msg.topic.split("/")
        if len(parts) != 5:
            continue  # the simulated clock
        day = (msg.time.astimezone(ZONE).date() - start).days
        if not 0 <= day < days:
            continue
        kind = "device_online" if parts[4] == "status" else str(decode(msg.payload).get("kind", ""))
        row = per_day[day][parts[3]]
        row[0] += 1
        if kind not in rollup.SUPERVISION_KINDS:
            row[1] += 1
        if kind in MED:
            row[MED[kind]] += 1
    return sim, per_day, sim.truth()


async def _load(conn: asyncpg.Connection, args: argparse.Namespace, year_start: date) -> dict[str, int]:
    sim, per_day, truth = _sample(args.residents, args.sample_days, year_start)
    await load_inventory(conn, sim.inventory())
    site = sim.config.site
    units = {r.id: r.unit for r in sim.inventory().sites[0].residents}
    rows = []
    for d in range(args.days):
        day = year_start + timedelta(days=d)
        for device, c in per_day[d % args.sample_days].items():
            rows.append((day, site, device, *c))
    await conn.copy_records_to_table("followup_device_day", records=rows,
                                     columns=["day", "site", "device_id", "events", "activity_events", "med_due",
                                              "med_taken", "med_missed", "med_late"])  # fmt: skip
    rng = random.Random(5)
    alarms, log = [], []
    incidents = [t for t in truth if t["expected"]]
    n = 0
    for d in range(args.days):
        shift = timedelta(days=d - d % args.sample_days)
        for inc in incidents:
            raised = datetime.fromisoformat(str(inc["at"])) + shift + timedelta(seconds=rng.uniform(1, 30))
            if (raised.astimezone(ZONE).date() - year_start).days != d:
                continue
            n += 1
            aid = f"a{n}"
            rule = str(inc["expected"])
            care = rule in CARE_RULES
            accept = raised + timedelta(seconds=rng.expovariate(1 / 120))
            on_site = accept + timedelta(seconds=rng.uniform(120, 900))
            closed = on_site + timedelta(seconds=rng.uniform(60, 1200))
            outcome = rng.choices(["assisted", "false_alarm", "technical", "no_action"], [6, 3, 1, 1])[0]
            resident = str(inc["resident_id"])
            alarms.append((aid, aid, rule, "care" if care else "technical", 3, site, units.get(resident), resident,
                           str(inc["device_id"]), "", False, "resolved", outcome, raised, closed, closed))  # fmt: skip
            log += [(aid, raised, "rule", "raised", "raised", ""), (aid, accept, "staff:1", "accepted", "accepted", ""),
                    (aid, on_site, "staff:1", "on_site", "on_site", ""), (aid, closed, "staff:1", "resolved", "resolved", "")]  # fmt: skip
            if accept - raised > timedelta(seconds=180):
                log.append(
                    (aid, raised + timedelta(seconds=180), "desk", "escalated", "raised", "tier=1 audience=nurse n=2")
                )
    await conn.copy_records_to_table("desk_alarms", records=alarms,
                                     columns=["id", "key", "rule_id", "category", "severity", "site", "unit",
                                              "resident_id", "device_id", "reason", "unregistered", "state", "outcome",
                                              "raised_at", "updated_at", "closed_at"])  # fmt: skip
    await conn.copy_records_to_table("desk_alarm_log", records=log,
                                     columns=["alarm_id", "at", "actor", "action", "state", "detail"])  # fmt: skip
    await rollup.rebuild_months(conn, year_start)
    await conn.execute("ANALYZE")
    return {"rollup_rows": len(rows), "alarms": len(alarms), "alarm_log_rows": len(log),
            "devices": len(sim.inventory().sites[0].devices)}  # fmt: skip


async def _timed(conn: asyncpg.Connection, sql: str, *params: object, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        await conn.fetch(sql, *params)
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 2)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--sample-days", type=int, default=2, help="simulated days tiled over the year")
    args = parser.parse_args()
    schema = f"bench_ind_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(DSN)
    year_start = date(2025, 12, 1)
    try:
        await migrate(conn, DbSettings(dsn=DSN, db_schema=schema))
        await conn.execute("SELECT set_config('search_path', $1, false)", schema)
        t = time.perf_counter()
        loaded = await _load(conn, args, year_start)
        load_s = time.perf_counter() - t
        period = month("2026-06")
        start_ts, end_ts = period.bounds()
        unit = await conn.fetchval("SELECT min(unit) FROM residents")
        queries: dict[str, float] = {}
        for scope_name, u in (("site", None), ("unit", unit)):
            queries[f"{scope_name}.devices"] = await _timed(conn, indicators.devices_sql(period), "demo", u, period.start, period.end,
                                                            start_ts, end_ts, list(indicators.SILENT_RULES))  # fmt: skip
            queries[f"{scope_name}.alarm_counts"] = await _timed(
                conn, indicators._ALARM_COUNTS_SQL, "demo", u, start_ts, end_ts
            )
            queries[f"{scope_name}.response"] = await _timed(
                conn, indicators._RESPONSE_SQL, "demo", u, start_ts, end_ts, 300.0
            )
            queries[f"{scope_name}.escalations"] = await _timed(
                conn, indicators._ESCALATIONS_SQL, "demo", u, start_ts, end_ts
            )
            queries[f"{scope_name}.repair"] = await _timed(conn, indicators._REPAIR_SQL, "demo", u, start_ts, end_ts,
                                                           list(indicators.REPAIR_RULES))  # fmt: skip
        t = time.perf_counter()
        built = await report.build(conn, Scope("demo"), period, datetime.now(UTC))
        compute_s = time.perf_counter() - t
        t = time.perf_counter()
        json.dumps(report.to_json(built))
        json_s = time.perf_counter() - t
        t = time.perf_counter()
        report.to_html(built, "sv")
        html_s = time.perf_counter() - t
        t = time.perf_counter()
        report.to_pdf(built, "sv", io.BytesIO())
        pdf_s = time.perf_counter() - t
        print(json.dumps({
            "benchmark": "indicators", "residents": args.residents, "days": args.days,
            "sample_days": args.sample_days, **loaded, "load_s": round(load_s, 1),
            "query_ms": queries, "query_ms_max": max(queries.values()),
            "report_compute_s": round(compute_s, 3),
            "report_s": {"json": round(compute_s + json_s, 3), "html": round(compute_s + html_s, 3),
                         "pdf": round(compute_s + pdf_s, 3)},
            "goal": {"query_ms": 200, "report_s": 5},
            "load_1m": os.getloadavg()[0],
        }))  # fmt: skip
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
