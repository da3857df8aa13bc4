-- Daily partitions of `events` (plain PostgreSQL), created ahead and dropped past retention by a function that runs
-- with its owner's rights: the hub's runtime role owns no table and cannot create one, yet keeps ingesting across
-- day boundaries by calling it. SECURITY DEFINER with a fixed search_path (this schema, then pg_temp last), so a
-- caller cannot slip its own objects in; it does one thing, with arguments checked. On TimescaleDB it does nothing.
CREATE OR REPLACE FUNCTION vaka_maintain_partitions(p_today date, p_late_days integer, p_ahead_days integer,
                                                    p_retention_days integer)
RETURNS TABLE (action text, partition_name text)
LANGUAGE plpgsql SECURITY DEFINER AS $fn$
DECLARE
    v_day date;
    v_name text;
    v_start timestamptz;
    v_end timestamptz;
    v_cutoff date;
    v_old record;
BEGIN
    IF p_today IS NULL OR p_late_days NOT BETWEEN 0 AND 7 OR p_ahead_days NOT BETWEEN 0 AND 60
       OR p_retention_days NOT BETWEEN 1 AND 36500 THEN
        RAISE EXCEPTION 'vaka_maintain_partitions: argument out of range';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('events')) IS DISTINCT FROM 'p' THEN
        RETURN;  -- not natively partitioned (TimescaleDB, or not set up yet)
    END IF;
    FOR v_day IN SELECT generate_series(p_today - p_late_days, p_today + p_ahead_days, interval '1 day')::date LOOP
        v_name := 'events_p' || to_char(v_day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(v_name) IS NOT NULL;
        v_start := v_day::timestamp AT TIME ZONE 'UTC';
        v_end := (v_day + 1)::timestamp AT TIME ZONE 'UTC';
        EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_name);
        -- that day's rows already in the default partition move into the new one
        EXECUTE format('WITH moved AS (DELETE FROM events_default WHERE ts >= $1 AND ts < $2 RETURNING *) '
                       'INSERT INTO %I SELECT * FROM moved', v_name) USING v_start, v_end;
        EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', v_name, v_start, v_end);
        action := 'created';
        partition_name := v_name;
        RETURN NEXT;
    END LOOP;
    v_cutoff := p_today - p_retention_days;
    FOR v_old IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_p[0-9]{8}$'
        ORDER BY c.relname
    LOOP
        CONTINUE WHEN to_date(substr(v_old.relname, 9), 'YYYYMMDD') >= v_cutoff;
        EXECUTE format('DROP TABLE %I', v_old.relname);
        action := 'dropped';
        partition_name := v_old.relname;
        RETURN NEXT;
    END LOOP;
    DELETE FROM events_default WHERE ts < v_cutoff::timestamp AT TIME ZONE 'UTC';
END
$fn$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION vaka_maintain_partitions(date, integer, integer, integer) '
                   'SET search_path = %I, pg_temp', current_schema());
END
$$;
ALTER FUNCTION vaka_maintain_partitions(date, integer, integer, integer) SET lock_timeout = '5s';
REVOKE ALL ON FUNCTION vaka_maintain_partitions(date, integer, integer, integer) FROM PUBLIC;
