"""The usage indicators: stable ids, their definitions (docs/indicators.md) and how each is computed in the database.

`compute(conn, scope, period)` returns every indicator for one site (and optionally one care unit) over one period of
local days. The heavy part (which devices reported, were active, handed out doses) reads the daily rollup
`followup_device_day`; alarms, outcomes, response times and escalations read the desk's tables.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg

from hub.model import VakaError
from hub.settings import DeskSettings
from hub.store.rollup import ZONE

Unit = Literal["count", "share", "seconds", "per_resident_night"]


class PeriodError(VakaError):
    """A period that cannot be read (e.g. '2026-13')."""


@dataclass(frozen=True, slots=True)
class Indicator:
    """One indicator: a stable id, what it is called, its unit and the dimensions its values are broken down by."""

    id: str
    section: str
    title_sv: str
    title_en: str
    unit: Unit
    dims: tuple[str, ...] = ()
    publishable: bool = True

    def title(self, lang: str) -> str:
        """The indicator's name in `lang` ('sv' or 'en')."""
        return self.title_sv if lang == "sv" else self.title_en


INDICATORS: tuple[Indicator, ...] = (
    Indicator(
        "tech.devices_installed", "technology", "Installerade enheter", "Devices installed", "count", ("device_class",)
    ),
    Indicator(
        "tech.devices_reporting",
        "technology",
        "Enheter som rapporterat",
        "Devices that reported",
        "count",
        ("device_class",),
    ),
    Indicator(
        "tech.devices_active",
        "technology",
        "Enheter i aktiv användning",
        "Devices in active use",
        "count",
        ("device_class",),
    ),
    Indicator(
        "tech.devices_alarming",
        "technology",
        "Enheter som gett larm",
        "Devices that raised an alarm",
        "count",
        ("device_class",),
    ),
    Indicator(
        "tech.devices_silent",
        "technology",
        "Enheter som tystnat",
        "Devices that went silent",
        "count",
        ("device_class",),
    ),
    Indicator(
        "tech.residents_with",
        "technology",
        "Brukare med tekniken",
        "Residents with the technology",
        "count",
        ("device_class",),
    ),
    Indicator(
        "tech.unused_share",
        "technology",
        "Andel oanvända enheter",
        "Share of devices unused",
        "share",
        ("device_class",),
    ),
    Indicator("alarms.count", "alarms", "Larm", "Alarms", "count", ("category", "rule", "severity")),
    Indicator("alarms.outcome", "alarms", "Larmens resultat", "Alarm outcomes", "count", ("category", "outcome")),
    Indicator(
        "alarms.false_per_resident_night",
        "alarms",
        "Falsklarm per brukarnatt",
        "False alarms per resident-night",
        "per_resident_night",
    ),
    Indicator("alarms.unregistered", "alarms", "Larm från okända enheter", "Alarms from unregistered devices", "count"),
    Indicator("response.accept_s", "response", "Tid tills larmet togs", "Time to accept", "seconds", ("stat",)),
    Indicator("response.on_site_s", "response", "Tid till på plats", "Time to on site", "seconds", ("stat",)),
    Indicator("response.resolve_s", "response", "Tid till avslutat", "Time to resolved", "seconds", ("stat",)),
    Indicator(
        "response.accept_by_rule_s",
        "response",
        "Tid tills larmet togs, per larmtyp",
        "Time to accept per alarm type",
        "seconds",
        ("rule", "stat"),
    ),
    Indicator(
        "response.care_alarms_answered",
        "response",
        "Trygghetslarm besvarade",
        "Care alarms answered",
        "count",
        ("rule", "status"),
    ),
    Indicator(
        "response.escalation_tier_reached",
        "response",
        "Larm efter högsta eskaleringsnivå",
        "Alarms by highest escalation tier reached",
        "count",
        ("tier",),
    ),
    Indicator(
        "response.escalation_repeats",
        "response",
        "Upprepade aviseringar på sista nivån",
        "Repeated notifications at the last tier",
        "count",
    ),
    Indicator(
        "response.not_accepted_in_policy",
        "response",
        "Larm som ingen tog inom policyns tid",
        "Alarms not accepted within policy",
        "count",
    ),
    Indicator(
        "technical.repair_s",
        "technical",
        "Medeltid till åtgärdat tekniskt fel",
        "Mean time to repair",
        "seconds",
        ("rule",),
    ),
    Indicator("technical.battery_replacements", "technical", "Batteribyten", "Battery replacements", "count"),
    Indicator("medication.doses", "medication", "Doser", "Doses", "count", ("status",)),
    Indicator("checkins.planned", "checkins", "Planerade tillsyner", "Check-ins planned", "count"),
    Indicator(
        "checkins.planned_done",
        "checkins",
        "Planerade tillsyner som genomförts",
        "Planned check-ins carried out",
        "count",
    ),
    Indicator(
        "checkins.done_rate",
        "checkins",
        "Andel planerade tillsyner som genomförts",
        "Share of planned check-ins carried out",
        "share",
    ),
    Indicator("checkins.done", "checkins", "Genomförda tillsyner", "Check-ins done", "count", ("mode",)),
    Indicator("checkins.second_looks", "checkins", "Andra tittningar", "Second looks", "count"),
    Indicator("checkins.overdue", "checkins", "Försenade tillsyner", "Check-ins overdue", "count"),
    Indicator("checkins.missed", "checkins", "Missade tillsyner", "Check-ins missed", "count"),
    Indicator("checkins.journeys_avoided", "checkins", "Undvikna resor", "Journeys avoided", "count"),
    Indicator("checkins.travel_minutes_saved", "checkins", "Sparad restid (min)", "Travel time saved (min)", "count"),
)
BY_ID = {i.id: i for i in INDICATORS}

