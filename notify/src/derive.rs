//! What is sent when: the notify consumer turns journal events into deliveries.
//!
//! - Webhooks: every event of a type an enabled endpoint subscribes to, one delivery per
//!   endpoint; the body is `{"type", "timestamp", "data"}` (Standard Webhooks' shape,
//!   `data` as the live feed has it).
//! - Push, to the customer: booking confirmed, cancelled (by someone else), rescheduled;
//!   reminders at each of the establishment's offsets before the start (default 24 h
//!   and 2 h; only those still in the future); called in the queue. To the staff member's
//!   user account: a new booking, a cancellation.
//! - A cancel, completion or no-show cancels the booking's pending reminders; a
//!   reschedule cancels them and schedules new ones from the new start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use navaro_protocol::{Booking, Event, EventRecord};
use serde_json::json;
use uuid::Uuid;

use crate::NotifyError;
use crate::clock::Clock;
use crate::consumer::{Effect, EventConsumer, NewDelivery, stable_id};
use crate::endpoints::Endpoint;
use crate::store::{Channel, Db, on_db};

/// The consumer's checkpoint name.
pub const CONSUMER: &str = "notify";

/// Push message kinds, each of which a user can turn off.
pub const PUSH_KINDS: &[&str] = &[
    "booking_confirmed",
    "booking_cancelled",
    "booking_rescheduled",
    "reminder",
    "queue_soon",
    "queue_called",
    "staff_new_booking",
    "staff_booking_cancelled",
    "webhook_disabled",
];

/// A waiting customer is told their turn is coming up once their place is this or
/// better (1: next), once per ticket.
pub const QUEUE_SOON_POSITION: u32 = 2;

/// How long an establishment's derivation context (endpoints, staff accounts, reminder
/// offsets) is reused before it is read again. Saves three queries per batch on the
/// write path's heels; changes made through this node invalidate it at once, changes
/// made on another node are seen within this long.
pub const CONTEXT_TTL: Duration = Duration::from_secs(5);
/// Establishments whose context is kept at most; past it the cache starts over.
const CONTEXT_ENTRIES: usize = 10_000;

/// What derivation reads about an establishment.
#[derive(Clone)]
struct Shared {
    endpoints: Vec<Endpoint>,
    staff_users: HashMap<Uuid, Uuid>,
    reminders_minutes: Vec<u32>,
}

/// The notify consumer.
pub struct NotifyConsumer {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    /// Minutes before a booking's start, when the establishment has set none.
    pub default_reminders_minutes: Vec<u32>,
    /// Whether push deliveries are derived at all (push configured).
    pub push: bool,
    cache: Mutex<HashMap<Uuid, (Instant, Arc<Shared>)>>,
}

impl EventConsumer for NotifyConsumer {
    fn name(&self) -> &'static str {
        CONSUMER
    }

    fn derive<'a>(
        &'a self,
        establishment_id: Uuid,
        records: &'a [EventRecord],
    ) -> BoxFuture<'a, Result<Vec<Effect>, NotifyError>> {
        self.derive_now(establishment_id, records).boxed()
    }
}

/// What one batch knows while deriving.
struct Context {
    establishment_id: Uuid,
    endpoints: Vec<Endpoint>,
    staff_users: HashMap<Uuid, Uuid>,
    /// Waiting tickets' customers, as far as this batch needs them.
    ticket_customers: HashMap<Uuid, Uuid>,
    reminders_minutes: Vec<u32>,
    now_us: i64,
    effects: Vec<Effect>,
}

impl NotifyConsumer {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        default_reminders_minutes: Vec<u32>,
        push: bool,
    ) -> NotifyConsumer {
        NotifyConsumer {
            db,
            clock,
            default_reminders_minutes,
            push,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Forget what is cached about an establishment (its endpoints or settings changed).
    pub fn invalidate(&self, establishment_id: Uuid) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(&establishment_id);
        }
    }

    async fn shared(&self, establishment_id: Uuid) -> Result<Arc<Shared>, NotifyError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, shared)) = cache.get(&establishment_id)
            && at.elapsed() < CONTEXT_TTL
        {
            return Ok(shared.clone());
        }
        let shared = Arc::new(Shared {
            endpoints: self.db.endpoints_of(establishment_id).await?,
            staff_users: self.db.staff_users(establishment_id).await?,
            reminders_minutes: self
                .db
                .reminder_offsets(establishment_id)
                .await?
                .unwrap_or_else(|| self.default_reminders_minutes.clone()),
        });
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CONTEXT_ENTRIES {
                cache.clear();
            }
            cache.insert(establishment_id, (Instant::now(), shared.clone()));
        }
        Ok(shared)
    }

    async fn derive_now(
        &self,
        establishment_id: Uuid,
        records: &[EventRecord],
    ) -> Result<Vec<Effect>, NotifyError> {
        let shared = self.shared(establishment_id).await?;
        let mut cx = Context {
            establishment_id,
            endpoints: shared.endpoints.clone(),
            staff_users: shared.staff_users.clone(),
            reminders_minutes: shared.reminders_minutes.clone(),
            now_us: self.clock.now_us(),
            effects: Vec::new(),
            ticket_customers: HashMap::new(),
        };
        if self.push {
            for ticket in soon_tickets(records) {
                if let Some(customer) = self.db.ticket_customer(establishment_id, ticket).await? {
                    cx.ticket_customers.insert(ticket, customer);
                }
            }
        }
        for record in records {
            webhooks(&mut cx, record);
            if self.push {
                push(&mut cx, record);
            } else if let Event::StaffAdded { staff } = &record.event
                && let Some(user) = staff.user_id
            {
                cx.staff_user(staff.id.0, user.0);
            }
        }
        if cx
            .effects
            .iter()
            .any(|e| matches!(e, Effect::StaffUser { .. }))
        {
            self.invalidate(establishment_id);
        }
        Ok(cx.effects)
    }
}

