-- Night check-ins (digital tillsyn, issue 15): a plan per resident, one task per planned slot, every camera look and
-- every step in append-only logs. No image is ever stored: a look records who, which camera, when, how long.
CREATE TABLE IF NOT EXISTS checkin_plans (
    resident_id        text PRIMARY KEY REFERENCES residents (id) ON DELETE CASCADE,
    site               text NOT NULL,
    consent_ref        text NOT NULL,
    care_decision_ref  text NOT NULL,
    camera_device_id   text,
    travel_minutes     integer NOT NULL DEFAULT 0 CHECK (travel_minutes >= 0),
    opt_out_nights     date[] NOT NULL DEFAULT '{}',
    slots              jsonb NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS checkins (
    id                text PRIMARY KEY,
    site              text NOT NULL,
    unit              text,
    resident_id       text NOT NULL,
    camera_device_id  text,
    mode              text NOT NULL CHECK (mode IN ('camera', 'physical')),
    attempt           integer NOT NULL DEFAULT 1,
    parent_id         text,
    reason            text NOT NULL DEFAULT '',
    state             text NOT NULL CHECK (state IN ('open', 'done')),
    outcome           text,
    due_at            timestamptz NOT NULL,
    window_start      timestamptz NOT NULL,
    window_end        timestamptz NOT NULL,
    created_at        timestamptz NOT NULL,
    done_at           timestamptz,
    done_by           integer,
    overdue_alarmed   boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS checkins_open ON checkins (site, due_at) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS checkins_site_due ON checkins (site, due_at);

CREATE TABLE IF NOT EXISTS checkin_log (
    seq          bigserial PRIMARY KEY,
    checkin_id   text NOT NULL,
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL,
    detail       text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS checkin_log_checkin ON checkin_log (checkin_id, seq);

CREATE TABLE IF NOT EXISTS checkin_looks (
    seq               bigserial PRIMARY KEY,
    checkin_id        text NOT NULL,
    staff_id          integer NOT NULL,
    resident_id       text NOT NULL,
    camera_device_id  text NOT NULL,
    started_at        timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    outcome           text
);

CREATE OR REPLACE FUNCTION checkin_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
DROP TRIGGER IF EXISTS checkin_log_no_change ON checkin_log;
CREATE TRIGGER checkin_log_no_change BEFORE UPDATE OR DELETE ON checkin_log
    FOR EACH ROW EXECUTE FUNCTION checkin_log_append_only();
