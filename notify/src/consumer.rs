//! The consumer seam: code that reacts to the journal, off the booking path, at least
//! once, from a durable checkpoint.
//!
//! An [`EventConsumer`] turns a batch of one establishment's events into [`Effect`]s.
//! The [`ConsumerRunner`] reads the journal after the consumer's checkpoint
//! (`consumer_checkpoints`), asks the consumer for the effects and applies them in one
//! transaction with the checkpoint's move. The move is a compare-and-set from the seq
//! the batch was read after: a second runner (another node, a restart racing an old
//! task) that read the same batch finds the checkpoint moved and drops its copy, so each
//! batch's effects are applied once. A crash before the commit leaves the checkpoint
//! where it was, and the batch is derived again; the deliveries' ids are derived from
//! the event, so nothing is queued twice either way.
//!
//! Other modules of the binary (the plugins) consume the journal through the same runner:
//! their effects are [`Effect::Exec`] statements, applied in the same transaction as the
//! checkpoint's move, so a counter they keep counts each event once. A consumer's
//! `derive` runs under [`DEFAULT_DERIVE_TIMEOUT`] and a panic guard: one that panics or
//! hangs fails its batch, which is retried later from the same checkpoint, and never
//! takes the runner (or anything else) down with it.
//!
//! The runner is woken by [`ConsumerRunner::touch`] (the gateway calls it when an
//! append of that establishment is durable) and rescans every establishment whose
//! journal is ahead of the checkpoint at start and every `rescan_every`, which catches
//! whatever a wake missed (a crash between the commit and the wake).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use navaro_engine::store::Journal;
use navaro_protocol::{EstablishmentId, EventRecord};
use tokio::sync::watch;
use uuid::Uuid;

use crate::NotifyError;
use crate::store::{Channel, Db, on_db};

/// Events read from the journal per batch: one transaction of effects each. Bounds the
/// memory a catching-up consumer holds and the length of its transaction.
pub const BATCH_EVENTS: usize = 256;

/// Checkpoints remembered at most; past it the memory starts over.
const KNOWN_ENTRIES: usize = 100_000;

/// How long a consumer's `derive` of one batch may take before the batch is given up
/// and retried: long enough for a few database reads, short enough that a hung consumer
/// is noticed.
pub const DEFAULT_DERIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Wait after a failed catch-up before the next round, growing to [`MAX_RETRY_DELAY`]
/// while failures repeat: a failing consumer is retried, but never spins.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// One parameter of an [`Effect::Exec`] statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bind {
    Uuid(Uuid),
    I64(i64),
    Text(String),
    OptText(Option<String>),
}

/// A statement a consumer wants run with its checkpoint's move: the same text on Postgres
/// and SQLite (`$n` parameters, instants as integer microseconds, upserts with
/// `ON CONFLICT`), so it must be idempotent only where the consumer's own state says so;
/// the checkpoint already makes each batch's statements run once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub sql: &'static str,
    pub binds: Vec<Bind>,
}

impl Statement {
    pub fn new(sql: &'static str, binds: Vec<Bind>) -> Statement {
        Statement { sql, binds }
    }
}

/// What a consumer wants done, applied with the checkpoint in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Queue a delivery; nothing happens if one with its id exists already.
    Enqueue(NewDelivery),
    /// Cancel the pending reminders of a booking, except those listed (the ones this
    /// same batch schedules again).
    CancelReminders { booking_id: Uuid, keep: Vec<Uuid> },
    /// Remember (or, with `None`, forget) which customer a waiting ticket is.
    TicketCustomer {
        establishment_id: Uuid,
        ticket_id: Uuid,
        customer_id: Option<Uuid>,
    },
    /// Remember which user account a staff member has.
    StaffUser {
        establishment_id: Uuid,
        staff_id: Uuid,
        user_id: Uuid,
    },
    /// Run a statement (a plugin's read model: counters, audiences).
    Exec(Statement),
}

/// A delivery to queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    pub id: Uuid,
    pub establishment_id: Uuid,
    pub channel: Channel,
    pub target: Uuid,
    pub event_type: String,
    pub payload: String,
    pub booking_id: Option<Uuid>,
    pub due_at_us: i64,
}

