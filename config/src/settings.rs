//! The settings tree. Every struct has `deny_unknown_fields` and a default for every
//! field, so a file only names what it changes, and a typo is an error.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;
use uuid::Uuid;

use crate::{ConfigError, Secret};

/// The development signing key: public (it is in the source), so [`Settings::validate`]
/// refuses it outside dev mode.
pub const DEV_SIGNING_KEY: &str = "navaro-dev-signing-key-not-secret-do-not-use-in-prod";

/// The shortest HMAC key accepted outside dev mode: 256 bits, the HS256 output size
/// (RFC 7518 §3.2 requires at least that).
pub const MIN_KEY_BYTES: usize = 32;

/// Everything the `navaro` binary can be told.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Development mode: the built-in signing key is allowed and localhost origins are
    /// accepted. Production deployments set `dev_mode = false`.
    pub dev_mode: bool,
    /// Where the embedded SQLite database (and anything else local) lives.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; by default SQLite under `data_dir`. A Secret
    /// because a Postgres URL usually carries a password.
    pub database_url: Option<Secret>,
    pub http: HttpSettings,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub websocket: WebSocketSettings,
    pub log: LogSettings,
    pub engine: EngineSettings,
    pub store: StoreSettings,
    pub web: WebSettings,
    pub cluster: ClusterSettings,
    pub notify: NotifySettings,
    pub plugins: PluginSettings,
    pub push: PushSettings,
    pub webhooks: WebhookSettings,
    pub payments: PaymentSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dev_mode: true,
            data_dir: PathBuf::from("data"),
            database_url: None,
            http: HttpSettings::default(),
            auth: AuthSettings::default(),
            limits: LimitSettings::default(),
            websocket: WebSocketSettings::default(),
            log: LogSettings::default(),
            engine: EngineSettings::default(),
            store: StoreSettings::default(),
            web: WebSettings::default(),
            cluster: ClusterSettings::default(),
            notify: NotifySettings::default(),
            plugins: PluginSettings::default(),
            push: PushSettings::default(),
            webhooks: WebhookSettings::default(),
            payments: PaymentSettings::default(),
        }
    }
}

/// Which payment provider takes establishments' deposits and prepayments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentProviderKind {
    /// No provider: checkouts are refused (`payment_provider`), the webhook answers 404.
    #[default]
    None,
    Stripe,
}

/// Payments (`docs/payments.md`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentSettings {
    pub provider: PaymentProviderKind,
    /// How long a checkout keeps its slot while the customer pays: long enough to type
    /// a card and pass 3-D Secure, short enough that an abandoned checkout frees the
    /// slot soon. 30 to 1800 (the engine's hold bounds).
    pub hold_seconds: u32,
    /// How often the sweeper looks for lapsed checkouts (asking the provider once more
    /// before it frees them) and succeeded payments that lost their slot (refunded).
    pub sweep_interval_ms: u64,
    pub stripe: StripeSettings,
    /// Tests only (dev mode): abort the process right after the provider charged a fee
    /// and before the charge is journaled, the crash the fee's exactly-once guard must
    /// survive (`gateway/tests/payments_fees.rs`). Refused outside dev mode.
    pub dev_abort_after_fee_charge: bool,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        PaymentSettings {
            provider: PaymentProviderKind::None,
            hold_seconds: 600,
            sweep_interval_ms: 5_000,
            stripe: StripeSettings::default(),
            dev_abort_after_fee_charge: false,
        }
    }
}

/// Stripe's API and webhook.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeSettings {
    /// Stripe's API; tests point it at localstripe.
    pub base_url: String,
    /// The secret API key (`sk_...`).
    pub api_key: Option<Secret>,
    /// The webhook endpoint's signing secrets (`whsec_...`): more than one during a
    /// rotation, a signature by any of them is accepted.
    pub webhook_secrets: Vec<Secret>,
    /// A webhook whose signed timestamp is further than this from now is refused, so a
    /// captured delivery cannot be replayed later (Stripe's libraries use 300 s).
    pub webhook_tolerance_seconds: u32,
    /// One call to Stripe may take this long before it counts as failed.
    pub timeout_ms: u64,
}

