//! The analytics report: the counters of a range of local days, added up per day, week
//! (Monday first) or month, with the working minutes of those dates.

use jiff::ToSpan;
use jiff::civil::{Date, Weekday};
use navaro_notify::Db;
use navaro_protocol::WeeklyHours;
use serde::Serialize;
use uuid::Uuid;

use crate::PluginError;
use crate::analytics::{NAME, State};
use crate::boundary::{kept_state, zone_of};
use crate::sql::{EVERYONE, on_db};

/// Longest range of one report, in days: a year and a day, so a leap year fits.
pub const MAX_REPORT_DAYS: i64 = 366;

/// How a report groups its days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        match s {
            "day" => Some(Period::Day),
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    /// The first local date of the period holding `date`.
    fn start_of(self, date: Date) -> Date {
        match self {
            Period::Day => date,
            Period::Week => date
                .checked_sub(i64::from(date.weekday().to_monday_zero_offset()).days())
                .unwrap_or(date),
            Period::Month => date.first_of_month(),
        }
    }
}

/// One period's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Row {
    /// The period's first local date (`YYYY-MM-DD`), clipped to the report's range.
    pub start: String,
    pub bookings: i64,
    pub cancellations: i64,
    pub no_shows: i64,
    /// No-shows per booking, 0 when there were no bookings.
    pub no_show_rate: f64,
    pub completed: i64,
    pub revenue_cents: i64,
    pub busy_minutes: i64,
    pub working_minutes: i64,
    /// Busy minutes per working minute, 0 without working hours.
    pub utilisation: f64,
    pub walk_ins: i64,
    /// Walk-ins who started service, and their waits.
    pub waits: i64,
    pub avg_wait_seconds: Option<f64>,
    pub p90_wait_seconds: Option<i64>,
}

/// Arrivals in one local hour of the day, across the range.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HourCount {
    pub hour: i64,
    pub arrivals: i64,
}

/// A report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub timezone: String,
    /// The currency of the establishment's services (revenue is in its minor units).
    pub currency: Option<String>,
    pub period: Period,
    pub from: String,
    pub to: String,
    /// The staff member the figures are for; absent: the whole establishment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staff_id: Option<Uuid>,
    pub rows: Vec<Row>,
    /// Hours with arrivals, busiest first (ties: earlier hour first).
    pub busiest_hours: Vec<HourCount>,
}

type DayRow = (String, i64, i64, i64, i64, i64, i64, i64);

