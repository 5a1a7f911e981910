//! Cards on file and fees, pure: the policy copied onto each booking (per service, per
//! kind of customer), one fee per (booking, fee) whatever is retried, attempts claimed
//! one at a time, late-cancellation fees by policy, waivers, and snapshots.

mod support;

use navaro_engine::domain::Establishment;
use navaro_engine::domain::fees::fee_of;
use navaro_protocol::{
    BookingId, BookingStatus, Caller, Command, ErrorCode, FeeKind, Payment, PaymentKind,
    PaymentMode, PaymentOutcome, PaymentPolicy, PaymentStatus, PolicyAudience, Reply, Role,
    ServiceId, UserId, WeeklyHours,
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

fn card_on_file() -> PaymentPolicy {
    PaymentPolicy {
        mode: PaymentMode::CardOnFile,
        no_show_fee_percent: Some(40),
        cancel_window_minutes: 24 * 60,
        late_cancel_fee_cents: Some(1_500),
        ..PaymentPolicy::default()
    }
}

fn shop(policy: PaymentPolicy) -> (Sim, ServiceId) {
    let mut sim = Sim::new(settings("UTC"), NOW);
    let staff = sim.add_staff("Carlos", WeeklyHours::every_day(&[("08:00", "20:00")]));
    let service = sim.add_service("Corte", 30, 0, &[staff]); // 50.00
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

fn save_card(sim: &mut Sim, who: &Caller) {
    sim.exec(
        system(),
        Command::SaveCard {
            customer_id: who.user_id,
            customer_ref: "cus_1".into(),
            payment_method_ref: "pm_1".into(),
            setup_ref: format!("seti_{}", who.user_id.0.as_u128()),
        },
    )
    .unwrap();
}

fn payment(reply: Result<Reply, navaro_protocol::Rejection>) -> Result<Payment, ErrorCode> {
    match reply {
        Ok(Reply::Payment(p)) => Ok(p),
        Ok(other) => panic!("{other:?}"),
        Err(r) => Err(r.code),
    }
}

/// A member books for a customer (a phone booking).
fn book_for(
    sim: &mut Sim,
    service: ServiceId,
    start: &str,
    who: UserId,
) -> navaro_protocol::Booking {
    match sim.exec(
        owner(),
        Command::Book {
            service_id: service,
            start: ts(start),
            staff_id: None,
            customer_id: Some(who),
            promotion: None,
        },
    ) {
        Ok(Reply::Booking(b)) => b,
        other => panic!("{other:?}"),
    }
}

fn no_show(sim: &mut Sim, booking: BookingId) {
    sim.now = ts("2026-12-03T12:00:00Z");
    sim.exec(
        staff_member(),
        Command::MarkNoShow {
            booking_id: booking,
        },
    )
    .unwrap();
}

#[test]
fn a_card_is_needed_to_book_and_the_policy_is_copied_onto_the_booking() {
    let (mut sim, service) = shop(card_on_file());
    let refused = sim.book(customer(1), service, START, None).unwrap_err();
    assert_eq!(refused.code, ErrorCode::PaymentRequired);
    save_card(&mut sim, &customer(1));
    let booking = sim.book(customer(1), service, START, None).unwrap();
    assert_eq!(booking.payment_policy.as_deref(), Some(&card_on_file()));
    // A later change of policy does not change what the customer agreed to.
    sim.exec(
        owner(),
        Command::SetPaymentPolicy {
            policy: PaymentPolicy::default(),
            service_id: None,
        },
    )
    .unwrap();
    let kept = &sim.est().bookings[&booking.id];
    assert_eq!(kept.payment_policy.as_deref(), Some(&card_on_file()));
    // A member may book for a customer without a card (by phone): no fee can follow.
    sim.exec(
        owner(),
        Command::SetPaymentPolicy {
            policy: card_on_file(),
            service_id: None,
        },
    )
    .unwrap();
    let phone = book_for(
        &mut sim,
        service,
        "2026-12-03T11:00:00Z",
        customer(2).user_id,
    );
    no_show(&mut sim, phone.id);
    let open = sim.exec(
        staff_member(),
        Command::OpenFee {
            booking_id: phone.id,
            fee: FeeKind::NoShow,
        },
    );
    assert_eq!(payment(open), Err(ErrorCode::Conflict));
}

#[test]
fn one_no_show_fee_per_booking_and_one_attempt_in_flight_at_a_time() {
    let (mut sim, service) = shop(card_on_file());
    save_card(&mut sim, &customer(1));
    let booking = sim.book(customer(1), service, START, None).unwrap();
    let open = |sim: &mut Sim, who: Caller| {
        payment(sim.exec(
            who,
            Command::OpenFee {
                booking_id: booking.id,
                fee: FeeKind::NoShow,
            },
        ))
    };
    assert_eq!(
        open(&mut sim, staff_member()),
        Err(ErrorCode::Conflict),
        "not a no-show yet"
    );
    no_show(&mut sim, booking.id);
    assert_eq!(open(&mut sim, customer(1)), Err(ErrorCode::Forbidden));
    let fee = open(&mut sim, staff_member()).unwrap();
    assert_eq!(
        (fee.kind, fee.amount_cents, fee.status, fee.booking_id),
        (
            PaymentKind::NoShowFee,
            2_000,
            PaymentStatus::RequiresPayment,
            Some(booking.id)
        )
    );
    // A second open (a retry, a concurrent request) is refused: one fee, ever.
    assert_eq!(open(&mut sim, owner()), Err(ErrorCode::Conflict));
    let claim = |sim: &mut Sim, who: Caller| {
        payment(sim.exec(
            who,
            Command::ClaimFeeAttempt {
                payment_id: fee.id,
                lease_seconds: 30,
            },
        ))
    };
    assert_eq!(claim(&mut sim, owner()), Err(ErrorCode::Forbidden));
    let first = claim(&mut sim, system()).unwrap();
    assert_eq!(first.attempt, 1);
    assert_eq!(
        claim(&mut sim, system()),
        Err(ErrorCode::Conflict),
        "one attempt in flight at a time"
    );
    // Its lease passed (its process died): another may be claimed.
    sim.now = ts("2026-12-03T12:01:00Z");
    let second = claim(&mut sim, system()).unwrap();
    assert_eq!(second.attempt, 2);
    let charged = payment(sim.exec(
        system(),
        Command::SettlePayment {
            payment_id: fee.id,
            outcome: PaymentOutcome::Succeeded {
                provider_ref: "pi_1".into(),
                amount_cents: 2_000,
            },
        },
    ))
    .unwrap();
    assert_eq!(charged.status, PaymentStatus::Succeeded);
    assert_eq!(charged.attempt_started_at, None);
    // Charged: no further attempt, no second success, no waiver.
    assert_eq!(claim(&mut sim, system()), Err(ErrorCode::Conflict));
    let again = sim.exec(
        system(),
        Command::SettlePayment {
            payment_id: fee.id,
            outcome: PaymentOutcome::Succeeded {
                provider_ref: "pi_2".into(),
                amount_cents: 2_000,
            },
        },
    );
    assert_eq!(payment(again), Err(ErrorCode::Conflict));
    let waive = sim.exec(staff_member(), Command::WaiveFee { payment_id: fee.id });
    assert_eq!(payment(waive), Err(ErrorCode::Conflict));

    // Snapshots keep the card, the fee and its uniqueness.
    let restored = Establishment::restore(&sim.est().to_snapshot()).unwrap();
    assert_eq!(
        fee_of(&restored, booking.id, FeeKind::NoShow).map(|p| p.status),
        Some(PaymentStatus::Succeeded)
    );
    assert!(restored.cards.contains_key(&customer(1).user_id));
    let mut sim = sim.with_state(restored);
    assert_eq!(open(&mut sim, owner()), Err(ErrorCode::Conflict));
}

#[test]
fn a_late_cancellation_opens_its_fee_by_policy_and_a_member_may_waive_it() {
    let mut policy = card_on_file();
    policy.late_cancel_fee_needs_confirmation = true;
    let (mut sim, service) = shop(policy);
    save_card(&mut sim, &customer(1));
    // Outside the window (more than 24 h before): no fee.
    let early = sim
        .book(customer(1), service, "2026-12-03T10:00:00Z", None)
        .unwrap();
    sim.exec(
        customer(1),
        Command::Cancel {
            booking_id: early.id,
        },
    )
    .unwrap();
    assert!(fee_of(sim.est(), early.id, FeeKind::LateCancel).is_none());
    // Inside it: the fee waits for a member.
    let late = sim
        .book(customer(1), service, "2026-12-02T09:00:00Z", None)
        .unwrap();
    let cancelled = sim.exec(
        customer(1),
        Command::Cancel {
            booking_id: late.id,
        },
    );
    assert!(matches!(cancelled, Ok(Reply::Booking(b)) if b.status == BookingStatus::Cancelled));
    let fee = fee_of(sim.est(), late.id, FeeKind::LateCancel)
        .unwrap()
        .clone();
    assert_eq!(
        (fee.status, fee.amount_cents),
        (PaymentStatus::RequiresConfirmation, 1_500)
    );
    assert!(
        !navaro_engine::domain::payments::has_open_payments(sim.est()),
        "waiting for a member is not the server's to do"
    );
    let waived = payment(sim.exec(staff_member(), Command::WaiveFee { payment_id: fee.id }));
    assert_eq!(waived.unwrap().status, PaymentStatus::Waived);
    let charge = sim.exec(
        system(),
        Command::ClaimFeeAttempt {
            payment_id: fee.id,
            lease_seconds: 30,
        },
    );
    assert_eq!(payment(charge), Err(ErrorCode::Conflict), "waived for good");
    // The establishment cancelling is never late for the customer.
    let by_shop = sim
        .book(customer(1), service, "2026-12-02T10:00:00Z", None)
        .unwrap();
    sim.exec(
        owner(),
        Command::Cancel {
            booking_id: by_shop.id,
        },
    )
    .unwrap();
    assert!(fee_of(sim.est(), by_shop.id, FeeKind::LateCancel).is_none());
    // Without confirmation, the fee is due at once (the server charges it).
    sim.exec(
        owner(),
        Command::SetPaymentPolicy {
            policy: card_on_file(),
            service_id: None,
        },
    )
    .unwrap();
    let auto = sim
        .book(customer(1), service, "2026-12-02T11:00:00Z", None)
        .unwrap();
    sim.exec(
        customer(1),
        Command::Cancel {
            booking_id: auto.id,
        },
    )
    .unwrap();
    let fee = fee_of(sim.est(), auto.id, FeeKind::LateCancel).unwrap();
    assert_eq!(fee.status, PaymentStatus::RequiresPayment);
    assert!(navaro_engine::domain::payments::has_open_payments(
        sim.est()
    ));
}

#[test]
fn policies_per_service_and_per_kind_of_customer() {
    let (mut sim, service) = shop(PaymentPolicy::default());
    let staff = sim.est().staff[0].info.id;
    let other = sim.add_service("Barba", 30, 0, &[staff]);
    let only_no_shows = PaymentPolicy {
        applies_to: PolicyAudience::PastNoShows,
        ..card_on_file()
    };
    sim.exec(
        owner(),
        Command::SetPaymentPolicy {
            policy: only_no_shows.clone(),
            service_id: Some(service),
        },
    )
    .unwrap();
    // A customer with no past no-show books freely, without a card; nothing is copied.
    let first = sim.book(customer(1), service, START, None).unwrap();
    assert_eq!(first.payment_policy, None);
    no_show(&mut sim, first.id);
    // Now they have a no-show here: the service's policy applies to them...
    let refused = sim
        .book(customer(1), service, "2026-12-04T10:00:00Z", None)
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::PaymentRequired);
    // ... but not on the other service, which follows the establishment's (none).
    sim.book(customer(1), other, "2026-12-04T10:00:00Z", None)
        .unwrap();
    save_card(&mut sim, &customer(1));
    let second = sim
        .book(customer(1), service, "2026-12-04T11:00:00Z", None)
        .unwrap();
    assert_eq!(second.payment_policy.as_deref(), Some(&only_no_shows));
    // New customers only: one with a completed visit is no longer new.
    let new_only = PaymentPolicy {
        applies_to: PolicyAudience::NewCustomers,
        ..card_on_file()
    };
    sim.exec(
        owner(),
        Command::SetPaymentPolicy {
            policy: new_only,
            service_id: Some(other),
        },
    )
    .unwrap();
    let refused = sim
        .book(customer(2), other, "2026-12-05T10:00:00Z", None)
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::PaymentRequired, "new here");
    let visit = book_for(&mut sim, other, "2026-12-05T10:00:00Z", customer(2).user_id);
    sim.now = ts("2026-12-05T10:40:00Z");
    sim.exec(
        owner(),
        Command::MarkCompleted {
            booking_id: visit.id,
        },
    )
    .unwrap();
    let free = sim
        .book(customer(2), other, "2026-12-06T10:00:00Z", None)
        .unwrap();
    assert_eq!(free.payment_policy, None, "no longer new");
    // Clearing the service's policy: it follows the establishment's again.
    sim.exec(
        owner(),
        Command::ClearServicePaymentPolicy { service_id: other },
    )
    .unwrap();
    assert!(!sim.est().service_policies.contains_key(&other));
    let records = Establishment::restore(&sim.est().to_snapshot())
        .unwrap()
        .customer_records;
    assert_eq!(records[&customer(1).user_id].no_shows, 1);
    assert_eq!(records[&customer(2).user_id].completed, 1);
}
