//! The history window never changes a decision for a command inside it.
//!
//! Two copies of one establishment take the same random commands over weeks of simulated
//! time: one never evicts anything, the other evicts what left the shortest window the
//! engine allows before every command (the actor evicts once a minute). For every
//! command that does not name a booking that left the window, both must decide exactly
//! the same (same events, or the same rejection); one that names such a booking is
//! refused `not_found` by the windowed copy. After every step, availability (cached and
//! swept) agrees between them, and the windowed state holds exactly the full state's
//! bookings and calendar items that end after the window's start. Restores from its
//! snapshot keep the window.

mod support;

use jiff::{Timestamp, ToSpan};
use navaro_engine::domain::state::ItemRef;
use navaro_engine::domain::window::{MIN_HISTORY_DAYS, window_start};
use navaro_engine::domain::{
    self, AvailabilityQuery, Context, Establishment, SnapshotState, availability,
    availability_uncached,
};
use navaro_protocol::{
    Booking, BookingId, BookingStatus, Caller, Command, Encoding, ErrorCode, EstablishmentId,
    Event, EventRecord, Reply, ServiceId, StaffId, WeeklyHours, decode, encode,
};
use proptest::prelude::*;
use support::{customer, owner, settings, staff_member, ts};
use uuid::Uuid;

const DAYS: u32 = MIN_HISTORY_DAYS;

#[derive(Clone, Debug)]
enum Op {
    Book {
        customer: u8,
        staff: Option<u8>,
        service: u8,
        /// Quarter hours from the current local day's midnight.
        offset_15min: u16,
    },
    Cancel {
        booking: u8,
        by_member: bool,
    },
    Reschedule {
        booking: u8,
        offset_15min: u16,
    },
    Mark {
        booking: u8,
        completed: bool,
    },
    TimeOff {
        staff: u8,
        offset_15min: u16,
        hours: u8,
    },
    /// Hours of simulated time.
    Advance {
        hours: u8,
    },
    Restore,
}

fn op() -> impl Strategy<Value = Op> {
    let offset = 0u16..(6 * 96);
    prop_oneof![
        8 => (0u8..4, proptest::option::of(0u8..3), 0u8..3, offset.clone()).prop_map(|(customer, staff, service, offset_15min)| Op::Book { customer, staff, service, offset_15min }),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(booking, by_member)| Op::Cancel { booking, by_member }),
        2 => (any::<u8>(), offset.clone()).prop_map(|(booking, offset_15min)| Op::Reschedule { booking, offset_15min }),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(booking, completed)| Op::Mark { booking, completed }),
        1 => (0u8..3, offset, 1u8..30).prop_map(|(staff, offset_15min, hours)| Op::TimeOff { staff, offset_15min, hours }),
        4 => (1u8..80).prop_map(|hours| Op::Advance { hours }),
        1 => Just(Op::Restore),
    ]
}

struct Pair {
    full: Option<Establishment>,
    windowed: Option<Establishment>,
    now: Timestamp,
    next_id: u128,
    staff: Vec<StaffId>,
    services: Vec<ServiceId>,
    /// Every booking ever made, in order.
    bookings: Vec<BookingId>,
}

fn zone() -> &'static str {
    "Europe/Lisbon"
}

impl Pair {
    fn new() -> Pair {
        let mut pair = Pair {
            full: None,
            windowed: None,
            // Lisbon moves its clocks on 2026-03-29, inside the weeks simulated.
            now: ts("2026-03-20T08:00:00Z"),
            next_id: 1 << 64,
            staff: Vec::new(),
            services: Vec::new(),
            bookings: Vec::new(),
        };
        pair.run(
            owner(),
            Command::CreateEstablishment {
                settings: settings(zone()),
            },
        )
        .unwrap();
        let mut hours = WeeklyHours::weekdays(&[("09:00", "13:00"), ("14:00", "19:00")]);
        hours.sat = hours.mon.clone();
        for name in ["Ana", "Bruno", "Carla"] {
            match pair.run(
                owner(),
                Command::AddStaff {
                    name: name.into(),
                    user_id: None,
                    hours: hours.clone(),
                },
            ) {
                Ok(Reply::Staff(s)) => pair.staff.push(s.id),
                other => panic!("{other:?}"),
            }
        }
        let s = pair.staff.clone();
        for (duration, buffer, staff) in [
            (30, 10, vec![s[0], s[1]]),
            (45, 0, vec![s[1], s[2]]),
            (90, 15, vec![s[0], s[1], s[2]]),
        ] {
            let command = Command::AddService {
                name: format!("Service {duration}"),
                duration_minutes: duration,
                price_cents: 4500,
                currency: "EUR".into(),
                buffer_after_minutes: buffer,
                staff_ids: staff,
            };
            match pair.run(owner(), command) {
                Ok(Reply::Service(service)) => pair.services.push(service.id),
                other => panic!("{other:?}"),
            }
        }
        pair
    }

