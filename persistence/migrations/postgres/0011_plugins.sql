-- The plugins' durable state (the `navaro-plugins` crate). Every table here is a read
-- model a plugin keeps from the journal through the consumer runner (advanced in the
-- same transaction as `consumer_checkpoints`), except the promotions and campaigns the
-- owners write through the plugins' routes. Ids are uuid, instants integer
-- microseconds, local days 'YYYY-MM-DD' text in the establishment's zone, flags 0/1.

-- What a plugin's consumer remembers per establishment between batches (JSON): the zone,
-- whether it is installed and with which settings, and the plugin's own state.
CREATE TABLE plugin_state (
    plugin           text   NOT NULL,
    establishment_id uuid   NOT NULL,
    state            text   NOT NULL,
    PRIMARY KEY (plugin, establishment_id)
);

-- analytics: counters per establishment, staff member (the nil uuid: everyone) and local
-- day of the booking's start.
CREATE TABLE analytics_days (
    establishment_id uuid   NOT NULL,
    staff_id         uuid   NOT NULL,
    day              text   NOT NULL,
    bookings         bigint NOT NULL DEFAULT 0,
    cancellations    bigint NOT NULL DEFAULT 0,
    no_shows         bigint NOT NULL DEFAULT 0,
    completed        bigint NOT NULL DEFAULT 0,
    revenue_cents    bigint NOT NULL DEFAULT 0,
    busy_minutes     bigint NOT NULL DEFAULT 0,
    walk_ins         bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (establishment_id, staff_id, day)
);

-- analytics: arrivals (booking starts and walk-ins) per local day and hour of day.
CREATE TABLE analytics_hours (
    establishment_id uuid   NOT NULL,
    staff_id         uuid   NOT NULL,
    day              text   NOT NULL,
    hour             bigint NOT NULL CHECK (hour BETWEEN 0 AND 23),
    arrivals         bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (establishment_id, staff_id, day, hour)
);

-- analytics: each walk-in's wait, joined to started, on its local day of joining.
CREATE TABLE analytics_waits (
    establishment_id uuid   NOT NULL,
    ticket_id        uuid   NOT NULL,
    staff_id         uuid   NOT NULL,
    day              text   NOT NULL,
    wait_seconds     bigint NOT NULL,
    PRIMARY KEY (establishment_id, ticket_id)
);
CREATE INDEX analytics_waits_by_day ON analytics_waits (establishment_id, day);

-- marketing: promotion codes, written by the owners.
CREATE TABLE marketing_promotions (
    establishment_id  uuid   NOT NULL,
    code              text   NOT NULL,
    percent_off       bigint,
    amount_off_cents  bigint,
    valid_from        bigint,
    valid_until       bigint,
    usage_limit       bigint,
    once_per_customer bigint NOT NULL,
    active            bigint NOT NULL DEFAULT 1,
    created_at        bigint NOT NULL,
    PRIMARY KEY (establishment_id, code)
);

-- marketing: when each customer was last served (a booking completed, a walk-in
-- finished), for win-back audiences.
CREATE TABLE marketing_customers (
    establishment_id uuid   NOT NULL,
    customer_id      uuid   NOT NULL,
    last_seen_us     bigint NOT NULL,
    visits           bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (establishment_id, customer_id)
);
CREATE INDEX marketing_customers_by_seen ON marketing_customers (establishment_id, last_seen_us);

-- ads: sponsored placements bought by establishments.
CREATE TABLE ads_campaigns (
    id                   uuid   PRIMARY KEY,
    establishment_id     uuid   NOT NULL,
    timezone             text   NOT NULL,
    category             text   NOT NULL,
    latitude             double precision NOT NULL,
    longitude            double precision NOT NULL,
    radius_km            double precision NOT NULL,
    daily_budget_cents   bigint NOT NULL,
    cost_per_click_cents bigint NOT NULL,
    active               bigint NOT NULL DEFAULT 1,
    -- Kept by the ads consumer from the journal: the plugin is installed, and the
    -- establishment is not suspended. A placement needs all three.
    installed            bigint NOT NULL DEFAULT 1,
    suspended            bigint NOT NULL DEFAULT 0,
    created_at           bigint NOT NULL
);
CREATE INDEX ads_campaigns_by_category ON ads_campaigns (category) WHERE active = 1;

-- ads: per campaign and local day: what was shown, clicked and spent.
CREATE TABLE ads_days (
    campaign_id  uuid   NOT NULL,
    day          text   NOT NULL,
    impressions  bigint NOT NULL DEFAULT 0,
    clicks       bigint NOT NULL DEFAULT 0,
    spent_cents  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, day)
);
