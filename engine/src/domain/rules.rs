//! Parsing raw input into domain values, once, at the edge.
//!
//! Every limit here is a named constant with the reason for it. A value that passes these
//! functions is valid for the rest of the engine; a value that does not becomes a
//! [`Rejection`] naming the offending field.

use navaro_protocol::{
    CATEGORIES, ErrorCode, EstablishmentSettings, Listing, Rejection, WeeklyHours,
};

use super::time::{MINUTES_PER_DAY, Minute, Zone};

/// Slot grids must divide the hour, so every hour starts on the grid and a day's grid is
/// the same whatever the offset of the zone (all real offsets are whole quarter hours).
pub const SLOT_MINUTES_ALLOWED: [u16; 7] = [5, 10, 12, 15, 20, 30, 60];
/// Longest minimum notice: a month. Longer makes an establishment unbookable in practice.
pub const MAX_MIN_NOTICE_MINUTES: u32 = 30 * 1440;
/// Longest booking horizon: a year; availability and memory are sized for it.
pub const MAX_HORIZON_DAYS: u16 = 366;
pub const MAX_CANCEL_CUTOFF_MINUTES: u32 = 30 * 1440;
/// Per-customer cap on future bookings: at least one, at most this many.
pub const MAX_FUTURE_BOOKINGS_CAP: u16 = 1000;
/// Longest service: 12 hours. Together with the buffer an item then never spans more than
/// a day, which bounds how far back an overlap search must look.
pub const MAX_SERVICE_MINUTES: u32 = 720;
pub const MAX_BUFFER_MINUTES: u32 = 240;
/// Longest single time-off range.
pub const MAX_TIME_OFF_MINUTES: i64 = 366 * MINUTES_PER_DAY;
/// Working ranges per day: more than this is a data-entry error, not a schedule.
pub const MAX_RANGES_PER_DAY: usize = 12;
/// Names are for people; anything longer is abuse of the field.
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_STAFF: usize = 256;
pub const MAX_SERVICES: usize = 512;
pub const MAX_STAFF_PER_SERVICE: usize = 256;
/// Holds are for the seconds-to-minutes of a payment step, not for parking slots.
pub const MIN_HOLD_SECONDS: u32 = 30;
pub const MAX_HOLD_SECONDS: u32 = 1800;
/// Longest walk-in queue: beyond this, estimates are hours out and nobody should wait.
pub const MAX_QUEUE_LENGTH: u16 = 1000;
/// Longest grace before a called ticket becomes a no-show.
pub const MAX_NO_SHOW_GRACE_MINUTES: u16 = 120;
/// Availability queries span at most a month (API.md).
pub const MAX_AVAILABILITY_DAYS: u16 = 31;
/// Longest an item (service + buffer) can occupy a staff member.
pub const MAX_ITEM_MINUTES: i64 = (MAX_SERVICE_MINUTES + MAX_BUFFER_MINUTES) as i64;

/// Validated establishment settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub raw: EstablishmentSettings,
    pub zone: Zone,
    pub slot_minutes: i64,
    pub min_notice_minutes: i64,
    pub horizon_minutes: i64,
    pub cancel_cutoff_minutes: i64,
    pub max_future_bookings: usize,
}

impl Settings {
    pub fn parse(raw: EstablishmentSettings) -> Result<Settings, Rejection> {
        let name = parse_name("name", &raw.name)?;
        let zone = parse_timezone(&raw.timezone)?;
        let listing = parse_listing(raw.listing.clone())?;
        if !SLOT_MINUTES_ALLOWED.contains(&raw.slot_minutes) {
            return Err(Rejection::invalid(
                "slot_minutes",
                format!("slot_minutes must divide the hour: one of {SLOT_MINUTES_ALLOWED:?}"),
            ));
        }
        check_range(
            "min_notice_minutes",
            raw.min_notice_minutes,
            0,
            MAX_MIN_NOTICE_MINUTES,
        )?;
        check_range("horizon_days", raw.horizon_days, 1, MAX_HORIZON_DAYS)?;
        check_range(
            "cancel_cutoff_minutes",
            raw.cancel_cutoff_minutes,
            0,
            MAX_CANCEL_CUTOFF_MINUTES,
        )?;
        check_range(
            "max_future_bookings_per_customer",
            raw.max_future_bookings_per_customer,
            1,
            MAX_FUTURE_BOOKINGS_CAP,
        )?;
        check_range(
            "queue_max_length",
            raw.queue_max_length,
            1,
            MAX_QUEUE_LENGTH,
        )?;
        check_range(
            "queue_no_show_grace_minutes",
            raw.queue_no_show_grace_minutes,
            1,
            MAX_NO_SHOW_GRACE_MINUTES,
        )?;
        Ok(Settings {
            zone,
            slot_minutes: i64::from(raw.slot_minutes),
            min_notice_minutes: i64::from(raw.min_notice_minutes),
            horizon_minutes: i64::from(raw.horizon_days) * MINUTES_PER_DAY,
            cancel_cutoff_minutes: i64::from(raw.cancel_cutoff_minutes),
            max_future_bookings: usize::from(raw.max_future_bookings_per_customer),
            raw: EstablishmentSettings {
                name,
                listing,
                ..raw
            },
        })
    }
}

