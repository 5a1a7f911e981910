-- Navaro's durable state on Postgres: the journal, snapshots, the bookings read model
-- and accounts. Instants are timestamptz; the Rust side speaks microseconds since the
-- Unix epoch and converts with the two immutable helpers below.

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE FUNCTION navaro_ts(us bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN timestamptz 'epoch' + us * interval '1 microsecond';

CREATE FUNCTION navaro_us(ts timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (extract(epoch FROM ts) * 1000000)::bigint;

-- Append-only. The primary key is the fence: a stale writer's rows lose the conflict.
CREATE TABLE events (
    establishment_id uuid        NOT NULL,
    seq              bigint      NOT NULL CHECK (seq > 0),
    kind             text        NOT NULL,
    payload          bytea       NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (establishment_id, seq)
);

-- Only the latest snapshot of each establishment is kept; recovery needs no older one.
CREATE TABLE snapshots (
    establishment_id uuid        PRIMARY KEY,
    seq              bigint      NOT NULL CHECK (seq >= 0),
    state            bytea       NOT NULL,
    taken_at         timestamptz NOT NULL DEFAULT now()
);

-- Bookings and holds, projected from the events in the append's transaction. `data` is
-- the whole item (MessagePack), the other columns exist to index and to constrain.
-- `busy_until` is end + buffer, stored because timestamptz + interval is not immutable
-- and so cannot appear in the constraint's index.
CREATE TABLE bookings (
    id               uuid        PRIMARY KEY,
    establishment_id uuid        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('booking', 'hold')),
    staff_id         uuid        NOT NULL,
    customer_id      uuid        NOT NULL,
    start_at         timestamptz NOT NULL,
    end_at           timestamptz NOT NULL,
    busy_until       timestamptz NOT NULL,
    status           text        NOT NULL,
    seq              bigint      NOT NULL,
    data             bytea       NOT NULL,
    -- The backstop: whatever the engine decides, overlapping live items of one staff
    -- member cannot be stored. Deferred to commit so that a group that ends a hold and
    -- confirms its booking is judged on its final state, not on statement order.
    CONSTRAINT bookings_no_overlap EXCLUDE USING gist (
        staff_id WITH =,
        tstzrange(start_at, busy_until) WITH &&
    ) WHERE (status IN ('confirmed', 'held')) DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX bookings_by_customer ON bookings (customer_id, start_at DESC) WHERE kind = 'booking';
CREATE INDEX bookings_by_establishment_day ON bookings (establishment_id, start_at) WHERE kind = 'booking';

CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    email         text        NOT NULL UNIQUE,
    name          text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL
);

CREATE TABLE memberships (
    user_id          uuid NOT NULL REFERENCES users (id),
    establishment_id uuid NOT NULL,
    role             text NOT NULL CHECK (role IN ('owner', 'staff')),
    PRIMARY KEY (user_id, establishment_id)
);
