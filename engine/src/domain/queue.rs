//! The walk-in queue: tickets, call-next, wait estimates.
//!
//! The queue lives in the same actor as the agenda, so an estimate knows that a barber
//! has a booking at 10:00: a walk-in is planned into the first stretch of a staff
//! member's working hours that is long enough for its service and clear of bookings,
//! holds and time off. Positions and estimates are recomputed on every change and
//! travel with each `queue.*` event.

use std::sync::Arc;

use navaro_protocol::{
    Caller, ErrorCode, Event, QueuePosition, Rejection, ServiceId, StaffId, Ticket, TicketId,
    TicketStatus, UserId,
};

use super::decide::{Context, Events, require_member, staff_index};
use super::rules::parse_name;
use super::state::{Establishment, first_overlap};
use super::time::{
    LocalDay, MINUTES_PER_DAY, Minute, local_position, timestamp, weekday_of_epoch_day,
};

/// How far ahead an estimate looks for a fitting gap before giving up (no estimate).
const ESTIMATE_HORIZON_MINUTES: i64 = MINUTES_PER_DAY;
/// Steps of the gap search per ticket: each step skips one obstacle (a booking, a break,
/// time off), so this bounds the work on a pathological agenda.
const MAX_GAP_STEPS: usize = 256;

/// How many ended tickets (done, no-show, left) an establishment keeps for the day, so
/// that their holders can still read them. Past it the one that ended first is dropped:
/// without a bound a walk-in day's ended tickets grew memory, every snapshot and each
/// restore without limit (thousands per establishment in a load test) until the local
/// day turned. A busy shop ends a few hundred a day.
pub const MAX_ENDED_KEPT: usize = 1_000;

/// The queue part of an establishment's state.
#[derive(Clone, Debug, Default)]
pub struct Queue {
    /// The tickets of the current local day: the active ones, and the last
    /// [`MAX_ENDED_KEPT`] that ended. Private: it changes only through [`Queue::keep`]
    /// and [`Queue::start_day`], which keep [`Queue::active`] and [`Queue::ended`] in
    /// step with it.
    tickets: imbl::HashMap<TicketId, Arc<Ticket>>,
    /// The ended tickets kept, by when they ended (then id): the first is dropped next.
    /// Ordered by the tickets themselves, so a restore from a snapshot, which keeps them
    /// in any order, keeps the same ones.
    ended: imbl::OrdSet<(jiff::Timestamp, TicketId)>,
    /// The tickets not yet ended (waiting, called, in service): what the queue's
    /// decisions and estimates look at. Scanning `tickets` instead made each queue
    /// event cost in proportion to the tickets the day had already ended (thousands in
    /// a load test's establishments, and on a busy walk-in day).
    active: imbl::HashSet<TicketId>,
    /// Waiting tickets in queue order.
    pub waiting: imbl::Vector<TicketId>,
    /// The local day the current numbering belongs to.
    pub day: i64,
    pub last_number: u32,
    /// The places and estimates the last queue event carried: what subscribers were last
    /// told, to compare with what the clock says now ([`refresh_estimates`]).
    pub published: Vec<QueuePosition>,
}

