//! What a caller gets back from a command.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::ids::{EstablishmentId, StaffId, UserId};
use crate::model::{Booking, EstablishmentSettings, Hold, Service, Staff, TimeOff};
use crate::payment::{Payment, PaymentPolicy, SavedCard};
use crate::queue::Ticket;

/// The result of an accepted command: the item it created or changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Reply {
    Establishment {
        id: EstablishmentId,
        owner_id: UserId,
        settings: EstablishmentSettings,
    },
    Staff(Staff),
    TimeOff(TimeOff),
    Service(Service),
    Booking(Booking),
    Hold(Hold),
    Payment(Payment),
    PaymentPolicy(PaymentPolicy),
    Card(SavedCard),
    Ticket(Ticket),
    /// Places and estimates (only the clock's `queue.estimates` produces it).
    Estimates(Vec<crate::QueuePosition>),
    /// A plugin's installation after an install (`settings`) or uninstall (`None`).
    Plugin {
        name: String,
        settings: Option<crate::plugin::PluginSettings>,
    },
}

/// A free start near a requested one, offered when the requested slot is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alternative {
    pub start: Timestamp,
    pub staff_id: StaffId,
}

/// A command the establishment refused, with the reason as a code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub code: ErrorCode,
    pub message: String,
    /// The offending request field, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `slot_unavailable`: the nearest free starts, nearest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
}

impl Rejection {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
            field: None,
            alternatives: Vec::new(),
        }
    }

    /// A rejection about one request field.
    pub fn field(code: ErrorCode, field: &str, message: impl Into<String>) -> Self {
        Rejection {
            field: Some(field.to_owned()),
            ..Rejection::new(code, message)
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::field(ErrorCode::InvalidRequest, field, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn with_alternatives(mut self, alternatives: Vec<Alternative>) -> Self {
        self.alternatives = alternatives;
        self
    }
}
