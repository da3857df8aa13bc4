-- Alarm desk, staff accounts, sessions, push subscriptions and the resident access log (issue 5).
CREATE TABLE IF NOT EXISTS desk_alarms (
    id                  text PRIMARY KEY,
    key                 text NOT NULL,
    rule_id             text NOT NULL,
    category            text NOT NULL,
    severity            smallint NOT NULL,
    site                text NOT NULL,
    unit                text,
    resident_id         text,
    device_id           text,
    reason              text NOT NULL DEFAULT '',
    unregistered        boolean NOT NULL DEFAULT false,
    state               text NOT NULL,
    outcome             text,
    note                text,
    count               integer NOT NULL DEFAULT 1,
    raised_at           timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    accepted_at         timestamptz,
    accepted_by         text,
    closed_at           timestamptz,
    next_tier           integer NOT NULL DEFAULT 0,
    next_escalation_at  timestamptz,
    version             integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS desk_alarms_open ON desk_alarms (site) WHERE closed_at IS NULL;

CREATE TABLE IF NOT EXISTS desk_alarm_log (
    seq       bigserial PRIMARY KEY,
    alarm_id  text NOT NULL,
    at        timestamptz NOT NULL,
    actor     text NOT NULL,
    action    text NOT NULL,
    state     text NOT NULL,
    detail    text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS desk_alarm_log_alarm ON desk_alarm_log (alarm_id, seq);

CREATE OR REPLACE FUNCTION desk_alarm_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'desk_alarm_log is append-only';
END $$;
DROP TRIGGER IF EXISTS desk_alarm_log_no_change ON desk_alarm_log;
CREATE TRIGGER desk_alarm_log_no_change BEFORE UPDATE OR DELETE ON desk_alarm_log
    FOR EACH ROW EXECUTE FUNCTION desk_alarm_log_append_only();

CREATE TABLE IF NOT EXISTS staff (
    id             serial PRIMARY KEY,
    username       text NOT NULL UNIQUE,
    display_name   text NOT NULL DEFAULT '',
    role           text NOT NULL CHECK (role IN ('staff', 'nurse', 'admin')),
    password_hash  text NOT NULL,
    phone          text,
    lang           text NOT NULL DEFAULT 'sv' CHECK (lang IN ('sv', 'en')),
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS staff_units (
    staff_id  integer NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    site      text NOT NULL,
    unit      text NOT NULL,
    PRIMARY KEY (staff_id, site, unit)
);

CREATE TABLE IF NOT EXISTS staff_sessions (
    token_sha256  text PRIMARY KEY,
    staff_id      integer NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS push_subscriptions (
    endpoint    text PRIMARY KEY,
    staff_id    integer NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    p256dh      text NOT NULL,
    auth        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS resident_access_log (
    seq          bigserial PRIMARY KEY,
    at           timestamptz NOT NULL,
    staff_id     integer NOT NULL,
    role         text NOT NULL,
    site         text NOT NULL,
    resident_id  text NOT NULL,
    purpose      text NOT NULL
);
CREATE INDEX IF NOT EXISTS resident_access_log_resident ON resident_access_log (resident_id, at);
