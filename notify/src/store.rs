//! The notify crate's tables (Postgres migration 0009, SQLite 0006, in
//! `navaro-persistence`), on either database.
//!
//! The statements are the same text on both (instants are integer microseconds, ids
//! bind as `uuid` on Postgres and 16-byte blobs on SQLite, parameters are `$n` numbered
//! in order of first use, which SQLite also accepts); [`on_db!`] runs one on whichever
//! pool this is. Only the claim differs: `FOR UPDATE SKIP LOCKED` on Postgres, so that
//! two nodes never claim the same row, and SQLite's single write lock there.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{PgPool, SqlitePool};
use uuid::Uuid;

use crate::NotifyError;

/// A pool on the server's database.
#[derive(Clone, Debug)]
pub enum Db {
    Pg(PgPool),
    Sqlite(SqlitePool),
}

/// Run `$body` with `$pool` bound to whichever pool `$db` holds and `$begin` to the
/// statement that opens a write transaction there (`BEGIN IMMEDIATE` on SQLite, so two
/// writers queue on the lock instead of failing on its upgrade).
macro_rules! on_db {
    ($db:expr, |$pool:ident, $begin:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Pg($pool) => {
                #[allow(unused_variables)]
                let $begin = "BEGIN";
                $body
            }
            $crate::store::Db::Sqlite($pool) => {
                #[allow(unused_variables)]
                let $begin = "BEGIN IMMEDIATE";
                $body
            }
        }
    };
}
pub(crate) use on_db;

/// Connections of the notify pool: the consumer, the deliverer and the API's few
/// queries share them; deliveries hold none while they wait on a receiver.
const POOL_CONNECTIONS: u32 = 4;
/// How long to wait for a connection (or SQLite's write lock).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

impl Db {
    /// Connect to the database the stores opened (and migrated) at `url`.
    pub async fn connect(url: &str) -> Result<Db, NotifyError> {
        let options = sqlx::pool::PoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT);
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect =
                PgConnectOptions::from_str(url).map_err(|e| NotifyError::Store(e.to_string()))?;
            let pool = sqlx::pool::PoolOptions::new()
                .max_connections(POOL_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(connect)
                .await?;
            Ok(Db::Pg(pool))
        } else {
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(|e| NotifyError::Store(e.to_string()))?
                .busy_timeout(ACQUIRE_TIMEOUT)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
            Ok(Db::Sqlite(options.connect_with(connect).await?))
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Pg(_))
    }
}

/// A delivery as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: Uuid,
    pub establishment_id: Uuid,
    pub channel: Channel,
    /// The endpoint (webhook) or the user (push).
    pub target: Uuid,
    pub event_type: String,
    /// JSON: the webhook body, or the push message's title, body and data.
    pub payload: String,
    /// Set on reminders, so a cancel or reschedule finds them.
    pub booking_id: Option<Uuid>,
    pub due_at_us: i64,
    pub attempts: i32,
}

/// How a delivery leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Webhook,
    Push,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Push => "push",
        }
    }

    fn parse(s: &str) -> Result<Channel, NotifyError> {
        match s {
            "webhook" => Ok(Channel::Webhook),
            "push" => Ok(Channel::Push),
            other => Err(NotifyError::Store(format!("unknown channel {other:?}"))),
        }
    }
}

/// A delivery's state, for the members' list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryStatus {
    pub id: Uuid,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at_us: i64,
    pub due_at_us: i64,
    pub delivered_at_us: Option<i64>,
}

type RawRow = (
    Uuid,
    Uuid,
    String,
    Uuid,
    String,
    String,
    Option<Uuid>,
    i64,
    i32,
);

fn outbox_row(raw: RawRow) -> Result<OutboxRow, NotifyError> {
    let (id, establishment_id, channel, target, event_type, payload, booking_id, due, attempts) =
        raw;
    Ok(OutboxRow {
        id,
        establishment_id,
        channel: Channel::parse(&channel)?,
        target,
        event_type,
        payload,
        booking_id,
        due_at_us: due,
        attempts,
    })
}

const CLAIM_PG: &str = "UPDATE notify_outbox SET lease_until = $1 WHERE id IN (\
     SELECT id FROM notify_outbox WHERE status = 'pending' AND due_at <= $2 AND channel = $3 \
     AND lease_until <= $2 ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING id, establishment_id, channel, target, event_type, payload, booking_id, due_at, attempts";
const CLAIM_SQLITE: &str = "UPDATE notify_outbox SET lease_until = $1 WHERE id IN (\
     SELECT id FROM notify_outbox WHERE status = 'pending' AND due_at <= $2 AND channel = $3 \
     AND lease_until <= $2 ORDER BY due_at LIMIT $4) \
     RETURNING id, establishment_id, channel, target, event_type, payload, booking_id, due_at, attempts";