pub(crate) fn decide_queue(
    est: &Establishment,
    ctx: &Context,
    caller: &Caller,
    command: &navaro_protocol::Command,
) -> Result<Events, Rejection> {
    use navaro_protocol::Command as C;
    let events = match command {
        C::JoinQueue {
            service_id,
            staff_id,
            name,
        } => vec![join(
            est,
            ctx,
            caller,
            *service_id,
            *staff_id,
            name.as_deref(),
        )?],
        C::CallNext { staff_id } => vec![call_next(est, ctx, caller, *staff_id)?],
        C::StartTicket { ticket_id } => {
            let ticket = member_ticket(est, caller, *ticket_id, &[TicketStatus::Called])?;
            let ticket = Ticket {
                status: TicketStatus::InService,
                started_at: Some(ctx.now),
                ..ticket
            };
            vec![Event::QueueStarted {
                ticket,
                queue: Vec::new(),
            }]
        }
        C::FinishTicket { ticket_id } => {
            let ticket = member_ticket(est, caller, *ticket_id, &[TicketStatus::InService])?;
            let ticket = Ticket {
                status: TicketStatus::Done,
                ended_at: Some(ctx.now),
                ..ticket
            };
            vec![Event::QueueFinished {
                ticket,
                queue: Vec::new(),
            }]
        }
        C::NoShowTicket { ticket_id } => {
            let ticket = member_ticket(est, caller, *ticket_id, &[TicketStatus::Called])?;
            let ticket = Ticket {
                status: TicketStatus::NoShow,
                ended_at: Some(ctx.now),
                ..ticket
            };
            vec![Event::QueueNoShow {
                ticket,
                queue: Vec::new(),
            }]
        }
        C::LeaveQueue { ticket_id } => {
            let ticket = own_ticket(est, caller, *ticket_id)?;
            if !matches!(ticket.status, TicketStatus::Waiting | TicketStatus::Called) {
                return Err(Rejection::new(
                    ErrorCode::Conflict,
                    "the ticket is no longer waiting",
                ));
            }
            let ticket = Ticket {
                status: TicketStatus::Left,
                ended_at: Some(ctx.now),
                ..ticket
            };
            vec![Event::QueueLeft {
                ticket,
                queue: Vec::new(),
            }]
        }
        C::MoveTicket {
            ticket_id,
            position,
        } => vec![move_ticket(est, caller, *ticket_id, *position)?],
        _ => return Err(Rejection::new(ErrorCode::Internal, "not a queue command")),
    };
    Ok(with_positions(est, ctx, events))
}

fn join(
    est: &Establishment,
    ctx: &Context,
    caller: &Caller,
    service_id: ServiceId,
    staff_id: Option<StaffId>,
    name: Option<&str>,
) -> Result<Event, Rejection> {
    let service = est
        .service(service_id)
        .ok_or_else(|| Rejection::field(ErrorCode::NotFound, "service_id", "service not found"))?;
    if let Some(id) = staff_id {
        let index = staff_index(est, id)?;
        if !service.staff.contains(&index) {
            return Err(Rejection::field(
                ErrorCode::StaffCannotPerform,
                "staff_id",
                "this staff member does not perform the service",
            ));
        }
    }
    let walk_in = caller.role.is_member() && name.is_some();
    let name = name.map(|n| parse_name("name", n)).transpose()?;
    let customer_id = (!walk_in).then_some(caller.user_id);
    if let Some(customer) = customer_id
        && active_ticket_of(est, customer).is_some()
    {
        return Err(Rejection::new(
            ErrorCode::Conflict,
            "you already have a ticket in this queue",
        ));
    }
    if est.queue.waiting.len() >= usize::from(est.settings.raw.queue_max_length) {
        return Err(Rejection::new(ErrorCode::LimitReached, "the queue is full"));
    }
    let today = local_position(&est.settings.zone, ctx.now.as_second().div_euclid(60)).epoch_day;
    let number = if today == est.queue.day {
        est.queue.last_number + 1
    } else {
        1
    };
    let ticket = Ticket {
        id: TicketId(ctx.new_id),
        number,
        customer_id,
        name,
        service_id,
        staff_id,
        status: TicketStatus::Waiting,
        position: None,
        eta: None,
        joined_at: ctx.now,
        called_at: None,
        started_at: None,
        ended_at: None,
    };
    Ok(Event::QueueJoined {
        ticket,
        queue: Vec::new(),
    })
}

fn call_next(
    est: &Establishment,
    ctx: &Context,
    caller: &Caller,
    staff_id: StaffId,
) -> Result<Event, Rejection> {
    require_member(caller)?;
    let index = staff_index(est, staff_id)?;
    let busy = est.queue.active_tickets().any(|t| {
        t.staff_id == Some(staff_id)
            && matches!(t.status, TicketStatus::Called | TicketStatus::InService)
    });
    if busy {
        return Err(Rejection::new(
            ErrorCode::Conflict,
            "this staff member is already serving a ticket",
        ));
    }
    let next = est
        .queue
        .waiting
        .iter()
        .filter_map(|id| est.queue.ticket(id))
        .find(|t| {
            t.staff_id.is_none_or(|preferred| preferred == staff_id)
                && est
                    .service(t.service_id)
                    .is_some_and(|s| s.staff.contains(&index))
        });
    let ticket = next.ok_or_else(|| {
        Rejection::new(
            ErrorCode::NotFound,
            "nobody is waiting for this staff member",
        )
    })?;
    let ticket = Ticket {
        status: TicketStatus::Called,
        staff_id: Some(staff_id),
        called_at: Some(ctx.now),
        ..(**ticket).clone()
    };
    Ok(Event::QueueCalled {
        ticket,
        queue: Vec::new(),
    })
}

