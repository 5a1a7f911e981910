//! Whether a start is bookable, and every bookable start in a range.
//!
//! [`check_start`] + [`check_staff`] decide one start for one staff member: that is what
//! booking uses. [`availability`] finds every bookable start of a service over up to a
//! month with a sweep over each staff member's sorted busy ranges, which is what makes a
//! week for ten staff cost microseconds. The two are written separately for speed and
//! must agree exactly; the property tests hold them to it.

use jiff::Timestamp;
use jiff::civil::Date;
use navaro_protocol::{ErrorCode, Rejection, ServiceId, StaffId};
use smallvec::SmallVec;

use super::rules::{MAX_AVAILABILITY_DAYS, MAX_ITEM_MINUTES};
use super::state::{Establishment, ItemRef, ServiceEntry, first_overlap};
use super::time::{
    LocalDay, LocalPosition, MAX_YEAR, MIN_YEAR, Minute, epoch_day, exact_minute, local_position,
    timestamp, weekday_of_epoch_day,
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
pub fn availability(
    est: &Establishment,
    query: &AvailabilityQuery,
    now: Timestamp,
) -> Result<Vec<Slot>, Rejection> {
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
    let service = est
        .service(query.service_id)
        .ok_or_else(|| Rejection::not_found("service"))?;
    let staff = eligible_staff(est, service, query.staff_id)?;
    let mut slots = Vec::new();
    scan(
        est,
        service,
        &staff,
        epoch_day(query.from),
        i64::from(query.days),
        now.as_second(),
        |start, free| {
            slots.push(Slot {
                start: timestamp(start),
                staff_ids: free.map(|i| est.staff[i].info.id).collect(),
            });
        },
    );
    Ok(slots)
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
/// bookable start in ascending order; `free_staff` yields staff indices in `staff` order.
pub fn scan(
    est: &Establishment,
    service: &ServiceEntry,
    staff: &[usize],
    from_day: i64,
    days: i64,
    now_s: i64,
    mut emit: impl FnMut(Minute, &mut dyn Iterator<Item = usize>),
) {
    let tz = &est.settings.zone;
    let (earliest, latest) = bookable_window(est, now_s);
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
