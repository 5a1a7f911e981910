-- Sign-in sessions (see the Postgres migration 0006).
CREATE TABLE sessions (
    id           BLOB    PRIMARY KEY,
    user_id      BLOB    NOT NULL REFERENCES users (id),
    family_key   TEXT    NOT NULL UNIQUE,
    refresh_hash BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX sessions_by_user ON sessions (user_id);
