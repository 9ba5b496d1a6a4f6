-- Initial schema. Times are TEXT in UTC RFC 3339 with nanoseconds
-- (fixed width, so text order is time order); JSON documents are TEXT.

-- loops: desired state (metadata, spec) and observed status of each loop.
-- The key and resource-version columns are authoritative; the metadata
-- document carries the rest (labels).
CREATE TABLE loops (
    team        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    uid         TEXT    NOT NULL UNIQUE,
    generation  INTEGER NOT NULL,
    etag        TEXT    NOT NULL,
    metadata    TEXT    NOT NULL,
    spec        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    create_time TEXT    NOT NULL,
    update_time TEXT    NOT NULL,
    delete_time TEXT,
    PRIMARY KEY (team, name)
);

-- decisions: every policy decision, referenced by loops' status and by
-- audit events.
CREATE TABLE decisions (
    id              TEXT NOT NULL PRIMARY KEY,
    time            TEXT NOT NULL,
    resource        TEXT NOT NULL,
    operation       TEXT NOT NULL,
    bundle_revision TEXT NOT NULL,
    result          TEXT NOT NULL
);

-- audit_events: the hash-chained audit trail; append only.
CREATE TABLE audit_events (
    seq         INTEGER NOT NULL PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    time        TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    resource    TEXT    NOT NULL,
    request_id  TEXT    NOT NULL,
    decision_id TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    details     TEXT,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL
);
CREATE INDEX audit_events_resource ON audit_events (resource, seq);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);

-- requests: idempotency records, request id -> resource it created/changed.
CREATE TABLE requests (
    request_id  TEXT NOT NULL PRIMARY KEY,
    resource    TEXT NOT NULL,
    create_time TEXT NOT NULL
);
