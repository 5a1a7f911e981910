//! Instants, local days and the slot grid, done right across DST changes.
//!
//! Inside the engine an instant is a whole number of minutes since the Unix epoch
//! ([`Minute`]): bookings start on a minute grid, so nothing finer is needed and
//! comparisons are integer compares. A [`LocalDay`] maps a local date of the
//! establishment's zone to instants. On the overwhelming majority of days the UTC offset
//! is fixed and that map is an addition; on a day with a transition every conversion goes
//! through the zone database, so a local time that does not exist (spring forward) maps
//! to no slot and one that occurs twice (fall back) maps to two distinct instants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

/// Minutes since 1970-01-01T00:00Z.
pub type Minute = i64;

pub const MINUTES_PER_DAY: i64 = 1440;

/// Years outside which we refuse dates: far beyond any booking horizon, and inside the
/// range where every zone's offset is a whole number of minutes (pre-1900 local mean
/// times have seconds in them).
pub const MIN_YEAR: i16 = 1970;
pub const MAX_YEAR: i16 = 2200;

/// A time zone with its UTC offsets precomputed as a table of transitions (1970 to
/// 2200), shared by every establishment in the zone. Looking an offset up is a binary
/// search over a few hundred integers; the jiff zone is kept for the rare conversions of
/// a local time that a transition makes ambiguous or skips.
#[derive(Clone, Debug)]
pub struct Zone {
    pub tz: TimeZone,
    table: Arc<ZoneTable>,
}

#[derive(Debug)]
struct ZoneTable {
    /// Minutes at which the offset changes, ascending.
    starts: Vec<Minute>,
    /// The offset (seconds) in force from the matching start on.
    offsets: Vec<i64>,
    /// The offset before the first start.
    initial: i64,
}

impl Zone {
    /// The zone for an IANA name; tables are built once per name and shared.
    pub fn get(name: &str) -> Result<Zone, jiff::Error> {
        static TABLES: OnceLock<Mutex<HashMap<String, Arc<ZoneTable>>>> = OnceLock::new();
        let tz = TimeZone::get(name)?;
        let tables = TABLES.get_or_init(Default::default);
        let mut tables = tables.lock().unwrap_or_else(|e| e.into_inner());
        let table = tables
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(ZoneTable::build(&tz)))
            .clone();
        Ok(Zone { tz, table })
    }

    /// The UTC offset in force at an instant, in seconds.
    pub fn offset_seconds(&self, minute: Minute) -> i64 {
        let table = &self.table;
        match table.starts.partition_point(|s| *s <= minute) {
            0 => table.initial,
            i => table.offsets[i - 1],
        }
    }

    /// The first transition strictly after `minute`, if any in the table.
    fn next_transition(&self, minute: Minute) -> Option<Minute> {
        let table = &self.table;
        table
            .starts
            .get(table.starts.partition_point(|s| *s <= minute))
            .copied()
    }
}

impl ZoneTable {
    fn build(tz: &TimeZone) -> ZoneTable {
        let from = timestamp(-MINUTES_PER_DAY);
        let until = 7_258_118_400 / 60; // 2200-01-01T00:00Z
        let mut starts = Vec::new();
        let mut offsets = Vec::new();
        for transition in tz.following(from) {
            let at = floor_minute(transition.timestamp());
            if at >= until {
                break;
            }
            starts.push(at);
            offsets.push(i64::from(transition.offset().seconds()));
        }
        ZoneTable {
            starts,
            offsets,
            initial: i64::from(tz.to_offset(from).seconds()),
        }
    }
}

/// The instant as whole minutes, or `None` if it has seconds or is out of range.
pub fn exact_minute(ts: Timestamp) -> Option<Minute> {
    let s = ts.as_second();
    (ts.subsec_nanosecond() == 0 && s % 60 == 0).then_some(s / 60)
}

/// The instant rounded down to a whole minute.
pub fn floor_minute(ts: Timestamp) -> Minute {
    ts.as_second().div_euclid(60)
}

