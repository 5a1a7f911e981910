//! Payment decisions: the policy, checkouts (a hold plus a payment), and what the
//! provider reported about a payment. The provider itself is called by the gateway,
//! outside the actor; what it answered comes back here as [`Command::SettlePayment`], so
//! the establishment's actor stays the single decider of its bookings and payments.
//!
//! A checkout's payment and hold share one UUID. A hold awaiting payment is not ended by
//! the actor's clock: the gateway's sweeper asks the provider once more first, and sends
//! `expired` or `succeeded`. A payment that succeeds after its hold was given up books
//! the same slot if it is still free; otherwise it stays `succeeded` with no booking,
//! which tells the gateway to refund it (and record the refund as `refunded`).

use navaro_protocol::{
    Booking, BookingId, BookingStatus, Caller, Command, ErrorCode, Event, HoldEnd, HoldId, Payment,
    PaymentId, PaymentMode, PaymentOutcome, PaymentPolicy, PaymentStatus, PolicyAudience,
    Rejection, Role, SavedCard, ServiceId, UserId,
};

use super::decide::{Context, Events, place, require_manager_of_setup};
use super::rules::{MAX_HOLD_SECONDS, MIN_HOLD_SECONDS};
use super::state::Establishment;
use super::time::timestamp;

/// The longest cancellation window: 30 days, past any booking horizon worth a deposit.
const MAX_CANCEL_WINDOW_MINUTES: u32 = 30 * 24 * 60;

/// The longest provider name or provider object id recorded (Stripe's ids are ~30).
const MAX_PROVIDER_TEXT: usize = 255;

pub fn decide_payment(
    est: &Establishment,
    ctx: &Context,
    caller: &Caller,
    command: &Command,
) -> Result<Events, Rejection> {
    match command {
        Command::SetPaymentPolicy { policy, service_id } => {
            require_manager_of_setup(caller)?;
            validate_policy(policy)?;
            if let Some(id) = service_id {
                est.service(*id).ok_or_else(|| {
                    Rejection::field(ErrorCode::NotFound, "service_id", "service not found")
                })?;
            }
            Ok(vec![Event::PaymentPolicySet {
                policy: policy.clone(),
                service_id: *service_id,
            }])
        }
        Command::ClearServicePaymentPolicy { service_id } => {
            require_manager_of_setup(caller)?;
            if !est.service_policies.contains_key(service_id) {
                return Err(Rejection::not_found("service payment policy"));
            }
            Ok(vec![Event::PaymentPolicyCleared {
                service_id: *service_id,
            }])
        }
        Command::SaveCard {
            customer_id,
            customer_ref,
            payment_method_ref,
            setup_ref,
        } => {
            require_system(caller)?;
            for (field, text) in [
                ("customer_ref", customer_ref),
                ("payment_method_ref", payment_method_ref),
                ("setup_ref", setup_ref),
            ] {
                provider_text(field, text)?;
            }
            if est
                .cards
                .get(customer_id)
                .is_some_and(|c| &c.setup_ref == setup_ref)
            {
                return Err(Rejection::new(
                    ErrorCode::Conflict,
                    "this card is already saved",
                ));
            }
            Ok(vec![Event::PaymentCardSaved {
                card: SavedCard {
                    customer_id: *customer_id,
                    provider: "stripe".to_owned(),
                    customer_ref: customer_ref.clone(),
                    payment_method_ref: payment_method_ref.clone(),
                    setup_ref: setup_ref.clone(),
                    saved_at: ctx.now,
                    seq: est.seq + 1,
                },
            }])
        }
        Command::OpenFee { booking_id, fee } => {
            super::fees::open_fee(est, ctx, caller, *booking_id, *fee)
        }
        Command::ClaimFeeAttempt {
            payment_id,
            lease_seconds,
        } => {
            require_system(caller)?;
            super::fees::claim_attempt(est, ctx, payment(est, *payment_id)?, *lease_seconds)
        }
        Command::WaiveFee { payment_id } => {
            let fee = est
                .payments
                .get(payment_id)
                .filter(|p| p.kind.fee().is_some())
                .map(|p| (**p).clone())
                .ok_or_else(|| Rejection::not_found("fee"))?;
            super::fees::waive(est, caller, fee)
        }
        Command::Checkout {
            service_id,
            start,
            staff_id,
            ttl_seconds,
            provider,
        } => {
            if !(MIN_HOLD_SECONDS..=MAX_HOLD_SECONDS).contains(ttl_seconds) {
                return Err(Rejection::invalid(
                    "ttl_seconds",
                    format!(
                        "ttl_seconds must be between {MIN_HOLD_SECONDS} and {MAX_HOLD_SECONDS}"
                    ),
                ));
            }
            provider_text("provider", provider)?;
            // A suspended establishment takes no new holds, paid ones included.
            super::decide::require_active(est)?;
            checkout(
                est,
                ctx,
                caller,
                *service_id,
                *start,
                *staff_id,
                *ttl_seconds,
                provider,
            )
        }
        Command::AttachPayment {
            payment_id,
            provider_ref,
        } => {
            require_system(caller)?;
            provider_text("provider_ref", provider_ref)?;
            let payment = payment(est, *payment_id)?;
            if payment.provider_ref.is_some() {
                return Err(Rejection::new(
                    ErrorCode::Conflict,
                    "the payment already has its provider object",
                ));
            }
            Ok(vec![Event::PaymentUpdated {
                payment: Payment {
                    provider_ref: Some(provider_ref.clone()),
                    seq: est.seq + 1,
                    ..payment
                },
            }])
        }
        Command::SettlePayment {
            payment_id,
            outcome,
        } => {
            require_system(caller)?;
            let payment = payment(est, *payment_id)?;
            if payment.kind.fee().is_some() {
                return super::fees::settle_fee(est, payment, outcome);
            }
            settle(est, ctx, payment, outcome)
        }
        _ => Err(Rejection::new(ErrorCode::Internal, "not a payment command")),
    }
}

