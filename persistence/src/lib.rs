//! Navaro's durable stores: the journal, snapshots, the bookings read model and accounts,
//! on Postgres (production) or SQLite (the embedded default), behind traits.
//!
//! [`open`] takes a database URL, applies the migrations ([`migrate`] does only that) and
//! returns [`Stores`]: the [`Journal`] the establishment actors append to, the
//! [`AccountStore`] the gateway authenticates against, and the [`BookingReadModel`] for
//! queries that span establishments. [`Stores::memory`] gives the same three in process
//! memory for tests.
//!
//! How the modules fit: `journal` implements [`Journal`] by encoding each batch on the
//! caller's task (`rows`: MessagePack payloads and read-model rows) and handing it to the
//! `writer`, a single group-commit task that gathers the batches of every actor, applies
//! the gap and fencing rules, and writes each group with one statement and one commit
//! through a `backend` (`pg` or `sqlite`). The read model (`bookings` table) is written
//! in that same transaction, and so is the establishments read model (`listing`: what
//! discovery searches; its changes ride in the group as `ListingChange`s). `sql_accounts`
//! and `read_model` are two more stores over the same backend; [`Directory`]
//! (`directory`, `directory_sql`) is the platform-wide one: discovery's search, the
//! admin's users, disabled accounts, counters and audit log, on the database's pool.
//! `sessions` keeps sign-in sessions (refresh-token families). `backfill` gives
//! establishments older than the listings theirs. `open` connects,
//! migrates and wires it all up.

pub mod accounts;
mod backend;
mod backfill;
mod breaker;
pub mod directory;
mod directory_sql;
#[cfg(test)]
mod fake;
pub mod fence;
mod journal;
pub mod listing;
mod open;
mod pg;
mod read_model;
mod rows;
pub mod sessions;
mod sql_accounts;
mod sqlite;
mod writer;

use std::sync::Arc;
use std::time::Duration;

pub use accounts::{
    AccountError, AccountStore, CREATION_KEY_TTL_SECONDS, MemberRole, Membership, MemoryAccounts,
    User,
};
pub use directory::{AuditEntry, Directory, StoreCounters, UserSummary};
pub use directory_sql::postgres_search_sql;
pub use fence::{ClusterFence, OwnershipGate};
pub use listing::{Cursor, ListingHit, ListingRecord, Near, SearchQuery, fold, haversine_m};
pub use navaro_engine::store::{Journal, JournalError};
pub use open::{migrate, open, open_clustered};
pub use read_model::BookingReadModel;
pub use sessions::{MemorySessions, Session, SessionStore};

/// The stores a server runs on.
#[derive(Clone)]
pub struct Stores {
    pub journal: Arc<dyn Journal>,
    pub accounts: Arc<dyn AccountStore>,
    pub bookings: Arc<dyn BookingReadModel>,
    /// Discovery's search and the platform admin's store.
    pub directory: Arc<dyn Directory>,
    /// Sign-in sessions (refresh-token families), see [`sessions`].
    pub sessions: Arc<dyn SessionStore>,
}

/// How long a readiness probe may take before the store counts as not ready.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

impl Stores {
    /// All three stores in process memory, consistent with each other: the read model
    /// sees what the journal made durable.
    pub fn memory() -> Stores {
        let bookings = read_model::MemoryBookings::default();
        let directory = directory::MemoryDirectory::default();
        let accounts = MemoryAccounts::new();
        Stores {
            journal: Arc::new(read_model::ProjectingJournal {
                inner: navaro_engine::store::MemoryJournal::new(),
                bookings: bookings.clone(),
                directory: directory.clone(),
            }),
            accounts: Arc::new(accounts.clone()),
            bookings: Arc::new(bookings),
            directory: Arc::new(directory),
            sessions: Arc::new(MemorySessions::new(accounts)),
        }
    }

    /// Whether the stores answer: one cheap read through the journal and one through the
    /// accounts, within [`READY_TIMEOUT`]. For the gateway's readiness probe.
    pub async fn ready(&self) -> bool {
        let nobody = navaro_protocol::EstablishmentId(uuid::Uuid::nil());
        let probe = async {
            self.journal.read_after(nobody, 0, 1).await.is_ok()
                && self
                    .accounts
                    .user_by_id(navaro_protocol::UserId(uuid::Uuid::nil()))
                    .await
                    .is_ok()
        };
        tokio::time::timeout(READY_TIMEOUT, probe)
            .await
            .unwrap_or(false)
    }
}

