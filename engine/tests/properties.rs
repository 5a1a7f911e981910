//! Random command sequences against a simple reference model.
//!
//! The model is deliberately naive and independent of the engine's code: it enumerates
//! candidate instants in UTC five-minute steps and asks jiff for each one's local wall
//! time, keeps a flat list of items, and checks overlap pairwise. After every step the
//! engine must agree with it: the same accept/reject decision for every booking and hold,
//! availability equal to the model's bookable set over the whole window, calendars equal
//! to the model's blocking items, no two items of one staff member overlapping (buffers
//! included), every booking inside working hours and outside time off, and gap-free seqs.

mod support;

use std::collections::BTreeSet;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use navaro_engine::domain::state::ItemRef;
use navaro_engine::domain::{
    AvailabilityQuery, Establishment, SnapshotState, availability, availability_uncached,
};
use navaro_protocol::{
    BookingId, Command, Encoding, EstablishmentSettings, HoldId, Reply, ServiceId, StaffId,
    WeeklyHours, decode, encode,
};
use proptest::prelude::*;
use support::*;

/// A day with a clock change in each zone, and the date the window starts at (the day
/// before). Sao Paulo's are historic: Brazil dropped DST in 2019.
const SCENARIOS: &[(&str, &str)] = &[
    ("America/New_York", "2026-03-07"),
    ("America/New_York", "2026-10-31"),
    ("Europe/Lisbon", "2026-03-28"),
    ("Europe/Lisbon", "2026-10-24"),
    ("America/Sao_Paulo", "2018-11-03"),
    ("America/Sao_Paulo", "2019-02-15"),
    ("America/Sao_Paulo", "2026-12-01"),
];
const WINDOW_DAYS: i64 = 4;

#[derive(Clone, Debug)]
enum Op {
    Book {
        customer: u8,
        staff: Option<u8>,
        service: u8,
        offset_5min: u16,
    },
    Hold {
        customer: u8,
        staff: Option<u8>,
        service: u8,
        offset_5min: u16,
        ttl_minutes: u8,
    },
    Confirm {
        hold: u8,
    },
    Release {
        hold: u8,
    },
    Cancel {
        booking: u8,
    },
    Reschedule {
        booking: u8,
        staff: Option<u8>,
        offset_5min: u16,
    },
    TimeOff {
        staff: u8,
        offset_5min: u16,
        minutes: u16,
    },
    Advance {
        minutes: u16,
    },
    Expire,
    /// What a restart does: the state's snapshot (`SnapshotState`, without the actor's
    /// idempotency keys), encoded and decoded as named MessagePack as the actor stores
    /// it, restored into a new state, which starts with no cached days.
    Restore,
}

fn op() -> impl Strategy<Value = Op> {
    let offset = 0u16..(WINDOW_DAYS as u16 * 288);
    let staff = proptest::option::of(0u8..3);
    prop_oneof![
        6 => (0u8..4, staff.clone(), 0u8..3, offset.clone()).prop_map(|(customer, staff, service, offset_5min)| Op::Book { customer, staff, service, offset_5min }),
        2 => (0u8..4, staff.clone(), 0u8..3, offset.clone(), 1u8..30).prop_map(|(customer, staff, service, offset_5min, ttl_minutes)| Op::Hold { customer, staff, service, offset_5min, ttl_minutes }),
        1 => any::<u8>().prop_map(|hold| Op::Confirm { hold }),
        1 => any::<u8>().prop_map(|hold| Op::Release { hold }),
        2 => any::<u8>().prop_map(|booking| Op::Cancel { booking }),
        2 => (any::<u8>(), staff, offset.clone()).prop_map(|(booking, staff, offset_5min)| Op::Reschedule { booking, staff, offset_5min }),
        1 => (0u8..3, offset, 5u16..600).prop_map(|(staff, offset_5min, minutes)| Op::TimeOff { staff, offset_5min, minutes }),
        1 => (1u16..240).prop_map(|minutes| Op::Advance { minutes }),
        1 => Just(Op::Expire),
        1 => Just(Op::Restore),
    ]
}

/// One item as the model sees it.
#[derive(Clone, Debug)]
struct Item {
    item: ItemRef,
    /// Who booked or holds it, and for which service: the model's own record, so that
    /// a state that lost or mixed them up (a restore, say) is caught.
    customer: u8,
    service: usize,
    staff: usize,
    start: Timestamp,
    /// End of the service plus its buffer.
    busy_until: Timestamp,
    hold_expires: Option<Timestamp>,
    live: bool,
}