/// The policy in force for this customer booking this service now: the service's own,
/// or the establishment's, when it applies to this customer (its `applies_to`);
/// otherwise nothing is asked (mode `none`).
pub fn policy_for(est: &Establishment, service_id: ServiceId, customer: UserId) -> PaymentPolicy {
    let policy = est
        .service_policies
        .get(&service_id)
        .unwrap_or(&est.payment_policy);
    let record = est
        .customer_records
        .get(&customer)
        .copied()
        .unwrap_or_default();
    let applies = match policy.applies_to {
        PolicyAudience::All => true,
        PolicyAudience::NewCustomers => record.completed == 0,
        PolicyAudience::PastNoShows => record.no_shows > 0,
    };
    if applies {
        (**policy).clone()
    } else {
        PaymentPolicy::default()
    }
}

/// The policy copied onto a new booking: the one in force, when it asks anything.
pub(crate) fn booking_policy(
    est: &Establishment,
    service_id: ServiceId,
    customer: UserId,
) -> Option<Box<PaymentPolicy>> {
    let policy = policy_for(est, service_id, customer);
    (policy.mode != PaymentMode::None).then(|| Box::new(policy))
}

/// A customer may not book directly a service the policy asks payment for, nor one
/// under `card_on_file` without a saved card. Members may (a phone booking): such a
/// booking carries the policy, but no fee can be charged without a card.
pub(crate) fn require_no_payment(
    est: &Establishment,
    caller: &Caller,
    service_id: ServiceId,
) -> Result<(), Rejection> {
    if caller.role != Role::Customer {
        return Ok(());
    }
    let Some(service) = est.service(service_id) else {
        return Ok(());
    };
    let policy = policy_for(est, service_id, caller.user_id);
    if policy.amount_due(service.info.price_cents) > 0 {
        return Err(Rejection::new(
            ErrorCode::PaymentRequired,
            "this establishment asks payment for this service: book it with a checkout",
        ));
    }
    if policy.mode == PaymentMode::CardOnFile && !est.cards.contains_key(&caller.user_id) {
        return Err(Rejection::new(
            ErrorCode::PaymentRequired,
            "this establishment asks for a card on file: save one first (card setup)",
        ));
    }
    Ok(())
}

