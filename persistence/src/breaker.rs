//! Failing fast while the database is unreachable.
//!
//! Every store call goes through [`Guarded`], which bounds it by a deadline and watches
//! how it ends. The first call that finds the database unreachable (no connection within
//! the pool's acquire timeout, a broken socket, no answer within the deadline) opens the
//! breaker: from then on every call is answered at once with an error, instead of each
//! one waiting out the same timeouts in a partition, and one background probe (`SELECT
//! 1`) asks the database every [`Breaker::probe_every`] whether it is back. The first
//! probe that succeeds closes the breaker. Answers that come from the database itself
//! (a constraint, a locked SQLite file, a missing row) say nothing about reachability
//! and never open it. Nor does a busy database: a pool timeout or a call with no answer
//! while the database answers other calls (or, for a pool timeout, while every
//! connection is checked out) fails alone, as an overload (see
//! [`Guarded::answered_lately`]).
//!
//! The state is one atomic counter: even is closed, odd is open. A call remembers the
//! value it started under and may open the breaker only from that value, so a call that
//! began before the database came back (and fails late) cannot reopen a breaker the
//! probe has just closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::accounts::{Membership, User};
use crate::backend::{
    Backend, DbResult, EventBlob, Group, ItemBlob, Losers, SnapshotRow, UserRow, WriteError,
    unreachable,
};

/// The open/closed state shared by a store's calls and its probe.
pub(crate) struct Breaker {
    /// Even: closed. Odd: open. Each change adds one.
    epoch: AtomicU64,
    /// Pause between two probes while open.
    probe_every: Duration,
    /// Longest one call (or one probe) may take before it counts as "no answer".
    deadline: Duration,
}

impl Breaker {
    pub fn new(probe_every: Duration, deadline: Duration) -> Breaker {
        Breaker {
            epoch: AtomicU64::new(0),
            probe_every,
            deadline,
        }
    }

    fn is_open(epoch: u64) -> bool {
        epoch % 2 == 1
    }

    /// Open the breaker if it is still in the closed state `seen`; `true` for the one
    /// caller that opened it (and must start the probe).
    fn open_from(&self, seen: u64) -> bool {
        !Breaker::is_open(seen)
            && self
                .epoch
                .compare_exchange(seen, seen + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    fn close(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

/// The two error types store calls fail with, as the breaker needs to see them.
trait Failure: Sized {
    /// The database could not be reached (see [`crate::backend::unreachable`]).
    fn is_unreachable(&self) -> bool;
    /// No pooled connection within the acquire timeout (one kind of unreachable).
    fn is_pool_timeout(&self) -> bool;
    /// The fast answer while the breaker is open.
    fn refused() -> Self;
    /// No answer within the deadline.
    fn no_answer(deadline: Duration) -> Self;
    /// This pool timeout happened while the database was busy: say so (writes and
    /// reads then answer `overloaded` instead of `unavailable`).
    fn saturated(self) -> Self {
        self
    }
    /// This read had no answer by its deadline while the database answered others.
    fn slow(self) -> Self {
        self
    }
}

const REFUSED: &str = "database unreachable: failing fast until a probe reaches it again";

fn no_answer_text(deadline: Duration) -> String {
    format!("database did not answer within {} ms", deadline.as_millis())
}

impl Failure for sqlx::Error {
    fn is_unreachable(&self) -> bool {
        unreachable(self)
    }

    fn is_pool_timeout(&self) -> bool {
        matches!(self, sqlx::Error::PoolTimedOut)
    }

    fn refused() -> Self {
        sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            REFUSED,
        ))
    }

    fn no_answer(deadline: Duration) -> Self {
        sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            no_answer_text(deadline),
        ))
    }

    /// The call answers `overloaded` (see [`crate::backend::PoolSaturated`]).
    fn saturated(self) -> Self {
        crate::backend::saturated_error(crate::backend::EVERY_CONNECTION_BUSY)
    }

    /// The read answers `overloaded`: it can be asked again.
    fn slow(self) -> Self {
        crate::backend::saturated_error(crate::backend::NO_ANSWER_WHILE_BUSY)
    }
}

impl Failure for WriteError {
    fn is_unreachable(&self) -> bool {
        matches!(
            self,
            WriteError::Unreachable(_) | WriteError::NoConnection(_)
        )
    }

