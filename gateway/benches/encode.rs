//! The availability body, the most frequent answer of the load test's mix:
//! `cargo bench -p navaro-gateway --bench encode`. A week on a 15-minute grid, 08:00-20:00,
//! four staff members (the load test's world), in a zone with an offset and a DST
//! history: all four free at every start, and one of them busy at every third start; in
//! both forms, `slots` (API.md's) and `runs`, and the default form as the handler makes
//! it, from the engine's cached days, plain and gzip (with what deflating one day costs).
//! And the live feed's frames of the mix's commonest writes, a booking confirmed and a
//! walk-in joining a queue of twelve, as a member's subscription encodes them (once per
//! event and encoding, shared by every subscriber).

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use navaro_engine::domain::{Availability, Slot};
use navaro_gateway::availability::{encode, encode_days, encode_days_gzip, encode_runs};
use navaro_gateway::gzip::Segment;
use navaro_gateway::live::encode_frame;
use navaro_protocol::{
    Booking, BookingId, BookingStatus, Encoding, EstablishmentId, Event, EventRecord,
    QueuePosition, ServiceId, StaffId, Ticket, TicketId, TicketStatus, UserId,
};
use uuid::Uuid;

fn week(first: Timestamp, staff: &[StaffId], busy_every: usize) -> Vec<Slot> {
    (0..7)
        .flat_map(|day| {
            (0..48).map(move |quarter| first + SignedDuration::from_mins(day * 1440 + quarter * 15))
        })
        .enumerate()
        .map(|(n, start)| {
            let mut free = staff.to_vec();
            if busy_every > 0 && n % busy_every == 0 {
                free.remove(n / busy_every % staff.len());
            }
            Slot {
                start,
                staff_ids: free.into(),
            }
        })
        .collect()
}

fn availability_body(c: &mut Criterion) {
    let tz = TimeZone::get("America/Sao_Paulo").expect("zone");
    let staff: Vec<StaffId> = (1..=4).map(|n| StaffId(Uuid::from_u128(n))).collect();
    let first: Timestamp = "2026-12-01T11:00:00Z".parse().expect("instant");
    let (id, service) = (Uuid::from_u128(10), Uuid::from_u128(11));
    for (what, busy_every) in [("all free", 0), ("one busy every third start", 3)] {
        let slots = week(first, &staff, busy_every);
        let bytes = encode(id, service, "America/Sao_Paulo", &tz, &slots).len();
        c.bench_function(
            &format!(
                "availability body, 7 days x 48 starts x 4 staff, {what} ({} KB)",
                bytes / 1000
            ),
            |b| b.iter(|| encode(id, service, "America/Sao_Paulo", &tz, &slots)),
        );
        // The handler's way: the same week as seven cached days, each rendered on the
        // first answer and pointed at by every later one (the body's chunks; the kernel
        // copies them into the socket, which this does not time).
        let days = Availability::of_days(
            slots
                .chunks(48)
                .map(|day| (day.to_vec(), 0..day.len()))
                .collect(),
        );
        c.bench_function(&format!("the same from cached days, {what}"), |b| {
            b.iter(|| encode_days(id, service, "America/Sao_Paulo", &tz, &days))
        });
        // Compressed for a client that takes gzip: the kept days' kept segments, stitched
        // (the first answer deflated them; every later one reuses them).
        let (gzip, _) = encode_days_gzip(id, service, "America/Sao_Paulo", &tz, &days);
        c.bench_function(
            &format!(
                "the same gzip, from kept segments, {what} ({} B)",
                gzip.len()
            ),
            |b| b.iter(|| encode_days_gzip(id, service, "America/Sao_Paulo", &tz, &days)),
        );
        // What a day changed by a booking costs its next gzip answer: one day deflated.
        let day = encode_days(id, service, "America/Sao_Paulo", &tz, &days).to_bytes();
        let one_day = &day[..day.len() / 7];
        c.bench_function(
            &format!("one day deflated, {what} ({} KB)", one_day.len() / 1000),
            |b| b.iter(|| Segment::deflate(one_day)),
        );
        let bytes = encode_runs(id, service, "America/Sao_Paulo", &tz, 15, &slots).len();
        c.bench_function(&format!("the same as runs, {what} ({bytes} B)"), |b| {
            b.iter(|| encode_runs(id, service, "America/Sao_Paulo", &tz, 15, &slots))
        });
    }
}

fn live_frames(c: &mut Criterion) {
    let tz = TimeZone::get("America/Sao_Paulo").expect("zone");
    let at: Timestamp = "2026-12-01T11:00:00Z".parse().expect("instant");
    let booking = Booking {
        id: BookingId(Uuid::from_u128(1)),
        establishment_id: EstablishmentId(Uuid::from_u128(2)),
        service_id: ServiceId(Uuid::from_u128(3)),
        staff_id: StaffId(Uuid::from_u128(4)),
        customer_id: UserId(Uuid::from_u128(5)),
        start: at + SignedDuration::from_hours(26),
        end: at + SignedDuration::from_mins(26 * 60 + 30),
        buffer_after_minutes: 5,
        status: BookingStatus::Confirmed,
        seq: 42,
        created_at: at,
        promotion: None,
        payment_policy: None,
    };
    let ticket = |n: u32| Ticket {
        id: TicketId(Uuid::from_u128(100 + u128::from(n))),
        number: n,
        customer_id: Some(UserId(Uuid::from_u128(200 + u128::from(n)))),
        name: None,
        service_id: ServiceId(Uuid::from_u128(3)),
        staff_id: None,
        status: TicketStatus::Waiting,
        position: Some(n),
        eta: Some(at + SignedDuration::from_mins(i64::from(n) * 20)),
        joined_at: at,
        called_at: None,
        started_at: None,
        ended_at: None,
    };
    let record = |event| EventRecord {
        seq: 42,
        at,
        idempotency: None,
        event,
    };
    let events = [
        (
            "booking.confirmed",
            record(Event::BookingConfirmed {
                booking,
                from_hold: None,
            }),
        ),
        (
            "queue.joined, 12 waiting",
            record(Event::QueueJoined {
                ticket: ticket(12),
                queue: (1..=12)
                    .map(|n| QueuePosition {
                        ticket_id: ticket(n).id,
                        position: n,
                        eta: ticket(n).eta,
                    })
                    .collect(),
            }),
        ),
    ];
    for (what, record) in &events {
        for encoding in [Encoding::Json, Encoding::MsgPack] {
            let bytes = encode_frame(encoding, record, &tz).expect("encodes").len();
            c.bench_function(
                &format!("live frame, {what}, {encoding:?} ({bytes} B)"),
                |b| b.iter(|| encode_frame(encoding, record, &tz)),
            );
        }
    }
}

criterion_group!(benches, availability_body, live_frames);
criterion_main!(benches);
