-- When each device was installed and, once taken away, removed (local dates in the follow-up zone): the follow-up's
-- "devices installed" in a month is the inventory as it stood then, not today's inventory applied to every month.
-- `vaka site load` sets installed_on to the day a device first enters the inventory (or the date the file gives),
-- and removed_on when the file says so. Devices already in the inventory get the history it implies: the earliest of
-- their first event, their first rollup day and the day their row was last written.
ALTER TABLE devices ADD COLUMN IF NOT EXISTS installed_on date;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS removed_on date;
UPDATE devices SET installed_on = (updated_at AT TIME ZONE 'Europe/Stockholm')::date WHERE installed_on IS NULL;
DO $$
BEGIN
    -- events and the rollup are set up after the migrations: on a new schema they are not there yet
    IF to_regclass('events') IS NOT NULL THEN
        EXECUTE $q$
            UPDATE devices d SET installed_on = LEAST(d.installed_on, f.first_day)
            FROM (SELECT device_id, (min(ts) AT TIME ZONE 'Europe/Stockholm')::date AS first_day
                  FROM events GROUP BY device_id) f
            WHERE f.device_id = d.id
        $q$;
    END IF;
    IF to_regclass('followup_device_day') IS NOT NULL THEN
        EXECUTE $q$
            UPDATE devices d SET installed_on = LEAST(d.installed_on, f.first_day)
            FROM (SELECT device_id, min(day) AS first_day FROM followup_device_day GROUP BY device_id) f
            WHERE f.device_id = d.id
        $q$;
    END IF;
END
$$;
ALTER TABLE devices ALTER COLUMN installed_on SET DEFAULT (now() AT TIME ZONE 'Europe/Stockholm')::date;
ALTER TABLE devices ALTER COLUMN installed_on SET NOT NULL;
ALTER TABLE devices DROP CONSTRAINT IF EXISTS devices_removed_after_installed;
ALTER TABLE devices ADD CONSTRAINT devices_removed_after_installed
    CHECK (removed_on IS NULL OR removed_on >= installed_on);
