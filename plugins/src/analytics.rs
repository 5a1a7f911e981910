//! The analytics plugin: bookings, cancellations, no-shows, revenue, utilisation of
//! working hours, queue waits and busiest hours, per establishment and per staff member,
//! per day, week or month in the establishment's time zone.
//!
//! Figures are counters kept from the events ([`Analytics::on_event`]), per staff member
//! and local day of the booking's start (a walk-in's: of its joining); a report adds up
//! the days of its range, never scans bookings. What counts:
//! - `bookings`: bookings confirmed for that day (moved by a reschedule); `cancellations`
//!   and `no_shows` of them; `no_show_rate` = no-shows / bookings;
//! - `revenue_cents`: completed bookings at the price paid (the service's price at
//!   booking, less a promotion) plus finished walk-ins at the service's price;
//! - `busy_minutes`: minutes of live bookings plus walk-ins served; `utilisation` =
//!   busy / working minutes, the working minutes from each staff member's current weekly
//!   hours on those local dates (time off is not subtracted);
//! - walk-in waits: joined to started, average and 90th percentile (nearest rank);
//! - busiest hours: arrivals (booking starts and walk-ins joining) per local hour.
//!
//! The plugin counts the establishment's whole history, installed or not, so that
//! installing it shows the past too; only its routes need it installed.

use std::collections::BTreeMap;

use jiff::Timestamp;
use navaro_notify::{Bind, Statement};
use navaro_protocol::{Booking, Event, EventRecord, Ticket, WeeklyHours};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::PluginError;
use crate::boundary::{EventContext, Plugin};
use crate::sql::EVERYONE;

pub const NAME: &str = "analytics";

/// The analytics plugin.
pub struct Analytics;

/// What analytics keeps per establishment: prices and hours, from their events.
#[derive(Default, Serialize, Deserialize)]
pub struct State {
    /// Price in minor units and currency, by service.
    #[serde(default)]
    pub services: BTreeMap<Uuid, (i64, String)>,
    /// Each staff member's weekly hours, as last set.
    #[serde(default)]
    pub staff: BTreeMap<Uuid, WeeklyHours>,
}

/// Increments of one `analytics_days` row.
#[derive(Default, Clone, Copy)]
struct Counts {
    bookings: i64,
    cancellations: i64,
    no_shows: i64,
    completed: i64,
    revenue_cents: i64,
    busy_minutes: i64,
    walk_ins: i64,
}

const BUMP_DAY: &str = "INSERT INTO analytics_days (establishment_id, staff_id, day, bookings, \
    cancellations, no_shows, completed, revenue_cents, busy_minutes, walk_ins) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
    ON CONFLICT (establishment_id, staff_id, day) DO UPDATE SET \
    bookings = analytics_days.bookings + excluded.bookings, \
    cancellations = analytics_days.cancellations + excluded.cancellations, \
    no_shows = analytics_days.no_shows + excluded.no_shows, \
    completed = analytics_days.completed + excluded.completed, \
    revenue_cents = analytics_days.revenue_cents + excluded.revenue_cents, \
    busy_minutes = analytics_days.busy_minutes + excluded.busy_minutes, \
    walk_ins = analytics_days.walk_ins + excluded.walk_ins";

const BUMP_HOUR: &str = "INSERT INTO analytics_hours (establishment_id, staff_id, day, hour, \
    arrivals) VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (establishment_id, staff_id, day, hour) DO UPDATE SET \
    arrivals = analytics_hours.arrivals + excluded.arrivals";

const WAIT: &str = "INSERT INTO analytics_waits (establishment_id, ticket_id, staff_id, day, \
    wait_seconds) VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (establishment_id, ticket_id) DO NOTHING";

/// The local day and hour of an instant in the establishment's zone.
fn local(ctx: &EventContext<'_>, at: Timestamp) -> (String, i64) {
    let zoned = at.to_zoned_datetime(ctx.zone.clone());
    (zoned.date().to_string(), i64::from(zoned.hour()))
}

/// Bump the establishment's row and, when there is one, the staff member's.
fn bump(
    ctx: &EventContext<'_>,
    staff: Option<Uuid>,
    day: &str,
    c: Counts,
    out: &mut Vec<Statement>,
) {
    let rows = std::iter::once(EVERYONE).chain(staff.filter(|s| !s.is_nil()));
    for staff_id in rows {
        out.push(Statement::new(
            BUMP_DAY,
            vec![
                Bind::Uuid(ctx.establishment_id),
                Bind::Uuid(staff_id),
                Bind::Text(day.to_owned()),
                Bind::I64(c.bookings),
                Bind::I64(c.cancellations),
                Bind::I64(c.no_shows),
                Bind::I64(c.completed),
                Bind::I64(c.revenue_cents),
                Bind::I64(c.busy_minutes),
                Bind::I64(c.walk_ins),
            ],
        ));
    }
}

fn arrival(
    ctx: &EventContext<'_>,
    staff: Option<Uuid>,
    at: Timestamp,
    n: i64,
    out: &mut Vec<Statement>,
) {
    let (day, hour) = local(ctx, at);
    let rows = std::iter::once(EVERYONE).chain(staff.filter(|s| !s.is_nil()));
    for staff_id in rows {
        out.push(Statement::new(
            BUMP_HOUR,
            vec![
                Bind::Uuid(ctx.establishment_id),
                Bind::Uuid(staff_id),
                Bind::Text(day.clone()),
                Bind::I64(hour),
                Bind::I64(n),
            ],
        ));
    }
}

