-- Navaro's durable state on SQLite (the embedded default). Same tables as on Postgres;
-- ids are 16-byte blobs, instants are integer microseconds since the Unix epoch. SQLite
-- has no exclusion constraints: the engine's own check is the only overlap guard here.

CREATE TABLE events (
    establishment_id BLOB    NOT NULL,
    seq              INTEGER NOT NULL CHECK (seq > 0),
    kind             TEXT    NOT NULL,
    payload          BLOB    NOT NULL,
    recorded_at      INTEGER NOT NULL,
    PRIMARY KEY (establishment_id, seq)
) WITHOUT ROWID;

CREATE TABLE snapshots (
    establishment_id BLOB    PRIMARY KEY,
    seq              INTEGER NOT NULL CHECK (seq >= 0),
    state            BLOB    NOT NULL,
    taken_at         INTEGER NOT NULL
);

CREATE TABLE bookings (
    id               BLOB    PRIMARY KEY,
    establishment_id BLOB    NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ('booking', 'hold')),
    staff_id         BLOB    NOT NULL,
    customer_id      BLOB    NOT NULL,
    start_at         INTEGER NOT NULL,
    end_at           INTEGER NOT NULL,
    busy_until       INTEGER NOT NULL,
    status           TEXT    NOT NULL,
    seq              INTEGER NOT NULL,
    data             BLOB    NOT NULL
);

CREATE INDEX bookings_by_customer ON bookings (customer_id, start_at DESC) WHERE kind = 'booking';
CREATE INDEX bookings_by_establishment_day ON bookings (establishment_id, start_at) WHERE kind = 'booking';

CREATE TABLE users (
    id            BLOB    PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE memberships (
    user_id          BLOB NOT NULL REFERENCES users (id),
    establishment_id BLOB NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('owner', 'staff')),
    PRIMARY KEY (user_id, establishment_id)
);
