-- Relatives (issue 14): accounts, invitations, passkeys, sessions, the residents' consents, the erasure record,
-- and the access log widened to every person who reads resident data (staff and relatives, with their address).

CREATE TABLE IF NOT EXISTS relatives (
    id             serial PRIMARY KEY,
    email          text NOT NULL,
    password_hash  text,                       -- NULL until the invitation is accepted
    lang           text NOT NULL DEFAULT 'sv' CHECK (lang IN ('sv', 'en', 'fi', 'ar')),
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS relatives_email_idx ON relatives (lower(email));

-- a one-time link: only the SHA-256 of its token is stored
CREATE TABLE IF NOT EXISTS relative_invitations (
    token_sha256  text PRIMARY KEY,
    relative_id   integer NOT NULL REFERENCES relatives (id) ON DELETE CASCADE,
    resident_id   text NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);

CREATE TABLE IF NOT EXISTS relative_passkeys (
    credential_id  bytea PRIMARY KEY,
    relative_id    integer NOT NULL REFERENCES relatives (id) ON DELETE CASCADE,
    public_key     bytea NOT NULL,
    sign_count     bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz
);

CREATE TABLE IF NOT EXISTS relative_sessions (
    token_sha256  text PRIMARY KEY,
    relative_id   integer NOT NULL REFERENCES relatives (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL
);

-- One row per scope a resident (or their legal representative) consented to share with one relative. Revocation
-- sets revoked_at; rows are never deleted while the resident is in care (they are the record of what was allowed).
-- No foreign key to residents: a consent record outlives the resident's row in the inventory.
CREATE TABLE IF NOT EXISTS consents (
    id            bigserial PRIMARY KEY,
    resident_id   text NOT NULL,
    relative_id   integer NOT NULL REFERENCES relatives (id),
    scope         text NOT NULL CHECK (scope IN ('night_summary', 'alarm_notice', 'device_health')),
    given_by      text NOT NULL CHECK (given_by IN ('resident', 'representative')),
    recorded_by   text NOT NULL,
    recorded_at   timestamptz NOT NULL,
    text_version  text NOT NULL,
    valid_until   timestamptz,
    revoked_at    timestamptz,
    revoked_by    text,
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE INDEX IF NOT EXISTS consents_relative_idx ON consents (relative_id, resident_id);
CREATE INDEX IF NOT EXISTS consents_resident_idx ON consents (resident_id);

-- what `vaka resident erase` did: the pseudonymous id's hash, never the id itself
CREATE TABLE IF NOT EXISTS resident_erasures (
    id             bigserial PRIMARY KEY,
    resident_hash  text NOT NULL,
    erased_at      timestamptz NOT NULL,
    erased_by      text NOT NULL,
    counts         jsonb NOT NULL
);

-- The access log holds reads by relatives too, and where each read came from.
ALTER TABLE resident_access_log ALTER COLUMN staff_id DROP NOT NULL;
ALTER TABLE resident_access_log ADD COLUMN IF NOT EXISTS relative_id integer;
ALTER TABLE resident_access_log ADD COLUMN IF NOT EXISTS address text;
