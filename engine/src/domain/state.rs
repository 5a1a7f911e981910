//! An establishment's in-memory state and how events change it.
//!
//! The state is built from persistent (structurally shared) collections, so cloning it is
//! a handful of reference-count increments: the actor publishes a clone as the immutable
//! read view after every change, and readers never wait for writers.
//!
//! Each staff member has a [`Calendar`]: the instants they are busy (bookings and holds,
//! buffers included), keyed by start. The engine's core invariant is that a calendar's
//! entries never overlap; [`Establishment::apply`] asserts it in debug builds and the
//! property tests check it on every step.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use imbl::{HashMap as PMap, OrdMap, OrdSet};
use navaro_protocol::{
    Booking, BookingId, BookingStatus, EstablishmentId, EstablishmentSettings, Event, EventRecord,
    FeeKind, Hold, HoldId, Payment, PaymentId, PaymentPolicy, PluginSettings, QueuePosition, Reply,
    SavedCard, Service, ServiceId, Staff, StaffId, Ticket, TicketId, TimeOff, UserId,
};
use serde::{Deserialize, Serialize};

use super::day_cache::{DayCache, Stamps};
use super::rules::{LocalHours, Settings, parse_service_minutes, parse_time_off};
use super::time::{Minute, exact_minute};

/// What occupies a staff member's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ItemRef {
    Booking(BookingId),
    Hold(HoldId),
}

/// A busy range in a calendar: from its key (the start) to `end`, buffer included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occupancy {
    pub end: Minute,
    pub item: ItemRef,
    /// For a hold: the second (Unix) at which it stops blocking.
    pub expires_s: Option<i64>,
}

impl Occupancy {
    /// Whether this range blocks the staff member at `now_s` (an expired hold does not).
    pub fn blocks(&self, now_s: i64) -> bool {
        self.expires_s.is_none_or(|expires| expires > now_s)
    }
}

pub type Calendar = OrdMap<Minute, Occupancy>;

/// A staff member's setup: identity, weekly hours and time off.
#[derive(Clone, Debug)]
pub struct StaffMember {
    pub info: Staff,
    pub hours: LocalHours,
    /// Sorted by start.
    pub time_off: Vec<(Minute, Minute, TimeOff)>,
}

/// A service with its parsed durations and the indices of the staff who perform it.
#[derive(Clone, Debug)]
pub struct ServiceEntry {
    pub info: Service,
    pub duration: i64,
    pub buffer: i64,
    pub staff: Vec<usize>,
}

impl ServiceEntry {
    /// Minutes a booking of this service keeps its staff member busy.
    pub fn occupies(&self) -> i64 {
        self.duration + self.buffer
    }
}

/// A stored event could not be applied: the journal or snapshot holds something this
/// state cannot have produced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event {seq} cannot be applied: {reason}")]
pub struct ApplyError {
    pub seq: u64,
    pub reason: String,
}

fn corrupt(seq: u64, reason: impl Into<String>) -> ApplyError {
    ApplyError {
        seq,
        reason: reason.into(),
    }
}