impl Context {
    fn staff_user(&mut self, staff_id: Uuid, user_id: Uuid) {
        self.staff_users.insert(staff_id, user_id);
        self.effects.push(Effect::StaffUser {
            establishment_id: self.establishment_id,
            staff_id,
            user_id,
        });
    }

    fn push_to(&mut self, seq: u64, user: Uuid, kind: &str, message: serde_json::Value) -> Uuid {
        let id = stable_id(&[
            CONSUMER.as_bytes(),
            self.establishment_id.as_bytes(),
            &seq.to_be_bytes(),
            b"push",
            user.as_bytes(),
            kind.as_bytes(),
        ]);
        self.effects.push(Effect::Enqueue(NewDelivery {
            id,
            establishment_id: self.establishment_id,
            channel: Channel::Push,
            target: user,
            event_type: kind.to_owned(),
            payload: message.to_string(),
            booking_id: None,
            due_at_us: self.now_us,
        }));
        id
    }

    /// Reminders of a booking, as scheduled by event `seq`; their ids.
    fn reminders(&mut self, seq: u64, booking: &Booking) -> Vec<Uuid> {
        let start_us = booking.start.as_microsecond();
        let mut ids = Vec::new();
        for minutes in self.reminders_minutes.clone() {
            let due = start_us - i64::from(minutes) * 60_000_000;
            if due <= self.now_us {
                continue;
            }
            let id = stable_id(&[
                CONSUMER.as_bytes(),
                self.establishment_id.as_bytes(),
                &seq.to_be_bytes(),
                b"reminder",
                &minutes.to_be_bytes(),
            ]);
            let message = json!({
                "title": "Booking reminder",
                "body": reminder_text(minutes),
                "data": {
                    "type": "reminder",
                    "establishment_id": self.establishment_id,
                    "booking_id": booking.id.0,
                    "start": booking.start.to_string(),
                    "minutes_before": minutes,
                },
            });
            self.effects.push(Effect::Enqueue(NewDelivery {
                id,
                establishment_id: self.establishment_id,
                channel: Channel::Push,
                target: booking.customer_id.0,
                event_type: "reminder".to_owned(),
                payload: message.to_string(),
                booking_id: Some(booking.id.0),
                due_at_us: due,
            }));
            ids.push(id);
        }
        ids
    }
}

fn reminder_text(minutes: u32) -> String {
    if minutes.is_multiple_of(1440) {
        let days = minutes / 1440;
        format!(
            "Your booking is in {} day{}.",
            days,
            if days == 1 { "" } else { "s" }
        )
    } else if minutes.is_multiple_of(60) {
        let hours = minutes / 60;
        format!(
            "Your booking is in {} hour{}.",
            hours,
            if hours == 1 { "" } else { "s" }
        )
    } else {
        format!("Your booking is in {minutes} minutes.")
    }
}

fn webhooks(cx: &mut Context, record: &EventRecord) {
    let kind = record.event.kind();
    let wanted: Vec<Uuid> = cx
        .endpoints
        .iter()
        .filter(|e| e.wants(kind))
        .map(|e| e.id)
        .collect();
    if wanted.is_empty() {
        return;
    }
    let data = serde_json::to_value(&record.event)
        .ok()
        .and_then(|mut v| v.get_mut("data").map(serde_json::Value::take))
        .unwrap_or(serde_json::Value::Null);
    let body = json!({
        "type": kind,
        "timestamp": record.at.to_string(),
        "data": data,
        "establishment_id": cx.establishment_id,
        "seq": record.seq,
    })
    .to_string();
    for endpoint in wanted {
        let id = stable_id(&[
            CONSUMER.as_bytes(),
            cx.establishment_id.as_bytes(),
            &record.seq.to_be_bytes(),
            b"webhook",
            endpoint.as_bytes(),
        ]);
        cx.effects.push(Effect::Enqueue(NewDelivery {
            id,
            establishment_id: cx.establishment_id,
            channel: Channel::Webhook,
            target: endpoint,
            event_type: kind.to_owned(),
            payload: body.clone(),
            booking_id: None,
            due_at_us: cx.now_us,
        }));
    }
}