REPAIR_RULES = ("device_silent", "battery_low", "camera_offline")
# alarms about the staff's own process, not about a resident or a device: kept apart from care and technical alarms
STAFF_PROCESS_RULES = ("checkin_overdue", "nobody_reached")
CATEGORIES = ("care", "technical", "staff_process")
# the follow-up category of an alarm row (the desk routes staff-process alarms as care alarms; the follow-up does not
# count them as such)
CATEGORY_SQL = "(CASE WHEN rule_id IN ('checkin_overdue', 'nobody_reached') THEN 'staff_process' ELSE category END)"
SILENT_RULES = ("device_silent", "camera_offline")


@dataclass(frozen=True, slots=True)
class Period:
    """Local days [start, end) in the follow-up zone, with a label such as '2026-11', '2026-Q4' or '2026-W48'."""

    start: date
    end: date
    label: str

    @property
    def days(self) -> int:
        """How many days (resident-nights per resident) the period has."""
        return (self.end - self.start).days

    def bounds(self) -> tuple[datetime, datetime]:
        """The period as UTC instants."""
        zone = ZoneInfo(ZONE)
        start = datetime(self.start.year, self.start.month, self.start.day, tzinfo=zone)
        end = datetime(self.end.year, self.end.month, self.end.day, tzinfo=zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def previous(self) -> Period:
        """The period of the same kind just before (previous month, quarter, week or day)."""
        if len(self.label) == 7 and self.label[4] == "-" and self.label[5:].isdigit():
            return month(f"{(self.start - timedelta(days=1)):%Y-%m}")
        if "-Q" in self.label:
            prev = self.start - timedelta(days=1)
            return quarter(f"{prev.year}-Q{(prev.month - 1) // 3 + 1}")
        length = self.end - self.start
        return Period(self.start - length, self.start, f"{self.start - length}")

    def split(self, by: Literal["day", "week", "month"]) -> Iterator[Period]:
        """The period cut into days, ISO weeks or calendar months (the first and last may be partial)."""
        cursor = self.start
        while cursor < self.end:
            if by == "day":
                nxt, label = cursor + timedelta(days=1), cursor.isoformat()
            elif by == "week":
                nxt = cursor + timedelta(days=7 - cursor.weekday())
                iso = cursor.isocalendar()
                label = f"{iso.year}-W{iso.week:02d}"
            else:
                nxt = (cursor.replace(day=1) + timedelta(days=32)).replace(day=1)
                label = f"{cursor:%Y-%m}"
            nxt = min(nxt, self.end)
            yield Period(cursor, nxt, label)
            cursor = nxt


def month(text: str) -> Period:
    """'2026-11' as a period."""
    try:
        first = datetime.strptime(text, "%Y-%m").date()
    except ValueError as exc:
        msg = f"month {text!r} is not YYYY-MM (e.g. 2026-11)"
        raise PeriodError(msg) from exc
    days = calendar.monthrange(first.year, first.month)[1]
    return Period(first, first + timedelta(days=days), f"{first:%Y-%m}")


def quarter(text: str) -> Period:
    """'2026-Q4' as a period."""
    try:
        year_text, q_text = text.upper().split("-Q")
        year, q = int(year_text), int(q_text)
        if not 1 <= q <= 4:
            raise ValueError(q)
    except ValueError as exc:
        msg = f"quarter {text!r} is not YYYY-Qn (e.g. 2026-Q4)"
        raise PeriodError(msg) from exc
    start = date(year, 3 * q - 2, 1)
    end = date(year + 1, 1, 1) if q == 4 else date(year, 3 * q + 1, 1)
    return Period(start, end, f"{year}-Q{q}")


def parse_period(text: str) -> Period:
    """A month ('2026-11'), a quarter ('2026-Q4') or a year ('2026')."""
    if "Q" in text.upper():
        return quarter(text)
    if len(text) == 4 and text.isdigit():
        return Period(date(int(text), 1, 1), date(int(text) + 1, 1, 1), text)
    return month(text)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which part of the municipality: one site, optionally one care unit."""

    site: str
    unit: str | None = None


@dataclass(slots=True)
class Result:
    """Every indicator value of one scope and period: `values[indicator_id][dims] = value`."""

    scope: Scope
    period: Period
    values: dict[str, dict[tuple[tuple[str, str], ...], float | None]] = field(default_factory=dict)

    def add(self, indicator_id: str, value: float | None, **dims: Any) -> None:
        """Record one value; dims in the indicator's order."""
        key = tuple((d, str(dims[d])) for d in BY_ID[indicator_id].dims)
        self.values.setdefault(indicator_id, {})[key] = value

    def get(self, indicator_id: str, **dims: Any) -> float | None:
        """One value, or None when nothing was recorded for these dims."""
        key = tuple((d, str(dims[d])) for d in BY_ID[indicator_id].dims)
        return self.values.get(indicator_id, {}).get(key)

    def total(self, indicator_id: str) -> float:
        """The sum over every breakdown of a count indicator."""
        return float(sum(v for v in self.values.get(indicator_id, {}).values() if v is not None))

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows: indicator, dims, value (the JSON and CSV form)."""
        out = []
        for ind in INDICATORS:
            for key, value in sorted(self.values.get(ind.id, {}).items(), key=lambda kv: dims_order(kv[0])):
                out.append({"indicator": ind.id, **dict(key), "value": value})
        return out


# values that have an order of their own: statistics, dose statuses, answers
_ORDERED = {v: n for group in (("p50", "p90", "max"), ("due", "taken", "missed", "late"),
                               ("answered", "unanswered", "withdrawn")) for n, v in enumerate(group)}  # fmt: skip


def dims_order(key: tuple[tuple[str, str], ...]) -> tuple[tuple[int, float, str], ...]:
    """A sort key for a breakdown: numbers as numbers (tier 2 before tier 10), statistics as p50, p90, max (and
    doses, answers in their order), then text."""
    out = []
    for _, value in key:
        if value in _ORDERED:
            out.append((1, float(_ORDERED[value]), ""))
            continue
        try:
            out.append((0, float(value), ""))
        except ValueError:
            out.append((2, 0.0, value))
    return tuple(out)


_DEVICES_SQL = """
WITH inv AS (
    -- installed at some time in the period: installed before it ended, not removed before it began. A device that
    -- reported before its recorded installation (an inventory loaded after the devices were in use) was installed
    -- from the first month it reported
    SELECT d.id, d.kind AS device_class, d.resident
    FROM devices d LEFT JOIN residents r ON r.id = d.resident
         LEFT JOIN (SELECT device_id, min(month) AS first_month FROM followup_device_month WHERE site = $1
                    GROUP BY device_id) f ON f.device_id = d.id
    WHERE d.site = $1 AND ($2::text IS NULL OR r.unit = $2)
      AND (d.removed_on IS NULL OR d.removed_on > $3)
      AND LEAST(d.installed_on, f.first_month) < $4
), used AS (
    SELECT device_id, sum(events) AS events, sum(activity_events) AS activity,
           sum(med_due) AS med_due, sum(med_taken) AS med_taken, sum(med_missed) AS med_missed,
           sum(med_late) AS med_late
    FROM {source} WHERE site = $1 AND {day} >= $3 AND {day} < $4
      AND ($2::text IS NULL OR device_id IN (SELECT id FROM inv))
    GROUP BY device_id
), alarmed AS (
    SELECT device_id, bool_or(rule_id = ANY($7::text[])) AS silent,
           bool_or(category = 'care' AND NOT rule_id = ANY($8::text[])) AS care
    FROM desk_alarms
    WHERE site = $1 AND raised_at >= $5 AND raised_at < $6 AND device_id IS NOT NULL AND NOT unregistered
    GROUP BY device_id
)
SELECT inv.device_class,
       count(*) AS installed,
       count(*) FILTER (WHERE used.events > 0) AS reporting,
       count(*) FILTER (WHERE used.activity > 0 OR alarmed.care) AS active,
       count(alarmed.device_id) AS alarming,
       count(*) FILTER (WHERE alarmed.silent) AS silent,
       count(DISTINCT inv.resident) AS residents,
       coalesce(sum(used.med_due), 0) AS med_due, coalesce(sum(used.med_taken), 0) AS med_taken,
       coalesce(sum(used.med_missed), 0) AS med_missed, coalesce(sum(used.med_late), 0) AS med_late
FROM inv LEFT JOIN used ON used.device_id = inv.id LEFT JOIN alarmed ON alarmed.device_id = inv.id
GROUP BY inv.device_class ORDER BY inv.device_class
"""


def devices_sql(period: Period) -> str:
    """The devices query, reading whole months from the month rollup and anything else from the days."""
    if period.start.day == 1 and period.end.day == 1:
        return _DEVICES_SQL.format(source="followup_device_month", day="month")
    return _DEVICES_SQL.format(source="followup_device_day", day="day")


_ALARMS_WHERE = "site = $1 AND ($2::text IS NULL OR unit = $2) AND raised_at >= $3 AND raised_at < $4"

_ALARM_COUNTS_SQL = f"""
SELECT {CATEGORY_SQL} AS category, rule_id, severity,
       coalesce(outcome, CASE WHEN state = 'cancelled' THEN 'cancelled' WHEN closed_at IS NULL THEN 'open'
                              ELSE state END) AS outcome,
       unregistered, count(*) AS n
FROM desk_alarms WHERE {_ALARMS_WHERE}
GROUP BY 1, 2, 3, 4, 5
"""

# time to accept = the first staff action on the alarm (accept, on my way, on site or a resolve straight away)
_RESPONSE_SQL = f"""
WITH a AS (
    SELECT a.id, a.rule_id, a.raised_at, a.state, a.closed_at
    FROM desk_alarms a WHERE {_ALARMS_WHERE} AND {CATEGORY_SQL} = 'care'
), l AS (
    -- one pass over the log rows of those alarms (written when or after they were raised: from the period's start)
    SELECT l.alarm_id, min(l.at) FILTER (WHERE l.actor LIKE 'staff:%') AS first_staff,
           min(l.at) FILTER (WHERE l.state = 'on_site') AS on_site
    FROM desk_alarm_log l JOIN a ON a.id = l.alarm_id
    WHERE l.at >= $3
    GROUP BY l.alarm_id
), t AS (
    SELECT a.rule_id, a.state, l.first_staff IS NOT NULL AS answered,
           extract(epoch FROM l.first_staff - a.raised_at)::float8 AS accept_s,
           extract(epoch FROM l.on_site - a.raised_at)::float8 AS on_site_s,
           CASE WHEN a.state = 'resolved' THEN extract(epoch FROM a.closed_at - a.raised_at)::float8 END AS resolve_s,
           (l.first_staff IS NULL AND a.state <> 'cancelled')
               OR extract(epoch FROM l.first_staff - a.raised_at) > $5 AS late
    FROM a LEFT JOIN l ON l.alarm_id = a.id
)
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY accept_s) AS accept_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY accept_s) AS accept_p90,
       max(accept_s) AS accept_max,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY on_site_s) AS on_site_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY on_site_s) AS on_site_p90,
       max(on_site_s) AS on_site_max,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY resolve_s) AS resolve_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY resolve_s) AS resolve_p90,
       max(resolve_s) AS resolve_max,
       count(*) FILTER (WHERE late) AS late
