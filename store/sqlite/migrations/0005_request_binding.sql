-- requests: bind each request id to who sent what (AIP-155). A retry
-- reusing an id must come from the same subject, for the same method, with
-- the same body (hash: hex SHA-256 of the canonical request body) to get
-- the recorded resource back. Still one row per request id, the first use
-- of it. Rows recorded before this migration keep '' in the new columns: a
-- legacy record, which cannot show that a retry is the same request.
-- Mirrors store/postgres/migrations/0004_request_binding.sql.
ALTER TABLE requests ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE requests ADD COLUMN method  TEXT NOT NULL DEFAULT '';
ALTER TABLE requests ADD COLUMN hash    TEXT NOT NULL DEFAULT '';