/// Longest address and description: a listing line and a short paragraph.
pub const MAX_ADDRESS_CHARS: usize = 300;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Longest photo URL: URLs longer than this are not links an app should load.
pub const MAX_URL_CHARS: usize = 2000;

/// A listing with its text trimmed, checked: a known category, coordinates both or
/// neither and in range (so never NaN), an https (or http) photo URL, bounded texts.
pub fn parse_listing(raw: Listing) -> Result<Listing, Rejection> {
    let text = |field: &str, value: Option<String>, max: usize| -> Result<_, Rejection> {
        let Some(value) = value else { return Ok(None) };
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > max || trimmed.chars().any(|c| c.is_control() && c != '\n') {
            return Err(Rejection::invalid(
                field,
                format!("{field} must be at most {max} printable characters"),
            ));
        }
        Ok(Some(trimmed.to_owned()))
    };
    let category = match raw.category {
        None => None,
        Some(c) if CATEGORIES.contains(&c.as_str()) => Some(c),
        Some(_) => {
            return Err(Rejection::invalid(
                "category",
                format!("category must be one of {CATEGORIES:?}"),
            ));
        }
    };
    match (raw.latitude, raw.longitude) {
        (None, None) => {}
        (Some(lat), Some(lon)) => {
            if !(-90.0..=90.0).contains(&lat.0) {
                return Err(Rejection::invalid(
                    "latitude",
                    "latitude must be between -90 and 90",
                ));
            }
            if !(-180.0..=180.0).contains(&lon.0) {
                return Err(Rejection::invalid(
                    "longitude",
                    "longitude must be between -180 and 180",
                ));
            }
        }
        (None, Some(_)) => {
            return Err(Rejection::invalid(
                "latitude",
                "latitude and longitude go together",
            ));
        }
        (Some(_), None) => {
            return Err(Rejection::invalid(
                "longitude",
                "latitude and longitude go together",
            ));
        }
    }
    let photo_url = text("photo_url", raw.photo_url, MAX_URL_CHARS)?;
    if let Some(url) = &photo_url {
        let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
        if !scheme_ok || url.chars().any(char::is_whitespace) {
            return Err(Rejection::invalid(
                "photo_url",
                "photo_url must be an http(s) URL without spaces",
            ));
        }
    }
    Ok(Listing {
        category,
        address: text("address", raw.address, MAX_ADDRESS_CHARS)?,
        latitude: raw.latitude,
        longitude: raw.longitude,
        photo_url,
        description: text("description", raw.description, MAX_DESCRIPTION_CHARS)?,
    })
}

fn check_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<T, Rejection> {
    if value < min || value > max {
        return Err(Rejection::invalid(
            field,
            format!("{field} must be between {min} and {max}"),
        ));
    }
    Ok(value)
}

