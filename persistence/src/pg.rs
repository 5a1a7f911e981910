//! The Postgres backend: one `UNNEST` insert per group, the read model upserted in the same
//! transaction, the overlap constraint as a backstop.

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::PgPool;
use sqlx::postgres::Postgres;
use uuid::Uuid;

use crate::backend::{EventBlob, ItemBlob, SnapshotRow};

use crate::accounts::{Membership, User};
use crate::backend::{
    Backend, DbResult, Group, Losers, UserRow, WriteError, loser_keys, losers_of,
};
use crate::rows::HOLD_CONVERTED;

pub(crate) struct PgBackend {
    pub pool: PgPool,
}

type Tx = sqlx::Transaction<'static, Postgres>;

const INSERT_EVENTS: &str = "\
INSERT INTO events (establishment_id, seq, kind, payload)
SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::bytea[])
ON CONFLICT DO NOTHING
RETURNING establishment_id, seq";

const DELETE_EVENTS: &str = "\
DELETE FROM events e USING UNNEST($1::uuid[], $2::int8[]) AS d(establishment_id, seq)
WHERE e.establishment_id = d.establishment_id AND e.seq = d.seq";

const UPSERT_ITEMS: &str = "\
INSERT INTO bookings (id, establishment_id, kind, staff_id, customer_id, start_at, end_at,
                      busy_until, status, seq, data)
SELECT id, establishment_id, kind, staff_id, customer_id, navaro_ts(start_us), navaro_ts(end_us),
       navaro_ts(busy_us), status, seq, data
FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::int8[], $7::int8[],
            $8::int8[], $9::text[], $10::int8[], $11::bytea[])
     AS u(id, establishment_id, kind, staff_id, customer_id, start_us, end_us, busy_us, status, seq, data)
ON CONFLICT (id) DO UPDATE SET
    staff_id = excluded.staff_id, customer_id = excluded.customer_id,
    start_at = excluded.start_at, end_at = excluded.end_at, busy_until = excluded.busy_until,
    status = excluded.status, seq = excluded.seq, data = excluded.data
WHERE bookings.seq <= excluded.seq";

async fn insert_events(tx: &mut Tx, group: &Group) -> DbResult<Vec<(Uuid, i64)>> {
    let ev = &group.events;
    sqlx::query_as::<_, (Uuid, i64)>(INSERT_EVENTS)
        .bind(ev.iter().map(|r| r.establishment_id).collect::<Vec<_>>())
        .bind(ev.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind(ev.iter().map(|r| r.kind).collect::<Vec<_>>())
        .bind(ev.iter().map(|r| r.payload.as_slice()).collect::<Vec<_>>())
        .fetch_all(&mut **tx)
        .await
}

async fn delete_events(tx: &mut Tx, keys: Vec<(Uuid, i64)>) -> DbResult<()> {
    let (ests, seqs): (Vec<Uuid>, Vec<i64>) = keys.into_iter().unzip();
    sqlx::query(DELETE_EVENTS)
        .bind(ests)
        .bind(seqs)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn project(tx: &mut Tx, group: &Group, losers: &Losers) -> DbResult<()> {
    let items: Vec<_> = group.items_without(losers).collect();
    if !items.is_empty() {
        sqlx::query(UPSERT_ITEMS)
            .bind(items.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(items.iter().map(|r| r.establishment_id).collect::<Vec<_>>())
            .bind(items.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
            .bind(items.iter().map(|r| r.staff_id).collect::<Vec<_>>())
            .bind(items.iter().map(|r| r.customer_id).collect::<Vec<_>>())
            .bind(items.iter().map(|r| r.start_us).collect::<Vec<_>>())
            .bind(items.iter().map(|r| r.end_us).collect::<Vec<_>>())
            .bind(items.iter().map(|r| r.busy_until_us).collect::<Vec<_>>())
            .bind(items.iter().map(|r| r.status).collect::<Vec<_>>())
            .bind(items.iter().map(|r| r.seq).collect::<Vec<_>>())
            .bind(items.iter().map(|r| r.data.as_slice()).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
    }
    let converted = group.converted_without(losers);
    if !converted.is_empty() {
        sqlx::query("UPDATE bookings SET status = $2 WHERE id = ANY($1) AND kind = 'hold'")
            .bind(converted)
            .bind(HOLD_CONVERTED)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl PgBackend {
    async fn write_group_now(&self, group: &Group) -> Result<Losers, WriteError> {
        let mut tx = self.pool.begin().await?;
        let inserted = insert_events(&mut tx, group).await?;
        let losers = losers_of(&group.events, &inserted);
        if !losers.is_empty() {
            delete_events(&mut tx, loser_keys(&inserted, &losers)).await?;
        }
        project(&mut tx, group, &losers).await?;
        tx.commit().await?;
        Ok(losers)
    }
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

    fn insert_user<'a>(&'a self, user: &'a User) -> BoxFuture<'a, DbResult<()>> {
        async move {
            sqlx::query(
                "INSERT INTO users (id, email, name, password_hash, created_at)
                 VALUES ($1, $2, $3, $4, navaro_ts($5))",
            )
            .bind(user.id.0)
            .bind(&user.email)
            .bind(&user.name)
            .bind(&user.password_hash)
            .bind(user.created_at.as_microsecond())
            .execute(&self.pool)
            .await?;
            Ok(())
        }
        .boxed()
    }

    fn user_by_email<'a>(&'a self, email: &'a str) -> BoxFuture<'a, DbResult<Option<UserRow>>> {
        sqlx::query_as(
            "SELECT id, email, name, password_hash, navaro_us(created_at) FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .boxed()
    }

    fn user_by_id(&self, id: Uuid) -> BoxFuture<'_, DbResult<Option<UserRow>>> {
        sqlx::query_as(
            "SELECT id, email, name, password_hash, navaro_us(created_at) FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .boxed()
    }

    fn upsert_membership(&self, m: Membership) -> BoxFuture<'_, DbResult<bool>> {
        async move {
            let done = sqlx::query(
                "INSERT INTO memberships (user_id, establishment_id, role)
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM users WHERE id = $1)
                 ON CONFLICT (user_id, establishment_id) DO UPDATE SET role = excluded.role",
            )
            .bind(m.user_id.0)
            .bind(m.establishment_id.0)
            .bind(m.role.as_str())
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        }
        .boxed()
    }

    fn memberships_of(&self, user: Uuid) -> BoxFuture<'_, DbResult<Vec<(Uuid, String)>>> {
        sqlx::query_as(
            "SELECT establishment_id, role FROM memberships WHERE user_id = $1 ORDER BY establishment_id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .boxed()
    }

    fn role_at(&self, user: Uuid, establishment: Uuid) -> BoxFuture<'_, DbResult<Option<String>>> {
        sqlx::query_scalar(
            "SELECT role FROM memberships WHERE user_id = $1 AND establishment_id = $2",
        )
        .bind(user)
        .bind(establishment)
        .fetch_optional(&self.pool)
        .boxed()
    }

    fn ping(&self) -> BoxFuture<'_, DbResult<()>> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .map(|done| done.map(|_| ()))
            .boxed()
    }
}
