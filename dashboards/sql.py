"""The SQL behind the database panels, for Grafana's PostgreSQL data source (connected as the read-only role).

Grafana macros: `$__timeFilter(col)`, `$__timeFrom()`, `$__timeTo()`, `$__timeGroupAlias(col, interval)` (with the
data source's TimescaleDB option on it becomes `time_bucket(...)`), and the dashboard variable `$site` (multi-value,
"All" included). Times are the dashboard's range, never `now()`, so a past night reads the same as tonight.
Residents appear only by pseudonym, and no panel reads a free-text field a person typed.
"""

from __future__ import annotations

SITE = "site IN ($site)"

# --- alarm flow ---------------------------------------------------------------------------------------------------

ALARMS_BY_CATEGORY_OVER_TIME = f"""
SELECT $__timeGroupAlias(raised_at, '1h'), category AS metric, count(*) AS value
FROM desk_alarms
WHERE $__timeFilter(raised_at) AND {SITE}
GROUP BY 1, 2
ORDER BY 1
"""

ALARMS_BY_RULE_CATEGORY_SITE = f"""
SELECT site, category, rule_id AS rule, count(*) AS alarms,
       count(*) FILTER (WHERE outcome = 'false_alarm') AS false_alarms,
       count(*) FILTER (WHERE closed_at IS NULL) AS open
FROM desk_alarms
WHERE $__timeFilter(raised_at) AND {SITE}
GROUP BY 1, 2, 3
ORDER BY alarms DESC
"""

# first staff action (accept, on my way, on site, resolve) and first "on site", per care alarm
_RESPONSE = f"""
WITH care AS (
    SELECT id, raised_at FROM desk_alarms
    WHERE category = 'care' AND $__timeFilter(raised_at) AND {SITE}
), steps AS (
    SELECT c.id, c.raised_at,
           min(l.at) FILTER (WHERE l.action IN ('accepted', 'en_route', 'on_site', 'resolved')
                             AND l.actor LIKE 'staff:%') AS first_action,
           min(l.at) FILTER (WHERE l.action = 'on_site') AS on_site
    FROM care c JOIN desk_alarm_log l ON l.alarm_id = c.id
    GROUP BY c.id, c.raised_at
)
"""

RESPONSE_PERCENTILES = (
    _RESPONSE
    + """
SELECT 'accept' AS step,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_action - raised_at)) AS p50_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM first_action - raised_at)) AS p90_s,
       count(first_action) AS alarms
FROM steps WHERE first_action IS NOT NULL
UNION ALL
SELECT 'on site',
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM on_site - raised_at)),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM on_site - raised_at)),
       count(on_site)
FROM steps WHERE on_site IS NOT NULL
"""
)

RESPONSE_OVER_TIME = (
    _RESPONSE
    + """
SELECT $__timeGroupAlias(raised_at, '1h'),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_action - raised_at)) AS "accept p50",
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM first_action - raised_at)) AS "accept p90"
FROM steps WHERE first_action IS NOT NULL
GROUP BY 1
ORDER BY 1
"""
)

ESCALATIONS_BY_TIER = f"""
SELECT a.category, 'tier ' || (count(*) OVER (PARTITION BY l.alarm_id ORDER BY l.seq)) AS tier, l.alarm_id
FROM desk_alarm_log l JOIN desk_alarms a ON a.id = l.alarm_id
WHERE l.action = 'escalated' AND $__timeFilter(l.at) AND a.{SITE}
"""
ESCALATIONS_BY_TIER = f"""
SELECT category, tier, count(*) AS escalations
FROM ({ESCALATIONS_BY_TIER.strip()}) steps
GROUP BY 1, 2
ORDER BY 1, 2
"""

OUTCOMES = f"""
SELECT coalesce(outcome, CASE WHEN closed_at IS NULL THEN 'open' ELSE state END) AS outcome, count(*) AS alarms
FROM desk_alarms
WHERE $__timeFilter(raised_at) AND {SITE}
GROUP BY 1
ORDER BY 2 DESC
"""

