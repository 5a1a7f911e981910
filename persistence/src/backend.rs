//! What the SQL stores need from a database, implemented once for Postgres ([`crate::pg`])
//! and once for SQLite ([`crate::sqlite`]).
//!
//! The rules (gap checks, fencing, who gets which answer) live above this seam, in the
//! writer and the store types; a backend only runs statements and reports what they did.

use std::collections::{HashMap, HashSet};

use futures::future::BoxFuture;
use uuid::Uuid;

use crate::accounts::{MemberRole, Membership, User};
use crate::rows::{EventRow, ItemRow};

/// One group of appends to write in one transaction.
#[derive(Debug, Default)]
pub(crate) struct Group {
    pub events: Vec<EventRow>,
    /// At most one row per item id (the latest), in the order they were decided.
    pub items: Vec<ItemRow>,
    /// Holds that became bookings in this group.
    pub converted_holds: Vec<(Uuid, Uuid)>,
    /// Listing changes, in the order decided (rare: creations, settings, services,
    /// suspensions). A group with none is written exactly as before they existed.
    pub listings: Vec<crate::listing::ListingChange>,
    /// On a clustered node, the epoch held for each establishment of the group (one
    /// entry each): the database keeps only the rows of those whose epoch is current
    /// and returns the others as losers. Empty on a single node (no fence).
    pub fence: Vec<(Uuid, i64)>,
}

impl Group {
    /// The read-model rows of the establishments not in `losers`.
    pub fn items_without<'a>(
        &'a self,
        losers: &'a HashSet<Uuid>,
    ) -> impl Iterator<Item = &'a ItemRow> {
        self.items
            .iter()
            .filter(|r| !losers.contains(&r.establishment_id))
    }

    /// The listing changes of the establishments not in `losers`.
    pub fn listings_without<'a>(
        &'a self,
        losers: &'a HashSet<Uuid>,
    ) -> impl Iterator<Item = &'a crate::listing::ListingChange> {
        self.listings
            .iter()
            .filter(|c| !losers.contains(&c.establishment_id()))
    }

    pub fn converted_without(&self, losers: &HashSet<Uuid>) -> Vec<Uuid> {
        self.converted_holds
            .iter()
            .filter(|(est, _)| !losers.contains(est))
            .map(|(_, hold)| *hold)
            .collect()
    }
}

/// Establishments some of whose rows were already in the journal: they lost a fencing
/// race, none of their rows of the group were kept.
pub(crate) type Losers = HashSet<Uuid>;

/// The establishments that have fewer rows in `inserted` than they had in `events`.
pub(crate) fn losers_of(events: &[EventRow], inserted: &[(Uuid, i64)]) -> Losers {
    let mut wanted: HashMap<Uuid, usize> = HashMap::new();
    for row in events {
        *wanted.entry(row.establishment_id).or_default() += 1;
    }
    for (est, _) in inserted {
        if let Some(n) = wanted.get_mut(est) {
            *n = n.saturating_sub(1);
        }
    }
    wanted
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(est, _)| est)
        .collect()
}

/// The keys in `inserted` that belong to a loser, to be deleted again before commit.
pub(crate) fn loser_keys(inserted: &[(Uuid, i64)], losers: &Losers) -> Vec<(Uuid, i64)> {
    inserted
        .iter()
        .filter(|(est, _)| losers.contains(est))
        .copied()
        .collect()
}

/// Why a group was not written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// The read model's overlap constraint refused the group: some establishment's rows
    /// overlap rows already stored. Nothing was committed.
    #[error("overlap constraint: {0}")]
    Overlap(String),
    /// The database answered with an error and did not commit. Nothing is known durable.
    #[error("{0}")]
    Unavailable(String),
    /// The database could not be reached, or did not answer in time. Nothing is known
    /// durable.
    #[error("{0}")]
    Unreachable(String),
    /// No pooled connection within the acquire timeout: the database is gone, or every
    /// connection is busy (the breaker tells the two apart). Nothing was sent.
    #[error("{0}")]
    NoConnection(String),
    /// No pooled connection within the acquire timeout while every connection was
    /// checked out or the database was answering other calls: the breaker's verdict
    /// that it is busy, not gone. Nothing was sent.
    #[error("every connection busy: {0}")]
    Saturated(String),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        // 23P01: exclusion_violation (Postgres).
        match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23P01") => {
                WriteError::Overlap(db.message().to_string())
            }
            sqlx::Error::PoolTimedOut => WriteError::NoConnection(e.to_string()),
            _ if unreachable(&e) => WriteError::Unreachable(e.to_string()),
            _ => WriteError::Unavailable(e.to_string()),
        }
    }
}

