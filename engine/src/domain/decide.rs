//! The decision function: given the state and a command, the events to record, or a
//! rejection. Pure: no clock, no I/O, no randomness; "now" and the id for anything new
//! come in a [`Context`].

use jiff::Timestamp;
use navaro_protocol::{
    Alternative, Booking, BookingId, BookingStatus, Caller, Command, ErrorCode, Event, Hold,
    HoldEnd, HoldId, Rejection, Role, Service, ServiceId, Staff, StaffId, TimeOff, TimeOffId,
    UserId, WeeklyHours,
};
use uuid::Uuid;

use super::rules::{
    LocalHours, MAX_HOLD_SECONDS, MAX_SERVICES, MAX_STAFF, MAX_STAFF_PER_SERVICE, MIN_HOLD_SECONDS,
    Settings, parse_currency, parse_name, parse_service_minutes, parse_time_off,
};
use super::slots::{StaffProblem, bookable_window, check_staff, check_start, eligible_staff, scan};
use super::state::{Establishment, ItemRef, ServiceEntry};
use super::time::{LocalPosition, MINUTES_PER_DAY, Minute, timestamp};

/// How many alternatives a `slot_unavailable` rejection offers.
pub const MAX_ALTERNATIVES: usize = 3;
/// How many days ahead of a taken slot we look for alternatives.
const ALTERNATIVE_SEARCH_DAYS: i64 = 7;

/// The inputs of a decision that are not state or command.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub now: Timestamp,
    /// The id for whatever the command creates (booking, hold, staff member, ...).
    pub new_id: Uuid,
}

/// The events of an accepted command (most commands produce one).
pub type Events = Vec<Event>;