struct Model {
    tz: TimeZone,
    slot: i64,
    notice_minutes: i64,
    first_day: Date,
    hours: Vec<WeeklyHours>,
    /// (duration, buffer, staff indices) per service.
    services: Vec<(i64, i64, Vec<usize>)>,
    time_off: Vec<(usize, Timestamp, Timestamp)>,
    items: Vec<Item>,
}

fn minutes(t: Timestamp, m: i64) -> Timestamp {
    t.checked_add(m.minutes()).unwrap()
}

impl Model {
    fn window(&self) -> (Timestamp, Timestamp) {
        let start = self
            .first_day
            .to_zoned_datetime(self.tz.clone())
            .unwrap()
            .timestamp();
        let end = self
            .first_day
            .checked_add(WINDOW_DAYS.days())
            .unwrap()
            .to_zoned_datetime(self.tz.clone())
            .unwrap()
            .timestamp();
        (start, end)
    }

    fn on_grid(&self, t: Timestamp) -> bool {
        let local = t.to_zoned_datetime(self.tz.clone());
        local.second() == 0 && i64::from(local.minute()) % self.slot == 0
    }

    fn inside_hours(&self, staff: usize, t: Timestamp, end: Timestamp) -> bool {
        let local = t.to_zoned_datetime(self.tz.clone());
        let date = local.date();
        let weekday = date.weekday().to_monday_zero_offset() as usize;
        let ranges = self.hours[staff].days()[weekday].1.clone();
        ranges.iter().any(|[from, to]| {
            let at = |hhmm: &str| {
                let (h, m): (i8, i8) = (hhmm[..2].parse().unwrap(), hhmm[3..].parse().unwrap());
                let (day, h) = if h == 24 {
                    (date.tomorrow().unwrap(), 0)
                } else {
                    (date, h)
                };
                day.at(h, m, 0, 0)
                    .to_zoned_datetime(self.tz.clone())
                    .unwrap()
                    .timestamp()
            };
            at(from) <= t && end <= at(to)
        })
    }

    fn blocking(&self, now: Timestamp) -> impl Iterator<Item = &Item> {
        self.items
            .iter()
            .filter(move |i| i.live && i.hold_expires.is_none_or(|e| e > now))
    }

    fn bookable(
        &self,
        staff: usize,
        service: usize,
        t: Timestamp,
        now: Timestamp,
        ignore: Option<ItemRef>,
    ) -> bool {
        let (duration, buffer, ref performers) = self.services[service];
        let end = minutes(t, duration);
        let busy_until = minutes(end, buffer);
        performers.contains(&staff)
            && self.on_grid(t)
            && t.as_second() >= now.as_second() + self.notice_minutes * 60
            && t.as_second() <= now.as_second() + 60 * 1440 * 60
            && self.inside_hours(staff, t, busy_until)
            && !self
                .time_off
                .iter()
                .any(|(s, a, b)| *s == staff && *a < busy_until && *b > t)
            && !self.blocking(now).any(|i| {
                i.staff == staff
                    && Some(i.item) != ignore
                    && i.start < busy_until
                    && i.busy_until > t
            })
    }

    /// Every (start, staff) the model considers bookable in the window.
    fn bookable_set(
        &self,
        service: usize,
        staff: Option<usize>,
        now: Timestamp,
    ) -> BTreeSet<(i64, usize)> {
        let (start, end) = self.window();
        let mut set = BTreeSet::new();
        let mut t = start;
        while t < end {
            for s in 0..self.hours.len() {
                if staff.is_none_or(|only| only == s) && self.bookable(s, service, t, now, None) {
                    set.insert((t.as_second(), s));
                }
            }
            t = minutes(t, 5);
        }
        set
    }
}