    fn is_pool_timeout(&self) -> bool {
        matches!(self, WriteError::NoConnection(_))
    }

    fn refused() -> Self {
        WriteError::Unreachable(REFUSED.to_owned())
    }

    /// The commit's outcome is unknown: the writer's callers are told nothing is known
    /// durable and their actors reload from the store.
    fn no_answer(deadline: Duration) -> Self {
        WriteError::Unreachable(no_answer_text(deadline))
    }

    fn saturated(self) -> Self {
        match self {
            WriteError::NoConnection(reason) => WriteError::Saturated(reason),
            other => other,
        }
    }

    /// Never called: a group write keeps its unknown outcome (its callers' actors
    /// reload), as every write does.
    fn slow(self) -> Self {
        self
    }
}

/// A [`Backend`] behind a [`Breaker`].
pub(crate) struct Guarded {
    inner: Arc<dyn Backend>,
    breaker: Arc<Breaker>,
    /// The clock [`Guarded::last_answer`] counts from.
    origin: tokio::time::Instant,
    /// When the database last answered a call with a result, in µs since `origin`,
    /// plus one (zero: never); see [`Guarded::answered_lately`].
    last_answer: AtomicU64,
}

/// Whether a call writes: a write with no answer may have committed, so it is not
/// told `overloaded` (which promises that nothing happened and a retry will do).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
}

impl Guarded {
    pub fn new(inner: Arc<dyn Backend>, breaker: Breaker) -> Guarded {
        metrics::gauge!("navaro_store_reachable").set(1.0);
        Guarded {
            inner,
            breaker: Arc::new(breaker),
            origin: tokio::time::Instant::now(),
            last_answer: AtomicU64::new(0),
        }
    }

    /// The state a call starts under, or the fast refusal when it is open.
    fn admit(&self) -> Option<u64> {
        let epoch = self.breaker.epoch.load(Ordering::Acquire);
        if Breaker::is_open(epoch) {
            metrics::counter!("navaro_store_refused_total").increment(1);
            None
        } else {
            Some(epoch)
        }
    }

    /// The database did not answer a call that started under `seen`.
    fn lost(&self, seen: u64, why: &str) {
        if self.breaker.open_from(seen) {
            tracing::warn!(error = %why, "database unreachable: store calls fail fast until a probe reaches it");
            metrics::gauge!("navaro_store_reachable").set(0.0);
            tokio::spawn(probe(
                Arc::downgrade(&self.inner),
                self.breaker.clone(),
                Instant::now(),
            ));
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Whether the database answered some call after `started` (this call's start) and
    /// within the last half deadline: then it is up, and a call that failed for want of
    /// a connection or of an answer failed of an overload (or of a lock it waits on).
    /// In a partition the answers stop, so within half a deadline of its start every
    /// failing call opens the breaker, the ones begun before it included.
    fn answered_lately(&self, started: u64) -> bool {
        let last = self.last_answer.load(Ordering::Acquire);
        let window = u64::try_from((self.breaker.deadline / 2).as_micros()).unwrap_or(u64::MAX);
        last > started && self.now_us().saturating_sub(last) <= window
    }

    /// Run `query` unless the breaker is open, bounded by the deadline; open the breaker
    /// when it finds the database unreachable.
    fn call<'a, T: Send + 'a, E: Failure + std::fmt::Display + Send + 'a>(
        &'a self,
        kind: Kind,
        query: impl FnOnce() -> BoxFuture<'a, Result<T, E>>,
    ) -> BoxFuture<'a, Result<T, E>> {
        let Some(seen) = self.admit() else {
            return futures::future::ready(Err(E::refused())).boxed();
        };
        let started = self.now_us();
        let query = query();
        async move {
            let (answer, timed_out) = match tokio::time::timeout(self.breaker.deadline, query).await
            {
                Ok(answer) => (answer, false),
                Err(_) => (Err(E::no_answer(self.breaker.deadline)), true),
            };
            match answer {
                Ok(answer) => {
                    self.last_answer.fetch_max(self.now_us(), Ordering::AcqRel);
                    Ok(answer)
                }
                // Busy, not gone (an overload): no connection came free in time, and
                // every connection is checked out (their calls open the breaker at
                // their own deadlines if the database is silent) or the database is
                // answering the calls that hold them. Opening the breaker would turn a
                // burst of slow calls into refused bookings and unavailable reads, the
                // reads of every establishment included. (The snapshot of the pool
                // alone, taken as the timeout fires, let a connection idle at that
                // instant turn an overload into an outage.)
                Err(e)
                    if e.is_pool_timeout()
                        && (self.inner.saturated() || self.answered_lately(started)) =>
                {
                    metrics::counter!("navaro_store_saturated_total").increment(1);
                    Err(e.saturated())
                }
                // No answer by the deadline while the database answers others: it is
                // slow (starved of CPU, or this call waits on a lock), not unreachable.
                // The call fails and the breaker stays closed. A read is told to come
                // back; a write keeps its unknown outcome.
                Err(e) if timed_out && self.answered_lately(started) => {
                    metrics::counter!("navaro_store_slow_total").increment(1);
                    Err(if kind == Kind::Read { e.slow() } else { e })
                }
                Err(e) if e.is_unreachable() => {
                    self.lost(seen, &e.to_string());
                    Err(e)
                }
                Err(e) => Err(e),
            }
        }
        .boxed()
    }
}

/// Ask the database every `probe_every` until it answers, then close the breaker. Ends
/// early when the store is gone.
async fn probe(inner: Weak<dyn Backend>, breaker: Arc<Breaker>, since: Instant) {
    loop {
        tokio::time::sleep(breaker.probe_every).await;
        let Some(backend) = inner.upgrade() else {
            return;
        };
        let answered = tokio::time::timeout(breaker.deadline, backend.ping()).await;
        if let Ok(Ok(())) = answered {
            breaker.close();
            metrics::gauge!("navaro_store_reachable").set(1.0);
            tracing::info!(
                unreachable_ms = since.elapsed().as_millis() as u64,
                "database reachable again"
            );
            return;
        }
    }
}

impl Backend for Guarded {
    fn write_group<'a>(&'a self, group: &'a Group) -> BoxFuture<'a, Result<Losers, WriteError>> {
        self.call(Kind::Write, || self.inner.write_group(group))
    }

