-- The establishment a user's keyed `POST /v1/establishments` creates (see the Postgres
-- migration 0004).
CREATE TABLE creation_keys (
    user_id          BLOB NOT NULL REFERENCES users (id),
    idempotency_key  TEXT NOT NULL,
    establishment_id BLOB NOT NULL,
    claimed_at       INTEGER NOT NULL,
    PRIMARY KEY (user_id, idempotency_key)
);
