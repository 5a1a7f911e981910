//! The walk-in queue on the pure domain: lifecycle, rules, estimates around bookings, and
//! random sequences against invariants (FIFO among eligible tickets, nothing lost or
//! duplicated, each ticket served once, estimates ordered and never over a booking).

mod support;

use std::collections::{BTreeSet, HashSet};

use navaro_engine::domain::Context;
use navaro_engine::domain::queue::{MAX_ENDED_KEPT, estimates, expire_called, refresh_estimates};
use navaro_engine::domain::state::first_overlap;
use navaro_protocol::{
    Command, ErrorCode, Reply, ServiceId, StaffId, Ticket, TicketId, TicketStatus, WeeklyHours,
};
use proptest::prelude::*;
use support::*;
use uuid::Uuid;

/// Monday 2026-11-30, 09:00 local in Sao Paulo (12:00Z). Ana cuts and shaves, Bruno only
/// cuts; both work 09:00-18:00.
fn shop() -> (Sim, [StaffId; 2], [ServiceId; 2]) {
    let mut sim = Sim::new(settings("America/Sao_Paulo"), "2026-11-30T12:00:00Z");
    let hours = WeeklyHours::every_day(&[("09:00", "18:00")]);
    let ana = sim.add_staff("Ana", hours.clone());
    let bruno = sim.add_staff("Bruno", hours);
    let cut = sim.add_service("Corte", 30, 0, &[ana, bruno]);
    let shave = sim.add_service("Barba", 45, 0, &[ana]);
    (sim, [ana, bruno], [cut, shave])
}

fn ticket(reply: Reply) -> Ticket {
    match reply {
        Reply::Ticket(t) => t,
        other => panic!("not a ticket: {other:?}"),
    }
}

fn join(
    sim: &mut Sim,
    who: u128,
    service: ServiceId,
    staff: Option<StaffId>,
) -> Result<Ticket, navaro_protocol::Rejection> {
    sim.exec(
        customer(who),
        Command::JoinQueue {
            service_id: service,
            staff_id: staff,
            name: None,
        },
    )
    .map(ticket)
}

#[test]
fn a_ticket_goes_from_waiting_to_done() {
    let (mut sim, [ana, _], [cut, _]) = shop();
    let first = join(&mut sim, 1, cut, None).unwrap();
    assert_eq!(
        (first.number, first.status, first.position),
        (1, TicketStatus::Waiting, Some(1))
    );
    assert_eq!(
        first.eta,
        Some(ts("2026-11-30T12:00:00Z")),
        "a free barber serves at once"
    );
    let second = join(&mut sim, 2, cut, Some(ana)).unwrap();
    assert_eq!(second.number, 2);
    let called = ticket(
        sim.exec(staff_member(), Command::CallNext { staff_id: ana })
            .unwrap(),
    );
    assert_eq!(
        (called.id, called.status, called.staff_id),
        (first.id, TicketStatus::Called, Some(ana))
    );
    let started = ticket(
        sim.exec(
            staff_member(),
            Command::StartTicket {
                ticket_id: first.id,
            },
        )
        .unwrap(),
    );
    assert_eq!(started.status, TicketStatus::InService);
    // Ana is busy; the second ticket waits for her specifically.
    let shown = sim
        .est()
        .ticket_view(second.id, sim.now.as_second())
        .unwrap();
    assert_eq!(
        (shown.position, shown.eta),
        (Some(1), Some(ts("2026-11-30T12:30:00Z")))
    );
    assert_eq!(
        sim.exec(staff_member(), Command::CallNext { staff_id: ana })
            .unwrap_err()
            .code,
        ErrorCode::Conflict
    );
    let done = ticket(
        sim.exec(
            staff_member(),
            Command::FinishTicket {
                ticket_id: first.id,
            },
        )
        .unwrap(),
    );
    assert_eq!(done.status, TicketStatus::Done);
    assert_eq!(
        ticket(
            sim.exec(staff_member(), Command::CallNext { staff_id: ana })
                .unwrap()
        )
        .id,
        second.id
    );
    // Numbering restarts the next local day.
    sim.now = ts("2026-12-01T12:00:00Z");
    assert_eq!(join(&mut sim, 3, cut, None).unwrap().number, 1);
}