fn move_ticket(
    est: &Establishment,
    caller: &Caller,
    ticket_id: TicketId,
    position: u32,
) -> Result<Event, Rejection> {
    require_member(caller)?;
    let ticket = member_ticket(est, caller, ticket_id, &[TicketStatus::Waiting])?;
    let len = est.queue.waiting.len();
    if position == 0 || position as usize > len {
        return Err(Rejection::invalid(
            "position",
            format!("position must be between 1 and {len}"),
        ));
    }
    // The new order travels in the event (`queue`), filled in by `with_positions`.
    let mut order: Vec<TicketId> = est
        .queue
        .waiting
        .iter()
        .copied()
        .filter(|id| *id != ticket_id)
        .collect();
    order.insert(position as usize - 1, ticket_id);
    let queue = order
        .into_iter()
        .enumerate()
        .map(|(i, id)| QueuePosition {
            ticket_id: id,
            position: i as u32 + 1,
            eta: None,
        })
        .collect();
    Ok(Event::QueueMoved { ticket, queue })
}

impl Queue {
    /// A ticket of the current local day, ended or not (of the ended ones, the last
    /// [`MAX_ENDED_KEPT`]).
    pub fn ticket(&self, id: &TicketId) -> Option<&Arc<Ticket>> {
        self.tickets.get(id)
    }

    /// Every ticket kept (see [`Queue::ticket`]), in no particular order.
    pub fn tickets(&self) -> impl Iterator<Item = &Arc<Ticket>> + '_ {
        self.tickets.values()
    }

    /// How many tickets are kept (see [`Queue::ticket`]).
    pub fn ticket_count(&self) -> usize {
        self.tickets.len()
    }

    /// The tickets not yet ended (see [`Queue::active`]), in no particular order.
    pub fn active_tickets(&self) -> impl Iterator<Item = &Arc<Ticket>> + '_ {
        self.active.iter().filter_map(|id| self.tickets.get(id))
    }

    /// The ids in the index of active tickets, as kept (for checking it).
    #[doc(hidden)]
    pub fn active_ids(&self) -> impl Iterator<Item = TicketId> + '_ {
        self.active.iter().copied()
    }

    /// The ids in the index of ended tickets, as kept (for checking it).
    #[doc(hidden)]
    pub fn ended_ids(&self) -> impl Iterator<Item = TicketId> + '_ {
        self.ended.iter().map(|(_, id)| *id)
    }

    /// Keep `ticket` (its latest state) and its place among the active or the ended
    /// ones; past [`MAX_ENDED_KEPT`] ended, drop the one that ended first.
    pub(crate) fn keep(&mut self, ticket: Arc<Ticket>) {
        let id = ticket.id;
        // A ticket ends once, but the index must not hold a stale entry whatever comes:
        // one would count against the bound and, dropped, take the ticket with it.
        if let Some(before) = self.tickets.get(&id)
            && !before.status.is_active()
        {
            self.ended.remove(&ended_key(before));
        }
        if ticket.status.is_active() {
            self.active.insert(id);
        } else {
            self.active.remove(&id);
            self.ended.insert(ended_key(&ticket));
        }
        self.tickets.insert(id, ticket);
        while self.ended.len() > MAX_ENDED_KEPT {
            if let Some((_, first)) = self.ended.remove_min() {
                self.tickets.remove(&first);
            }
        }
    }

    /// A new local day: numbering restarts, and the ended tickets of the day before are
    /// no longer kept (the active ones, and so the index, stay as they are).
    pub(crate) fn start_day(&mut self, day: i64) {
        self.tickets.retain(|_, t| t.status.is_active());
        self.ended.clear();
        self.day = day;
    }
}