impl Db {
    /// Lease up to `limit` due rows of a channel until `lease_until_us`: no other claim
    /// (on this node or another) takes them before then. A node that dies holding a
    /// lease delays its rows by the lease, never loses them.
    pub async fn claim(
        &self,
        channel: Channel,
        now_us: i64,
        lease_until_us: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, NotifyError> {
        let raw: Vec<RawRow> = match self {
            Db::Pg(pool) => {
                sqlx::query_as(CLAIM_PG)
                    .bind(lease_until_us)
                    .bind(now_us)
                    .bind(channel.as_str())
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
            Db::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let rows = sqlx::query_as(CLAIM_SQLITE)
                    .bind(lease_until_us)
                    .bind(now_us)
                    .bind(channel.as_str())
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                rows
            }
        };
        raw.into_iter().map(outbox_row).collect()
    }

    /// The delivery succeeded.
    pub async fn mark_delivered(
        &self,
        id: Uuid,
        now_us: i64,
        http_status: Option<i32>,
    ) -> Result<(), NotifyError> {
        on_db!(self, |pool, _b| {
            sqlx::query(
                "UPDATE notify_outbox SET status = 'delivered', delivered_at = $2, \
                 attempts = attempts + 1, last_status = $3, last_error = NULL, lease_until = 0 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(now_us)
            .bind(http_status)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The attempt failed: try again at `retry_at_us`, or give up (`None`) with status
    /// `failed` (or `cancelled` when `cancel` says nobody wants it any more).
    pub async fn mark_attempt_failed(
        &self,
        id: Uuid,
        retry_at_us: Option<i64>,
        http_status: Option<i32>,
        error: &str,
        cancel: bool,
    ) -> Result<(), NotifyError> {
        let status = match (retry_at_us, cancel) {
            (_, true) => "cancelled",
            (Some(_), false) => "pending",
            (None, false) => "failed",
        };
        on_db!(self, |pool, _b| {
            sqlx::query(
                "UPDATE notify_outbox SET status = $2, due_at = COALESCE($3, due_at), \
                 attempts = attempts + 1, last_status = $4, last_error = $5, lease_until = 0 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(status)
            .bind(retry_at_us)
            .bind(http_status)
            .bind(error)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Put a delivery back in the queue without counting an attempt (a push held back
    /// by Expo's rate limit, a lease given up on shutdown).
    pub async fn postpone(&self, id: Uuid, due_at_us: i64) -> Result<(), NotifyError> {
        on_db!(self, |pool, _b| {
            sqlx::query("UPDATE notify_outbox SET due_at = $2, lease_until = 0 WHERE id = $1")
                .bind(id)
                .bind(due_at_us)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Counts by status, and the due time of the oldest pending row that is due.
    pub async fn gauges(&self, now_us: i64) -> Result<(i64, i64, Option<i64>), NotifyError> {
        let row: (i64, i64, Option<i64>) = on_db!(self, |pool, _b| {
            sqlx::query_as(
                "SELECT \
                   (SELECT count(*) FROM notify_outbox WHERE status = 'pending'), \
                   (SELECT count(*) FROM notify_outbox WHERE status = 'pending' AND lease_until > $1), \
                   (SELECT min(due_at) FROM notify_outbox WHERE status = 'pending' AND due_at <= $1)",
            )
            .bind(now_us)
            .fetch_one(pool)
            .await?
        });
        Ok(row)
    }

    /// The latest deliveries to one target (an endpoint), newest first.
    pub async fn deliveries_of(
        &self,
        target: Uuid,
        limit: i64,
    ) -> Result<Vec<DeliveryStatus>, NotifyError> {
        type Raw = (
            Uuid,
            String,
            String,
            i32,
            Option<i32>,
            Option<String>,
            i64,
            i64,
            Option<i64>,
        );
        let rows: Vec<Raw> = on_db!(self, |pool, _b| {
            sqlx::query_as(
                "SELECT id, event_type, status, attempts, last_status, last_error, created_at, \
                 due_at, delivered_at FROM notify_outbox WHERE target = $1 \
                 ORDER BY created_at DESC, id LIMIT $2",
            )
            .bind(target)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| DeliveryStatus {
                id: r.0,
                event_type: r.1,
                status: r.2,
                attempts: r.3,
                last_status: r.4,
                last_error: r.5,
                created_at_us: r.6,
                due_at_us: r.7,
                delivered_at_us: r.8,
            })
            .collect())
    }

    /// Queue one delivery outside the consumer (nothing if its id exists).
    pub async fn enqueue(&self, d: &crate::consumer::NewDelivery) -> Result<(), NotifyError> {
        on_db!(self, |pool, _b| {
            sqlx::query(
                "INSERT INTO notify_outbox (id, establishment_id, channel, target, event_type, \
                 payload, booking_id, due_at, status, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9) ON CONFLICT (id) DO NOTHING",
            )
            .bind(d.id)
            .bind(d.establishment_id)
            .bind(d.channel.as_str())
            .bind(d.target)
            .bind(&d.event_type)
            .bind(&d.payload)
            .bind(d.booking_id)
            .bind(d.due_at_us)
            .bind(d.due_at_us)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The owners of an establishment (the accounts store's `memberships`).
    pub async fn owners_of(&self, establishment_id: Uuid) -> Result<Vec<Uuid>, NotifyError> {
        let rows: Vec<(Uuid,)> = on_db!(self, |pool, _b| {
            sqlx::query_as(
                "SELECT user_id FROM memberships WHERE establishment_id = $1 AND role = 'owner' \
                 ORDER BY user_id",
            )
            .bind(establishment_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    /// Send a delivery of `target` again now (same id, so a receiver that processed it
    /// already can tell). `false` if there is no such delivery.
    pub async fn replay(&self, id: Uuid, target: Uuid, now_us: i64) -> Result<bool, NotifyError> {
        let done = on_db!(self, |pool, _b| {
            sqlx::query(
                "UPDATE notify_outbox SET status = 'pending', due_at = $3, attempts = 0, \
                 lease_until = 0 WHERE id = $1 AND target = $2",
            )
            .bind(id)
            .bind(target)
            .bind(now_us)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }
}