/// When a paid booking is cancelled: the refund its payment is due. In full when the
/// establishment cancels or the customer cancels before the policy's window; otherwise
/// minus the late-cancellation fee, which never exceeds what was paid.
pub(crate) fn refund_on_cancel(
    est: &Establishment,
    ctx: &Context,
    caller: &Caller,
    booking: &Booking,
) -> Events {
    let Some(payment) = est
        .booking_payments
        .get(&booking.id)
        .and_then(|id| est.payments.get(id))
        .filter(|p| p.status == PaymentStatus::Succeeded)
    else {
        return Events::new();
    };
    let paid = payment.amount_cents;
    let window_s = i64::from(payment.policy.cancel_window_minutes) * 60;
    let late =
        caller.role == Role::Customer && ctx.now.as_second() > booking.start.as_second() - window_s;
    let fee = if late {
        payment
            .policy
            .late_cancel_fee(payment.price_cents)
            .min(paid)
    } else {
        0
    };
    let refund_due_cents = paid - fee;
    if refund_due_cents <= payment.refund_due_cents {
        return Events::new();
    }
    vec![Event::PaymentUpdated {
        payment: Payment {
            refund_due_cents,
            seq: est.seq + 1,
            ..(**payment).clone()
        },
    }]
}

/// Whether the hold is a checkout's whose payment has not settled.
pub fn awaits_payment(est: &Establishment, hold_id: HoldId) -> bool {
    est.payments
        .get(&PaymentId(hold_id.0))
        .is_some_and(|p| p.status == PaymentStatus::RequiresPayment)
}

/// Whether some payment still needs the server: a checkout awaiting payment, or a
/// payment that succeeded without a booking (a refund is due).
pub fn has_open_payments(est: &Establishment) -> bool {
    !est.open_payments.is_empty()
}

/// Whether this payment still needs the server: awaiting payment, or a refund due.
/// A fee to charge counts: the sweeper charges it (or, after a crash, finds its charge).
pub fn is_open(p: &Payment) -> bool {
    p.status == PaymentStatus::RequiresPayment
        || (p.status == PaymentStatus::Succeeded && p.refund_due_cents > p.refunded_cents)
}

fn validate_policy(policy: &PaymentPolicy) -> Result<(), Rejection> {
    validate_deposit(policy)?;
    match (policy.late_cancel_fee_percent, policy.late_cancel_fee_cents) {
        (Some(_), Some(_)) => Err(Rejection::invalid(
            "late_cancel_fee_percent",
            "a late-cancellation fee is one of late_cancel_fee_percent and late_cancel_fee_cents",
        )),
        (Some(pct), None) if !(1..=100).contains(&pct) => Err(Rejection::invalid(
            "late_cancel_fee_percent",
            "late_cancel_fee_percent must be between 1 and 100",
        )),
        (None, Some(cents)) if cents <= 0 => Err(Rejection::invalid(
            "late_cancel_fee_cents",
            "late_cancel_fee_cents must be more than 0",
        )),
        (Some(_), None) | (None, Some(_)) if policy.mode == PaymentMode::None => {
            Err(Rejection::invalid(
                "late_cancel_fee_percent",
                "a late-cancellation fee needs a deposit or prepayment to take it from",
            ))
        }
        _ if policy.cancel_window_minutes > MAX_CANCEL_WINDOW_MINUTES => Err(Rejection::invalid(
            "cancel_window_minutes",
            format!("cancel_window_minutes is at most {MAX_CANCEL_WINDOW_MINUTES} (30 days)"),
        )),
        _ => validate_card_fees(policy),
    }
}

