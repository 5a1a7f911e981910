//! The operations of the mix: what each one sends, and how its answer is classified
//! (success, an expected refusal, or an error by status and code).

use std::time::Instant;

use hyper::Method;
use hyper::header::HeaderValue;
use jiff::civil::Date;
use serde::Serialize;

use crate::http::Reply;
use crate::live::PushClock;
use crate::options::{AvailabilityForm, Mix};
use crate::world::{
    AVAILABILITY_WINDOW_DAYS, Establishment, Expect, Joining, Lane, LaneStage, LiveBooking,
    TakenLane, World, back_to_room,
};

/// Every kind of request measured, each with its own histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Healthz,
    Availability,
    Establishment,
    Book,
    BookContended,
    Cancel,
    Reschedule,
    QueueJoin,
    /// The queue read by a walk-in who found it too long to join (see
    /// [`World::queue_balk`]).
    QueueRead,
    QueueCall,
    QueueStart,
    QueueFinish,
    /// The queue read by a lane whose last step failed (see [`LaneStage::Resync`]); only
    /// after errors.
    QueueResync,
}

impl OpKind {
    pub const ALL: [OpKind; 13] = [
        OpKind::Healthz,
        OpKind::Availability,
        OpKind::Establishment,
        OpKind::Book,
        OpKind::BookContended,
        OpKind::Cancel,
        OpKind::Reschedule,
        OpKind::QueueJoin,
        OpKind::QueueRead,
        OpKind::QueueCall,
        OpKind::QueueStart,
        OpKind::QueueFinish,
        OpKind::QueueResync,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Healthz => "healthz",
            OpKind::Availability => "availability",
            OpKind::Establishment => "establishment",
            OpKind::Book => "book",
            OpKind::BookContended => "book_contended",
            OpKind::Cancel => "cancel",
            OpKind::Reschedule => "reschedule",
            OpKind::QueueJoin => "queue_join",
            OpKind::QueueRead => "queue_read",
            OpKind::QueueCall => "queue_call",
            OpKind::QueueStart => "queue_start",
            OpKind::QueueFinish => "queue_finish",
            OpKind::QueueResync => "queue_resync",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the scheduler draws; a queue advance becomes a call, start or finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Draw {
    Healthz,
    Availability,
    Establishment,
    Book,
    BookContended,
    Cancel,
    Reschedule,
    QueueJoin,
    QueueAdvance,
}

impl Draw {
    /// The draw for random value `r` under `mix`.
    pub fn pick(mix: &Mix, r: u64) -> Draw {
        let mut at = (r % u64::from(mix.total())) as u32;
        for (weight, draw) in [
            (mix.availability, Draw::Availability),
            (mix.establishment, Draw::Establishment),
            (mix.book, Draw::Book),
            (mix.contended, Draw::BookContended),
            (mix.cancel, Draw::Cancel),
            (mix.reschedule, Draw::Reschedule),
            (mix.join, Draw::QueueJoin),
            (mix.healthz, Draw::Healthz),
        ] {
            if at < weight {
                return draw;
            }
            at -= weight;
        }
        Draw::QueueAdvance
    }
}

/// How one request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A refusal the run provokes on purpose (a lost race for a popular slot, nobody
    /// waiting in the queue); counted apart from errors.
    Expected(&'static str),
    /// `"<status> <code>"`, or `transport` / `timeout`.
    Error(String),
    /// Nothing was sent (e.g. no booking left to cancel); the reason.
    Skipped(&'static str),
}

/// SplitMix64: a cheap, good-enough stream of random values from a seed and a counter.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Send one drawn operation and classify the answer.
pub async fn execute(world: &World, draw: Draw, r: u64) -> (OpKind, Outcome) {
    let est = (r % world.establishments.len() as u64) as usize;
    let r2 = mix64(r);
    match draw {
        Draw::Healthz => (OpKind::Healthz, simple_get(world, "/healthz", None).await),
        Draw::Availability => (OpKind::Availability, availability(world, est, r2).await),
        Draw::Establishment => (
            OpKind::Establishment,
            simple_get(world, &world.establishments[est].path, None).await,
        ),
        Draw::Book => (OpKind::Book, book(world, est, r2, false).await),
        Draw::BookContended => (OpKind::BookContended, book(world, est, r2, true).await),
        Draw::Cancel => (OpKind::Cancel, cancel(world, est, r2).await),
        Draw::Reschedule => (OpKind::Reschedule, reschedule(world, est, r2).await),
        Draw::QueueJoin => join(world, est).await,
        Draw::QueueAdvance => advance(world, est).await,
    }
}

fn classify(reply: &Reply, success: u16) -> Outcome {
    if reply.status == success {
        Outcome::Ok
    } else {
        Outcome::Error(format!("{} {}", reply.status, reply.error_code()))
    }
}

fn transport(error: &anyhow::Error) -> Outcome {
    Outcome::Error(format!("transport: {}", root_cause(error)))
}

fn root_cause(error: &anyhow::Error) -> String {
    let text = error.root_cause().to_string();
    text.chars().take(60).collect()
}

async fn simple_get(world: &World, path: &str, auth: Option<&HeaderValue>) -> Outcome {
    match world.http.get_status(path, auth).await {
        Ok(reply) => classify(&reply, 200),
        Err(e) => transport(&e),
    }
}

async fn availability(world: &World, est: usize, r: u64) -> Outcome {
    let e = &world.establishments[est];
    let service = &e.services[(r % e.services.len() as u64) as usize];
    let from = world.date(((r >> 8) % u64::from(AVAILABILITY_WINDOW_DAYS)) as u32);
    let path = availability_path(&e.path, service, from, world.availability_form);
    simple_get(world, &path, None).await
}

/// A week of one service's availability from `from`, in `form`.
fn availability_path(
    establishment: &str,
    service: &str,
    from: Date,
    form: AvailabilityForm,
) -> String {
    let form = match form {
        AvailabilityForm::Slots => "",
        AvailabilityForm::Runs => "&form=runs",
    };
    format!("{establishment}/availability?service_id={service}&from={from}&days=7{form}")
}

async fn book(world: &World, est: usize, r: u64, contended: bool) -> Outcome {
    let cell = if contended {
        world.hot_cell(est)
    } else {
        world.cell(est)
    };
    let Some(cell) = cell else {
        return Outcome::Skipped("agenda full");
    };
    let e = &world.establishments[est];
    let Ok(start) = world.start_of(cell) else {
        return Outcome::Skipped("start not representable");
    };
    let staff = &e.staff[cell.staff];
    let customer = (r % world.customers.len() as u64) as usize;
    let body = format!(
        r#"{{"service_id":"{}","start":"{start}","staff_id":"{staff}"}}"#,
        e.services[0]
    );
    if !contended {
        world
            .push
            .expect(PushClock::booking_key(staff, start), Instant::now());
    }
    let reply = match world
        .http
        .send(
            Method::POST,
            &e.bookings_path,
            Some(&world.customers[customer].auth),
            Some(body),
        )
        .await
    {
        Ok(reply) => reply,
        Err(error) => return transport(&error),
    };
    if reply.status == 201 {
        let Some(id) = reply
            .json()
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned))
        else {
            return Outcome::Error("201 without an id".to_owned());
        };
        world.ledger.set(
            &id,
            est,
            Expect::Confirmed {
                staff: staff.clone(),
                start,
            },
        );
        e.live.lock().unwrap().push(LiveBooking { id, customer });
        return Outcome::Ok;
    }
    if contended && reply.status == 409 && reply.error_code() == "slot_unavailable" {
        return Outcome::Expected("slot_taken");
    }
    classify(&reply, 201)
}

/// Take one live booking of the establishment out of the pool (so no other operation
/// touches it meanwhile).
fn take_live(world: &World, est: usize, r: u64) -> Option<LiveBooking> {
    let mut live = world.establishments[est].live.lock().unwrap();
    if live.is_empty() {
        return None;
    }
    let at = (r % live.len() as u64) as usize;
    Some(live.swap_remove(at))
}

async fn cancel(world: &World, est: usize, r: u64) -> Outcome {
    let Some(booking) = take_live(world, est, r) else {
        return Outcome::Skipped("no booking to cancel");
    };
    let e = &world.establishments[est];
    let path = format!("{}/{}/cancel", e.bookings_path, booking.id);
    let auth = &world.customers[booking.customer].auth;
    match world.http.send(Method::POST, &path, Some(auth), None).await {
        Ok(reply) if reply.status == 200 => {
            world.ledger.set(&booking.id, est, Expect::Cancelled);
            Outcome::Ok
        }
        Ok(reply) if reply.status >= 500 => {
            // A 503 after the request timeout does not say whether the cancel happened.
            world.ledger.set(&booking.id, est, Expect::Unknown);
            classify(&reply, 200)
        }
        Ok(reply) => {
            e.live.lock().unwrap().push(booking);
            classify(&reply, 200)
        }
        Err(error) => {
            world.ledger.set(&booking.id, est, Expect::Unknown);
            transport(&error)
        }
    }
}

async fn reschedule(world: &World, est: usize, r: u64) -> Outcome {
    let Some(booking) = take_live(world, est, r) else {
        return Outcome::Skipped("no booking to reschedule");
    };
    let e = &world.establishments[est];
    let Some((cell, start)) = world
        .cell(est)
        .and_then(|c| world.start_of(c).ok().map(|s| (c, s)))
    else {
        e.live.lock().unwrap().push(booking);
        return Outcome::Skipped("agenda full");
    };
    let staff = &e.staff[cell.staff];
    let path = format!("{}/{}/reschedule", e.bookings_path, booking.id);
    let body = format!(r#"{{"start":"{start}","staff_id":"{staff}"}}"#);
    let auth = &world.customers[booking.customer].auth;
    match world
        .http
        .send(Method::POST, &path, Some(auth), Some(body))
        .await
    {
        Ok(reply) if reply.status >= 500 => {
            // A 503 after the request timeout does not say whether the move happened.
            world.ledger.set(&booking.id, est, Expect::Unknown);
            classify(&reply, 200)
        }
        Ok(reply) => {
            if reply.status == 200 {
                let expect = Expect::Confirmed {
                    staff: staff.clone(),
                    start,
                };
                world.ledger.set(&booking.id, est, expect);
            }
            e.live.lock().unwrap().push(booking);
            classify(&reply, 200)
        }
        Err(error) => {
            world.ledger.set(&booking.id, est, Expect::Unknown);
            transport(&error)
        }
    }
}

/// A walk-in at establishment `est`: joins its queue, or reads it as the customer at the
/// front of the waiting room when [`World::queue_balk`] of the run's customers are
/// already in it.
async fn join(world: &World, est: usize) -> (OpKind, Outcome) {
    let e = &world.establishments[est];
    let (waiting, front) = {
        let room = e.waiting_room.lock().unwrap();
        (room.len(), room.front().copied())
    };
    match front {
        Some(customer) if world.customers.len().saturating_sub(waiting) >= world.queue_balk => {
            let auth = Some(&world.customers[customer].auth);
            (
                OpKind::QueueRead,
                simple_get(world, &e.queue_path, auth).await,
            )
        }
        _ => (OpKind::QueueJoin, join_now(world, e).await),
    }
}

async fn join_now(world: &World, e: &Establishment) -> Outcome {
    let Some(joining) = Joining::take(&e.waiting_room, &e.unsure) else {
        return Outcome::Skipped("every customer already queued");
    };
    let name = world.ticket_name();
    let body = format!(r#"{{"service_id":"{}","name":"{name}"}}"#, e.services[0]);
    world
        .push
        .expect(PushClock::ticket_key(&name), Instant::now());
    let auth = &world.customers[joining.customer].auth;
    let reply = world
        .http
        .send(Method::POST, &e.queue_path, Some(auth), Some(body))
        .await;
    let status = reply.as_ref().ok().map(|reply| reply.status);
    let outcome = match &reply {
        Ok(reply) => classify(reply, 201),
        Err(error) => transport(error),
    };
    match status {
        // A ticket made now, or a 409 that says the customer already has one: out
        // until a lane calls and finishes it. After a join of theirs whose answer was
        // lost, that 409 is the generator's doubt, not the server's error.
        Some(201 | 409) => {
            if joining.keep_out() && status == Some(409) {
                return Outcome::Expected("ticket_from_a_lost_join");
            }
        }
        _ if matches!(&outcome, Outcome::Error(what) if refused(what)) => joining.refused(),
        // Lost: back to the room, unsure (see [`Joining`]).
        _ => drop(joining),
    }
    outcome
}

/// The next step of one idle staff lane: call the next ticket, start it, or finish it;
/// or, after a step that failed, read the queue to find where the lane stands.
async fn advance(world: &World, est: usize) -> (OpKind, Outcome) {
    let e = &world.establishments[est];
    let Some(mut taken) = TakenLane::take(&e.lanes) else {
        return (OpKind::QueueCall, Outcome::Skipped("every staff lane busy"));
    };
    let lane = &mut taken.lane;
    let owner = &e.owner.auth;
    let (kind, outcome) = match lane.stage.clone() {
        LaneStage::Idle => {
            let body = format!(r#"{{"staff_id":"{}"}}"#, e.staff[lane.staff]);
            let reply = world
                .http
                .send(Method::POST, &e.call_next_path, Some(owner), Some(body))
                .await;
            let outcome = match reply {
                Ok(reply) if reply.status == 200 => match reply.json() {
                    Ok(ticket) => {
                        lane.stage = LaneStage::Called {
                            ticket: ticket["id"].as_str().unwrap_or_default().to_owned(),
                            customer: ticket["customer_id"]
                                .as_str()
                                .and_then(|id| world.customer_index(id)),
                        };
                        Outcome::Ok
                    }
                    Err(_) => Outcome::Error("200 without a ticket".to_owned()),
                },
                Ok(reply) if reply.status == 404 => Outcome::Expected("queue_empty"),
                Ok(reply) => classify(&reply, 200),
                Err(error) => transport(&error),
            };
            // A lost answer may have called someone, and a 409 says the staff member is
            // already serving: either way the lane no longer knows where it stands.
            if let Outcome::Error(what) = &outcome
                && !refused(what)
            {
                lane.stage = LaneStage::Resync { customer: None };
            }
            (OpKind::QueueCall, outcome)
        }
        LaneStage::Called { ticket, customer } => {
            let path = format!("{}/{ticket}/start", e.queue_path);
            let outcome = step(world, &path, owner).await;
            lane.stage = match &outcome {
                Outcome::Ok => LaneStage::Serving { ticket, customer },
                // Not taken (shed, or rate-limited): the same step later.
                Outcome::Error(what) if shed(what) => LaneStage::Called { ticket, customer },
                // Lost, or refused because the ticket moved on (a called ticket that
                // waits too long becomes a no-show).
                _ => LaneStage::Resync { customer },
            };
            (OpKind::QueueStart, outcome)
        }
        LaneStage::Serving { ticket, customer } => {
            let path = format!("{}/{ticket}/finish", e.queue_path);
            let outcome = step(world, &path, owner).await;
            lane.stage = match &outcome {
                Outcome::Ok => {
                    if let Some(customer) = customer {
                        back_to_room(&e.waiting_room, customer);
                    }
                    LaneStage::Idle
                }
                Outcome::Error(what) if shed(what) => LaneStage::Serving { ticket, customer },
                _ => LaneStage::Resync { customer },
            };
            (OpKind::QueueFinish, outcome)
        }
        LaneStage::Resync { customer } => {
            let outcome = resync(world, est, lane, customer).await;
            (OpKind::QueueResync, outcome)
        }
    };
    taken.finish();
    (kind, outcome)
}

/// Read the queue as its owner and put the lane where its staff member stands: serving
/// the ticket the queue shows called or in service for them, else idle. The failed
/// step's customer goes back to the waiting room unless a ticket of theirs is still
/// active (a lane that calls it will send them back). A failed read leaves the lane to
/// resync at its next advance.
async fn resync(world: &World, est: usize, lane: &mut Lane, customer: Option<usize>) -> Outcome {
    let e = &world.establishments[est];
    let reply = match world
        .http
        .send(Method::GET, &e.queue_path, Some(&e.owner.auth), None)
        .await
    {
        Ok(reply) if reply.status == 200 => reply,
        Ok(reply) => return classify(&reply, 200),
        Err(error) => return transport(&error),
    };
    let Ok(queue) = reply.json() else {
        return Outcome::Error("200 without a queue".to_owned());
    };
    let tickets = queue["tickets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let staff = e.staff[lane.staff].as_str();
    lane.stage = tickets
        .iter()
        .filter(|t| t["staff_id"].as_str() == Some(staff))
        .find_map(|t| {
            let ticket = t["id"].as_str()?.to_owned();
            let customer = t["customer_id"]
                .as_str()
                .and_then(|id| world.customer_index(id));
            match t["status"].as_str()? {
                "called" => Some(LaneStage::Called { ticket, customer }),
                "in_service" => Some(LaneStage::Serving { ticket, customer }),
                _ => None,
            }
        })
        .unwrap_or(LaneStage::Idle);
    if let Some(customer) = customer {
        let id = world.customers[customer].id.as_str();
        // The listing holds the active tickets only (waiting, called, in service).
        if !tickets
            .iter()
            .any(|t| t["customer_id"].as_str() == Some(id))
        {
            back_to_room(&e.waiting_room, customer);
        }
    }
    Outcome::Ok
}

/// Whether a failed request was not taken at all, and the same request may succeed
/// later: `503 overloaded` (the server sheds what it has not started: its journal is
/// behind, an establishment's in-flight budget is spent, or every store connection is
/// busy) or a 429.
fn shed(what: &str) -> bool {
    what == "503 overloaded" || what.starts_with("429")
}

/// Whether a failed request certainly changed nothing: shed, or refused with a 4xx
/// other than 409 (which says the server's state is not what the request assumed).
/// Anything else (a 409, another 5xx, a transport failure or timeout) leaves the
/// generator not knowing where things stand.
fn refused(what: &str) -> bool {
    shed(what) || (what.starts_with('4') && !what.starts_with("409"))
}

async fn step(world: &World, path: &str, owner: &HeaderValue) -> Outcome {
    match world
        .http
        .send(Method::POST, path, Some(owner), Some("{}".to_owned()))
        .await
    {
        Ok(reply) => classify(&reply, 200),
        Err(error) => transport(&error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_shed_and_plain_refusals_count_as_nothing_changed() {
        for shed_answer in ["503 overloaded", "429 rate_limited"] {
            assert!(shed(shed_answer) && refused(shed_answer), "{shed_answer}");
        }
        for plain_refusal in ["404 not_found", "403 forbidden", "422 invalid_request"] {
            assert!(
                !shed(plain_refusal) && refused(plain_refusal),
                "{plain_refusal}"
            );
        }
        for unknown in [
            "409 conflict",
            "503 unavailable",
            "500 internal",
            "transport: connection reset",
            "timeout",
        ] {
            assert!(!shed(unknown) && !refused(unknown), "{unknown}");
        }
    }

    #[test]
    fn the_availability_query_asks_for_the_form_chosen() {
        let from = Date::constant(2026, 12, 1);
        let path = |form| availability_path("/v1/establishments/e", "s", from, form);
        assert_eq!(
            path(AvailabilityForm::Slots),
            "/v1/establishments/e/availability?service_id=s&from=2026-12-01&days=7"
        );
        assert_eq!(
            path(AvailabilityForm::Runs),
            "/v1/establishments/e/availability?service_id=s&from=2026-12-01&days=7&form=runs"
        );
    }
}
