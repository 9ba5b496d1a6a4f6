-- Initial schema; mirrors store/sqlite/migrations/0001_init.sql.
-- Keys are COLLATE "C" so (team, name) order — and so ListLoops paging —
-- is byte order whatever the database's locale, as in SQLite.
-- Times are timestamptz (microsecond precision; the store truncates to
-- microseconds before writing, see store.Timestamp and audit.Seal).

-- loops: desired state (metadata, spec) and observed status of each loop.
-- The key and resource-version columns are authoritative; the metadata
-- document carries the rest (labels).
CREATE TABLE loops (
    team        text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    uid         text        NOT NULL UNIQUE,
    generation  bigint      NOT NULL,
    etag        text        NOT NULL,
    metadata    jsonb       NOT NULL,
    spec        jsonb       NOT NULL,
    status      jsonb       NOT NULL,
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL,
    delete_time timestamptz,
    PRIMARY KEY (team, name)
);

-- decisions: every policy decision, referenced by loops' status and by
-- audit events. result is json (not jsonb) so it reads back byte for byte.
CREATE TABLE decisions (
    id              text        NOT NULL PRIMARY KEY,
    time            timestamptz NOT NULL,
    resource        text        NOT NULL,
    operation       text        NOT NULL,
    bundle_revision text        NOT NULL,
    result          json        NOT NULL
);

-- audit_events: the hash-chained audit trail; append only. details is the
-- canonical JSON that the hash covers (audit.CanonicalDetails), kept as is.
CREATE TABLE audit_events (
    seq         bigint      NOT NULL PRIMARY KEY,
    id          text        NOT NULL UNIQUE,
    time        timestamptz NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    resource    text        NOT NULL,
    request_id  text        NOT NULL,
    decision_id text        NOT NULL,
    outcome     text        NOT NULL,
    details     json,
    prev_hash   text        NOT NULL,
    hash        text        NOT NULL
);
CREATE INDEX audit_events_resource ON audit_events (resource, seq);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);

-- audit_head: the end of the chain, one row. An append locks it (SELECT ...
-- FOR UPDATE) for the rest of its transaction, so concurrent appends from
-- any number of processes queue up and each links to the one before: the
-- chain never forks or gaps. It also remembers how long the chain is, so
-- verification notices events cut off its end.
CREATE TABLE audit_head (
    singleton boolean NOT NULL PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint  NOT NULL,
    hash      text    NOT NULL
);
INSERT INTO audit_head (seq, hash)
VALUES (0, '0000000000000000000000000000000000000000000000000000000000000000');

-- requests: idempotency records, request id -> resource it created/changed.
CREATE TABLE requests (
    request_id  text        NOT NULL PRIMARY KEY,
    resource    text        NOT NULL,
    create_time timestamptz NOT NULL
);
