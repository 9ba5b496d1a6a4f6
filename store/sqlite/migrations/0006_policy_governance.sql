-- Policy governance (store/policy.go, docs/policy.md): uploaded policy
-- bundles with their approvals, the history of activations (the active
-- bundle is the latest one's), waivers, and a richer decision log.
-- Mirrors store/postgres/migrations/0005_policy_governance.sql.

-- policy_bundles: one row per uploaded bundle, keyed by its .manifest
-- revision. archive is the gzipped tarball as normalised on push (at most
-- store.MaxPolicyArchiveBytes, checked by the store), digest its hex
-- SHA-256. manifest and tests are JSON documents kept as written (NULL when
-- absent); files is a JSON array of the bundle's file paths.
CREATE TABLE policy_bundles (
    revision  TEXT NOT NULL PRIMARY KEY,
    digest    TEXT NOT NULL,
    archive   BLOB NOT NULL,
    manifest  TEXT,
    files     TEXT NOT NULL,
    signed    TEXT NOT NULL DEFAULT '',
    tests     TEXT,
    pushed_by TEXT NOT NULL,
    push_time TEXT NOT NULL
);
-- ListPolicyBundles: newest push first.
CREATE INDEX policy_bundles_push_time ON policy_bundles (push_time, revision);

-- policy_approvals: the reviews approving a bundle, in order (seq 1, 2, …
-- within the bundle).
CREATE TABLE policy_approvals (
    revision TEXT    NOT NULL REFERENCES policy_bundles (revision) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    reviewer TEXT    NOT NULL,
    time     TEXT    NOT NULL,
    comment  TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (revision, seq)
);

-- policy_activations: append only. seq is assigned by the store as
-- max(seq)+1 inside the (serialised) write transaction, so it has no gaps;
-- the primary key refuses a second row with the same seq. revision '' is
-- the bundle built into the binary.
CREATE TABLE policy_activations (
    seq      INTEGER NOT NULL PRIMARY KEY,
    revision TEXT    NOT NULL,
    action   TEXT    NOT NULL CHECK (action IN ('activate', 'rollback')),
    actor    TEXT    NOT NULL,
    time     TEXT    NOT NULL,
    comment  TEXT    NOT NULL DEFAULT ''
);

-- waivers: time-limited exceptions to one rule for one loop. revoked_by and
-- revoke_time stay NULL unless the waiver is revoked early.
CREATE TABLE waivers (
    id          TEXT NOT NULL PRIMARY KEY,
    team        TEXT NOT NULL,
    loop        TEXT NOT NULL,
    rule        TEXT NOT NULL,
    until       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    granted_by  TEXT NOT NULL,
    grant_time  TEXT NOT NULL,
    revoked_by  TEXT,
    revoke_time TEXT
);
-- ListWaivers: by (team, loop), in (team, loop, rule, grant time) order.
CREATE INDEX waivers_loop ON waivers (team, loop, rule, grant_time);

-- decisions: what was evaluated and how. input is the policy input (JSON
-- text, as written, NULL when not kept: recorded before this migration, or
-- over store.MaxDecisionInputBytes), input_digest its hex SHA-256,
-- duration_us the evaluation time in microseconds, kind what asked
-- ('request', 'plan', 'reevaluation', 'impact'). All NULL in older rows.
ALTER TABLE decisions ADD COLUMN input        TEXT;
ALTER TABLE decisions ADD COLUMN input_digest TEXT;
ALTER TABLE decisions ADD COLUMN duration_us  INTEGER;
ALTER TABLE decisions ADD COLUMN kind         TEXT;
-- ListDecisions: newest first, overall and per resource; PruneDecisions.
CREATE INDEX decisions_time ON decisions (time, id);
CREATE INDEX decisions_resource ON decisions (resource, time, id);

-- decision_rules: the rule ids each decision's result names in its deny,
-- warn or approval list (store.DecisionRules), written by PutDecision in
-- the same transaction, so that ListDecisions finds a rule's decisions by
-- exact match over an index, never by pattern-matching the result JSON.
CREATE TABLE decision_rules (
    rule        TEXT NOT NULL,
    decision_id TEXT NOT NULL REFERENCES decisions (id) ON DELETE CASCADE,
    PRIMARY KEY (rule, decision_id)
);
CREATE INDEX decision_rules_decision ON decision_rules (decision_id);
-- The rules of the decisions recorded before this migration.
INSERT OR IGNORE INTO decision_rules (rule, decision_id)
SELECT json_extract(e.value, '$.id'), d.id
FROM decisions d,
     (SELECT 'deny' AS list UNION ALL SELECT 'warn' UNION ALL SELECT 'approval') l,
     json_each(CASE WHEN json_valid(d.result) AND json_type(d.result, '$.' || l.list) = 'array'
                    THEN json_extract(d.result, '$.' || l.list) ELSE '[]' END) e
WHERE e.type = 'object'
  AND json_type(e.value, '$.id') = 'text'
  AND json_extract(e.value, '$.id') <> '';