/// The breaker's mark on a call that failed because the database was busy, not gone
/// (an overload): a pool timeout while every connection was checked out or the
/// database was answering other calls, or a read with no answer by its deadline while
/// it answered others. Carried as the
/// `sqlx::Error` the call fails with (the reads, and the accounts' and snapshots'
/// writes; the journal's group writes have `WriteError::Saturated`, or keep their
/// unknown outcome), and told apart by [`is_saturated`] where the error becomes the
/// store's own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct PoolSaturated(&'static str);

/// Why a pool timeout was refused as [`PoolSaturated`].
pub(crate) const EVERY_CONNECTION_BUSY: &str =
    "no connection came free within the acquire timeout: every one busy";
/// Why a call with no answer was refused as [`PoolSaturated`].
pub(crate) const NO_ANSWER_WHILE_BUSY: &str =
    "no answer within the deadline while the database answered other calls";

/// The error a call refused for [`PoolSaturated`] fails with.
pub(crate) fn saturated_error(why: &'static str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(PoolSaturated(why)))
}

/// Whether a call failed of an overload (see [`PoolSaturated`]).
pub(crate) fn is_saturated(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<PoolSaturated>()))
}

/// A failed call as a store's own error, with the error's text: `overloaded` when it
/// was refused for [`PoolSaturated`], else `unavailable`.
pub(crate) fn overloaded_or<E>(
    error: &sqlx::Error,
    overloaded: impl FnOnce(String) -> E,
    unavailable: impl FnOnce(String) -> E,
) -> E {
    if is_saturated(error) {
        overloaded(error.to_string())
    } else {
        unavailable(error.to_string())
    }
}

/// Every connection of `pool` is checked out (see [`Backend::saturated`]).
pub(crate) fn pool_saturated<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> bool {
    pool.num_idle() == 0 && pool.size() >= pool.options().get_max_connections()
}

/// The claim of [`Backend::claim_creation_key`]: insert, or keep the row there unless it
/// has expired. The conflicting row is locked and read after any concurrent claim of it
/// commits, so two claims at once return the same establishment.
pub(crate) const CLAIM_CREATION_KEY: &str = "INSERT INTO creation_keys
        (user_id, idempotency_key, establishment_id, claimed_at)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (user_id, idempotency_key) DO UPDATE SET
        establishment_id = CASE WHEN creation_keys.claimed_at < $5
            THEN excluded.establishment_id ELSE creation_keys.establishment_id END,
        claimed_at = CASE WHEN creation_keys.claimed_at < $5
            THEN excluded.claimed_at ELSE creation_keys.claimed_at END
    RETURNING establishment_id";