fn setup(scenario: usize, slot: u16, notice: u32) -> (Sim, Model, Vec<StaffId>, Vec<ServiceId>) {
    let (zone, first) = SCENARIOS[scenario];
    let first_day: Date = first.parse().unwrap();
    let tz = TimeZone::get(zone).unwrap();
    // "now" is the local midnight two days before the window.
    let now = first_day
        .checked_sub(2.days())
        .unwrap()
        .to_zoned_datetime(tz.clone())
        .unwrap()
        .timestamp();
    let settings = EstablishmentSettings {
        slot_minutes: slot,
        min_notice_minutes: notice,
        ..support::settings(zone)
    };
    let mut sim = Sim::new(settings, &now.to_string());
    let hours = vec![
        WeeklyHours::every_day(&[("00:00", "03:00"), ("09:00", "12:00")]),
        WeeklyHours::every_day(&[("01:00", "02:30"), ("13:00", "24:00")]),
        WeeklyHours::weekdays(&[("08:00", "18:00")]),
    ];
    let staff: Vec<StaffId> = hours
        .iter()
        .enumerate()
        .map(|(i, h)| sim.add_staff(&format!("s{i}"), h.clone()))
        .collect();
    let services_spec = vec![
        (30, 10, vec![0, 1]),
        (60, 0, vec![0, 1, 2]),
        (45, 15, vec![1, 2]),
    ];
    let services = services_spec
        .iter()
        .enumerate()
        .map(|(i, (d, b, who))| {
            sim.add_service(
                &format!("v{i}"),
                *d as u32,
                *b as u32,
                &who.iter().map(|w| staff[*w]).collect::<Vec<_>>(),
            )
        })
        .collect();
    let model = Model {
        tz,
        slot: i64::from(slot),
        notice_minutes: i64::from(notice),
        first_day,
        hours,
        services: services_spec,
        time_off: Vec::new(),
        items: Vec::new(),
    };
    (sim, model, staff, services)
}

fn nth<T: Clone>(list: &[T], n: u8) -> Option<T> {
    (!list.is_empty()).then(|| list[n as usize % list.len()].clone())
}

struct Run {
    sim: Sim,
    model: Model,
    staff: Vec<StaffId>,
    services: Vec<ServiceId>,
    bookings: Vec<BookingId>,
    holds: Vec<HoldId>,
}

impl Run {
    fn start_of(&self, offset_5min: u16) -> Timestamp {
        minutes(self.model.window().0, i64::from(offset_5min) * 5)
    }