#[test]
fn a_day_keeps_its_last_ended_tickets_and_every_active_one() {
    let (mut sim, _, [cut, _]) = shop();
    let walk_in = |sim: &mut Sim| {
        let command = Command::JoinQueue {
            service_id: cut,
            staff_id: None,
            name: Some("Walk-in".into()),
        };
        ticket(sim.exec(staff_member(), command).unwrap())
    };
    let waiting = walk_in(&mut sim);
    let mut ended = Vec::new();
    for _ in 0..MAX_ENDED_KEPT + 3 {
        sim.now = sim
            .now
            .checked_add(jiff::SignedDuration::from_secs(1))
            .unwrap();
        let t = walk_in(&mut sim);
        sim.exec(staff_member(), Command::LeaveQueue { ticket_id: t.id })
            .unwrap();
        ended.push(t.id);
    }
    let est = sim.est();
    assert_eq!(est.queue.ticket_count(), MAX_ENDED_KEPT + 1);
    let now_s = sim.now.as_second();
    assert!(
        est.ticket_view(waiting.id, now_s).is_some(),
        "an active ticket is never dropped, however long ago it joined"
    );
    for (i, id) in ended.iter().enumerate() {
        assert_eq!(
            est.ticket_view(*id, now_s).is_some(),
            i >= 3,
            "ended ticket {i}: only the first three to end are dropped"
        );
    }
    // A restore keeps the same tickets, and drops the same one next.
    let mut restored =
        sim.with_state(navaro_engine::domain::Establishment::restore(&est.to_snapshot()).unwrap());
    let kept =
        |sim: &Sim| -> BTreeSet<TicketId> { sim.est().queue.tickets().map(|t| t.id).collect() };
    assert_eq!(kept(&restored), kept(&sim));
    for sim in [&mut sim, &mut restored] {
        let t = walk_in(sim);
        sim.exec(staff_member(), Command::LeaveQueue { ticket_id: t.id })
            .unwrap();
        assert!(sim.est().queue.ticket(&ended[3]).is_none());
        assert!(sim.est().queue.ticket(&ended[4]).is_some());
    }
    assert_eq!(kept(&restored), kept(&sim));
}

#[test]
fn queue_rules() {
    let (mut sim, [ana, bruno], [cut, shave]) = shop();
    let mine = join(&mut sim, 1, cut, None).unwrap();
    assert_eq!(
        join(&mut sim, 1, cut, None).unwrap_err().code,
        ErrorCode::Conflict,
        "one active ticket per customer"
    );
    assert_eq!(
        join(&mut sim, 2, shave, Some(bruno)).unwrap_err().code,
        ErrorCode::StaffCannotPerform
    );
    // Customers act on their own ticket only; members on any.
    assert_eq!(
        sim.exec(customer(2), Command::LeaveQueue { ticket_id: mine.id })
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    assert_eq!(
        sim.exec(customer(1), Command::CallNext { staff_id: ana })
            .unwrap_err()
            .code,
        ErrorCode::Forbidden
    );
    let left = ticket(
        sim.exec(customer(1), Command::LeaveQueue { ticket_id: mine.id })
            .unwrap(),
    );
    assert_eq!(left.status, TicketStatus::Left);
    // A member adds a walk-in by name.
    let walk_in = sim
        .exec(
            staff_member(),
            Command::JoinQueue {
                service_id: cut,
                staff_id: None,
                name: Some("Carlos".into()),
            },
        )
        .map(ticket)
        .unwrap();
    assert_eq!(
        (walk_in.customer_id, walk_in.name.as_deref()),
        (None, Some("Carlos"))
    );
    // Nobody waits for Bruno's services? The walk-in can be cut by Bruno.
    assert_eq!(
        ticket(
            sim.exec(staff_member(), Command::CallNext { staff_id: bruno })
                .unwrap()
        )
        .id,
        walk_in.id
    );
    assert_eq!(
        sim.exec(staff_member(), Command::CallNext { staff_id: ana })
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    // The queue has a maximum length.
    sim.exec(
        owner(),
        Command::UpdateSettings {
            patch: navaro_protocol::SettingsPatch {
                queue_max_length: Some(2),
                ..Default::default()
            },
        },
    )
    .unwrap();
    join(&mut sim, 10, cut, None).unwrap();
    join(&mut sim, 11, cut, None).unwrap();
    assert_eq!(
        join(&mut sim, 12, cut, None).unwrap_err().code,
        ErrorCode::LimitReached
    );
}

#[test]
fn call_next_skips_tickets_the_staff_member_cannot_serve() {
    let (mut sim, [ana, bruno], [cut, shave]) = shop();
    let shave_ticket = join(&mut sim, 1, shave, None).unwrap();
    let for_ana = join(&mut sim, 2, cut, Some(ana)).unwrap();
    let anyone = join(&mut sim, 3, cut, None).unwrap();
    // Bruno cannot shave and is not Ana: the first ticket he can take is the third.
    assert_eq!(
        ticket(
            sim.exec(staff_member(), Command::CallNext { staff_id: bruno })
                .unwrap()
        )
        .id,
        anyone.id
    );
    assert_eq!(
        ticket(
            sim.exec(staff_member(), Command::CallNext { staff_id: ana })
                .unwrap()
        )
        .id,
        shave_ticket.id
    );
    // Members can reorder.
    let late = join(&mut sim, 4, cut, None).unwrap();
    let moved = ticket(
        sim.exec(
            staff_member(),
            Command::MoveTicket {
                ticket_id: late.id,
                position: 1,
            },
        )
        .unwrap(),
    );
    assert_eq!(moved.position, Some(1));
    let order: Vec<_> = sim.est().queue.waiting.iter().copied().collect();
    assert_eq!(order, vec![late.id, for_ana.id]);
    assert_eq!(
        sim.exec(
            staff_member(),
            Command::MoveTicket {
                ticket_id: late.id,
                position: 3
            }
        )
        .unwrap_err()
        .code,
        ErrorCode::InvalidRequest
    );
}

#[test]
fn estimates_plan_around_bookings() {
    let (mut sim, [ana, _], [_, shave]) = shop();
    // Ana has a booking at 09:30-10:00 local: the 45-minute shave does not fit before it.
    let cut = sim.est().services[0].info.id;
    sim.book(customer(50), cut, "2026-11-30T12:30:00Z", Some(ana))
        .unwrap();
    let t = join(&mut sim, 1, shave, None).unwrap();
    assert_eq!(
        t.eta,
        Some(ts("2026-11-30T13:00:00Z")),
        "after the booking, not in the 30-minute gap before it"
    );
}

#[test]
fn a_called_ticket_not_started_becomes_a_no_show_after_the_grace() {
    let (mut sim, [ana, _], [cut, _]) = shop();
    let t = join(&mut sim, 1, cut, None).unwrap();
    sim.exec(staff_member(), Command::CallNext { staff_id: ana })
        .unwrap();
    let ctx = |sim: &Sim| Context {
        now: sim.now,
        new_id: Uuid::nil(),
    };
    assert!(expire_called(sim.est(), &ctx(&sim)).is_empty());
    sim.now = ts("2026-11-30T12:05:00Z");
    let events = expire_called(sim.est(), &ctx(&sim));
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].ticket().map(|x| (x.id, x.status)),
        Some((t.id, TicketStatus::NoShow))
    );
}

