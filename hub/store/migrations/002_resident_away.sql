-- A resident away or in hospital raises no care alarms. Set by a nurse (`vaka resident away`), like a device's
-- maintenance flag; `vaka site load` does not touch it.
ALTER TABLE residents ADD COLUMN away boolean NOT NULL DEFAULT false;
