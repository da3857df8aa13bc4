-- Consents, erasures, archive exports and invitations are records, like the audit logs: the runtime role adds rows and
-- makes only the one-way changes their life needs, each column from empty to a value once (a consent revoked, a link
-- used, a purge recorded); it never deletes a row, never un-revokes a consent, never rewrites what was recorded.
-- The owner (erasure, `vaka archive export --purge`, migrations) is not held: it can drop a trigger anyway.
CREATE OR REPLACE FUNCTION vaka_one_way_record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_row jsonb;
    new_row jsonb;
    col     text;
BEGIN
    IF current_user = (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '% keeps its rows: the hub may not delete them', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    old_row := to_jsonb(OLD);
    new_row := to_jsonb(NEW);
    FOREACH col IN ARRAY coalesce(TG_ARGV, '{}'::text[]) LOOP
        IF old_row -> col <> 'null'::jsonb AND old_row -> col IS DISTINCT FROM new_row -> col THEN
            RAISE EXCEPTION '%.% is set once: the hub may not change it', TG_TABLE_NAME, col
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        old_row := old_row - col;
        new_row := new_row - col;
    END LOOP;
    IF old_row IS DISTINCT FROM new_row THEN
        RAISE EXCEPTION '% is append-only for the hub: only % may be set, once', TG_TABLE_NAME,
            coalesce(array_to_string(TG_ARGV, ', '), 'nothing') USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS consents_one_way ON consents;
CREATE TRIGGER consents_one_way BEFORE UPDATE OR DELETE ON consents
    FOR EACH ROW EXECUTE FUNCTION vaka_one_way_record('revoked_at', 'revoked_by');
DROP TRIGGER IF EXISTS relative_invitations_one_way ON relative_invitations;
CREATE TRIGGER relative_invitations_one_way BEFORE UPDATE OR DELETE ON relative_invitations
    FOR EACH ROW EXECUTE FUNCTION vaka_one_way_record('used_at');
DROP TRIGGER IF EXISTS resident_erasures_one_way ON resident_erasures;
CREATE TRIGGER resident_erasures_one_way BEFORE UPDATE OR DELETE ON resident_erasures
    FOR EACH ROW EXECUTE FUNCTION vaka_one_way_record();
DROP TRIGGER IF EXISTS archive_exports_one_way ON archive_exports;
CREATE TRIGGER archive_exports_one_way BEFORE UPDATE OR DELETE ON archive_exports
    FOR EACH ROW EXECUTE FUNCTION vaka_one_way_record('rows_purged', 'purged_at');

-- an export run again is a new row (the runtime role may not rewrite the first one); a purge updates the latest
ALTER TABLE archive_exports DROP CONSTRAINT IF EXISTS archive_exports_pkey;
ALTER TABLE archive_exports ADD COLUMN IF NOT EXISTS id bigserial;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'archive_exports_id_pkey') THEN
        ALTER TABLE archive_exports ADD CONSTRAINT archive_exports_id_pkey PRIMARY KEY (id);
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS archive_exports_package_idx ON archive_exports (package_id);
