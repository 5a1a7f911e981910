//! The storage seam: what the actor shell needs from a journal, and an in-memory one.
//!
//! The shell is written against [`Journal`], whose `append` is asynchronous and can fail;
//! `navaro-persistence` implements it on Postgres and SQLite. [`MemoryJournal`] is the
//! in-process implementation used by tests and benchmarks; it keeps the same rules
//! (gap-free, fenced appends) so the shell cannot come to rely on a laxer store.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use navaro_protocol::{ErrorCode, EstablishmentId, EventRecord};

/// The records of one or more accepted commands of one establishment, in seq order and
/// contiguous, to be made durable together.
#[derive(Clone, Debug)]
pub struct AppendBatch {
    pub establishment_id: EstablishmentId,
    pub records: Vec<EventRecord>,
}

impl AppendBatch {
    /// The seq of the first record; the journal refuses a batch that does not follow the
    /// last durable seq of its establishment.
    pub fn first_seq(&self) -> u64 {
        self.records.first().map_or(0, |r| r.seq)
    }

    pub fn last_seq(&self) -> u64 {
        self.records.last().map_or(0, |r| r.seq)
    }
}

/// A snapshot of one establishment's state: everything up to and including `seq`,
/// encoded by the engine (opaque to the store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub seq: u64,
    pub state: Vec<u8>,
}

/// What the store holds for one establishment: the latest snapshot and the events after it.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    pub snapshot: Option<Snapshot>,
    pub events: Vec<EventRecord>,
}

/// Why a journal operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// Another writer got to these sequence numbers first (or a gap would open): this
    /// actor's state is stale; it must stop and reload.
    #[error("establishment {establishment_id}: append at seq {seq} fenced by another writer")]
    Fenced {
        establishment_id: EstablishmentId,
        seq: u64,
    },
    /// The store could not be reached or did not commit; nothing in the batch is durable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store is up but every connection stayed busy for the whole acquire timeout
    /// (an overload, not an outage); nothing in the batch is durable, and a retry after
    /// a moment is expected to succeed.
    #[error("store overloaded: {0}")]
    Overloaded(String),
    /// A stored payload does not decode.
    #[error("establishment {establishment_id}: stored record at seq {seq} is corrupt: {reason}")]
    Corrupt {
        establishment_id: EstablishmentId,
        seq: u64,
        reason: String,
    },
}

impl JournalError {
    /// What a caller whose request needed the store is told: `overloaded` when the store
    /// is up but had no connection free (retry in a moment), `unavailable` otherwise.
    pub fn refusal_code(&self) -> ErrorCode {
        match self {
            JournalError::Overloaded(_) => ErrorCode::Overloaded,
            _ => ErrorCode::Unavailable,
        }
    }
}

/// An append-only, per-establishment event journal with snapshots.
///
/// Contract: `append` resolves `Ok` only once every record of the batch is durable, and
/// then for every batch of that establishment handed to it before. Batches of one
/// establishment are made durable in the order they were handed over; one whose first seq
/// is not the establishment's last durable seq + 1 fails with [`JournalError::Fenced`],
/// as does every later batch of it until it is reloaded.
pub trait Journal: Send + Sync + 'static {
    /// Make a batch durable. The future is `'static` so the caller can await it on
    /// another task while it goes on with other work.
    fn append(&self, batch: AppendBatch) -> BoxFuture<'static, Result<(), JournalError>>;

    /// The latest snapshot and the events after it; `None` if the establishment has no
    /// records at all.
    fn load(
        &self,
        establishment_id: EstablishmentId,
    ) -> BoxFuture<'_, Result<Option<Recovered>, JournalError>>;

    /// Store a snapshot (replacing older ones, which recovery no longer needs).
    fn save_snapshot(
        &self,
        establishment_id: EstablishmentId,
        snapshot: Snapshot,
    ) -> BoxFuture<'_, Result<(), JournalError>>;

    /// The events of an establishment after `since`, at most `limit` (for live resume).
    fn read_after(
        &self,
        establishment_id: EstablishmentId,
        since: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, JournalError>>;

    /// How long the oldest batch handed to [`Journal::append`] and not yet answered has
    /// waited (zero when none waits). The engine refuses new commands while it passes
    /// [`crate::EngineConfig::max_journal_lag`]. Read on every command: it must be cheap.
    fn lag(&self) -> Duration {
        Duration::ZERO
    }
}