    fn last_seqs<'a>(&'a self, ids: &'a [Uuid]) -> BoxFuture<'a, DbResult<HashMap<Uuid, i64>>> {
        self.call(Kind::Read, || self.inner.last_seqs(ids))
    }

    fn snapshot(&self, id: Uuid) -> BoxFuture<'_, DbResult<Option<SnapshotRow>>> {
        self.call(Kind::Read, || self.inner.snapshot(id))
    }

    fn events_after(
        &self,
        id: Uuid,
        since: i64,
        limit: i64,
    ) -> BoxFuture<'_, DbResult<Vec<EventBlob>>> {
        self.call(Kind::Read, || self.inner.events_after(id, since, limit))
    }

    fn save_snapshot(&self, id: Uuid, seq: i64, state: Vec<u8>) -> BoxFuture<'_, DbResult<()>> {
        self.call(Kind::Write, || self.inner.save_snapshot(id, seq, state))
    }

    fn bookings_of_customer(
        &self,
        customer: Uuid,
        limit: i64,
    ) -> BoxFuture<'_, DbResult<Vec<ItemBlob>>> {
        self.call(Kind::Read, || {
            self.inner.bookings_of_customer(customer, limit)
        })
    }

    fn bookings_of_establishment(
        &self,
        establishment: Uuid,
        from_us: i64,
        to_us: i64,
    ) -> BoxFuture<'_, DbResult<Vec<ItemBlob>>> {
        self.call(Kind::Read, || {
            self.inner
                .bookings_of_establishment(establishment, from_us, to_us)
        })
    }

    fn booking_of_establishment(
        &self,
        establishment: Uuid,
        booking: Uuid,
    ) -> BoxFuture<'_, DbResult<Vec<ItemBlob>>> {
        self.call(Kind::Read, || {
            self.inner.booking_of_establishment(establishment, booking)
        })
    }

    fn insert_user<'a>(&'a self, user: &'a User) -> BoxFuture<'a, DbResult<()>> {
        self.call(Kind::Write, || self.inner.insert_user(user))
    }

    fn user_by_email<'a>(&'a self, email: &'a str) -> BoxFuture<'a, DbResult<Option<UserRow>>> {
        self.call(Kind::Read, || self.inner.user_by_email(email))
    }

    fn user_by_id(&self, id: Uuid) -> BoxFuture<'_, DbResult<Option<UserRow>>> {
        self.call(Kind::Read, || self.inner.user_by_id(id))
    }

    fn upsert_membership(&self, membership: Membership) -> BoxFuture<'_, DbResult<bool>> {
        self.call(Kind::Write, || self.inner.upsert_membership(membership))
    }

    fn memberships_of(&self, user: Uuid) -> BoxFuture<'_, DbResult<Vec<(Uuid, String)>>> {
        self.call(Kind::Read, || self.inner.memberships_of(user))
    }

    fn role_at(&self, user: Uuid, establishment: Uuid) -> BoxFuture<'_, DbResult<Option<String>>> {
        self.call(Kind::Read, || self.inner.role_at(user, establishment))
    }

    fn claim_creation_key<'a>(
        &'a self,
        user: Uuid,
        key: &'a str,
        candidate: Uuid,
        now_s: i64,
        expired_before_s: i64,
    ) -> BoxFuture<'a, DbResult<Uuid>> {
        self.call(Kind::Write, || {
            self.inner
                .claim_creation_key(user, key, candidate, now_s, expired_before_s)
        })
    }

    fn ping(&self) -> BoxFuture<'_, DbResult<()>> {
        self.call(Kind::Read, || self.inner.ping())
    }

    fn claim_owner<'a>(&'a self, id: Uuid, node: &'a str) -> BoxFuture<'a, DbResult<i64>> {
        self.call(Kind::Write, || self.inner.claim_owner(id, node))
    }
}

