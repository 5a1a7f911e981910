//! Machine-readable error codes, shared by every transport.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a request was not carried out. The gateway maps each code to an HTTP status in one
/// table; clients switch on the code, never on the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or a field is out of range; `field` names it.
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    /// The slot is taken (by a booking, a hold or a buffer); alternatives are attached.
    SlotUnavailable,
    /// The start is not inside the staff member's working hours, or falls in time off.
    OutsideHours,
    /// The start is closer than the establishment's minimum notice (or in the past).
    TooSoon,
    /// The start is beyond the establishment's booking horizon.
    TooFar,
    /// The start is not on the establishment's local slot grid.
    NotOnGrid,
    /// The customer already holds as many future bookings as the establishment allows.
    LimitReached,
    /// The chosen staff member does not perform the service.
    StaffCannotPerform,
    /// Customers may no longer cancel or move this booking (cancellation cutoff).
    CancelCutoffPassed,
    /// The hold lapsed before it was confirmed.
    HoldExpired,
    /// The booking ended before the establishment's history window (a week by default)
    /// and can no longer be changed; it is still listed and readable.
    BookingArchived,
    /// The establishment's payment policy asks for a payment: book through a checkout.
    PaymentRequired,
    /// The payment provider refused or could not be reached; the message says which.
    PaymentProvider,
    /// The idempotency key was used before with a different request.
    IdempotencyKeyReused,
    /// The request conflicts with the item's current state (already cancelled, exists).
    Conflict,
    /// The promotion code cannot be used for this booking: unknown, not valid now, used
    /// up, or already used by this customer.
    PromotionUnavailable,
    /// The platform suspended this establishment: it takes no new bookings, holds or
    /// walk-ins until reinstated (its existing bookings stay).
    EstablishmentSuspended,
    /// The platform disabled this account: its tokens no longer work.
    AccountDisabled,
    PayloadTooLarge,
    /// The request's body did not arrive within the server's body read timeout; the
    /// connection is closed. Not retried blindly: a client on a slow link should send a
    /// smaller body or retry when the link is better.
    RequestTimeout,
    RateLimited,
    /// Too many commands in flight for this establishment, or every store connection
    /// busy; retry after a moment.
    Overloaded,
    /// The store is unreachable or a write was not made durable; retry with the same key.
    Unavailable,
    /// Something broke on our side; details are in the server's log, never here.
    Internal,
}

impl ErrorCode {
    /// The snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::SlotUnavailable => "slot_unavailable",
            ErrorCode::OutsideHours => "outside_hours",
            ErrorCode::TooSoon => "too_soon",
            ErrorCode::TooFar => "too_far",
            ErrorCode::NotOnGrid => "not_on_grid",
            ErrorCode::LimitReached => "limit_reached",
            ErrorCode::StaffCannotPerform => "staff_cannot_perform",
            ErrorCode::CancelCutoffPassed => "cancel_cutoff_passed",
            ErrorCode::HoldExpired => "hold_expired",
            ErrorCode::BookingArchived => "booking_archived",
            ErrorCode::PaymentRequired => "payment_required",
            ErrorCode::PaymentProvider => "payment_provider",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PromotionUnavailable => "promotion_unavailable",
            ErrorCode::EstablishmentSuspended => "establishment_suspended",
            ErrorCode::AccountDisabled => "account_disabled",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
