-- Waiting rooms: one line per on-sale. The room's settings live here, so that rooms outlive
-- restarts and a loss of the lines' store (Redis); each line mirrors them there.
CREATE TABLE rooms (
    id                   TEXT        PRIMARY KEY CHECK (id ~ '^[a-z0-9-]{1,40}$'),
    name                 TEXT        NOT NULL CHECK (btrim(name) <> '' AND char_length(name) <= 200),
    mode                 TEXT        NOT NULL DEFAULT 'fifo'
                                     CHECK (mode IN ('fifo', 'random', 'passthrough', 'reject')),
    entry                TEXT        NOT NULL DEFAULT 'open' CHECK (entry IN ('open', 'invite')),
    closes_at            TIMESTAMPTZ,
    challenge_difficulty INTEGER     NOT NULL DEFAULT 0 CHECK (challenge_difficulty >= 0),
    -- The line's settings as last set. NULL for the room 'default', whose line keeps the
    -- configured settings and an operator's changes in its store, as the v1/v2 line did.
    paused               BOOLEAN,
    admit_per_second     INTEGER     CHECK (admit_per_second > 0),
    max_active           INTEGER     CHECK (max_active > 0),
    active_ttl_seconds   INTEGER     CHECK (active_ttl_seconds > 0),
    opens_at             TIMESTAMPTZ,
    version              BIGINT      NOT NULL DEFAULT 1,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (id = 'default' OR (paused IS NOT NULL AND admit_per_second IS NOT NULL
                              AND max_active IS NOT NULL AND active_ttl_seconds IS NOT NULL))
);

-- A performance is in at most one room; one in none is the room 'default''s.
CREATE TABLE room_performances (
    performance_id BIGINT PRIMARY KEY REFERENCES performances (id),
    room_id        TEXT   NOT NULL REFERENCES rooms (id) ON DELETE CASCADE CHECK (room_id <> 'default')
);
CREATE INDEX room_performances_by_room ON room_performances (room_id);

INSERT INTO rooms (id, name, version) VALUES ('default', 'Default', 0);