#[derive(Default)]
struct Stream {
    events: Vec<EventRecord>,
    snapshot: Option<Snapshot>,
}

/// A journal in process memory: durable for as long as the process lives. For tests,
/// benchmarks and the engine alone; production uses `navaro-persistence`.
#[derive(Clone, Default)]
pub struct MemoryJournal {
    streams: Arc<Mutex<HashMap<EstablishmentId, Stream>>>,
    failing: Arc<std::sync::atomic::AtomicBool>,
    /// What [`Journal::lag`] reports, in microseconds (tests set it).
    lag_us: Arc<std::sync::atomic::AtomicU64>,
}

impl MemoryJournal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make every following append fail with `Unavailable` (or stop doing so), to test
    /// how the shell behaves when the store goes away.
    pub fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    /// Report this as the journal's lag (appends still answer at once), to test how the
    /// shell behaves when the store falls behind.
    pub fn set_lag(&self, lag: Duration) {
        let us = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        self.lag_us.store(us, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every durable record of an establishment (tests inspect this).
    pub fn records(&self, establishment_id: EstablishmentId) -> Vec<EventRecord> {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams
            .get(&establishment_id)
            .map(|s| s.events.clone())
            .unwrap_or_default()
    }

    fn append_now(&self, batch: AppendBatch) -> Result<(), JournalError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(JournalError::Unavailable(
                "memory journal set to fail".into(),
            ));
        }
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let stream = streams.entry(batch.establishment_id).or_default();
        let last = stream.events.last().map_or(0, |r| r.seq);
        let contiguous = batch
            .records
            .iter()
            .enumerate()
            .all(|(i, r)| r.seq == last + 1 + i as u64);
        if !contiguous {
            return Err(JournalError::Fenced {
                establishment_id: batch.establishment_id,
                seq: batch.first_seq(),
            });
        }
        stream.events.extend(batch.records);
        Ok(())
    }
}

impl Journal for MemoryJournal {
    fn append(&self, batch: AppendBatch) -> BoxFuture<'static, Result<(), JournalError>> {
        let result = self.append_now(batch);
        Box::pin(async move { result })
    }

    fn load(
        &self,
        establishment_id: EstablishmentId,
    ) -> BoxFuture<'_, Result<Option<Recovered>, JournalError>> {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let recovered = streams.get(&establishment_id).map(|s| {
            let after = s.snapshot.as_ref().map_or(0, |snap| snap.seq);
            Recovered {
                snapshot: s.snapshot.clone(),
                events: s.events.iter().filter(|r| r.seq > after).cloned().collect(),
            }
        });
        Box::pin(async move { Ok(recovered) })
    }

    fn save_snapshot(
        &self,
        establishment_id: EstablishmentId,
        snapshot: Snapshot,
    ) -> BoxFuture<'_, Result<(), JournalError>> {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let stream = streams.entry(establishment_id).or_default();
        if stream
            .snapshot
            .as_ref()
            .is_none_or(|s| s.seq < snapshot.seq)
        {
            stream.snapshot = Some(snapshot);
        }
        Box::pin(async move { Ok(()) })
    }

    fn read_after(
        &self,
        establishment_id: EstablishmentId,
        since: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, JournalError>> {
        let records = self
            .records(establishment_id)
            .into_iter()
            .filter(|r| r.seq > since)
            .take(limit)
            .collect();
        Box::pin(async move { Ok(records) })
    }

    fn lag(&self) -> Duration {
        Duration::from_micros(self.lag_us.load(std::sync::atomic::Ordering::SeqCst))
    }
}