/// The [`Backend`] calls on users, memberships and creation keys, and the pool's own,
/// written once for both databases inside their `impl Backend` (both accept `$n`
/// placeholders). They differ only in how an instant is stored: Postgres keeps a
/// `timestamptz`, converted from microseconds by `navaro_ts` and back by `navaro_us`;
/// SQLite keeps the microseconds, so there `ts` and `us` are empty and leave a bare
/// parenthesis.
macro_rules! account_calls {
    (ts = $ts:literal, us = $us:literal) => {
        fn insert_user<'a>(&'a self, user: &'a User) -> BoxFuture<'a, DbResult<()>> {
            async move {
                sqlx::query(concat!(
                    "INSERT INTO users (id, email, name, password_hash, created_at)
                     VALUES ($1, $2, $3, $4, ",
                    $ts,
                    "($5))"
                ))
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

        fn user_by_email<'a>(
            &'a self,
            email: &'a str,
        ) -> BoxFuture<'a, DbResult<Option<UserRow>>> {
            sqlx::query_as(concat!(
                "SELECT id, email, name, password_hash, ",
                $us,
                "(created_at) FROM users WHERE email = $1"
            ))
            .bind(email)
            .fetch_optional(&self.pool)
            .boxed()
        }

        fn user_by_id(&self, id: Uuid) -> BoxFuture<'_, DbResult<Option<UserRow>>> {
            sqlx::query_as(concat!(
                "SELECT id, email, name, password_hash, ",
                $us,
                "(created_at) FROM users WHERE id = $1"
            ))
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
                "SELECT establishment_id, role FROM memberships WHERE user_id = $1
                 ORDER BY establishment_id",
            )
            .bind(user)
            .fetch_all(&self.pool)
            .boxed()
        }

        fn role_at(
            &self,
            user: Uuid,
            establishment: Uuid,
        ) -> BoxFuture<'_, DbResult<Option<String>>> {
            sqlx::query_scalar(
                "SELECT role FROM memberships WHERE user_id = $1 AND establishment_id = $2",
            )
            .bind(user)
            .bind(establishment)
            .fetch_optional(&self.pool)
            .boxed()
        }

        fn claim_creation_key<'a>(
            &'a self,
            user: Uuid,
            key: &'a str,
            candidate: Uuid,
            now_s: i64,
            expired_before_s: i64,
        ) -> BoxFuture<'a, DbResult<Uuid>> {
            sqlx::query_scalar($crate::backend::CLAIM_CREATION_KEY)
                .bind(user)
                .bind(key)
                .bind(candidate)
                .bind(now_s)
                .bind(expired_before_s)
                .fetch_one(&self.pool)
                .boxed()
        }

        fn ping(&self) -> BoxFuture<'_, DbResult<()>> {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .map(|done| done.map(|_| ()))
                .boxed()
        }

        fn saturated(&self) -> bool {
            $crate::backend::pool_saturated(&self.pool)
        }
    };
}
pub(crate) use account_calls;

/// Whether an error means "the database could not be reached" rather than an answer
/// from it (a constraint, a locked SQLite file, a missing row).
/// The breaker's [`PoolSaturated`] mark is not: the database is up, only busy.
pub(crate) fn unreachable(error: &sqlx::Error) -> bool {
    !is_saturated(error)
        && matches!(
            error,
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::WorkerCrashed
        )
}

pub(crate) type DbResult<T> = Result<T, sqlx::Error>;
/// A stored snapshot: (seq, state).
pub(crate) type SnapshotRow = (i64, Vec<u8>);
/// A stored event: (seq, payload).
pub(crate) type EventBlob = (i64, Vec<u8>);
/// A stored read-model item: (id, data).
pub(crate) type ItemBlob = (Uuid, Vec<u8>);

