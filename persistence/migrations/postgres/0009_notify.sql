-- The notify crate's durable state (navaro-notify): where each journal consumer has got
-- to, the outbox of deliveries derived from the journal, webhook endpoints, push devices
-- and preferences. Instants are bigint microseconds since the Unix epoch, as on SQLite,
-- so the crate runs the same statements on both.

-- How far each consumer has read each establishment's journal; advanced in the same
-- transaction as the outbox rows derived from the events up to it.
CREATE TABLE consumer_checkpoints (
    consumer         text   NOT NULL,
    establishment_id uuid   NOT NULL,
    seq              bigint NOT NULL CHECK (seq >= 0),
    PRIMARY KEY (consumer, establishment_id)
);

-- One row per delivery (a webhook to one endpoint, a push to one user). The id is
-- derived from (consumer, establishment, seq, channel, target, what), so deriving the
-- same event again after a crash inserts nothing new: receivers deduplicate on it.
CREATE TABLE notify_outbox (
    id               uuid    PRIMARY KEY,
    establishment_id uuid    NOT NULL,
    channel          text    NOT NULL CHECK (channel IN ('webhook', 'push')),
    target           uuid    NOT NULL,
    event_type       text    NOT NULL,
    payload          text    NOT NULL,
    booking_id       uuid,
    due_at           bigint  NOT NULL,
    status           text    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    lease_until      bigint  NOT NULL DEFAULT 0,
    last_status      integer,
    last_error       text,
    created_at       bigint  NOT NULL,
    delivered_at     bigint
);
CREATE INDEX notify_outbox_due ON notify_outbox (due_at) WHERE status = 'pending';
CREATE INDEX notify_outbox_by_target ON notify_outbox (target, created_at DESC);
CREATE INDEX notify_outbox_by_booking ON notify_outbox (booking_id) WHERE booking_id IS NOT NULL;

CREATE TABLE webhook_endpoints (
    id               uuid   PRIMARY KEY,
    establishment_id uuid   NOT NULL,
    url              text   NOT NULL,
    -- Comma-separated event types ("booking.confirmed,booking.cancelled").
    event_types      text   NOT NULL,
    secret           text   NOT NULL,
    -- After a rotation, the old secret still signs until previous_until.
    previous_secret  text,
    previous_until   bigint,
    -- Set when the endpoint is disabled (410, or failing for too long); NULL: enabled.
    disabled_reason  text,
    failing_since    bigint,
    created_at       bigint NOT NULL
);
CREATE INDEX webhook_endpoints_by_establishment ON webhook_endpoints (establishment_id);

-- Expo push tokens. A token belongs to one user: registering it again under another
-- user moves it. deactivated_at is set when Expo answers DeviceNotRegistered.
CREATE TABLE push_devices (
    token          text   PRIMARY KEY,
    user_id        uuid   NOT NULL,
    platform       text   NOT NULL,
    created_at     bigint NOT NULL,
    deactivated_at bigint
);
CREATE INDEX push_devices_by_user ON push_devices (user_id);

-- The message kinds a user turned off.
CREATE TABLE push_opt_outs (
    user_id uuid NOT NULL,
    kind    text NOT NULL,
    PRIMARY KEY (user_id, kind)
);

-- Expo tickets whose receipts are still to be fetched.
CREATE TABLE push_tickets (
    ticket_id  text   PRIMARY KEY,
    token      text   NOT NULL,
    created_at bigint NOT NULL
);

-- Which user account each staff member has, learned from staff.added events (to tell
-- staff of their bookings).
CREATE TABLE notify_staff_users (
    establishment_id uuid NOT NULL,
    staff_id         uuid NOT NULL,
    user_id          uuid NOT NULL,
    PRIMARY KEY (establishment_id, staff_id)
);

-- Which customer each waiting remote ticket belongs to, learned from queue.joined (to
-- tell them their turn is coming up); forgotten once the ticket leaves the queue.
CREATE TABLE notify_tickets (
    establishment_id uuid NOT NULL,
    ticket_id        uuid NOT NULL,
    customer_id      uuid NOT NULL,
    PRIMARY KEY (establishment_id, ticket_id)
);

-- Per-establishment notification settings; no row: the server's defaults.
CREATE TABLE notify_settings (
    establishment_id uuid PRIMARY KEY,
    -- Comma-separated minutes before a booking's start ("1440,120").
    reminder_offsets text NOT NULL
);
