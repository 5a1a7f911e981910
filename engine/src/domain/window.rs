//! The history window: what an establishment's state keeps of its past.
//!
//! Without a bound, the state would keep every booking the establishment ever took, and
//! its memory and every snapshot would grow for as long as it takes bookings. The state
//! keeps the bookings that end (buffer included) after the window's start, some days
//! before now ([`DEFAULT_HISTORY_DAYS`], a setting of the actor), up to the horizon;
//! older ones, and time off that ended before it, are evicted ([`Establishment::evict_history`])
//! and live in the bookings read model only, which keeps every booking.
//!
//! Why no decision changes for a command inside the window (the property tests check
//! it against a state that never evicts):
//! - A new booking, hold or reschedule starts no sooner than now (the minimum notice is
//!   never negative), so it can only overlap items that end after now; the calendars
//!   keep every item that ends after the window's start, which is before now.
//! - Spreading load counts a staff member's items on the local day of the start (from
//!   its local midnight, at most 25 hours before now), and alternatives are searched
//!   from that day on; the per-customer cap counts future items only. With the window
//!   at least [`MIN_HISTORY_DAYS`] long, they all stay.
//! - Cancel, reschedule, completed and no-show name one booking: inside the window it is
//!   here as before. One that left the window is answered `not_found` by the state (the
//!   gateway, which sees it in the read model, answers `booking_archived`).
//! - Holds last minutes and are ended by the clock, and queue tickets are bounded per
//!   day (see [`super::queue`]); neither is touched here.
//! - Idempotency keys are remembered for a day
//!   ([`super::idempotency::KEY_TTL_SECONDS`]) with their answer, not a reference into
//!   the state, so a replay gives the same answer whatever was evicted.

use navaro_protocol::{BookingId, BookingStatus};
use uuid::Uuid;

use super::state::{Establishment, ItemRef};
use super::time::{MINUTES_PER_DAY, Minute, exact_minute};

/// How many days of past bookings an establishment keeps in memory by default: a week
/// covers marking last week's visits completed or no-show and the Pro apps' "last days"
/// views, which then need no database read.
pub const DEFAULT_HISTORY_DAYS: u32 = 7;
/// The shortest window: a start's local day begins up to 25 hours before now (a DST
/// day), and its items are counted when spreading load; two days keep all of them.
pub const MIN_HISTORY_DAYS: u32 = 2;
/// The longest window: as long as the longest booking horizon, beyond which the window
/// would hold more past than future.
pub const MAX_HISTORY_DAYS: u32 = 366;

/// The window's start at `now_minute` for a window of `days`.
pub fn window_start(now_minute: Minute, days: u32) -> Minute {
    now_minute - i64::from(days) * MINUTES_PER_DAY
}

/// What one eviction removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    pub bookings: usize,
    pub time_off: usize,
}

impl Evicted {
    pub fn is_empty(&self) -> bool {
        self.bookings == 0 && self.time_off == 0
    }
}

impl Establishment {
    /// Evict the bookings that ended, buffer included, at or before `from`, and the time
    /// off that ended by then; `from` becomes [`Establishment::history_from`]. A `from`
    /// not after the last one changes nothing. Costs the evicted items plus the few
    /// long bookings that started before `from` and are still inside the window.
    pub fn evict_history(&mut self, from: Minute) -> Evicted {
        if from <= self.history_from {
            return Evicted::default();
        }
        let lowest = BookingId(Uuid::nil());
        let gone: Vec<(Minute, BookingId)> = self
            .agenda
            .range(..(from, lowest))
            .filter(|(_, id)| self.bookings.get(id).is_some_and(|b| busy_end(b) <= from))
            .copied()
            .collect();
        for (start, id) in &gone {
            let Some(booking) = self.bookings.remove(id) else {
                continue;
            };
            self.agenda.remove(&(*start, *id));
            if booking.status == BookingStatus::Confirmed {
                let item = ItemRef::Booking(*id);
                self.vacate(booking.staff_id, *start, item);
                self.customer_items
                    .remove(&(booking.customer_id, *start, item));
            }
        }
        let time_off = self.evict_time_off(from);
        let stamp = self.day_cache.next_stamp();
        self.stamps.forget_before(from, stamp);
        self.history_from = from;
        Evicted {
            bookings: gone.len(),
            time_off,
        }
    }

    fn evict_time_off(&mut self, from: Minute) -> usize {
        let ended = |list: &[(Minute, Minute, navaro_protocol::TimeOff)]| {
            list.iter().filter(|(_, end, _)| *end <= from).count()
        };
        if self.staff.iter().all(|s| ended(&s.time_off) == 0) {
            return 0;
        }
        let mut count = 0;
        for member in std::sync::Arc::make_mut(&mut self.staff) {
            let before = member.time_off.len();
            member.time_off.retain(|(_, end, _)| *end > from);
            count += before - member.time_off.len();
        }
        // Past time off moves no availability (answers start at now), but the state's
        // setup changed: stamp it as such, as adding time off does.
        self.structure_changed();
        count
    }

    /// How many bookings the state holds (the window's, every status).
    pub fn booking_count(&self) -> usize {
        self.bookings.len()
    }

    /// How many UTC days have an availability change stamp kept.
    pub fn stamped_days(&self) -> usize {
        self.stamps.busy_days()
    }
}

/// The minute a booking stops occupying its staff member, buffer included.
fn busy_end(booking: &navaro_protocol::Booking) -> Minute {
    exact_minute(booking.end).unwrap_or(booking.end.as_second().div_euclid(60))
        + i64::from(booking.buffer_after_minutes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_starts_its_days_before_now() {
        assert_eq!(window_start(10 * MINUTES_PER_DAY, 7), 3 * MINUTES_PER_DAY);
        const { assert!(MIN_HISTORY_DAYS <= DEFAULT_HISTORY_DAYS) };
        const { assert!(DEFAULT_HISTORY_DAYS <= MAX_HISTORY_DAYS) };
    }
}
