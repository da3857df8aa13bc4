-- Archive packages do not overlap (issue 27): each records the day its records start (`after`, NULL for the first
-- package, which starts at the beginning) as well as the day they end (`before`); the next export starts where the
-- latest one ended.
ALTER TABLE archive_exports ADD COLUMN IF NOT EXISTS after date;