/// The no-show fee and the confirmation flag are for `card_on_file` only: a deposit or
/// prepayment already keeps what was paid on a no-show.
fn validate_card_fees(policy: &PaymentPolicy) -> Result<(), Rejection> {
    let on_card = policy.mode == PaymentMode::CardOnFile;
    match (policy.no_show_fee_percent, policy.no_show_fee_cents) {
        (Some(_), Some(_)) => Err(Rejection::invalid(
            "no_show_fee_percent",
            "a no-show fee is one of no_show_fee_percent and no_show_fee_cents",
        )),
        (Some(_), None) | (None, Some(_)) if !on_card => Err(Rejection::invalid(
            "no_show_fee_percent",
            "a no-show fee is charged to a card on file: mode card_on_file only",
        )),
        (Some(pct), None) if !(1..=100).contains(&pct) => Err(Rejection::invalid(
            "no_show_fee_percent",
            "no_show_fee_percent must be between 1 and 100",
        )),
        (None, Some(cents)) if cents <= 0 => Err(Rejection::invalid(
            "no_show_fee_cents",
            "no_show_fee_cents must be more than 0",
        )),
        _ if policy.late_cancel_fee_needs_confirmation && !on_card => Err(Rejection::invalid(
            "late_cancel_fee_needs_confirmation",
            "late_cancel_fee_needs_confirmation is for mode card_on_file only",
        )),
        _ => Ok(()),
    }
}

fn validate_deposit(policy: &PaymentPolicy) -> Result<(), Rejection> {
    match (policy.mode, policy.deposit_percent, policy.deposit_cents) {
        (PaymentMode::Deposit, Some(pct), None) if (1..=100).contains(&pct) => Ok(()),
        (PaymentMode::Deposit, Some(_), None) => Err(Rejection::invalid(
            "deposit_percent",
            "deposit_percent must be between 1 and 100",
        )),
        (PaymentMode::Deposit, None, Some(cents)) if cents > 0 => Ok(()),
        (PaymentMode::Deposit, None, Some(_)) => Err(Rejection::invalid(
            "deposit_cents",
            "deposit_cents must be more than 0",
        )),
        (PaymentMode::Deposit, _, _) => Err(Rejection::invalid(
            "deposit_percent",
            "a deposit needs exactly one of deposit_percent and deposit_cents",
        )),
        (_, None, None) => Ok(()),
        (_, Some(_), _) => Err(Rejection::invalid(
            "deposit_percent",
            "deposit_percent is for mode deposit only",
        )),
        (_, None, Some(_)) => Err(Rejection::invalid(
            "deposit_cents",
            "deposit_cents is for mode deposit only",
        )),
    }
}

fn provider_text(field: &str, text: &str) -> Result<(), Rejection> {
    if text.is_empty() || text.len() > MAX_PROVIDER_TEXT || text.chars().any(char::is_control) {
        return Err(Rejection::invalid(
            field,
            format!("{field} must be 1 to {MAX_PROVIDER_TEXT} printable characters"),
        ));
    }
    Ok(())
}

/// Payment bookkeeping comes from the server (its webhook and sweeper), never a client.
fn require_system(caller: &Caller) -> Result<(), Rejection> {
    if caller.role == Role::Admin {
        Ok(())
    } else {
        Err(Rejection::forbidden(
            "only the server records payment outcomes",
        ))
    }
}

fn payment(est: &Establishment, id: PaymentId) -> Result<Payment, Rejection> {
    est.payments
        .get(&id)
        .map(|p| (**p).clone())
        .ok_or_else(|| Rejection::not_found("payment"))
}

