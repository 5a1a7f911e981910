//! Days on which the clocks change: the right slots, and no booking in a local hour that
//! does not exist or is counted twice.

mod support;

use navaro_protocol::{ErrorCode, WeeklyHours};
use support::*;

fn shop(
    zone: &str,
    now: &str,
    hours: WeeklyHours,
    slot: u16,
) -> (Sim, navaro_protocol::StaffId, navaro_protocol::ServiceId) {
    let mut sim = Sim::new(
        navaro_protocol::EstablishmentSettings {
            slot_minutes: slot,
            ..settings(zone)
        },
        now,
    );
    let staff = sim.add_staff("Night owl", hours);
    let service = sim.add_service("Hour", 60, 0, &[staff]);
    (sim, staff, service)
}

#[test]
fn new_york_spring_forward_has_no_two_oclock() {
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    let (mut sim, staff, hour) = shop(
        "America/New_York",
        "2026-03-01T00:00:00Z",
        WeeklyHours::every_day(&[("00:00", "05:00")]),
        60,
    );
    let starts = sim.starts(hour, "2026-03-08", 1, Some(staff));
    // 00:00-05:00 local is four real hours (05Z-09Z): starts at 00:00 EST, 01:00 EST,
    // 03:00 EDT and 04:00 EDT. Local 02:00 does not exist and is never offered.
    assert_eq!(
        starts,
        [
            "2026-03-08T05:00:00Z",
            "2026-03-08T06:00:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T08:00:00Z"
        ]
    );
    // 07:00Z is 03:00 EDT; there is nothing between 06:00Z and 07:00Z to book at 02:xx local.
    sim.book(customer(1), hour, "2026-03-08T06:00:00Z", Some(staff))
        .unwrap();
    sim.book(customer(2), hour, "2026-03-08T07:00:00Z", Some(staff))
        .unwrap();
    // 08:00Z is 04:00 EDT and 05:00 is the end of hours: a 60-minute service ends at 05:00.
    sim.book(customer(3), hour, "2026-03-08T08:00:00Z", Some(staff))
        .unwrap();
    // The normal day after has five starts.
    assert_eq!(sim.starts(hour, "2026-03-09", 1, Some(staff)).len(), 5);
}

#[test]
fn new_york_fall_back_offers_both_one_oclocks_as_distinct_instants() {
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:00-01:59 happens twice.
    let (mut sim, staff, hour) = shop(
        "America/New_York",
        "2026-10-25T00:00:00Z",
        WeeklyHours::every_day(&[("00:00", "03:00")]),
        60,
    );
    let starts = sim.starts(hour, "2026-11-01", 1, Some(staff));
    // 00:00 EDT (04Z), 01:00 EDT (05Z), 01:00 EST (06Z), 02:00 EST (07Z): four real hours.
    assert_eq!(
        starts,
        [
            "2026-11-01T04:00:00Z",
            "2026-11-01T05:00:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T07:00:00Z"
        ]
    );
    let first = sim
        .book(customer(1), hour, "2026-11-01T05:00:00Z", Some(staff))
        .unwrap();
    let second = sim
        .book(customer(2), hour, "2026-11-01T06:00:00Z", Some(staff))
        .unwrap();
    assert_ne!(
        first.start, second.start,
        "the two 01:00s are different bookings, never one"
    );
    assert_eq!(sim.starts(hour, "2026-11-01", 1, Some(staff)).len(), 2);
}

#[test]
fn lisbon_changes_at_one_in_the_morning_utc() {
    // 2026-03-29: 01:00 WET -> 02:00 WEST. 2026-10-25: 02:00 WEST -> 01:00 WET.
    let (sim, staff, hour) = shop(
        "Europe/Lisbon",
        "2026-03-20T00:00:00Z",
        WeeklyHours::every_day(&[("00:00", "04:00")]),
        30,
    );
    let spring = sim.starts(hour, "2026-03-29", 1, Some(staff));
    // Three real hours: starts every 30 minutes until an hour before the end.
    // 00:00 and 00:30 WET, then local 01:00-01:59 does not exist; 02:00 WEST is 01:00Z.
    assert_eq!(
        spring,
        [
            "2026-03-29T00:00:00Z",
            "2026-03-29T00:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T01:30:00Z",
            "2026-03-29T02:00:00Z"
        ]
    );
    let (sim, staff, hour) = shop(
        "Europe/Lisbon",
        "2026-10-20T00:00:00Z",
        WeeklyHours::every_day(&[("00:00", "04:00")]),
        30,
    );
    let fall = sim.starts(hour, "2026-10-25", 1, Some(staff));
    // Five real hours (00:00 WEST is 23:00Z on the 24th, 04:00 WET is 04:00Z).
    assert_eq!(fall.first().unwrap(), "2026-10-24T23:00:00Z");
    assert_eq!(fall.last().unwrap(), "2026-10-25T03:00:00Z");
    assert_eq!(fall.len(), 9);
}

