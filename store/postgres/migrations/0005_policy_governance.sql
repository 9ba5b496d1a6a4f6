-- Policy governance (store/policy.go, docs/policy.md): uploaded policy
-- bundles with their approvals, the history of activations (the active
-- bundle is the latest one's), waivers, and a richer decision log.
-- Mirrors store/sqlite/migrations/0006_policy_governance.sql. Keys that
-- order listings are COLLATE "C" (byte order, as in SQLite); JSON the
-- store reads back as written is json, not jsonb.

-- policy_bundles: one row per uploaded bundle, keyed by its .manifest
-- revision. archive is the gzipped tarball as normalised on push (at most
-- store.MaxPolicyArchiveBytes, checked by the store), digest its hex
-- SHA-256. manifest and tests are JSON documents kept byte for byte (NULL
-- when absent); files is a JSON array of the bundle's file paths.
CREATE TABLE policy_bundles (
    revision  text COLLATE "C" NOT NULL PRIMARY KEY,
    digest    text        NOT NULL,
    archive   bytea       NOT NULL,
    manifest  json,
    files     jsonb       NOT NULL,
    signed    text        NOT NULL DEFAULT '',
    tests     json,
    pushed_by text        NOT NULL,
    push_time timestamptz NOT NULL
);
-- ListPolicyBundles: newest push first.
CREATE INDEX policy_bundles_push_time ON policy_bundles (push_time, revision);

-- policy_approvals: the reviews approving a bundle, in order (seq 1, 2, …
-- within the bundle).
CREATE TABLE policy_approvals (
    revision text COLLATE "C" NOT NULL REFERENCES policy_bundles (revision) ON DELETE CASCADE,
    seq      integer     NOT NULL,
    reviewer text        NOT NULL,
    time     timestamptz NOT NULL,
    comment  text        NOT NULL DEFAULT '',
    PRIMARY KEY (revision, seq)
);

-- policy_activations: append only. seq is assigned by the store as
-- max(seq)+1 inside the write transaction, which holds the writer lock, so
-- it has no gaps (a rolled-back append frees its seq); the primary key
-- refuses a second row with the same seq even from a writer that bypassed
-- the lock. revision '' is the bundle built into the binary.
CREATE TABLE policy_activations (
    seq      bigint      NOT NULL PRIMARY KEY,
    revision text COLLATE "C" NOT NULL,
    action   text        NOT NULL CHECK (action IN ('activate', 'rollback')),
    actor    text        NOT NULL,
    time     timestamptz NOT NULL,
    comment  text        NOT NULL DEFAULT ''
);

-- waivers: time-limited exceptions to one rule for one loop. revoked_by and
-- revoke_time stay NULL unless the waiver is revoked early.
CREATE TABLE waivers (
    id          text COLLATE "C" NOT NULL PRIMARY KEY,
    team        text COLLATE "C" NOT NULL,
    loop        text COLLATE "C" NOT NULL,
    rule        text COLLATE "C" NOT NULL,
    until       timestamptz NOT NULL,
    reason      text        NOT NULL,
    granted_by  text        NOT NULL,
    grant_time  timestamptz NOT NULL,
    revoked_by  text,
    revoke_time timestamptz
);
-- ListWaivers: by (team, loop), in (team, loop, rule, grant time) order.
CREATE INDEX waivers_loop ON waivers (team, loop, rule, grant_time);

-- decisions: what was evaluated and how. input is the policy input (json,
-- byte for byte, so input_digest — its hex SHA-256 — verifies against it;
-- NULL when not kept: recorded before this migration, or over
-- store.MaxDecisionInputBytes), duration_us the evaluation time in
-- microseconds, kind what asked ('request', 'plan', 'reevaluation',
-- 'impact'). All NULL in older rows.
ALTER TABLE decisions ADD COLUMN input        json;
ALTER TABLE decisions ADD COLUMN input_digest text;
ALTER TABLE decisions ADD COLUMN duration_us  bigint;
ALTER TABLE decisions ADD COLUMN kind         text;
-- ListDecisions: newest first, overall and per resource; PruneDecisions.
CREATE INDEX decisions_time ON decisions (time, id);
CREATE INDEX decisions_resource ON decisions (resource, time, id);

-- decision_rules: the rule ids each decision's result names in its deny,
-- warn or approval list (store.DecisionRules), written by PutDecision in
-- the same transaction, so that ListDecisions finds a rule's decisions by
-- exact match over an index, never by pattern-matching the result JSON.
CREATE TABLE decision_rules (
    rule        text NOT NULL,
    decision_id text NOT NULL REFERENCES decisions (id) ON DELETE CASCADE,
    PRIMARY KEY (rule, decision_id)
);
CREATE INDEX decision_rules_decision ON decision_rules (decision_id);
-- The rules of the decisions recorded before this migration.
INSERT INTO decision_rules (rule, decision_id)
SELECT DISTINCT e.value ->> 'id', d.id
FROM decisions d
CROSS JOIN LATERAL (VALUES ('deny'), ('warn'), ('approval')) AS l(list)
CROSS JOIN LATERAL json_array_elements(
    CASE WHEN json_typeof(d.result -> l.list) = 'array' THEN d.result -> l.list ELSE '[]'::json END) AS e(value)
WHERE json_typeof(e.value) = 'object'
  AND json_typeof(e.value -> 'id') = 'string'
  AND e.value ->> 'id' <> '';
