//! The SQLite backend (the embedded default): multi-row inserts in one `BEGIN IMMEDIATE`
//! transaction, the read model upserted in it.
//!
//! SQLite has one writer at a time; `BEGIN IMMEDIATE` takes the write lock up front, so two
//! processes on one file queue on the busy timeout instead of failing on a lock upgrade.

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use uuid::Uuid;

use crate::backend::{EventBlob, ItemBlob, SnapshotRow};

use crate::accounts::{Membership, User};
use crate::backend::{
    Backend, DbResult, Group, Losers, UserRow, WriteError, loser_keys, losers_of,
};
use crate::rows::{EventRow, HOLD_CONVERTED, ItemRow};

/// Rows per multi-row statement. SQLite binds at most 32,766 parameters per statement;
/// 500 rows of 11 columns stay far below that.
const ROWS_PER_STATEMENT: usize = 500;

pub(crate) struct SqliteBackend {
    pub pool: SqlitePool,
}

type Tx = sqlx::Transaction<'static, Sqlite>;

async fn insert_events(tx: &mut Tx, rows: &[EventRow], now_us: i64) -> DbResult<Vec<(Uuid, i64)>> {
    let mut inserted = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (establishment_id, seq, kind, payload, recorded_at) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.establishment_id)
                .push_bind(r.seq)
                .push_bind(r.kind)
                .push_bind(r.payload.clone())
                .push_bind(now_us);
        });
        q.push(" ON CONFLICT DO NOTHING RETURNING establishment_id, seq");
        inserted.extend(
            q.build_query_as::<(Uuid, i64)>()
                .fetch_all(&mut **tx)
                .await?,
        );
    }
    Ok(inserted)
}

async fn upsert_items(tx: &mut Tx, rows: &[&ItemRow]) -> DbResult<()> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO bookings (id, establishment_id, kind, staff_id, customer_id, start_at, \
             end_at, busy_until, status, seq, data) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.establishment_id)
                .push_bind(r.kind.as_str())
                .push_bind(r.staff_id)
                .push_bind(r.customer_id)
                .push_bind(r.start_us)
                .push_bind(r.end_us)
                .push_bind(r.busy_until_us)
                .push_bind(r.status)
                .push_bind(r.seq)
                .push_bind(r.data.clone());
        });
        q.push(
            " ON CONFLICT (id) DO UPDATE SET staff_id = excluded.staff_id, \
             customer_id = excluded.customer_id, start_at = excluded.start_at, \
             end_at = excluded.end_at, busy_until = excluded.busy_until, \
             status = excluded.status, seq = excluded.seq, data = excluded.data \
             WHERE bookings.seq <= excluded.seq",
        );
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn project(tx: &mut Tx, group: &Group, losers: &Losers) -> DbResult<()> {
    let items: Vec<&ItemRow> = group.items_without(losers).collect();
    upsert_items(tx, &items).await?;
    for hold in group.converted_without(losers) {
        sqlx::query("UPDATE bookings SET status = ?2 WHERE id = ?1 AND kind = 'hold'")
            .bind(hold)
            .bind(HOLD_CONVERTED)
            .execute(&mut **tx)
            .await?;
    }
    for change in group.listings_without(losers) {
        crate::directory_sql::sqlite_apply(&mut *tx, change).await?;
    }
    Ok(())
}

impl SqliteBackend {
    async fn write_group_now(&self, group: &Group) -> Result<Losers, WriteError> {
        let now_us = jiff::Timestamp::now().as_microsecond();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = insert_events(&mut tx, &group.events, now_us).await?;
        let losers = losers_of(&group.events, &inserted);
        for (est, seq) in loser_keys(&inserted, &losers) {
            sqlx::query("DELETE FROM events WHERE establishment_id = ?1 AND seq = ?2")
                .bind(est)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        project(&mut tx, group, &losers).await?;
        tx.commit().await?;
        Ok(losers)
    }

    async fn last_seqs_now(&self, ids: &[Uuid]) -> DbResult<HashMap<Uuid, i64>> {
        let mut out = HashMap::new();
        for id in ids {
            let last: Option<i64> =
                sqlx::query_scalar("SELECT max(seq) FROM events WHERE establishment_id = ?1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
            if let Some(last) = last {
                out.insert(*id, last);
            }
        }
        Ok(out)
    }
}

impl Backend for SqliteBackend {
    fn write_group<'a>(&'a self, group: &'a Group) -> BoxFuture<'a, Result<Losers, WriteError>> {
        self.write_group_now(group).boxed()
    }

    fn last_seqs<'a>(&'a self, ids: &'a [Uuid]) -> BoxFuture<'a, DbResult<HashMap<Uuid, i64>>> {
        self.last_seqs_now(ids).boxed()
    }

    fn snapshot(&self, id: Uuid) -> BoxFuture<'_, DbResult<Option<SnapshotRow>>> {
        sqlx::query_as("SELECT seq, state FROM snapshots WHERE establishment_id = ?1")
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
            "SELECT seq, payload FROM events WHERE establishment_id = ?1 AND seq > ?2
             ORDER BY seq LIMIT ?3",
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
                "INSERT INTO snapshots (establishment_id, seq, state, taken_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (establishment_id) DO UPDATE
                 SET seq = excluded.seq, state = excluded.state, taken_at = excluded.taken_at
                 WHERE snapshots.seq < excluded.seq",
            )
            .bind(id)
            .bind(seq)
            .bind(state)
            .bind(jiff::Timestamp::now().as_microsecond())
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
            "SELECT id, data FROM bookings WHERE customer_id = ?1 AND kind = 'booking'
             ORDER BY start_at DESC LIMIT ?2",
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
            "SELECT id, data FROM bookings WHERE establishment_id = ?1 AND kind = 'booking'
             AND start_at >= ?2 AND start_at < ?3 ORDER BY start_at, id",
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
            "SELECT id, data FROM bookings WHERE id = ?1 AND establishment_id = ?2
             AND kind = 'booking'",
        )
        .bind(booking)
        .bind(establishment)
        .fetch_all(&self.pool)
        .boxed()
    }

    crate::backend::account_calls!(ts = "", us = "");
}
