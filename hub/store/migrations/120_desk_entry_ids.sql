-- Alarm log and access log rows carry the id the desk gave them when they happened, so a row written again from the
-- desk's local journal (after a crash between the database's commit and the journal's cleanup) is stored once.
ALTER TABLE desk_alarm_log ADD COLUMN IF NOT EXISTS entry_id uuid;
CREATE UNIQUE INDEX IF NOT EXISTS desk_alarm_log_entry ON desk_alarm_log (entry_id);
ALTER TABLE resident_access_log ADD COLUMN IF NOT EXISTS entry_id uuid;
CREATE UNIQUE INDEX IF NOT EXISTS resident_access_log_entry ON resident_access_log (entry_id);
