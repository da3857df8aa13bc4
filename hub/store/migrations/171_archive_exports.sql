-- Archive exports (issue 16): each package written by `vaka archive export`, and what --purge deleted after it.
CREATE TABLE IF NOT EXISTS archive_exports (
    package_id     text PRIMARY KEY,
    before         date NOT NULL,
    mets_sha256    text NOT NULL,
    rows_exported  jsonb NOT NULL,
    rows_purged    jsonb,
    exported_at    timestamptz NOT NULL DEFAULT now(),
    purged_at      timestamptz
);
