//! Every settings and command field refuses bad input with a clear code and the field's
//! name, and leaves the state unchanged.

mod support;

use navaro_engine::domain::{self, Context};
use navaro_protocol::{Command, ErrorCode, EstablishmentSettings, SettingsPatch, WeeklyHours};
use support::*;
use uuid::Uuid;

fn create(settings: EstablishmentSettings) -> navaro_protocol::Rejection {
    let command = Command::CreateEstablishment { settings };
    domain::decide_create(
        navaro_protocol::EstablishmentId(Uuid::nil()),
        &owner(),
        &command,
    )
    .unwrap_err()
}

fn assert_field(rejection: navaro_protocol::Rejection, code: ErrorCode, field: &str) {
    assert_eq!(rejection.code, code, "{rejection:?}");
    assert_eq!(rejection.field.as_deref(), Some(field), "{rejection:?}");
    assert!(!rejection.message.is_empty());
}

#[test]
fn settings_are_checked_field_by_field() {
    let ok = settings("America/Sao_Paulo");
    let cases: Vec<(EstablishmentSettings, &str)> = vec![
        (
            EstablishmentSettings {
                timezone: "Mars/Olympus_Mons".into(),
                ..ok.clone()
            },
            "timezone",
        ),
        (
            EstablishmentSettings {
                timezone: String::new(),
                ..ok.clone()
            },
            "timezone",
        ),
        (
            EstablishmentSettings {
                name: "   ".into(),
                ..ok.clone()
            },
            "name",
        ),
        (
            EstablishmentSettings {
                name: "x".repeat(201),
                ..ok.clone()
            },
            "name",
        ),
        (
            EstablishmentSettings {
                slot_minutes: 7,
                ..ok.clone()
            },
            "slot_minutes",
        ),
        (
            EstablishmentSettings {
                slot_minutes: 45,
                ..ok.clone()
            },
            "slot_minutes",
        ),
        (
            EstablishmentSettings {
                slot_minutes: 0,
                ..ok.clone()
            },
            "slot_minutes",
        ),
        (
            EstablishmentSettings {
                horizon_days: 0,
                ..ok.clone()
            },
            "horizon_days",
        ),
        (
            EstablishmentSettings {
                horizon_days: 400,
                ..ok.clone()
            },
            "horizon_days",
        ),
        (
            EstablishmentSettings {
                min_notice_minutes: 50_000,
                ..ok.clone()
            },
            "min_notice_minutes",
        ),
        (
            EstablishmentSettings {
                cancel_cutoff_minutes: 50_000,
                ..ok.clone()
            },
            "cancel_cutoff_minutes",
        ),
        (
            EstablishmentSettings {
                max_future_bookings_per_customer: 0,
                ..ok.clone()
            },
            "max_future_bookings_per_customer",
        ),
    ];
    for (settings, field) in cases {
        assert_field(create(settings), ErrorCode::InvalidRequest, field);
    }
}

#[test]
fn hours_must_be_ordered_disjoint_local_times() {
    let mut sim = Sim::new(settings("America/Sao_Paulo"), "2026-11-30T11:00:00Z");
    let bad = |ranges: &[(&str, &str)]| WeeklyHours {
        tue: ranges
            .iter()
            .map(|(a, b)| [a.to_string(), b.to_string()])
            .collect(),
        ..Default::default()
    };
    let cases = [
        (
            bad(&[("09:00", "12:00"), ("11:00", "13:00")]),
            "hours.tue[1]",
        ), // overlapping
        (
            bad(&[("13:00", "18:00"), ("09:00", "12:00")]),
            "hours.tue[1]",
        ), // unordered
        (bad(&[("12:00", "09:00")]), "hours.tue[0]"), // backwards / overnight
        (bad(&[("09:00", "09:00")]), "hours.tue[0]"), // empty
        (bad(&[("9:00", "12:00")]), "hours.tue[0]"),  // not HH:MM
        (bad(&[("09:60", "12:00")]), "hours.tue[0]"),
        (bad(&[("24:00", "24:00")]), "hours.tue[0]"), // 24:00 only as an end
        (bad(&[("09:00", "24:30")]), "hours.tue[0]"),
        (bad(&[("09:00", "12:00 ")]), "hours.tue[0]"),
    ];
    let before = sim.est().seq;
    for (hours, field) in cases {
        let err = sim
            .exec(
                owner(),
                Command::AddStaff {
                    name: "Ana".into(),
                    user_id: None,
                    hours,
                },
            )
            .unwrap_err();
        assert_field(err, ErrorCode::InvalidRequest, field);
    }
    assert_eq!(sim.est().seq, before);
    // Touching ranges are one range; 24:00 ends a day.
    sim.add_staff("Ana", bad(&[("09:00", "12:00"), ("12:00", "24:00")]));
}

