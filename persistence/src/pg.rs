//! The Postgres backend: a group written by one server-side function call (the events
//! inserted with `UNNEST`, the read model upserted in the same transaction), the overlap
//! constraint as a backstop.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::PgPool;
use sqlx::pool::PoolConnection;
use sqlx::postgres::Postgres;
use uuid::Uuid;

use crate::backend::{EventBlob, ItemBlob, SnapshotRow};

use crate::accounts::{Membership, User};
use crate::backend::{Backend, DbResult, Group, Losers, UserRow, WriteError, unreachable};
use crate::open::PING_AFTER_IDLE;
use crate::rows::HOLD_CONVERTED;

pub(crate) struct PgBackend {
    pool: PgPool,
    /// Connections the group writers keep from one group to the next (at most one per
    /// writer), each with the instant of its last use. sqlx pings a connection when it
    /// goes back to the pool, which would be a second round trip for every group.
    kept: Mutex<Vec<(PoolConnection<Postgres>, Instant)>>,
}

/// The whole group in one call of `navaro_write_group` (migration 0002), outside a
/// transaction block so that the call is its own transaction: one round trip instead of
/// BEGIN, insert, (delete), upsert, (update), COMMIT.
const WRITE_GROUP: &str = "SELECT navaro_write_group($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                           $11, $12, $13, $14, $15, $16, $17, $18)";

/// The same behind the cluster's epoch fence (migration 0010): the first two arguments
/// are the epochs held for the group's establishments.
const WRITE_GROUP_FENCED: &str = "SELECT navaro_write_group_fenced($1, $2, $3, $4, $5, $6, \
                                  $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
                                  $19, $20)";

/// Claim an establishment (see [`Backend::claim_owner`]): the row is created at epoch 1
/// or its epoch bumped, under the row's lock, so concurrent claims get distinct epochs
/// and the last to commit holds the current one.
const CLAIM_OWNER: &str = "INSERT INTO owners (establishment_id, epoch, node) VALUES ($1, 1, $2)
    ON CONFLICT (establishment_id) DO UPDATE
    SET epoch = owners.epoch + 1, node = excluded.node, claimed_at = now()
    RETURNING epoch";

impl PgBackend {
    pub fn new(pool: PgPool) -> Self {
        PgBackend {
            pool,
            kept: Mutex::new(Vec::new()),
        }
    }

    /// A kept connection used within [`PING_AFTER_IDLE`], or one from the pool. A kept
    /// one that sat idle longer goes back to the pool, which checks it on the way in
    /// (and pings its own idle connections before handing them out).
    async fn writer_connection(&self) -> DbResult<PoolConnection<Postgres>> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match kept {
            Some((conn, used)) if used.elapsed() < PING_AFTER_IDLE => Ok(conn),
            stale => {
                // Back to the pool before asking it for one: held across the acquire,
                // it could leave a pool of `writers + 1` with nothing to hand out.
                drop(stale);
                self.pool.acquire().await
            }
        }
    }

    /// Keep a connection for the next group unless its failure says it is broken (a
    /// database's answer, such as the overlap constraint, leaves it usable).
    fn keep(&self, mut conn: PoolConnection<Postgres>, failure: Option<&sqlx::Error>) {
        if failure.is_some_and(unreachable) {
            conn.close_on_drop();
            return;
        }
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((conn, Instant::now()));
    }

    async fn write_group_now(&self, group: &Group) -> Result<Losers, WriteError> {
        let mut conn = self.writer_connection().await?;
        let written = if group.listings.is_empty() {
            write_group_on(&mut conn, group).await
        } else {
            write_group_with_listings(&mut conn, group).await
        };
        self.keep(conn, written.as_ref().err());
        Ok(written?.into_iter().collect())
    }
}

