//! Payment decisions, pure: amounts, the policy copied onto each payment, who may settle,
//! what a success, a decline, an expiry or a late success does to the slot, refunds by
//! policy on cancellation, and that snapshots keep it all.

mod support;

use navaro_engine::domain::Establishment;
use navaro_engine::domain::payments::awaits_payment;
use navaro_protocol::{
    BookingStatus, Caller, Command, ErrorCode, Payment, PaymentMode, PaymentOutcome, PaymentPolicy,
    PaymentStatus, Reply, Role, ServiceId, UserId, WeeklyHours,
};
use support::*;
use uuid::Uuid;

const NOW: &str = "2026-12-01T12:00:00Z";
const START: &str = "2026-12-03T10:00:00Z";

fn system() -> Caller {
    Caller {
        user_id: UserId(Uuid::nil()),
        role: Role::Admin,
    }
}

fn shop(policy: PaymentPolicy) -> (Sim, ServiceId) {
    let mut sim = Sim::new(settings("UTC"), NOW);
    let staff = sim.add_staff("Carlos", WeeklyHours::every_day(&[("08:00", "20:00")]));
    let service = sim.add_service("Corte", 30, 0, &[staff]); // 50.00 BRL
    sim.exec(
        owner(),
        Command::SetPaymentPolicy {
            policy,
            service_id: None,
        },
    )
    .unwrap();
    (sim, service)
}

fn deposit(percent: u8) -> PaymentPolicy {
    PaymentPolicy {
        mode: PaymentMode::Deposit,
        deposit_percent: Some(percent),
        ..PaymentPolicy::default()
    }
}

fn checkout(sim: &mut Sim, who: Caller, service: ServiceId, start: &str) -> Payment {
    match sim
        .exec(
            who,
            Command::Checkout {
                service_id: service,
                start: ts(start),
                staff_id: None,
                ttl_seconds: 600,
                provider: "stripe".into(),
            },
        )
        .unwrap()
    {
        Reply::Payment(p) => p,
        other => panic!("{other:?}"),
    }
}

fn settle(sim: &mut Sim, payment: &Payment, outcome: PaymentOutcome) -> Result<Payment, ErrorCode> {
    match sim.exec(
        system(),
        Command::SettlePayment {
            payment_id: payment.id,
            outcome,
        },
    ) {
        Ok(Reply::Payment(p)) => Ok(p),
        Ok(other) => panic!("{other:?}"),
        Err(r) => Err(r.code),
    }
}

fn paid(payment: &Payment) -> PaymentOutcome {
    PaymentOutcome::Succeeded {
        provider_ref: "pi_1".into(),
        amount_cents: payment.amount_cents,
    }
}

#[test]
fn amounts_are_integer_minor_units_rounded_and_never_above_the_price() {
    let p = |mode, pct, cents| PaymentPolicy {
        mode,
        deposit_percent: pct,
        deposit_cents: cents,
        ..PaymentPolicy::default()
    };
    assert_eq!(
        p(PaymentMode::Deposit, Some(30), None).amount_due(5_000),
        1_500
    );
    assert_eq!(p(PaymentMode::Deposit, Some(33), None).amount_due(999), 330); // 329.67
    assert_eq!(
        p(PaymentMode::Deposit, Some(100), None).amount_due(4_999),
        4_999
    );
    assert_eq!(
        p(PaymentMode::Deposit, None, Some(2_000)).amount_due(5_000),
        2_000
    );
    assert_eq!(
        p(PaymentMode::Deposit, None, Some(9_000)).amount_due(5_000),
        5_000
    );
    assert_eq!(
        p(PaymentMode::Prepayment, None, None).amount_due(5_000),
        5_000
    );
    assert_eq!(p(PaymentMode::None, None, None).amount_due(5_000), 0);
    assert_eq!(p(PaymentMode::Prepayment, None, None).amount_due(0), 0);
}

#[test]
fn a_checkout_holds_the_slot_and_copies_the_policy_which_later_changes_do_not_touch() {
    let (mut sim, service) = shop(deposit(30));
    let payment = checkout(&mut sim, customer(1), service, START);
    assert_eq!(
        (payment.amount_cents, payment.price_cents, payment.status),
        (1_500, 5_000, PaymentStatus::RequiresPayment)
    );
    assert_eq!(payment.policy, deposit(30));
    assert!(awaits_payment(sim.est(), payment.hold_id));
    // The slot is held: a member cannot book over it, another checkout neither.
    let taken = sim.book(owner(), service, START, None).unwrap_err();
    assert_eq!(taken.code, ErrorCode::SlotUnavailable);
    // A customer may not skip the payment.
    let refused = sim.book(customer(2), service, "2026-12-03T11:00:00Z", None);
    assert_eq!(refused.unwrap_err().code, ErrorCode::PaymentRequired);

    sim.exec(
        owner(),
        Command::SetPaymentPolicy {
            policy: deposit(80),
            service_id: None,
        },
    )
    .unwrap();
    let confirmed = settle(&mut sim, &payment, paid(&payment)).unwrap();
    assert_eq!(confirmed.policy, deposit(30), "what the customer agreed to");
    assert_eq!(confirmed.amount_cents, 1_500);
    let booking = sim.est().bookings[&confirmed.booking_id.unwrap()].clone();
    assert_eq!(
        (booking.status, booking.start),
        (BookingStatus::Confirmed, ts(START))
    );
    assert!(sim.est().holds.is_empty());
}

