//! Each local day's bookable starts, kept across read views.
//!
//! The actor publishes a new read view after every event, and at the load test's rates a
//! view lives for one or two availability reads: a cache keyed on the view would almost
//! never hit. Most events touch one staff member's one day, though, so the days an
//! availability answer is made of mostly stay the same from view to view. This module
//! keeps them, per service, staff filter and local day, in one map shared by every view
//! of an establishment, and tells a still-good day from a stale one exactly:
//!
//! - Every event that changes a calendar stamps the UTC days its item covers; every
//!   other event that can change availability (settings, staff, hours, time off,
//!   services) stamps the whole establishment. A stamp is a number drawn from a counter
//!   shared by the state and all its clones, so two different events never leave the
//!   same stamp, even on states forked from one another.
//! - A cached day records the stamps it was computed under (the establishment's, and
//!   those of the UTC days its local day spans) and is used only while the state asking
//!   has exactly those stamps. A local day off UTC spans two UTC days, so an event can
//!   send two local days to be computed again where one would do: cheap, and simpler
//!   than stamping local days across a zone's transitions.
//! - A hold stops blocking when it expires, with no event: a cached day records the
//!   earliest expiry of the holds it counted as busy and is used only before then (and
//!   not before the instant it was computed at, should a clock go back).
//! - The minimum notice and the horizon move with the clock, so a cached day holds every
//!   start the calendars allow, and each answer cuts them to its own window.
//!
//! Nothing here is persisted: a restored state starts with an empty cache.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use imbl::OrdMap;
use smallvec::SmallVec;

use super::slots::Slot;
use super::time::{MINUTES_PER_DAY, Minute};

/// Past this many starts and free staff members (a start weighs one, plus one for each
/// staff member free at it) an establishment's cache starts over. A month of days of 48
/// starts for 4 staff weighs 7,440, so this holds a month for over a dozen services and
/// staff filters; it bounds what a client walking the calendar can make one
/// establishment hold at about 10-15 MB with the gateway's renderings (some 50 bytes a
/// start and 60 a free staff member), however many staff it has.
const MAX_WEIGHT: usize = 100_000;

/// The change stamps of one state (cloned with it, like the rest of the state).
///
/// Calendar changes are stamped per UTC day for the whole establishment, not per staff
/// member: a day's answer for all staff depends on every calendar anyway, and one
/// lookup per day instead of one per staff member keeps a cached answer cheap.
#[derive(Clone, Debug, Default)]
pub struct Stamps {
    /// The last event that changed settings, staff, hours, time off or services.
    structure: u64,
    /// The last event that changed a calendar item covering a UTC day.
    busy: OrdMap<i64, u64>,
    /// UTC days before this one have had their entries in `busy` dropped (they left the
    /// history window, see [`super::window`]), so that the map does not grow with the
    /// establishment's history; they all answer `forgotten` instead.
    forgotten_before: i64,
    /// A stamp drawn when those days were dropped: a day cached before then recorded
    /// older stamps, so it never matches again (a forgotten day answering 0 could match
    /// a day cached before its first change).
    forgotten: u64,
}

impl Stamps {
    /// Record that everything availability depends on may have changed.
    pub fn structure_changed(&mut self, stamp: u64) {
        self.structure = stamp;
    }

    /// Record that a calendar changed over `[start, end)`.
    pub fn busy_changed(&mut self, start: Minute, end: Minute, stamp: u64) {
        for day in utc_day(start)..=utc_day(end - 1) {
            self.busy.insert(day, stamp);
        }
    }

    /// Drop the stamps of the UTC days before the one holding `minute`; `stamp` is new.
    pub fn forget_before(&mut self, minute: Minute, stamp: u64) {
        let day = utc_day(minute);
        if day <= self.forgotten_before {
            return;
        }
        while let Some(&(oldest, _)) = self.busy.get_min() {
            if oldest >= day {
                break;
            }
            self.busy.remove(&oldest);
        }
        self.forgotten_before = day;
        self.forgotten = stamp;
    }

    /// How many UTC days have a stamp kept (bounded by the history window).
    pub fn busy_days(&self) -> usize {
        self.busy.len()
    }

