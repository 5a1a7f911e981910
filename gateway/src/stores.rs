//! The stores the gateway runs on.
//!
//! TEMPORARY adapter: `navaro_persistence::{Stores, open, migrate}` are being built on
//! another branch. Until they land, [`Stores::memory`] wires the in-memory journal and
//! accounts, plus a bookings read model projected from the journal's appends (the same
//! rule the real stores follow: projected with the append). [`open`] accepts the
//! configured URL and, for now, returns memory stores with a warning. Swapping to the
//! real crate is replacing this file with `pub use navaro_persistence::{...}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use navaro_engine::store::{
    AppendBatch, Journal, JournalError, MemoryJournal, Recovered, Snapshot,
};
use navaro_persistence::accounts::{AccountStore, MemoryAccounts};
use navaro_protocol::{Booking, BookingId, EstablishmentId, Event, EventRecord, UserId};

/// Why the stores could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database url (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// Options for opening the stores.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {}

/// A customer's bookings across establishments (`GET /v1/me/bookings`).
pub trait BookingReadModel: Send + Sync + 'static {
    /// Most recent first, at most `limit`.
    fn bookings_of_customer(
        &self,
        customer: UserId,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Booking>, StoreError>>;
}

/// The stores the gateway and the engine run on.
#[derive(Clone)]
pub struct Stores {
    pub journal: Arc<dyn Journal>,
    pub accounts: Arc<dyn AccountStore>,
    pub bookings: Arc<dyn BookingReadModel>,
}

impl Stores {
    /// Everything in process memory.
    pub fn memory() -> Stores {
        let projection = Arc::new(MemoryBookings::default());
        Stores {
            journal: Arc::new(ProjectingJournal {
                inner: MemoryJournal::new(),
                projection: projection.clone(),
            }),
            accounts: Arc::new(MemoryAccounts::new()),
            bookings: projection,
        }
    }

    /// Whether the store answers (for `/readyz`).
    pub async fn ready(&self) -> bool {
        true
    }
}

/// Open the stores at `database_url`.
pub async fn open(database_url: &str, _options: StoreOptions) -> Result<Stores, StoreError> {
    if !(database_url.starts_with("sqlite:")
        || database_url.starts_with("postgres://")
        || database_url.starts_with("postgresql://"))
    {
        return Err(StoreError::UnsupportedUrl);
    }
    tracing::warn!("durable stores not built yet: running on memory stores, nothing persists");
    Ok(Stores::memory())
}

/// Apply migrations at `database_url` (nothing to do until persistence lands).
pub async fn migrate(database_url: &str) -> Result<(), StoreError> {
    open(database_url, StoreOptions::default()).await.map(drop)
}

#[derive(Default)]
struct MemoryBookings {
    by_customer: Mutex<HashMap<UserId, HashMap<BookingId, Booking>>>,
}

impl MemoryBookings {
    fn project(&self, record: &EventRecord) {
        let booking = match &record.event {
            Event::BookingConfirmed { booking, .. }
            | Event::BookingCancelled { booking, .. }
            | Event::BookingRescheduled { booking, .. }
            | Event::BookingCompleted { booking }
            | Event::BookingNoShow { booking } => booking,
            _ => return,
        };
        let mut map = self.by_customer.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(booking.customer_id)
            .or_default()
            .insert(booking.id, booking.clone());
    }
}

impl BookingReadModel for MemoryBookings {
    fn bookings_of_customer(
        &self,
        customer: UserId,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Booking>, StoreError>> {
        let mut list: Vec<Booking> = self
            .by_customer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&customer)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        list.sort_by_key(|b| std::cmp::Reverse(b.start));
        list.truncate(limit);
        Box::pin(async move { Ok(list) })
    }
}

/// A memory journal that projects booking events into [`MemoryBookings`] once durable.
struct ProjectingJournal {
    inner: MemoryJournal,
    projection: Arc<MemoryBookings>,
}

impl Journal for ProjectingJournal {
    fn append(&self, batch: AppendBatch) -> BoxFuture<'static, Result<(), JournalError>> {
        let projection = self.projection.clone();
        let records = batch.records.clone();
        self.inner
            .append(batch)
            .map(move |result| {
                if result.is_ok() {
                    records.iter().for_each(|r| projection.project(r));
                }
                result
            })
            .boxed()
    }

    fn load(
        &self,
        establishment_id: EstablishmentId,
    ) -> BoxFuture<'_, Result<Option<Recovered>, JournalError>> {
        self.inner.load(establishment_id)
    }

    fn save_snapshot(
        &self,
        establishment_id: EstablishmentId,
        snapshot: Snapshot,
    ) -> BoxFuture<'_, Result<(), JournalError>> {
        self.inner.save_snapshot(establishment_id, snapshot)
    }

    fn read_after(
        &self,
        establishment_id: EstablishmentId,
        since: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, JournalError>> {
        self.inner.read_after(establishment_id, since, limit)
    }
}