/// Where an ended ticket sits in [`Queue::ended`]. Every way to end a ticket sets
/// `ended_at`; `joined_at` only guards a ticket from elsewhere (a snapshot) that lacks it.
fn ended_key(ticket: &Ticket) -> (jiff::Timestamp, TicketId) {
    (ticket.ended_at.unwrap_or(ticket.joined_at), ticket.id)
}

/// Called tickets not started within the grace period: the actor's tick records them as
/// no-shows.
pub fn expire_called(est: &Establishment, ctx: &Context) -> Events {
    let grace_s = i64::from(est.settings.raw.queue_no_show_grace_minutes) * 60;
    let mut lapsed: Vec<Ticket> = est
        .queue
        .active_tickets()
        .filter(|t| {
            t.status == TicketStatus::Called
                && t.called_at
                    .is_some_and(|c| c.as_second() + grace_s <= ctx.now.as_second())
        })
        .map(|t| Ticket {
            status: TicketStatus::NoShow,
            ended_at: Some(ctx.now),
            ..(**t).clone()
        })
        .collect();
    lapsed.sort_by_key(|t| (t.called_at, t.id));
    let events = lapsed
        .into_iter()
        .map(|ticket| Event::QueueNoShow {
            ticket,
            queue: Vec::new(),
        })
        .collect();
    with_positions(est, ctx, events)
}

fn member_ticket(
    est: &Establishment,
    caller: &Caller,
    ticket_id: TicketId,
    allowed: &[TicketStatus],
) -> Result<Ticket, Rejection> {
    require_member(caller)?;
    let ticket = est
        .queue
        .ticket(&ticket_id)
        .ok_or_else(|| Rejection::not_found("ticket"))?;
    if !allowed.contains(&ticket.status) {
        return Err(Rejection::new(
            ErrorCode::Conflict,
            format!("the ticket is {:?}", ticket.status).to_lowercase(),
        ));
    }
    Ok((**ticket).clone())
}

/// The ticket, if the caller may act on it: members on any, customers on their own.
fn own_ticket(
    est: &Establishment,
    caller: &Caller,
    ticket_id: TicketId,
) -> Result<Ticket, Rejection> {
    match est.queue.ticket(&ticket_id) {
        Some(t) if caller.role.is_member() || t.customer_id == Some(caller.user_id) => {
            Ok((**t).clone())
        }
        _ => Err(Rejection::not_found("ticket")),
    }
}

/// A customer's active ticket, if any.
pub fn active_ticket_of(est: &Establishment, customer: UserId) -> Option<&Arc<Ticket>> {
    est.queue
        .active_tickets()
        .find(|t| t.customer_id == Some(customer))
}

/// Fill each queue event's `queue` with every waiting ticket's place and estimate after
/// it, by applying the events to a (structurally shared) copy of the state.
fn with_positions(est: &Establishment, ctx: &Context, mut events: Events) -> Events {
    let mut after = est.clone();
    for event in &mut events {
        after.apply_queue_event(event);
        let positions = estimates(&after, ctx.now.as_second());
        if let Some(queue) = event.queue_positions_mut() {
            *queue = positions;
        }
    }
    events
}

