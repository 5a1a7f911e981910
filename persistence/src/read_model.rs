//! The bookings read model: a customer's bookings and an establishment's day, across
//! actors, without asking them. Projected from the journal in the append's transaction
//! (SQL) or on each durable append (memory).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use jiff::Timestamp;
use navaro_engine::store::{
    AppendBatch, Journal, JournalError, MemoryJournal, Recovered, Snapshot,
};
use navaro_protocol::{Booking, BookingId, EstablishmentId, Event, EventRecord, UserId};

use crate::StoreError;
use crate::backend::Backend;
use crate::rows::decode_bookings;

/// Read queries over every establishment's bookings. Holds are stored alongside (they
/// block slots) but are not bookings and are not returned here.
pub trait BookingReadModel: Send + Sync + 'static {
    /// A customer's bookings, latest start first, at most `limit`.
    fn bookings_of_customer(
        &self,
        customer: UserId,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Booking>, StoreError>>;
    /// An establishment's bookings (any status) starting in `[from, to)`, by start.
    fn bookings_of_establishment(
        &self,
        establishment: EstablishmentId,
        from: Timestamp,
        to: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<Booking>, StoreError>>;
    /// One of an establishment's bookings, whether or not it is still in the
    /// establishment's history window.
    fn booking(
        &self,
        establishment: EstablishmentId,
        booking: BookingId,
    ) -> BoxFuture<'_, Result<Option<Booking>, StoreError>>;
}

pub(crate) struct SqlBookings {
    pub backend: Arc<dyn Backend>,
}

fn read_error(e: sqlx::Error) -> StoreError {
    crate::backend::overloaded_or(&e, StoreError::Overloaded, StoreError::Unavailable)
}

impl BookingReadModel for SqlBookings {
    fn bookings_of_customer(
        &self,
        customer: UserId,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Booking>, StoreError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        async move {
            let rows = self
                .backend
                .bookings_of_customer(customer.0, limit)
                .await
                .map_err(read_error)?;
            decode_bookings(rows).map_err(StoreError::Corrupt)
        }
        .boxed()
    }

    fn bookings_of_establishment(
        &self,
        establishment: EstablishmentId,
        from: Timestamp,
        to: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<Booking>, StoreError>> {
        async move {
            let rows = self
                .backend
                .bookings_of_establishment(
                    establishment.0,
                    from.as_microsecond(),
                    to.as_microsecond(),
                )
                .await
                .map_err(read_error)?;
            decode_bookings(rows).map_err(StoreError::Corrupt)
        }
        .boxed()
    }

    fn booking(
        &self,
        establishment: EstablishmentId,
        booking: BookingId,
    ) -> BoxFuture<'_, Result<Option<Booking>, StoreError>> {
        async move {
            let rows = self
                .backend
                .booking_of_establishment(establishment.0, booking.0)
                .await
                .map_err(read_error)?;
            let found = decode_bookings(rows).map_err(StoreError::Corrupt)?;
            Ok(found.into_iter().next())
        }
        .boxed()
    }
}

/// Bookings in process memory, fed by [`ProjectingJournal`].
#[derive(Clone, Default)]
pub(crate) struct MemoryBookings {
    bookings: Arc<Mutex<HashMap<BookingId, Booking>>>,
}

impl MemoryBookings {
    fn apply(&self, records: &[EventRecord]) {
        let mut map = self.bookings.lock().unwrap_or_else(|e| e.into_inner());
        for record in records {
            let booking = match &record.event {
                Event::BookingConfirmed { booking, .. }
                | Event::BookingCancelled { booking, .. }
                | Event::BookingRescheduled { booking, .. }
                | Event::BookingCompleted { booking }
                | Event::BookingNoShow { booking } => booking,
                _ => continue,
            };
            map.insert(booking.id, booking.clone());
        }
    }

    fn select(&self, keep: impl Fn(&Booking) -> bool) -> Vec<Booking> {
        let map = self.bookings.lock().unwrap_or_else(|e| e.into_inner());
        map.values().filter(|b| keep(b)).cloned().collect()
    }
}

impl BookingReadModel for MemoryBookings {
    fn bookings_of_customer(
        &self,
        customer: UserId,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Booking>, StoreError>> {
        let mut list = self.select(|b| b.customer_id == customer);
        list.sort_by_key(|b| std::cmp::Reverse(b.start));
        list.truncate(limit);
        futures::future::ready(Ok(list)).boxed()
    }

    fn bookings_of_establishment(
        &self,
        establishment: EstablishmentId,
        from: Timestamp,
        to: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<Booking>, StoreError>> {
        let mut list =
            self.select(|b| b.establishment_id == establishment && b.start >= from && b.start < to);
        list.sort_by_key(|b| (b.start, b.id));
        futures::future::ready(Ok(list)).boxed()
    }

    fn booking(
        &self,
        establishment: EstablishmentId,
        booking: BookingId,
    ) -> BoxFuture<'_, Result<Option<Booking>, StoreError>> {
        let map = self.bookings.lock().unwrap_or_else(|e| e.into_inner());
        let found = map
            .get(&booking)
            .filter(|b| b.establishment_id == establishment)
            .cloned();
        futures::future::ready(Ok(found)).boxed()
    }
}

/// A [`MemoryJournal`] that feeds [`MemoryBookings`] with what it made durable.
pub(crate) struct ProjectingJournal {
    pub inner: MemoryJournal,
    pub bookings: MemoryBookings,
    pub directory: crate::directory::MemoryDirectory,
}

impl Journal for ProjectingJournal {
    fn append(&self, batch: AppendBatch) -> BoxFuture<'static, Result<(), JournalError>> {
        let records = batch.records.clone();
        let batch_establishment = batch.establishment_id.0;
        let done = self.inner.append(batch);
        let bookings = self.bookings.clone();
        let directory = self.directory.clone();
        let establishment = batch_establishment;
        async move {
            done.await?;
            bookings.apply(&records);
            for record in &records {
                if let Some(change) = crate::listing::listing_change(establishment, record) {
                    directory.apply(&change);
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn load(&self, id: EstablishmentId) -> BoxFuture<'_, Result<Option<Recovered>, JournalError>> {
        self.inner.load(id)
    }

    fn save_snapshot(
        &self,
        id: EstablishmentId,
        snapshot: Snapshot,
    ) -> BoxFuture<'_, Result<(), JournalError>> {
        self.inner.save_snapshot(id, snapshot)
    }

    fn read_after(
        &self,
        id: EstablishmentId,
        since: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, JournalError>> {
        self.inner.read_after(id, since, limit)
    }
}
