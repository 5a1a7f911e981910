//! The pure domain: decide + apply of one booking, and availability for a week.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::SignedDuration;
use navaro_benches::{customer, realistic_shop, ts};

use navaro_engine::domain::{self, AvailabilityQuery, Context};
use navaro_protocol::{Command, Encoding, EventRecord, decode, encode};

fn decide_and_apply(c: &mut Criterion) {
    let mut shop = realistic_shop(10, 0.6);
    let base = shop.state.clone().expect("created");
    let staff = shop.staff[3];
    let cut = shop.cut;
    // Free grid starts of one staff member over the next weeks, used round-robin.
    let query = AvailabilityQuery {
        service_id: cut,
        from: "2026-12-07".parse().unwrap(),
        days: 28,
        staff_id: Some(staff),
    };
    // Keep starts at least 40 minutes (service + buffer) apart so each is still free
    // after the previous one is booked.
    let mut starts: Vec<jiff::Timestamp> = Vec::new();
    for slot in domain::availability_uncached(&base, &query, shop.now).unwrap() {
        if starts
            .last()
            .is_none_or(|last| slot.start.as_second() - last.as_second() >= 40 * 60)
        {
            starts.push(slot.start);
        }
    }
    // The actor publishes its state as the read view after each write (at most every
    // millisecond, and at each journal acknowledgement), so the next write copies the
    // paths it touches in the persistent maps, and the view it replaces frees the old
    // ones: "view published" pays both, as an establishment with one write in flight at
    // a time does.
    for (name, publish) in [
        ("engine/decide+apply booking", false),
        ("engine/decide+apply booking, view published", true),
    ] {
        let mut i = 0usize;
        let mut state = base.clone();
        let mut view = None;
        c.bench_function(name, |b| {
            b.iter(|| {
                if i.is_multiple_of(starts.len()) {
                    state = base.clone();
                }
                let start = starts[i % starts.len()];
                i += 1;
                let ctx = Context {
                    now: shop.now,
                    new_id: shop.next_id(),
                };
                let command = Command::Book {
                    service_id: cut,
                    start,
                    staff_id: Some(staff),
                    customer_id: None,
                    promotion: None,
                };
                let events = domain::decide(&state, &ctx, &customer(i as u128), &command)
                    .expect("free slot");
                let records = domain::number(state.seq, events, ctx.now, None);
                for record in &records {
                    state.apply(record).expect("applies");
                }
                if publish {
                    view = Some(state.clone());
                }
                black_box((&state, &view));
            })
        });
    }
    // A start that is taken for its staff member: the rejection computes alternatives.
    let taken_booking = base
        .agenda
        .iter()
        .next()
        .and_then(|(_, id)| base.bookings.get(id))
        .expect("the fixture has bookings");
    let taken = Command::Book {
        service_id: cut,
        start: taken_booking.start,
        staff_id: Some(taken_booking.staff_id),
        customer_id: None,
        promotion: None,
    };
    c.bench_function("engine/decide rejected booking with alternatives", |b| {
        b.iter(|| {
            let ctx = Context {
                now: shop.now,
                new_id: uuid::Uuid::nil(),
            };
            let rejection = domain::decide(&base, &ctx, &customer(1), &taken).expect_err("taken");
            assert!(!rejection.alternatives.is_empty());
            black_box(rejection)
        })
    });
}

fn availability(c: &mut Criterion) {
    let shop = realistic_shop(10, 0.6);
    let est = shop.est();
    let query = AvailabilityQuery {
        service_id: shop.cut,
        from: "2026-11-30".parse().unwrap(),
        days: 7,
        staff_id: None,
    };
    let slots = domain::availability(est, &query, shop.now).unwrap();
    println!(
        "availability fixture: {} bookings, {} free starts in the week",
        est.bookings.len(),
        slots.len()
    );
    // The load test's shape: four staff, so a start's free staff fit in a few words.
    let small = realistic_shop(4, 0.6);
    let small_query = AvailabilityQuery {
        service_id: small.cut,
        ..query
    };
    let month = AvailabilityQuery { days: 31, ..query };
    for (name, state, query, now) in [
        ("7 days 10 staff", est, &query, shop.now),
        ("7 days 4 staff", small.est(), &small_query, small.now),
        ("31 days 10 staff", est, &month, shop.now),
    ] {
        // The sweep alone: what every answer cost before days were cached, and what a
        // day whose calendars changed still costs.
        c.bench_function(&format!("engine/availability {name}"), |b| {
            b.iter(|| {
                black_box(domain::availability_uncached(black_box(state), query, now).unwrap())
            })
        });
        // Every day still good in the cache: stamps checked, slots copied out.
        c.bench_function(&format!("engine/availability {name}, cached days"), |b| {
            b.iter(|| black_box(domain::availability(black_box(state), query, now).unwrap()))
        });
    }
    let at = shop.now.checked_add(SignedDuration::from_hours(1)).unwrap();
    c.bench_function("engine/publish view (state clone)", |b| {
        b.iter(|| black_box(est.clone()))
    });
    let _ = at;
}

/// A snapshot's state, encoded as named MessagePack as the actor encodes it (without
/// the idempotency keys the actor adds), for an establishment with a long history (the
/// week's bookings of the availability fixture, repeated with new ids up to `n`); and
/// gathering that state. What a snapshot costs per booking held is what the actor's
/// spacing of snapshots multiplies (`shell::actor::snapshot_due`).
fn snapshot(c: &mut Criterion) {
    let shop = realistic_shop(10, 0.6);
    let week = shop.est().to_snapshot();
    for n in [1_000, 10_000] {
        let mut state = week.clone();
        state.bookings = (0..n)
            .map(|i| {
                let mut booking = week.bookings[i % week.bookings.len()].clone();
                booking.id = navaro_protocol::BookingId(uuid::Uuid::from_u128(i as u128 + 1));
                booking
            })
            .collect();
        let bytes = encode(Encoding::MsgPack, &state).unwrap().len();
        println!("snapshot of {n} bookings: {} KB", bytes / 1000);
        c.bench_function(&format!("engine/snapshot of {n} bookings, encoded"), |b| {
            b.iter(|| black_box(encode(Encoding::MsgPack, black_box(&state)).unwrap()))
        });
    }
    c.bench_function("engine/to_snapshot, a week of 10 staff", |b| {
        b.iter(|| black_box(shop.est().to_snapshot()))
    });
}

fn codec(c: &mut Criterion) {
    let mut shop = realistic_shop(2, 0.0);
    let staff = shop.staff[0];
    let command = Command::Book {
        service_id: shop.cut,
        start: ts("2026-12-01T12:00:00Z"),
        staff_id: Some(staff),
        customer_id: None,
        promotion: None,
    };
    let ctx = Context {
        now: shop.now,
        new_id: shop.next_id(),
    };
    let events = domain::decide(shop.est(), &ctx, &customer(1), &command).unwrap();
    let record: EventRecord = domain::number(shop.est().seq, events, ctx.now, None).remove(0);
    for encoding in [Encoding::Json, Encoding::MsgPack] {
        let bytes = encode(encoding, &record).unwrap();
        c.bench_function(&format!("protocol/encode event {encoding:?}"), |b| {
            b.iter(|| black_box(encode(encoding, black_box(&record)).unwrap()))
        });
        c.bench_function(&format!("protocol/decode event {encoding:?}"), |b| {
            b.iter(|| black_box(decode::<EventRecord>(encoding, black_box(&bytes)).unwrap()))
        });
    }
}

criterion_group!(benches, decide_and_apply, availability, codec, snapshot);
criterion_main!(benches);
