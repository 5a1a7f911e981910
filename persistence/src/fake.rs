//! A fake database for the persistence layer's unit tests: it counts the calls that reach
//! it and answers each as its [`Mode`] says, so the breaker and the writer can be tested
//! against outages and overloads that a real database cannot be made to show on cue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::accounts::{Membership, User};
use crate::backend::{
    Backend, DbResult, EventBlob, Group, ItemBlob, Losers, SnapshotRow, UserRow, WriteError,
};

/// What the fake database does with a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Up,
    /// No connection: the pool times out.
    Down,
    /// An answer from the database that is an error (a missing row).
    Refuses,
    /// Never answers.
    Hangs,
    /// No connection within this acquire timeout.
    TimesOutAfter(Duration),
}

/// Counts the calls and the probes that reach it.
pub(crate) struct Fake {
    mode: Mutex<Mode>,
    calls: AtomicUsize,
    pings: AtomicUsize,
    /// What `saturated` says: every connection checked out.
    pub(crate) saturated: AtomicBool,
    /// What the next group writes fail with, one each, before the mode answers.
    write_failures: Mutex<VecDeque<(WriteError, Duration)>>,
}

impl Fake {
    pub(crate) fn new() -> Arc<Fake> {
        Arc::new(Fake {
            mode: Mutex::new(Mode::Up),
            calls: AtomicUsize::new(0),
            pings: AtomicUsize::new(0),
            saturated: AtomicBool::new(false),
            write_failures: Mutex::new(VecDeque::new()),
        })
    }

    pub(crate) fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// The next group write fails with `failure` (counted as a call when it runs),
    /// whatever the mode.
    pub(crate) fn fail_next_write(&self, failure: WriteError) {
        self.fail_next_write_after(failure, Duration::ZERO);
    }

    /// As [`Fake::fail_next_write`], the failure coming `after` the call.
    pub(crate) fn fail_next_write_after(&self, failure: WriteError, after: Duration) {
        self.write_failures
            .lock()
            .unwrap()
            .push_back((failure, after));
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn pings(&self) -> usize {
        self.pings.load(Ordering::SeqCst)
    }

    /// A call, counted when it runs (not when its future is made).
    fn answer<T: Default + Send + 'static>(&self) -> BoxFuture<'_, DbResult<T>> {
        async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.respond().await
        }
        .boxed()
    }

    fn respond<T: Default + Send + 'static>(&self) -> BoxFuture<'static, DbResult<T>> {
        match *self.mode.lock().unwrap() {
            Mode::Up => futures::future::ready(Ok(T::default())).boxed(),
            Mode::Down => futures::future::ready(Err(sqlx::Error::PoolTimedOut)).boxed(),
            Mode::Refuses => futures::future::ready(Err(sqlx::Error::RowNotFound)).boxed(),
            Mode::Hangs => futures::future::pending().boxed(),
            Mode::TimesOutAfter(wait) => tokio::time::sleep(wait)
                .map(|()| Err(sqlx::Error::PoolTimedOut))
                .boxed(),
        }
    }
}

impl Backend for Fake {
    fn write_group<'a>(&'a self, _: &'a Group) -> BoxFuture<'a, Result<Losers, WriteError>> {
        async move {
            let failure = self.write_failures.lock().unwrap().pop_front();
            if let Some((failure, after)) = failure {
                self.calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(after).await;
                return Err(failure);
            }
            self.answer::<()>()
                .await
                .map(|()| Losers::default())
                .map_err(WriteError::from)
        }
        .boxed()
    }
    fn last_seqs<'a>(&'a self, _: &'a [Uuid]) -> BoxFuture<'a, DbResult<HashMap<Uuid, i64>>> {
        self.answer()
    }
    fn snapshot(&self, _: Uuid) -> BoxFuture<'_, DbResult<Option<SnapshotRow>>> {
        self.answer()
    }
    fn events_after(&self, _: Uuid, _: i64, _: i64) -> BoxFuture<'_, DbResult<Vec<EventBlob>>> {
        self.answer()
    }
    fn save_snapshot(&self, _: Uuid, _: i64, _: Vec<u8>) -> BoxFuture<'_, DbResult<()>> {
        self.answer()
    }
    fn bookings_of_customer(&self, _: Uuid, _: i64) -> BoxFuture<'_, DbResult<Vec<ItemBlob>>> {
        self.answer()
    }
    fn bookings_of_establishment(
        &self,
        _: Uuid,
        _: i64,
        _: i64,
    ) -> BoxFuture<'_, DbResult<Vec<ItemBlob>>> {
        self.answer()
    }
    fn booking_of_establishment(&self, _: Uuid, _: Uuid) -> BoxFuture<'_, DbResult<Vec<ItemBlob>>> {
        self.answer()
    }
    fn insert_user<'a>(&'a self, _: &'a User) -> BoxFuture<'a, DbResult<()>> {
        self.answer()
    }
    fn user_by_email<'a>(&'a self, _: &'a str) -> BoxFuture<'a, DbResult<Option<UserRow>>> {
        self.answer()
    }
    fn user_by_id(&self, _: Uuid) -> BoxFuture<'_, DbResult<Option<UserRow>>> {
        self.answer()
    }
    fn upsert_membership(&self, _: Membership) -> BoxFuture<'_, DbResult<bool>> {
        self.answer()
    }
    /// Always answered at once, whatever the mode, and not counted: the calls
    /// the database answers for others while a test's call waits.
    fn memberships_of(&self, _: Uuid) -> BoxFuture<'_, DbResult<Vec<(Uuid, String)>>> {
        futures::future::ready(Ok(Vec::new())).boxed()
    }
    fn role_at(&self, _: Uuid, _: Uuid) -> BoxFuture<'_, DbResult<Option<String>>> {
        self.answer()
    }
    fn claim_creation_key<'a>(
        &'a self,
        _: Uuid,
        _: &'a str,
        _: Uuid,
        _: i64,
        _: i64,
    ) -> BoxFuture<'a, DbResult<Uuid>> {
        self.answer()
    }
    fn ping(&self) -> BoxFuture<'_, DbResult<()>> {
        async move {
            self.pings.fetch_add(1, Ordering::SeqCst);
            self.respond().await
        }
        .boxed()
    }
    fn saturated(&self) -> bool {
        self.saturated.load(Ordering::SeqCst)
    }
}