FROM t
"""
_RESPONSE_BY_RULE_SQL = (
    _RESPONSE_SQL[: _RESPONSE_SQL.rindex("SELECT percentile_cont")]
    + """
SELECT rule_id,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY accept_s) AS accept_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY accept_s) AS accept_p90,
       max(accept_s) AS accept_max,
       count(*) FILTER (WHERE answered) AS answered,
       count(*) FILTER (WHERE NOT answered AND state <> 'cancelled') AS unanswered,
       count(*) FILTER (WHERE NOT answered AND state = 'cancelled') AS withdrawn
FROM t GROUP BY rule_id ORDER BY rule_id
"""
)

# a tier past the policy's last one is that last tier notified again (a repeat), never a tier of its own: the tier
# number is capped at the last tier of the alarm's category ($5 categories, $6 their last tier numbers)
_ESCALATIONS_SQL = f"""
WITH steps AS (
    SELECT l.alarm_id,
           LEAST(substring(l.detail FROM 'tier=([0-9]+)')::int,
                 coalesce((SELECT t.last FROM unnest($5::text[], $6::int[]) AS t(category, last)
                           WHERE t.category = a.category), 2147483647)) AS tier
    FROM desk_alarm_log l JOIN desk_alarms a ON a.id = l.alarm_id
    WHERE l.action = 'escalated' AND l.at >= $3
      AND a.{_ALARMS_WHERE.replace(" unit", " a.unit").replace("raised_at", "a.raised_at")}
), per_alarm AS (
    SELECT alarm_id, max(tier) AS reached, count(*) - count(DISTINCT tier) AS repeats FROM steps GROUP BY alarm_id
)
SELECT reached AS tier, count(*) AS alarms, sum(repeats) AS repeats FROM per_alarm GROUP BY reached ORDER BY reached
"""

_REPAIR_SQL = """
SELECT rule_id, avg(extract(epoch FROM closed_at - raised_at))::float8 AS repair_s, count(*) AS n
FROM desk_alarms
WHERE site = $1 AND ($2::text IS NULL OR unit = $2) AND closed_at >= $3 AND closed_at < $4
  AND category = 'technical' AND rule_id = ANY($5::text[])
