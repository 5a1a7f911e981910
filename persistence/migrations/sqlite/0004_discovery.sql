-- Discovery and the platform's admin (see the Postgres migration 0007). SQLite has no
-- trigram or geo index: the embedded store filters text with instr() on the folded
-- search_text and measures distance in Rust, for small data.
CREATE TABLE establishments (
    id               BLOB    PRIMARY KEY,
    owner_id         BLOB    NOT NULL,
    name             TEXT    NOT NULL,
    timezone         TEXT    NOT NULL,
    category         TEXT,
    address          TEXT,
    latitude         REAL,
    longitude        REAL,
    photo_url        TEXT,
    description      TEXT,
    services         TEXT    NOT NULL DEFAULT '',
    name_folded      TEXT    NOT NULL,
    services_folded  TEXT    NOT NULL DEFAULT '',
    search_text      TEXT    GENERATED ALWAYS AS (name_folded || ' ' || services_folded) STORED,
    suspended_reason TEXT,
    created_at       INTEGER NOT NULL,
    seq              INTEGER NOT NULL
);

CREATE INDEX establishments_by_name ON establishments (name_folded, id);
CREATE INDEX bookings_by_start ON bookings (start_at) WHERE kind = 'booking';

CREATE TABLE disabled_users (
    user_id     BLOB    PRIMARY KEY REFERENCES users (id),
    disabled_at INTEGER NOT NULL,
    disabled_by BLOB    NOT NULL,
    reason      TEXT    NOT NULL
);

CREATE TABLE admin_audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    admin_id    BLOB    NOT NULL,
    action      TEXT    NOT NULL,
    target_kind TEXT    NOT NULL,
    target_id   BLOB,
    reason      TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '{}'
);

CREATE TRIGGER admin_audit_no_update BEFORE UPDATE ON admin_audit
BEGIN
    SELECT RAISE(ABORT, 'admin_audit is append-only');
END;
CREATE TRIGGER admin_audit_no_delete BEFORE DELETE ON admin_audit
BEGIN
    SELECT RAISE(ABORT, 'admin_audit is append-only');
END;

-- Establishments created before this migration: the server projects their listings
-- from the journal when it opens the stores (see the Postgres migration 0007).
CREATE TABLE listings_pending (establishment_id BLOB PRIMARY KEY);
INSERT INTO listings_pending SELECT establishment_id FROM events WHERE seq = 1;