#[allow(clippy::too_many_arguments)]
fn checkout(
    est: &Establishment,
    ctx: &Context,
    caller: &Caller,
    service_id: ServiceId,
    start: jiff::Timestamp,
    staff_id: Option<navaro_protocol::StaffId>,
    ttl_seconds: u32,
    provider: &str,
) -> Result<Events, Rejection> {
    let service = est
        .service(service_id)
        .ok_or_else(|| Rejection::field(ErrorCode::NotFound, "service_id", "service not found"))?;
    let policy = policy_for(est, service_id, caller.user_id);
    let amount_cents = policy.amount_due(service.info.price_cents);
    let Some(kind) = policy.kind().filter(|_| amount_cents > 0) else {
        return Err(Rejection::new(
            ErrorCode::Conflict,
            "this establishment asks no payment for this service: book it directly",
        ));
    };
    let price_cents = service.info.price_cents;
    let currency = service.info.currency.clone();
    let placed = place(est, ctx, caller.user_id, service_id, start, staff_id)?;
    let expires_at = jiff::Timestamp::from_second(ctx.now.as_second() + i64::from(ttl_seconds))
        .unwrap_or(ctx.now);
    let hold_seq = est.seq + placed.events.len() as u64 + 1;
    let hold = navaro_protocol::Hold {
        id: HoldId(ctx.new_id),
        establishment_id: est.id,
        service_id,
        staff_id: placed.staff_id,
        customer_id: caller.user_id,
        start,
        end: timestamp(placed.start + placed.duration),
        buffer_after_minutes: placed.buffer as u32,
        expires_at,
        seq: hold_seq,
    };
    let payment = Payment {
        id: PaymentId(ctx.new_id),
        establishment_id: est.id,
        customer_id: caller.user_id,
        hold_id: hold.id,
        booking_id: None,
        service_id,
        staff_id: placed.staff_id,
        start,
        kind,
        amount_cents,
        price_cents,
        currency,
        status: PaymentStatus::RequiresPayment,
        provider: provider.to_owned(),
        provider_ref: None,
        refunded_cents: 0,
        refund_due_cents: 0,
        refund_refs: Vec::new(),
        failure: None,
        policy,
        expires_at,
        created_at: ctx.now,
        seq: hold_seq + 1,
        attempt: 0,
        attempt_started_at: None,
    };
    let mut events = placed.events;
    events.push(Event::HoldPlaced { hold });
    events.push(Event::PaymentUpdated { payment });
    Ok(events)
}

fn already(payment: &Payment) -> Rejection {
    Rejection::new(
        ErrorCode::Conflict,
        format!("the payment is already {}", payment.status.as_str()),
    )
}

fn settle(
    est: &Establishment,
    ctx: &Context,
    payment: Payment,
    outcome: &PaymentOutcome,
) -> Result<Events, Rejection> {
    let pending = payment.status == PaymentStatus::RequiresPayment;
    let hold = est.holds.get(&payment.hold_id).map(|h| (**h).clone());
    match outcome {
        PaymentOutcome::Succeeded {
            provider_ref,
            amount_cents,
        } => {
            // A payment that expired unpaid can still succeed at the provider (the
            // customer paid at the last second): it books the slot if still free.
            if !matches!(
                payment.status,
                PaymentStatus::RequiresPayment | PaymentStatus::Expired | PaymentStatus::Failed
            ) {
                return Err(already(&payment));
            }
            if *amount_cents != payment.amount_cents {
                return Err(Rejection::invalid(
                    "amount_cents",
                    format!(
                        "the provider reports {amount_cents}, the payment is for {}",
                        payment.amount_cents
                    ),
                ));
            }
            succeeded(est, ctx, payment, hold, provider_ref)
        }
        PaymentOutcome::Failed { .. } | PaymentOutcome::Expired if !pending => {
            Err(already(&payment))
        }
        PaymentOutcome::Failed { reason } => Ok(end_unpaid(
            est,
            payment,
            hold,
            PaymentStatus::Failed,
            Some(reason.clone()),
            HoldEnd::Released,
        )),
        PaymentOutcome::Expired => Ok(end_unpaid(
            est,
            payment,
            hold,
            PaymentStatus::Expired,
            None,
            HoldEnd::Expired,
        )),
        PaymentOutcome::Refunded {
            refund_ref,
            amount_cents,
        } => {
            if payment.status != PaymentStatus::Succeeded {
                return Err(already(&payment));
            }
            let left = payment.refund_due_cents - payment.refunded_cents;
            if *amount_cents <= 0 || *amount_cents > left {
                return Err(Rejection::invalid(
                    "amount_cents",
                    format!("a refund is 1 to {left} here"),
                ));
            }
            if payment.refund_refs.contains(refund_ref) {
                return Err(Rejection::new(
                    ErrorCode::Conflict,
                    "this refund is already recorded",
                ));
            }
            let mut refund_refs = payment.refund_refs.clone();
            refund_refs.push(refund_ref.clone());
            let refunded_cents = payment.refunded_cents + amount_cents;
            let status = if refunded_cents == payment.amount_cents {
                PaymentStatus::Refunded
            } else {
                PaymentStatus::Succeeded
            };
            Ok(vec![Event::PaymentUpdated {
                payment: Payment {
                    status,
                    refunded_cents,
                    refund_refs,
                    seq: est.seq + 1,
                    ..payment
                },
            }])
        }
    }
}