/// Decide a command for an existing establishment.
pub fn decide(
    est: &Establishment,
    ctx: &Context,
    caller: &Caller,
    command: &Command,
) -> Result<Events, Rejection> {
    match command {
        Command::CreateEstablishment { .. } => Err(Rejection::new(
            ErrorCode::Conflict,
            "establishment already exists",
        )),
        Command::UpdateSettings { patch } => {
            require_manager(caller)?;
            let settings = Settings::parse(patch.apply_to(&est.settings.raw))?;
            Ok(vec![Event::SettingsUpdated {
                settings: settings.raw,
            }])
        }
        Command::Suspend { reason } | Command::Reinstate { reason } => {
            suspension(est, caller, command, reason)
        }
        Command::AddStaff {
            name,
            user_id,
            hours,
        } => add_staff(est, ctx, caller, name, *user_id, hours),
        Command::SetStaffHours { staff_id, hours } => {
            require_manager(caller)?;
            staff_index(est, *staff_id)?;
            LocalHours::parse("hours", hours)?;
            Ok(vec![Event::StaffHoursSet {
                staff_id: *staff_id,
                hours: hours.clone(),
            }])
        }
        Command::AddTimeOff {
            staff_id,
            start,
            end,
            reason,
        } => {
            require_manager(caller)?;
            staff_index(est, *staff_id)?;
            parse_time_off(*start, *end)?;
            let reason = reason
                .as_deref()
                .map(|r| parse_name("reason", r))
                .transpose()?;
            let time_off = TimeOff {
                id: TimeOffId(ctx.new_id),
                staff_id: *staff_id,
                start: *start,
                end: *end,
                reason,
            };
            Ok(vec![Event::TimeOffAdded { time_off }])
        }
        Command::AddService {
            name,
            duration_minutes,
            price_cents,
            currency,
            buffer_after_minutes,
            staff_ids,
        } => {
            require_manager(caller)?;
            let service = Service {
                id: ServiceId(ctx.new_id),
                name: parse_name("name", name)?,
                duration_minutes: *duration_minutes,
                price_cents: *price_cents,
                currency: currency.clone(),
                buffer_after_minutes: *buffer_after_minutes,
                staff_ids: staff_ids.clone(),
            };
            validate_service(est, &service)?;
            Ok(vec![Event::ServiceAdded { service }])
        }
        Command::Book {
            service_id,
            start,
            staff_id,
            customer_id,
            promotion,
        } => {
            require_active(est)?;
            let customer = customer_for(caller, *customer_id)?;
            super::payments::require_no_payment(est, caller, *service_id)?;
            let placed = place(est, ctx, customer, *service_id, *start, *staff_id)?;
            let promotion = promotion
                .as_ref()
                .map(|terms| super::plugins::apply_promotion(est, customer, *service_id, terms))
                .transpose()?;
            let booking = Booking {
                id: BookingId(ctx.new_id),
                establishment_id: est.id,
                service_id: *service_id,
                staff_id: placed.staff_id,
                customer_id: customer,
                start: *start,
                end: timestamp(placed.start + placed.duration),
                buffer_after_minutes: placed.buffer as u32,
                status: BookingStatus::Confirmed,
                seq: est.seq + placed.events.len() as u64 + 1,
                created_at: ctx.now,
                promotion,
                payment_policy: super::payments::booking_policy(est, *service_id, customer),
            };
            let mut events = placed.events;
            events.push(Event::BookingConfirmed {
                booking,
                from_hold: None,
            });
            Ok(events)
        }
        Command::PlaceHold {
            service_id,
            start,
            staff_id,
            ttl_seconds,
        } => {
            if !(MIN_HOLD_SECONDS..=MAX_HOLD_SECONDS).contains(ttl_seconds) {
                return Err(Rejection::invalid(
                    "ttl_seconds",
                    format!(
                        "ttl_seconds must be between {MIN_HOLD_SECONDS} and {MAX_HOLD_SECONDS}"
                    ),
                ));
            }
            require_active(est)?;
            let placed = place(est, ctx, caller.user_id, *service_id, *start, *staff_id)?;
            let hold = Hold {
                id: HoldId(ctx.new_id),
                establishment_id: est.id,
                service_id: *service_id,
                staff_id: placed.staff_id,
                customer_id: caller.user_id,
                start: *start,
                end: timestamp(placed.start + placed.duration),
                buffer_after_minutes: placed.buffer as u32,
                expires_at: Timestamp::from_second(ctx.now.as_second() + i64::from(*ttl_seconds))
                    .unwrap_or(ctx.now),
                seq: est.seq + placed.events.len() as u64 + 1,
            };
            let mut events = placed.events;
            events.push(Event::HoldPlaced { hold });
            Ok(events)
        }
        Command::ConfirmHold { hold_id } => confirm_hold(est, ctx, caller, *hold_id),
        Command::ReleaseHold { hold_id } => {
            let hold = own_hold(est, caller, *hold_id)?;
            Ok(vec![Event::HoldEnded {
                hold,
                reason: HoldEnd::Released,
            }])
        }
        Command::Cancel { booking_id } => {
            let booking = own_booking(est, caller, *booking_id)?;
            require_confirmed(&booking)?;
            require_before_cutoff(est, ctx, caller, &booking)?;
            // The refund its payment is due by the policy copied onto it, first, so that
            // the booking stays the command's answer.
            let mut events = super::payments::refund_on_cancel(est, ctx, caller, &booking);
            events.extend(super::fees::fee_on_cancel(est, ctx, caller, &booking));
            let booking = Booking {
                status: BookingStatus::Cancelled,
                seq: est.seq + events.len() as u64 + 1,
                ..booking
            };
            events.push(Event::BookingCancelled {
                booking,
                by: caller.user_id,
            });
            Ok(events)
        }
        Command::SetPaymentPolicy { .. }
        | Command::ClearServicePaymentPolicy { .. }
        | Command::SaveCard { .. }
        | Command::OpenFee { .. }
        | Command::ClaimFeeAttempt { .. }
        | Command::WaiveFee { .. }
        | Command::Checkout { .. }
        | Command::AttachPayment { .. }
        | Command::SettlePayment { .. } => {
            super::payments::decide_payment(est, ctx, caller, command)
        }
        Command::JoinQueue { .. } => {
            require_active(est)?;
            super::queue::decide_queue(est, ctx, caller, command)
        }
        Command::CallNext { .. }
        | Command::StartTicket { .. }
        | Command::FinishTicket { .. }
        | Command::NoShowTicket { .. }
        | Command::LeaveQueue { .. }
        | Command::MoveTicket { .. } => super::queue::decide_queue(est, ctx, caller, command),
        Command::Reschedule {
            booking_id,
            start,
            staff_id,
        } => reschedule(est, ctx, caller, *booking_id, *start, *staff_id),
        Command::MarkCompleted { booking_id } | Command::MarkNoShow { booking_id } => {
            require_member(caller)?;
            let booking = own_booking(est, caller, *booking_id)?;
            require_confirmed(&booking)?;
            if ctx.now < booking.start {
                return Err(Rejection::new(
                    ErrorCode::Conflict,
                    "the booking has not started yet",
                ));
            }
            let completed = matches!(command, Command::MarkCompleted { .. });
            let status = if completed {
                BookingStatus::Completed
            } else {
                BookingStatus::NoShow
            };
            let booking = Booking {
                status,
                seq: est.seq + 1,
                ..booking
            };
            Ok(vec![if completed {
                Event::BookingCompleted { booking }
            } else {
                Event::BookingNoShow { booking }
            }])
        }
        Command::InstallPlugin { name, settings } => {
            super::plugins::install(est, caller, name, settings)
        }
        Command::UninstallPlugin { name } => super::plugins::uninstall(est, caller, name),
    }
}

