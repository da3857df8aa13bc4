-- Every change to an account, its units or its sessions bumps that account's `staff.generation` (issue 9). The hub
-- compares the generations every second and ends what the change revokes (open staff pages, sessions, cached
-- units), also when the change came from another process (`vaka staff add --update`, an administrator's SQL).
ALTER TABLE staff ADD COLUMN generation bigint NOT NULL DEFAULT 0;

CREATE FUNCTION staff_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.generation := OLD.generation + 1;
    RETURN NEW;
END
$$;

CREATE TRIGGER staff_generation BEFORE UPDATE ON staff
    FOR EACH ROW WHEN (NEW.generation = OLD.generation) EXECUTE FUNCTION staff_generation_bump();

CREATE FUNCTION staff_generation_of_child() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE staff SET generation = generation + 1 WHERE id = NEW.staff_id;
    ELSE
        UPDATE staff SET generation = generation + 1 WHERE id = OLD.staff_id;
        IF TG_OP = 'UPDATE' AND NEW.staff_id <> OLD.staff_id THEN
            UPDATE staff SET generation = generation + 1 WHERE id = NEW.staff_id;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER staff_units_generation AFTER INSERT OR UPDATE OR DELETE ON staff_units
    FOR EACH ROW EXECUTE FUNCTION staff_generation_of_child();

-- a session ending (logout, expiry, password change) is a change; a session starting or being touched is not
CREATE TRIGGER staff_sessions_generation AFTER DELETE ON staff_sessions
    FOR EACH ROW EXECUTE FUNCTION staff_generation_of_child();
