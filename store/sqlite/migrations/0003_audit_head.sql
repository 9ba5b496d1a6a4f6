-- audit_head: where the audit chain ends, one row, moved by every append in
-- the same transaction. Verification compares the chain with it, so events
-- cut off the end of the chain are noticed (the hashes alone cannot show
-- that). Mirrors audit_head in store/postgres/migrations/0001_init.sql.
CREATE TABLE audit_head (
    singleton INTEGER NOT NULL PRIMARY KEY DEFAULT 1 CHECK (singleton = 1),
    seq       INTEGER NOT NULL,
    hash      TEXT    NOT NULL
);
INSERT INTO audit_head (seq, hash)
SELECT COALESCE((SELECT seq FROM audit_events ORDER BY seq DESC LIMIT 1), 0),
       COALESCE((SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1),
                '0000000000000000000000000000000000000000000000000000000000000000');