/// Longest reason an admin may give for a suspension or reinstatement (it is shown to
/// the owner and kept in the journal forever).
pub const MAX_REASON_CHARS: usize = 500;

/// Suspend or reinstate: platform admins only, with a reason; suspending a suspended
/// establishment (or reinstating an active one) is a conflict, not a second event.
fn suspension(
    est: &Establishment,
    caller: &Caller,
    command: &Command,
    reason: &str,
) -> Result<Events, Rejection> {
    if caller.role != Role::Admin {
        return Err(Rejection::new(
            ErrorCode::Forbidden,
            "only platform admins suspend or reinstate establishments",
        ));
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(Rejection::invalid(
            "reason",
            format!("reason must be 1 to {MAX_REASON_CHARS} characters"),
        ));
    }
    let reason = reason.to_owned();
    let by = caller.user_id;
    match (command, &est.suspended) {
        (Command::Suspend { .. }, None) => Ok(vec![Event::EstablishmentSuspended { reason, by }]),
        (Command::Reinstate { .. }, Some(_)) => {
            Ok(vec![Event::EstablishmentReinstated { reason, by }])
        }
        (Command::Suspend { .. }, Some(_)) => Err(Rejection::new(
            ErrorCode::Conflict,
            "the establishment is already suspended",
        )),
        _ => Err(Rejection::new(
            ErrorCode::Conflict,
            "the establishment is not suspended",
        )),
    }
}

/// New bookings, holds and walk-ins are refused while the platform suspends the
/// establishment; what it already has (bookings, tickets) goes on as before.
pub(crate) fn require_active(est: &Establishment) -> Result<(), Rejection> {
    match &est.suspended {
        None => Ok(()),
        Some(reason) => Err(Rejection::new(
            ErrorCode::EstablishmentSuspended,
            format!("the establishment is suspended: {reason}"),
        )),
    }
}

/// Decide the creation of a new establishment (there is no state yet).
pub fn decide_create(
    id: navaro_protocol::EstablishmentId,
    caller: &Caller,
    command: &Command,
) -> Result<Events, Rejection> {
    match command {
        Command::CreateEstablishment { settings } => {
            let settings = Settings::parse(settings.clone())?;
            Ok(vec![Event::EstablishmentCreated {
                id,
                owner_id: caller.user_id,
                settings: settings.raw,
            }])
        }
        _ => Err(Rejection::not_found("establishment")),
    }
}

/// The holds that have lapsed by `now`: the actor's clock tick records their end.
pub fn expire_holds(est: &Establishment, now: Timestamp) -> Events {
    let mut expired: Vec<_> = est
        .holds
        .values()
        .filter(|h| h.expires_at <= now)
        // A hold being paid for is ended by the payment sweeper, after it asked the
        // provider whether the payment succeeded at the last second.
        .filter(|h| !super::payments::awaits_payment(est, h.id))
        .map(|h| (**h).clone())
        .collect();
    expired.sort_by_key(|h| (h.expires_at, h.id));
    expired
        .into_iter()
        .map(|hold| Event::HoldEnded {
            hold,
            reason: HoldEnd::Expired,
        })
        .collect()
}

fn require_manager(caller: &Caller) -> Result<(), Rejection> {
    if caller.role.can_manage() {
        Ok(())
    } else {
        Err(Rejection::forbidden(
            "only the establishment's owners may change its setup",
        ))
    }
}

pub(crate) fn require_manager_of_setup(caller: &Caller) -> Result<(), Rejection> {
    require_manager(caller)
}

pub(crate) fn require_member(caller: &Caller) -> Result<(), Rejection> {
    if caller.role.is_member() {
        Ok(())
    } else {
        Err(Rejection::forbidden(
            "only the establishment's members may do this",
        ))
    }
}