# --- alarm path -------------------------------------------------------------------------------------------------

# Per site, over the range: the alarms that say a site's devices were not supervised (the hub blind to the broker
# for longer than reliability.blind_alarm_after_s) or the alarm path failed its self-test, and whether one was still
# open at the end of the range. Every selected site has a row, so "0" reads as "seen", not as "no data".
SUPERVISION_BY_SITE = """
SELECT s.id AS site,
       count(a.id) FILTER (WHERE a.rule_id = 'supervision_lost') AS supervision_lost,
       count(a.id) FILTER (WHERE a.rule_id = 'supervision_lost'
                           AND (a.closed_at IS NULL OR a.closed_at > $__timeTo())) AS blind_at_end,
       count(a.id) FILTER (WHERE a.rule_id = 'canary_failed') AS canary_failed
FROM sites s
LEFT JOIN desk_alarms a
       ON a.site = s.id AND a.rule_id IN ('supervision_lost', 'canary_failed')
      AND a.raised_at <= $__timeTo() AND (a.closed_at IS NULL OR a.closed_at >= $__timeFrom())
WHERE s.id IN ($site)
GROUP BY s.id
ORDER BY s.id
"""

# --- devices --------------------------------------------------------------------------------------------------------

_LAST_HEARD = f"""
WITH last AS (
    SELECT device_id, max(ts) AS last_ts
    FROM events
    WHERE ts > $__timeTo()::timestamptz - interval '7 days' AND ts <= $__timeTo() AND {SITE}
    GROUP BY device_id
), state AS (
    SELECT d.site, d.kind, d.vendor, d.id,
           CASE WHEN d.maintenance THEN 'maintenance'
                WHEN l.last_ts IS NULL THEN 'not heard in 7 days'
                WHEN $__timeTo()::timestamptz - l.last_ts > make_interval(secs => d.supervision_interval_s) THEN 'silent'
                ELSE 'reporting' END AS state
    FROM devices d LEFT JOIN last l ON l.device_id = d.id
    WHERE d.{SITE}
)
"""

DEVICES_BY_STATE = (
    _LAST_HEARD
    + """
SELECT kind AS "class", vendor,
       count(*) FILTER (WHERE state = 'reporting') AS reporting,
       count(*) FILTER (WHERE state = 'silent') AS silent,
       count(*) FILTER (WHERE state = 'not heard in 7 days') AS "not heard in 7 days",
       count(*) FILTER (WHERE state = 'maintenance') AS maintenance
FROM state
GROUP BY 1, 2
ORDER BY silent DESC, 1, 2
"""
)

DEVICE_STATE_TOTALS = (
    _LAST_HEARD
    + """
SELECT state, count(*) AS devices FROM state GROUP BY 1 ORDER BY 1
"""
)

NEVER_HEARD = f"""
SELECT d.site, d.id AS device, d.kind AS "class", d.vendor, d.updated_at AS "in inventory since"
FROM devices d
WHERE d.{SITE} AND NOT d.maintenance
  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.device_id = d.id AND e.ts <= $__timeTo())
ORDER BY 1, 3, 2
"""

BATTERIES_LOWEST = f"""
SELECT DISTINCT ON (e.device_id) e.site, e.device_id AS device, d.kind AS "class", e.value AS "battery %",
       e.ts AS reported
FROM events e LEFT JOIN devices d ON d.id = e.device_id
WHERE e.kind = 'battery' AND $__timeFilter(e.ts) AND e.{SITE}
ORDER BY e.device_id, e.ts DESC
"""
BATTERIES_LOWEST = f"""
SELECT * FROM ({BATTERIES_LOWEST.strip()}) latest ORDER BY "battery %" LIMIT 20
"""