    fn window_start(&self) -> i64 {
        window_start(self.now.as_second().div_euclid(60), DAYS)
    }

    /// Decide `command` on both copies (the windowed one evicted first) and apply it to
    /// both; the decisions must be the same.
    fn run(
        &mut self,
        caller: Caller,
        command: Command,
    ) -> Result<Reply, navaro_protocol::Rejection> {
        self.next_id += 1;
        let ctx = Context {
            now: self.now,
            new_id: Uuid::from_u128(self.next_id),
        };
        let id = EstablishmentId(Uuid::from_u128(7));
        if let Some(w) = self.windowed.as_mut() {
            w.evict_history(window_start(self.now.as_second().div_euclid(60), DAYS));
        }
        let decide = |state: &Option<Establishment>| match state {
            None => domain::decide_create(id, &caller, &command),
            Some(est) => domain::decide(est, &ctx, &caller, &command),
        };
        let (full, windowed) = (decide(&self.full), decide(&self.windowed));
        assert_eq!(
            full, windowed,
            "the window changed a decision on {command:?}"
        );
        let events = full?;
        let after = self.full.as_ref().map_or(0, |e| e.seq);
        let records = domain::number(after, events, self.now, None);
        let reply = domain::apply_all(&mut self.full, &records).expect("apply");
        let again = domain::apply_all(&mut self.windowed, &records).expect("apply windowed");
        assert_eq!(reply, again);
        Ok(reply)
    }

    fn full(&self) -> &Establishment {
        self.full.as_ref().unwrap()
    }

    fn windowed(&self) -> &Establishment {
        self.windowed.as_ref().unwrap()
    }

    /// The booking the op names (any ever made), and whether it left the window.
    fn pick(&self, n: u8) -> Option<(Booking, bool)> {
        if self.bookings.is_empty() {
            return None;
        }
        let id = self.bookings[usize::from(n) % self.bookings.len()];
        let booking = (**self.full().bookings.get(&id)?).clone();
        let gone = !self.windowed().bookings.contains_key(&id);
        Some((booking, gone))
    }

    /// A command on a booking: decided on both when it is in the window; refused
    /// `not_found` by the windowed copy (and not run) when it left.
    fn on_booking(&mut self, caller: Caller, booking: &Booking, gone: bool, command: Command) {
        if let Some(w) = self.windowed.as_mut() {
            w.evict_history(window_start(self.now.as_second().div_euclid(60), DAYS));
        }
        let gone = gone || !self.windowed().bookings.contains_key(&booking.id);
        if gone {
            let ctx = Context {
                now: self.now,
                new_id: Uuid::from_u128(self.next_id + 1),
            };
            let refused = domain::decide(self.windowed(), &ctx, &caller, &command).unwrap_err();
            assert_eq!(refused.code, ErrorCode::NotFound, "{command:?}");
            let busy_end = booking.end.as_second() / 60 + i64::from(booking.buffer_after_minutes);
            assert!(
                busy_end <= self.windowed().history_from,
                "evicted inside the window"
            );
            return;
        }
        let _ = self.run(caller, command);
    }