fn end_unpaid(
    est: &Establishment,
    payment: Payment,
    hold: Option<navaro_protocol::Hold>,
    status: PaymentStatus,
    failure: Option<String>,
    reason: HoldEnd,
) -> Events {
    let mut events = Events::new();
    if let Some(hold) = hold {
        events.push(Event::HoldEnded { hold, reason });
    }
    events.push(Event::PaymentUpdated {
        payment: Payment {
            status,
            failure,
            seq: est.seq + events.len() as u64 + 1,
            ..payment
        },
    });
    events
}

/// The payment succeeded: confirm the held slot, or book it again if the hold ended and
/// the slot is still free; otherwise record the payment with no booking (a refund is due).
fn succeeded(
    est: &Establishment,
    ctx: &Context,
    payment: Payment,
    hold: Option<navaro_protocol::Hold>,
    provider_ref: &str,
) -> Result<Events, Rejection> {
    let mut events = Events::new();
    let booking_id = BookingId(ctx.new_id);
    let booked = match hold {
        Some(hold) => {
            events.push(Event::BookingConfirmed {
                booking: Booking {
                    id: booking_id,
                    establishment_id: est.id,
                    service_id: hold.service_id,
                    staff_id: hold.staff_id,
                    customer_id: hold.customer_id,
                    start: hold.start,
                    end: hold.end,
                    buffer_after_minutes: hold.buffer_after_minutes,
                    status: BookingStatus::Confirmed,
                    seq: est.seq + 1,
                    created_at: ctx.now,
                    promotion: None,
                    payment_policy: Some(Box::new(payment.policy.clone())),
                },
                from_hold: Some(hold.id),
            });
            true
        }
        None => match place(
            est,
            ctx,
            payment.customer_id,
            payment.service_id,
            payment.start,
            Some(payment.staff_id),
        ) {
            Ok(placed) => {
                events.extend(placed.events);
                events.push(Event::BookingConfirmed {
                    booking: Booking {
                        id: booking_id,
                        establishment_id: est.id,
                        service_id: payment.service_id,
                        staff_id: placed.staff_id,
                        customer_id: payment.customer_id,
                        start: payment.start,
                        end: timestamp(placed.start + placed.duration),
                        buffer_after_minutes: placed.buffer as u32,
                        status: BookingStatus::Confirmed,
                        seq: est.seq + events.len() as u64 + 1,
                        created_at: ctx.now,
                        promotion: None,
                        payment_policy: Some(Box::new(payment.policy.clone())),
                    },
                    from_hold: None,
                });
                true
            }
            Err(_) => false,
        },
    };
    events.push(Event::PaymentUpdated {
        payment: Payment {
            status: PaymentStatus::Succeeded,
            booking_id: booked.then_some(booking_id),
            provider_ref: Some(provider_ref.to_owned()),
            failure: (!booked).then(|| "the slot was taken before the payment arrived".into()),
            refund_due_cents: if booked { 0 } else { payment.amount_cents },
            seq: est.seq + events.len() as u64 + 1,
            ..payment
        },
    });
    Ok(events)
}
