//! Whether a start is bookable, and every bookable start in a range.
//!
//! [`check_start`] + [`check_staff`] decide one start for one staff member: that is what
//! booking uses. [`availability`] finds every bookable start of a service over up to a
//! month with a sweep over each staff member's sorted busy ranges, which is what makes a
//! week for ten staff cost microseconds. The two are written separately for speed and
//! must agree exactly; the property tests hold them to it. Answers are made of local days
//! kept across read views ([`super::day_cache`]): only the days an event or a hold's
//! expiry changed are swept again.

use std::ops::Range;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;
use navaro_protocol::{ErrorCode, Rejection, ServiceId, StaffId};
use smallvec::SmallVec;

use super::day_cache::{CachedDay, DayKey, DayStamps};
use super::rules::{MAX_AVAILABILITY_DAYS, MAX_ITEM_MINUTES};
use super::state::{Establishment, ItemRef, ServiceEntry, first_overlap};
use super::time::{
    LocalDay, LocalPosition, MAX_YEAR, MIN_YEAR, MINUTES_PER_DAY, Minute, epoch_day, exact_minute,
    local_position, timestamp, weekday_of_epoch_day,
};

/// Why one staff member cannot take a start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaffProblem {
    OutsideHours,
    TimeOff,
    Busy,
}

/// The earliest and latest bookable start minutes at `now_s`: minimum notice and horizon.
pub fn bookable_window(est: &Establishment, now_s: i64) -> (Minute, Minute) {
    let settings = &est.settings;
    let earliest =
        now_s.div_euclid(60) + i64::from(now_s.rem_euclid(60) != 0) + settings.min_notice_minutes;
    let latest = now_s.div_euclid(60) + settings.horizon_minutes;
    (earliest, latest)
}

/// The staff-independent checks of a start: a whole minute on the local grid, not sooner
/// than the minimum notice, not beyond the horizon.
pub fn check_start(
    est: &Establishment,
    start: Timestamp,
    now_s: i64,
) -> Result<(Minute, LocalPosition), Rejection> {
    let not_on_grid = || {
        Rejection::field(
            ErrorCode::NotOnGrid,
            "start",
            format!(
                "start must be on the {}-minute local grid",
                est.settings.slot_minutes
            ),
        )
    };
    let minute = exact_minute(start).ok_or_else(not_on_grid)?;
    let (earliest, latest) = bookable_window(est, now_s);
    if minute < earliest {
        return Err(Rejection::field(
            ErrorCode::TooSoon,
            "start",
            "start is sooner than the minimum notice allows",
        ));
    }
    if minute > latest {
        return Err(Rejection::field(
            ErrorCode::TooFar,
            "start",
            "start is beyond the booking horizon",
        ));
    }
    let position = local_position(&est.settings.zone, minute);
    if position.minute_of_day % est.settings.slot_minutes != 0 {
        return Err(not_on_grid());
    }
    Ok((minute, position))
}

/// Whether staff member `index` can take `service` at `start` (on local day `position`):
/// inside one working range, outside time off, clear of every blocking item but `ignore`.
pub fn check_staff(
    est: &Establishment,
    index: usize,
    service: &ServiceEntry,
    start: Minute,
    position: LocalPosition,
    now_s: i64,
    ignore: Option<ItemRef>,
) -> Result<(), StaffProblem> {
    let member = &est.staff[index];
    let end = start + service.occupies();
    let tz = &est.settings.zone;
    let ranges = &member.hours.days[weekday_of_epoch_day(position.epoch_day)];
    let day = LocalDay::from_epoch_day(tz, position.epoch_day);
    let inside = ranges
        .iter()
        .any(|&(from, to)| day.instant(tz, from) <= start && end <= day.instant(tz, to));
    if !inside {
        return Err(StaffProblem::OutsideHours);
    }
    if member
        .time_off
        .iter()
        .any(|(s, e, _)| *s < end && *e > start)
    {
        return Err(StaffProblem::TimeOff);
    }
    if first_overlap(&est.calendars[index], start, end, ignore, Some(now_s)).is_some() {
        return Err(StaffProblem::Busy);
    }
    Ok(())
}

/// A question for [`availability`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvailabilityQuery {
    pub service_id: ServiceId,
    /// The first local date.
    pub from: Date,
    /// How many local dates, 1 to [`MAX_AVAILABILITY_DAYS`].
    pub days: u16,
    /// Only this staff member.
    pub staff_id: Option<StaffId>,
}

/// A bookable start and who is free for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub start: Timestamp,
    pub staff_ids: SlotStaff,
}

/// The staff free at one start, inline up to four: a week's answer has hundreds of
/// starts, and each used to cost a heap allocation.
pub type SlotStaff = SmallVec<[StaffId; 4]>;