impl Default for StripeSettings {
    fn default() -> Self {
        StripeSettings {
            base_url: "https://api.stripe.com".to_owned(),
            api_key: None,
            webhook_secrets: Vec::new(),
            webhook_tolerance_seconds: 300,
            timeout_ms: 10_000,
        }
    }
}

/// The HTTP listener and per-request limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to bind; port 0 picks a free port (tests), which the server logs.
    pub listen: SocketAddr,
    /// Largest request body accepted; API bodies are small JSON objects, so 64 KiB is
    /// generous and keeps a client from making us buffer megabytes (413 beyond it).
    pub body_limit_bytes: usize,
    /// A request still running after this long is answered 503 and dropped, so a stuck
    /// store cannot pile up tasks.
    pub request_timeout_ms: u64,
    /// Open connections at most (HTTP and WebSocket together); beyond it new connections
    /// wait in the kernel's backlog. Sized for 100k idle live subscribers per node.
    pub max_connections: usize,
    /// API requests in progress at most; one beyond it is answered 503 `overloaded` at
    /// once (with `Retry-After`) instead of queueing behind the rest. 0: no limit. The
    /// operational routes (`/healthz`, `/readyz`, `/metrics`) are not counted.
    pub max_in_flight: usize,
    /// Origins allowed to open a WebSocket (browsers send `Origin`; native apps do not,
    /// and are allowed). In dev mode, localhost origins are allowed too.
    pub allowed_origins: Vec<String>,
    /// How long shutdown waits for in-flight requests before giving up on them.
    pub shutdown_grace_ms: u64,
    /// Take the client IP for per-IP limits from the first `X-Forwarded-For` entry. Only
    /// behind a proxy that sets it; otherwise clients could pick their own IP.
    pub trust_forwarded_for: bool,
    /// A request's head (request line and headers) must be complete this long after its
    /// first byte, or the connection is closed: a client that sends part of its headers
    /// and then nothing would otherwise hold a connection (and its slot of
    /// `max_connections`) forever. Real clients send a head in one packet.
    pub header_read_timeout_ms: u64,
    /// A request's body must be complete this long after its head, or it is answered
    /// 408 `request_timeout` and the connection closed. Below `request_timeout_ms`, so a
    /// slow upload is told what happened (not 503 "retry"). 5 s admits a 64 KiB body at
    /// 13 KB/s.
    pub body_read_timeout_ms: u64,
    /// An HTTP connection with no request in progress is closed after this long (a new
    /// request's first byte restarts it). Live feeds are not affected once upgraded.
    pub keep_alive_idle_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            body_limit_bytes: 64 * 1024,
            request_timeout_ms: 10_000,
            max_connections: 110_000,
            max_in_flight: 4096,
            allowed_origins: Vec::new(),
            shutdown_grace_ms: 10_000,
            trust_forwarded_for: false,
            header_read_timeout_ms: 5_000,
            body_read_timeout_ms: 5_000,
            keep_alive_idle_ms: 60_000,
        }
    }
}

/// One HMAC key, named by the `kid` that tokens signed with it carry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// Defaults to `main`, so that setting only `NAVARO_AUTH__SIGNING_KEY__SECRET` works.
    #[serde(default = "default_kid")]
    pub kid: String,
    pub secret: Secret,
}

fn default_kid() -> String {
    "main".to_owned()
}

