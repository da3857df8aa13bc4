-- Check-ins that end honestly (issue 26): an overdue task closes as 'missed' at the end of its night with the staff
-- on duty for its unit then (their ids), or a person closes it with a true outcome and, for 'other', a short note;
-- a look can carry a short note too.
ALTER TABLE checkins ADD COLUMN IF NOT EXISTS on_duty integer[];
ALTER TABLE checkins ADD COLUMN IF NOT EXISTS note text;