GROUP BY rule_id ORDER BY rule_id
"""

# a camera look that settled the check-in ("seen, calm") replaced a visit: a journey there and back avoided
_CHECKINS_SQL = """
WITH RECURSIVE chain AS (
    -- every planned slot with the tasks that followed it (second look, visit), however deep
    SELECT c.id AS slot, c.id, c.state, c.outcome FROM checkins c
    WHERE c.parent_id IS NULL AND c.site = $1 AND ($2::text IS NULL OR c.unit = $2) AND c.due_at >= $3 AND c.due_at < $4
    UNION ALL
    SELECT chain.slot, f.id, f.state, f.outcome FROM checkins f JOIN chain ON f.parent_id = chain.id
), slots AS (
    -- carried out: someone saw the resident (a look or a visit); missed, not needed or other is not; a slot closed
    -- because the resident was away or in hospital was not due after all
    SELECT slot, bool_or(state = 'done' AND outcome IN ('seen_calm', 'seen_needs_visit', 'visited',
                                                        'visited_needs_help', 'visited_instead')) AS carried_out
    FROM chain GROUP BY slot HAVING NOT bool_or(outcome IS NOT DISTINCT FROM 'away')
)
SELECT (SELECT count(*) FROM slots) AS planned, (SELECT count(*) FILTER (WHERE carried_out) FROM slots) AS planned_done,
       count(*) FILTER (WHERE c.state = 'done' AND c.mode = 'camera' AND c.outcome LIKE 'seen%') AS camera,
       count(*) FILTER (WHERE c.state = 'done' AND c.outcome LIKE 'visited%') AS physical,
       count(*) FILTER (WHERE c.attempt = 2 AND c.mode = 'camera') AS second_looks,
       count(*) FILTER (WHERE c.overdue_alarmed) AS overdue,
       count(*) FILTER (WHERE c.outcome = 'missed') AS missed,
       count(*) FILTER (WHERE c.state = 'done' AND c.mode = 'camera' AND c.outcome = 'seen_calm') AS avoided,
       coalesce(sum(2 * p.travel_minutes) FILTER (WHERE c.state = 'done' AND c.mode = 'camera'
                                                  AND c.outcome = 'seen_calm'), 0) AS minutes