/// Token issuing and checking, and who the platform admins are.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `iss` of issued tokens; tokens with another issuer are refused.
    pub issuer: String,
    /// `aud` of issued tokens; tokens for another audience are refused.
    pub audience: String,
    /// Lifetime of an access token; a client renews it with its refresh token
    /// (`POST /v1/auth/refresh`; the Pro board and the TypeScript client's
    /// `NavaroSession` do so before it expires). 15 by default: short, so that a token
    /// that leaks is soon worthless. A stolen token is also revoked by signing out
    /// (checked per request, see `gateway/src/sessions.rs`).
    pub token_ttl_minutes: u32,
    /// Lifetime of a refresh token; each refresh issues a new one with a new lifetime,
    /// so a device used within this many days stays signed in.
    pub refresh_ttl_days: u32,
    /// The key new tokens are signed with.
    pub signing_key: KeySettings,
    /// Further keys still accepted for verification (the previous signing keys during a
    /// rotation), chosen by the token's `kid`.
    pub verification_keys: Vec<KeySettings>,
    /// Users (by email, matched case-insensitively) who are platform admins.
    pub admin_emails: Vec<String>,
    /// Users (by id) who are platform admins.
    pub admin_user_ids: Vec<Uuid>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            issuer: "navaro".to_owned(),
            audience: "navaro-api".to_owned(),
            token_ttl_minutes: 15,
            refresh_ttl_days: 30,
            signing_key: KeySettings {
                kid: "dev".to_owned(),
                secret: Secret::new(DEV_SIGNING_KEY),
            },
            verification_keys: Vec::new(),
            admin_emails: Vec::new(),
            admin_user_ids: Vec::new(),
        }
    }
}

/// Rate limits (token buckets: a sustained rate and a burst).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Every request, per client IP.
    pub per_ip_per_second: u32,
    pub per_ip_burst: u32,
    /// Every authenticated request, per user.
    pub per_user_per_second: u32,
    pub per_user_burst: u32,
    /// Login and register attempts per IP: strict, since each costs an argon2 hash and
    /// guessing passwords is the attack.
    pub login_per_minute: u32,
    pub login_burst: u32,
    /// Booking creations per user: a customer books a handful a day; a script booking
    /// hundreds is hoarding the agenda.
    pub bookings_per_minute: u32,
    pub bookings_burst: u32,
    /// `Retry-After` sent with 503 overloaded.
    pub overloaded_retry_after_seconds: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            per_ip_per_second: 100,
            per_ip_burst: 200,
            per_user_per_second: 20,
            per_user_burst: 40,
            login_per_minute: 10,
            login_burst: 5,
            bookings_per_minute: 10,
            bookings_burst: 5,
            overloaded_retry_after_seconds: 1,
        }
    }
}

/// Live-update connections.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketSettings {
    /// Largest message a client may send; clients send nothing but control frames, so
    /// this is small.
    pub max_message_bytes: usize,
    /// Per-connection read and write buffers. Small so 100k idle subscribers fit in
    /// about 2 GiB (tungstenite's defaults are 128 KiB each).
    pub read_buffer_bytes: usize,
    pub write_buffer_bytes: usize,
    /// A subscriber this many events behind the live feed is disconnected (close code
    /// 4008) instead of being buffered for without bound; it resumes with `since`.
    pub max_lag_events: usize,
    /// A frame the socket does not take within this long marks the subscriber as stuck
    /// (not reading): it is closed as a slow consumer.
    pub send_timeout_ms: u64,
    /// The server pings every subscriber this often, and closes one that has sent
    /// nothing (a pong included) for two intervals: a phone that lost its network
    /// leaves a socket that no write fails on for many minutes, and its open feed
    /// would keep the establishment's actor from ever going idle. 0: no pings.
    pub ping_interval_ms: u64,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        WebSocketSettings {
            max_message_bytes: 4 * 1024,
            read_buffer_bytes: 4 * 1024,
            write_buffer_bytes: 4 * 1024,
            max_lag_events: 256,
            send_timeout_ms: 10_000,
            ping_interval_ms: 30_000,
        }
    }
}

/// Engine tunables; each left unset keeps the engine's own default (documented on
/// `navaro_engine::EngineConfig`, which says why each is what it is).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSettings {
    /// Commands queued or awaiting durability per establishment before 503 overloaded.
    pub max_in_flight_per_establishment: Option<usize>,
    /// An establishment idle this long is snapshotted and stopped.
    pub idle_timeout_seconds: Option<u64>,
    /// Live events buffered per subscriber before it is cut off as a slow consumer.
    pub live_channel_capacity: Option<usize>,
    /// The most events a live resume replays; further behind gets `reload`.
    pub max_resume_events: Option<usize>,
    /// Commands are refused with 503 overloaded while the journal's oldest unanswered
    /// batch has waited longer than this (0: never; keep it well under
    /// `store.call_timeout_ms`).
    pub max_journal_lag_ms: Option<u64>,
    /// Days of past bookings each establishment keeps in memory and in its snapshots
    /// (2 to 366; unset: 7). Older bookings are served from the bookings read model.
    pub history_days: Option<u32>,
    /// Development and tests only: the engine's clock runs this many seconds ahead of
    /// the system's (negative: behind), so a test can make a booking start in the past
    /// across a restart (marking a no-show). Refused outside dev mode.
    pub dev_clock_offset_seconds: i64,
}

