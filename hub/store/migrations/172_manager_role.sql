-- Follow-up (issue 16): managers read the monthly report of their units on the staff page; nothing else.
ALTER TABLE staff DROP CONSTRAINT IF EXISTS staff_role_check;
ALTER TABLE staff ADD CONSTRAINT staff_role_check CHECK (role IN ('staff', 'nurse', 'admin', 'manager'));