/// Every start on the grid at which the service fits, with the staff free for it.
///
/// Each local day comes from the establishment's [`DayCache`](super::day_cache::DayCache)
/// when the day is still what this state would compute, and is computed and kept there
/// otherwise; [`availability_uncached`] is the same answer computed afresh.
pub fn availability(
    est: &Establishment,
    query: &AvailabilityQuery,
    now: Timestamp,
) -> Result<Availability, Rejection> {
    let (service_index, staff) = prepare(est, query)?;
    let now_s = now.as_second();
    let (earliest, latest) = bookable_window(est, now_s);
    let tz = &est.settings.zone;
    let filter = match staff {
        Candidates::All(_) => None,
        Candidates::One([index]) => Some(index),
    };
    // Leave out the days a whole day away from the bookable window (before today, past
    // the horizon): they cannot hold a bookable start whatever the zone does.
    let days: Vec<(DayKey, LocalDay)> = (0..i64::from(query.days))
        .map(|d| LocalDay::from_epoch_day(tz, epoch_day(query.from) + d))
        .filter(|day| {
            day.instant(tz, MINUTES_PER_DAY) + MINUTES_PER_DAY > earliest
                && day.instant(tz, 0) - MINUTES_PER_DAY <= latest
        })
        .map(|day| {
            let key = DayKey {
                service: service_index,
                staff: filter,
                epoch_day: day.epoch_day,
            };
            (key, day)
        })
        .collect();
    let cached = est.day_cache.get_all(days.iter().map(|(key, _)| *key));
    let mut fresh = Vec::new();
    let mut parts = Vec::with_capacity(days.len());
    for ((key, day), cached) in days.iter().zip(cached) {
        let span = day_span(est, &staff, day);
        let part = match cached.filter(|c| c.holds_for(&est.stamps, span, now_s)) {
            Some(hit) => hit,
            None => {
                let stamps = est.stamps.of_span(span.0, span.1);
                let computed = Arc::new(compute_day(
                    est,
                    service_index,
                    &staff,
                    day,
                    (span, stamps),
                    now_s,
                ));
                fresh.push((*key, Arc::clone(&computed)));
                computed
            }
        };
        parts.push(part);
    }
    let (computed, reused) = (fresh.len(), parts.len() - fresh.len());
    est.day_cache.put_all(reused, fresh);
    let (earliest, latest) = (timestamp(earliest), timestamp(latest));
    let parts = parts
        .into_iter()
        .map(|day| {
            let slots = &day.slots;
            // Most days lie wholly inside the window, which their first and last starts
            // tell without a search: a search's probes land on starts that are mostly out
            // of the cache (5% of the server's samples under availability reads).
            let first = match slots.first() {
                Some(s) if s.start >= earliest => 0,
                _ => slots.partition_point(|s| s.start < earliest),
            };
            let end = match slots.last() {
                Some(s) if s.start <= latest => slots.len(),
                _ => slots.partition_point(|s| s.start <= latest),
            };
            (day, first..end.max(first))
        })
        .filter(|(_, range)| !range.is_empty())
        .collect();
    Ok(Availability {
        parts,
        reused,
        computed,
    })
}

/// An availability answer: the bookable starts in ascending order, as slices of the
/// cached days they come from (copying them out cost more than finding them).
#[derive(Clone, Debug, Default)]
pub struct Availability {
    parts: Vec<(Arc<CachedDay>, Range<usize>)>,
    /// Days taken from the cache and days computed for this answer.
    reused: usize,
    computed: usize,
}

