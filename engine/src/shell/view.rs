//! The immutable read view an establishment actor publishes after every change.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use navaro_protocol::{
    Booking, BookingId, EstablishmentId, EstablishmentSettings, Rejection, Service, Staff, UserId,
};

use crate::domain::time::{LocalDay, Minute, epoch_day, timestamp};
use crate::domain::{Availability, AvailabilityQuery, Establishment, availability};

/// A consistent picture of one establishment at one seq. Cheap to clone (shared
/// structure); never changes once published, so request handlers read it without
/// waiting for the actor.
#[derive(Clone, Debug)]
pub struct View {
    state: Establishment,
}

impl View {
    pub(crate) fn new(state: Establishment) -> Arc<View> {
        Arc::new(View { state })
    }

    pub fn id(&self) -> EstablishmentId {
        self.state.id
    }

    pub fn owner_id(&self) -> navaro_protocol::UserId {
        self.state.owner_id
    }

    pub fn settings(&self) -> &EstablishmentSettings {
        &self.state.settings.raw
    }

    pub fn timezone(&self) -> &TimeZone {
        &self.state.settings.zone.tz
    }

    /// Why the platform suspended the establishment, while it is suspended.
    pub fn suspended(&self) -> Option<&str> {
        self.state.suspended.as_deref()
    }

    /// Tickets waiting in the walk-in queue.
    pub fn waiting_tickets(&self) -> usize {
        self.state.queue.waiting.len()
    }

    /// The seq of the last event applied (possibly not yet durable).
    pub fn seq(&self) -> u64 {
        self.state.seq
    }

    /// A slot for what a reader derives once from the settings, staff and services (the
    /// gateway keeps the establishment's JSON there), shared by every view until one of
    /// them changes.
    pub fn setup_rendered(&self) -> &OnceLock<Box<dyn Any + Send + Sync>> {
        &self.state.setup_rendered
    }

    pub fn staff(&self) -> Vec<Staff> {
        self.state.staff.iter().map(|s| s.info.clone()).collect()
    }

    pub fn services(&self) -> Vec<Service> {
        self.state.services.iter().map(|s| s.info.clone()).collect()
    }

    pub fn availability(
        &self,
        query: &AvailabilityQuery,
        now: Timestamp,
    ) -> Result<Availability, Rejection> {
        availability(&self.state, query, now)
    }

    pub fn booking(&self, id: BookingId) -> Option<Booking> {
        self.state.bookings.get(&id).map(|b| (**b).clone())
    }

    /// Where the history window starts: bookings that ended (buffer included) before
    /// this instant are not in the view but in the bookings read model only (see
    /// `domain::window`). `None` before the first eviction.
    pub fn history_from(&self) -> Option<Timestamp> {
        (self.state.history_from != Minute::MIN).then(|| timestamp(self.state.history_from))
    }

    /// The instants a local date spans: from its first instant to the next date's.
    pub fn day_span(&self, date: Date) -> (Timestamp, Timestamp) {
        let tz = &self.state.settings.zone;
        let day = LocalDay::new(tz, date);
        let next = LocalDay::from_epoch_day(tz, epoch_day(date) + 1);
        (
            timestamp(day.instant(tz, 0)),
            timestamp(next.instant(tz, 0)),
        )
    }

    /// Whether every booking starting on a local date is in this view: the date starts
    /// at or after the history window (else ask the bookings read model).
    pub fn holds_day(&self, date: Date) -> bool {
        let (from, _) = self.day_span(date);
        self.history_from().is_none_or(|history| from >= history)
    }

    /// The bookings starting on a local date (every status), in start order; only one
    /// customer's when `customer` is given. A date before the history window lists only
    /// the bookings still in it ([`View::holds_day`]).
    pub fn bookings_on(&self, date: Date, customer: Option<UserId>) -> Vec<Booking> {
        let tz = &self.state.settings.zone;
        let day = LocalDay::new(tz, date);
        let next = LocalDay::from_epoch_day(tz, epoch_day(date) + 1);
        let (from, to) = (day.instant(tz, 0), next.instant(tz, 0));
        let lowest = BookingId(uuid::Uuid::nil());
        self.state
            .agenda
            .range((from, lowest)..(to, lowest))
            .filter_map(|(_, id)| self.state.bookings.get(id))
            .filter(|b| customer.is_none_or(|c| b.customer_id == c))
            .map(|b| (**b).clone())
            .collect()
    }

    /// The walk-in queue as shown at `now`: waiting tickets in order with their places and
    /// estimates, then the ones being called or served.
    pub fn queue(&self, now: Timestamp) -> Vec<navaro_protocol::Ticket> {
        self.state.queue_view(now.as_second())
    }

    /// A customer's active tickets (no estimates computed).
    pub fn active_tickets_of(&self, customer: UserId) -> Vec<navaro_protocol::TicketId> {
        self.state
            .queue
            .active_tickets()
            .filter(|t| t.customer_id == Some(customer))
            .map(|t| t.id)
            .collect()
    }

    /// One ticket (with its place and estimate while waiting).
    pub fn ticket(
        &self,
        id: navaro_protocol::TicketId,
        now: Timestamp,
    ) -> Option<navaro_protocol::Ticket> {
        self.state.ticket_view(id, now.as_second())
    }

    /// The domain state itself, for tests and benchmarks.
    pub fn state(&self) -> &Establishment {
        &self.state
    }
}