/// The range of `engine.history_days`: the engine's `domain::window::MIN_HISTORY_DAYS`
/// and `MAX_HISTORY_DAYS` (this crate does not depend on the engine).
pub const HISTORY_DAYS_RANGE: std::ops::RangeInclusive<u32> = 2..=366;

/// Database tunables; each left unset keeps the store's own default (documented on
/// `navaro_persistence::StoreOptions`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// Connections in the pool (writers, loads, queries and accounts share it). On
    /// Postgres it must be more than the writers: each writer keeps one.
    pub max_connections: Option<u32>,
    /// How long a call waits for a pooled connection before the database counts as
    /// unreachable.
    pub acquire_timeout_ms: Option<u64>,
    /// Longest one store call may take before the database counts as unreachable.
    pub call_timeout_ms: Option<u64>,
    /// How often, while the database is unreachable, a probe asks whether it is back.
    pub probe_every_ms: Option<u64>,
    /// Group-commit writers (0: two on Postgres, one on SQLite).
    pub writers: Option<usize>,
    /// Most events in one group commit.
    pub group_max_events: Option<usize>,
    /// How long a group-commit writer may linger for more appends after a group's first
    /// (unset: the store's default, 2 ms; 0: it never waits).
    pub group_max_wait_ms: Option<u64>,
}

/// Log output.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A `tracing` filter, as in `RUST_LOG` (which, when set, wins).
    pub filter: String,
    /// One JSON object per line instead of human-readable text.
    pub json: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            filter: "info".to_owned(),
            json: false,
        }
    }
}

/// The Pro web board served at `/pro`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSettings {
    /// Serve the board from this folder (a `vite build` output, `web/dist`) instead of
    /// the copy embedded in the binary: for working on the board without rebuilding the
    /// server. It must hold an `index.html`; files are read on each request.
    pub pro_dir: Option<PathBuf>,
}

/// The outbox and reminders (the notify crate). It runs on the SQL stores only.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySettings {
    /// Derive and deliver notifications at all.
    pub enabled: bool,
    /// Reminder offsets, minutes before a booking's start, for establishments that set
    /// none (each at most 30 days).
    pub reminders_minutes: Vec<u32>,
    /// How often every journal is compared with the consumer's checkpoints (the live
    /// path wakes the consumer at once; this catches up after a crash).
    pub rescan_seconds: u64,
    /// How often the deliverers look for rows come due by time (reminders, retries).
    pub poll_ms: u64,
    /// The delay before each retry of a failed webhook or push delivery, in order; when
    /// they are spent the delivery has failed. The default is the Standard Webhooks
    /// schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h); tests shorten it.
    pub retry_schedule_ms: Vec<u64>,
    /// Development and tests only: shift the notify clock by this much, so reminders
    /// due hours ahead fire now. Refused outside dev mode.
    pub dev_clock_offset_seconds: i64,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            enabled: true,
            reminders_minutes: vec![1440, 120],
            rescan_seconds: 60,
            poll_ms: 1000,
            retry_schedule_ms: vec![
                5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
            ],
            dev_clock_offset_seconds: 0,
        }
    }
}

/// The plugins (analytics, marketing, ads; the plugins crate). They run on the SQL
/// stores only.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    /// Run the plugins' consumers and serve their routes at all.
    pub enabled: bool,
    /// How often every journal is compared with the plugins' checkpoints (the live path
    /// wakes them at once; this catches up after a crash).
    pub rescan_seconds: u64,
    /// How long one plugin may take on one batch of events before the batch is given up
    /// and retried (a hung plugin is noticed, and only it waits).
    pub derive_timeout_ms: u64,
    /// Development and tests only: a file naming plugins to fail on purpose
    /// (`analytics panic`, `analytics hang`, one a line), read before each batch.
    /// Refused outside dev mode.
    pub fault_file: Option<PathBuf>,
}

