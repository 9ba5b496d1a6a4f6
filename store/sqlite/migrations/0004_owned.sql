-- owned: which team owns each Kafka principal and consumer group
-- (DESIGN §3 "Ownership"). kind is 'principal' (name without "User:") or
-- 'group'. A name belongs to one team: the key is (kind, name), not the
-- team. doc holds how it was claimed and credential metadata — never a
-- secret. Mirrors store/postgres/migrations/0003_owned.sql.
CREATE TABLE owned (
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    team        TEXT NOT NULL,
    etag        TEXT NOT NULL,
    create_time TEXT NOT NULL,
    doc         TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE INDEX owned_team ON owned (kind, team, name);