    /// The stamps a day over the instants `[from, to)` depends on.
    pub fn of_span(&self, from: Minute, to: Minute) -> DayStamps {
        DayStamps {
            structure: self.structure,
            busy: self.busy_of_span(from, to).collect(),
        }
    }

    /// Whether `recorded` are this state's stamps for the same span.
    pub fn match_span(&self, recorded: &DayStamps, from: Minute, to: Minute) -> bool {
        recorded.structure == self.structure
            && recorded.busy.len() == (utc_day(to - 1) - utc_day(from) + 1) as usize
            && self
                .busy_of_span(from, to)
                .zip(&recorded.busy)
                .all(|(now, then)| now == *then)
    }

    fn busy_of_span(&self, from: Minute, to: Minute) -> impl Iterator<Item = u64> {
        (utc_day(from)..=utc_day(to - 1)).map(|day| {
            if day < self.forgotten_before {
                self.forgotten
            } else {
                self.busy.get(&day).copied().unwrap_or(0)
            }
        })
    }
}

fn utc_day(minute: Minute) -> i64 {
    minute.div_euclid(MINUTES_PER_DAY)
}

/// What a cached day was computed under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DayStamps {
    structure: u64,
    busy: SmallVec<[u64; 3]>,
}

/// Which answer a day belongs to: a service, all its staff or one, and a local date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DayKey {
    pub service: usize,
    pub staff: Option<usize>,
    pub epoch_day: i64,
}

/// One local day's bookable starts, before the minimum notice and horizon are applied.
#[derive(Debug)]
pub struct CachedDay {
    pub stamps: DayStamps,
    /// The second the day was computed at.
    pub computed_s: i64,
    /// The first second a hold counted as busy here stops blocking.
    pub valid_until_s: i64,
    pub slots: Vec<Slot>,
    /// What a reader derives from the day once and keeps with it, in its own type (the
    /// gateway's JSON of these slots); dropped with the day.
    pub rendered: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl CachedDay {
    /// A day computed at `computed_s` under `stamps`, good until `valid_until_s`.
    pub fn new(slots: Vec<Slot>, stamps: DayStamps, computed_s: i64, valid_until_s: i64) -> Self {
        CachedDay {
            stamps,
            computed_s,
            valid_until_s,
            slots,
            rendered: OnceLock::new(),
        }
    }

    /// What the day counts for against [`MAX_WEIGHT`].
    fn weight(&self) -> usize {
        self.slots.iter().map(|s| 1 + s.staff_ids.len()).sum()
    }

    /// Whether this day is what a state with `stamps` would compute at `now_s` over the
    /// instants `[from, to)`.
    pub fn holds_for(&self, stamps: &Stamps, (from, to): (Minute, Minute), now_s: i64) -> bool {
        (self.computed_s..self.valid_until_s).contains(&now_s)
            && stamps.match_span(&self.stamps, from, to)
    }
}

/// The map of cached days and their total weight.
#[derive(Default)]
struct Days {
    map: HashMap<DayKey, Arc<CachedDay>>,
    weight: usize,
}

/// The days cached for one establishment, shared by its state and every clone of it.
#[derive(Default)]
pub struct DayCache {
    next_stamp: AtomicU64,
    days: Mutex<Days>,
    reused: AtomicU64,
    computed: AtomicU64,
}

/// How many days answers took from the cache and how many they computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub reused: u64,
    pub computed: u64,
}

impl std::fmt::Debug for DayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DayCache")
            .field("days", &self.lock().map.len())
            .finish_non_exhaustive()
    }
}

