//! What an establishment records when it accepts a command.
//!
//! Events are the journal's payload and the live feed's content. Each is numbered with
//! the establishment's next sequence number (gap-free) in its [`EventRecord`]. Booking
//! and hold events carry the whole item after the change, so that a subscriber (and the
//! read-model projection) never needs earlier state to understand one.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{EstablishmentId, HoldId, StaffId, UserId};
use crate::model::{
    Booking, EstablishmentSettings, Hold, HoldEnd, Service, Staff, TimeOff, WeeklyHours,
};
use crate::payment::{Payment, PaymentPolicy, SavedCard};
use crate::queue::{QueuePosition, Ticket};

/// A change to one establishment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    #[serde(rename = "establishment.created")]
    EstablishmentCreated {
        id: EstablishmentId,
        owner_id: UserId,
        settings: EstablishmentSettings,
    },
    #[serde(rename = "establishment.updated")]
    SettingsUpdated { settings: EstablishmentSettings },
    /// A platform admin suspended the establishment: it takes no new bookings, holds or
    /// walk-ins, and disappears from discovery; existing bookings stay. `reason` is what
    /// the owner is told (the event is on the live feed).
    #[serde(rename = "establishment.suspended")]
    EstablishmentSuspended { reason: String, by: UserId },
    /// A platform admin lifted the suspension.
    #[serde(rename = "establishment.reinstated")]
    EstablishmentReinstated { reason: String, by: UserId },
    #[serde(rename = "staff.added")]
    StaffAdded { staff: Staff },
    #[serde(rename = "staff.hours_set")]
    StaffHoursSet {
        staff_id: StaffId,
        hours: WeeklyHours,
    },
    #[serde(rename = "staff.time_off_added")]
    TimeOffAdded { time_off: TimeOff },
    #[serde(rename = "service.added")]
    ServiceAdded { service: Service },
    #[serde(rename = "booking.confirmed")]
    BookingConfirmed {
        booking: Booking,
        /// Set when the booking confirms a hold, which ends with it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_hold: Option<HoldId>,
    },
    #[serde(rename = "booking.cancelled")]
    BookingCancelled { booking: Booking, by: UserId },
    #[serde(rename = "booking.rescheduled")]
    BookingRescheduled {
        booking: Booking,
        #[serde(serialize_with = "crate::zone::instant")]
        previous_start: Timestamp,
        previous_staff_id: StaffId,
    },
    #[serde(rename = "booking.completed")]
    BookingCompleted { booking: Booking },
    #[serde(rename = "booking.no_show")]
    BookingNoShow { booking: Booking },
    #[serde(rename = "hold.placed")]
    HoldPlaced { hold: Hold },
    #[serde(rename = "hold.ended")]
    HoldEnded { hold: Hold, reason: HoldEnd },
    /// The establishment's policy was set, or (with `service_id`) a service's own.
    #[serde(rename = "payment.policy_set")]
    PaymentPolicySet {
        policy: PaymentPolicy,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service_id: Option<crate::ids::ServiceId>,
    },
    /// A service's own policy was removed: it follows the establishment's.
    #[serde(rename = "payment.policy_cleared")]
    PaymentPolicyCleared { service_id: crate::ids::ServiceId },
    /// A customer saved a card for off-session charges (fees).
    #[serde(rename = "payment.card_saved")]
    PaymentCardSaved { card: SavedCard },
    /// A payment was opened or changed (provider object attached, succeeded, failed,
    /// expired, refunded): the whole payment after the change.
    #[serde(rename = "payment.updated")]
    PaymentUpdated { payment: Payment },
    /// A ticket changed (joined, called, started, finished, no-show, left, moved); `queue`
    /// is every waiting ticket's place and estimate after the change.
    #[serde(rename = "queue.joined")]
    QueueJoined {
        ticket: Ticket,
        queue: Vec<QueuePosition>,
    },
    #[serde(rename = "queue.called")]
    QueueCalled {
        ticket: Ticket,
        queue: Vec<QueuePosition>,
    },
    #[serde(rename = "queue.started")]
    QueueStarted {
        ticket: Ticket,
        queue: Vec<QueuePosition>,
    },
    #[serde(rename = "queue.finished")]
    QueueFinished {
        ticket: Ticket,
        queue: Vec<QueuePosition>,
    },
    #[serde(rename = "queue.no_show")]
    QueueNoShow {
        ticket: Ticket,
        queue: Vec<QueuePosition>,
    },
    #[serde(rename = "queue.left")]
    QueueLeft {
        ticket: Ticket,
        queue: Vec<QueuePosition>,
    },
    #[serde(rename = "queue.moved")]
    QueueMoved {
        ticket: Ticket,
        queue: Vec<QueuePosition>,
    },
    /// No ticket changed, but time did: a service ran over, or a booking took a gap a
    /// walk-in was planned into, and the estimates moved. Recorded by the actor's clock
    /// at most once a minute, only when an estimate differs from the last one published.
    #[serde(rename = "queue.estimates")]
    QueueEstimates { queue: Vec<QueuePosition> },
    /// A plugin was installed (or its settings changed): the whole settings after it.
    #[serde(rename = "plugin.installed")]
    PluginInstalled {
        name: String,
        settings: crate::plugin::PluginSettings,
    },
    #[serde(rename = "plugin.uninstalled")]
    PluginUninstalled { name: String },
}