    fn staff_index(&self, id: StaffId) -> usize {
        self.staff.iter().position(|s| *s == id).unwrap()
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now = self.sim.now;
        match *op {
            Op::Book {
                customer: c,
                staff,
                service,
                offset_5min,
            }
            | Op::Hold {
                customer: c,
                staff,
                service,
                offset_5min,
                ..
            } => {
                let start = self.start_of(offset_5min);
                let expected = (0..3).any(|s| {
                    staff.is_none_or(|only| only as usize == s)
                        && self.model.bookable(s, service as usize, start, now, None)
                });
                let command = match *op {
                    Op::Book { .. } => Command::Book {
                        service_id: self.services[service as usize],
                        start,
                        staff_id: staff.map(|s| self.staff[s as usize]),
                        customer_id: None,
                        promotion: None,
                    },
                    Op::Hold { ttl_minutes, .. } => Command::PlaceHold {
                        service_id: self.services[service as usize],
                        start,
                        staff_id: staff.map(|s| self.staff[s as usize]),
                        ttl_seconds: u32::from(ttl_minutes) * 60,
                    },
                    _ => unreachable!(),
                };
                let result = self.sim.exec(customer(u128::from(c)), command);
                prop_assert_eq!(
                    result.is_ok(),
                    expected,
                    "{:?} at {} -> {:?}",
                    op,
                    start,
                    result
                );
                let (duration, buffer, _) = self.model.services[service as usize];
                // Booking over a lapsed hold ends it.
                self.end_lapsed_holds();
                match result {
                    Ok(Reply::Booking(b)) => {
                        let s = self.staff_index(b.staff_id);
                        prop_assert!(self.model.bookable(s, service as usize, start, now, None));
                        self.bookings.push(b.id);
                        self.model.items.push(Item {
                            item: ItemRef::Booking(b.id),
                            customer: c,
                            service: service as usize,
                            staff: s,
                            start,
                            busy_until: minutes(start, duration + buffer),
                            hold_expires: None,
                            live: true,
                        });
                    }
                    Ok(Reply::Hold(h)) => {
                        let s = self.staff_index(h.staff_id);
                        self.holds.push(h.id);
                        self.model.items.push(Item {
                            item: ItemRef::Hold(h.id),
                            customer: c,
                            service: service as usize,
                            staff: s,
                            start,
                            busy_until: minutes(start, duration + buffer),
                            hold_expires: Some(h.expires_at),
                            live: true,
                        });
                    }
                    Ok(other) => prop_assert!(false, "unexpected reply {:?}", other),
                    Err(_) => {}
                }
            }
            Op::Confirm { hold } | Op::Release { hold } => {
                let Some(id) = nth(&self.holds, hold) else {
                    return Ok(());
                };
                let item = self
                    .model
                    .items
                    .iter()
                    .position(|i| i.item == ItemRef::Hold(id))
                    .unwrap();
                let live = self.model.items[item].live
                    && self.model.items[item].hold_expires.is_some_and(|e| e > now);
                let confirm = matches!(op, Op::Confirm { .. });
                let owner = self.sim.est().holds.get(&id).map(|h| h.customer_id);
                let who = customer(u128::from(self.model.items[item].customer));
                let command = if confirm {
                    Command::ConfirmHold { hold_id: id }
                } else {
                    Command::ReleaseHold { hold_id: id }
                };
                let result = self.sim.exec(who, command);
                let in_state = owner.is_some();
                prop_assert_eq!(
                    result.is_ok(),
                    if confirm { live && in_state } else { in_state },
                    "{:?} -> {:?}",
                    op,
                    result
                );
                if let Ok(reply) = result {
                    let old = self.model.items[item].clone();
                    self.model.items[item].live = false;
                    if let Reply::Booking(b) = reply {
                        self.bookings.push(b.id);
                        self.model.items.push(Item {
                            item: ItemRef::Booking(b.id),
                            hold_expires: None,
                            live: true,
                            ..old
                        });
                    }
                }
            }
            Op::Cancel { booking } => {
                let Some(id) = nth(&self.bookings, booking) else {
                    return Ok(());
                };
                let item = self
                    .model
                    .items
                    .iter()
                    .position(|i| i.item == ItemRef::Booking(id))
                    .unwrap();
                let result = self.sim.exec(owner(), Command::Cancel { booking_id: id });
                prop_assert_eq!(
                    result.is_ok(),
                    self.model.items[item].live,
                    "{:?} -> {:?}",
                    op,
                    result
                );
                self.model.items[item].live = false;
            }
            Op::Reschedule {
                booking,
                staff,
                offset_5min,
            } => {
                let Some(id) = nth(&self.bookings, booking) else {
                    return Ok(());
                };
                let start = self.start_of(offset_5min);
                let item = self
                    .model
                    .items
                    .iter()
                    .position(|i| i.item == ItemRef::Booking(id))
                    .unwrap();
                let service = self.model.items[item].service;
                let expected = self.model.items[item].live
                    && (0..3).any(|s| {
                        staff.is_none_or(|only| only as usize == s)
                            && self.model.bookable(
                                s,
                                service,
                                start,
                                now,
                                Some(ItemRef::Booking(id)),
                            )
                    });
                let result = self.sim.exec(
                    owner(),
                    Command::Reschedule {
                        booking_id: id,
                        start,
                        staff_id: staff.map(|s| self.staff[s as usize]),
                    },
                );
                prop_assert_eq!(
                    result.is_ok(),
                    expected,
                    "{:?} at {} -> {:?}",
                    op,
                    start,
                    result
                );
                self.end_lapsed_holds();
                if let Ok(Reply::Booking(b)) = result {
                    let (duration, buffer, _) = self.model.services[service];
                    let s = self.staff_index(b.staff_id);
                    self.model.items[item] = Item {
                        item: ItemRef::Booking(id),
                        customer: self.model.items[item].customer,
                        service,
                        staff: s,
                        start,
                        busy_until: minutes(start, duration + buffer),
                        hold_expires: None,
                        live: true,
                    };
                }
            }
            Op::TimeOff {
                staff,
                offset_5min,
                minutes: length,
            } => {
                let start = self.start_of(offset_5min);
                let end = minutes(start, i64::from(length));
                self.sim
                    .exec(
                        owner(),
                        Command::AddTimeOff {
                            staff_id: self.staff[staff as usize],
                            start,
                            end,
                            reason: None,
                        },
                    )
                    .unwrap();
                self.model.time_off.push((staff as usize, start, end));
            }
            Op::Advance { minutes: m } => self.sim.now = minutes(self.sim.now, i64::from(m)),
            Op::Expire => {
                let events = navaro_engine::domain::expire_holds(self.sim.est(), now);
                let after = self.sim.est().seq;
                if !events.is_empty() {
                    let records = navaro_engine::domain::number(after, events, now, None);
                    self.sim.events += records.len() as u64;
                    navaro_engine::domain::apply_all(&mut self.sim.state, &records).unwrap();
                }
                for item in &mut self.model.items {
                    if item.hold_expires.is_some_and(|e| e <= now) {
                        item.live = false;
                    }
                }
            }
            Op::Restore => {
                let stored = encode(Encoding::MsgPack, &self.sim.est().to_snapshot()).unwrap();
                let snapshot: SnapshotState = decode(Encoding::MsgPack, &stored).unwrap();
                let restored = Establishment::restore(&snapshot).unwrap();
                prop_assert_eq!(restored.seq, self.sim.est().seq);
                self.sim.state = Some(restored);
            }
        }
        Ok(())
    }