impl Availability {
    /// The starts, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = &Slot> + Clone {
        self.parts
            .iter()
            .flat_map(|(day, range)| day.slots[range.clone()].iter())
    }

    pub fn len(&self) -> usize {
        self.parts.iter().map(|(_, range)| range.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many of the answer's days came from the cache, and how many were computed.
    pub fn days_reused_and_computed(&self) -> (usize, usize) {
        (self.reused, self.computed)
    }

    pub fn to_vec(&self) -> Vec<Slot> {
        self.iter().cloned().collect()
    }

    /// The days the answer is made of, each with the range of its slots it takes (which
    /// can be empty).
    pub fn parts(&self) -> impl Iterator<Item = (&CachedDay, Range<usize>)> {
        self.parts
            .iter()
            .map(|(day, range)| (&**day, range.clone()))
    }

    /// An answer made of given days, each with the range of its slots it takes, as if
    /// they were cached (for tests and benchmarks of what reads answers).
    pub fn of_days(days: Vec<(Vec<Slot>, Range<usize>)>) -> Availability {
        let parts = days
            .into_iter()
            .map(|(slots, range)| {
                let day = CachedDay::new(slots, DayStamps::default(), 0, i64::MAX);
                (Arc::new(day), range)
            })
            .collect();
        Availability {
            parts,
            ..Availability::default()
        }
    }
}

/// [`availability`] computed afresh, without the cache: the reference it is tested
/// against.
pub fn availability_uncached(
    est: &Establishment,
    query: &AvailabilityQuery,
    now: Timestamp,
) -> Result<Vec<Slot>, Rejection> {
    let (service_index, staff) = prepare(est, query)?;
    let now_s = now.as_second();
    Ok(swept_slots(
        est,
        service_index,
        &staff,
        (epoch_day(query.from), i64::from(query.days)),
        now_s,
        bookable_window(est, now_s),
    ))
}

/// The [`Slot`]s [`scan`] finds over `days` local days from `from_day`.
fn swept_slots(
    est: &Establishment,
    service_index: usize,
    staff: &[usize],
    (from_day, days): (i64, i64),
    now_s: i64,
    window: (Minute, Minute),
) -> Vec<Slot> {
    let mut slots = Vec::new();
    let service = &est.services[service_index];
    scan(
        est,
        service,
        staff,
        from_day,
        days,
        now_s,
        window,
        |start, free| {
            slots.push(Slot {
                start: timestamp(start),
                staff_ids: free.map(|i| est.staff[i].info.id).collect(),
            });
        },
    );
    slots
}

/// The query's checks: its range of days and dates, its service and staff filter.
fn prepare<'a>(
    est: &'a Establishment,
    query: &AvailabilityQuery,
) -> Result<(usize, Candidates<'a>), Rejection> {
    if query.days == 0 || query.days > MAX_AVAILABILITY_DAYS {
        return Err(Rejection::invalid(
            "days",
            format!("days must be between 1 and {MAX_AVAILABILITY_DAYS}"),
        ));
    }
    if !(MIN_YEAR..MAX_YEAR).contains(&query.from.year()) {
        return Err(Rejection::invalid(
            "from",
            "from is out of the supported range of dates",
        ));
    }
    let service_index = est
        .service_index(query.service_id)
        .ok_or_else(|| Rejection::not_found("service"))?;
    let staff = eligible_staff(est, &est.services[service_index], query.staff_id)?;
    Ok((service_index, staff))
}

/// The instants whose calendars a day's starts depend on: from its midnight to the next,
/// or to the end of a working range when that comes later (hours that close at a time a
/// gap skips map to the instant after the gap, which can be past the next midnight).
fn day_span(est: &Establishment, staff: &[usize], day: &LocalDay) -> (Minute, Minute) {
    let tz = &est.settings.zone;
    let (from, mut to) = (day.instant(tz, 0), day.instant(tz, MINUTES_PER_DAY));
    if day.has_transition() {
        let weekday = weekday_of_epoch_day(day.epoch_day);
        for &index in staff {
            for &(_, close) in &est.staff[index].hours.days[weekday] {
                to = to.max(day.instant(tz, close));
            }
        }
    }
    (from, to)
}

/// One local day's bookable starts for any minimum notice and horizon, with what they
/// depend on: the stamps of `span`, the instants whatever can block a start is in.
fn compute_day(
    est: &Establishment,
    service_index: usize,
    staff: &[usize],
    day: &LocalDay,
    ((from, to), stamps): ((Minute, Minute), DayStamps),
    now_s: i64,
) -> CachedDay {
    let slots = swept_slots(
        est,
        service_index,
        staff,
        (day.epoch_day, 1),
        now_s,
        (Minute::MIN / 4, Minute::MAX / 4),
    );
    // The first expiry of a hold that blocks any start of the day.
    let valid_until_s = staff
        .iter()
        .flat_map(|&index| est.calendars[index].range(from - MAX_ITEM_MINUTES..to))
        .filter(|(_, occ)| occ.end > from && occ.blocks(now_s))
        .filter_map(|(_, occ)| occ.expires_s)
        .min()
        .unwrap_or(i64::MAX);
    CachedDay::new(slots, stamps, now_s, valid_until_s)
}

/// The staff indices to consider for a service: all who perform it, or the one asked for.
pub fn eligible_staff<'a>(
    est: &Establishment,
    service: &'a ServiceEntry,
    staff_id: Option<StaffId>,
) -> Result<Candidates<'a>, Rejection> {
    match staff_id {
        None => Ok(Candidates::All(&service.staff)),
        Some(id) => {
            let index = est.staff_index(id).ok_or_else(|| {
                Rejection::field(ErrorCode::NotFound, "staff_id", "staff member not found")
            })?;
            if service.staff.contains(&index) {
                Ok(Candidates::One([index]))
            } else {
                Err(Rejection::field(
                    ErrorCode::StaffCannotPerform,
                    "staff_id",
                    "this staff member does not perform the service",
                ))
            }
        }
    }
}