/// The timestamp of a minute. Minutes come from validated data, so the range is safe.
pub fn timestamp(minute: Minute) -> Timestamp {
    Timestamp::from_second(minute * 60).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
pub fn epoch_day(date: Date) -> i64 {
    let (y, m, d) = (
        i64::from(date.year()),
        i64::from(date.month()),
        i64::from(date.day()),
    );
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Weekday index of a day number, Monday = 0 (1970-01-01 was a Thursday).
pub fn weekday_of_epoch_day(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

/// Where an instant falls in the establishment's zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalPosition {
    /// Local date as days since the epoch.
    pub epoch_day: i64,
    /// Local minute of that day, 0..1440.
    pub minute_of_day: i64,
}

/// The local date and minute of day of an instant.
pub fn local_position(zone: &Zone, minute: Minute) -> LocalPosition {
    let offset_s = zone.offset_seconds(minute);
    let local = minute + offset_s.div_euclid(60);
    LocalPosition {
        epoch_day: local.div_euclid(MINUTES_PER_DAY),
        minute_of_day: local.rem_euclid(MINUTES_PER_DAY),
    }
}

/// One local date of a zone, ready to turn local minutes into instants.
#[derive(Clone, Debug)]
pub struct LocalDay {
    pub epoch_day: i64,
    /// `Some(base)` when the offset is the same all day: local minute `m` is the instant
    /// `base + m`. `None` on a transition day.
    fixed_base: Option<Minute>,
}

impl LocalDay {
    pub fn new(zone: &Zone, date: Date) -> LocalDay {
        Self::from_epoch_day(zone, epoch_day(date))
    }

    /// The local day `epoch_day` days after 1970-01-01.
    pub fn from_epoch_day(zone: &Zone, epoch_day: i64) -> LocalDay {
        let midnight_utc = epoch_day * MINUTES_PER_DAY;
        // The offset in force at the UTC instant that reads as local midnight under it.
        let guess_s = zone.offset_seconds(midnight_utc);
        let base = midnight_utc - guess_s / 60;
        let fixed = zone.offset_seconds(base) == guess_s
            && guess_s % 60 == 0
            // A transition right at the next midnight still moves when that midnight is.
            && zone.next_transition(base).is_none_or(|t| t > base + MINUTES_PER_DAY);
        LocalDay {
            epoch_day,
            fixed_base: fixed.then_some(base),
        }
    }

    /// Whether the offset changes during this day.
    pub fn has_transition(&self) -> bool {
        self.fixed_base.is_none()
    }

    /// The instant a local minute of this day starts at (0..=1440; 1440 is the next
    /// midnight). A time skipped by a transition maps to the instant after the gap, a
    /// repeated time to its first occurrence: the "compatible" rule of RFC 5545.
    pub fn instant(&self, zone: &Zone, minute_of_day: i64) -> Minute {
        if let Some(base) = self.fixed_base {
            return base + minute_of_day;
        }
        let (day, minute_of_day) = if minute_of_day >= MINUTES_PER_DAY {
            (self.epoch_day + 1, minute_of_day - MINUTES_PER_DAY)
        } else {
            (self.epoch_day, minute_of_day)
        };
        let date = date_of_epoch_day(day).unwrap_or(Date::ZERO);
        let dt = local_datetime(date, minute_of_day);
        zone.tz
            .to_ambiguous_timestamp(dt)
            .compatible()
            .map(floor_minute)
            .unwrap_or(self.epoch_day * MINUTES_PER_DAY)
    }

    /// Every instant of this day whose local time is on the slot grid, ascending. On a
    /// fall-back day a repeated grid time yields both of its instants; on a spring-forward
    /// day a skipped one yields none.
    pub fn grid(&self, zone: &Zone, slot_minutes: i64, out: &mut Vec<Minute>) {
        out.clear();
        if let Some(base) = self.fixed_base {
            out.extend(
                (0..MINUTES_PER_DAY)
                    .step_by(slot_minutes as usize)
                    .map(|m| base + m),
            );
            return;
        }
        let date = date_of_epoch_day(self.epoch_day).unwrap_or(Date::ZERO);
        for m in (0..MINUTES_PER_DAY).step_by(slot_minutes as usize) {
            let dt = local_datetime(date, m);
            let ambiguous = zone.tz.to_ambiguous_timestamp(dt);
            match ambiguous.offset() {
                AmbiguousOffset::Unambiguous { offset } => {
                    out.push(
                        epoch_day_minute(self.epoch_day, m) - i64::from(offset.seconds()) / 60,
                    );
                }
                AmbiguousOffset::Gap { .. } => {}
                AmbiguousOffset::Fold { before, after } => {
                    let local = epoch_day_minute(self.epoch_day, m);
                    out.push(local - i64::from(before.seconds()) / 60);
                    out.push(local - i64::from(after.seconds()) / 60);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

fn epoch_day_minute(epoch_day: i64, minute_of_day: i64) -> i64 {
    epoch_day * MINUTES_PER_DAY + minute_of_day
}

fn local_datetime(date: Date, minute_of_day: i64) -> DateTime {
    let time = Time::new((minute_of_day / 60) as i8, (minute_of_day % 60) as i8, 0, 0)
        .unwrap_or(Time::midnight());
    date.to_datetime(time)
}

/// The date `days` after `date`, if representable.
pub fn add_days(date: Date, days: i64) -> Option<Date> {
    date.checked_add(days.days()).ok()
}

/// The civil date of an epoch day (Howard Hinnant's `civil_from_days`).
pub fn date_of_epoch_day(day: i64) -> Option<Date> {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Date::new(i16::try_from(y).ok()?, m as i8, d as i8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_days_match_jiff() {
        for (y, m, d) in [
            (1970, 1, 1),
            (2000, 2, 29),
            (2026, 11, 29),
            (2100, 3, 1),
            (1999, 12, 31),
        ] {
            let date = Date::new(y, m, d).unwrap();
            let day = epoch_day(date);
            assert_eq!(date_of_epoch_day(day).unwrap(), date);
            let weekday = date.weekday().to_monday_zero_offset() as usize;
            assert_eq!(weekday_of_epoch_day(day), weekday);
        }
    }

    #[test]
    fn the_offset_table_agrees_with_jiff() {
        for name in [
            "America/New_York",
            "Europe/Lisbon",
            "America/Sao_Paulo",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
            "UTC",
        ] {
            let zone = Zone::get(name).unwrap();
            // Every 7 hours and 13 minutes from 1970 to 2100.
            let mut minute = 0;
            while minute < 68_000_000 {
                let expected = i64::from(zone.tz.to_offset(timestamp(minute)).seconds());
                assert_eq!(zone.offset_seconds(minute), expected, "{name} at {minute}");
                minute += 433;
            }
        }
    }

    #[test]
    fn fixed_days_convert_by_addition() {
        let tz = Zone::get("America/Sao_Paulo").unwrap();
        let day = LocalDay::new(&tz, Date::new(2026, 12, 1).unwrap());
        assert!(!day.has_transition());
        // 09:00 at -03:00 is 12:00Z.
        let nine = day.instant(&tz, 9 * 60);
        assert_eq!(timestamp(nine).to_string(), "2026-12-01T12:00:00Z");
    }

    #[test]
    fn spring_forward_skips_and_fall_back_repeats() {
        let tz = Zone::get("America/New_York").unwrap();
        let spring = LocalDay::new(&tz, Date::new(2026, 3, 8).unwrap());
        assert!(spring.has_transition());
        let mut grid = Vec::new();
        spring.grid(&tz, 60, &mut grid);
        assert_eq!(grid.len(), 23);
        let fall = LocalDay::new(&tz, Date::new(2026, 11, 1).unwrap());
        fall.grid(&tz, 60, &mut grid);
        assert_eq!(grid.len(), 25);
        for pair in grid.windows(2) {
            assert_eq!(pair[1] - pair[0], 60);
        }
    }

    #[test]
    fn sao_paulo_2018_midnight_did_not_exist() {
        let tz = Zone::get("America/Sao_Paulo").unwrap();
        let day = LocalDay::new(&tz, Date::new(2018, 11, 4).unwrap());
        assert!(day.has_transition());
        let mut grid = Vec::new();
        day.grid(&tz, 30, &mut grid);
        assert_eq!(grid.len(), 46);
        assert_eq!(timestamp(grid[0]).to_string(), "2018-11-04T03:00:00Z");
        // Local midnight does not exist: the day starts at 01:00 -02:00.
        assert_eq!(day.instant(&tz, 0), grid[0]);
    }
}