#[cfg(test)]
mod tests {
    use crate::accounts::{AccountError, AccountStore};
    use crate::fake::{Fake, Mode};
    use crate::read_model::BookingReadModel;

    use super::*;

    fn sample_user() -> User {
        User {
            id: navaro_protocol::UserId(Uuid::nil()),
            email: "a@b.c".to_owned(),
            name: "a".to_owned(),
            password_hash: "x".to_owned(),
            created_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    /// Run `call` while the database answers another call `after` it starts.
    async fn answered_meanwhile<T>(
        store: &dyn Backend,
        after: Duration,
        call: impl std::future::Future<Output = T>,
    ) -> T {
        let (out, other) = futures::join!(call, async {
            tokio::time::sleep(after).await;
            store.memberships_of(Uuid::nil()).await
        });
        assert!(other.is_ok());
        out
    }

    const PROBE_EVERY: Duration = Duration::from_millis(250);
    const DEADLINE: Duration = Duration::from_secs(5);

    fn guarded(fake: &Arc<Fake>) -> Guarded {
        Guarded::new(fake.clone(), Breaker::new(PROBE_EVERY, DEADLINE))
    }

    /// One call of each shape the stores make.
    async fn every_kind_of_call(store: &Guarded) -> Vec<bool> {
        let id = Uuid::nil();
        vec![
            store.write_group(&Group::default()).await.is_ok(),
            store.last_seqs(&[id]).await.is_ok(),
            store.snapshot(id).await.is_ok(),
            store.events_after(id, 0, 10).await.is_ok(),
            store.bookings_of_customer(id, 10).await.is_ok(),
            store.user_by_email("a@b.c").await.is_ok(),
            store.role_at(id, id).await.is_ok(),
        ]
    }

    /// Let the probe task run up to `ticks` times, on the paused clock.
    async fn probe_periods(ticks: u32) {
        for _ in 0..ticks {
            tokio::time::sleep(PROBE_EVERY).await;
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_database_is_answered_at_once_until_a_probe_reaches_it() {
        let fake = Fake::new();
        let store = guarded(&fake);
        assert_eq!(every_kind_of_call(&store).await, [true; 7]);
        assert_eq!(fake.calls(), 7);

        fake.set(Mode::Down);
        assert!(store.user_by_id(Uuid::nil()).await.is_err());
        assert_eq!(fake.calls(), 8, "the call that found it down reached it");
        // Every later call fails without reaching the database.
        assert_eq!(every_kind_of_call(&store).await, [false; 7]);
        assert_eq!(fake.calls(), 8);

        // The probe asks on its own; while the database stays down the breaker stays
        // open and calls still do not reach it.
        probe_periods(3).await;
        assert!(fake.pings() >= 2, "probed {} times", fake.pings());
        assert_eq!(every_kind_of_call(&store).await, [false; 7]);
        assert_eq!(fake.calls(), 8);

        // Back: the next probe closes the breaker and calls reach the database again.
        fake.set(Mode::Up);
        let pings = fake.pings();
        probe_periods(2).await;
        assert!(fake.pings() > pings);
        assert_eq!(every_kind_of_call(&store).await, [true; 7]);
        assert_eq!(fake.calls(), 15);
        // The probe ended with the outage.
        let pings = fake.pings();
        probe_periods(4).await;
        assert_eq!(fake.pings(), pings);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pool_timeout_while_the_database_answers_is_overload_and_does_not_open_it() {
        let fake = Fake::new();
        let store = guarded(&fake);
        // Each call waits out the pool's timeout while the database answers another.
        fake.set(Mode::TimesOutAfter(Duration::from_secs(1)));
        let soon = Duration::from_millis(100);
        let read = answered_meanwhile(&store, soon, store.user_by_id(Uuid::nil())).await;
        assert!(
            matches!(&read, Err(e) if crate::backend::is_saturated(e)
                && !crate::backend::unreachable(e)),
            "the read is told it is an overload, not an outage: {read:?}"
        );
        let group = Group::default();
        let written = answered_meanwhile(&store, soon, store.write_group(&group)).await;
        assert!(
            matches!(written, Err(WriteError::Saturated(_))),
            "the writer is told it is an overload: {written:?}"
        );
        assert_eq!(fake.calls(), 2, "both calls reached the pool");
        assert_eq!(fake.pings(), 0, "no probe: the breaker stayed closed");
        // The stores answer `overloaded`, not `unavailable`.
        let store: Arc<dyn Backend> = Arc::new(store);
        let accounts = crate::sql_accounts::SqlAccounts {
            backend: store.clone(),
        };
        let role = accounts.role_at(
            navaro_protocol::UserId(Uuid::nil()),
            navaro_protocol::EstablishmentId(Uuid::nil()),
        );
        let role = answered_meanwhile(&*store, soon, role).await;
        assert!(matches!(role, Err(AccountError::Overloaded(_))), "{role:?}");
        let bookings = crate::read_model::SqlBookings {
            backend: store.clone(),
        };
        let mine = bookings.bookings_of_customer(navaro_protocol::UserId(Uuid::nil()), 10);
        let mine = answered_meanwhile(&*store, soon, mine).await;
        assert!(
            matches!(mine, Err(crate::StoreError::Overloaded(_))),
            "{mine:?}"
        );
        // So does the journal's own read, an establishment's activation.
        let journal = crate::journal::SqlJournal {
            backend: store.clone(),
            streams: Default::default(),
            shards: Vec::new(),
            backlogs: Vec::new(),
            cluster: None,
        };
        let loaded = navaro_engine::store::Journal::load(
            &journal,
            navaro_protocol::EstablishmentId(Uuid::nil()),
        );
        let loaded = answered_meanwhile(&*store, soon, loaded).await;
        assert!(
            matches!(
                loaded,
                Err(navaro_engine::store::JournalError::Overloaded(_))
            ),
            "{:?}",
            loaded.err()
        );
        assert_eq!(fake.calls(), 5);
        // With every connection checked out, their calls answer for the database: a
        // timeout waiting behind them is busy too, answers or not (a lock held long).
        fake.saturated.store(true, Ordering::SeqCst);
        let read = store.user_by_id(Uuid::nil()).await;
        assert!(
            matches!(&read, Err(e) if crate::backend::is_saturated(e)),
            "{read:?}"
        );
        fake.saturated.store(false, Ordering::SeqCst);
        // With connections free and nothing answered meanwhile, the same timeout means
        // the database is gone.
        let read = store.user_by_id(Uuid::nil()).await;
        assert!(matches!(&read, Err(e) if !crate::backend::is_saturated(e)));
        assert!(store.user_by_id(Uuid::nil()).await.is_err());
        assert_eq!(
            fake.calls(),
            7,
            "the last call was refused by the open breaker"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_with_no_answer_while_others_were_answered_is_slow_not_gone() {
        let fake = Fake::new();
        let store = guarded(&fake);
        // A call never gets its answer (a starved database, a lock) while the database
        // answers another late in its wait.
        fake.set(Mode::Hangs);
        let late = DEADLINE - Duration::from_secs(1);
        let read = answered_meanwhile(&store, late, store.user_by_id(Uuid::nil())).await;
        assert!(
            matches!(&read, Err(e) if crate::backend::is_saturated(e)),
            "a read told to come back, not that the store is down: {read:?}"
        );
        let group = Group::default();
        let written = answered_meanwhile(&store, late, store.write_group(&group)).await;
        assert!(
            matches!(written, Err(WriteError::Unreachable(_))),
            "a commit with no answer keeps its unknown outcome: {written:?}"
        );
        // So does an account write: it may have committed, so it is not told to retry.
        let user = sample_user();
        let inserted = answered_meanwhile(&store, late, store.insert_user(&user)).await;
        assert!(
            matches!(&inserted, Err(e) if !crate::backend::is_saturated(e)),
            "{inserted:?}"
        );
        assert_eq!(fake.pings(), 0, "no probe: the breaker stayed closed");
        fake.set(Mode::Up);
        assert!(
            store.user_by_id(Uuid::nil()).await.is_ok(),
            "and calls go on"
        );
        assert_eq!(fake.calls(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_partition_opens_it_even_for_a_call_that_saw_answers_before_it() {
        let fake = Fake::new();
        let store = guarded(&fake);
        // A call hangs; the database answers another early in its wait, then the
        // network goes silent. By the call's deadline the answers have stopped for
        // longer than half a deadline: a partition, not a slow database.
        fake.set(Mode::Hangs);
        let early = Duration::from_millis(500);
        let read = answered_meanwhile(&store, early, store.user_by_id(Uuid::nil())).await;
        assert!(
            matches!(&read, Err(e) if !crate::backend::is_saturated(e)),
            "{read:?}"
        );
        assert!(store.user_by_id(Uuid::nil()).await.is_err());
        assert_eq!(
            fake.calls(),
            1,
            "the second call was refused by the open breaker"
        );
        probe_periods(1).await;
        assert!(fake.pings() >= 1, "and the probe runs");
    }

    #[tokio::test(start_paused = true)]
    async fn answers_from_the_database_never_open_it() {
        let fake = Fake::new();
        let store = guarded(&fake);
        fake.set(Mode::Refuses);
        for _ in 0..3 {
            assert!(matches!(
                store.user_by_id(Uuid::nil()).await,
                Err(sqlx::Error::RowNotFound)
            ));
        }
        assert_eq!(fake.calls(), 3, "every call reached the database");
        assert_eq!(fake.pings(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_with_no_answer_fails_at_the_deadline_and_opens_it() {
        let fake = Fake::new();
        let store = guarded(&fake);
        fake.set(Mode::Hangs);
        let hung = store.bookings_of_customer(Uuid::nil(), 10).await;
        assert!(
            matches!(&hung, Err(sqlx::Error::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut),
            "{hung:?}"
        );
        let written = store.write_group(&Group::default()).await;
        assert!(
            matches!(written, Err(WriteError::Unreachable(_))),
            "{written:?}"
        );
        assert_eq!(fake.calls(), 1, "the write was refused without reaching it");
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_with_no_answer_opens_it() {
        let fake = Fake::new();
        let store = guarded(&fake);
        fake.set(Mode::Hangs);
        let written = store.write_group(&Group::default()).await;
        assert!(
            matches!(written, Err(WriteError::Unreachable(_))),
            "{written:?}"
        );
        assert!(store.role_at(Uuid::nil(), Uuid::nil()).await.is_err());
        assert_eq!(fake.calls(), 1);
    }

    #[test]
    fn a_call_that_fails_late_does_not_reopen_a_breaker_closed_since_it_started() {
        let breaker = Breaker::new(PROBE_EVERY, DEADLINE);
        let early = breaker.epoch.load(Ordering::Acquire);
        assert!(breaker.open_from(early), "the first failure opens it");
        assert!(!breaker.open_from(early), "and only once");
        breaker.close();
        assert!(
            !breaker.open_from(early),
            "a call from before the outage cannot reopen it"
        );
        let now = breaker.epoch.load(Ordering::Acquire);
        assert!(breaker.open_from(now), "a call from after it can");
    }
}
