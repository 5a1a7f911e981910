//! The booking rules, one behaviour per test, on the pure domain.

mod support;

use navaro_engine::domain::rules::MAX_AVAILABILITY_DAYS;
use navaro_protocol::{BookingStatus, Command, ErrorCode, HoldEnd, Reply, WeeklyHours};
use support::*;

/// A Sao Paulo barbershop on Monday 2026-11-30 at 08:00 local (-03:00), two barbers
/// working 09:00-12:00 and 13:00-18:00 on weekdays, a 30-minute cut with a 10-minute buffer.
fn shop() -> (
    Sim,
    [navaro_protocol::StaffId; 2],
    navaro_protocol::ServiceId,
) {
    let mut sim = Sim::new(settings("America/Sao_Paulo"), "2026-11-30T11:00:00Z");
    let hours = WeeklyHours::weekdays(&[("09:00", "12:00"), ("13:00", "18:00")]);
    let ana = sim.add_staff("Ana", hours.clone());
    let bruno = sim.add_staff("Bruno", hours);
    let cut = sim.add_service("Corte", 30, 10, &[ana, bruno]);
    (sim, [ana, bruno], cut)
}

#[test]
fn a_free_slot_books_and_then_is_taken() {
    let (mut sim, [ana, _], cut) = shop();
    let booking = sim
        .book(customer(1), cut, "2026-11-30T12:00:00Z", Some(ana))
        .unwrap();
    assert_eq!(booking.status, BookingStatus::Confirmed);
    assert_eq!(booking.end, ts("2026-11-30T12:30:00Z"));
    assert_eq!(booking.seq, sim.est().seq);
    let again = sim
        .book(customer(2), cut, "2026-11-30T12:00:00Z", Some(ana))
        .unwrap_err();
    assert_eq!(again.code, ErrorCode::SlotUnavailable);
    assert!(!again.alternatives.is_empty());
    // The nearest alternative is right after the booking plus its buffer, on the grid.
    assert_eq!(again.alternatives[0].start, ts("2026-11-30T12:45:00Z"));
    assert!(again.alternatives.len() <= 3);
}

#[test]
fn the_buffer_blocks_the_next_start_but_not_the_one_after() {
    let (mut sim, [ana, _], cut) = shop();
    sim.book(customer(1), cut, "2026-11-30T12:00:00Z", Some(ana))
        .unwrap();
    // 12:30 would start inside the 10-minute buffer.
    let err = sim
        .book(customer(2), cut, "2026-11-30T12:30:00Z", Some(ana))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::SlotUnavailable);
    sim.book(customer(2), cut, "2026-11-30T12:45:00Z", Some(ana))
        .unwrap();
    // 10:30 local would run its buffer (11:00-11:10) into an 11:00 booking.
    sim.book(customer(3), cut, "2026-11-30T14:00:00Z", Some(ana))
        .unwrap();
    let err = sim
        .book(customer(4), cut, "2026-11-30T13:30:00Z", Some(ana))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::SlotUnavailable);
}

#[test]
fn any_staff_spreads_load_and_fills_up() {
    let (mut sim, [ana, bruno], cut) = shop();
    let first = sim
        .book(customer(1), cut, "2026-11-30T12:00:00Z", None)
        .unwrap();
    let second = sim
        .book(customer(2), cut, "2026-11-30T12:00:00Z", None)
        .unwrap();
    assert_ne!(first.staff_id, second.staff_id);
    assert!([ana, bruno].contains(&first.staff_id));
    let third = sim
        .book(customer(3), cut, "2026-11-30T12:00:00Z", None)
        .unwrap_err();
    assert_eq!(third.code, ErrorCode::SlotUnavailable);
    // Another slot goes to whoever has fewer bookings that day.
    sim.book(customer(4), cut, "2026-11-30T13:00:00Z", Some(ana))
        .unwrap();
    let fifth = sim
        .book(customer(5), cut, "2026-11-30T14:00:00Z", None)
        .unwrap();
    assert_eq!(fifth.staff_id, bruno);
}