fn booking_message(kind: &str, title: &str, body: &str, booking: &Booking) -> serde_json::Value {
    json!({
        "title": title,
        "body": body,
        "data": {
            "type": kind,
            "establishment_id": booking.establishment_id.0,
            "booking_id": booking.id.0,
            "start": booking.start.to_string(),
        },
    })
}

fn push(cx: &mut Context, record: &EventRecord) {
    let seq = record.seq;
    match &record.event {
        Event::StaffAdded { staff } => {
            if let Some(user) = staff.user_id {
                cx.staff_user(staff.id.0, user.0);
            }
        }
        Event::BookingConfirmed { booking, .. } => {
            let message = booking_message(
                "booking_confirmed",
                "Booking confirmed",
                "Your booking is confirmed.",
                booking,
            );
            cx.push_to(seq, booking.customer_id.0, "booking_confirmed", message);
            if let Some(&staff_user) = cx.staff_users.get(&booking.staff_id.0) {
                let message = booking_message(
                    "staff_new_booking",
                    "New booking",
                    "You have a new booking.",
                    booking,
                );
                cx.push_to(seq, staff_user, "staff_new_booking", message);
            }
            cx.reminders(seq, booking);
        }
        Event::BookingCancelled { booking, by } => {
            if *by != booking.customer_id {
                let message = booking_message(
                    "booking_cancelled",
                    "Booking cancelled",
                    "Your booking was cancelled.",
                    booking,
                );
                cx.push_to(seq, booking.customer_id.0, "booking_cancelled", message);
            }
            if let Some(&staff_user) = cx.staff_users.get(&booking.staff_id.0)
                && staff_user != by.0
            {
                let message = booking_message(
                    "staff_booking_cancelled",
                    "Booking cancelled",
                    "A booking of yours was cancelled.",
                    booking,
                );
                cx.push_to(seq, staff_user, "staff_booking_cancelled", message);
            }
            cx.effects.push(Effect::CancelReminders {
                booking_id: booking.id.0,
                keep: Vec::new(),
            });
        }
        Event::BookingRescheduled { booking, .. } => {
            let message = booking_message(
                "booking_rescheduled",
                "Booking moved",
                "Your booking was moved.",
                booking,
            );
            cx.push_to(seq, booking.customer_id.0, "booking_rescheduled", message);
            let keep = cx.reminders(seq, booking);
            cx.effects.push(Effect::CancelReminders {
                booking_id: booking.id.0,
                keep,
            });
        }
        Event::BookingCompleted { booking } | Event::BookingNoShow { booking } => {
            cx.effects.push(Effect::CancelReminders {
                booking_id: booking.id.0,
                keep: Vec::new(),
            });
        }
        Event::QueueJoined { ticket, queue } => {
            if let Some(customer) = ticket.customer_id {
                cx.ticket_customers.insert(ticket.id.0, customer.0);
                cx.effects.push(Effect::TicketCustomer {
                    establishment_id: cx.establishment_id,
                    ticket_id: ticket.id.0,
                    customer_id: Some(customer.0),
                });
            }
            queue_soon(cx, queue);
        }
        Event::QueueMoved { queue, .. } | Event::QueueStarted { queue, .. } => {
            queue_soon(cx, queue);
        }
        Event::QueueEstimates { queue } => queue_soon(cx, queue),
        Event::QueueLeft { ticket, queue }
        | Event::QueueNoShow { ticket, queue }
        | Event::QueueFinished { ticket, queue } => {
            forget_ticket(cx, ticket.id.0);
            queue_soon(cx, queue);
        }
        Event::QueueCalled { ticket, queue } => {
            forget_ticket(cx, ticket.id.0);
            queue_soon(cx, queue);
            if let Some(customer) = ticket.customer_id {
                let message = json!({
                    "title": "It's your turn",
                    "body": format!("Ticket {} is being called.", ticket.number),
                    "data": {
                        "type": "queue_called",
                        "establishment_id": cx.establishment_id,
                        "ticket_id": ticket.id.0,
                    },
                });
                cx.push_to(seq, customer.0, "queue_called", message);
            }
        }
        _ => {}
    }
}