impl Default for PluginSettings {
    fn default() -> Self {
        PluginSettings {
            enabled: true,
            rescan_seconds: 60,
            derive_timeout_ms: 10_000,
            fault_file: None,
        }
    }
}

/// Push through Expo.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushSettings {
    /// Send push notifications (device tokens are accepted either way).
    pub enabled: bool,
    /// Expo's push service; tests point it at a fake.
    pub base_url: String,
    /// Expo access token, if the project enforces one.
    pub access_token: Option<Secret>,
    /// Requests per second to Expo at most (each up to 100 messages).
    pub requests_per_second: u32,
    /// Seconds after sending before the receipts are fetched.
    pub receipt_delay_seconds: u64,
    /// One request's timeout.
    pub timeout_ms: u64,
}

impl Default for PushSettings {
    fn default() -> Self {
        PushSettings {
            enabled: true,
            base_url: "https://exp.host".to_owned(),
            access_token: None,
            requests_per_second: 6,
            receipt_delay_seconds: 900,
            timeout_ms: 10_000,
        }
    }
}

/// Outbound webhooks.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// One attempt's timeout.
    pub timeout_ms: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// An endpoint failing without a success for this long is disabled.
    pub disable_after_hours: u64,
    /// How long a rotated secret keeps signing beside the new one.
    pub rotation_overlap_hours: u64,
    /// Allow receivers on loopback, private, link-local and metadata addresses. For
    /// development and tests; keep it off in production (server-side request forgery).
    pub allow_private_addresses: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            timeout_ms: 10_000,
            concurrency: 32,
            disable_after_hours: 120,
            rotation_overlap_hours: 24,
            allow_private_addresses: false,
        }
    }
}

/// The longest reminder offset: 30 days.
pub const MAX_REMINDER_MINUTES: u32 = 30 * 24 * 60;
/// The most retries `notify.retry_schedule_ms` may list.
pub const MAX_RETRIES: usize = 100;
/// The longest delay before a retry: a day (as the longest `Retry-After` honoured).
pub const MAX_RETRY_DELAY_MS: u64 = 24 * 3600 * 1000;

impl Settings {
    /// Refuse notify, push and webhook settings that cannot work.
    fn validate_notify(&self) -> Result<(), ConfigError> {
        let out = |field: &'static str, reason: &str| {
            Err(ConfigError::OutOfRange {
                field,
                reason: reason.to_owned(),
            })
        };
        let n = &self.notify;
        if n.reminders_minutes
            .iter()
            .any(|m| *m == 0 || *m > MAX_REMINDER_MINUTES)
        {
            return out("notify.reminders_minutes", "each must be 1..=43200 minutes");
        }
        if n.reminders_minutes.len() > 5 {
            return out("notify.reminders_minutes", "at most 5 reminders");
        }
        if n.retry_schedule_ms.len() > MAX_RETRIES
            || n.retry_schedule_ms
                .iter()
                .any(|ms| *ms == 0 || *ms > MAX_RETRY_DELAY_MS)
        {
            return out(
                "notify.retry_schedule_ms",
                "at most 100 retries, each 1..=86400000 ms (a day)",
            );
        }
        if n.dev_clock_offset_seconds != 0 && !self.dev_mode {
            return out(
                "notify.dev_clock_offset_seconds",
                "allowed only in dev mode",
            );
        }
        if self.plugins.fault_file.is_some() && !self.dev_mode {
            return out("plugins.fault_file", "allowed only in dev mode");
        }
        if self.plugins.rescan_seconds == 0 {
            return out("plugins.rescan_seconds", "must be at least 1");
        }
        if self.plugins.derive_timeout_ms == 0 {
            return out("plugins.derive_timeout_ms", "must be at least 1");
        }
        let positive: [(&'static str, u64); 8] = [
            ("notify.rescan_seconds", n.rescan_seconds),
            ("notify.poll_ms", n.poll_ms),
            (
                "push.requests_per_second",
                u64::from(self.push.requests_per_second),
            ),
            ("push.timeout_ms", self.push.timeout_ms),
            ("webhooks.timeout_ms", self.webhooks.timeout_ms),
            ("webhooks.concurrency", self.webhooks.concurrency as u64),
            (
                "webhooks.disable_after_hours",
                self.webhooks.disable_after_hours,
            ),
            (
                "webhooks.rotation_overlap_hours",
                self.webhooks.rotation_overlap_hours,
            ),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return out(field, "must be greater than zero");
        }
        let base = &self.push.base_url;
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return out("push.base_url", "must be an http(s) URL");
        }
        Ok(())
    }
}

