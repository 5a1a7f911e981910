//! Payments as the establishment records them: its payment policy, and each payment
//! (a checkout's deposit or prepayment) with the policy copied onto it.
//!
//! Money is integer minor units (`amount_cents`) with the service's ISO 4217 currency.
//! A payment's provider-side object (a Stripe PaymentIntent) is named by `provider_ref`;
//! the provider's client secret is never recorded here (events reach live feeds).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{BookingId, EstablishmentId, HoldId, PaymentId, ServiceId, StaffId, UserId};

/// What an establishment asks customers to pay when they book.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMode {
    /// Nothing: bookings confirm at once.
    #[default]
    None,
    /// Part of the price, as `deposit_percent` or `deposit_cents`.
    Deposit,
    /// The whole price.
    Prepayment,
    /// Nothing up front: the customer saves a card (the provider's setup flow) before
    /// booking, and the no-show and late-cancellation fees are charged to it
    /// off-session.
    CardOnFile,
}

/// An establishment's payment policy. Copied onto each payment when it is made, so that
/// a later change never changes what a customer agreed to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentPolicy {
    pub mode: PaymentMode,
    /// For `deposit`: this percent of the price (1 to 100), rounded to the nearest
    /// minor unit. Exactly one of `deposit_percent` and `deposit_cents` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit_percent: Option<u8>,
    /// For `deposit`: this fixed amount, or the price when the price is lower.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit_cents: Option<i64>,
    /// A customer who cancels less than this long before the start pays the
    /// late-cancellation fee out of what they paid (0: never late).
    #[serde(default)]
    pub cancel_window_minutes: u32,
    /// The late-cancellation fee: this percent of the price (1 to 100)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_cancel_fee_percent: Option<u8>,
    /// ... or this fixed amount; never more than what was paid (or, with
    /// `card_on_file`, than the price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_cancel_fee_cents: Option<i64>,
    /// With `card_on_file`: a late cancellation's fee waits for a member to charge or
    /// waive it (`requires_confirmation`) instead of being charged at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late_cancel_fee_needs_confirmation: bool,
    /// With `card_on_file`: the no-show fee, a percent of the price (1 to 100)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_show_fee_percent: Option<u8>,
    /// ... or a fixed amount (never more than the price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_show_fee_cents: Option<i64>,
    /// Which customers the policy applies to; the others book as with mode `none`.
    #[serde(default, skip_serializing_if = "PolicyAudience::is_all")]
    pub applies_to: PolicyAudience,
}

/// Which customers a payment policy applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAudience {
    /// Every customer.
    #[default]
    All,
    /// Customers with no completed visit here yet.
    NewCustomers,
    /// Customers marked no-show here before.
    PastNoShows,
}

impl PolicyAudience {
    pub fn is_all(&self) -> bool {
        *self == PolicyAudience::All
    }
}

impl PaymentPolicy {
    /// What a booking of a service at `price_cents` must pay up front under this policy
    /// (0: nothing). Never more than the price, never negative.
    pub fn amount_due(&self, price_cents: i64) -> i64 {
        let price = price_cents.max(0);
        let due = match self.mode {
            PaymentMode::None | PaymentMode::CardOnFile => 0,
            PaymentMode::Prepayment => price,
            PaymentMode::Deposit => match (self.deposit_percent, self.deposit_cents) {
                (Some(pct), _) => (price * i64::from(pct) + 50) / 100,
                (None, Some(cents)) => cents,
                (None, None) => 0,
            },
        };
        due.clamp(0, price)
    }

    /// The late-cancellation fee on a service at `price_cents`, before the cap at what was
    /// paid.
    pub fn late_cancel_fee(&self, price_cents: i64) -> i64 {
        let price = price_cents.max(0);
        match (self.late_cancel_fee_percent, self.late_cancel_fee_cents) {
            (Some(pct), _) => (price * i64::from(pct) + 50) / 100,
            (None, Some(cents)) => cents.max(0),
            (None, None) => 0,
        }
    }

    /// The no-show fee on a service at `price_cents` (never more than the price).
    pub fn no_show_fee(&self, price_cents: i64) -> i64 {
        let price = price_cents.max(0);
        let fee = match (self.no_show_fee_percent, self.no_show_fee_cents) {
            (Some(pct), _) => (price * i64::from(pct) + 50) / 100,
            (None, Some(cents)) => cents.max(0),
            (None, None) => 0,
        };
        fee.min(price)
    }

    /// The fee of `kind` on a service at `price_cents` (never more than the price).
    pub fn fee(&self, kind: FeeKind, price_cents: i64) -> i64 {
        match kind {
            FeeKind::NoShow => self.no_show_fee(price_cents),
            FeeKind::LateCancel => self.late_cancel_fee(price_cents).min(price_cents.max(0)),
        }
    }

    /// The kind of payment this policy asks for up front, when it asks for one.
    pub fn kind(&self) -> Option<PaymentKind> {
        match self.mode {
            PaymentMode::None | PaymentMode::CardOnFile => None,
            PaymentMode::Deposit => Some(PaymentKind::Deposit),
            PaymentMode::Prepayment => Some(PaymentKind::Prepayment),
        }
    }
}

