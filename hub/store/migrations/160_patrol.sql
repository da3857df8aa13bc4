-- The night patrol's second round (issue 17): care alarms stay until a person resolves them, repeats ring again,
-- handover, who is on duty, and the resident directory (names, homes, how to get in) held apart from events.

-- a clear or device-side cancel marks the alarm "condition ended"; it stays open until staff resolve it
ALTER TABLE desk_alarms ADD COLUMN IF NOT EXISTS condition_ended_at timestamptz;
ALTER TABLE desk_alarms ADD COLUMN IF NOT EXISTS condition_note text;
-- a repeat (new incident) rings again: escalation counts from here; raised_at stays the first time
ALTER TABLE desk_alarms ADD COLUMN IF NOT EXISTS ringing_since timestamptz;
ALTER TABLE desk_alarms ADD COLUMN IF NOT EXISTS accepted_by_id integer;
ALTER TABLE desk_alarms ADD COLUMN IF NOT EXISTS incidents integer NOT NULL DEFAULT 1;
-- escalation found nobody: the site's "nobody reached" alarm was raised for this one
ALTER TABLE desk_alarms ADD COLUMN IF NOT EXISTS unreached boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS desk_alarms_raised ON desk_alarms (site, raised_at);
CREATE INDEX IF NOT EXISTS desk_alarm_log_at ON desk_alarm_log (at);

-- who is on duty now: staff sign on to a shift on the page (or a roster writes the rows); escalation goes to them
CREATE TABLE IF NOT EXISTS staff_duty (
    staff_id  integer PRIMARY KEY REFERENCES staff (id) ON DELETE CASCADE,
    since     timestamptz NOT NULL,
    until     timestamptz NOT NULL,
    CHECK (until > since)
);

-- what staff need to reach a person; never joined into events, read only by staff of the resident's unit and every
-- read is written to resident_access_log
CREATE TABLE IF NOT EXISTS resident_directory (
    resident_id          text PRIMARY KEY REFERENCES residents (id) ON DELETE CASCADE,
    display_name         text NOT NULL DEFAULT '',
    address              text NOT NULL DEFAULT '',
    access_instructions  text NOT NULL DEFAULT '',
    latitude             double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude            double precision CHECK (longitude BETWEEN -180 AND 180),
    contacts             jsonb NOT NULL DEFAULT '[]'::jsonb,
    notes                text NOT NULL DEFAULT '',
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- what nurses and admins changed in the browser: append-only like the alarm log
CREATE TABLE IF NOT EXISTS admin_audit_log (
    seq       bigserial PRIMARY KEY,
    at        timestamptz NOT NULL,
    staff_id  integer NOT NULL,
    action    text NOT NULL,
    target    text NOT NULL,
    detail    text NOT NULL DEFAULT ''
);
CREATE OR REPLACE FUNCTION admin_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit_log is append-only';
END $$;
DROP TRIGGER IF EXISTS admin_audit_log_no_change ON admin_audit_log;
CREATE TRIGGER admin_audit_log_no_change BEFORE UPDATE OR DELETE ON admin_audit_log
    FOR EACH ROW EXECUTE FUNCTION admin_audit_log_append_only();