/// Every waiting ticket's 1-based place and estimated start at `now_s`.
///
/// Each staff member is free from now, or from the end of the ticket they are serving
/// (a called one is assumed to start now). Tickets are planned in queue order, each with
/// the eligible staff member who can start it earliest, into the first gap of working
/// hours that fits the service and its buffer, clear of bookings, live holds and time off.
pub fn estimates(est: &Establishment, now_s: i64) -> Vec<QueuePosition> {
    let now = now_s.div_euclid(60) + i64::from(now_s.rem_euclid(60) != 0);
    let mut free_at: Vec<Minute> = vec![now; est.staff.len()];
    for ticket in est
        .queue
        .active_tickets()
        .filter(|t| matches!(t.status, TicketStatus::Called | TicketStatus::InService))
    {
        let (Some(staff), Some(service)) = (
            ticket.staff_id.and_then(|s| est.staff_index(s)),
            est.service(ticket.service_id),
        ) else {
            continue;
        };
        // In service: until its planned end; called but not started: as if starting now.
        let ends = ticket
            .started_at
            .map_or(now, |t| t.as_second().div_euclid(60))
            + service.occupies();
        free_at[staff] = free_at[staff].max(ends);
    }
    let mut out = Vec::with_capacity(est.queue.waiting.len());
    for (place, id) in est.queue.waiting.iter().enumerate() {
        let mut eta = None;
        if let Some(ticket) = est.queue.ticket(id)
            && let Some(service) = est.service(ticket.service_id)
        {
            let preferred = ticket.staff_id.and_then(|s| est.staff_index(s));
            let best = service
                .staff
                .iter()
                .copied()
                .filter(|s| preferred.is_none_or(|p| p == *s))
                .filter_map(|s| {
                    earliest_fit(est, s, service.occupies(), free_at[s], now_s).map(|t| (t, s))
                })
                .min();
            if let Some((start, staff)) = best {
                free_at[staff] = start + service.occupies();
                eta = Some(timestamp(start));
            }
        }
        out.push(QueuePosition {
            ticket_id: *id,
            position: place as u32 + 1,
            eta,
        });
    }
    out
}

/// The first instant from `from` at which staff `index` can work `occupies` minutes
/// without a break, inside working hours and clear of time off and blocking items.
pub fn earliest_fit(
    est: &Establishment,
    index: usize,
    occupies: i64,
    from: Minute,
    now_s: i64,
) -> Option<Minute> {
    let zone = &est.settings.zone;
    let member = &est.staff[index];
    let limit = from + ESTIMATE_HORIZON_MINUTES;
    let mut t = from;
    for _ in 0..MAX_GAP_STEPS {
        if t > limit {
            return None;
        }
        let position = local_position(zone, t);
        let day = LocalDay::from_epoch_day(zone, position.epoch_day);
        let ranges = &member.hours.days[weekday_of_epoch_day(position.epoch_day)];
        let range = ranges
            .iter()
            .map(|&(a, b)| (day.instant(zone, a), day.instant(zone, b)))
            .find(|&(_, close)| close > t);
        let Some((open, close)) = range else {
            // Nothing more today: try from the next local midnight.
            t = LocalDay::from_epoch_day(zone, position.epoch_day + 1).instant(zone, 0);
            continue;
        };
        if open > t {
            t = open;
            continue;
        }
        if t + occupies > close {
            t = close;
            continue;
        }
        if let Some((_, end, _)) = member
            .time_off
            .iter()
            .find(|(s, e, _)| *s < t + occupies && *e > t)
        {
            t = *end;
            continue;
        }
        if let Some((_, occupancy)) =
            first_overlap(&est.calendars[index], t, t + occupies, None, Some(now_s))
        {
            t = occupancy.end;
            continue;
        }
        return Some(t);
    }
    None
}

/// A `queue.estimates` event when the estimates at `now_s` differ from the ones last
/// published (a service ran over, a booking took a walk-in's gap); `None` when they agree
/// or nobody waits. Positions only change with ticket events, so this is about time.
pub fn refresh_estimates(est: &Establishment, now_s: i64) -> Option<Event> {
    if est.queue.waiting.is_empty() {
        return None;
    }
    let queue = estimates(est, now_s);
    (queue != est.queue.published).then_some(Event::QueueEstimates { queue })
}

impl Establishment {
    /// Apply a queue event's effect on the queue (no seq bookkeeping: `apply` does that).
    pub(crate) fn apply_queue_event(&mut self, event: &Event) {
        if let Some(positions) = event.queue_positions() {
            self.queue.published = positions.to_vec();
        }
        let Some(ticket) = event.ticket() else { return };
        let queue = &mut self.queue;
        match event {
            Event::QueueJoined { .. } => {
                let day = local_position(
                    &self.settings.zone,
                    ticket.joined_at.as_second().div_euclid(60),
                )
                .epoch_day;
                if day != queue.day {
                    queue.start_day(day);
                }
                queue.last_number = ticket.number;
                queue.waiting.push_back(ticket.id);
            }
            Event::QueueMoved { queue: order, .. } => {
                queue.waiting = order.iter().map(|p| p.ticket_id).collect();
            }
            _ => {
                if let Some(at) = queue.waiting.index_of(&ticket.id) {
                    queue.waiting.remove(at);
                }
            }
        }
        queue.keep(Arc::new(ticket.clone()));
    }

