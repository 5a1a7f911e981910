-- Discovery and the platform's admin (issue 28): the establishments read model that
-- search runs on, disabled accounts, and the admin audit log.
--
-- Text: the Rust side folds names (accents and case dropped, punctuation a space) into
-- name_folded / services_folded, and search_text is their concatenation; a query's
-- words, folded the same way, are matched with LIKE '%word%' through a trigram index
-- (pg_trgm ships with Postgres's contrib modules, which Debian's server package
-- includes). Distance: plain haversine in SQL on latitude/longitude in degrees, after a
-- bounding box on a GiST index of point(longitude, latitude); no PostGIS, no
-- earthdistance.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- One row per establishment, projected from its journal in the append's transaction
-- (creation, settings changes, services added, suspension). `seq` is the last event
-- applied: a change at or below it is a replay and changes nothing.
CREATE TABLE establishments (
    id               uuid        PRIMARY KEY,
    owner_id         uuid        NOT NULL,
    name             text        NOT NULL,
    timezone         text        NOT NULL,
    category         text,
    address          text,
    latitude         float8      CHECK (latitude BETWEEN -90 AND 90),
    longitude        float8      CHECK (longitude BETWEEN -180 AND 180),
    photo_url        text,
    description      text,
    -- Service names, one per line, in the order they were added.
    services         text        NOT NULL DEFAULT '',
    name_folded      text        NOT NULL,
    services_folded  text        NOT NULL DEFAULT '',
    search_text      text        GENERATED ALWAYS AS (name_folded || ' ' || services_folded) STORED,
    -- Why the platform suspended it; NULL while it is active.
    suspended_reason text,
    created_at       timestamptz NOT NULL,
    seq              bigint      NOT NULL
);

CREATE INDEX establishments_text ON establishments USING gin (search_text gin_trgm_ops);
CREATE INDEX establishments_place ON establishments USING gist (point(longitude, latitude));
CREATE INDEX establishments_by_name ON establishments (name_folded, id);

-- The admin's "bookings today" counts bookings by start across establishments.
CREATE INDEX bookings_by_start ON bookings (start_at) WHERE kind = 'booking';

-- Accounts the platform disabled: their tokens stop working, they cannot sign in.
CREATE TABLE disabled_users (
    user_id     uuid        PRIMARY KEY REFERENCES users (id),
    disabled_at timestamptz NOT NULL,
    disabled_by uuid        NOT NULL,
    reason      text        NOT NULL
);

-- Every admin action: who, what, on what, when, why. Append-only: the triggers below
-- refuse any UPDATE, DELETE or TRUNCATE, whoever asks.
CREATE TABLE admin_audit (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL,
    admin_id    uuid        NOT NULL,
    action      text        NOT NULL,
    target_kind text        NOT NULL,
    target_id   uuid,
    reason      text        NOT NULL,
    detail      text        NOT NULL DEFAULT '{}'
);

CREATE FUNCTION navaro_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER admin_audit_no_change BEFORE UPDATE OR DELETE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION navaro_audit_append_only();
CREATE TRIGGER admin_audit_no_truncate BEFORE TRUNCATE ON admin_audit
    FOR EACH STATEMENT EXECUTE FUNCTION navaro_audit_append_only();

-- Establishments created before this migration have no listing yet. Their ids wait
-- here and the server projects their listings from the journal when it opens the
-- stores (the payloads are MessagePack, decoded in Rust), removing each id as it goes:
-- this one scan of the journal happens once, here.
CREATE TABLE listings_pending (establishment_id uuid PRIMARY KEY);
INSERT INTO listings_pending SELECT establishment_id FROM events WHERE seq = 1;