#[test]
fn sao_paulo_2018_the_day_began_at_one() {
    // 2018-11-04: local midnight did not exist; clocks went from 23:59:59 -03 to 01:00 -02.
    let (mut sim, staff, hour) = shop(
        "America/Sao_Paulo",
        "2018-10-30T00:00:00Z",
        WeeklyHours::every_day(&[("00:00", "03:00")]),
        60,
    );
    let starts = sim.starts(hour, "2018-11-04", 1, Some(staff));
    // Working 00:00-03:00 on that day is 01:00-03:00 -02: two real hours.
    assert_eq!(starts, ["2018-11-04T03:00:00Z", "2018-11-04T04:00:00Z"]);
    // An instant that would read 00:30 under the old offset is on the previous local day.
    let err = sim
        .book(customer(1), hour, "2018-11-04T02:30:00Z", Some(staff))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotOnGrid);
    sim.book(customer(1), hour, "2018-11-04T03:00:00Z", Some(staff))
        .unwrap();
}

#[test]
fn sao_paulo_2019_the_last_hour_of_the_day_happened_twice() {
    // 2019-02-17 00:00 -02 fell back to 2019-02-16 23:00 -03.
    let (mut sim, staff, hour) = shop(
        "America/Sao_Paulo",
        "2019-02-10T00:00:00Z",
        WeeklyHours::every_day(&[("21:00", "24:00")]),
        60,
    );
    let starts = sim.starts(hour, "2019-02-16", 1, Some(staff));
    // 21:00 -02 (23Z), 22:00 -02 (00Z), 23:00 -02 (01Z), 23:00 -03 (02Z): four real hours.
    assert_eq!(
        starts,
        [
            "2019-02-16T23:00:00Z",
            "2019-02-17T00:00:00Z",
            "2019-02-17T01:00:00Z",
            "2019-02-17T02:00:00Z"
        ]
    );
    sim.book(customer(1), hour, "2019-02-17T01:00:00Z", Some(staff))
        .unwrap();
    sim.book(customer(2), hour, "2019-02-17T02:00:00Z", Some(staff))
        .unwrap();
    // The next local day starts at 00:00 -03 = 03Z and has no hours before 21:00.
    assert!(
        sim.starts(hour, "2019-02-17", 1, Some(staff))
            .iter()
            .all(|s| s.as_str() >= "2019-02-18T00:00:00Z")
    );
}

#[test]
fn a_service_across_the_gap_lasts_its_real_duration() {
    // 01:30 EST + 60 minutes = 03:30 EDT: a real hour, inside 00:00-04:00 local.
    let (mut sim, staff, hour) = shop(
        "America/New_York",
        "2026-03-01T00:00:00Z",
        WeeklyHours::every_day(&[("00:00", "04:00")]),
        30,
    );
    let booking = sim
        .book(customer(1), hour, "2026-03-08T06:30:00Z", Some(staff))
        .unwrap();
    assert_eq!(booking.end, ts("2026-03-08T07:30:00Z"));
    let starts = sim.starts(hour, "2026-03-08", 1, Some(staff));
    assert!(
        !starts
            .iter()
            .any(|s| s.as_str() > "2026-03-08T05:30:00Z" && s.as_str() < "2026-03-08T07:30:00Z")
    );
}

#[test]
fn a_saturday_closing_in_a_gap_at_midnight_sees_a_sunday_hold_lapse() {
    // 2026-03-28 in Nuuk: 23:00 -02 jumps to 00:00 -01 (Sunday). Closing at 23:30, a time
    // the gap skips, makes the day's last hour end after the next midnight: the 22:30
    // start (00:30Z) runs to 01:30Z, past Sunday 00:00 (01:00Z). A hold on Sunday at
    // 00:00 blocks it, and when the hold lapses (no event says so) Saturday must offer
    // 22:30 again: the cached Saturday has to count that hold.
    let (mut sim, staff, hour) = shop(
        "America/Nuuk",
        "2026-03-28T12:00:00Z",
        WeeklyHours::every_day(&[("00:00", "23:30")]),
        30,
    );
    let half = sim.add_service("Half hour", 30, 0, &[staff]);
    let late = ts("2026-03-28T00:30:00Z") + jiff::SignedDuration::from_hours(24);
    assert!(
        sim.starts(hour, "2026-03-28", 1, Some(staff))
            .contains(&late.to_string())
    );
    sim.exec(
        customer(1),
        navaro_protocol::Command::PlaceHold {
            service_id: half,
            start: ts("2026-03-29T01:00:00Z"),
            staff_id: Some(staff),
            ttl_seconds: 60,
        },
    )
    .unwrap();
    assert!(
        !sim.starts(hour, "2026-03-28", 1, Some(staff))
            .contains(&late.to_string())
    );
    sim.now = ts("2026-03-28T12:01:01Z");
    // `starts` checks the cached answer against a fresh sweep.
    assert!(
        sim.starts(hour, "2026-03-28", 1, Some(staff))
            .contains(&late.to_string())
    );
}