#[test]
fn timing_rules_each_have_their_code() {
    let (mut sim, [ana, _], cut) = shop();
    let code = |sim: &mut Sim, start: &str| {
        sim.book(customer(1), cut, start, Some(ana))
            .unwrap_err()
            .code
    };
    assert_eq!(
        code(&mut sim, "2026-11-30T11:00:00Z"),
        ErrorCode::OutsideHours
    ); // 08:00 local
    assert_eq!(
        code(&mut sim, "2026-11-30T15:00:00Z"),
        ErrorCode::OutsideHours
    ); // lunch
    assert_eq!(
        code(&mut sim, "2026-11-30T20:45:00Z"),
        ErrorCode::OutsideHours
    ); // ends past 18:00
    assert_eq!(code(&mut sim, "2026-11-30T12:05:00Z"), ErrorCode::NotOnGrid);
    assert_eq!(code(&mut sim, "2026-11-30T12:00:30Z"), ErrorCode::NotOnGrid);
    assert_eq!(code(&mut sim, "2026-11-29T12:00:00Z"), ErrorCode::TooSoon); // the past
    assert_eq!(code(&mut sim, "2027-03-01T12:00:00Z"), ErrorCode::TooFar); // > 60 days
    assert_eq!(
        code(&mut sim, "2026-12-05T12:00:00Z"),
        ErrorCode::OutsideHours
    ); // Saturday
}

#[test]
fn minimum_notice_applies() {
    let (mut sim, [ana, _], cut) = shop();
    sim.exec(
        owner(),
        Command::UpdateSettings {
            patch: navaro_protocol::SettingsPatch {
                min_notice_minutes: Some(120),
                ..Default::default()
            },
        },
    )
    .unwrap();
    sim.now = ts("2026-11-30T12:00:00Z");
    let err = sim
        .book(customer(1), cut, "2026-11-30T13:45:00Z", Some(ana))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TooSoon);
    sim.book(customer(1), cut, "2026-11-30T14:00:00Z", Some(ana))
        .unwrap();
    assert!(
        sim.starts(cut, "2026-11-30", 1, Some(ana))
            .iter()
            .all(|s| s.as_str() >= "2026-11-30T14:00:00Z")
    );
}

#[test]
fn time_off_blocks_its_range() {
    let (mut sim, [ana, _], cut) = shop();
    sim.exec(
        owner(),
        Command::AddTimeOff {
            staff_id: ana,
            start: ts("2026-11-30T12:00:00Z"),
            end: ts("2026-11-30T13:00:00Z"),
            reason: Some("dentist".into()),
        },
    )
    .unwrap();
    let err = sim
        .book(customer(1), cut, "2026-11-30T12:30:00Z", Some(ana))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::OutsideHours);
    sim.book(customer(1), cut, "2026-11-30T13:00:00Z", Some(ana))
        .unwrap();
}

#[test]
fn the_per_customer_cap_stops_hoarding() {
    let (mut sim, [ana, _], cut) = shop();
    sim.exec(
        owner(),
        Command::UpdateSettings {
            patch: navaro_protocol::SettingsPatch {
                max_future_bookings_per_customer: Some(2),
                ..Default::default()
            },
        },
    )
    .unwrap();
    sim.book(customer(1), cut, "2026-11-30T12:00:00Z", Some(ana))
        .unwrap();
    sim.book(customer(1), cut, "2026-11-30T13:00:00Z", Some(ana))
        .unwrap();
    let err = sim
        .book(customer(1), cut, "2026-11-30T17:00:00Z", Some(ana))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::LimitReached);
    // Another customer is not affected; a past booking no longer counts.
    sim.book(customer(2), cut, "2026-11-30T17:00:00Z", Some(ana))
        .unwrap();
    sim.now = ts("2026-11-30T12:10:00Z");
    sim.book(customer(1), cut, "2026-11-30T18:00:00Z", Some(ana))
        .unwrap();
}