/// One establishment's state.
#[derive(Clone, Debug)]
pub struct Establishment {
    pub id: EstablishmentId,
    pub owner_id: UserId,
    pub settings: Arc<Settings>,
    pub staff: Arc<Vec<StaffMember>>,
    pub services: Arc<Vec<ServiceEntry>>,
    /// Index-aligned with `staff`.
    pub calendars: Arc<Vec<Calendar>>,
    pub bookings: PMap<BookingId, Arc<Booking>>,
    pub holds: PMap<HoldId, Arc<Hold>>,
    /// Every booking by start, whatever its status: the agenda.
    pub agenda: OrdSet<(Minute, BookingId)>,
    /// Each customer's confirmed bookings and holds by start, for the per-customer cap.
    pub customer_items: OrdSet<(UserId, Minute, ItemRef)>,
    /// The walk-in queue.
    pub queue: super::queue::Queue,
    /// Why the platform suspended this establishment, while it is suspended: it then
    /// takes no new bookings, holds or walk-ins.
    pub suspended: Option<String>,
    /// What customers pay when they book (`docs/payments.md`).
    pub payment_policy: Arc<PaymentPolicy>,
    /// Every payment, by id; a checkout's payment has its hold's UUID.
    pub payments: PMap<PaymentId, Arc<Payment>>,
    /// The payment that confirmed each paid booking.
    pub booking_payments: PMap<BookingId, PaymentId>,
    /// The payments that still need the server (awaiting payment, or a refund due), so
    /// that the sweeper and the passivation check do not walk every payment.
    pub open_payments: OrdSet<PaymentId>,
    /// Installed plugins and their settings, by name.
    pub plugins: Arc<BTreeMap<String, PluginSettings>>,
    /// Uses of each promotion code by live bookings (a cancelled booking gives its use
    /// back), so that the usage limit and the once-per-customer rule are decided here,
    /// serialized with every other booking decision.
    pub promotion_uses: PMap<String, PromotionUses>,
    /// Services with a payment policy of their own (the others follow `payment_policy`).
    pub service_policies: PMap<ServiceId, Arc<PaymentPolicy>>,
    /// Each customer's saved card, for off-session fees.
    pub cards: PMap<UserId, Arc<SavedCard>>,
    /// The fee opened for each (booking, fee): at most one, ever ([`super::fees`]).
    pub fees: PMap<(BookingId, FeeKind), PaymentId>,
    /// What each customer did here (completed visits, no-shows), for policies that
    /// apply to new customers or to customers with past no-shows. Kept whatever the
    /// history window evicts.
    pub customer_records: PMap<UserId, CustomerRecord>,
    /// The seq of the last applied event.
    pub seq: u64,
    /// The history window's start as of the last eviction ([`super::window`]): every
    /// booking that ended, buffer included, at or before this minute has left the state
    /// and lives in the read model only; so has every time off that ended by then.
    /// `Minute::MIN` until the first eviction.
    pub history_from: Minute,
    /// What each event changed, for telling cached availability days still good.
    pub(crate) stamps: Stamps,
    /// Availability days computed from this state or its clones.
    pub(crate) day_cache: Arc<DayCache>,
    /// What a reader derives once from the settings, staff and services (the gateway's
    /// JSON of the establishment), shared by this state's clones until one of them
    /// changes: each such change starts an empty one.
    pub(crate) setup_rendered: Arc<OnceLock<Box<dyn Any + Send + Sync>>>,
}

impl Establishment {
    /// The state right after `establishment.created` (seq 1).
    pub fn from_created(record: &EventRecord) -> Result<Establishment, ApplyError> {
        let Event::EstablishmentCreated {
            id,
            owner_id,
            settings,
        } = &record.event
        else {
            return Err(corrupt(
                record.seq,
                "the first event must be establishment.created",
            ));
        };
        if record.seq != 1 {
            return Err(corrupt(record.seq, "establishment.created must have seq 1"));
        }
        let settings =
            Settings::parse(settings.clone()).map_err(|r| corrupt(record.seq, r.message))?;
        Ok(Establishment {
            id: *id,
            owner_id: *owner_id,
            settings: Arc::new(settings),
            staff: Arc::default(),
            services: Arc::default(),
            calendars: Arc::default(),
            bookings: PMap::new(),
            holds: PMap::new(),
            agenda: OrdSet::new(),
            customer_items: OrdSet::new(),
            queue: Default::default(),
            suspended: None,
            payment_policy: Arc::default(),
            payments: PMap::new(),
            booking_payments: PMap::new(),
            open_payments: OrdSet::new(),
            plugins: Arc::default(),
            promotion_uses: PMap::new(),
            service_policies: PMap::new(),
            cards: PMap::new(),
            fees: PMap::new(),
            customer_records: PMap::new(),
            seq: 1,
            history_from: Minute::MIN,
            stamps: Stamps::default(),
            day_cache: Arc::default(),
            setup_rendered: Arc::default(),
        })
    }

    /// How many local days availability answers from this state and its clones took
    /// from the cache, and how many they computed.
    pub fn day_cache_counts(&self) -> super::day_cache::DayCounts {
        self.day_cache.counts()
    }