/// A trimmed, non-empty name of at most [`MAX_NAME_CHARS`] characters.
pub fn parse_name(field: &str, name: &str) -> Result<String, Rejection> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(Rejection::invalid(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS || trimmed.chars().any(char::is_control) {
        return Err(Rejection::invalid(
            field,
            format!("{field} must be at most {MAX_NAME_CHARS} printable characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// An IANA time zone name the bundled database knows.
pub fn parse_timezone(name: &str) -> Result<Zone, Rejection> {
    if name.is_empty() || name.len() > 64 {
        return Err(Rejection::invalid(
            "timezone",
            "timezone must be an IANA time zone name",
        ));
    }
    Zone::get(name).map_err(|_| {
        Rejection::invalid(
            "timezone",
            format!("unknown time zone {name:?}; use an IANA name such as America/Sao_Paulo"),
        )
    })
}

/// A currency code: three ASCII capital letters (ISO 4217 shape).
pub fn parse_currency(code: &str) -> Result<(), Rejection> {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(Rejection::invalid(
            "currency",
            "currency must be an ISO 4217 code such as BRL",
        ))
    }
}

/// Weekly hours as local minute ranges `[start, end)` per weekday, Monday first; sorted,
/// disjoint, touching ranges merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalHours {
    pub days: [Vec<(i64, i64)>; 7],
}

impl LocalHours {
    pub fn parse(field: &str, hours: &WeeklyHours) -> Result<LocalHours, Rejection> {
        let mut parsed = LocalHours::default();
        for (index, (day, ranges)) in hours.days().into_iter().enumerate() {
            if ranges.len() > MAX_RANGES_PER_DAY {
                return Err(Rejection::invalid(
                    &format!("{field}.{day}"),
                    format!("at most {MAX_RANGES_PER_DAY} ranges a day"),
                ));
            }
            let mut out: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
            for (i, [start, end]) in ranges.iter().enumerate() {
                let at = format!("{field}.{day}[{i}]");
                let start = parse_hhmm(&at, start, false)?;
                let end = parse_hhmm(&at, end, true)?;
                if end <= start {
                    return Err(Rejection::invalid(
                        &at,
                        "a range must end after it starts (no overnight ranges)",
                    ));
                }
                match out.last_mut() {
                    Some(last) if start < last.1 => {
                        return Err(Rejection::invalid(
                            &at,
                            "ranges must be in order and must not overlap",
                        ));
                    }
                    Some(last) if start == last.1 => last.1 = end,
                    _ => out.push((start, end)),
                }
            }
            parsed.days[index] = out;
        }
        Ok(parsed)
    }
}

/// `HH:MM` to minutes of the day; `24:00` only as an end.
fn parse_hhmm(field: &str, text: &str, is_end: bool) -> Result<i64, Rejection> {
    let bad = || Rejection::invalid(field, format!("{text:?} is not a local time HH:MM"));
    let bytes = text.as_bytes();
    if bytes.len() != 5
        || bytes[2] != b':'
        || !bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 2 || b.is_ascii_digit())
    {
        return Err(bad());
    }
    let hour = i64::from(bytes[0] - b'0') * 10 + i64::from(bytes[1] - b'0');
    let minute = i64::from(bytes[3] - b'0') * 10 + i64::from(bytes[4] - b'0');
    if minute > 59 || hour > 24 || (hour == 24 && (minute != 0 || !is_end)) {
        return Err(bad());
    }
    Ok(hour * 60 + minute)
}

/// A service duration and buffer in range.
pub fn parse_service_minutes(duration: u32, buffer: u32) -> Result<(i64, i64), Rejection> {
    if duration == 0 || duration > MAX_SERVICE_MINUTES {
        return Err(Rejection::invalid(
            "duration_minutes",
            format!("duration_minutes must be between 1 and {MAX_SERVICE_MINUTES}"),
        ));
    }
    if buffer > MAX_BUFFER_MINUTES {
        return Err(Rejection::invalid(
            "buffer_after_minutes",
            format!("buffer_after_minutes must be at most {MAX_BUFFER_MINUTES}"),
        ));
    }
    Ok((i64::from(duration), i64::from(buffer)))
}

/// A time-off range, widened to whole minutes.
pub fn parse_time_off(
    start: jiff::Timestamp,
    end: jiff::Timestamp,
) -> Result<(Minute, Minute), Rejection> {
    let start_m = super::time::floor_minute(start);
    let end_m = super::time::floor_minute(end)
        + i64::from(end.as_second() % 60 != 0 || end.subsec_nanosecond() != 0);
    if end_m <= start_m {
        return Err(Rejection::invalid("end", "end must be after start"));
    }
    if end_m - start_m > MAX_TIME_OFF_MINUTES {
        return Err(Rejection::invalid(
            "end",
            "a time-off range spans at most 366 days",
        ));
    }
    in_supported_years("start", start)?;
    in_supported_years("end", end)?;
    Ok((start_m, end_m))
}

/// 2200-01-01T00:00Z.
const MAX_SUPPORTED_SECOND: i64 = 7_258_118_400;

/// Instants between 1970 and 2200: outside that we have no business and no exact minutes.
pub fn in_supported_years(field: &str, ts: jiff::Timestamp) -> Result<(), Rejection> {
    if !(0..MAX_SUPPORTED_SECOND).contains(&ts.as_second()) {
        return Err(Rejection::field(
            ErrorCode::InvalidRequest,
            field,
            "instant out of the supported range",
        ));
    }
    Ok(())
}