#[test]
fn services_need_sane_durations_and_known_staff() {
    let mut sim = Sim::new(settings("America/Sao_Paulo"), "2026-11-30T11:00:00Z");
    let ana = sim.add_staff("Ana", WeeklyHours::weekdays(&[("09:00", "18:00")]));
    let service = |duration: u32,
                   buffer: u32,
                   price: i64,
                   currency: &str,
                   staff: Vec<navaro_protocol::StaffId>| Command::AddService {
        name: "Corte".into(),
        duration_minutes: duration,
        price_cents: price,
        currency: currency.into(),
        buffer_after_minutes: buffer,
        staff_ids: staff,
    };
    let stranger = navaro_protocol::StaffId(Uuid::from_u128(99));
    let cases = [
        (
            service(0, 0, 100, "BRL", vec![ana]),
            ErrorCode::InvalidRequest,
            "duration_minutes",
        ),
        (
            service(24 * 60, 0, 100, "BRL", vec![ana]),
            ErrorCode::InvalidRequest,
            "duration_minutes",
        ), // multi-day
        (
            service(3 * 24 * 60, 0, 100, "BRL", vec![ana]),
            ErrorCode::InvalidRequest,
            "duration_minutes",
        ),
        (
            service(30, 1000, 100, "BRL", vec![ana]),
            ErrorCode::InvalidRequest,
            "buffer_after_minutes",
        ),
        (
            service(30, 0, -1, "BRL", vec![ana]),
            ErrorCode::InvalidRequest,
            "price_cents",
        ),
        (
            service(30, 0, 100, "reais", vec![ana]),
            ErrorCode::InvalidRequest,
            "currency",
        ),
        (
            service(30, 0, 100, "BRL", vec![]),
            ErrorCode::InvalidRequest,
            "staff_ids",
        ),
        (
            service(30, 0, 100, "BRL", vec![ana, ana]),
            ErrorCode::InvalidRequest,
            "staff_ids",
        ),
        (
            service(30, 0, 100, "BRL", vec![stranger]),
            ErrorCode::NotFound,
            "staff_ids",
        ),
    ];
    for (command, code, field) in cases {
        assert_field(sim.exec(owner(), command).unwrap_err(), code, field);
    }
}