    pub fn staff_index(&self, id: StaffId) -> Option<usize> {
        self.staff.iter().position(|s| s.info.id == id)
    }

    pub fn service_index(&self, id: ServiceId) -> Option<usize> {
        self.services.iter().position(|s| s.info.id == id)
    }

    pub fn service(&self, id: ServiceId) -> Option<&ServiceEntry> {
        self.service_index(id).map(|index| &self.services[index])
    }

    /// Apply one journaled event. The record must carry the next seq.
    pub fn apply(&mut self, record: &EventRecord) -> Result<(), ApplyError> {
        let seq = record.seq;
        if seq != self.seq + 1 {
            return Err(corrupt(seq, format!("expected seq {}", self.seq + 1)));
        }
        match &record.event {
            Event::EstablishmentCreated { .. } => {
                return Err(corrupt(seq, "establishment created twice"));
            }
            Event::SettingsUpdated { settings } => {
                let parsed =
                    Settings::parse(settings.clone()).map_err(|r| corrupt(seq, r.message))?;
                self.settings = Arc::new(parsed);
                self.structure_changed();
            }
            Event::EstablishmentSuspended { reason, .. } => {
                self.suspended = Some(reason.clone());
                // The establishment's rendered JSON shows the suspension; slots do not
                // change (availability is what the staff could do, bookings are refused).
                self.setup_rendered = Arc::default();
            }
            Event::EstablishmentReinstated { .. } => {
                self.suspended = None;
                self.setup_rendered = Arc::default();
            }
            Event::StaffAdded { staff } => self.add_staff(seq, staff)?,
            Event::StaffHoursSet { staff_id, hours } => {
                let index = self
                    .staff_index(*staff_id)
                    .ok_or_else(|| corrupt(seq, "unknown staff"))?;
                let parsed =
                    LocalHours::parse("hours", hours).map_err(|r| corrupt(seq, r.message))?;
                let member = &mut Arc::make_mut(&mut self.staff)[index];
                member.hours = parsed;
                member.info.hours = hours.clone();
                self.structure_changed();
            }
            Event::TimeOffAdded { time_off } => self.add_time_off(seq, time_off)?,
            Event::ServiceAdded { service } => self.add_service(seq, service)?,
            Event::BookingConfirmed { booking, from_hold } => {
                if let Some(hold_id) = from_hold {
                    self.remove_hold(seq, *hold_id)?;
                }
                self.insert_booking(seq, booking)?;
                self.count_promotion(booking, true);
            }
            Event::BookingCancelled { booking, .. } => {
                self.replace_booking(seq, booking)?;
                self.count_promotion(booking, false);
            }
            Event::BookingCompleted { booking } | Event::BookingNoShow { booking } => {
                let record = self
                    .customer_records
                    .entry(booking.customer_id)
                    .or_default();
                if booking.status == BookingStatus::NoShow {
                    record.no_shows += 1;
                } else {
                    record.completed += 1;
                }
                self.replace_booking(seq, booking)?
            }
            Event::BookingRescheduled { booking, .. } => self.replace_booking(seq, booking)?,
            Event::HoldPlaced { hold } => self.insert_hold(seq, hold)?,
            Event::HoldEnded { hold, .. } => self.remove_hold(seq, hold.id)?,
            Event::PaymentPolicySet { policy, service_id } => match service_id {
                Some(id) => {
                    self.service_policies.insert(*id, Arc::new(policy.clone()));
                }
                None => self.payment_policy = Arc::new(policy.clone()),
            },
            Event::PaymentPolicyCleared { service_id } => {
                self.service_policies.remove(service_id);
            }
            Event::PaymentCardSaved { card } => {
                self.cards.insert(card.customer_id, Arc::new(card.clone()));
            }
            Event::PaymentUpdated { payment } => self.put_payment(payment),
            Event::QueueJoined { .. }
            | Event::QueueCalled { .. }
            | Event::QueueStarted { .. }
            | Event::QueueFinished { .. }
            | Event::QueueNoShow { .. }
            | Event::QueueLeft { .. }
            | Event::QueueMoved { .. }
            | Event::QueueEstimates { .. } => self.apply_queue_event(&record.event),
            Event::PluginInstalled { name, settings } => {
                Arc::make_mut(&mut self.plugins).insert(name.clone(), settings.clone());
            }
            Event::PluginUninstalled { name } => {
                Arc::make_mut(&mut self.plugins).remove(name);
            }
        }
        self.seq = seq;
        Ok(())
    }