/// Record clock-driven events as the actor does.
fn record(sim: &mut Sim, events: Vec<navaro_protocol::Event>) {
    let after = sim.est().seq;
    let records = navaro_engine::domain::number(after, events, sim.now, None);
    navaro_engine::domain::apply_all(&mut sim.state, &records).unwrap();
}

fn eta_of(event: &navaro_protocol::Event, id: TicketId) -> Option<jiff::Timestamp> {
    event
        .queue_positions()?
        .iter()
        .find(|p| p.ticket_id == id)?
        .eta
}

#[test]
fn estimates_follow_the_clock_when_a_service_runs_over() {
    let (mut sim, [ana, _], [_, shave]) = shop();
    // Only Ana shaves. She starts one at 09:00 (45 minutes); a second shave waits.
    let first = join(&mut sim, 1, shave, None).unwrap();
    sim.exec(staff_member(), Command::CallNext { staff_id: ana })
        .unwrap();
    sim.exec(
        staff_member(),
        Command::StartTicket {
            ticket_id: first.id,
        },
    )
    .unwrap();
    let second = join(&mut sim, 2, shave, None).unwrap();
    assert_eq!(second.eta, Some(ts("2026-11-30T12:45:00Z")));
    // Nothing moved: nothing to tell.
    assert!(refresh_estimates(sim.est(), sim.now.as_second()).is_none());
    sim.now = ts("2026-11-30T12:30:00Z");
    assert!(
        refresh_estimates(sim.est(), sim.now.as_second()).is_none(),
        "within the planned service"
    );
    // 09:50 and the first shave is still going: the second one's estimate moves.
    sim.now = ts("2026-11-30T12:50:00Z");
    let event = refresh_estimates(sim.est(), sim.now.as_second()).expect("estimates moved");
    assert_eq!(event.kind(), "queue.estimates");
    assert_eq!(eta_of(&event, second.id), Some(ts("2026-11-30T12:50:00Z")));
    record(&mut sim, vec![event]);
    assert!(
        refresh_estimates(sim.est(), sim.now.as_second()).is_none(),
        "told once"
    );
    // The published estimates survive a snapshot.
    let restored = navaro_engine::domain::Establishment::restore(&sim.est().to_snapshot()).unwrap();
    assert!(refresh_estimates(&restored, sim.now.as_second()).is_none());
}