impl DayCache {
    /// A stamp no other event of this establishment has had.
    pub fn next_stamp(&self) -> u64 {
        self.next_stamp.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The cached days for `keys`, in order (`None` where nothing is cached).
    pub fn get_all(&self, keys: impl Iterator<Item = DayKey>) -> Vec<Option<Arc<CachedDay>>> {
        let days = self.lock();
        keys.map(|key| days.map.get(&key).cloned()).collect()
    }

    /// Keep freshly computed days, and count what an answer reused and computed.
    pub fn put_all(&self, reused: usize, fresh: Vec<(DayKey, Arc<CachedDay>)>) {
        self.reused.fetch_add(reused as u64, Ordering::Relaxed);
        if fresh.is_empty() {
            return;
        }
        self.computed
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        let mut days = self.lock();
        for (key, day) in fresh {
            let weight = day.weight();
            if weight > MAX_WEIGHT {
                continue;
            }
            if days.weight + weight > MAX_WEIGHT {
                days.map.clear();
                days.weight = 0;
            }
            days.weight += weight;
            if let Some(old) = days.map.insert(key, day) {
                days.weight -= old.weight();
            }
        }
    }

    pub fn counts(&self) -> DayCounts {
        DayCounts {
            reused: self.reused.load(Ordering::Relaxed),
            computed: self.computed.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Days> {
        // A panic while holding the lock leaves a map of whole entries: still usable.
        self.days
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use navaro_protocol::StaffId;

    fn day(starts: usize, staff: usize) -> Arc<CachedDay> {
        let ids: SmallVec<[StaffId; 4]> = (0..staff)
            .map(|n| StaffId(uuid::Uuid::from_u128(n as u128)))
            .collect();
        let slots = (0..starts)
            .map(|n| Slot {
                start: jiff::Timestamp::from_second(n as i64 * 60).unwrap(),
                staff_ids: ids.clone(),
            })
            .collect();
        Arc::new(CachedDay::new(slots, DayStamps::default(), 0, i64::MAX))
    }

    fn key(epoch_day: i64) -> DayKey {
        DayKey {
            service: 0,
            staff: None,
            epoch_day,
        }
    }

    #[test]
    fn forgotten_days_never_match_what_was_cached_before() {
        let mut stamps = Stamps::default();
        let day = MINUTES_PER_DAY;
        // A day cached before any change to it recorded stamp 0 for it.
        let untouched = stamps.of_span(5 * day, 6 * day);
        stamps.busy_changed(5 * day + 600, 5 * day + 660, 1);
        stamps.busy_changed(9 * day + 600, 9 * day + 660, 2);
        let touched = stamps.of_span(5 * day, 6 * day);
        stamps.forget_before(8 * day, 3);
        assert_eq!(stamps.busy_days(), 1, "the days before the 8th are dropped");
        assert!(!stamps.match_span(&untouched, 5 * day, 6 * day));
        assert!(!stamps.match_span(&touched, 5 * day, 6 * day));
        // Days from the 8th keep their stamps; an earlier `forget_before` is a no-op.
        let kept = stamps.of_span(9 * day, 10 * day);
        stamps.forget_before(7 * day, 4);
        assert!(stamps.match_span(&kept, 9 * day, 10 * day));
        assert!(stamps.match_span(&stamps.of_span(5 * day, 6 * day), 5 * day, 6 * day));
    }

    #[test]
    fn the_cache_holds_no_more_than_its_weight() {
        let cache = DayCache::default();
        // 48 starts with 4 free staff each weigh 240: the bound holds 416 such days.
        for epoch_day in 0..1000 {
            cache.put_all(0, vec![(key(epoch_day), day(48, 4))]);
            let days = cache.lock();
            assert!(days.weight <= MAX_WEIGHT);
            assert_eq!(days.weight, days.map.len() * 240);
        }
        assert_eq!(cache.lock().map.len(), 1000 % (MAX_WEIGHT / 240));
        // Replacing a day counts it once.
        cache.put_all(0, vec![(key(999), day(10, 1))]);
        let days = cache.lock();
        assert_eq!(days.weight, (days.map.len() - 1) * 240 + 20);
        drop(days);
        // A day heavier than the whole bound is answered but not kept, and does not
        // push the others out.
        let kept = cache.lock().map.len();
        cache.put_all(0, vec![(key(5000), day(MAX_WEIGHT, 1))]);
        assert!(cache.get_all([key(5000)].into_iter())[0].is_none());
        assert_eq!(cache.lock().map.len(), kept);
        assert_eq!(cache.counts().computed, 1002);
    }
}
