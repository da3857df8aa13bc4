-- When the SCAIP receiver first saw a unit's message (ref, type): a resend as a new transaction, also after a
-- restart, keeps that first time, so the store keeps it once and the desk rings no second time (hub/scaip/receiver.py).
CREATE TABLE IF NOT EXISTS scaip_first_seen (
    site        text NOT NULL,
    device_id   text NOT NULL,
    ref         text NOT NULL,
    mty         text NOT NULL,
    first_seen  timestamptz NOT NULL,
    PRIMARY KEY (site, device_id, ref, mty)
);
CREATE INDEX IF NOT EXISTS scaip_first_seen_at_idx ON scaip_first_seen (first_seen);
