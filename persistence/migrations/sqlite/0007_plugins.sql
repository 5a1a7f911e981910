-- The plugins' durable state on SQLite: the same tables as Postgres 0011 (ids are 16-byte
-- blobs, instants integer microseconds, local days 'YYYY-MM-DD' text, flags 0/1).

-- What a plugin's consumer remembers per establishment between batches (JSON): the zone,
-- whether it is installed and with which settings, and the plugin's own state.
CREATE TABLE plugin_state (
    plugin           text   NOT NULL,
    establishment_id BLOB   NOT NULL,
    state            text   NOT NULL,
    PRIMARY KEY (plugin, establishment_id)
);

-- analytics: counters per establishment, staff member (the nil uuid: everyone) and local
-- day of the booking's start.
CREATE TABLE analytics_days (
    establishment_id BLOB   NOT NULL,
    staff_id         BLOB   NOT NULL,
    day              text   NOT NULL,
    bookings         INTEGER NOT NULL DEFAULT 0,
    cancellations    INTEGER NOT NULL DEFAULT 0,
    no_shows         INTEGER NOT NULL DEFAULT 0,
    completed        INTEGER NOT NULL DEFAULT 0,
    revenue_cents    INTEGER NOT NULL DEFAULT 0,
    busy_minutes     INTEGER NOT NULL DEFAULT 0,
    walk_ins         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (establishment_id, staff_id, day)
);

-- analytics: arrivals (booking starts and walk-ins) per local day and hour of day.
CREATE TABLE analytics_hours (
    establishment_id BLOB   NOT NULL,
    staff_id         BLOB   NOT NULL,
    day              text   NOT NULL,
    hour             INTEGER NOT NULL CHECK (hour BETWEEN 0 AND 23),
    arrivals         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (establishment_id, staff_id, day, hour)
);

-- analytics: each walk-in's wait, joined to started, on its local day of joining.
CREATE TABLE analytics_waits (
    establishment_id BLOB   NOT NULL,
    ticket_id        BLOB   NOT NULL,
    staff_id         BLOB   NOT NULL,
    day              text   NOT NULL,
    wait_seconds     INTEGER NOT NULL,
    PRIMARY KEY (establishment_id, ticket_id)
);
CREATE INDEX analytics_waits_by_day ON analytics_waits (establishment_id, day);

-- marketing: promotion codes, written by the owners.
CREATE TABLE marketing_promotions (
    establishment_id  BLOB   NOT NULL,
    code              text   NOT NULL,
    percent_off       INTEGER,
    amount_off_cents  INTEGER,
    valid_from        INTEGER,
    valid_until       INTEGER,
    usage_limit       INTEGER,
    once_per_customer INTEGER NOT NULL,
    active            INTEGER NOT NULL DEFAULT 1,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (establishment_id, code)
);

-- marketing: when each customer was last served (a booking completed, a walk-in
-- finished), for win-back audiences.
CREATE TABLE marketing_customers (
    establishment_id BLOB   NOT NULL,
    customer_id      BLOB   NOT NULL,
    last_seen_us     INTEGER NOT NULL,
    visits           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (establishment_id, customer_id)
);
CREATE INDEX marketing_customers_by_seen ON marketing_customers (establishment_id, last_seen_us);

-- ads: sponsored placements bought by establishments.
CREATE TABLE ads_campaigns (
    id                   BLOB   PRIMARY KEY,
    establishment_id     BLOB   NOT NULL,
    timezone             text   NOT NULL,
    category             text   NOT NULL,
    latitude             REAL NOT NULL,
    longitude            REAL NOT NULL,
    radius_km            REAL NOT NULL,
    daily_budget_cents   INTEGER NOT NULL,
    cost_per_click_cents INTEGER NOT NULL,
    active               INTEGER NOT NULL DEFAULT 1,
    -- Kept by the ads consumer from the journal: the plugin is installed, and the
    -- establishment is not suspended. A placement needs all three.
    installed            INTEGER NOT NULL DEFAULT 1,
    suspended            INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL
);
CREATE INDEX ads_campaigns_by_category ON ads_campaigns (category) WHERE active = 1;

-- ads: per campaign and local day: what was shown, clicked and spent.
CREATE TABLE ads_days (
    campaign_id  BLOB   NOT NULL,
    day          text   NOT NULL,
    impressions  INTEGER NOT NULL DEFAULT 0,
    clicks       INTEGER NOT NULL DEFAULT 0,
    spent_cents  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, day)
);