/// What a payment is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    Deposit,
    Prepayment,
    /// A no-show fee charged off-session to the card on file.
    NoShowFee,
    /// A late-cancellation fee charged off-session to the card on file.
    LateCancelFee,
}

impl PaymentKind {
    /// The fee this payment is, if it is one.
    pub fn fee(self) -> Option<FeeKind> {
        match self {
            PaymentKind::NoShowFee => Some(FeeKind::NoShow),
            PaymentKind::LateCancelFee => Some(FeeKind::LateCancel),
            PaymentKind::Deposit | PaymentKind::Prepayment => None,
        }
    }
}

/// The fees charged to a card on file. At most one of each per booking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeKind {
    NoShow,
    LateCancel,
}

impl FeeKind {
    /// The snake_case wire name (also the action in provider idempotency keys).
    pub fn as_str(self) -> &'static str {
        match self {
            FeeKind::NoShow => "no_show",
            FeeKind::LateCancel => "late_cancel",
        }
    }

    /// The payment kind of this fee.
    pub fn payment_kind(self) -> PaymentKind {
        match self {
            FeeKind::NoShow => PaymentKind::NoShowFee,
            FeeKind::LateCancel => PaymentKind::LateCancelFee,
        }
    }
}

/// Where a payment stands.
///
/// `requires_payment` -> `succeeded` (the booking is confirmed) or `failed` (declined:
/// the hold ends) or `expired` (the hold lapsed unpaid); `succeeded` -> `refunded` when
/// the slot was lost before the payment arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    RequiresPayment,
    Succeeded,
    Failed,
    Expired,
    Refunded,
    /// A fee waiting for a member to charge or waive it.
    RequiresConfirmation,
    /// A fee a member waived: never charged.
    Waived,
}

impl PaymentStatus {
    /// The snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::RequiresPayment => "requires_payment",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Expired => "expired",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::RequiresConfirmation => "requires_confirmation",
            PaymentStatus::Waived => "waived",
        }
    }
}

/// A payment for a checkout: the hold it keeps, the booking it became, the amount and
/// the policy in force when it was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: PaymentId,
    pub establishment_id: EstablishmentId,
    pub customer_id: UserId,
    /// The hold that keeps the slot while the customer pays (same UUID as the payment).
    pub hold_id: HoldId,
    /// The booking the payment confirmed, once it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<BookingId>,
    pub service_id: ServiceId,
    pub staff_id: StaffId,
    #[serde(serialize_with = "crate::zone::instant")]
    pub start: Timestamp,
    pub kind: PaymentKind,
    pub amount_cents: i64,
    /// The service's price when the payment was made.
    pub price_cents: i64,
    pub currency: String,
    pub status: PaymentStatus,
    /// The provider's name (`stripe`).
    pub provider: String,
    /// The provider's object for this payment (a PaymentIntent id), once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<String>,
    /// Refunded so far; never more than `amount_cents`.
    #[serde(default)]
    pub refunded_cents: i64,
    /// What is to be refunded in all (a cancellation by policy, or the whole payment when
    /// its slot was lost); `refunded_cents` catches up with it when the provider refunds.
    #[serde(default)]
    pub refund_due_cents: i64,
    /// The provider's refund objects, so that one refund is never recorded twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refund_refs: Vec<String>,
    /// Why a payment failed, in the provider's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The policy in force when the payment was made.
    pub policy: PaymentPolicy,
    /// When the hold lapses if the payment has not succeeded.
    #[serde(serialize_with = "crate::zone::instant")]
    pub expires_at: Timestamp,
    #[serde(serialize_with = "crate::zone::instant")]
    pub created_at: Timestamp,
    /// The establishment event that last changed this payment.
    pub seq: u64,
    /// For a fee: the provider attempts claimed so far. Attempt `n` calls the provider
    /// with the key `navaro-{booking}-{fee}-{n}`; a new one is claimed only after the
    /// previous one is known to have charged nothing.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
    /// For a fee: when the current attempt was claimed, while it is in flight (the
    /// provider called, its answer not yet recorded).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::zone::opt_instant"
    )]
    pub attempt_started_at: Option<Timestamp>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A customer's card saved at the provider for off-session charges (fees).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedCard {
    pub customer_id: UserId,
    /// The provider's name (`stripe`).
    pub provider: String,
    /// The provider's customer (a Stripe Customer id).
    pub customer_ref: String,
    /// The provider's payment method (a Stripe PaymentMethod id).
    pub payment_method_ref: String,
    /// The setup the customer completed (a Stripe SetupIntent id).
    pub setup_ref: String,
    #[serde(serialize_with = "crate::zone::instant")]
    pub saved_at: Timestamp,
    pub seq: u64,
}

/// What the provider said about a payment, as the gateway relays it to the actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaymentOutcome {
    /// The provider reports the payment succeeded for `amount_cents`.
    Succeeded {
        provider_ref: String,
        amount_cents: i64,
    },
    /// The provider declined the payment.
    Failed { reason: String },
    /// The hold lapsed and the provider confirmed the payment did not succeed.
    Expired,
    /// The provider refunded `amount_cents` (`refund_ref` is its refund object).
    Refunded {
        refund_ref: String,
        amount_cents: i64,
    },
}
