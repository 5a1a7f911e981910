//! The walk-in queue's wire types.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{ServiceId, StaffId, TicketId, UserId};

/// Where a ticket stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    Waiting,
    Called,
    InService,
    Done,
    NoShow,
    Left,
}

impl TicketStatus {
    /// Waiting, called or in service: the ticket still takes a place or a staff member.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TicketStatus::Waiting | TicketStatus::Called | TicketStatus::InService
        )
    }
}

/// A walk-in ticket. `position` and `eta` are computed when the ticket is shown (they
/// change as the queue moves); the journal stores them as of the event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: TicketId,
    /// Restarts at 1 each local day.
    pub number: u32,
    /// The customer who joined remotely; absent for a walk-in a member added by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub service_id: ServiceId,
    /// The preferred staff member while waiting; the serving one once called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff_id: Option<StaffId>,
    pub status: TicketStatus,
    /// 1-based place among waiting tickets; absent once called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// Estimated start of service, for waiting tickets.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::zone::opt_instant"
    )]
    pub eta: Option<Timestamp>,
    #[serde(serialize_with = "crate::zone::instant")]
    pub joined_at: Timestamp,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::zone::opt_instant"
    )]
    pub called_at: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::zone::opt_instant"
    )]
    pub started_at: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::zone::opt_instant"
    )]
    pub ended_at: Option<Timestamp>,
}

/// A waiting ticket's place and estimate, as pushed on every queue change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePosition {
    pub ticket_id: TicketId,
    pub position: u32,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::zone::opt_instant"
    )]
    pub eta: Option<Timestamp>,
}
