//! Fees charged to a card on file: the no-show fee (a member marks a no-show) and the
//! late-cancellation fee (a customer cancels inside the window of the booking's policy).
//!
//! A fee is a [`Payment`] of kind `no_show_fee` or `late_cancel_fee` with its booking.
//! The state keeps at most one per (booking, fee) (`Establishment::fees`): a second
//! open is refused with `conflict`, so no path can make a second fee even if the
//! provider ignored idempotency keys. Before each provider call the gateway claims an
//! attempt ([`Command::ClaimFeeAttempt`]), journaled; the claim is refused while another
//! attempt is in flight, so two concurrent requests never both call the provider. An
//! attempt left in flight by a crash is looked up at the provider before another is
//! claimed (`gateway/src/payments.rs`).

use navaro_protocol::{
    Booking, BookingId, BookingStatus, Caller, ErrorCode, Event, FeeKind, HoldId, Payment,
    PaymentId, PaymentMode, PaymentStatus, Rejection, Role,
};

use super::decide::{Context, Events, require_member};
use super::state::Establishment;

/// The fee of `kind` on this booking, if one was opened.
pub fn fee_of(est: &Establishment, booking_id: BookingId, kind: FeeKind) -> Option<&Payment> {
    est.fees
        .get(&(booking_id, kind))
        .and_then(|id| est.payments.get(id))
        .map(|p| &**p)
}

/// Whether an attempt of this fee is in flight and younger than `lease_seconds`.
pub fn attempt_in_flight(payment: &Payment, now: jiff::Timestamp, lease_seconds: u32) -> bool {
    payment
        .attempt_started_at
        .is_some_and(|at| at.as_second() + i64::from(lease_seconds) > now.as_second())
}

/// A member opens (or confirms) a booking's fee.
pub fn open_fee(
    est: &Establishment,
    ctx: &Context,
    caller: &Caller,
    booking_id: BookingId,
    kind: FeeKind,
) -> Result<Events, Rejection> {
    require_member(caller)?;
    let booking = est
        .bookings
        .get(&booking_id)
        .ok_or_else(|| Rejection::not_found("booking"))?;
    if let Some(fee) = fee_of(est, booking_id, kind) {
        if fee.status != PaymentStatus::RequiresConfirmation {
            return Err(Rejection::new(
                ErrorCode::Conflict,
                format!("this booking's {} fee is already open", kind.as_str()),
            ));
        }
        // A member's charge is the confirmation the policy waits for.
        return Ok(vec![Event::PaymentUpdated {
            payment: Payment {
                status: PaymentStatus::RequiresPayment,
                seq: est.seq + 1,
                ..fee.clone()
            },
        }]);
    }
    match kind {
        FeeKind::NoShow if booking.status != BookingStatus::NoShow => {
            return Err(Rejection::new(
                ErrorCode::Conflict,
                "a no-show fee needs the booking marked no-show first",
            ));
        }
        FeeKind::LateCancel => {
            return Err(Rejection::new(
                ErrorCode::Conflict,
                "no late-cancellation fee is due for this booking",
            ));
        }
        FeeKind::NoShow => {}
    }
    let payment = new_fee(est, ctx, booking, kind, PaymentStatus::RequiresPayment)?;
    Ok(vec![Event::PaymentUpdated { payment }])
}

/// When a customer cancels a card-on-file booking inside its policy's window: the
/// late-cancellation fee, charged at once or waiting for a member, per the policy. No
/// fee without a card on file (a member booked for the customer by phone, say).
pub(crate) fn fee_on_cancel(
    est: &Establishment,
    ctx: &Context,
    caller: &Caller,
    booking: &Booking,
) -> Events {
    let Some(policy) = booking.payment_policy.as_deref() else {
        return Events::new();
    };
    let window_s = i64::from(policy.cancel_window_minutes) * 60;
    let late =
        caller.role == Role::Customer && ctx.now.as_second() > booking.start.as_second() - window_s;
    if policy.mode != PaymentMode::CardOnFile
        || !late
        || fee_of(est, booking.id, FeeKind::LateCancel).is_some()
    {
        return Events::new();
    }
    let status = if policy.late_cancel_fee_needs_confirmation {
        PaymentStatus::RequiresConfirmation
    } else {
        PaymentStatus::RequiresPayment
    };
    match new_fee(est, ctx, booking, FeeKind::LateCancel, status) {
        Ok(payment) => vec![Event::PaymentUpdated { payment }],
        Err(_) => Events::new(),
    }
}

