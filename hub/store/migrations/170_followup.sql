-- Follow-up (issue 16): what the indicators read besides the events rollup (created in hub/followup/rollup.py after
-- the events table, as a continuous aggregate on TimescaleDB or a table refreshed by the hub on plain PostgreSQL).
CREATE INDEX IF NOT EXISTS desk_alarms_site_raised ON desk_alarms (site, raised_at);
CREATE INDEX IF NOT EXISTS desk_alarm_log_action ON desk_alarm_log (action, alarm_id) WHERE action = 'escalated';

-- how far the plain-PostgreSQL rollup has been refreshed (one row)
CREATE TABLE IF NOT EXISTS followup_refresh (
    id            smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    refreshed_to  date NOT NULL,
    refreshed_at  timestamptz NOT NULL DEFAULT now()
);