    /// Mirror the engine: a lapsed hold whose slot was taken has ended.
    fn end_lapsed_holds(&mut self) {
        for item in &mut self.model.items {
            if let ItemRef::Hold(id) = item.item
                && !self.sim.est().holds.contains_key(&id)
                && item.hold_expires.is_some()
            {
                item.live = false;
            }
        }
    }

    fn check_invariants(&self, events_applied: u64) -> Result<(), TestCaseError> {
        let est = self.sim.est();
        let now = self.sim.now;
        prop_assert_eq!(est.seq, events_applied, "seqs are gap-free: one per event");
        // Every live item belongs to the customer and service the model says.
        for item in self.model.items.iter().filter(|i| i.live) {
            let (customer_id, service_id) = match item.item {
                ItemRef::Booking(id) => {
                    est.bookings.get(&id).map(|b| (b.customer_id, b.service_id))
                }
                ItemRef::Hold(id) => est.holds.get(&id).map(|h| (h.customer_id, h.service_id)),
            }
            .expect("a live item is in the state");
            prop_assert_eq!(customer_id, customer(u128::from(item.customer)).user_id);
            prop_assert_eq!(service_id, self.services[item.service]);
        }
        // Calendars hold exactly the model's live items, and never two overlapping ones.
        for (s, calendar) in est.calendars.iter().enumerate() {
            let engine: BTreeSet<(i64, i64)> = calendar
                .iter()
                .map(|(start, occ)| (*start, occ.end))
                .collect();
            let model: BTreeSet<(i64, i64)> = self
                .model
                .items
                .iter()
                .filter(|i| i.live && i.staff == s)
                .map(|i| (i.start.as_second() / 60, i.busy_until.as_second() / 60))
                .collect();
            prop_assert!(
                engine == model,
                "calendar of staff {}: engine {:?} model {:?}",
                s,
                engine,
                model
            );
            let ranges: Vec<_> = engine.into_iter().collect();
            for pair in ranges.windows(2) {
                prop_assert!(pair[0].1 <= pair[1].0, "overlap in staff {}: {:?}", s, pair);
            }
        }
        // Availability equals the model's bookable set, for every service and filter.
        for service in 0..self.services.len() {
            for filter in [None, Some(0), Some(1), Some(2)] {
                if filter.is_some_and(|f| !self.model.services[service].2.contains(&f)) {
                    continue;
                }
                let query = AvailabilityQuery {
                    service_id: self.services[service],
                    from: self.model.first_day,
                    days: WINDOW_DAYS as u16,
                    staff_id: filter.map(|f| self.staff[f]),
                };
                // The cached days (kept from earlier steps, or computed and kept now)
                // answer exactly what a fresh sweep does, before and after caching.
                let slots = availability(est, &query, now).unwrap().to_vec();
                let fresh = availability_uncached(est, &query, now).unwrap();
                prop_assert_eq!(
                    &slots,
                    &fresh,
                    "cached availability of service {} for {:?}",
                    service,
                    filter
                );
                prop_assert_eq!(&availability(est, &query, now).unwrap().to_vec(), &fresh);
                let offered: BTreeSet<(i64, usize)> = slots
                    .iter()
                    .flat_map(|slot| {
                        slot.staff_ids
                            .iter()
                            .map(move |id| (slot.start.as_second(), self.staff_index(*id)))
                    })
                    .collect();
                let expected = self.model.bookable_set(service, filter, now);
                let only_offered: Vec<_> = offered.difference(&expected).collect();
                let only_bookable: Vec<_> = expected.difference(&offered).collect();
                prop_assert!(
                    only_offered.is_empty() && only_bookable.is_empty(),
                    "availability of service {} for {:?}: offered but not bookable {:?}; bookable but not offered {:?}",
                    service,
                    filter,
                    only_offered,
                    only_bookable
                );
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_agrees_with_the_model(
        scenario in 0..SCENARIOS.len(),
        slot in prop::sample::select(vec![15u16, 30, 60]),
        notice in prop::sample::select(vec![0u32, 90]),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let (sim, model, staff, services) = setup(scenario, slot, notice);
        let mut run = Run { sim, model, staff, services, bookings: Vec::new(), holds: Vec::new() };
        // Jump to the window so that bookings are within notice and horizon.
        run.sim.now = minutes(run.model.window().0, -120);
        for op in &ops {
            run.step(op)?;
            let applied = run.sim.events;
            run.check_invariants(applied)?;
        }
    }
}