/// The statements the stores run. Every method is one short transaction or query.
pub(crate) trait Backend: Send + Sync + 'static {
    /// Write a group in one transaction: insert the events (conflicts do nothing), drop
    /// again the rows of establishments that lost a conflict, project the rest into the
    /// read model, commit. Returns the losers.
    fn write_group<'a>(&'a self, group: &'a Group) -> BoxFuture<'a, Result<Losers, WriteError>>;
    /// The last stored seq of each of these establishments that has events.
    fn last_seqs<'a>(&'a self, ids: &'a [Uuid]) -> BoxFuture<'a, DbResult<HashMap<Uuid, i64>>>;
    fn snapshot(&self, id: Uuid) -> BoxFuture<'_, DbResult<Option<SnapshotRow>>>;
    /// Rows (seq, payload) after `since`, in seq order, at most `limit`.
    fn events_after(
        &self,
        id: Uuid,
        since: i64,
        limit: i64,
    ) -> BoxFuture<'_, DbResult<Vec<EventBlob>>>;
    fn save_snapshot(&self, id: Uuid, seq: i64, state: Vec<u8>) -> BoxFuture<'_, DbResult<()>>;
    /// (id, data) of a customer's bookings, latest start first.
    fn bookings_of_customer(
        &self,
        customer: Uuid,
        limit: i64,
    ) -> BoxFuture<'_, DbResult<Vec<ItemBlob>>>;
    /// (id, data) of an establishment's bookings starting in `[from_us, to_us)`.
    fn bookings_of_establishment(
        &self,
        establishment: Uuid,
        from_us: i64,
        to_us: i64,
    ) -> BoxFuture<'_, DbResult<Vec<ItemBlob>>>;
    /// (id, data) of one of an establishment's bookings (none or one row).
    fn booking_of_establishment(
        &self,
        establishment: Uuid,
        booking: Uuid,
    ) -> BoxFuture<'_, DbResult<Vec<ItemBlob>>>;

    fn insert_user<'a>(&'a self, user: &'a User) -> BoxFuture<'a, DbResult<()>>;
    fn user_by_email<'a>(&'a self, email: &'a str) -> BoxFuture<'a, DbResult<Option<UserRow>>>;
    fn user_by_id(&self, id: Uuid) -> BoxFuture<'_, DbResult<Option<UserRow>>>;
    /// Insert or update; `false` when the user does not exist.
    fn upsert_membership(&self, membership: Membership) -> BoxFuture<'_, DbResult<bool>>;
    /// (establishment id, role) of a user's memberships, by establishment id.
    fn memberships_of(&self, user: Uuid) -> BoxFuture<'_, DbResult<Vec<(Uuid, String)>>>;
    fn role_at(&self, user: Uuid, establishment: Uuid) -> BoxFuture<'_, DbResult<Option<String>>>;
    /// Record `candidate`, claimed at `now_s`, as the establishment `user`'s creation
    /// keyed `key` makes, unless one claimed at or after `expired_before_s` is recorded
    /// already; the one recorded. One statement: concurrent claims see each other.
    fn claim_creation_key<'a>(
        &'a self,
        user: Uuid,
        key: &'a str,
        candidate: Uuid,
        now_s: i64,
        expired_before_s: i64,
    ) -> BoxFuture<'a, DbResult<Uuid>>;
    /// The cheapest round trip (`SELECT 1`): is the database there.
    fn ping(&self) -> BoxFuture<'_, DbResult<()>>;
    /// Claim an establishment for `node`: bump its epoch in `owners` (migration 0010)
    /// and return the new one. Only Postgres has the table; a cluster on SQLite is
    /// refused before it gets here.
    fn claim_owner<'a>(&'a self, _id: Uuid, _node: &'a str) -> BoxFuture<'a, DbResult<i64>> {
        Box::pin(async {
            Err(sqlx::Error::Configuration(
                "the cluster's owners table needs Postgres".into(),
            ))
        })
    }
    /// Every connection of the pool is checked out: a pool timeout now means "busy",
    /// not "gone" (the calls holding them answer for the database's reachability).
    fn saturated(&self) -> bool {
        false
    }
}

/// A `users` row: (id, email, name, password_hash, created_at in microseconds).
pub(crate) type UserRow = (Uuid, String, String, String, i64);

/// Parse a stored role.
pub(crate) fn parse_role(role: &str) -> Option<MemberRole> {
    match role {
        "owner" => Some(MemberRole::Owner),
        "staff" => Some(MemberRole::Staff),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(est: Uuid, seq: i64) -> EventRow {
        EventRow {
            establishment_id: est,
            seq,
            kind: "x",
            payload: vec![],
        }
    }

    #[test]
    fn an_establishment_missing_any_row_is_a_loser() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let events = [row(a, 1), row(a, 2), row(b, 5), row(b, 6), row(c, 1)];
        let inserted = [(a, 1), (a, 2), (b, 6)];
        let losers = losers_of(&events, &inserted);
        assert_eq!(losers, HashSet::from([b, c]));
        assert_eq!(loser_keys(&inserted, &losers), [(b, 6)]);
    }
}