#[test]
fn bookings_reject_bad_references_and_times() {
    let mut sim = Sim::new(settings("America/Sao_Paulo"), "2026-11-30T11:00:00Z");
    let ana = sim.add_staff("Ana", WeeklyHours::weekdays(&[("09:00", "18:00")]));
    let bruno = sim.add_staff("Bruno", WeeklyHours::weekdays(&[("09:00", "18:00")]));
    let cut = sim.add_service("Corte", 30, 0, &[ana]);
    let unknown_service = navaro_protocol::ServiceId(Uuid::from_u128(42));
    assert_field(
        sim.book(customer(1), unknown_service, "2026-11-30T13:00:00Z", None)
            .unwrap_err(),
        ErrorCode::NotFound,
        "service_id",
    );
    assert_field(
        sim.book(customer(1), cut, "2026-11-30T13:00:00Z", Some(bruno))
            .unwrap_err(),
        ErrorCode::StaffCannotPerform,
        "staff_id",
    );
    let ghost = navaro_protocol::StaffId(Uuid::from_u128(43));
    assert_field(
        sim.book(customer(1), cut, "2026-11-30T13:00:00Z", Some(ghost))
            .unwrap_err(),
        ErrorCode::NotFound,
        "staff_id",
    );
    assert_field(
        sim.book(customer(1), cut, "2027-06-01T13:00:00Z", None)
            .unwrap_err(),
        ErrorCode::TooFar,
        "start",
    );
    assert_field(
        sim.book(customer(1), cut, "9999-01-01T13:00:00Z", None)
            .unwrap_err(),
        ErrorCode::TooFar,
        "start",
    );
    assert_field(
        sim.book(customer(1), cut, "1970-01-01T00:00:00Z", None)
            .unwrap_err(),
        ErrorCode::TooSoon,
        "start",
    );
    assert_field(
        sim.book(customer(1), cut, "2026-11-30T13:07:00Z", None)
            .unwrap_err(),
        ErrorCode::NotOnGrid,
        "start",
    );
    // Holds: the TTL is bounded.
    for ttl_seconds in [0, 29, 1801, u32::MAX] {
        let err = sim
            .exec(
                customer(1),
                Command::PlaceHold {
                    service_id: cut,
                    start: ts("2026-11-30T13:00:00Z"),
                    staff_id: None,
                    ttl_seconds,
                },
            )
            .unwrap_err();
        assert_field(err, ErrorCode::InvalidRequest, "ttl_seconds");
    }
    // Time off must end after it starts, and not span years.
    let time_off = |start: &str, end: &str| Command::AddTimeOff {
        staff_id: ana,
        start: ts(start),
        end: ts(end),
        reason: None,
    };
    assert_field(
        sim.exec(
            owner(),
            time_off("2026-12-02T00:00:00Z", "2026-12-01T00:00:00Z"),
        )
        .unwrap_err(),
        ErrorCode::InvalidRequest,
        "end",
    );
    assert_field(
        sim.exec(
            owner(),
            time_off("2026-12-01T00:00:00Z", "2028-12-01T00:00:00Z"),
        )
        .unwrap_err(),
        ErrorCode::InvalidRequest,
        "end",
    );
    // Settings patches go through the same checks.
    let patch = Command::UpdateSettings {
        patch: SettingsPatch {
            slot_minutes: Some(25),
            ..Default::default()
        },
    };
    assert_field(
        sim.exec(owner(), patch).unwrap_err(),
        ErrorCode::InvalidRequest,
        "slot_minutes",
    );
}

#[test]
fn availability_ranges_are_bounded() {
    let mut sim = Sim::new(settings("America/Sao_Paulo"), "2026-11-30T11:00:00Z");
    let ana = sim.add_staff("Ana", WeeklyHours::weekdays(&[("09:00", "18:00")]));
    let cut = sim.add_service("Corte", 30, 0, &[ana]);
    assert_field(
        sim.availability(cut, "2026-11-30", 0, None).unwrap_err(),
        ErrorCode::InvalidRequest,
        "days",
    );
    assert_field(
        sim.availability(cut, "2026-11-30", 32, None).unwrap_err(),
        ErrorCode::InvalidRequest,
        "days",
    );
    assert_field(
        sim.availability(cut, "1900-01-01", 7, None).unwrap_err(),
        ErrorCode::InvalidRequest,
        "from",
    );
    assert_field(
        sim.availability(cut, "9999-01-01", 7, None).unwrap_err(),
        ErrorCode::InvalidRequest,
        "from",
    );
    // Dates past the horizon are simply empty: nothing is bookable there.
    assert!(
        sim.availability(cut, "2027-06-01", 31, None)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn an_idle_context_decides_nothing_twice() {
    // The same command decided twice on the same state gives the same events: decide is pure.
    let mut sim = Sim::new(settings("America/Sao_Paulo"), "2026-11-30T11:00:00Z");
    let ana = sim.add_staff("Ana", WeeklyHours::weekdays(&[("09:00", "18:00")]));
    let cut = sim.add_service("Corte", 30, 0, &[ana]);
    let ctx = Context {
        now: sim.now,
        new_id: Uuid::from_u128(5),
    };
    let command = Command::Book {
        service_id: cut,
        start: ts("2026-11-30T13:00:00Z"),
        staff_id: None,
        customer_id: None,
        promotion: None,
    };
    let a = domain::decide(sim.est(), &ctx, &customer(1), &command).unwrap();
    let b = domain::decide(sim.est(), &ctx, &customer(1), &command).unwrap();
    assert_eq!(a, b);
}
