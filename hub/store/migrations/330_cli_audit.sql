-- Changes made at the command line (`vaka resident away|profile`, `vaka device maintenance`, `vaka staff add|duty`)
-- are rows of admin_audit_log too. They have no staff account: staff_id is NULL and `actor` names the operator's
-- login (`cli:<user>`); a change on the admin page keeps its staff_id and an empty actor.
ALTER TABLE admin_audit_log ALTER COLUMN staff_id DROP NOT NULL;
ALTER TABLE admin_audit_log ADD COLUMN IF NOT EXISTS actor text NOT NULL DEFAULT '';