    /// Count (or, on a cancellation, give back) the use of a booking's promotion.
    fn count_promotion(&mut self, booking: &Booking, used: bool) {
        let Some(promotion) = &booking.promotion else {
            return;
        };
        let mut uses = self
            .promotion_uses
            .get(&promotion.code)
            .cloned()
            .unwrap_or_default();
        if used {
            uses.count += 1;
            uses.customers.insert(booking.customer_id);
        } else {
            uses.count = uses.count.saturating_sub(1);
            uses.customers.remove(&booking.customer_id);
        }
        self.promotion_uses.insert(promotion.code.clone(), uses);
    }

    fn add_staff(&mut self, seq: u64, staff: &Staff) -> Result<(), ApplyError> {
        if self.staff_index(staff.id).is_some() {
            return Err(corrupt(seq, "staff added twice"));
        }
        let hours =
            LocalHours::parse("hours", &staff.hours).map_err(|r| corrupt(seq, r.message))?;
        Arc::make_mut(&mut self.staff).push(StaffMember {
            info: staff.clone(),
            hours,
            time_off: Vec::new(),
        });
        Arc::make_mut(&mut self.calendars).push(Calendar::new());
        self.structure_changed();
        Ok(())
    }

    fn add_time_off(&mut self, seq: u64, time_off: &TimeOff) -> Result<(), ApplyError> {
        let index = self
            .staff_index(time_off.staff_id)
            .ok_or_else(|| corrupt(seq, "time off for unknown staff"))?;
        let (start, end) =
            parse_time_off(time_off.start, time_off.end).map_err(|r| corrupt(seq, r.message))?;
        let list = &mut Arc::make_mut(&mut self.staff)[index].time_off;
        let at = list.partition_point(|(s, _, _)| *s <= start);
        list.insert(at, (start, end, time_off.clone()));
        self.structure_changed();
        Ok(())
    }