#[test]
fn customers_cancel_their_own_before_the_cutoff_members_any_time() {
    let (mut sim, [ana, _], cut) = shop();
    sim.exec(
        owner(),
        Command::UpdateSettings {
            patch: navaro_protocol::SettingsPatch {
                cancel_cutoff_minutes: Some(60),
                ..Default::default()
            },
        },
    )
    .unwrap();
    let booking = sim
        .book(customer(1), cut, "2026-11-30T13:00:00Z", Some(ana))
        .unwrap();
    let other = sim
        .exec(
            customer(2),
            Command::Cancel {
                booking_id: booking.id,
            },
        )
        .unwrap_err();
    assert_eq!(
        other.code,
        ErrorCode::NotFound,
        "another customer learns nothing of it"
    );
    sim.now = ts("2026-11-30T12:01:00Z");
    let late = sim
        .exec(
            customer(1),
            Command::Cancel {
                booking_id: booking.id,
            },
        )
        .unwrap_err();
    assert_eq!(late.code, ErrorCode::CancelCutoffPassed);
    let Reply::Booking(cancelled) = sim
        .exec(
            staff_member(),
            Command::Cancel {
                booking_id: booking.id,
            },
        )
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    let twice = sim
        .exec(
            staff_member(),
            Command::Cancel {
                booking_id: booking.id,
            },
        )
        .unwrap_err();
    assert_eq!(twice.code, ErrorCode::Conflict);
    // The slot is free again.
    sim.book(customer(3), cut, "2026-11-30T13:00:00Z", Some(ana))
        .unwrap();
}

#[test]
fn reschedule_moves_atomically_or_not_at_all() {
    let (mut sim, [ana, bruno], cut) = shop();
    let mine = sim
        .book(customer(1), cut, "2026-11-30T12:00:00Z", Some(ana))
        .unwrap();
    sim.book(customer(2), cut, "2026-11-30T13:00:00Z", Some(ana))
        .unwrap();
    sim.book(customer(3), cut, "2026-11-30T13:00:00Z", Some(bruno))
        .unwrap();
    let before = sim.est().seq;
    let err = sim
        .exec(
            customer(1),
            Command::Reschedule {
                booking_id: mine.id,
                start: ts("2026-11-30T13:00:00Z"),
                staff_id: None,
            },
        )
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::SlotUnavailable);
    assert_eq!(sim.est().seq, before, "a refused move changes nothing");
    assert_eq!(sim.est().bookings[&mine.id].start, mine.start);
    // Moving onto an overlapping part of its own old slot is allowed.
    let Reply::Booking(moved) = sim
        .exec(
            customer(1),
            Command::Reschedule {
                booking_id: mine.id,
                start: ts("2026-11-30T12:15:00Z"),
                staff_id: None,
            },
        )
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(moved.start, ts("2026-11-30T12:15:00Z"));
    assert_eq!(
        moved.staff_id, ana,
        "the current staff member is kept when free"
    );
    sim.book(customer(4), cut, "2026-11-30T12:00:00Z", Some(bruno))
        .unwrap();
    let err = sim
        .book(customer(5), cut, "2026-11-30T12:15:00Z", Some(ana))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::SlotUnavailable);
}