fn minutes(from: Timestamp, to: Timestamp) -> i64 {
    (to.as_second() - from.as_second()).max(0) / 60
}

fn booking_day(ctx: &EventContext<'_>, b: &Booking) -> String {
    local(ctx, b.start).0
}

impl Analytics {
    fn on_booking(
        &self,
        ctx: &EventContext<'_>,
        state: &State,
        event: &Event,
        out: &mut Vec<Statement>,
    ) {
        let staff = |b: &Booking| Some(b.staff_id.0);
        match event {
            Event::BookingConfirmed { booking: b, .. } => {
                let c = Counts {
                    bookings: 1,
                    busy_minutes: minutes(b.start, b.end),
                    ..Counts::default()
                };
                bump(ctx, staff(b), &booking_day(ctx, b), c, out);
                arrival(ctx, staff(b), b.start, 1, out);
            }
            Event::BookingCancelled { booking: b, .. } => {
                let c = Counts {
                    cancellations: 1,
                    busy_minutes: -minutes(b.start, b.end),
                    ..Counts::default()
                };
                bump(ctx, staff(b), &booking_day(ctx, b), c, out);
            }
            Event::BookingRescheduled {
                booking: b,
                previous_start,
                previous_staff_id,
            } => {
                let length = minutes(b.start, b.end);
                let old = Counts {
                    bookings: -1,
                    busy_minutes: -length,
                    ..Counts::default()
                };
                bump(
                    ctx,
                    Some(previous_staff_id.0),
                    &local(ctx, *previous_start).0,
                    old,
                    out,
                );
                arrival(ctx, Some(previous_staff_id.0), *previous_start, -1, out);
                let new = Counts {
                    bookings: 1,
                    busy_minutes: length,
                    ..Counts::default()
                };
                bump(ctx, staff(b), &booking_day(ctx, b), new, out);
                arrival(ctx, staff(b), b.start, 1, out);
            }
            Event::BookingCompleted { booking: b } => {
                let paid = match &b.promotion {
                    Some(p) => p.price_cents - p.discount_cents,
                    None => state.services.get(&b.service_id.0).map_or(0, |s| s.0),
                };
                let c = Counts {
                    completed: 1,
                    revenue_cents: paid,
                    ..Counts::default()
                };
                bump(ctx, staff(b), &booking_day(ctx, b), c, out);
            }
            Event::BookingNoShow { booking: b } => {
                let c = Counts {
                    no_shows: 1,
                    ..Counts::default()
                };
                bump(ctx, staff(b), &booking_day(ctx, b), c, out);
            }
            _ => {}
        }
    }

    fn on_ticket(
        &self,
        ctx: &EventContext<'_>,
        state: &State,
        event: &Event,
        out: &mut Vec<Statement>,
    ) {
        let staff = |t: &Ticket| t.staff_id.map(|s| s.0);
        match event {
            Event::QueueJoined { ticket: t, .. } => {
                let c = Counts {
                    walk_ins: 1,
                    ..Counts::default()
                };
                bump(ctx, staff(t), &local(ctx, t.joined_at).0, c, out);
                arrival(ctx, staff(t), t.joined_at, 1, out);
            }
            Event::QueueStarted { ticket: t, .. } => {
                let Some(started) = t.started_at else { return };
                out.push(Statement::new(
                    WAIT,
                    vec![
                        Bind::Uuid(ctx.establishment_id),
                        Bind::Uuid(t.id.0),
                        Bind::Uuid(staff(t).unwrap_or(EVERYONE)),
                        Bind::Text(local(ctx, t.joined_at).0),
                        Bind::I64((started.as_second() - t.joined_at.as_second()).max(0)),
                    ],
                ));
            }
            Event::QueueFinished { ticket: t, .. } => {
                let busy = match (t.started_at, t.ended_at) {
                    (Some(a), Some(b)) => minutes(a, b),
                    _ => 0,
                };
                let price = state.services.get(&t.service_id.0).map_or(0, |s| s.0);
                let c = Counts {
                    revenue_cents: price,
                    busy_minutes: busy,
                    ..Counts::default()
                };
                bump(ctx, staff(t), &local(ctx, t.joined_at).0, c, out);
            }
            _ => {}
        }
    }
}

impl Plugin for Analytics {
    type State = State;
    const NAME: &'static str = NAME;
    const CONSUMER: &'static str = "plugin.analytics";

    fn settings(&self, raw: &serde_json::Value) -> Result<serde_json::Value, PluginError> {
        crate::no_settings(raw)
    }

    fn on_event(
        &self,
        ctx: &EventContext<'_>,
        state: &mut State,
        record: &EventRecord,
        out: &mut Vec<Statement>,
    ) {
        match &record.event {
            Event::ServiceAdded { service } => {
                state.services.insert(
                    service.id.0,
                    (service.price_cents, service.currency.clone()),
                );
            }
            Event::StaffAdded { staff } => {
                state.staff.insert(staff.id.0, staff.hours.clone());
            }
            Event::StaffHoursSet { staff_id, hours } => {
                state.staff.insert(staff_id.0, hours.clone());
            }
            event if event.ticket().is_some() => self.on_ticket(ctx, state, event, out),
            event => self.on_booking(ctx, state, event, out),
        }
    }
}
