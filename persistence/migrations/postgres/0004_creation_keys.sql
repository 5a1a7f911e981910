-- The establishment a user's keyed `POST /v1/establishments` creates. An establishment's
-- idempotency keys are kept by the establishment itself, which a retry of its creation
-- cannot find without its id: the first request claims the id here, and every retry
-- with the same key is sent to the same establishment, whose actor replays the answer.
-- A claim older than the engine's key lifetime (24 h) is replaced by the next: the key
-- then makes a new establishment, as any other key is forgotten after a day. Seconds
-- since the epoch, as the claim compares them.
CREATE TABLE creation_keys (
    user_id          uuid NOT NULL REFERENCES users (id),
    idempotency_key  text NOT NULL,
    establishment_id uuid NOT NULL,
    claimed_at       bigint NOT NULL,
    PRIMARY KEY (user_id, idempotency_key)
);
