-- owned: which team owns each Kafka principal and consumer group
-- (DESIGN §3 "Ownership"). kind is 'principal' (name without "User:") or
-- 'group'. A name belongs to one team: the key is (kind, name), not the
-- team. doc holds how it was claimed and credential metadata — never a
-- secret. Mirrors store/sqlite/migrations/0004_owned.sql.
CREATE TABLE owned (
    kind        text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    team        text COLLATE "C" NOT NULL,
    etag        text        NOT NULL,
    create_time timestamptz NOT NULL,
    doc         jsonb       NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE INDEX owned_team ON owned (kind, team, name);