/// Several nodes on one Postgres and one Redis (docs/cluster.md). Off by default: one
/// node serves everything, and nothing here is read.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// Run as a node of a cluster. Needs Postgres (`database_url`) and Redis.
    pub enabled: bool,
    /// This node's name, unique among the live nodes: 1-64 of `[A-Za-z0-9_.-]`. A node
    /// whose id is already live refuses to start.
    pub node_id: String,
    /// Where this node takes forwarded requests from the other nodes (a persistent TCP
    /// connection per peer, MessagePack frames); port 0 picks a free one.
    pub internal_listen: SocketAddr,
    /// The address the other nodes reach `internal_listen` at; unset: the bound address
    /// (fine on one machine, not behind NAT or a wildcard bind).
    pub advertise: Option<String>,
    /// `redis://host:port/db`: liveness, the ownership directory. A Secret because it
    /// may carry a password.
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key and channel of this cluster, so several clusters (or
    /// test runs) can share one Redis.
    pub redis_prefix: String,
    /// How long a node's lease lasts without renewal: after this a dead node's
    /// establishments are taken over (writes resume within about this plus the time to
    /// load them). It renews every third of it and stops writing at
    /// `lease_ttl_ms - lease_margin_ms` without a renewal, by the monotonic clock.
    pub lease_ttl_ms: u64,
    /// How long before its lease could expire elsewhere a node that could not renew it
    /// stops committing: covers the clock-rate difference between this node and Redis,
    /// and the time a commit already under way takes. Less than a third of the TTL.
    pub lease_margin_ms: u64,
    /// How long a forwarded request may take before the forwarding node answers 503
    /// `unavailable` (the outcome is then unknown: retry with the same Idempotency-Key).
    pub forward_timeout_ms: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            enabled: false,
            node_id: String::new(),
            internal_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            advertise: None,
            redis_url: None,
            redis_prefix: "navaro".to_owned(),
            lease_ttl_ms: 3_000,
            lease_margin_ms: 500,
            forward_timeout_ms: 10_000,
        }
    }
}

/// Whether a node id is acceptable: short, and safe in a Redis key and a log line.
fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl ClusterSettings {
    /// Refuse a cluster that cannot work, naming the key.
    fn validate(&self, uses_postgres: bool) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        let bad = |field: &'static str, reason: &str| {
            Err(ConfigError::OutOfRange {
                field,
                reason: reason.to_owned(),
            })
        };
        if !uses_postgres {
            return bad(
                "cluster.enabled",
                "a cluster needs Postgres: SQLite is single-node (set database_url to postgres://...)",
            );
        }
        if !valid_node_id(&self.node_id) {
            return bad(
                "cluster.node_id",
                "must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-'",
            );
        }
        match &self.redis_url {
            None => {
                return bad(
                    "cluster.redis_url",
                    "must be set when the cluster is enabled",
                );
            }
            Some(url)
                if !(url.expose().starts_with("redis://")
                    || url.expose().starts_with("rediss://")) =>
            {
                return bad("cluster.redis_url", "must start with redis:// or rediss://");
            }
            Some(_) => {}
        }
        if self.redis_prefix.is_empty() || !self.redis_prefix.bytes().all(|b| b.is_ascii_graphic())
        {
            return bad("cluster.redis_prefix", "must be non-empty visible ASCII");
        }
        if self.lease_ttl_ms < 300 {
            return bad("cluster.lease_ttl_ms", "must be at least 300");
        }
        if self.lease_margin_ms == 0 || self.lease_margin_ms.saturating_mul(3) >= self.lease_ttl_ms
        {
            return bad(
                "cluster.lease_margin_ms",
                "must be greater than zero and less than a third of cluster.lease_ttl_ms",
            );
        }
        if self.forward_timeout_ms == 0 {
            return bad("cluster.forward_timeout_ms", "must be greater than zero");
        }
        if let Some(advertise) = &self.advertise
            && advertise.parse::<SocketAddr>().is_err()
        {
            return bad("cluster.advertise", "must be an ip:port address");
        }
        Ok(())
    }
}

