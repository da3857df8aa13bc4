-- Rows of the desk (alarm snapshots, alarm log, access log, duty) that PostgreSQL refused for their content, set
-- aside so the rows behind them are written (issue 22.7). `row_text` is the row as Python shows it, with characters
-- PostgreSQL cannot store escaped; `error` is what PostgreSQL said. Append-only for the runtime role.
CREATE TABLE IF NOT EXISTS desk_refused_rows (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL,
    row_text text NOT NULL,
    error text NOT NULL
);