pub(crate) fn staff_index(est: &Establishment, staff_id: StaffId) -> Result<usize, Rejection> {
    est.staff_index(staff_id)
        .ok_or_else(|| Rejection::field(ErrorCode::NotFound, "staff_id", "staff member not found"))
}

fn add_staff(
    est: &Establishment,
    ctx: &Context,
    caller: &Caller,
    name: &str,
    user_id: Option<UserId>,
    hours: &WeeklyHours,
) -> Result<Events, Rejection> {
    require_manager(caller)?;
    if est.staff.len() >= MAX_STAFF {
        return Err(Rejection::new(
            ErrorCode::LimitReached,
            format!("an establishment has at most {MAX_STAFF} staff members"),
        ));
    }
    LocalHours::parse("hours", hours)?;
    let staff = Staff {
        id: StaffId(ctx.new_id),
        name: parse_name("name", name)?,
        user_id,
        hours: hours.clone(),
    };
    Ok(vec![Event::StaffAdded { staff }])
}

fn validate_service(est: &Establishment, service: &Service) -> Result<(), Rejection> {
    if est.services.len() >= MAX_SERVICES {
        return Err(Rejection::new(
            ErrorCode::LimitReached,
            format!("an establishment has at most {MAX_SERVICES} services"),
        ));
    }
    parse_service_minutes(service.duration_minutes, service.buffer_after_minutes)?;
    if service.price_cents < 0 {
        return Err(Rejection::invalid(
            "price_cents",
            "price_cents must not be negative",
        ));
    }
    parse_currency(&service.currency)?;
    if service.staff_ids.is_empty() || service.staff_ids.len() > MAX_STAFF_PER_SERVICE {
        return Err(Rejection::invalid(
            "staff_ids",
            "a service needs at least one staff member",
        ));
    }
    for (i, id) in service.staff_ids.iter().enumerate() {
        if est.staff_index(*id).is_none() {
            return Err(Rejection::field(
                ErrorCode::NotFound,
                "staff_ids",
                format!("staff member {id} not found"),
            ));
        }
        if service.staff_ids[..i].contains(id) {
            return Err(Rejection::invalid(
                "staff_ids",
                "staff_ids lists a staff member twice",
            ));
        }
    }
    Ok(())
}

/// Members may book for any customer; customers only for themselves.
fn customer_for(caller: &Caller, customer_id: Option<UserId>) -> Result<UserId, Rejection> {
    match customer_id {
        Some(id) if id != caller.user_id && !caller.role.is_member() => {
            Err(Rejection::forbidden("customers book for themselves only"))
        }
        Some(id) => Ok(id),
        None => Ok(caller.user_id),
    }
}

/// A slot found free for a new item, and the events that must precede it (the end of
/// lapsed holds still sitting in the slot).
pub(crate) struct Placement {
    pub staff_id: StaffId,
    pub start: Minute,
    pub duration: i64,
    pub buffer: i64,
    pub events: Events,
}

pub(crate) fn place(
    est: &Establishment,
    ctx: &Context,
    customer: UserId,
    service_id: ServiceId,
    start: Timestamp,
    staff_id: Option<StaffId>,
) -> Result<Placement, Rejection> {
    let service = est
        .service(service_id)
        .ok_or_else(|| Rejection::field(ErrorCode::NotFound, "service_id", "service not found"))?;
    let candidates = eligible_staff(est, service, staff_id)?;
    let now_s = ctx.now.as_second();
    let (minute, position) = check_start(est, start, now_s)?;
    if future_items(est, customer, now_s) >= est.settings.max_future_bookings {
        return Err(Rejection::new(
            ErrorCode::LimitReached,
            format!(
                "at most {} future bookings per customer here",
                est.settings.max_future_bookings
            ),
        ));
    }
    let index = choose_staff(est, service, &candidates, minute, position, now_s, None)?;
    Ok(Placement {
        staff_id: est.staff[index].info.id,
        start: minute,
        duration: service.duration,
        buffer: service.buffer,
        events: lapsed_holds_in(est, index, minute, minute + service.occupies(), now_s),
    })
}