    fn step(&mut self, op: &Op) {
        let local_midnight = self
            .now
            .to_zoned_datetime(jiff::tz::TimeZone::get(zone()).unwrap())
            .start_of_day()
            .unwrap()
            .timestamp();
        let at = |offset: u16| local_midnight + (i64::from(offset) * 15).minutes();
        match *op {
            Op::Book {
                customer: c,
                staff,
                service,
                offset_15min,
            } => {
                let command = Command::Book {
                    service_id: self.services[usize::from(service)],
                    start: at(offset_15min),
                    staff_id: staff.map(|s| self.staff[usize::from(s)]),
                    customer_id: None,
                    promotion: None,
                };
                if let Ok(Reply::Booking(b)) = self.run(customer(u128::from(c)), command) {
                    self.bookings.push(b.id);
                }
            }
            Op::Cancel { booking, by_member } => {
                let Some((b, gone)) = self.pick(booking) else {
                    return;
                };
                let caller = if by_member {
                    staff_member()
                } else {
                    customer(b.customer_id.0.as_u128() - 0x1000)
                };
                self.on_booking(caller, &b, gone, Command::Cancel { booking_id: b.id });
            }
            Op::Reschedule {
                booking,
                offset_15min,
            } => {
                let Some((b, gone)) = self.pick(booking) else {
                    return;
                };
                let command = Command::Reschedule {
                    booking_id: b.id,
                    start: at(offset_15min),
                    staff_id: None,
                };
                self.on_booking(staff_member(), &b, gone, command);
            }
            Op::Mark { booking, completed } => {
                let Some((b, gone)) = self.pick(booking) else {
                    return;
                };
                let command = if completed {
                    Command::MarkCompleted { booking_id: b.id }
                } else {
                    Command::MarkNoShow { booking_id: b.id }
                };
                self.on_booking(staff_member(), &b, gone, command);
            }
            Op::TimeOff {
                staff,
                offset_15min,
                hours,
            } => {
                let start = at(offset_15min);
                let command = Command::AddTimeOff {
                    staff_id: self.staff[usize::from(staff)],
                    start,
                    end: start + i64::from(hours).hours(),
                    reason: None,
                };
                let _ = self.run(owner(), command);
            }
            Op::Advance { hours } => self.now += i64::from(hours).hours(),
            Op::Restore => {
                let w = self.windowed.as_mut().unwrap();
                w.evict_history(window_start(self.now.as_second().div_euclid(60), DAYS));
                let snapshot = w.to_snapshot();
                let bytes = encode(Encoding::MsgPack, &snapshot).unwrap();
                let decoded: SnapshotState = decode(Encoding::MsgPack, &bytes).unwrap();
                assert_eq!(decoded.history_from, Some(w.history_from));
                self.windowed = Some(Establishment::restore(&decoded).unwrap());
            }
        }
    }