#[test]
fn only_the_server_settles_and_a_payment_settles_once_for_its_own_amount() {
    let (mut sim, service) = shop(deposit(30));
    let payment = checkout(&mut sim, customer(1), service, START);
    for who in [customer(1), owner()] {
        let refused = sim.exec(
            who,
            Command::SettlePayment {
                payment_id: payment.id,
                outcome: paid(&payment),
            },
        );
        assert_eq!(refused.unwrap_err().code, ErrorCode::Forbidden);
    }
    let wrong = PaymentOutcome::Succeeded {
        provider_ref: "pi_1".into(),
        amount_cents: 1,
    };
    assert_eq!(
        settle(&mut sim, &payment, wrong),
        Err(ErrorCode::InvalidRequest)
    );
    let seq = sim.est().seq;
    settle(&mut sim, &payment, paid(&payment)).unwrap();
    let bookings = sim.est().bookings.len();
    // A second success (a duplicate webhook) is refused: no second booking.
    assert_eq!(
        settle(&mut sim, &payment, paid(&payment)),
        Err(ErrorCode::Conflict)
    );
    assert_eq!(sim.est().bookings.len(), bookings);
    assert_eq!(
        sim.est().seq,
        seq + 2,
        "booking.confirmed and payment.updated, once"
    );
    let late_decline = PaymentOutcome::Failed {
        reason: "declined".into(),
    };
    assert_eq!(
        settle(&mut sim, &payment, late_decline),
        Err(ErrorCode::Conflict)
    );
}

#[test]
fn a_decline_or_an_expiry_frees_the_slot_and_a_late_success_books_it_if_still_free() {
    let (mut sim, service) = shop(deposit(30));
    let declined = checkout(&mut sim, customer(1), service, START);
    let failed = settle(
        &mut sim,
        &declined,
        PaymentOutcome::Failed {
            reason: "Your card was declined.".into(),
        },
    )
    .unwrap();
    assert_eq!(failed.status, PaymentStatus::Failed);
    assert!(sim.est().holds.is_empty());

    let lapsed = checkout(&mut sim, customer(1), service, START);
    let expired = settle(&mut sim, &lapsed, PaymentOutcome::Expired).unwrap();
    assert_eq!(expired.status, PaymentStatus::Expired);
    assert!(sim.est().holds.is_empty(), "the slot is free");
    // Paid after all (the provider's success came late): the free slot is booked.
    let booked = settle(&mut sim, &lapsed, paid(&lapsed)).unwrap();
    assert_eq!(booked.status, PaymentStatus::Succeeded);
    assert!(booked.booking_id.is_some());
    assert_eq!(booked.refund_due_cents, 0);

    // Expired, the slot taken by someone else, then paid: a refund of it all is due.
    let other = "2026-12-03T14:00:00Z";
    let lost = checkout(&mut sim, customer(2), service, other);
    settle(&mut sim, &lost, PaymentOutcome::Expired).unwrap();
    sim.book(owner(), service, other, None).unwrap();
    let refund_due = settle(&mut sim, &lost, paid(&lost)).unwrap();
    assert_eq!(
        (
            refund_due.status,
            refund_due.booking_id,
            refund_due.refund_due_cents
        ),
        (PaymentStatus::Succeeded, None, 1_500)
    );
    // Refunds are bounded by what is due, and each refund object counts once.
    let too_much = PaymentOutcome::Refunded {
        refund_ref: "re_1".into(),
        amount_cents: 1_501,
    };
    assert_eq!(
        settle(&mut sim, &lost, too_much),
        Err(ErrorCode::InvalidRequest)
    );
    let refund = PaymentOutcome::Refunded {
        refund_ref: "re_1".into(),
        amount_cents: 1_500,
    };
    let refunded = settle(&mut sim, &lost, refund.clone()).unwrap();
    assert_eq!(
        (refunded.status, refunded.refunded_cents),
        (PaymentStatus::Refunded, 1_500)
    );
    assert_eq!(settle(&mut sim, &lost, refund), Err(ErrorCode::Conflict));
}