BATTERY_LEVELS_OVER_TIME = f"""
SELECT $__timeGroupAlias(e.ts, '1h'), d.kind AS metric, min(e.value) AS value
FROM events e JOIN devices d ON d.id = e.device_id
WHERE e.kind = 'battery' AND $__timeFilter(e.ts) AND e.{SITE}
GROUP BY 1, 2
ORDER BY 1
"""

EVENTS_OVER_TIME = f"""
SELECT $__timeGroupAlias(ts, '15m'), kind AS metric, count(*) AS value
FROM events
WHERE $__timeFilter(ts) AND {SITE} AND kind <> 'heartbeat'
GROUP BY 1, 2
ORDER BY 1
"""

# --- follow-up (docs/indicators.md; the rollup followup_device_day keeps days past the events' retention) ------------

TECHNOLOGY_IN_USE = f"""
WITH used AS (
    SELECT device_id, sum(events) AS events, sum(activity_events) AS activity
    FROM followup_device_day
    WHERE day BETWEEN $__timeFrom()::date AND $__timeTo()::date AND {SITE}
    GROUP BY device_id
)
SELECT d.kind AS "class", count(*) AS installed,
       count(u.device_id) FILTER (WHERE u.events > 0) AS reporting,
       count(u.device_id) FILTER (WHERE u.activity > 0) AS "in use",
       round(1 - count(u.device_id) FILTER (WHERE u.events > 0)::numeric / count(*), 3) AS "unused share"
FROM devices d LEFT JOIN used u ON u.device_id = d.id
WHERE d.{SITE}
GROUP BY 1
ORDER BY "unused share" DESC, 1
"""

ACTIVITY_PER_DAY = f"""
SELECT day::timestamptz AS "time", sum(activity_events) AS "activity events", sum(events) AS "all events",
       count(DISTINCT device_id) AS "devices reporting"
FROM followup_device_day
WHERE day BETWEEN $__timeFrom()::date AND $__timeTo()::date AND {SITE}
GROUP BY 1
ORDER BY 1
"""

MEDICATION = f"""
SELECT sum(med_due) AS due, sum(med_taken) AS taken, sum(med_missed) AS missed, sum(med_late) AS late
FROM followup_device_day
WHERE day BETWEEN $__timeFrom()::date AND $__timeTo()::date AND {SITE}
"""

FALSE_ALARMS_PER_RESIDENT_NIGHT = f"""
SELECT round(count(*) FILTER (WHERE a.category = 'care' AND a.outcome = 'false_alarm')::numeric
       / greatest((SELECT count(*) FROM residents WHERE {SITE})
                  * greatest(ceil(extract(epoch FROM $__timeTo()::timestamptz - $__timeFrom()::timestamptz) / 86400), 1), 1),
       4) AS "false alarms per resident-night"
FROM desk_alarms a
WHERE $__timeFilter(a.raised_at) AND a.{SITE}
"""

ALARMS_PER_UNIT = f"""
SELECT coalesce(unit, '(site)') AS unit, category, count(*) AS alarms,
       count(*) FILTER (WHERE outcome = 'assisted') AS assisted,
       count(*) FILTER (WHERE outcome = 'false_alarm') AS "false alarm",
       count(*) FILTER (WHERE accepted_at IS NULL AND closed_at IS NULL) AS "not accepted"
FROM desk_alarms
WHERE $__timeFilter(raised_at) AND {SITE}
GROUP BY 1, 2
ORDER BY 1, 2
"""

TECHNICAL_REPAIR = f"""
SELECT rule_id AS rule, count(*) AS closed,
       round(avg(extract(epoch FROM closed_at - raised_at))::numeric / 60, 1) AS "mean repair (min)"
FROM desk_alarms
WHERE category = 'technical' AND closed_at IS NOT NULL AND $__timeFilter(closed_at) AND {SITE}
GROUP BY 1
ORDER BY 1
"""

SITES = "SELECT id FROM sites ORDER BY 1"
