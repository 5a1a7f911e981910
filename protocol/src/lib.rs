//! Navaro's wire types: everything that crosses a process boundary.
//!
//! This crate owns the vocabulary the rest of the system speaks and nothing else: no I/O,
//! no tokio, no clocks. [`ids`] holds the typed UUID identifiers; [`model`] the value
//! types that commands, events and replies share (settings, weekly hours, staff, services,
//! bookings, holds); [`command`] what a caller asks an establishment to do; [`event`]
//! what an establishment records when it agrees (the journal's payload and the live
//! feed's frames); [`reply`] what a caller gets back, including the typed rejection and
//! its machine-readable [`ErrorCode`]. [`codec`] encodes any of them as JSON or
//! MessagePack (named fields, so both encodings carry the same field names) and decodes
//! untrusted bytes into an error, never a panic. Instants are UTC on the wire unless the
//! encoding runs inside [`zone::in_zone`], which renders them in an establishment's
//! offset for its clients.

pub mod codec;
pub mod command;
pub mod error;
pub mod event;
pub mod ids;
pub mod model;
pub mod payment;
pub mod plugin;
pub mod queue;
pub mod reply;
pub mod zone;

pub use codec::{CodecError, Encoding, decode, encode, fingerprint};
pub use command::{Caller, Command, Role};
pub use error::ErrorCode;
pub use event::{Event, EventRecord, IdempotencyRecord};
pub use ids::{
    BookingId, EstablishmentId, HoldId, PaymentId, ServiceId, StaffId, TicketId, TimeOffId, UserId,
};
pub use model::*;
pub use payment::*;
pub use plugin::{AppliedPromotion, Discount, PluginSettings, PromotionTerms, valid_plugin_name};
pub use queue::{QueuePosition, Ticket, TicketStatus};
pub use reply::{Alternative, Rejection, Reply};