/// Code that reacts to the journal.
pub trait EventConsumer: Send + Sync + 'static {
    /// The checkpoint's name: stable, it keys the consumer's progress.
    fn name(&self) -> &'static str;
    /// The effects of these events (one establishment's, in seq order, after the
    /// checkpoint). Must be a function of the events and of state the effects keep, so
    /// that deriving a batch again gives the same effects.
    fn derive<'a>(
        &'a self,
        establishment_id: Uuid,
        records: &'a [EventRecord],
    ) -> BoxFuture<'a, Result<Vec<Effect>, NotifyError>>;
}

/// A stable id: the first 16 bytes of SHA-256 over the parts, as a version-8 UUID.
pub fn stable_id(parts: &[&[u8]]) -> Uuid {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Runs one consumer over every establishment's journal.
pub struct ConsumerRunner {
    db: Db,
    journal: Arc<dyn Journal>,
    consumer: Arc<dyn EventConsumer>,
    dirty: Mutex<HashSet<Uuid>>,
    /// Checkpoints this runner moved last: a read saved per batch. Safe because the
    /// move is a compare-and-set: a stale entry fails it and is dropped.
    known: Mutex<std::collections::HashMap<Uuid, u64>>,
    wake: tokio::sync::Notify,
    rescan_every: Duration,
    /// Told when effects were applied, so the deliverer looks for new rows at once.
    applied: Arc<tokio::sync::Notify>,
    /// How long one `derive` may take ([`DEFAULT_DERIVE_TIMEOUT`]).
    derive_timeout: Duration,
}

impl ConsumerRunner {
    pub fn new(
        db: Db,
        journal: Arc<dyn Journal>,
        consumer: Arc<dyn EventConsumer>,
        rescan_every: Duration,
        applied: Arc<tokio::sync::Notify>,
    ) -> ConsumerRunner {
        ConsumerRunner {
            db,
            journal,
            consumer,
            dirty: Mutex::new(HashSet::new()),
            known: Mutex::new(std::collections::HashMap::new()),
            wake: tokio::sync::Notify::new(),
            rescan_every,
            applied,
            derive_timeout: DEFAULT_DERIVE_TIMEOUT,
        }
    }

    /// Give each `derive` at most `timeout` (tests shorten it to see a hang handled).
    pub fn with_derive_timeout(mut self, timeout: Duration) -> ConsumerRunner {
        self.derive_timeout = timeout;
        self
    }

    /// The consumer's derive, with a panic and a hang turned into an error.
    async fn derive_guarded(
        &self,
        establishment_id: Uuid,
        records: &[EventRecord],
    ) -> Result<Vec<Effect>, NotifyError> {
        use futures::FutureExt;
        let derive = std::panic::AssertUnwindSafe(self.consumer.derive(establishment_id, records))
            .catch_unwind();
        match tokio::time::timeout(self.derive_timeout, derive).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => {
                metrics::counter!("navaro_consumer_failures_total", "consumer" => self.consumer.name(), "kind" => "panic").increment(1);
                Err(NotifyError::Consumer(format!(
                    "{} panicked on a batch",
                    self.consumer.name()
                )))
            }
            Err(_) => {
                metrics::counter!("navaro_consumer_failures_total", "consumer" => self.consumer.name(), "kind" => "timeout").increment(1);
                Err(NotifyError::Consumer(format!(
                    "{} took longer than {:?} on a batch",
                    self.consumer.name(),
                    self.derive_timeout
                )))
            }
        }
    }

    /// An establishment has new durable events. Cheap and never blocks: called on the
    /// append's completion.
    pub fn touch(&self, establishment_id: Uuid) {
        if let Ok(mut dirty) = self.dirty.lock() {
            dirty.insert(establishment_id);
        }
        self.wake.notify_one();
    }

    /// Run until `stop` turns true: catch up whatever is touched, and rescan
    /// periodically.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut rescan = tokio::time::interval(self.rescan_every);
        let mut retry_delay = FIRST_RETRY_DELAY;
        loop {
            tokio::select! {
                _ = rescan.tick() => {
                    if let Err(e) = self.rescan().await {
                        tracing::warn!(consumer = self.consumer.name(), error = %e, "consumer rescan failed");
                    }
                }
                () = self.wake.notified() => {}
                () = crate::stopped(&mut stop) => return,
            }
            let touched: Vec<Uuid> = match self.dirty.lock() {
                Ok(mut dirty) => dirty.drain().collect(),
                Err(_) => Vec::new(),
            };
            let mut failed = false;
            for id in touched {
                if let Err(e) = self.catch_up(id).await {
                    tracing::warn!(consumer = self.consumer.name(), establishment_id = %id, error = %e, "consumer catch-up failed");
                    // Keep it for the next round (or the next rescan).
                    if let Ok(mut dirty) = self.dirty.lock() {
                        dirty.insert(id);
                    }
                    failed = true;
                }
            }
            if failed {
                tokio::time::sleep(retry_delay).await;
                retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
                // Come round again even if nothing new is appended.
                self.wake.notify_one();
            } else {
                retry_delay = FIRST_RETRY_DELAY;
            }
        }
    }

    /// Mark every establishment whose journal is ahead of the checkpoint as touched.
    /// Scans the journal's keys (one index scan): run at start and every `rescan_every`,
    /// not per event.
    pub async fn rescan(&self) -> Result<usize, NotifyError> {
        let behind: Vec<(Uuid,)> = on_db!(&self.db, |pool, _b| {
            sqlx::query_as(
                "SELECT e.establishment_id FROM \
                 (SELECT establishment_id, max(seq) AS last FROM events GROUP BY establishment_id) e \
                 LEFT JOIN consumer_checkpoints c \
                   ON c.consumer = $1 AND c.establishment_id = e.establishment_id \
                 WHERE c.seq IS NULL OR c.seq < e.last",
            )
            .bind(self.consumer.name())
            .fetch_all(pool)
            .await?
        });
        let n = behind.len();
        if let Ok(mut dirty) = self.dirty.lock() {
            dirty.extend(behind.into_iter().map(|(id,)| id));
        }
        Ok(n)
    }

    /// Derive and apply everything of one establishment after the checkpoint; the
    /// number of events consumed.
    pub async fn catch_up(&self, establishment_id: Uuid) -> Result<usize, NotifyError> {
        let mut consumed = 0;
        loop {
            let since = self.checkpoint(establishment_id).await?;
            let records = self
                .journal
                .read_after(EstablishmentId(establishment_id), since, BATCH_EVENTS)
                .await
                .map_err(|e| NotifyError::Store(e.to_string()))?;
            let Some(last) = records.last().map(|r| r.seq) else {
                return Ok(consumed);
            };
            let effects = self.derive_guarded(establishment_id, &records).await?;
            let queued = effects
                .iter()
                .filter(|e| matches!(e, Effect::Enqueue(_)))
                .count();
            let moved = self.apply(establishment_id, since, last, &effects).await?;
            self.remember(establishment_id, moved.then_some(last));
            if moved {
                consumed += records.len();
                if queued > 0 {
                    metrics::counter!("navaro_notify_queued_total").increment(queued as u64);
                    self.applied.notify_one();
                }
            }
            if records.len() < BATCH_EVENTS {
                return Ok(consumed);
            }
        }
    }

    fn remember(&self, establishment_id: Uuid, seq: Option<u64>) {
        if let Ok(mut known) = self.known.lock() {
            match seq {
                Some(seq) => {
                    if known.len() >= KNOWN_ENTRIES {
                        known.clear();
                    }
                    known.insert(establishment_id, seq);
                }
                None => {
                    known.remove(&establishment_id);
                }
            }
        }
    }

    async fn checkpoint(&self, establishment_id: Uuid) -> Result<u64, NotifyError> {
        if let Some(seq) = self
            .known
            .lock()
            .ok()
            .and_then(|k| k.get(&establishment_id).copied())
        {
            return Ok(seq);
        }
        let seq: Option<(i64,)> = on_db!(&self.db, |pool, _b| {
            sqlx::query_as(
                "SELECT seq FROM consumer_checkpoints WHERE consumer = $1 AND establishment_id = $2",
            )
            .bind(self.consumer.name())
            .bind(establishment_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(seq.map_or(0, |(s,)| s.max(0) as u64))
    }

    /// Apply the effects and move the checkpoint from `from` to `to`, in one
    /// transaction; `false` (and nothing applied) if another runner moved it first.
    async fn apply(
        &self,
        establishment_id: Uuid,
        from: u64,
        to: u64,
        effects: &[Effect],
    ) -> Result<bool, NotifyError> {
        let name = self.consumer.name();
        on_db!(&self.db, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            let moved = sqlx::query(
                "INSERT INTO consumer_checkpoints (consumer, establishment_id, seq) \
                 VALUES ($1, $2, $3) ON CONFLICT (consumer, establishment_id) \
                 DO UPDATE SET seq = excluded.seq WHERE consumer_checkpoints.seq = $4",
            )
            .bind(name)
            .bind(establishment_id)
            .bind(to as i64)
            .bind(from as i64)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            for effect in effects {
                match effect {
                    Effect::Enqueue(d) => {
                        sqlx::query(
                            "INSERT INTO notify_outbox (id, establishment_id, channel, target, \
                             event_type, payload, booking_id, due_at, status, created_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9) \
                             ON CONFLICT (id) DO NOTHING",
                        )
                        .bind(d.id)
                        .bind(d.establishment_id)
                        .bind(d.channel.as_str())
                        .bind(d.target)
                        .bind(&d.event_type)
                        .bind(&d.payload)
                        .bind(d.booking_id)
                        .bind(d.due_at_us)
                        .bind(jiff::Timestamp::now().as_microsecond())
                        .execute(&mut *tx)
                        .await?;
                    }
                    Effect::CancelReminders { booking_id, keep } => {
                        let pending: Vec<(Uuid,)> = sqlx::query_as(
                            "SELECT id FROM notify_outbox WHERE booking_id = $1 AND status = 'pending'",
                        )
                        .bind(booking_id)
                        .fetch_all(&mut *tx)
                        .await?;
                        for (id,) in pending.into_iter().filter(|(id,)| !keep.contains(id)) {
                            sqlx::query(
                                "UPDATE notify_outbox SET status = 'cancelled', \
                                 last_error = 'booking cancelled or moved' WHERE id = $1",
                            )
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                    Effect::TicketCustomer {
                        establishment_id,
                        ticket_id,
                        customer_id: Some(customer_id),
                    } => {
                        sqlx::query(
                            "INSERT INTO notify_tickets (establishment_id, ticket_id, customer_id) \
                             VALUES ($1, $2, $3) ON CONFLICT (establishment_id, ticket_id) DO NOTHING",
                        )
                        .bind(establishment_id)
                        .bind(ticket_id)
                        .bind(customer_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Effect::TicketCustomer {
                        establishment_id,
                        ticket_id,
                        customer_id: None,
                    } => {
                        sqlx::query(
                            "DELETE FROM notify_tickets WHERE establishment_id = $1 AND ticket_id = $2",
                        )
                        .bind(establishment_id)
                        .bind(ticket_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Effect::StaffUser {
                        establishment_id,
                        staff_id,
                        user_id,
                    } => {
                        sqlx::query(
                            "INSERT INTO notify_staff_users (establishment_id, staff_id, user_id) \
                             VALUES ($1, $2, $3) ON CONFLICT (establishment_id, staff_id) \
                             DO UPDATE SET user_id = excluded.user_id",
                        )
                        .bind(establishment_id)
                        .bind(staff_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Effect::Exec(statement) => {
                        let mut query = sqlx::query(statement.sql);
                        for bind in &statement.binds {
                            query = match bind {
                                Bind::Uuid(v) => query.bind(*v),
                                Bind::I64(v) => query.bind(*v),
                                Bind::Text(v) => query.bind(v.clone()),
                                Bind::OptText(v) => query.bind(v.clone()),
                            };
                        }
                        query.execute(&mut *tx).await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(true)
        })
    }
}