/// The report of establishment `id` from `from` to `to` (local dates, inclusive).
pub async fn report(
    db: &Db,
    id: Uuid,
    from: Date,
    to: Date,
    period: Period,
    staff_id: Option<Uuid>,
) -> Result<Report, PluginError> {
    if to < from {
        return Err(PluginError::invalid("to", "to must not be before from"));
    }
    let span_days = from
        .until((jiff::Unit::Day, to))
        .map(|s| i64::from(s.get_days()))
        .unwrap_or(i64::MAX);
    if span_days >= MAX_REPORT_DAYS {
        return Err(PluginError::invalid(
            "to",
            format!("a report covers at most {MAX_REPORT_DAYS} days"),
        ));
    }
    let (timezone, state) = kept_state::<State>(db, NAME, id)
        .await?
        .unwrap_or_else(|| (String::new(), State::default()));
    if let Some(staff) = staff_id
        && !state.staff.contains_key(&staff)
    {
        return Err(PluginError::NotFound("staff member"));
    }
    let who = staff_id.unwrap_or(EVERYONE);
    let (f, t) = (from.to_string(), to.to_string());
    let days: Vec<DayRow> = on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT day, bookings, cancellations, no_shows, completed, revenue_cents, \
             busy_minutes, walk_ins FROM analytics_days \
             WHERE establishment_id = $1 AND staff_id = $2 AND day >= $3 AND day <= $4",
        )
        .bind(id)
        .bind(who)
        .bind(&f)
        .bind(&t)
        .fetch_all(pool)
        .await?
    });
    let waits: Vec<(String, i64)> = on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT day, wait_seconds FROM analytics_waits WHERE establishment_id = $1 \
             AND ($2 = $3 OR staff_id = $2) AND day >= $4 AND day <= $5",
        )
        .bind(id)
        .bind(who)
        .bind(EVERYONE)
        .bind(&f)
        .bind(&t)
        .fetch_all(pool)
        .await?
    });
    let hours: Vec<(i64, i64)> = on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT hour, CAST(SUM(arrivals) AS BIGINT) FROM analytics_hours \
             WHERE establishment_id = $1 AND staff_id = $2 AND day >= $3 AND day <= $4 \
             GROUP BY hour",
        )
        .bind(id)
        .bind(who)
        .bind(&f)
        .bind(&t)
        .fetch_all(pool)
        .await?
    });
    let zone = zone_of(&timezone);
    let rows = assemble(&zone, &state, staff_id, from, to, period, &days, &waits);
    let mut busiest: Vec<HourCount> = hours
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(hour, arrivals)| HourCount { hour, arrivals })
        .collect();
    busiest.sort_by(|a, b| b.arrivals.cmp(&a.arrivals).then(a.hour.cmp(&b.hour)));
    Ok(Report {
        timezone,
        currency: state.services.values().next().map(|s| s.1.clone()),
        period,
        from: f,
        to: t,
        staff_id,
        rows,
        busiest_hours: busiest,
    })
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    zone: &jiff::tz::TimeZone,
    state: &State,
    staff_id: Option<Uuid>,
    from: Date,
    to: Date,
    period: Period,
    days: &[DayRow],
    waits: &[(String, i64)],
) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut wait_lists: Vec<Vec<i64>> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut date = from;
    while date <= to {
        let start = period.start_of(date).max(from).to_string();
        if rows.last().is_none_or(|r| r.start != start) {
            rows.push(Row {
                start: start.clone(),
                ..Row::default()
            });
            wait_lists.push(Vec::new());
        }
        let i = rows.len() - 1;
        index.insert(date.to_string(), i);
        let hours = state
            .staff
            .iter()
            .filter(|(id, _)| staff_id.is_none_or(|s| s == **id))
            .map(|(_, h)| working_minutes(zone, h, date))
            .sum::<i64>();
        rows[i].working_minutes += hours;
        let Ok(next) = date.tomorrow() else { break };
        date = next;
    }
    for d in days {
        let Some(&i) = index.get(&d.0) else { continue };
        let r = &mut rows[i];
        r.bookings += d.1;
        r.cancellations += d.2;
        r.no_shows += d.3;
        r.completed += d.4;
        r.revenue_cents += d.5;
        r.busy_minutes += d.6;
        r.walk_ins += d.7;
    }
    for (day, wait) in waits {
        if let Some(&i) = index.get(day) {
            wait_lists[i].push(*wait);
        }
    }
    for (r, mut w) in rows.iter_mut().zip(wait_lists) {
        r.no_show_rate = ratio(r.no_shows, r.bookings);
        r.utilisation = ratio(r.busy_minutes, r.working_minutes);
        r.waits = w.len() as i64;
        if !w.is_empty() {
            w.sort_unstable();
            r.avg_wait_seconds = Some(w.iter().sum::<i64>() as f64 / w.len() as f64);
            // Nearest rank: the smallest wait at least 90% of waits are not above.
            let rank = (w.len() * 9).div_ceil(10).max(1);
            r.p90_wait_seconds = Some(w[rank - 1]);
        }
    }
    rows
}

fn ratio(a: i64, b: i64) -> f64 {
    if b <= 0 {
        0.0
    } else {
        ((a as f64 / b as f64) * 10_000.0).round() / 10_000.0
    }
}

/// Minutes of working hours on a local date, measured on the clock: a range crossing a
/// DST change is an hour shorter or longer.
pub fn working_minutes(zone: &jiff::tz::TimeZone, hours: &WeeklyHours, date: Date) -> i64 {
    let day = match date.weekday() {
        Weekday::Monday => &hours.mon,
        Weekday::Tuesday => &hours.tue,
        Weekday::Wednesday => &hours.wed,
        Weekday::Thursday => &hours.thu,
        Weekday::Friday => &hours.fri,
        Weekday::Saturday => &hours.sat,
        Weekday::Sunday => &hours.sun,
    };
    day.iter()
        .filter_map(|[a, b]| {
            let start = instant(zone, date, a)?;
            let end = instant(zone, date, b)?;
            Some((end.as_second() - start.as_second()).max(0) / 60)
        })
        .sum()
}

fn instant(zone: &jiff::tz::TimeZone, date: Date, hhmm: &str) -> Option<jiff::Timestamp> {
    let (h, m) = hhmm.split_once(':')?;
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    let (date, h) = if h == 24 {
        (date.tomorrow().ok()?, 0)
    } else {
        (date, h)
    };
    date.at(h, m, 0, 0)
        .to_zoned_datetime(zone.clone())
        .ok()
        .map(|z| z.timestamp())
}