    /// The windowed state is the full one without what ended before the window.
    fn check(&self) {
        let (full, windowed) = (self.full(), self.windowed());
        let from = windowed.history_from;
        let kept = |b: &Booking| b.end.as_second() / 60 + i64::from(b.buffer_after_minutes) > from;
        let mut expected: Vec<_> = full
            .bookings
            .values()
            .filter(|b| kept(b))
            .map(|b| b.id)
            .collect();
        let mut held: Vec<_> = windowed.bookings.keys().copied().collect();
        expected.sort();
        held.sort();
        assert_eq!(
            held, expected,
            "the window holds the bookings ending after its start"
        );
        for (f, w) in full.calendars.iter().zip(windowed.calendars.iter()) {
            let f: Vec<_> = f.iter().filter(|(_, o)| o.end > from).collect();
            let w: Vec<_> = w.iter().collect();
            assert_eq!(w, f, "calendars inside the window");
        }
        let items: Vec<_> = full
            .customer_items
            .iter()
            .filter(|(_, _, item)| match item {
                ItemRef::Booking(id) => full.bookings.get(id).is_some_and(|b| kept(b)),
                ItemRef::Hold(_) => true,
            })
            .collect();
        assert_eq!(windowed.customer_items.iter().collect::<Vec<_>>(), items);
        let today = self
            .now
            .to_zoned_datetime(jiff::tz::TimeZone::get(zone()).unwrap())
            .date();
        for &service_id in &self.services {
            for (from_date, days) in [(today, 7), (today - 12.days(), 14)] {
                let query = AvailabilityQuery {
                    service_id,
                    from: from_date,
                    days,
                    staff_id: None,
                };
                let swept = availability_uncached(full, &query, self.now);
                assert_eq!(
                    availability(windowed, &query, self.now).map(|a| a.to_vec()),
                    swept
                );
                assert_eq!(availability_uncached(windowed, &query, self.now), swept);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_window_never_changes_a_decision_inside_it(ops in proptest::collection::vec(op(), 1..160)) {
        let mut pair = Pair::new();
        for op in &ops {
            pair.step(op);
            pair.check();
        }
    }
}

#[test]
fn a_month_of_bookings_leaves_a_window_of_them() {
    let mut pair = Pair::new();
    let mut taken = 0;
    for _day in 0..30 {
        for slot in 0..8u16 {
            let op = Op::Book {
                customer: (slot % 4) as u8,
                staff: None,
                service: (slot % 3) as u8,
                offset_15min: 96 + 40 + slot * 4,
            };
            let before = pair.bookings.len();
            pair.step(&op);
            taken += pair.bookings.len() - before;
        }
        pair.step(&Op::Advance { hours: 24 });
        pair.check();
    }
    assert!(taken > 150, "the month took bookings: {taken}");
    let windowed = pair.windowed().booking_count();
    assert_eq!(pair.full().booking_count(), taken);
    // About a day of future bookings plus DAYS of past ones are left.
    assert!(
        windowed <= 8 * (DAYS as usize + 2),
        "{windowed} bookings kept of {taken}"
    );
    // The last eviction ran at the last command, a day before the clock.
    assert_eq!(pair.windowed().history_from, pair.window_start() - 60 * 24);
}

/// An event that names a booking which already left the window changes nothing in
/// memory (its change is in the journal and the read model); one that names a booking
/// this state never had, ending inside the window, is still corruption.
#[test]
fn events_for_bookings_past_the_window_apply_as_nothing() {
    let mut pair = Pair::new();
    pair.step(&Op::Book {
        customer: 1,
        staff: Some(0),
        service: 0,
        offset_15min: 96 + 40,
    });
    let id = *pair.bookings.last().expect("booked");
    let booking = (**pair.full().bookings.get(&id).unwrap()).clone();
    pair.step(&Op::Advance { hours: 80 });
    pair.step(&Op::Advance { hours: 80 });
    let w = pair.windowed.as_mut().unwrap();
    let evicted = w.evict_history(window_start(pair.now.as_second().div_euclid(60), DAYS));
    assert_eq!(evicted.bookings, 1);
    let seq = w.seq + 1;
    let cancelled = |booking: Booking| EventRecord {
        seq,
        at: pair.now,
        idempotency: None,
        event: Event::BookingCancelled {
            booking: Booking {
                status: BookingStatus::Cancelled,
                seq,
                ..booking
            },
            by: owner().user_id,
        },
    };
    let mut state = w.clone();
    state
        .apply(&cancelled(booking.clone()))
        .expect("applies as nothing");
    assert_eq!(state.seq, seq);
    assert!(state.bookings.get(&id).is_none());
    assert_eq!(state.to_snapshot().bookings, w.to_snapshot().bookings);
    // A booking the state never had, still inside the window: corrupt.
    let unknown = Booking {
        id: BookingId(Uuid::from_u128(42)),
        start: pair.now + 24.hours(),
        end: pair.now + 25.hours(),
        ..booking
    };
    let mut state = w.clone();
    assert!(state.apply(&cancelled(unknown)).is_err());
}

/// Time off that ended before the window's start leaves the state (and its snapshot);
/// time off still running or to come stays.
#[test]
fn past_time_off_leaves_with_the_window() {
    let mut pair = Pair::new();
    for offset_15min in [96 + 40, 5 * 96 + 40] {
        pair.step(&Op::TimeOff {
            staff: 0,
            offset_15min,
            hours: 3,
        });
    }
    let held = |pair: &Pair| pair.windowed().staff[0].time_off.len();
    assert_eq!(held(&pair), 2);
    pair.step(&Op::Advance { hours: 80 });
    let w = pair.windowed.as_mut().unwrap();
    let evicted = w.evict_history(window_start(pair.now.as_second().div_euclid(60), DAYS));
    assert_eq!((evicted.bookings, evicted.time_off), (0, 1));
    assert_eq!(held(&pair), 1);
    assert_eq!(pair.windowed().to_snapshot().time_off.len(), 1);
    assert_eq!(pair.full().staff[0].time_off.len(), 2);
    pair.check();
}