/// The call returns its row before the implicit commit, and the deferred overlap
/// constraint's error comes after that row: sqlx's `fetch_one` (through
/// `fetch_optional`) reads every response up to ReadyForQuery, so such an error is
/// returned, never a row of a transaction that did not commit
/// (`postgres_exclusion_rejects_overlap_and_isolates` holds it to that).
async fn write_group_on(conn: &mut sqlx::PgConnection, group: &Group) -> DbResult<Vec<Uuid>> {
    let ev = &group.events;
    let it = &group.items;
    let cv = &group.converted_holds;
    let query = if group.fence.is_empty() {
        sqlx::query_scalar(WRITE_GROUP)
    } else {
        sqlx::query_scalar(WRITE_GROUP_FENCED)
            .bind(group.fence.iter().map(|(est, _)| *est).collect::<Vec<_>>())
            .bind(
                group
                    .fence
                    .iter()
                    .map(|(_, epoch)| *epoch)
                    .collect::<Vec<_>>(),
            )
    };
    query
        .bind(ev.iter().map(|r| r.establishment_id).collect::<Vec<_>>())
        .bind(ev.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind(ev.iter().map(|r| r.kind).collect::<Vec<_>>())
        .bind(ev.iter().map(|r| r.payload.as_slice()).collect::<Vec<_>>())
        .bind(it.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(it.iter().map(|r| r.establishment_id).collect::<Vec<_>>())
        .bind(it.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
        .bind(it.iter().map(|r| r.staff_id).collect::<Vec<_>>())
        .bind(it.iter().map(|r| r.customer_id).collect::<Vec<_>>())
        .bind(it.iter().map(|r| r.start_us).collect::<Vec<_>>())
        .bind(it.iter().map(|r| r.end_us).collect::<Vec<_>>())
        .bind(it.iter().map(|r| r.busy_until_us).collect::<Vec<_>>())
        .bind(it.iter().map(|r| r.status).collect::<Vec<_>>())
        .bind(it.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind(it.iter().map(|r| r.data.as_slice()).collect::<Vec<_>>())
        .bind(cv.iter().map(|(est, _)| *est).collect::<Vec<_>>())
        .bind(cv.iter().map(|(_, hold)| *hold).collect::<Vec<_>>())
        .bind(HOLD_CONVERTED)
        .fetch_one(conn)
        .await
}

/// A group that changes listings: the same call inside a transaction, then the listing
/// statements of the establishments that did not lose a fencing race, then the commit
/// (where the deferred overlap constraint is checked). Creations and settings changes
/// are rare, so the extra round trips are paid by few groups; every other group is the
/// one-statement call of [`write_group_on`].
async fn write_group_with_listings(
    conn: &mut sqlx::PgConnection,
    group: &Group,
) -> DbResult<Vec<Uuid>> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let losers = write_group_on(&mut tx, group).await?;
    let lost: Losers = losers.iter().copied().collect();
    for change in group.listings_without(&lost) {
        crate::directory_sql::pg_apply(&mut tx, change).await?;
    }
    tx.commit().await?;
    Ok(losers)
}

impl Backend for PgBackend {
    fn write_group<'a>(&'a self, group: &'a Group) -> BoxFuture<'a, Result<Losers, WriteError>> {
        self.write_group_now(group).boxed()
    }

    fn last_seqs<'a>(&'a self, ids: &'a [Uuid]) -> BoxFuture<'a, DbResult<HashMap<Uuid, i64>>> {
        async move {
            let rows = sqlx::query_as::<_, (Uuid, i64)>(
                "SELECT establishment_id, max(seq) FROM events
                 WHERE establishment_id = ANY($1) GROUP BY establishment_id",
            )
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().collect())
        }
        .boxed()
    }

    fn snapshot(&self, id: Uuid) -> BoxFuture<'_, DbResult<Option<SnapshotRow>>> {
        sqlx::query_as("SELECT seq, state FROM snapshots WHERE establishment_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .boxed()
    }

    fn events_after(
        &self,
        id: Uuid,
        since: i64,
        limit: i64,
    ) -> BoxFuture<'_, DbResult<Vec<EventBlob>>> {
        sqlx::query_as(
            "SELECT seq, payload FROM events WHERE establishment_id = $1 AND seq > $2
             ORDER BY seq LIMIT $3",
        )
        .bind(id)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .boxed()
    }

    fn save_snapshot(&self, id: Uuid, seq: i64, state: Vec<u8>) -> BoxFuture<'_, DbResult<()>> {
        async move {
            sqlx::query(
                "INSERT INTO snapshots (establishment_id, seq, state) VALUES ($1, $2, $3)
                 ON CONFLICT (establishment_id) DO UPDATE
                 SET seq = excluded.seq, state = excluded.state, taken_at = now()
                 WHERE snapshots.seq < excluded.seq",
            )
            .bind(id)
            .bind(seq)
            .bind(state)
            .execute(&self.pool)
            .await?;
            Ok(())
        }
        .boxed()
    }

    fn bookings_of_customer(
        &self,
        customer: Uuid,
        limit: i64,
    ) -> BoxFuture<'_, DbResult<Vec<ItemBlob>>> {
        sqlx::query_as(
            "SELECT id, data FROM bookings WHERE customer_id = $1 AND kind = 'booking'
             ORDER BY start_at DESC LIMIT $2",
        )
        .bind(customer)
        .bind(limit)
        .fetch_all(&self.pool)
        .boxed()
    }

    fn bookings_of_establishment(
        &self,
        establishment: Uuid,
        from_us: i64,
        to_us: i64,
    ) -> BoxFuture<'_, DbResult<Vec<ItemBlob>>> {
        sqlx::query_as(
            "SELECT id, data FROM bookings WHERE establishment_id = $1 AND kind = 'booking'
             AND start_at >= navaro_ts($2) AND start_at < navaro_ts($3) ORDER BY start_at, id",
        )
        .bind(establishment)
        .bind(from_us)
        .bind(to_us)
        .fetch_all(&self.pool)
        .boxed()
    }

    fn booking_of_establishment(
        &self,
        establishment: Uuid,
        booking: Uuid,
    ) -> BoxFuture<'_, DbResult<Vec<ItemBlob>>> {
        sqlx::query_as(
            "SELECT id, data FROM bookings WHERE id = $1 AND establishment_id = $2
             AND kind = 'booking'",
        )
        .bind(booking)
        .bind(establishment)
        .fetch_all(&self.pool)
        .boxed()
    }

    crate::backend::account_calls!(ts = "navaro_ts", us = "navaro_us");

    fn claim_owner<'a>(&'a self, id: Uuid, node: &'a str) -> BoxFuture<'a, DbResult<i64>> {
        sqlx::query_scalar(CLAIM_OWNER)
            .bind(id)
            .bind(node)
            .fetch_one(&self.pool)
            .boxed()
    }
}