#[test]
fn holds_block_until_confirmed_released_or_expired() {
    let (mut sim, [ana, _], cut) = shop();
    let place = |sim: &mut Sim, who| {
        sim.exec(
            who,
            Command::PlaceHold {
                service_id: cut,
                start: ts("2026-11-30T12:00:00Z"),
                staff_id: Some(ana),
                ttl_seconds: 300,
            },
        )
    };
    let Reply::Hold(hold) = place(&mut sim, customer(1)).unwrap() else {
        panic!()
    };
    assert_eq!(
        place(&mut sim, customer(2)).unwrap_err().code,
        ErrorCode::SlotUnavailable
    );
    assert!(
        !sim.starts(cut, "2026-11-30", 1, Some(ana))
            .contains(&"2026-11-30T12:00:00Z".to_string())
    );
    // Another customer cannot confirm it.
    assert_eq!(
        sim.exec(customer(2), Command::ConfirmHold { hold_id: hold.id })
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    // Expired: the slot is offered and bookable again, and the hold cannot be confirmed.
    sim.now = ts("2026-11-30T11:05:00Z");
    assert!(
        sim.starts(cut, "2026-11-30", 1, Some(ana))
            .contains(&"2026-11-30T12:00:00Z".to_string())
    );
    assert_eq!(
        sim.exec(customer(1), Command::ConfirmHold { hold_id: hold.id })
            .unwrap_err()
            .code,
        ErrorCode::HoldExpired
    );
    let booking = sim
        .book(customer(2), cut, "2026-11-30T12:00:00Z", Some(ana))
        .unwrap();
    assert!(
        !sim.est().holds.contains_key(&hold.id),
        "booking over a lapsed hold ends it"
    );
    assert_eq!(booking.seq, sim.est().seq);
    // A hold confirmed in time becomes the booking.
    let Reply::Hold(hold) = sim
        .exec(
            customer(3),
            Command::PlaceHold {
                service_id: cut,
                start: ts("2026-11-30T13:00:00Z"),
                staff_id: None,
                ttl_seconds: 60,
            },
        )
        .unwrap()
    else {
        panic!()
    };
    let Reply::Booking(confirmed) = sim
        .exec(customer(3), Command::ConfirmHold { hold_id: hold.id })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (confirmed.start, confirmed.staff_id),
        (hold.start, hold.staff_id)
    );
    assert!(sim.est().holds.is_empty());
    // Released holds free their slot at once.
    let Reply::Hold(hold) = sim
        .exec(
            customer(4),
            Command::PlaceHold {
                service_id: cut,
                start: ts("2026-11-30T17:00:00Z"),
                staff_id: Some(ana),
                ttl_seconds: 60,
            },
        )
        .unwrap()
    else {
        panic!()
    };
    let Reply::Hold(ended) = sim
        .exec(customer(4), Command::ReleaseHold { hold_id: hold.id })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(ended.id, hold.id);
    sim.book(customer(5), cut, "2026-11-30T17:00:00Z", Some(ana))
        .unwrap();
    let expired = navaro_engine::domain::expire_holds(sim.est(), sim.now);
    assert!(expired.iter().all(|e| matches!(
        e,
        navaro_protocol::Event::HoldEnded {
            reason: HoldEnd::Expired,
            ..
        }
    )));
}

#[test]
fn completion_and_no_show_are_for_members_after_the_start() {
    let (mut sim, [ana, _], cut) = shop();
    let booking = sim
        .book(customer(1), cut, "2026-11-30T12:00:00Z", Some(ana))
        .unwrap();
    assert_eq!(
        sim.exec(
            customer(1),
            Command::MarkCompleted {
                booking_id: booking.id
            }
        )
        .unwrap_err()
        .code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        sim.exec(
            staff_member(),
            Command::MarkNoShow {
                booking_id: booking.id
            }
        )
        .unwrap_err()
        .code,
        ErrorCode::Conflict
    );
    sim.now = ts("2026-11-30T12:40:00Z");
    let Reply::Booking(done) = sim
        .exec(
            staff_member(),
            Command::MarkCompleted {
                booking_id: booking.id,
            },
        )
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(done.status, BookingStatus::Completed);
}

#[test]
fn only_managers_change_the_setup() {
    let (mut sim, [ana, _], _) = shop();
    let hours = WeeklyHours::weekdays(&[("10:00", "11:00")]);
    for who in [customer(1), staff_member()] {
        let err = sim
            .exec(
                who,
                Command::SetStaffHours {
                    staff_id: ana,
                    hours: hours.clone(),
                },
            )
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Forbidden);
    }
    sim.exec(
        owner(),
        Command::SetStaffHours {
            staff_id: ana,
            hours,
        },
    )
    .unwrap();
}

