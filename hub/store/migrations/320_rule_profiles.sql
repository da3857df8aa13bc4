-- A resident's rule profile (issue 17): the name of one of the loaded rule packs' `profiles:` (night hours, durations,
-- thresholds, which care rules are on), set by a nurse on the admin page or with `vaka resident profile`. Deleting
-- the row is "no profile": the pack's values. The running hub follows changes within a second: every insert and
-- update takes a new `version` from the sequence (by trigger, so SQL from elsewhere counts too) and a delete lowers
-- the count, so (count, max(version)) changes with every change.
CREATE SEQUENCE IF NOT EXISTS resident_rule_profiles_version;

CREATE TABLE IF NOT EXISTS resident_rule_profiles (
    resident_id  text PRIMARY KEY REFERENCES residents (id) ON DELETE CASCADE,
    profile      text NOT NULL CHECK (profile ~ '^[a-z][a-z0-9_]{0,63}$'),
    set_by       text NOT NULL,
    set_at       timestamptz NOT NULL,
    version      bigint NOT NULL DEFAULT nextval('resident_rule_profiles_version')
);

CREATE OR REPLACE FUNCTION resident_rule_profiles_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := nextval(format('%I.resident_rule_profiles_version', TG_TABLE_SCHEMA));
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS resident_rule_profiles_version ON resident_rule_profiles;
CREATE TRIGGER resident_rule_profiles_version BEFORE UPDATE ON resident_rule_profiles
    FOR EACH ROW EXECUTE FUNCTION resident_rule_profiles_version_bump();