/// The free candidate with the fewest items that local day (spreading load), or the
/// rejection that explains why none is free.
fn choose_staff(
    est: &Establishment,
    service: &ServiceEntry,
    candidates: &[usize],
    start: Minute,
    position: LocalPosition,
    now_s: i64,
    ignore: Option<ItemRef>,
) -> Result<usize, Rejection> {
    let mut best: Option<(usize, usize)> = None;
    let mut only_outside = true;
    for &index in candidates {
        match check_staff(est, index, service, start, position, now_s, ignore) {
            Ok(()) => {
                if candidates.len() == 1 {
                    return Ok(index);
                }
                // Counting stops once it cannot beat the best so far.
                let bound = best.map_or(usize::MAX, |(_, least)| least);
                let load = items_on_day(est, index, start - position.minute_of_day, bound);
                if best.is_none_or(|(_, least)| load < least) {
                    best = Some((index, load));
                }
            }
            Err(StaffProblem::Busy) => only_outside = false,
            Err(StaffProblem::OutsideHours | StaffProblem::TimeOff) => {}
        }
    }
    if let Some((index, _)) = best {
        return Ok(index);
    }
    if only_outside {
        return Err(Rejection::field(
            ErrorCode::OutsideHours,
            "start",
            "no staff member works at that time",
        ));
    }
    let alternatives = alternatives(est, service, candidates, start, position, now_s);
    Err(
        Rejection::field(ErrorCode::SlotUnavailable, "start", "that slot is taken")
            .with_alternatives(alternatives),
    )
}

/// Items of staff `index` on the UTC-aligned 24 hours from `day_start`, counted up to `bound`.
fn items_on_day(est: &Establishment, index: usize, day_start: Minute, bound: usize) -> usize {
    est.calendars[index]
        .range(day_start..day_start + MINUTES_PER_DAY)
        .take(bound)
        .count()
}

/// The free starts nearest to `start`, from its local day up to a week after.
fn alternatives(
    est: &Establishment,
    service: &ServiceEntry,
    candidates: &[usize],
    start: Minute,
    position: LocalPosition,
    now_s: i64,
) -> Vec<Alternative> {
    let mut found: Vec<(Minute, usize)> = Vec::new();
    scan(
        est,
        service,
        candidates,
        position.epoch_day,
        ALTERNATIVE_SEARCH_DAYS,
        now_s,
        bookable_window(est, now_s),
        |t, free| {
            if let Some(index) = free.next() {
                found.push((t, index));
            }
        },
    );
    found.sort_by_key(|(t, _)| ((t - start).abs(), *t));
    found
        .into_iter()
        .take(MAX_ALTERNATIVES)
        .map(|(t, index)| Alternative {
            start: timestamp(t),
            staff_id: est.staff[index].info.id,
        })
        .collect()
}

/// Lapsed holds still in `[start, end)` of staff `index`: ending them keeps calendars free
/// of overlaps once the new item is in. (The caller checked that nothing there blocks, so
/// whatever overlaps is a lapsed hold.)
fn lapsed_holds_in(
    est: &Establishment,
    index: usize,
    start: Minute,
    end: Minute,
    now_s: i64,
) -> Events {
    let mut events = Events::new();
    if est.holds.is_empty() {
        return events;
    }
    // Calendar entries are disjoint: walking back from `end`, the first entry that ends by
    // `start` proves every earlier one does too.
    for (_, occ) in est.calendars[index].range(..end).rev() {
        if occ.end <= start {
            break;
        }
        if let (ItemRef::Hold(id), false) = (occ.item, occ.blocks(now_s))
            && let Some(hold) = est.holds.get(&id)
        {
            events.push(Event::HoldEnded {
                hold: (**hold).clone(),
                reason: HoldEnd::Expired,
            });
        }
    }
    events.reverse();
    events
}

/// A customer's confirmed future bookings plus live holds.
fn future_items(est: &Establishment, customer: UserId, now_s: i64) -> usize {
    let from = (
        customer,
        now_s.div_euclid(60) + 1,
        ItemRef::Booking(BookingId(Uuid::nil())),
    );
    let to = (
        customer,
        Minute::MAX,
        ItemRef::Booking(BookingId(Uuid::nil())),
    );
    est.customer_items
        .range(from..to)
        .filter(|(_, _, item)| match item {
            ItemRef::Booking(_) => true,
            ItemRef::Hold(id) => est
                .holds
                .get(id)
                .is_some_and(|h| h.expires_at.as_second() > now_s),
        })
        .count()
}