#[test]
fn customers_book_only_for_themselves() {
    let (mut sim, [ana, _], cut) = shop();
    let for_someone = Command::Book {
        service_id: cut,
        start: ts("2026-11-30T12:00:00Z"),
        staff_id: Some(ana),
        customer_id: Some(customer(9).user_id),
        promotion: None,
    };
    assert_eq!(
        sim.exec(customer(1), for_someone.clone()).unwrap_err().code,
        ErrorCode::Forbidden
    );
    let Reply::Booking(b) = sim.exec(staff_member(), for_someone).unwrap() else {
        panic!()
    };
    assert_eq!(b.customer_id, customer(9).user_id);
}

#[test]
fn availability_lists_each_start_with_its_free_staff() {
    let (mut sim, [ana, bruno], cut) = shop();
    let slots = sim.availability(cut, "2026-11-30", 1, None).unwrap();
    // 09:00-11:20 (every 15 min while 40 min fits before 12:00) and 13:00-17:20.
    assert_eq!(slots.len(), 10 + 18);
    assert!(slots.iter().all(|s| s.staff_ids[..] == [ana, bruno]));
    sim.book(customer(1), cut, "2026-11-30T12:00:00Z", Some(ana))
        .unwrap();
    let slots = sim.availability(cut, "2026-11-30", 1, None).unwrap();
    let nine = slots
        .iter()
        .find(|s| s.start == ts("2026-11-30T12:00:00Z"))
        .unwrap();
    assert_eq!(nine.staff_ids[..], [bruno]);
    // Bruno still offers 09:00-09:30 local, so no start disappears for "anyone"...
    assert_eq!(
        sim.availability(cut, "2026-11-30", 7, None).unwrap().len(),
        28 * 5
    );
    // ... but Ana loses the three starts her booking and its buffer cover.
    assert_eq!(
        sim.availability(cut, "2026-11-30", 7, Some(ana))
            .unwrap()
            .len(),
        28 * 5 - 3
    );
    assert_eq!(
        sim.availability(cut, "2026-11-30", MAX_AVAILABILITY_DAYS + 1, None)
            .unwrap_err()
            .field
            .as_deref(),
        Some("days")
    );
}

#[test]
fn availability_reuses_the_days_no_event_or_expiry_touched() {
    let (mut sim, [ana, _], cut) = shop();
    let counts = |sim: &Sim| sim.est().day_cache_counts();
    let week = |sim: &Sim| sim.availability(cut, "2026-11-30", 7, None).unwrap();
    let first = week(&sim);
    assert_eq!((counts(&sim).reused, counts(&sim).computed), (0, 7));
    assert_eq!(week(&sim), first);
    assert_eq!((counts(&sim).reused, counts(&sim).computed), (7, 7));
    // A booking at 13:00 local on Wednesday (16:00 UTC): the local days whose instants
    // reach into that UTC day, Tuesday and Wednesday in UTC-3, are computed again.
    sim.book(customer(1), cut, "2026-12-02T16:00:00Z", Some(ana))
        .unwrap();
    let booked = week(&sim);
    assert_eq!((counts(&sim).reused, counts(&sim).computed), (12, 9));
    assert_ne!(booked, first);
    // A hold blocks Thursday until it expires, and no event says when it does: only
    // Thursday is computed again once it has.
    let hold = Command::PlaceHold {
        service_id: cut,
        start: ts("2026-12-03T13:00:00Z"),
        staff_id: Some(ana),
        ttl_seconds: 300,
    };
    sim.exec(customer(2), hold).unwrap();
    let held = week(&sim);
    assert_eq!((counts(&sim).reused, counts(&sim).computed), (17, 11));
    sim.now = ts("2026-11-30T11:05:01Z");
    let lapsed = week(&sim);
    assert_eq!((counts(&sim).reused, counts(&sim).computed), (23, 12));
    assert_ne!(lapsed, held);
    assert_eq!(lapsed, booked);
    // Time off changes what every day can offer: the whole week is computed again.
    sim.exec(
        owner(),
        Command::AddTimeOff {
            staff_id: ana,
            start: ts("2026-12-04T12:00:00Z"),
            end: ts("2026-12-04T13:00:00Z"),
            reason: None,
        },
    )
    .unwrap();
    week(&sim);
    assert_eq!((counts(&sim).reused, counts(&sim).computed), (23, 19));
    // So do new hours (each answer is also checked against a fresh sweep).
    let shorter = WeeklyHours::weekdays(&[("10:00", "12:00")]);
    sim.exec(
        owner(),
        Command::SetStaffHours {
            staff_id: ana,
            hours: shorter,
        },
    )
    .unwrap();
    assert_ne!(week(&sim), lapsed);
    assert_eq!((counts(&sim).reused, counts(&sim).computed), (23, 26));
}