/// The tickets any queue event of the batch places at [`QUEUE_SOON_POSITION`] or better.
fn soon_tickets(records: &[EventRecord]) -> std::collections::BTreeSet<Uuid> {
    let mut out = std::collections::BTreeSet::new();
    for record in records {
        let queue = match &record.event {
            Event::QueueJoined { queue, .. }
            | Event::QueueCalled { queue, .. }
            | Event::QueueStarted { queue, .. }
            | Event::QueueFinished { queue, .. }
            | Event::QueueNoShow { queue, .. }
            | Event::QueueLeft { queue, .. }
            | Event::QueueMoved { queue, .. }
            | Event::QueueEstimates { queue } => queue,
            _ => continue,
        };
        out.extend(
            queue
                .iter()
                .filter(|p| p.position <= QUEUE_SOON_POSITION)
                .map(|p| p.ticket_id.0),
        );
    }
    out
}

fn forget_ticket(cx: &mut Context, ticket: Uuid) {
    if cx.ticket_customers.remove(&ticket).is_some() {
        cx.effects.push(Effect::TicketCustomer {
            establishment_id: cx.establishment_id,
            ticket_id: ticket,
            customer_id: None,
        });
    }
}

/// Tell each waiting customer at [`QUEUE_SOON_POSITION`] or better, once per ticket (the
/// id is the ticket's, so later events insert nothing new).
fn queue_soon(cx: &mut Context, queue: &[navaro_protocol::QueuePosition]) {
    for place in queue.iter().filter(|p| p.position <= QUEUE_SOON_POSITION) {
        let ticket = place.ticket_id.0;
        let Some(&customer) = cx.ticket_customers.get(&ticket) else {
            continue;
        };
        let id = stable_id(&[
            CONSUMER.as_bytes(),
            cx.establishment_id.as_bytes(),
            b"queue_soon",
            ticket.as_bytes(),
        ]);
        let ahead = place.position - 1;
        let message = json!({
            "title": "Your turn is coming up",
            "body": if ahead == 0 { "You are next.".to_owned() } else { format!("{ahead} ahead of you.") },
            "data": {
                "type": "queue_soon",
                "establishment_id": cx.establishment_id,
                "ticket_id": ticket,
                "position": place.position,
            },
        });
        cx.effects.push(Effect::Enqueue(NewDelivery {
            id,
            establishment_id: cx.establishment_id,
            channel: Channel::Push,
            target: customer,
            event_type: "queue_soon".to_owned(),
            payload: message.to_string(),
            booking_id: None,
            due_at_us: cx.now_us,
        }));
    }
}

impl Db {
    /// The customer of a waiting ticket, if the consumer has seen them join.
    pub async fn ticket_customer(
        &self,
        establishment_id: Uuid,
        ticket_id: Uuid,
    ) -> Result<Option<Uuid>, NotifyError> {
        let row: Option<(Uuid,)> = on_db!(self, |pool, _b| {
            sqlx::query_as(
                "SELECT customer_id FROM notify_tickets WHERE establishment_id = $1 AND ticket_id = $2",
            )
            .bind(establishment_id)
            .bind(ticket_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(c,)| c))
    }

    /// Staff members' user accounts at an establishment, as learned from its events.
    pub async fn staff_users(
        &self,
        establishment_id: Uuid,
    ) -> Result<HashMap<Uuid, Uuid>, NotifyError> {
        let rows: Vec<(Uuid, Uuid)> = on_db!(self, |pool, _b| {
            sqlx::query_as(
                "SELECT staff_id, user_id FROM notify_staff_users WHERE establishment_id = $1",
            )
            .bind(establishment_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().collect())
    }

    /// The establishment's reminder offsets in minutes, if it has set them.
    pub async fn reminder_offsets(
        &self,
        establishment_id: Uuid,
    ) -> Result<Option<Vec<u32>>, NotifyError> {
        let row: Option<(String,)> = on_db!(self, |pool, _b| {
            sqlx::query_as(
                "SELECT reminder_offsets FROM notify_settings WHERE establishment_id = $1",
            )
            .bind(establishment_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(s,)| s.split(',').filter_map(|m| m.trim().parse().ok()).collect()))
    }

    /// Set the establishment's reminder offsets (an empty list: no reminders). Applies
    /// to bookings confirmed or moved from now on.
    pub async fn set_reminder_offsets(
        &self,
        establishment_id: Uuid,
        minutes: &[u32],
    ) -> Result<(), NotifyError> {
        let text = minutes
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        on_db!(self, |pool, _b| {
            sqlx::query(
                "INSERT INTO notify_settings (establishment_id, reminder_offsets) VALUES ($1, $2) \
                 ON CONFLICT (establishment_id) DO UPDATE SET reminder_offsets = excluded.reminder_offsets",
            )
            .bind(establishment_id)
            .bind(text)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