/// The booking, if the caller may act on it: members on any, customers on their own.
/// A customer asking for someone else's booking learns nothing of it.
fn own_booking(
    est: &Establishment,
    caller: &Caller,
    booking_id: BookingId,
) -> Result<Booking, Rejection> {
    match est.bookings.get(&booking_id) {
        Some(b) if caller.role.is_member() || b.customer_id == caller.user_id => Ok((**b).clone()),
        _ => Err(Rejection::not_found("booking")),
    }
}

fn own_hold(est: &Establishment, caller: &Caller, hold_id: HoldId) -> Result<Hold, Rejection> {
    match est.holds.get(&hold_id) {
        Some(h) if caller.role.is_member() || h.customer_id == caller.user_id => Ok((**h).clone()),
        _ => Err(Rejection::not_found("hold")),
    }
}

fn require_confirmed(booking: &Booking) -> Result<(), Rejection> {
    if booking.status == BookingStatus::Confirmed {
        Ok(())
    } else {
        Err(Rejection::new(
            ErrorCode::Conflict,
            format!("the booking is {:?}, not confirmed", booking.status).to_lowercase(),
        ))
    }
}

/// Customers may change a booking only up to the cancellation cutoff; members any time.
fn require_before_cutoff(
    est: &Establishment,
    ctx: &Context,
    caller: &Caller,
    booking: &Booking,
) -> Result<(), Rejection> {
    if caller.role == Role::Customer {
        let deadline_s = booking.start.as_second() - est.settings.cancel_cutoff_minutes * 60;
        if ctx.now.as_second() > deadline_s {
            return Err(Rejection::new(
                ErrorCode::CancelCutoffPassed,
                "too late to change this booking; contact the establishment",
            ));
        }
    }
    Ok(())
}

fn confirm_hold(
    est: &Establishment,
    ctx: &Context,
    caller: &Caller,
    hold_id: HoldId,
) -> Result<Events, Rejection> {
    let hold = own_hold(est, caller, hold_id)?;
    if hold.expires_at <= ctx.now {
        return Err(Rejection::new(
            ErrorCode::HoldExpired,
            "the hold has expired",
        ));
    }
    let booking = Booking {
        id: BookingId(ctx.new_id),
        establishment_id: est.id,
        service_id: hold.service_id,
        staff_id: hold.staff_id,
        customer_id: hold.customer_id,
        start: hold.start,
        end: hold.end,
        buffer_after_minutes: hold.buffer_after_minutes,
        status: BookingStatus::Confirmed,
        seq: est.seq + 1,
        created_at: ctx.now,
        promotion: None,
        payment_policy: super::payments::booking_policy(est, hold.service_id, hold.customer_id),
    };
    Ok(vec![Event::BookingConfirmed {
        booking,
        from_hold: Some(hold_id),
    }])
}

fn reschedule(
    est: &Establishment,
    ctx: &Context,
    caller: &Caller,
    booking_id: BookingId,
    start: Timestamp,
    staff_id: Option<StaffId>,
) -> Result<Events, Rejection> {
    let booking = own_booking(est, caller, booking_id)?;
    require_confirmed(&booking)?;
    require_before_cutoff(est, ctx, caller, &booking)?;
    let service = est
        .service(booking.service_id)
        .ok_or_else(|| Rejection::not_found("service"))?;
    let now_s = ctx.now.as_second();
    let (minute, position) = check_start(est, start, now_s)?;
    let mut candidates = eligible_staff(est, service, staff_id)?;
    // Without a staff member named, the current one is preferred when free.
    if staff_id.is_none()
        && let Some(current) = est.staff_index(booking.staff_id)
        && candidates.contains(&current)
        && check_staff(
            est,
            current,
            service,
            minute,
            position,
            now_s,
            Some(ItemRef::Booking(booking_id)),
        )
        .is_ok()
    {
        candidates = super::slots::Candidates::One([current]);
    }
    let index = choose_staff(
        est,
        service,
        &candidates,
        minute,
        position,
        now_s,
        Some(ItemRef::Booking(booking_id)),
    )?;
    let mut events = lapsed_holds_in(est, index, minute, minute + service.occupies(), now_s);
    let moved = Booking {
        staff_id: est.staff[index].info.id,
        start,
        end: timestamp(minute + (booking.end.as_second() - booking.start.as_second()) / 60),
        seq: est.seq + events.len() as u64 + 1,
        ..booking.clone()
    };
    events.push(Event::BookingRescheduled {
        booking: moved,
        previous_start: booking.start,
        previous_staff_id: booking.staff_id,
    });
    Ok(events)
}