    /// A ticket as shown: with its current place and estimate while waiting.
    pub fn ticket_view(&self, ticket_id: TicketId, now_s: i64) -> Option<Ticket> {
        let ticket = self.queue.ticket(&ticket_id)?;
        let mut shown = (**ticket).clone();
        if shown.status == TicketStatus::Waiting
            && let Some(place) = estimates(self, now_s)
                .into_iter()
                .find(|p| p.ticket_id == ticket_id)
        {
            shown.position = Some(place.position);
            shown.eta = place.eta;
        }
        Some(shown)
    }

    /// The active tickets (waiting in queue order, then called and in service) as shown.
    pub fn queue_view(&self, now_s: i64) -> Vec<Ticket> {
        let places = estimates(self, now_s);
        let mut shown: Vec<Ticket> = places
            .iter()
            .filter_map(|p| {
                self.queue.ticket(&p.ticket_id).map(|t| Ticket {
                    position: Some(p.position),
                    eta: p.eta,
                    ..(**t).clone()
                })
            })
            .collect();
        let mut serving: Vec<Ticket> = self
            .queue
            .active_tickets()
            .filter(|t| matches!(t.status, TicketStatus::Called | TicketStatus::InService))
            .map(|t| (**t).clone())
            .collect();
        serving.sort_by_key(|t| (t.called_at, t.number));
        shown.extend(serving);
        shown
    }
}

/// A ticket with its place and estimate taken from the event's queue list.
pub fn shown_ticket(ticket: &Ticket, queue: &[QueuePosition]) -> Ticket {
    let place = queue.iter().find(|p| p.ticket_id == ticket.id);
    Ticket {
        position: place.map(|p| p.position),
        eta: place.and_then(|p| p.eta),
        ..ticket.clone()
    }
}

#[cfg(test)]
mod tests {
    use navaro_protocol::{ServiceId, Ticket, TicketId, TicketStatus};
    use uuid::Uuid;

    use super::*;

    fn ended_at(n: u128, second: i64) -> Arc<Ticket> {
        let at = jiff::Timestamp::from_second(second).unwrap();
        Arc::new(Ticket {
            id: TicketId(Uuid::from_u128(n)),
            number: n as u32,
            customer_id: None,
            name: None,
            service_id: ServiceId(Uuid::nil()),
            staff_id: None,
            status: TicketStatus::Done,
            position: None,
            eta: None,
            joined_at: at,
            called_at: None,
            started_at: None,
            ended_at: Some(at),
        })
    }

    #[test]
    fn the_ended_tickets_kept_are_the_last_to_end_whatever_order_they_come_in() {
        // As a restore from a snapshot taken before the bound (or of another bound)
        // keeps them: in no particular order, more than are kept.
        let extra = 5;
        let total = (MAX_ENDED_KEPT + extra) as u128;
        let mut queue = Queue::default();
        for n in (1..=total).rev() {
            queue.keep(ended_at(n, 1_000 + n as i64));
        }
        assert_eq!(queue.ticket_count(), MAX_ENDED_KEPT);
        for n in 1..=total {
            let kept = queue.ticket(&TicketId(Uuid::from_u128(n))).is_some();
            assert_eq!(kept, n > extra as u128, "ticket {n}");
        }
        // A ticket kept again with another end is indexed once, at its new end: the
        // index holds exactly the ended tickets kept.
        queue.keep(ended_at(total, 1));
        let ended: Vec<TicketId> = queue.ended_ids().collect();
        assert_eq!(ended.len(), MAX_ENDED_KEPT);
        assert_eq!(
            ended[0],
            TicketId(Uuid::from_u128(total)),
            "now the first to end"
        );
        // A new day keeps none of them, and the bound counts afresh.
        queue.start_day(1);
        assert_eq!(queue.ticket_count(), 0);
        queue.keep(ended_at(1, 0));
        assert_eq!(queue.ticket_count(), 1);
    }
}