impl Event {
    /// The wire name (`booking.confirmed`, ...), also the journal's `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::EstablishmentCreated { .. } => "establishment.created",
            Event::SettingsUpdated { .. } => "establishment.updated",
            Event::EstablishmentSuspended { .. } => "establishment.suspended",
            Event::EstablishmentReinstated { .. } => "establishment.reinstated",
            Event::StaffAdded { .. } => "staff.added",
            Event::StaffHoursSet { .. } => "staff.hours_set",
            Event::TimeOffAdded { .. } => "staff.time_off_added",
            Event::ServiceAdded { .. } => "service.added",
            Event::BookingConfirmed { .. } => "booking.confirmed",
            Event::BookingCancelled { .. } => "booking.cancelled",
            Event::BookingRescheduled { .. } => "booking.rescheduled",
            Event::BookingCompleted { .. } => "booking.completed",
            Event::BookingNoShow { .. } => "booking.no_show",
            Event::HoldPlaced { .. } => "hold.placed",
            Event::HoldEnded { .. } => "hold.ended",
            Event::PaymentPolicySet { .. } => "payment.policy_set",
            Event::PaymentPolicyCleared { .. } => "payment.policy_cleared",
            Event::PaymentCardSaved { .. } => "payment.card_saved",
            Event::PaymentUpdated { .. } => "payment.updated",
            Event::QueueJoined { .. } => "queue.joined",
            Event::QueueCalled { .. } => "queue.called",
            Event::QueueStarted { .. } => "queue.started",
            Event::QueueFinished { .. } => "queue.finished",
            Event::QueueNoShow { .. } => "queue.no_show",
            Event::QueueLeft { .. } => "queue.left",
            Event::QueueMoved { .. } => "queue.moved",
            Event::QueueEstimates { .. } => "queue.estimates",
            Event::PluginInstalled { .. } => "plugin.installed",
            Event::PluginUninstalled { .. } => "plugin.uninstalled",
        }
    }

    /// The customer an event concerns, if it concerns one (for per-customer live feeds).
    pub fn customer_id(&self) -> Option<UserId> {
        match self {
            Event::BookingConfirmed { booking, .. }
            | Event::BookingCancelled { booking, .. }
            | Event::BookingRescheduled { booking, .. }
            | Event::BookingCompleted { booking }
            | Event::BookingNoShow { booking } => Some(booking.customer_id),
            Event::HoldPlaced { hold } | Event::HoldEnded { hold, .. } => Some(hold.customer_id),
            Event::PaymentUpdated { payment } => Some(payment.customer_id),
            Event::PaymentCardSaved { card } => Some(card.customer_id),
            _ => self.ticket().and_then(|t| t.customer_id),
        }
    }

    /// The ticket a queue event is about.
    pub fn ticket(&self) -> Option<&Ticket> {
        match self {
            Event::QueueJoined { ticket, .. }
            | Event::QueueCalled { ticket, .. }
            | Event::QueueStarted { ticket, .. }
            | Event::QueueFinished { ticket, .. }
            | Event::QueueNoShow { ticket, .. }
            | Event::QueueLeft { ticket, .. }
            | Event::QueueMoved { ticket, .. } => Some(ticket),
            _ => None,
        }
    }

    /// For a queue event: the list of places, to fill in.
    pub fn queue_positions_mut(&mut self) -> Option<&mut Vec<QueuePosition>> {
        match self {
            Event::QueueJoined { queue, .. }
            | Event::QueueCalled { queue, .. }
            | Event::QueueStarted { queue, .. }
            | Event::QueueFinished { queue, .. }
            | Event::QueueNoShow { queue, .. }
            | Event::QueueLeft { queue, .. }
            | Event::QueueMoved { queue, .. }
            | Event::QueueEstimates { queue } => Some(queue),
            _ => None,
        }
    }

    /// For a queue event: every waiting ticket's place and estimate after it.
    pub fn queue_positions(&self) -> Option<&[QueuePosition]> {
        match self {
            Event::QueueJoined { queue, .. }
            | Event::QueueCalled { queue, .. }
            | Event::QueueStarted { queue, .. }
            | Event::QueueFinished { queue, .. }
            | Event::QueueNoShow { queue, .. }
            | Event::QueueLeft { queue, .. }
            | Event::QueueMoved { queue, .. }
            | Event::QueueEstimates { queue } => Some(queue),
            _ => None,
        }
    }
}

/// The idempotency key a command carried, kept with its last event so that a retry after
/// a restart still gets the first answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub user_id: UserId,
    pub key: String,
    /// [`crate::fingerprint`] of the command, to tell a retry from a different request
    /// that reuses the key.
    pub fingerprint: u64,
}

/// One journaled event: its gap-free sequence number, when it was decided, and the
/// idempotency key of the command that caused it (on that command's last event).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: u64,
    #[serde(serialize_with = "crate::zone::instant")]
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<IdempotencyRecord>,
    pub event: Event,
}
