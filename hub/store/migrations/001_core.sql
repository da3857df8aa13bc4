-- Core tables: the inventory, rejected messages and the rule engine's snapshot.
-- The events table is created by hub/store/migrate.py (a hypertable on TimescaleDB, daily partitions otherwise).

CREATE TABLE sites (
    id          text PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    timezone    text NOT NULL DEFAULT 'Europe/Stockholm',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- residents are pseudonymous: an id, a room and a care unit; never a name or personal number
CREATE TABLE residents (
    id          text PRIMARY KEY,
    site        text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    room        text NOT NULL,
    unit        text NOT NULL DEFAULT 'default',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX residents_site_idx ON residents (site);

CREATE TABLE devices (
    id                      text PRIMARY KEY,
    site                    text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    kind                    text NOT NULL,
    vendor                  text NOT NULL DEFAULT 'native',
    resident                text REFERENCES residents (id) ON DELETE SET NULL,
    supervision_interval_s  integer NOT NULL DEFAULT 3600 CHECK (supervision_interval_s > 0),
    safety                  boolean NOT NULL DEFAULT false,
    -- operational state set by staff (device taken out for service): not touched by `vaka site load`
    maintenance             boolean NOT NULL DEFAULT false,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_site_idx ON devices (site);
CREATE INDEX devices_resident_idx ON devices (resident) WHERE resident IS NOT NULL;

-- messages that could not become events; the first 4 KiB of the payload, never more
CREATE TABLE rejected_messages (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    topic        text NOT NULL,
    payload      bytea NOT NULL CHECK (octet_length(payload) <= 4096),
    reason       text NOT NULL
);
-- a spool segment replayed twice (after a crash mid-drain) must not store a rejection twice
CREATE UNIQUE INDEX rejected_messages_dedup_idx ON rejected_messages (received_at, topic, md5(payload));

-- the rule engine's snapshot (timers, windows): one row, replaced on every save
CREATE TABLE engine_state (
    id        smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    saved_at  timestamptz NOT NULL DEFAULT now(),
    snapshot  jsonb NOT NULL
);
