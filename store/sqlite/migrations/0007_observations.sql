-- observations: the last observed SLO status and consumer lag of each loop
-- (docs/slo.md), and one latency sketch per loop and UTC day for the
-- 28-day window. Rows belong to their loop: deleting the loop deletes them.
-- Written only by the process that runs the reconciler. Mirrors
-- store/postgres/migrations/0006_observations.sql.
CREATE TABLE loop_observations (
    team        TEXT NOT NULL,
    name        TEXT NOT NULL,
    update_time TEXT NOT NULL,
    doc         TEXT NOT NULL,
    PRIMARY KEY (team, name),
    FOREIGN KEY (team, name) REFERENCES loops (team, name) ON DELETE CASCADE
);

CREATE TABLE loop_latency_days (
    team                   TEXT    NOT NULL,
    name                   TEXT    NOT NULL,
    day                    TEXT    NOT NULL,
    sketch                 BLOB    NOT NULL,
    records                INTEGER NOT NULL,
    records_without_header INTEGER NOT NULL,
    records_over_target    INTEGER NOT NULL,
    PRIMARY KEY (team, name, day),
    FOREIGN KEY (team, name) REFERENCES loops (team, name) ON DELETE CASCADE
);
CREATE INDEX loop_latency_days_day ON loop_latency_days (day);