FROM checkins c LEFT JOIN checkin_plans p ON p.resident_id = c.resident_id
WHERE c.site = $1 AND ($2::text IS NULL OR c.unit = $2) AND c.due_at >= $3 AND c.due_at < $4
"""

_RESIDENTS_SQL = "SELECT count(*) FROM residents WHERE site = $1 AND ($2::text IS NULL OR unit = $2)"


def last_tiers(desk: DeskSettings) -> dict[str, int]:
    """The number of the last escalation tier per alarm category (the highest any policy of the category has)."""
    out = {}
    for category in ("care", "technical"):
        lasts = [len(p.tiers) - 1 for p in desk.policies if p.category in (category, "*")]
        out[category] = max(lasts, default=0)
    return out


async def compute(
    conn: asyncpg.Connection,
    scope: Scope,
    period: Period,
    *,
    accept_policy_s: float = 300.0,
    last_tiers: dict[str, int] | None = None,
) -> Result:
    """Every indicator for `scope` over `period`, computed in the database.

    `last_tiers` is the number of the last escalation tier per alarm category (settings: `last_escalation_tiers`):
    a tier number past it is a repeat of that last tier.
    """
    result = Result(scope, period)
    start_ts, end_ts = period.bounds()
    site, unit = scope.site, scope.unit

    med = {"due": 0, "taken": 0, "missed": 0, "late": 0}
    for row in await conn.fetch(
        devices_sql(period),
        site,
        unit,
        period.start,
        period.end,
        start_ts,
        end_ts,
        list(SILENT_RULES),
        list(STAFF_PROCESS_RULES),
    ):
        cls = row["device_class"]
        installed = int(row["installed"])
        result.add("tech.devices_installed", installed, device_class=cls)
        result.add("tech.devices_reporting", int(row["reporting"]), device_class=cls)
        result.add("tech.devices_active", int(row["active"]), device_class=cls)
        result.add("tech.devices_alarming", int(row["alarming"]), device_class=cls)
        result.add("tech.devices_silent", int(row["silent"]), device_class=cls)
        result.add("tech.residents_with", int(row["residents"]), device_class=cls)
        unused = (installed - int(row["reporting"])) / installed if installed else None
        result.add("tech.unused_share", unused, device_class=cls)
        for status in med:
            med[status] += int(row[f"med_{status}"])
    if not med["due"]:
        # a robot that does not announce doses: every dose ends taken or missed
        med["due"] = med["taken"] + med["missed"]
    for status, n in med.items():
        result.add("medication.doses", n, status=status)

    false_care = 0
    unregistered = 0
    outcomes: dict[tuple[str, str], int] = {}
    for row in await conn.fetch(_ALARM_COUNTS_SQL, site, unit, start_ts, end_ts):
        n = int(row["n"])
        key = {"category": row["category"], "rule": row["rule_id"], "severity": row["severity"]}
        result.add("alarms.count", (result.get("alarms.count", **key) or 0) + n, **key)
        outcomes[(row["category"], row["outcome"])] = outcomes.get((row["category"], row["outcome"]), 0) + n
        if row["category"] == "care" and row["outcome"] == "false_alarm":
            false_care += n
        if row["unregistered"]:
            unregistered += n
    for (category, outcome), n in sorted(outcomes.items()):
        result.add("alarms.outcome", n, category=category, outcome=outcome)
    result.add("alarms.unregistered", unregistered)
    residents = int(await conn.fetchval(_RESIDENTS_SQL, site, unit))
    resident_nights = residents * period.days
    result.add("alarms.false_per_resident_night", false_care / resident_nights if resident_nights else None)

    resp = await conn.fetchrow(_RESPONSE_SQL, site, unit, start_ts, end_ts, accept_policy_s)
    assert resp is not None
    for name in ("accept", "on_site", "resolve"):
        for stat in ("p50", "p90", "max"):
            result.add(f"response.{name}_s", resp[f"{name}_{stat}"], stat=stat)
    result.add("response.not_accepted_in_policy", int(resp["late"]))
    for by_rule in await conn.fetch(_RESPONSE_BY_RULE_SQL, site, unit, start_ts, end_ts, accept_policy_s):
        rule = by_rule["rule_id"]
        for stat in ("p50", "p90", "max"):
            result.add("response.accept_by_rule_s", by_rule[f"accept_{stat}"], rule=rule, stat=stat)
        for status in ("answered", "unanswered", "withdrawn"):
            result.add("response.care_alarms_answered", int(by_rule[status]), rule=rule, status=status)
    tiers = last_tiers or {}
    repeats = 0
    for esc in await conn.fetch(
        _ESCALATIONS_SQL, site, unit, start_ts, end_ts, list(tiers), [int(v) for v in tiers.values()]
    ):
        result.add("response.escalation_tier_reached", int(esc["alarms"]), tier=esc["tier"])
        repeats += int(esc["repeats"])
    result.add("response.escalation_repeats", repeats)

    replaced = 0
    for rep in await conn.fetch(_REPAIR_SQL, site, unit, start_ts, end_ts, list(REPAIR_RULES)):
        result.add("technical.repair_s", rep["repair_s"], rule=rep["rule_id"])
        if rep["rule_id"] == "battery_low":
            replaced = int(rep["n"])
    result.add("technical.battery_replacements", replaced)
    if await conn.fetchval("SELECT to_regclass('checkins') IS NOT NULL"):
        ci = await conn.fetchrow(_CHECKINS_SQL, site, unit, start_ts, end_ts)
        assert ci is not None
        planned = int(ci["planned"])
        result.add("checkins.planned", planned)
        result.add("checkins.planned_done", int(ci["planned_done"]))
        result.add("checkins.done_rate", int(ci["planned_done"]) / planned if planned else None)
        result.add("checkins.done", int(ci["camera"]), mode="camera")
        result.add("checkins.done", int(ci["physical"]), mode="physical")
        result.add("checkins.second_looks", int(ci["second_looks"]))
        result.add("checkins.overdue", int(ci["overdue"]))
        result.add("checkins.missed", int(ci["missed"]))
        result.add("checkins.journeys_avoided", int(ci["avoided"]))
        result.add("checkins.travel_minutes_saved", int(ci["minutes"]))
    return result


async def units(conn: asyncpg.Connection, site: str) -> list[str]:
    """The care units of a site, from the inventory."""
    return [r["unit"] for r in await conn.fetch("SELECT DISTINCT unit FROM residents WHERE site = $1 ORDER BY 1", site)]
