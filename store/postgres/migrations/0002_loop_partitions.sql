-- partitions: a copy of status.partitions, kept equal to it by every write
-- of a loop (CreateLoop, UpdateLoop, UpdateStatus), so that a team's
-- partition budget (TeamPartitions, read on every admission) is a SUM over
-- an index instead of decoding every loop's status document.
-- Mirrors store/sqlite/migrations/0002_loop_partitions.sql.
ALTER TABLE loops ADD COLUMN partitions bigint NOT NULL DEFAULT 0;
UPDATE loops SET partitions = COALESCE((status->>'partitions')::bigint, 0);
-- Covers TeamPartitions: live loops of one team, with their partitions.
CREATE INDEX loops_live_partitions ON loops (team, name, partitions) WHERE delete_time IS NULL;