/// The report as CSV: one line per period, the columns of [`Row`].
pub fn to_csv(report: &Report) -> String {
    let mut out = String::from(
        "start,bookings,cancellations,no_shows,no_show_rate,completed,revenue_cents,\
         busy_minutes,working_minutes,utilisation,walk_ins,waits,avg_wait_seconds,\
         p90_wait_seconds\n",
    );
    for r in &report.rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.start,
            r.bookings,
            r.cancellations,
            r.no_shows,
            r.no_show_rate,
            r.completed,
            r.revenue_cents,
            r.busy_minutes,
            r.working_minutes,
            r.utilisation,
            r.walk_ins,
            r.waits,
            r.avg_wait_seconds
                .map(|v| format!("{v:.1}"))
                .unwrap_or_default(),
            r.p90_wait_seconds
                .map(|v| v.to_string())
                .unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ny() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get("America/New_York").unwrap()
    }

    fn hours(from: &str, to: &str) -> WeeklyHours {
        WeeklyHours::every_day(&[(from, to)])
    }

    #[test]
    fn working_minutes_follow_the_clock_on_dst_days() {
        let all_day = hours("00:00", "24:00");
        let date = |s: &str| s.parse::<Date>().unwrap();
        // Clocks go back on 2026-11-01 (25 hours) and forward on 2026-03-08 (23 hours).
        assert_eq!(
            working_minutes(&ny(), &all_day, date("2026-11-01")),
            25 * 60
        );
        assert_eq!(
            working_minutes(&ny(), &all_day, date("2026-03-08")),
            23 * 60
        );
        assert_eq!(
            working_minutes(&ny(), &all_day, date("2026-11-02")),
            24 * 60
        );
        // A range that does not cross the change is as long as it says.
        assert_eq!(
            working_minutes(&ny(), &hours("09:00", "17:00"), date("2026-11-01")),
            8 * 60
        );
        // A range across it is an hour longer (back) or shorter (forward).
        assert_eq!(
            working_minutes(&ny(), &hours("01:00", "03:00"), date("2026-11-01")),
            3 * 60
        );
        assert_eq!(
            working_minutes(&ny(), &hours("01:00", "04:00"), date("2026-03-08")),
            2 * 60
        );
    }

    #[test]
    fn periods_start_on_mondays_and_firsts() {
        let date = |s: &str| s.parse::<Date>().unwrap();
        assert_eq!(
            Period::Week.start_of(date("2026-11-01")),
            date("2026-10-26")
        );
        assert_eq!(
            Period::Week.start_of(date("2026-10-26")),
            date("2026-10-26")
        );
        assert_eq!(
            Period::Month.start_of(date("2026-11-30")),
            date("2026-11-01")
        );
        assert_eq!(Period::Day.start_of(date("2026-11-30")), date("2026-11-30"));
    }

    #[test]
    fn a_report_adds_days_into_periods_and_takes_the_nearest_rank_p90() {
        let mut state = State::default();
        state.staff.insert(Uuid::nil(), hours("09:00", "17:00"));
        let day = |d: &str, bookings: i64| (d.to_owned(), bookings, 0, 1, 0, 0, 30, 0);
        let days = [day("2026-11-01", 2), day("2026-11-02", 3)];
        let waits: Vec<(String, i64)> = (1..=10)
            .map(|w| ("2026-11-02".to_owned(), w * 60))
            .collect();
        let from = "2026-10-31".parse().unwrap();
        let to = "2026-11-03".parse().unwrap();
        let rows = assemble(&ny(), &state, None, from, to, Period::Week, &days, &waits);
        // Saturday 31 and Sunday 1 in the week of Monday 26 (clipped to `from`); then
        // Monday 2 and Tuesday 3.
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].start, "2026-10-31");
        assert_eq!(
            (rows[0].bookings, rows[0].no_shows, rows[0].no_show_rate),
            (2, 1, 0.5)
        );
        assert_eq!(rows[0].working_minutes, 2 * 8 * 60);
        assert_eq!(rows[1].start, "2026-11-02");
        assert_eq!(rows[1].bookings, 3);
        assert_eq!(rows[1].waits, 10);
        assert_eq!(rows[1].avg_wait_seconds, Some(330.0));
        assert_eq!(rows[1].p90_wait_seconds, Some(540));
        assert_eq!(rows[1].utilisation, ratio(30, 2 * 8 * 60));
    }
}