/// Staff indices to consider, without allocating for the common cases.
#[derive(Clone, Debug)]
pub enum Candidates<'a> {
    All(&'a [usize]),
    One([usize; 1]),
}

impl std::ops::Deref for Candidates<'_> {
    type Target = [usize];

    fn deref(&self) -> &[usize] {
        match self {
            Candidates::All(all) => all,
            Candidates::One(one) => one,
        }
    }
}

/// Sweep `days` local days from `from_day` and call `emit(start, free_staff)` for every
/// start in `window` (earliest and latest start, inclusive; [`bookable_window`] for what
/// can be booked at `now_s`) that the calendars allow at `now_s`, in ascending order;
/// `free_staff` yields staff indices in `staff` order.
#[allow(clippy::too_many_arguments)]
pub fn scan(
    est: &Establishment,
    service: &ServiceEntry,
    staff: &[usize],
    from_day: i64,
    days: i64,
    now_s: i64,
    (earliest, latest): (Minute, Minute),
    mut emit: impl FnMut(Minute, &mut dyn Iterator<Item = usize>),
) {
    let tz = &est.settings.zone;
    let occupies = service.occupies();
    let words = staff.len().div_ceil(64).max(1);
    let day_list: Vec<LocalDay> = (from_day..from_day + days)
        .map(|d| LocalDay::from_epoch_day(tz, d))
        .collect();
    let mut grids: Vec<Vec<Minute>> = Vec::with_capacity(day_list.len());
    for day in &day_list {
        let mut grid = Vec::new();
        day.grid(tz, est.settings.slot_minutes, &mut grid);
        grids.push(grid);
    }
    let (Some(first), Some(last)) = (
        grids.iter().find_map(|g| g.first()),
        grids.iter().rev().find_map(|g| g.last()),
    ) else {
        return;
    };
    let (window_start, window_end) = ((*first).max(earliest), (*last).min(latest) + occupies);
    let mut masks: Vec<Vec<u64>> = grids.iter().map(|g| vec![0u64; g.len() * words]).collect();
    let mut busy = Vec::new();
    for (bit, &index) in staff.iter().enumerate() {
        collect_busy(est, index, window_start, window_end, now_s, &mut busy);
        let mut cursor = 0;
        for (d, day) in day_list.iter().enumerate() {
            let ranges = &est.staff[index].hours.days[weekday_of_epoch_day(day.epoch_day)];
            for &(from, to) in ranges {
                let (open, close) = (day.instant(tz, from), day.instant(tz, to));
                let grid = &grids[d];
                let first_index = grid.partition_point(|&t| t < open.max(earliest));
                for (g, &t) in grid.iter().enumerate().skip(first_index) {
                    if t + occupies > close || t > latest {
                        break;
                    }
                    while cursor < busy.len() && busy[cursor].1 <= t {
                        cursor += 1;
                    }
                    if cursor == busy.len() || busy[cursor].0 >= t + occupies {
                        masks[d][g * words + bit / 64] |= 1 << (bit % 64);
                    }
                }
            }
        }
    }
    for (grid, mask) in grids.iter().zip(&masks) {
        for (g, &t) in grid.iter().enumerate() {
            let words_of = &mask[g * words..(g + 1) * words];
            if words_of.iter().any(|w| *w != 0) {
                let mut free = (0..staff.len())
                    .filter(|bit| words_of[bit / 64] & (1 << (bit % 64)) != 0)
                    .map(|bit| staff[bit]);
                emit(t, &mut free);
            }
        }
    }
}

/// A staff member's blocking ranges (items and time off) that reach into
/// `[from, to)`, sorted by start.
fn collect_busy(
    est: &Establishment,
    index: usize,
    from: Minute,
    to: Minute,
    now_s: i64,
    out: &mut Vec<(Minute, Minute)>,
) {
    out.clear();
    out.extend(
        est.calendars[index]
            .range(from - MAX_ITEM_MINUTES..to)
            .filter(|(_, occ)| occ.end > from && occ.blocks(now_s))
            .map(|(start, occ)| (*start, occ.end)),
    );
    let time_off = &est.staff[index].time_off;
    if time_off.iter().any(|(s, e, _)| *s < to && *e > from) {
        out.extend(
            time_off
                .iter()
                .filter(|(s, e, _)| *s < to && *e > from)
                .map(|(s, e, _)| (*s, *e)),
        );
        out.sort_unstable();
    }
}
