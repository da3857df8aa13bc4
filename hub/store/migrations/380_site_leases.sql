-- Hubs that own sites one at a time (issue 30, docs/ha.md). A lease per site: which hub process holds it, a fencing
-- token that goes up whenever another process takes the site, and when it runs out, by this database's clock. Every
-- desk row a hub writes in the HA profile carries the token it holds for the row's site; the triggers below refuse
-- one whose token is not the site's current one (SQLSTATE VK409), so a hub that stalled past its lease and woke up
-- cannot write for a site another hub took meanwhile. A site no hub ever leased (the single-node stack) is not
-- checked, and its rows carry no token.
CREATE TABLE IF NOT EXISTS site_leases (
    site        text PRIMARY KEY,
    hub_id      text NOT NULL,              -- the hub's configured name (ha.hub_id)
    owner       text NOT NULL,              -- the hub process: "{hub_id}/{incarnation}", new at every start
    token       bigint NOT NULL,            -- the fencing token: up by one whenever another process takes the site
    acquired_at timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    unowned_alarm_by text                   -- the hub that raised 'supervision lost' for it while nobody held it
);

ALTER TABLE desk_alarms ADD COLUMN IF NOT EXISTS fence bigint;
ALTER TABLE desk_alarm_log ADD COLUMN IF NOT EXISTS site text;
ALTER TABLE desk_alarm_log ADD COLUMN IF NOT EXISTS fence bigint;

-- each owned site's rule engine snapshot, where the next owner reads it (the single hub keeps engine_state)
CREATE TABLE IF NOT EXISTS site_engine_state (
    site        text PRIMARY KEY,
    saved_at    timestamptz NOT NULL,
    replay_from timestamptz NOT NULL,
    fence       bigint,
    snapshot    jsonb NOT NULL
);

CREATE OR REPLACE FUNCTION vaka_check_fence(p_site text, p_fence bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    current_token bigint;
    current_expires timestamptz;
BEGIN
    IF p_site IS NULL THEN
        RETURN;
    END IF;
    -- FOR SHARE: a takeover committing now is waited for, and its token is the one compared
    SELECT token, expires_at INTO current_token, current_expires FROM site_leases WHERE site = p_site FOR SHARE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_fence = current_token THEN
        RETURN;
    END IF;
    IF p_fence IS NULL AND current_expires < now() THEN
        RETURN;  -- nobody holds the site: the outside watch's 'supervision lost' for it
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'VK409',
        MESSAGE = format('site %s is fenced: token %s is not the current %s', p_site, p_fence, current_token);
END $$;

CREATE OR REPLACE FUNCTION vaka_fence_desk_alarm() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vaka_check_fence(NEW.site, NEW.fence);
    RETURN NEW;
END $$;

-- on INSERT (the hub's upsert always passes there first, ON CONFLICT or not); operators' plain UPDATEs are not fenced
DROP TRIGGER IF EXISTS desk_alarms_fenced ON desk_alarms;
CREATE TRIGGER desk_alarms_fenced BEFORE INSERT ON desk_alarms FOR EACH ROW EXECUTE FUNCTION vaka_fence_desk_alarm();
DROP TRIGGER IF EXISTS desk_alarm_log_fenced ON desk_alarm_log;
CREATE TRIGGER desk_alarm_log_fenced BEFORE INSERT ON desk_alarm_log FOR EACH ROW EXECUTE FUNCTION vaka_fence_desk_alarm();
DROP TRIGGER IF EXISTS site_engine_state_fenced ON site_engine_state;
CREATE TRIGGER site_engine_state_fenced BEFORE INSERT ON site_engine_state
    FOR EACH ROW EXECUTE FUNCTION vaka_fence_desk_alarm();