#[test]
fn the_clock_does_not_end_a_hold_awaiting_payment() {
    let (mut sim, service) = shop(deposit(30));
    let payment = checkout(&mut sim, customer(1), service, START);
    let later = ts("2026-12-01T13:00:00Z");
    assert!(navaro_engine::domain::expire_holds(sim.est(), later).is_empty());
    // A plain hold (no payment) does lapse.
    sim.exec(
        customer(3),
        Command::PlaceHold {
            service_id: service,
            start: ts("2026-12-03T15:00:00Z"),
            staff_id: None,
            ttl_seconds: 60,
        },
    )
    .unwrap();
    assert_eq!(
        navaro_engine::domain::expire_holds(sim.est(), later).len(),
        1
    );
    assert!(awaits_payment(sim.est(), payment.hold_id));
}

#[test]
fn cancellations_refund_by_the_copied_policy_and_snapshots_keep_payments() {
    let policy = PaymentPolicy {
        cancel_window_minutes: 24 * 60,
        late_cancel_fee_cents: Some(1_000),
        ..deposit(30)
    };
    let (mut sim, service) = shop(policy);
    let cancel = |sim: &mut Sim, who: Caller, payment: &Payment| {
        sim.exec(
            who,
            Command::Cancel {
                booking_id: sim.est().payments[&payment.id].booking_id.unwrap(),
            },
        )
        .unwrap();
        (*sim.est().payments[&payment.id]).clone()
    };
    // Two days ahead: outside the 24-hour window, refunded in full.
    let early = checkout(&mut sim, customer(1), service, START);
    settle(&mut sim, &early, paid(&early)).unwrap();
    assert_eq!(
        cancel(&mut sim, customer(1), &early).refund_due_cents,
        1_500
    );
    // Tomorrow morning: inside it; the 10.00 fee is kept from the 15.00 paid.
    let late = checkout(&mut sim, customer(1), service, "2026-12-02T09:00:00Z");
    settle(&mut sim, &late, paid(&late)).unwrap();
    let snapshot = sim.est().to_snapshot();
    let restored = Establishment::restore(&snapshot).unwrap();
    assert_eq!(restored.payments, sim.est().payments);
    assert_eq!(restored.booking_payments, sim.est().booking_payments);
    assert_eq!(restored.open_payments, sim.est().open_payments);
    assert_eq!(restored.payment_policy, sim.est().payment_policy);
    let mut again = sim.with_state(restored);
    assert_eq!(cancel(&mut sim, customer(1), &late).refund_due_cents, 500);
    // The establishment cancelling refunds in full, even inside the window.
    assert_eq!(cancel(&mut again, owner(), &late).refund_due_cents, 1_500);
    // A fee larger than what was paid keeps what was paid, never more.
    let policy = PaymentPolicy {
        cancel_window_minutes: 24 * 60,
        late_cancel_fee_percent: Some(100),
        ..deposit(30)
    };
    sim.exec(
        owner(),
        Command::SetPaymentPolicy {
            policy,
            service_id: None,
        },
    )
    .unwrap();
    let all = checkout(&mut sim, customer(2), service, "2026-12-02T10:00:00Z");
    settle(&mut sim, &all, paid(&all)).unwrap();
    assert_eq!(cancel(&mut sim, customer(2), &all).refund_due_cents, 0);
}

#[test]
fn bad_policies_are_refused_naming_the_field() {
    let mut sim = Sim::new(settings("UTC"), NOW);
    let bad = [
        (deposit(0), "deposit_percent"),
        (
            PaymentPolicy {
                mode: PaymentMode::Deposit,
                ..PaymentPolicy::default()
            },
            "deposit_percent",
        ),
        (
            PaymentPolicy {
                deposit_cents: Some(100),
                ..deposit(10)
            },
            "deposit_percent",
        ),
        (
            PaymentPolicy {
                late_cancel_fee_percent: Some(101),
                ..deposit(10)
            },
            "late_cancel_fee_percent",
        ),
        (
            PaymentPolicy {
                cancel_window_minutes: 31 * 24 * 60,
                ..deposit(10)
            },
            "cancel_window_minutes",
        ),
    ];
    for (policy, field) in bad {
        let refused = sim
            .exec(
                owner(),
                Command::SetPaymentPolicy {
                    policy: policy.clone(),
                    service_id: None,
                },
            )
            .unwrap_err();
        assert_eq!(
            (refused.code, refused.field.as_deref()),
            (ErrorCode::InvalidRequest, Some(field)),
            "{policy:?}"
        );
    }
    let refused = sim
        .exec(
            staff_member(),
            Command::SetPaymentPolicy {
                policy: deposit(10),
                service_id: None,
            },
        )
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::Forbidden);
}
