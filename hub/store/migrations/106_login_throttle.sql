-- Staff login throttling per (account, address) (issue 9): failed attempts and the time until which that pair
-- must wait, kept here so a restart does not reset it. A correct password from another address is never held.
CREATE TABLE login_throttle (
    username       text NOT NULL,
    address        text NOT NULL,
    failures       integer NOT NULL,
    last_failure   timestamptz NOT NULL,
    blocked_until  timestamptz NOT NULL,
    PRIMARY KEY (username, address)
);
CREATE INDEX login_throttle_last_failure ON login_throttle (last_failure);