/// Why opening or querying a store failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one we can use (never echoes the URL: it may hold a password).
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    /// The store's settings cannot work together (named in the message).
    #[error("invalid store settings: {0}")]
    Settings(String),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("database migration failed: {0}")]
    Migrate(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Every connection stayed busy for the whole acquire timeout: the database is up
    /// but overloaded, and a retry after a moment is expected to succeed.
    #[error("store overloaded: {0}")]
    Overloaded(String),
    /// A stored row does not decode.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// Group-commit writers on Postgres when [`StoreOptions::writer_shards`] is 0. Two
/// overlap one group's commit with the next group's writing. On the 2-core reference box
/// they carried a median 20.6k durable bookings/s through the actor path at 400 callers
/// (16 runs, 16.5k-25.4k) against 14.7k-19.6k for one (9 runs) (`cargo bench -p navaro-benches
/// --bench durable`, `DURABLE_WRITER_SHARDS`); three or four did no better than two
/// within the runs' spread.
pub const POSTGRES_WRITERS: usize = 2;

/// Tuning of the SQL stores. The defaults suit one node on a small machine.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Connections in the pool. On Postgres each writer keeps one between its groups
    /// (so `open` refuses a pool no bigger than the writers); the rest serve loads,
    /// read-model queries and accounts. Postgres allows 100 connections by default and
    /// other nodes share it.
    pub max_connections: u32,
    /// How long to wait for a pooled connection before failing. Short, so that when the
    /// database is gone appends fail fast with `Unavailable` instead of piling up.
    pub acquire_timeout: Duration,
    /// Most events in one group commit. Bounds the transaction's size, the memory the
    /// writer holds, and the latency the last caller of a group pays; beyond a few
    /// hundred rows a bigger group no longer buys measurably more throughput.
    pub group_max_events: usize,
    /// How long a writer lingers for more appends after the first one of a group, when
    /// appends have been reaching it faster than one per this window and its last group
    /// was small (otherwise a group goes at once, so a lone write never waits). Each
    /// group pays one commit (on Postgres about 0.24 ms of the database's CPU whatever
    /// its size), so under load fewer, bigger groups leave more CPU to everything else;
    /// zero turns lingering off. Default 2 ms: at 8,000 mix req/s on the 2-core box it
    /// made groups of 2.8-3.3 events instead of 1.1 and cut Postgres's CPU per request
    /// from 43-45 to 24-32 µs (persistence/README.md has the runs).
    pub group_max_wait: Duration,
    /// Most batches waiting for the writer. Beyond it `append` fails at once with
    /// `Unavailable` rather than buffering without bound; the gateway's per-establishment
    /// in-flight cap keeps normal load far below it.
    pub writer_queue_batches: usize,
    /// Group-commit writers; 0 (the default) picks [`POSTGRES_WRITERS`] on Postgres and
    /// one on SQLite. One writer gathers every actor's appends, which gives the biggest
    /// groups. With more, establishments are split among them by id (each establishment
    /// always to the same one, so its batches stay in order) and that many groups
    /// commit at once: while one group waits for its fsync the next one's rows are
    /// being written, and Postgres flushes both with one WAL write when they meet.
    /// SQLite has a single write lock, so more writers there only queue on it.
    pub writer_shards: usize,
    /// Longest one store call (a group's write and commit, an activation's load, a
    /// query) may take before it fails with `Unavailable`: the database hangs rather
    /// than refuses. Such a failure, like a pool that cannot connect within
    /// `acquire_timeout`, counts as "the database is unreachable": every store call then
    /// fails at once until a probe reaches the database again. Default 2 s, the same as
    /// `acquire_timeout`: it is also how long a partition goes unnoticed on a connection
    /// already in hand (busy connections are not pinged before use), while a group commit
    /// takes 1-3 ms under load.
    pub call_timeout: Duration,
    /// While the database is unreachable, how often one probe (`SELECT 1`) asks whether
    /// it is back. The first probe that succeeds lets calls through again.
    pub probe_every: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(2),
            group_max_events: 1024,
            group_max_wait: Duration::from_millis(2),
            writer_queue_batches: 16_384,
            writer_shards: 0,
            call_timeout: Duration::from_secs(2),
            probe_every: Duration::from_millis(250),
        }
    }
}