    fn add_service(&mut self, seq: u64, service: &Service) -> Result<(), ApplyError> {
        if self.service(service.id).is_some() {
            return Err(corrupt(seq, "service added twice"));
        }
        let (duration, buffer) =
            parse_service_minutes(service.duration_minutes, service.buffer_after_minutes)
                .map_err(|r| corrupt(seq, r.message))?;
        let staff = service
            .staff_ids
            .iter()
            .map(|id| {
                self.staff_index(*id)
                    .ok_or_else(|| corrupt(seq, "service names unknown staff"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Arc::make_mut(&mut self.services).push(ServiceEntry {
            info: service.clone(),
            duration,
            buffer,
            staff,
        });
        self.structure_changed();
        Ok(())
    }

    fn item_span(
        seq: u64,
        start: jiff::Timestamp,
        end: jiff::Timestamp,
        buffer: u32,
    ) -> Result<(Minute, Minute), ApplyError> {
        let start =
            exact_minute(start).ok_or_else(|| corrupt(seq, "start is not a whole minute"))?;
        let end = exact_minute(end).ok_or_else(|| corrupt(seq, "end is not a whole minute"))?;
        if end <= start {
            return Err(corrupt(seq, "item ends before it starts"));
        }
        Ok((start, end + i64::from(buffer)))
    }

    fn occupy(
        &mut self,
        seq: u64,
        staff_id: StaffId,
        start: Minute,
        occupancy: Occupancy,
    ) -> Result<(), ApplyError> {
        let index = self
            .staff_index(staff_id)
            .ok_or_else(|| corrupt(seq, "unknown staff"))?;
        let calendar = &mut Arc::make_mut(&mut self.calendars)[index];
        debug_assert!(
            !overlaps_any(calendar, start, occupancy.end, None),
            "apply would overlap two items of one staff member at seq {seq}"
        );
        if calendar.insert(start, occupancy).is_some() {
            return Err(corrupt(
                seq,
                "two items start at the same instant for one staff member",
            ));
        }
        self.busy_changed(start, occupancy.end);
        Ok(())
    }

    pub(super) fn vacate(&mut self, staff_id: StaffId, start: Minute, item: ItemRef) {
        if let Some(index) = self.staff_index(staff_id) {
            let calendar = &mut Arc::make_mut(&mut self.calendars)[index];
            if let Some(occ) = calendar.get(&start).filter(|occ| occ.item == item) {
                let end = occ.end;
                calendar.remove(&start);
                self.busy_changed(start, end);
            }
        }
    }

    /// Stamp a change that may move any availability (see [`super::day_cache`]); the
    /// settings, staff or services may have changed, so their rendering is dropped.
    pub(super) fn structure_changed(&mut self) {
        let stamp = self.day_cache.next_stamp();
        self.stamps.structure_changed(stamp);
        self.setup_rendered = Arc::default();
    }

    /// Stamp a change to a calendar over `[start, end)`.
    fn busy_changed(&mut self, start: Minute, end: Minute) {
        let stamp = self.day_cache.next_stamp();
        self.stamps.busy_changed(start, end, stamp);
    }

    fn insert_booking(&mut self, seq: u64, booking: &Booking) -> Result<(), ApplyError> {
        if self.bookings.contains_key(&booking.id) {
            return Err(corrupt(seq, "booking confirmed twice"));
        }
        let (start, end) = Self::item_span(
            seq,
            booking.start,
            booking.end,
            booking.buffer_after_minutes,
        )?;
        let item = ItemRef::Booking(booking.id);
        if booking.status == BookingStatus::Confirmed {
            self.occupy(
                seq,
                booking.staff_id,
                start,
                Occupancy {
                    end,
                    item,
                    expires_s: None,
                },
            )?;
            self.customer_items
                .insert((booking.customer_id, start, item));
        }
        self.agenda.insert((start, booking.id));
        self.bookings.insert(booking.id, Arc::new(booking.clone()));
        Ok(())
    }

    fn replace_booking(&mut self, seq: u64, booking: &Booking) -> Result<(), ApplyError> {
        let Some(old) = self.bookings.get(&booking.id).cloned() else {
            // A booking that has left the history window is not here, and no command can
            // reach it any more; should an event still name it (one decided by an
            // activation that had not evicted it yet), its change is in the journal and
            // the read model, and the window has nothing to update.
            let (_, end) = Self::item_span(
                seq,
                booking.start,
                booking.end,
                booking.buffer_after_minutes,
            )?;
            if end <= self.history_from {
                return Ok(());
            }
            return Err(corrupt(seq, "event for unknown booking"));
        };
        let (old_start, _) = Self::item_span(seq, old.start, old.end, old.buffer_after_minutes)?;
        let item = ItemRef::Booking(booking.id);
        if old.status == BookingStatus::Confirmed {
            self.vacate(old.staff_id, old_start, item);
            self.customer_items
                .remove(&(old.customer_id, old_start, item));
        }
        self.agenda.remove(&(old_start, booking.id));
        self.bookings.remove(&booking.id);
        self.insert_booking(seq, booking)
    }

    fn insert_hold(&mut self, seq: u64, hold: &Hold) -> Result<(), ApplyError> {
        if self.holds.contains_key(&hold.id) {
            return Err(corrupt(seq, "hold placed twice"));
        }
        let (start, end) = Self::item_span(seq, hold.start, hold.end, hold.buffer_after_minutes)?;
        let item = ItemRef::Hold(hold.id);
        let expires_s = Some(hold.expires_at.as_second());
        self.occupy(
            seq,
            hold.staff_id,
            start,
            Occupancy {
                end,
                item,
                expires_s,
            },
        )?;
        self.customer_items.insert((hold.customer_id, start, item));
        self.holds.insert(hold.id, Arc::new(hold.clone()));
        Ok(())
    }

    fn remove_hold(&mut self, seq: u64, hold_id: HoldId) -> Result<(), ApplyError> {
        let hold = self
            .holds
            .remove(&hold_id)
            .ok_or_else(|| corrupt(seq, "event for unknown hold"))?;
        let (start, _) = Self::item_span(seq, hold.start, hold.end, hold.buffer_after_minutes)?;
        let item = ItemRef::Hold(hold_id);
        self.vacate(hold.staff_id, start, item);
        self.customer_items.remove(&(hold.customer_id, start, item));
        Ok(())
    }

    fn put_payment(&mut self, payment: &Payment) {
        match (payment.booking_id, payment.kind.fee()) {
            (Some(booking), Some(fee)) => {
                self.fees.insert((booking, fee), payment.id);
            }
            (Some(booking), None) => {
                self.booking_payments.insert(booking, payment.id);
            }
            (None, _) => {}
        }
        if super::payments::is_open(payment) {
            self.open_payments.insert(payment.id);
        } else {
            self.open_payments.remove(&payment.id);
        }
        self.payments.insert(payment.id, Arc::new(payment.clone()));
    }

    /// The answer a command gets, derived from the last event it produced and the state
    /// after applying it. Used for first answers and for idempotent replays alike.
    pub fn reply_for(&self, event: &Event) -> Reply {
        match event {
            Event::EstablishmentCreated { .. }
            | Event::SettingsUpdated { .. }
            | Event::EstablishmentSuspended { .. }
            | Event::EstablishmentReinstated { .. } => Reply::Establishment {
                id: self.id,
                owner_id: self.owner_id,
                settings: self.settings.raw.clone(),
            },
            Event::StaffAdded { staff } => Reply::Staff(staff.clone()),
            Event::StaffHoursSet { staff_id, .. } => {
                let staff = self
                    .staff_index(*staff_id)
                    .map(|i| self.staff[i].info.clone());
                Reply::Staff(staff.unwrap_or_else(|| unreachable_staff(*staff_id)))
            }
            Event::TimeOffAdded { time_off } => Reply::TimeOff(time_off.clone()),
            Event::ServiceAdded { service } => Reply::Service(service.clone()),
            Event::BookingConfirmed { booking, .. }
            | Event::BookingCancelled { booking, .. }
            | Event::BookingRescheduled { booking, .. }
            | Event::BookingCompleted { booking }
            | Event::BookingNoShow { booking } => Reply::Booking(booking.clone()),
            Event::HoldPlaced { hold } | Event::HoldEnded { hold, .. } => Reply::Hold(hold.clone()),
            Event::PaymentPolicySet { policy, .. } => Reply::PaymentPolicy(policy.clone()),
            Event::PaymentPolicyCleared { service_id } => Reply::PaymentPolicy(
                self.service_policies
                    .get(service_id)
                    .map(|p| (**p).clone())
                    .unwrap_or_else(|| (*self.payment_policy).clone()),
            ),
            Event::PaymentCardSaved { card } => Reply::Card(card.clone()),
            Event::PaymentUpdated { payment } => Reply::Payment(payment.clone()),
            Event::QueueJoined { ticket, queue }
            | Event::QueueCalled { ticket, queue }
            | Event::QueueStarted { ticket, queue }
            | Event::QueueFinished { ticket, queue }
            | Event::QueueNoShow { ticket, queue }
            | Event::QueueLeft { ticket, queue }
            | Event::QueueMoved { ticket, queue } => {
                Reply::Ticket(super::queue::shown_ticket(ticket, queue))
            }
            Event::QueueEstimates { queue } => Reply::Estimates(queue.clone()),
            Event::PluginInstalled { name, settings } => Reply::Plugin {
                name: name.clone(),
                settings: Some(settings.clone()),
            },
            Event::PluginUninstalled { name } => Reply::Plugin {
                name: name.clone(),
                settings: None,
            },
        }
    }

    /// How many bookings, holds and tickets a snapshot of this state holds (what grows
    /// with the establishment's history; its settings, staff and services are few).
    pub fn snapshot_items(&self) -> u64 {
        (self.bookings.len() + self.holds.len() + self.payments.len() + self.queue.ticket_count())
            as u64
    }

    /// Plain data from which [`Establishment::restore`] rebuilds this state.
    pub fn to_snapshot(&self) -> SnapshotState {
        SnapshotState {
            id: self.id,
            owner_id: self.owner_id,
            seq: self.seq,
            settings: self.settings.raw.clone(),
            staff: self.staff.iter().map(|s| s.info.clone()).collect(),
            time_off: self
                .staff
                .iter()
                .flat_map(|s| s.time_off.iter().map(|(_, _, t)| t.clone()))
                .collect(),
            services: self.services.iter().map(|s| s.info.clone()).collect(),
            bookings: self
                .agenda
                .iter()
                .filter_map(|(_, id)| self.bookings.get(id))
                .map(|b| (**b).clone())
                .collect(),
            holds: self.holds.values().map(|h| (**h).clone()).collect(),
            tickets: self.queue.tickets().map(|t| (**t).clone()).collect(),
            waiting: self.queue.waiting.iter().copied().collect(),
            queue_day: self.queue.day,
            queue_last_number: self.queue.last_number,
            published: self.queue.published.clone(),
            history_from: (self.history_from != Minute::MIN).then_some(self.history_from),
            suspended: self.suspended.clone(),
            payment_policy: (*self.payment_policy).clone(),
            payments: self.payments.values().map(|p| (**p).clone()).collect(),
            plugins: self
                .plugins
                .iter()
                .map(|(name, settings)| (name.clone(), settings.clone()))
                .collect(),
            promotion_uses: self
                .promotion_uses
                .iter()
                .map(|(code, uses)| PromotionUsesSnapshot {
                    code: code.clone(),
                    count: uses.count,
                    customers: uses.customers.iter().copied().collect(),
                })
                .collect(),
            service_policies: self
                .service_policies
                .iter()
                .map(|(id, p)| (*id, (**p).clone()))
                .collect(),
            cards: self.cards.values().map(|c| (**c).clone()).collect(),
            customer_records: self
                .customer_records
                .iter()
                .map(|(id, r)| (*id, *r))
                .collect(),
        }
    }

    /// Rebuild the state a snapshot describes, checking it as it goes.
    pub fn restore(snapshot: &SnapshotState) -> Result<Establishment, ApplyError> {
        let seq = snapshot.seq;
        let created = EventRecord {
            seq: 1,
            at: jiff::Timestamp::UNIX_EPOCH,
            idempotency: None,
            event: Event::EstablishmentCreated {
                id: snapshot.id,
                owner_id: snapshot.owner_id,
                settings: snapshot.settings.clone(),
            },
        };
        let mut state =
            Establishment::from_created(&created).map_err(|e| corrupt(seq, e.reason))?;
        for staff in &snapshot.staff {
            state.add_staff(seq, staff)?;
        }
        for time_off in &snapshot.time_off {
            state.add_time_off(seq, time_off)?;
        }
        for service in &snapshot.services {
            state.add_service(seq, service)?;
        }
        for booking in &snapshot.bookings {
            state.insert_booking(seq, booking)?;
        }
        for hold in &snapshot.holds {
            state.insert_hold(seq, hold)?;
        }
        for ticket in &snapshot.tickets {
            state.queue.keep(Arc::new(ticket.clone()));
        }
        if let Some(unknown) = snapshot
            .waiting
            .iter()
            .find(|id| state.queue.ticket(id).is_none())
        {
            return Err(corrupt(
                seq,
                format!("waiting ticket {unknown} is not in the snapshot"),
            ));
        }
        state.queue.waiting = snapshot.waiting.iter().copied().collect();
        state.queue.day = snapshot.queue_day;
        state.queue.last_number = snapshot.queue_last_number;
        state.queue.published.clone_from(&snapshot.published);
        state.history_from = snapshot.history_from.unwrap_or(Minute::MIN);
        state.suspended.clone_from(&snapshot.suspended);
        state.payment_policy = Arc::new(snapshot.payment_policy.clone());
        for payment in &snapshot.payments {
            state.put_payment(payment);
        }
        state.plugins = Arc::new(snapshot.plugins.iter().cloned().collect());
        for uses in &snapshot.promotion_uses {
            let entry = PromotionUses {
                count: uses.count,
                customers: uses.customers.iter().copied().collect(),
            };
            state.promotion_uses.insert(uses.code.clone(), entry);
        }
        for (id, policy) in &snapshot.service_policies {
            state.service_policies.insert(*id, Arc::new(policy.clone()));
        }
        for card in &snapshot.cards {
            state.cards.insert(card.customer_id, Arc::new(card.clone()));
        }
        for (id, record) in &snapshot.customer_records {
            state.customer_records.insert(*id, *record);
        }
        state.seq = seq;
        Ok(state)
    }
}

fn unreachable_staff(staff_id: StaffId) -> Staff {
    // `reply_for` runs right after the event that names this staff member was applied.
    Staff {
        id: staff_id,
        name: String::new(),
        user_id: None,
        hours: Default::default(),
    }
}

/// Whether `[start, end)` overlaps a blocking item of `calendar` (other than `ignore`).
/// With `now_s = None` every item blocks, expired holds included.
pub fn overlaps_any(
    calendar: &Calendar,
    start: Minute,
    end: Minute,
    ignore: Option<ItemRef>,
) -> bool {
    first_overlap(calendar, start, end, ignore, None).is_some()
}

/// The first item of `calendar` overlapping `[start, end)`, skipping `ignore` and, when
/// `now_s` is given, holds that have expired by then.
pub fn first_overlap(
    calendar: &Calendar,
    start: Minute,
    end: Minute,
    ignore: Option<ItemRef>,
    now_s: Option<i64>,
) -> Option<(Minute, Occupancy)> {
    // Entries of a calendar are disjoint, so walking back from `end` the first entry that
    // ends by `start` proves every earlier one does too.
    for (item_start, occ) in calendar.range(..end).rev() {
        if occ.end <= start {
            break;
        }
        if Some(occ.item) != ignore && now_s.is_none_or(|now| occ.blocks(now)) {
            return Some((*item_start, *occ));
        }
    }
    None
}

/// The plain-data form of an establishment's state, as snapshots store it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotState {
    pub id: EstablishmentId,
    pub owner_id: UserId,
    pub seq: u64,
    pub settings: EstablishmentSettings,
    pub staff: Vec<Staff>,
    pub time_off: Vec<TimeOff>,
    pub services: Vec<Service>,
    pub bookings: Vec<Booking>,
    pub holds: Vec<Hold>,
    #[serde(default)]
    pub tickets: Vec<Ticket>,
    #[serde(default)]
    pub waiting: Vec<TicketId>,
    #[serde(default)]
    pub queue_day: i64,
    #[serde(default)]
    pub queue_last_number: u32,
    /// The places and estimates of the last queue event.
    #[serde(default)]
    pub published: Vec<QueuePosition>,
    /// [`Establishment::history_from`], when an eviction has happened: the bookings and
    /// time off listed here are the ones inside the window.
    #[serde(default)]
    pub history_from: Option<Minute>,
    /// Why the establishment is suspended, while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<String>,
    #[serde(default)]
    pub payment_policy: PaymentPolicy,
    #[serde(default)]
    pub payments: Vec<Payment>,
    #[serde(default)]
    pub plugins: Vec<(String, PluginSettings)>,
    #[serde(default)]
    pub promotion_uses: Vec<PromotionUsesSnapshot>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_policies: Vec<(ServiceId, PaymentPolicy)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cards: Vec<SavedCard>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customer_records: Vec<(UserId, CustomerRecord)>,
}

/// How often a promotion code is in use, and by whom.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromotionUses {
    /// Live (not cancelled) bookings that used the code.
    pub count: u32,
    /// The customers of those bookings.
    pub customers: imbl::HashSet<UserId>,
}

/// [`PromotionUses`] as a snapshot stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionUsesSnapshot {
    pub code: String,
    pub count: u32,
    pub customers: Vec<UserId>,
}

/// What a customer did at an establishment, for policies by kind of customer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRecord {
    /// Bookings marked completed.
    pub completed: u32,
    /// Bookings marked no-show.
    pub no_shows: u32,
}
