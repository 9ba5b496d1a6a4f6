-- observations: the last observed SLO status and consumer lag of each loop
-- (docs/slo.md), and one latency sketch per loop and UTC day for the
-- 28-day window. Rows belong to their loop: deleting the loop deletes them.
-- Written only by the process that runs the reconciler. Mirrors
-- store/sqlite/migrations/0007_observations.sql.
CREATE TABLE loop_observations (
    team        text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    update_time timestamptz NOT NULL,
    doc         jsonb       NOT NULL,
    PRIMARY KEY (team, name),
    FOREIGN KEY (team, name) REFERENCES loops (team, name) ON DELETE CASCADE
);

CREATE TABLE loop_latency_days (
    team                   text COLLATE "C" NOT NULL,
    name                   text COLLATE "C" NOT NULL,
    day                    date   NOT NULL,
    sketch                 bytea  NOT NULL,
    records                bigint NOT NULL,
    records_without_header bigint NOT NULL,
    records_over_target    bigint NOT NULL,
    PRIMARY KEY (team, name, day),
    FOREIGN KEY (team, name) REFERENCES loops (team, name) ON DELETE CASCADE
);
CREATE INDEX loop_latency_days_day ON loop_latency_days (day);