fn new_fee(
    est: &Establishment,
    ctx: &Context,
    booking: &Booking,
    kind: FeeKind,
    status: PaymentStatus,
) -> Result<Payment, Rejection> {
    let policy = booking
        .payment_policy
        .as_deref()
        .filter(|p| p.mode == PaymentMode::CardOnFile)
        .ok_or_else(|| {
            Rejection::new(
                ErrorCode::Conflict,
                "the booking's payment policy charges no fee to a card",
            )
        })?;
    let service = est
        .service(booking.service_id)
        .ok_or_else(|| Rejection::not_found("service"))?;
    let price_cents = service.info.price_cents;
    let amount_cents = policy.fee(kind, price_cents);
    if amount_cents <= 0 {
        return Err(Rejection::new(
            ErrorCode::Conflict,
            format!("the booking's payment policy has no {} fee", kind.as_str()),
        ));
    }
    let card = est.cards.get(&booking.customer_id).ok_or_else(|| {
        Rejection::new(ErrorCode::Conflict, "the customer has no card on file here")
    })?;
    Ok(Payment {
        id: PaymentId(ctx.new_id),
        establishment_id: est.id,
        customer_id: booking.customer_id,
        // A fee keeps no slot: its hold id names no hold.
        hold_id: HoldId(ctx.new_id),
        booking_id: Some(booking.id),
        service_id: booking.service_id,
        staff_id: booking.staff_id,
        start: booking.start,
        kind: kind.payment_kind(),
        amount_cents,
        price_cents,
        currency: service.info.currency.clone(),
        status,
        provider: card.provider.clone(),
        provider_ref: None,
        refunded_cents: 0,
        refund_due_cents: 0,
        refund_refs: Vec::new(),
        failure: None,
        policy: policy.clone(),
        expires_at: ctx.now,
        created_at: ctx.now,
        seq: est.seq + 1,
        attempt: 0,
        attempt_started_at: None,
    })
}

/// The server claims the next attempt of a fee, before it calls the provider.
pub fn claim_attempt(
    est: &Establishment,
    ctx: &Context,
    payment: Payment,
    lease_seconds: u32,
) -> Result<Events, Rejection> {
    if payment.kind.fee().is_none() {
        return Err(Rejection::new(ErrorCode::Conflict, "not a fee"));
    }
    if !matches!(
        payment.status,
        PaymentStatus::RequiresPayment | PaymentStatus::Failed
    ) {
        return Err(Rejection::new(
            ErrorCode::Conflict,
            format!("the fee is {}", payment.status.as_str()),
        ));
    }
    if attempt_in_flight(&payment, ctx.now, lease_seconds) {
        return Err(Rejection::new(
            ErrorCode::Conflict,
            "a charge of this fee is in progress",
        ));
    }
    Ok(vec![Event::PaymentUpdated {
        payment: Payment {
            status: PaymentStatus::RequiresPayment,
            attempt: payment.attempt + 1,
            attempt_started_at: Some(ctx.now),
            failure: None,
            seq: est.seq + 1,
            ..payment
        },
    }])
}

/// A member waives a fee nobody charged: it is never charged.
pub fn waive(est: &Establishment, caller: &Caller, payment: Payment) -> Result<Events, Rejection> {
    require_member(caller)?;
    if payment.kind.fee().is_none() {
        return Err(Rejection::not_found("fee"));
    }
    let waivable = matches!(
        payment.status,
        PaymentStatus::RequiresConfirmation
            | PaymentStatus::RequiresPayment
            | PaymentStatus::Failed
    ) && payment.attempt_started_at.is_none();
    if !waivable {
        return Err(Rejection::new(
            ErrorCode::Conflict,
            format!(
                "the fee is {}{}: it can no longer be waived",
                payment.status.as_str(),
                if payment.attempt_started_at.is_some() {
                    " and being charged"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(vec![Event::PaymentUpdated {
        payment: Payment {
            status: PaymentStatus::Waived,
            seq: est.seq + 1,
            ..payment
        },
    }])
}

/// What the provider answered about a fee's attempt: charged, or declined. A fee is
/// charged once: a success for a fee already succeeded is refused (`conflict`).
pub fn settle_fee(
    est: &Establishment,
    payment: Payment,
    outcome: &navaro_protocol::PaymentOutcome,
) -> Result<Events, Rejection> {
    use navaro_protocol::PaymentOutcome;
    let settled = match outcome {
        PaymentOutcome::Succeeded {
            provider_ref,
            amount_cents,
        } => {
            if !matches!(
                payment.status,
                PaymentStatus::RequiresPayment | PaymentStatus::Failed
            ) {
                return Err(Rejection::new(
                    ErrorCode::Conflict,
                    format!("the fee is already {}", payment.status.as_str()),
                ));
            }
            if *amount_cents != payment.amount_cents {
                return Err(Rejection::invalid(
                    "amount_cents",
                    format!(
                        "the provider reports {amount_cents}, the fee is {}",
                        payment.amount_cents
                    ),
                ));
            }
            Payment {
                status: PaymentStatus::Succeeded,
                provider_ref: Some(provider_ref.clone()),
                failure: None,
                attempt_started_at: None,
                ..payment
            }
        }
        PaymentOutcome::Failed { reason } if payment.status == PaymentStatus::RequiresPayment => {
            Payment {
                status: PaymentStatus::Failed,
                failure: Some(reason.clone()),
                attempt_started_at: None,
                ..payment
            }
        }
        _ => {
            return Err(Rejection::new(
                ErrorCode::Conflict,
                format!("the fee is {}", payment.status.as_str()),
            ));
        }
    };
    Ok(vec![Event::PaymentUpdated {
        payment: Payment {
            seq: est.seq + 1,
            ..settled
        },
    }])
}