#[test]
fn estimates_follow_a_booking_that_takes_the_walk_ins_gap() {
    let (mut sim, [_, bruno], [cut, _]) = shop();
    let waiting = join(&mut sim, 1, cut, Some(bruno)).unwrap();
    assert_eq!(waiting.eta, Some(ts("2026-11-30T12:00:00Z")));
    // A customer books Bruno from 09:15: the walk-in's 09:00 start no longer fits.
    sim.now = ts("2026-11-30T12:01:00Z");
    sim.book(customer(60), cut, "2026-11-30T12:15:00Z", Some(bruno))
        .unwrap();
    let event = refresh_estimates(sim.est(), sim.now.as_second()).expect("estimates moved");
    assert_eq!(eta_of(&event, waiting.id), Some(ts("2026-11-30T12:45:00Z")));
}

#[derive(Clone, Debug)]
enum Op {
    Join {
        who: u8,
        service: u8,
        staff: Option<u8>,
    },
    WalkIn {
        service: u8,
    },
    Call {
        staff: u8,
    },
    Start {
        pick: u8,
    },
    Finish {
        pick: u8,
    },
    NoShow {
        pick: u8,
    },
    Leave {
        pick: u8,
    },
    Move {
        pick: u8,
        position: u8,
    },
    Book {
        staff: u8,
        offset_15: u8,
    },
    Advance {
        minutes: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..12, 0u8..2, proptest::option::of(0u8..2)).prop_map(|(who, service, staff)| Op::Join { who, service, staff }),
        1 => (0u8..2).prop_map(|service| Op::WalkIn { service }),
        3 => (0u8..2).prop_map(|staff| Op::Call { staff }),
        2 => any::<u8>().prop_map(|pick| Op::Start { pick }),
        2 => any::<u8>().prop_map(|pick| Op::Finish { pick }),
        1 => any::<u8>().prop_map(|pick| Op::NoShow { pick }),
        1 => any::<u8>().prop_map(|pick| Op::Leave { pick }),
        1 => (any::<u8>(), 1u8..8).prop_map(|(pick, position)| Op::Move { pick, position }),
        1 => (0u8..2, 0u8..32).prop_map(|(staff, offset_15)| Op::Book { staff, offset_15 }),
        1 => (1u8..90).prop_map(|minutes| Op::Advance { minutes }),
    ]
}