impl Settings {
    /// The database URL: the configured one, or SQLite under `data_dir`.
    pub fn database_url(&self) -> Secret {
        match &self.database_url {
            Some(url) => url.clone(),
            None => Secret::new(format!(
                "sqlite://{}/navaro.db",
                self.data_dir.to_string_lossy()
            )),
        }
    }

    /// Whether the database is Postgres (else SQLite).
    pub fn uses_postgres(&self) -> bool {
        let url = self.database_url();
        url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://")
    }

    /// Refuse configurations that must not run: the public dev key or short keys outside
    /// dev mode, ambiguous key ids, zero limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let auth = &self.auth;
        if !self.dev_mode {
            if auth.signing_key.secret.expose() == DEV_SIGNING_KEY {
                return Err(ConfigError::DefaultSigningKey);
            }
            for key in std::iter::once(&auth.signing_key).chain(&auth.verification_keys) {
                if key.secret.expose().len() < MIN_KEY_BYTES {
                    return Err(ConfigError::WeakKey {
                        kid: key.kid.clone(),
                        min: MIN_KEY_BYTES,
                    });
                }
            }
        }
        let mut kids: Vec<&str> = std::iter::once(&auth.signing_key)
            .chain(&auth.verification_keys)
            .map(|k| k.kid.as_str())
            .collect();
        kids.sort_unstable();
        if let Some(pair) = kids.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::DuplicateKid(pair[0].to_owned()));
        }
        let positive: [(&'static str, u64); 10] = [
            ("http.body_limit_bytes", self.http.body_limit_bytes as u64),
            ("http.request_timeout_ms", self.http.request_timeout_ms),
            ("http.max_connections", self.http.max_connections as u64),
            ("auth.token_ttl_minutes", u64::from(auth.token_ttl_minutes)),
            (
                "limits.per_ip_per_second",
                u64::from(self.limits.per_ip_per_second),
            ),
            ("limits.per_ip_burst", u64::from(self.limits.per_ip_burst)),
            (
                "limits.per_user_per_second",
                u64::from(self.limits.per_user_per_second),
            ),
            (
                "limits.per_user_burst",
                u64::from(self.limits.per_user_burst),
            ),
            (
                "limits.login_per_minute",
                u64::from(self.limits.login_per_minute),
            ),
            (
                "limits.bookings_per_minute",
                u64::from(self.limits.bookings_per_minute),
            ),
        ];
        let more: [(&'static str, u64); 7] = [
            ("auth.refresh_ttl_days", u64::from(auth.refresh_ttl_days)),
            (
                "http.header_read_timeout_ms",
                self.http.header_read_timeout_ms,
            ),
            ("http.body_read_timeout_ms", self.http.body_read_timeout_ms),
            ("http.keep_alive_idle_ms", self.http.keep_alive_idle_ms),
            ("limits.login_burst", u64::from(self.limits.login_burst)),
            (
                "limits.bookings_burst",
                u64::from(self.limits.bookings_burst),
            ),
            (
                "websocket.max_lag_events",
                self.websocket.max_lag_events as u64,
            ),
        ];
        // Store keys are optional; set, they must be positive (`store.writers = 0` means
        // "the default" and is allowed).
        let st = &self.store;
        let store = [
            ("store.max_connections", st.max_connections.map(u64::from)),
            ("store.acquire_timeout_ms", st.acquire_timeout_ms),
            ("store.call_timeout_ms", st.call_timeout_ms),
            ("store.probe_every_ms", st.probe_every_ms),
            (
                "store.group_max_events",
                st.group_max_events.map(|n| n as u64),
            ),
        ];
        let zero = positive
            .iter()
            .chain(&more)
            .find(|(_, v)| *v == 0)
            .map(|(field, _)| *field)
            .or_else(|| {
                store
                    .iter()
                    .find(|(_, v)| *v == Some(0))
                    .map(|(field, _)| *field)
            });
        if let Some(field) = zero {
            return Err(ConfigError::OutOfRange {
                field,
                reason: "must be greater than zero".to_owned(),
            });
        }
        if let Some(days) = self.engine.history_days
            && !HISTORY_DAYS_RANGE.contains(&days)
        {
            return Err(ConfigError::OutOfRange {
                field: "engine.history_days",
                reason: format!(
                    "must be between {} and {} days",
                    HISTORY_DAYS_RANGE.start(),
                    HISTORY_DAYS_RANGE.end()
                ),
            });
        }
        if self.engine.dev_clock_offset_seconds != 0 && !self.dev_mode {
            return Err(ConfigError::OutOfRange {
                field: "engine.dev_clock_offset_seconds",
                reason: "allowed only in dev mode".to_owned(),
            });
        }
        self.validate_notify()?;
        self.cluster.validate(self.uses_postgres())?;
        if self.http.body_read_timeout_ms >= self.http.request_timeout_ms {
            return Err(ConfigError::OutOfRange {
                field: "http.body_read_timeout_ms",
                reason: "must be below http.request_timeout_ms, so a slow body gets 408".to_owned(),
            });
        }
        self.validate_payments()?;
        if let Some(dir) = &self.web.pro_dir
            && !dir.join("index.html").is_file()
        {
            return Err(ConfigError::OutOfRange {
                field: "web.pro_dir",
                reason: format!("{} has no index.html", dir.display()),
            });
        }
        Ok(())
    }

    fn validate_payments(&self) -> Result<(), ConfigError> {
        let p = &self.payments;
        let out = |field: &'static str, reason: &str| {
            Err(ConfigError::OutOfRange {
                field,
                reason: reason.to_owned(),
            })
        };
        if !(30..=1800).contains(&p.hold_seconds) {
            return out("payments.hold_seconds", "must be between 30 and 1800");
        }
        if p.sweep_interval_ms == 0 {
            return out("payments.sweep_interval_ms", "must be greater than zero");
        }
        if p.dev_abort_after_fee_charge && !self.dev_mode {
            return out(
                "payments.dev_abort_after_fee_charge",
                "allowed only in dev mode",
            );
        }
        if p.stripe.timeout_ms == 0 {
            return out("payments.stripe.timeout_ms", "must be greater than zero");
        }
        if p.stripe.webhook_tolerance_seconds == 0 {
            return out(
                "payments.stripe.webhook_tolerance_seconds",
                "must be greater than zero",
            );
        }
        if p.provider == PaymentProviderKind::Stripe {
            let url = &p.stripe.base_url;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return out("payments.stripe.base_url", "must be an http(s) URL");
            }
            if p.stripe
                .api_key
                .as_ref()
                .is_none_or(|k| k.expose().is_empty())
            {
                return out(
                    "payments.stripe.api_key",
                    "is required with provider stripe",
                );
            }
            if p.stripe.webhook_secrets.is_empty()
                || p.stripe
                    .webhook_secrets
                    .iter()
                    .any(|s| s.expose().is_empty())
            {
                return out(
                    "payments.stripe.webhook_secrets",
                    "needs at least one non-empty secret with provider stripe",
                );
            }
        }
        Ok(())
    }

    /// Whether a user is a platform admin by configuration.
    pub fn is_admin(&self, user_id: Uuid, email: &str) -> bool {
        self.auth.admin_user_ids.contains(&user_id)
            || self
                .auth
                .admin_emails
                .iter()
                .any(|e| e.trim().eq_ignore_ascii_case(email.trim()))
    }
}