fn admin() -> navaro_protocol::Caller {
    navaro_protocol::Caller {
        user_id: navaro_protocol::UserId(uuid::Uuid::from_u128(0xAD)),
        role: navaro_protocol::Role::Admin,
    }
}

#[test]
fn a_suspension_refuses_new_bookings_holds_and_walk_ins_and_keeps_the_rest() {
    let (mut sim, [ana, _], cut) = shop();
    let kept = sim
        .book(customer(1), cut, "2026-11-30T12:00:00Z", Some(ana))
        .unwrap();
    let suspend = Command::Suspend {
        reason: "unpaid fees".into(),
    };
    // Only platform admins suspend, with a reason.
    for caller in [owner(), staff_member(), customer(1)] {
        let err = sim.exec(caller, suspend.clone()).unwrap_err();
        assert_eq!(err.code, ErrorCode::Forbidden);
    }
    let err = sim
        .exec(admin(), Command::Suspend { reason: " ".into() })
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("reason"));
    sim.exec(admin(), suspend.clone()).unwrap();
    assert_eq!(sim.est().suspended.as_deref(), Some("unpaid fees"));
    assert_eq!(
        sim.exec(admin(), suspend).unwrap_err().code,
        ErrorCode::Conflict
    );
    let err = sim
        .book(customer(2), cut, "2026-11-30T14:00:00Z", Some(ana))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::EstablishmentSuspended);
    assert!(err.message.contains("unpaid fees"));
    let hold = Command::PlaceHold {
        service_id: cut,
        start: ts("2026-11-30T14:00:00Z"),
        staff_id: None,
        ttl_seconds: 300,
    };
    assert_eq!(
        sim.exec(customer(2), hold.clone()).unwrap_err().code,
        ErrorCode::EstablishmentSuspended
    );
    let join = Command::JoinQueue {
        service_id: cut,
        staff_id: None,
        name: None,
    };
    assert_eq!(
        sim.exec(customer(3), join.clone()).unwrap_err().code,
        ErrorCode::EstablishmentSuspended
    );
    // The existing booking stays, and its customer may still cancel it.
    assert!(sim.est().bookings.contains_key(&kept.id));
    sim.exec(
        customer(1),
        Command::Cancel {
            booking_id: kept.id,
        },
    )
    .unwrap();
    // Reinstated: all of it works again; reinstating twice is a conflict.
    let reinstate = Command::Reinstate {
        reason: "paid".into(),
    };
    sim.exec(admin(), reinstate.clone()).unwrap();
    assert_eq!(
        sim.exec(admin(), reinstate).unwrap_err().code,
        ErrorCode::Conflict
    );
    sim.exec(customer(2), hold).unwrap();
    sim.exec(customer(3), join).unwrap();
}

#[test]
fn a_suspension_survives_a_snapshot() {
    let (mut sim, _, _) = shop();
    sim.exec(
        admin(),
        Command::Suspend {
            reason: "review".into(),
        },
    )
    .unwrap();
    let snapshot = sim.est().to_snapshot();
    let restored = navaro_engine::domain::state::Establishment::restore(&snapshot).unwrap();
    assert_eq!(restored.suspended.as_deref(), Some("review"));
}