fn pick(ids: &[TicketId], n: u8) -> Option<TicketId> {
    (!ids.is_empty()).then(|| ids[n as usize % ids.len()])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_queue_keeps_its_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        let (mut sim, staff, services) = shop();
        let mut all: Vec<TicketId> = Vec::new();
        let mut called_once: HashSet<TicketId> = HashSet::new();
        for op in &ops {
            let before = sim.est().clone();
            match *op {
                Op::Join { who, service, staff: preferred } => {
                    if let Ok(t) = join(&mut sim, u128::from(who), services[service as usize], preferred.map(|s| staff[s as usize])) {
                        all.push(t.id);
                    }
                }
                Op::WalkIn { service } => {
                    let command = Command::JoinQueue { service_id: services[service as usize], staff_id: None, name: Some("Walk-in".into()) };
                    if let Ok(Reply::Ticket(t)) = sim.exec(staff_member(), command) {
                        all.push(t.id);
                    }
                }
                Op::Call { staff: s } => {
                    if let Ok(Reply::Ticket(t)) = sim.exec(staff_member(), Command::CallNext { staff_id: staff[s as usize] }) {
                        prop_assert!(called_once.insert(t.id), "a ticket is called at most once");
                        // FIFO: no earlier waiting ticket was eligible for this staff member.
                        let index = s as usize;
                        for earlier in before.queue.waiting.iter().take_while(|id| **id != t.id) {
                            let e = before.queue.ticket(earlier).unwrap();
                            let can = before.service(e.service_id).is_some_and(|svc| svc.staff.contains(&index));
                            prop_assert!(!(can && e.staff_id.is_none_or(|p| p == staff[index])), "ticket {} was skipped", e.number);
                        }
                    }
                }
                Op::Start { pick: n } => if let Some(id) = pick(&all, n) { let _ = sim.exec(staff_member(), Command::StartTicket { ticket_id: id }); },
                Op::Finish { pick: n } => if let Some(id) = pick(&all, n) { let _ = sim.exec(staff_member(), Command::FinishTicket { ticket_id: id }); },
                Op::NoShow { pick: n } => if let Some(id) = pick(&all, n) { let _ = sim.exec(staff_member(), Command::NoShowTicket { ticket_id: id }); },
                Op::Leave { pick: n } => if let Some(id) = pick(&all, n) { let _ = sim.exec(staff_member(), Command::LeaveQueue { ticket_id: id }); },
                Op::Move { pick: n, position } => if let Some(id) = pick(&all, n) {
                    let _ = sim.exec(staff_member(), Command::MoveTicket { ticket_id: id, position: u32::from(position) });
                },
                Op::Book { staff: s, offset_15 } => {
                    let start = sim.now.checked_add(jiff::SignedDuration::from_mins(15 * i64::from(offset_15))).unwrap();
                    let floor = jiff::Timestamp::from_second(start.as_second() / 900 * 900).unwrap();
                    let _ = sim.exec(staff_member(), Command::Book { service_id: services[0], start: floor, staff_id: Some(staff[s as usize]), customer_id: Some(customer(99).user_id), promotion: None });
                }
                Op::Advance { minutes } => sim.now = sim.now.checked_add(jiff::SignedDuration::from_mins(i64::from(minutes))).unwrap(),
            }
            let est = sim.est();
            // Nothing lost or duplicated: the waiting list is exactly the waiting tickets.
            let waiting: Vec<TicketId> = est.queue.waiting.iter().copied().collect();
            let unique: BTreeSet<TicketId> = waiting.iter().copied().collect();
            prop_assert_eq!(unique.len(), waiting.len());
            let by_status: BTreeSet<TicketId> = est.queue.tickets().filter(|t| t.status == TicketStatus::Waiting).map(|t| t.id).collect();
            prop_assert_eq!(&unique, &by_status);
            for id in &all {
                prop_assert!(est.queue.ticket(id).is_some(), "ticket lost");
            }
            // The index of active tickets is exactly the tickets not yet ended, and so
            // is the one a snapshot's restore rebuilds.
            let active: BTreeSet<TicketId> = est.queue.tickets().filter(|t| t.status.is_active()).map(|t| t.id).collect();
            let indexed: BTreeSet<TicketId> = est.queue.active_ids().collect();
            prop_assert_eq!(&indexed, &active);
            let restored = navaro_engine::domain::Establishment::restore(&est.to_snapshot()).unwrap();
            let rebuilt: BTreeSet<TicketId> = restored.queue.active_ids().collect();
            prop_assert_eq!(&rebuilt, &active);
            // So is the index of ended tickets, exactly the others.
            let ended: BTreeSet<TicketId> = est.queue.tickets().filter(|t| !t.status.is_active()).map(|t| t.id).collect();
            let indexed: BTreeSet<TicketId> = est.queue.ended_ids().collect();
            prop_assert_eq!(&indexed, &ended);
            let rebuilt: BTreeSet<TicketId> = restored.queue.ended_ids().collect();
            prop_assert_eq!(&rebuilt, &ended);
            // Each staff member serves at most one ticket at a time.
            for s in staff {
                let serving = est.queue.tickets().filter(|t| t.staff_id == Some(s) && matches!(t.status, TicketStatus::Called | TicketStatus::InService)).count();
                prop_assert!(serving <= 1);
            }
            // Estimates: ordered per preferred staff member, and never over a booking.
            let places = estimates(est, sim.now.as_second());
            prop_assert_eq!(places.len(), waiting.len());
            let mut last_eta: [Option<jiff::Timestamp>; 2] = [None, None];
            for place in &places {
                let t = est.queue.ticket(&place.ticket_id).unwrap();
                let Some(eta) = place.eta else { continue };
                prop_assert!(eta >= sim.now.checked_sub(jiff::SignedDuration::from_mins(1)).unwrap());
                let occupies = est.service(t.service_id).unwrap().occupies();
                let start = eta.as_second() / 60;
                let fits = |index: usize| first_overlap(&est.calendars[index], start, start + occupies, None, Some(sim.now.as_second())).is_none();
                match t.staff_id.and_then(|p| est.staff_index(p)) {
                    Some(index) => {
                        prop_assert!(fits(index), "estimate over a booking");
                        if let Some(previous) = last_eta[index] {
                            prop_assert!(eta >= previous, "estimates decrease with position");
                        }
                        last_eta[index] = Some(eta);
                    }
                    None => {
                        let service = est.service(t.service_id).unwrap();
                        prop_assert!(service.staff.iter().any(|i| fits(*i)), "no eligible staff is free at the estimate");
                    }
                }
            }
        }
    }
}
