-- The establishment a user's keyed `POST /v1/establishments` creates. An establishment's
-- idempotency keys are kept by the establishment itself, which a retry of its creation
-- cannot find without its id: the first request claims the id here, and every retry
-- with the same key is sent to the same establishment, whose actor replays the answer.
-- One row per keyed creation, kept for good (creations are rare).
CREATE TABLE creation_keys (
    user_id          uuid NOT NULL REFERENCES users (id),
    idempotency_key  text NOT NULL,
    establishment_id uuid NOT NULL,
    PRIMARY KEY (user_id, idempotency_key)
);
