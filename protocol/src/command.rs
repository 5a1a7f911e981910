//! What a caller asks an establishment to do.
//!
//! A command names no new id: the actor shell mints ids for what a command creates, so a
//! retried request (same idempotency key, same command) is recognised as the same
//! request and answered with the first answer.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{BookingId, HoldId, PaymentId, ServiceId, StaffId, TicketId, UserId};
use crate::model::{EstablishmentSettings, SettingsPatch, WeeklyHours};
use crate::payment::{FeeKind, PaymentOutcome, PaymentPolicy};

/// Who is asking, as the gateway authenticated them, and in what capacity for the
/// establishment the command is addressed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub user_id: UserId,
    pub role: Role,
}

/// A caller's capacity at one establishment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Anyone with an account: books for themselves, acts on their own bookings.
    Customer,
    /// A member who works here: manages the agenda, not the establishment's setup.
    Staff,
    /// A member who runs the establishment.
    Owner,
    /// The platform team.
    Admin,
}

impl Role {
    /// Members and admins act on the whole agenda; customers on their own items only.
    pub fn is_member(self) -> bool {
        matches!(self, Role::Staff | Role::Owner | Role::Admin)
    }

    /// Owners and admins change the establishment's setup (settings, staff, services).
    pub fn can_manage(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// A request to one establishment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Create the establishment; the caller becomes its owner.
    CreateEstablishment {
        settings: EstablishmentSettings,
    },
    UpdateSettings {
        patch: SettingsPatch,
    },
    /// Platform admins only: stop taking bookings, holds and walk-ins, with a reason the
    /// owner is told. Existing bookings stay.
    Suspend {
        reason: String,
    },
    /// Platform admins only: lift a suspension.
    Reinstate {
        reason: String,
    },
    AddStaff {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<UserId>,
        hours: WeeklyHours,
    },
    SetStaffHours {
        staff_id: StaffId,
        hours: WeeklyHours,
    },
    AddTimeOff {
        staff_id: StaffId,
        start: Timestamp,
        end: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    AddService {
        name: String,
        duration_minutes: u32,
        price_cents: i64,
        #[serde(default = "crate::model::defaults::currency")]
        currency: String,
        #[serde(default)]
        buffer_after_minutes: u32,
        staff_ids: Vec<StaffId>,
    },
    /// Book a slot. Without `staff_id` the engine picks a free staff member who can
    /// perform the service, spreading load. Members may book for a customer.
    Book {
        service_id: ServiceId,
        start: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        staff_id: Option<StaffId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer_id: Option<UserId>,
        /// A promotion to apply (the marketing plugin resolved the code to these terms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        promotion: Option<crate::plugin::PromotionTerms>,
    },
    /// Block a slot while the customer completes a step (payment); it lapses after
    /// `ttl_seconds` unless confirmed.
    PlaceHold {
        service_id: ServiceId,
        start: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        staff_id: Option<StaffId>,
        ttl_seconds: u32,
    },
    ConfirmHold {
        hold_id: HoldId,
    },
    ReleaseHold {
        hold_id: HoldId,
    },
    Cancel {
        booking_id: BookingId,
    },
    /// Set the establishment's payment policy (owners). Payments already made keep the
    /// policy they were made under.
    SetPaymentPolicy {
        policy: PaymentPolicy,
        /// This service's own policy, instead of the establishment's (which the
        /// services without one follow).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service_id: Option<ServiceId>,
    },
    /// Forget a service's own policy: it follows the establishment's again (owners).
    ClearServicePaymentPolicy {
        service_id: ServiceId,
    },
    /// Record a customer's card saved at the provider (the server only, after it read
    /// the completed setup at the provider).
    SaveCard {
        customer_id: UserId,
        customer_ref: String,
        payment_method_ref: String,
        setup_ref: String,
    },
    /// Open a booking's fee (members; the server for automatic late-cancellation fees):
    /// at most one per (booking, fee), so a second open answers the first. A fee waiting
    /// for a member's confirmation is confirmed by it.
    OpenFee {
        booking_id: BookingId,
        fee: FeeKind,
    },
    /// Claim the next provider attempt of a fee before calling the provider (the server
    /// only). Refused while another attempt is in flight and younger than
    /// `lease_seconds`.
    ClaimFeeAttempt {
        payment_id: PaymentId,
        lease_seconds: u32,
    },
    /// Waive a fee that has not been charged (members).
    WaiveFee {
        payment_id: PaymentId,
    },
    /// Book a slot that the payment policy asks payment for: the slot is held for
    /// `ttl_seconds` and a payment is opened; the booking is confirmed only when the
    /// provider reports the payment succeeded ([`Command::SettlePayment`]).
    Checkout {
        service_id: ServiceId,
        start: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        staff_id: Option<StaffId>,
        ttl_seconds: u32,
        /// The provider's name, recorded on the payment.
        provider: String,
    },
    /// Record the provider's object for a payment (after the provider created it).
    AttachPayment {
        payment_id: PaymentId,
        provider_ref: String,
    },
    /// Record what the provider reported about a payment (the server only: from a
    /// verified webhook or its own re-read of the provider, never a client's word).
    SettlePayment {
        payment_id: PaymentId,
        outcome: PaymentOutcome,
    },
    /// Move a booking: atomically moved, or left unchanged and rejected.
    Reschedule {
        booking_id: BookingId,
        start: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        staff_id: Option<StaffId>,
    },
    MarkCompleted {
        booking_id: BookingId,
    },
    MarkNoShow {
        booking_id: BookingId,
    },
    /// Join the walk-in queue: a customer for themselves, or a member adding a walk-in by
    /// name.
    JoinQueue {
        service_id: ServiceId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        staff_id: Option<StaffId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Call the first waiting ticket this staff member can serve.
    CallNext {
        staff_id: StaffId,
    },
    StartTicket {
        ticket_id: TicketId,
    },
    FinishTicket {
        ticket_id: TicketId,
    },
    NoShowTicket {
        ticket_id: TicketId,
    },
    /// A customer leaves, or a member removes the ticket.
    LeaveQueue {
        ticket_id: TicketId,
    },
    /// A member moves a waiting ticket to a 1-based position.
    MoveTicket {
        ticket_id: TicketId,
        position: u32,
    },
    /// Owners: install a plugin with its settings, or change the settings of an
    /// installed one.
    InstallPlugin {
        name: String,
        settings: crate::plugin::PluginSettings,
    },
    /// Owners: uninstall a plugin.
    UninstallPlugin {
        name: String,
    },
}

impl Command {
    /// A short stable name, for logs and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::CreateEstablishment { .. } => "create_establishment",
            Command::UpdateSettings { .. } => "update_settings",
            Command::Suspend { .. } => "suspend",
            Command::Reinstate { .. } => "reinstate",
            Command::AddStaff { .. } => "add_staff",
            Command::SetStaffHours { .. } => "set_staff_hours",
            Command::AddTimeOff { .. } => "add_time_off",
            Command::AddService { .. } => "add_service",
            Command::Book { .. } => "book",
            Command::PlaceHold { .. } => "place_hold",
            Command::ConfirmHold { .. } => "confirm_hold",
            Command::ReleaseHold { .. } => "release_hold",
            Command::Cancel { .. } => "cancel",
            Command::SetPaymentPolicy { .. } => "set_payment_policy",
            Command::ClearServicePaymentPolicy { .. } => "clear_service_payment_policy",
            Command::SaveCard { .. } => "save_card",
            Command::OpenFee { .. } => "open_fee",
            Command::ClaimFeeAttempt { .. } => "claim_fee_attempt",
            Command::WaiveFee { .. } => "waive_fee",
            Command::Checkout { .. } => "checkout",
            Command::AttachPayment { .. } => "attach_payment",
            Command::SettlePayment { .. } => "settle_payment",
            Command::Reschedule { .. } => "reschedule",
            Command::MarkCompleted { .. } => "mark_completed",
            Command::MarkNoShow { .. } => "mark_no_show",
            Command::JoinQueue { .. } => "join_queue",
            Command::CallNext { .. } => "call_next",
            Command::StartTicket { .. } => "start_ticket",
            Command::FinishTicket { .. } => "finish_ticket",
            Command::NoShowTicket { .. } => "no_show_ticket",
            Command::LeaveQueue { .. } => "leave_queue",
            Command::MoveTicket { .. } => "move_ticket",
            Command::InstallPlugin { .. } => "install_plugin",
            Command::UninstallPlugin { .. } => "uninstall_plugin",
        }
    }
}
