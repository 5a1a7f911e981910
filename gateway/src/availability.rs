//! The availability answer, the most frequent request of all (customers browsing), made
//! cheap: the JSON body is written directly as bytes instead of through a tree of DTOs
//! (every start used to cost a `String`, a `Vec` of staff ids and their formatting, and
//! serde's escaping of each).
//!
//! The bodies are not cached: a cache keyed on the read view's seq, the query and the
//! clock (what the answer depends on) was measured under the load test's mix and hit
//! almost never, since every write to an establishment makes a new seq, while its churn
//! of 30-60 KiB bodies cost more than the encoding it saved. The engine keeps each local
//! day's starts across views instead (`navaro_engine::domain::day_cache`): the encoders
//! read them where they are, and the default form's body is made of each day's JSON,
//! written once and kept with the day, and sent from there without a copy
//! ([`encode_days`], [`Chunks`]). For a client that takes gzip, each whole day's JSON is
//! also deflated once and kept, and the compressed answer is stitched from the kept
//! segments ([`encode_days_gzip`], [`crate::gzip`]): no answer compresses anything but
//! the days that changed since the last.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::OnceLock;

use bytes::Bytes;
use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use navaro_engine::domain::day_cache::CachedDay;
use navaro_engine::domain::{Availability, Slot};
use navaro_protocol::StaffId;
use uuid::Uuid;

use crate::body::{Chunks, kept};
use crate::dto::render;
use crate::gzip::{Segment, Stitch};

/// `{establishment_id, service_id, timezone, slots: [{start, staff_ids}]}` as API.md
/// gives it (the same bytes `serde_json` makes of [`crate::dto::AvailabilityResponse`]).
pub fn encode<'a>(
    establishment_id: Uuid,
    service_id: Uuid,
    timezone: &str,
    tz: &TimeZone,
    slots: impl IntoIterator<Item = &'a Slot, IntoIter: Clone>,
) -> Bytes {
    let slots = slots.into_iter();
    let reserved = HEAD_BYTES + timezone.len() + slots_bytes(slots.clone());
    let mut out = Vec::with_capacity(reserved);
    write_head(&mut out, establishment_id, service_id, timezone);
    out.extend_from_slice(b",\"slots\":[");
    write_slots(&mut out, slots, tz, |_| ());
    out.extend_from_slice(b"]}");
    debug_assert!(
        out.len() <= reserved,
        "{} bytes written, {reserved} reserved",
        out.len()
    );
    Bytes::from(out)
}

/// [`encode`] of an answer from the engine's cached days, as a body of shared chunks:
/// each day's slots are written once and kept with the day, and every answer that reads
/// the day points at them instead of copying them (a week's body is the head, seven
/// slices and the closing brackets, which hyper queues for `writev`, up to 16 buffers a
/// call: a week in one, a month in a few).
pub fn encode_days(
    establishment_id: Uuid,
    service_id: Uuid,
    timezone: &str,
    tz: &TimeZone,
    availability: &Availability,
) -> Chunks {
    let head = slots_head(establishment_id, service_id, timezone);
    let parts = availability.parts();
    let mut chunks = Vec::with_capacity(parts.size_hint().0 + 2);
    chunks.push(Bytes::from(head));
    for (day, range) in parts.filter(|(_, r)| !r.is_empty()) {
        let slice = RenderedDay::of(day, tz).slice(range);
        // Each slice starts with the comma before its first start; the list's first
        // does not.
        chunks.push(match chunks.len() {
            1 => slice.slice(1..),
            _ => slice,
        });
    }
    chunks.push(Bytes::from_static(b"]}"));
    Chunks::new(chunks)
}

/// [`encode_days`] compressed, for a client that accepts gzip: a week of the default form
/// is about 66 KB plain and 3 KB compressed. Nothing is compressed per answer: each
/// whole day's JSON is deflated once, on first use, and kept with the day as a
/// [`Segment`]; the head, the commas between days and the closing brackets go as stored
/// blocks around the kept segments ([`crate::gzip`]). A day the query cuts (today after
/// its notice, say) goes stored too, uncompressed: compressing it would cost more than
/// the week's other days together.
pub fn encode_days_gzip(
    establishment_id: Uuid,
    service_id: Uuid,
    timezone: &str,
    tz: &TimeZone,
    availability: &Availability,
) -> (Chunks, GzipDays) {
    let head = slots_head(establishment_id, service_id, timezone);
    let days = availability.parts().count();
    // The head, a comma before each day but the first and the closing brackets; a day
    // the query cuts adds its bytes on top (one more allocation).
    let mut stitch = Stitch::new(days, head.len() + days + 2);
    stitch.plain(&head);
    let parts = availability.parts();
    let mut days = GzipDays::default();
    let mut first = true;
    for (day, range) in parts.filter(|(_, r)| !r.is_empty()) {
        let rendered = RenderedDay::of(day, tz);
        if range.len() == day.slots.len() {
            if !first {
                stitch.plain(b",");
            }
            let mut deflated = false;
            // The kept bytes start with the comma before the day's first start.
            stitch.segment(rendered.segment.get_or_init(|| {
                deflated = true;
                Segment::deflate(&rendered.bytes[1..])
            }));
            match deflated {
                true => days.deflated += 1,
                false => days.reused += 1,
            }
        } else {
            let slice = rendered.slice(range);
            stitch.plain(if first { &slice[1..] } else { &slice });
            days.stored += 1;
        }
        first = false;
    }
    stitch.plain(b"]}");
    (stitch.finish(), days)
}

/// How [`encode_days_gzip`] sent the days of one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GzipDays {
    /// Whole days whose kept segment was used.
    pub reused: usize,
    /// Whole days deflated for this answer (and kept for the next).
    pub deflated: usize,
    /// Days the query cut, sent uncompressed.
    pub stored: usize,
}

/// The default form's bytes before its first start: the head and `"slots":[`.
fn slots_head(establishment_id: Uuid, service_id: Uuid, timezone: &str) -> Vec<u8> {
    let mut head = Vec::with_capacity(HEAD_BYTES + timezone.len());
    write_head(&mut head, establishment_id, service_id, timezone);
    head.extend_from_slice(b",\"slots\":[");
    head
}

/// Room for the head (two UUIDs and the field names) and the closing brackets; the zone
/// name's length comes on top.
const HEAD_BYTES: usize = 200;

/// At most 53 bytes a start (`{"start":"…","staff_ids":[…]},` with a 25-byte instant)
/// and 39 a staff id: reserving it makes one allocation that never grows (growing a 60 KB
/// body copied it and faulted in fresh pages, measured at 10,000 req/s).
fn slots_bytes<'a>(slots: impl Iterator<Item = &'a Slot>) -> usize {
    slots.map(|s| 53 + s.staff_ids.len() * 39).sum()
}

/// One day's slots written as the default form writes them, each after a comma
/// (`,{…},{…}`), with where each one ends, and once a client has asked for gzip, the
/// same without the first comma, deflated.
#[derive(Clone, Debug)]
struct RenderedDay {
    bytes: Bytes,
    ends: Vec<usize>,
    segment: OnceLock<Segment>,
}

impl RenderedDay {
    /// The day's rendering, made on first use and kept with the day.
    fn of<'a>(day: &'a CachedDay, tz: &TimeZone) -> Cow<'a, RenderedDay> {
        let render = || {
            let mut bytes = Vec::with_capacity(1 + slots_bytes(day.slots.iter()));
            let mut ends = Vec::with_capacity(day.slots.len());
            bytes.push(b',');
            write_slots(&mut bytes, day.slots.iter(), tz, |end| ends.push(end));
            RenderedDay {
                bytes: Bytes::from(bytes),
                ends,
                segment: OnceLock::new(),
            }
        };
        kept(&day.rendered, render)
    }

    /// The bytes of slots `range` (a non-empty range of the day's), with the comma
    /// before the first: shared, not copied.
    fn slice(&self, range: Range<usize>) -> Bytes {
        let start = match range.start {
            0 => 0,
            n => self.ends[n - 1],
        };
        self.bytes.slice(start..self.ends[range.end - 1])
    }
}

/// The default form's `{"start":…,"staff_ids":[…]}` objects, comma-separated; `ended`
/// is told where each one ends.
fn write_slots<'a>(
    out: &mut Vec<u8>,
    slots: impl Iterator<Item = &'a Slot>,
    tz: &TimeZone,
    mut ended: impl FnMut(usize),
) {
    // Staff ids repeat on every start: format each once.
    let mut rendered: Vec<(StaffId, [u8; 36])> = Vec::new();
    let mut offsets = Offsets::new(tz);
    // Neighbouring starts mostly have the same staff free: the rendered list of the
    // previous start is copied whole when its staff are the same.
    let mut last_staff: &[StaffId] = &[];
    let mut last_list: Vec<u8> = Vec::new();
    for (n, slot) in slots.enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"start\":\"");
        write_instant(out, slot.start, offsets.at(slot.start), tz);
        out.extend_from_slice(b"\",\"staff_ids\":[");
        if n == 0 || slot.staff_ids.as_slice() != last_staff {
            last_list.clear();
            for (i, staff) in slot.staff_ids.iter().enumerate() {
                if i > 0 {
                    last_list.push(b',');
                }
                let text = match rendered.iter().find(|(id, _)| id == staff) {
                    Some((_, text)) => *text,
                    None => {
                        let mut text = [0u8; 36];
                        staff.0.hyphenated().encode_lower(&mut text);
                        rendered.push((*staff, text));
                        text
                    }
                };
                last_list.push(b'"');
                last_list.extend_from_slice(&text);
                last_list.push(b'"');
            }
            last_staff = &slot.staff_ids;
        }
        out.extend_from_slice(&last_list);
        out.extend_from_slice(b"]}");
        ended(out.len());
    }
}

/// `form=runs`: `{establishment_id, service_id, timezone, step_minutes, staff_ids, runs:
/// [{start, count, staff}]}`, the same starts as [`encode`] gives, in the same order, with
/// each stretch of starts `step_minutes` apart that share their UTC offset and their free
/// staff written once. Staff are named by their index in `staff_ids`.
///
/// Neighbouring starts mostly have the same staff free, so a week's answer of a few
/// hundred starts becomes a few dozen runs: typically a tenth of the bytes or less to
/// send, parse and keep on a phone (about a quarter when the free staff change at nearly
/// every start).
pub fn encode_runs<'a>(
    establishment_id: Uuid,
    service_id: Uuid,
    timezone: &str,
    tz: &TimeZone,
    step_minutes: u16,
    slots: impl IntoIterator<Item = &'a Slot, IntoIter: Clone>,
) -> Bytes {
    let slots = slots.into_iter();
    // Starts are whole minutes (the grid's) in ascending order, so seconds compare them
    // exactly.
    debug_assert!(
        slots
            .clone()
            .all(|s| s.start.subsec_nanosecond() == 0 && s.start.as_second() % 60 == 0)
            && slots
                .clone()
                .zip(slots.clone().skip(1))
                .all(|(a, b)| a.start < b.start),
        "starts are ascending whole minutes"
    );
    let step_s = i64::from(step_minutes) * 60;
    let table = staff_table(slots.clone());
    let mut out = Vec::with_capacity(200 + table.len() * 39 + slots.clone().count() * 8);
    write_head(&mut out, establishment_id, service_id, timezone);
    out.extend_from_slice(b",\"step_minutes\":");
    write_number(&mut out, usize::from(step_minutes));
    out.extend_from_slice(b",\"staff_ids\":[");
    for (i, staff) in table.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_uuid(&mut out, staff.0);
    }
    out.extend_from_slice(b"],\"runs\":[");
    let mut offsets = Offsets::new(tz);
    // Runs alternate between a few staff sets: the indexes of the last one are kept.
    let mut last_staff: Option<&[StaffId]> = None;
    let mut last_list: Vec<u8> = Vec::new();
    let mut slots = slots.peekable();
    let mut written = 0;
    while let Some(first) = slots.next() {
        let offset = offsets.at(first.start);
        let mut count = 1;
        while slots
            .next_if(|next| {
                next.start.as_second() == first.start.as_second() + step_s * count as i64
                    && next.staff_ids == first.staff_ids
                    && offsets.at(next.start) == offset
            })
            .is_some()
        {
            count += 1;
        }
        if written > 0 {
            out.push(b',');
        }
        written += 1;
        out.extend_from_slice(b"{\"start\":\"");
        write_instant(&mut out, first.start, offset, tz);
        out.extend_from_slice(b"\",\"count\":");
        write_number(&mut out, count);
        out.extend_from_slice(b",\"staff\":[");
        if last_staff != Some(first.staff_ids.as_slice()) {
            last_list.clear();
            for (i, staff) in first.staff_ids.iter().enumerate() {
                if i > 0 {
                    last_list.push(b',');
                }
                let index = table.iter().position(|t| t == staff).expect("in the table");
                write_number(&mut last_list, index);
            }
            last_staff = Some(&first.staff_ids);
        }
        out.extend_from_slice(&last_list);
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

/// `"…"`: a UUID as a JSON string, lower-case and hyphenated.
fn write_uuid(out: &mut Vec<u8>, id: Uuid) {
    out.push(b'"');
    out.extend_from_slice(
        id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    out.push(b'"');
}

/// A count or an index, through serde_json's integer writer (no allocation).
fn write_number(out: &mut Vec<u8>, n: usize) {
    serde_json::to_writer(out, &n).expect("writing to a Vec");
}

/// Every staff member free at some start, in order of first appearance; a handful per
/// establishment, so a list. A start with the same staff as the one before adds nobody.
fn staff_table<'a>(slots: impl Iterator<Item = &'a Slot>) -> Vec<StaffId> {
    let mut table: Vec<StaffId> = Vec::new();
    let mut previous: &[StaffId] = &[];
    for slot in slots {
        if slot.staff_ids.as_slice() == previous {
            continue;
        }
        for staff in &slot.staff_ids {
            if !table.contains(staff) {
                table.push(*staff);
            }
        }
        previous = &slot.staff_ids;
    }
    table
}

/// `{"establishment_id":"…","service_id":"…","timezone":"…"`: the fields both forms open
/// with.
fn write_head(out: &mut Vec<u8>, establishment_id: Uuid, service_id: Uuid, timezone: &str) {
    out.extend_from_slice(b"{\"establishment_id\":");
    write_uuid(out, establishment_id);
    out.extend_from_slice(b",\"service_id\":");
    write_uuid(out, service_id);
    out.extend_from_slice(b",\"timezone\":");
    // The zone name came from the owner: escape it properly.
    serde_json::to_writer(&mut *out, timezone).expect("writing to a Vec");
}

/// The zone's offset, looked up once per stretch between two transitions instead of once
/// per start. Any order of instants is answered correctly; ascending ones (the
/// availability sweep's) hit the cache.
///
/// `cargo bench -p navaro-gateway --bench encode`, a week's body (336 starts x 4 staff),
/// all free / one busy every third start: 34.7 / 34.2 µs before; 25.9 / 27.5 µs with this
/// cache and the year written digit by digit; 12.2 / 20.5 µs with the staff list of the
/// previous start copied whole when it repeats.
struct Offsets<'a> {
    tz: &'a TimeZone,
    /// The offset that holds from `from` until `until` (exclusive; `None`: no later
    /// transition).
    current: Option<(Offset, Timestamp, Option<Timestamp>)>,
}

impl<'a> Offsets<'a> {
    fn new(tz: &'a TimeZone) -> Offsets<'a> {
        Offsets { tz, current: None }
    }

    fn at(&mut self, ts: Timestamp) -> Offset {
        if let Some((offset, from, until)) = self.current
            && from <= ts
            && until.is_none_or(|until| ts < until)
        {
            return offset;
        }
        let offset = self.tz.to_offset(ts);
        let until = self.tz.following(ts).next().map(|t| t.timestamp());
        self.current = Some((offset, ts, until));
        offset
    }
}

/// RFC 3339 with `offset` (the zone's at that instant), as [`render`] gives it, without
/// its allocation: `2026-12-02T09:30:00-03:00`.
fn write_instant(out: &mut Vec<u8>, ts: Timestamp, offset: Offset, tz: &TimeZone) {
    let local = offset.to_datetime(ts);
    let seconds = offset.seconds();
    let plain =
        (0..=9999).contains(&local.year()) && local.subsec_nanosecond() == 0 && seconds % 60 == 0;
    if !plain {
        // Outside what the fast path writes (never on the booking grid): the general one.
        out.extend_from_slice(render(ts, tz).as_bytes());
        return;
    }
    let two = |out: &mut Vec<u8>, n: i8| {
        out.push(b'0' + (n / 10) as u8);
        out.push(b'0' + (n % 10) as u8);
    };
    let year = local.year();
    two(out, (year / 100) as i8);
    two(out, (year % 100) as i8);
    out.push(b'-');
    two(out, local.month());
    out.push(b'-');
    two(out, local.day());
    out.push(b'T');
    two(out, local.hour());
    out.push(b':');
    two(out, local.minute());
    out.push(b':');
    two(out, local.second());
    out.push(if seconds < 0 { b'-' } else { b'+' });
    let minutes = seconds.abs() / 60;
    two(out, (minutes / 60) as i8);
    out.push(b':');
    two(out, (minutes % 60) as i8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::{AvailabilityResponse, AvailabilityRunsResponse, RunDto, SlotDto};
    use crate::gzip::tests::gunzip;

    fn reference(id: Uuid, service: Uuid, zone: &str, tz: &TimeZone, slots: &[Slot]) -> Vec<u8> {
        serde_json::to_vec(&AvailabilityResponse {
            establishment_id: id,
            service_id: service,
            timezone: zone.to_owned(),
            slots: slots
                .iter()
                .map(|s| SlotDto {
                    start: render(s.start, tz),
                    staff_ids: s.staff_ids.iter().map(|i| i.0).collect(),
                })
                .collect(),
        })
        .unwrap()
    }

    #[test]
    fn the_hand_written_body_is_the_serde_body() {
        let staff: Vec<StaffId> = (1..=3)
            .map(|n| StaffId(Uuid::from_u128(n << 64 | 7)))
            .collect();
        // Around zones' transitions and offsets of every sign, with half-hour offsets.
        let cases = [
            ("America/Sao_Paulo", "2018-11-04T01:00:00Z"),
            ("America/New_York", "2026-03-08T06:00:00Z"),
            ("America/New_York", "2026-11-01T05:00:00Z"),
            ("Europe/Lisbon", "2026-10-25T00:00:00Z"),
            ("Asia/Kolkata", "2026-06-01T00:00:00Z"),
            ("Australia/Lord_Howe", "2026-04-04T14:00:00Z"),
            ("UTC", "2026-12-31T22:00:00Z"),
        ];
        for (zone, start) in cases {
            let tz = TimeZone::get(zone).unwrap();
            let first: Timestamp = start.parse().unwrap();
            // Staff sets that change at every start, and ones that repeat in runs (the
            // encoder copies a repeated list whole).
            let changing = |i: i64| staff[..(i as usize % 4)].to_vec();
            let runs = |i: i64| staff[..(i as usize / 5 % 4)].to_vec();
            for pattern in [&changing as &dyn Fn(i64) -> Vec<StaffId>, &runs] {
                let slots: Vec<Slot> = (0..24 * 4)
                    .map(|i| Slot {
                        start: first + jiff::SignedDuration::from_mins(15 * i),
                        staff_ids: pattern(i).into(),
                    })
                    .collect();
                let (id, service) = (Uuid::from_u128(1), Uuid::from_u128(2));
                let fast = encode(id, service, zone, &tz, &slots);
                let slow = reference(id, service, zone, &tz, &slots);
                assert_eq!(
                    String::from_utf8_lossy(&fast),
                    String::from_utf8_lossy(&slow),
                    "{zone}"
                );
                check_days(zone, &tz, &slots);
                // The offset cache does not rely on ascending starts.
                let reversed: Vec<Slot> = slots.iter().rev().cloned().collect();
                assert_eq!(
                    encode(id, service, zone, &tz, &reversed),
                    reference(id, service, zone, &tz, &reversed),
                    "{zone}, descending"
                );
            }
        }
        let tz = TimeZone::UTC;
        let odd = "Zone/\"quoted\"\\";
        assert_eq!(
            encode(Uuid::nil(), Uuid::nil(), odd, &tz, &[]),
            reference(Uuid::nil(), Uuid::nil(), odd, &tz, &[])
        );
        let nothing = Availability::of_days(Vec::new());
        assert_eq!(
            drain(encode_days(Uuid::nil(), Uuid::nil(), odd, &tz, &nothing)),
            reference(Uuid::nil(), Uuid::nil(), odd, &tz, &[])
        );
        let (gzip, days) = encode_days_gzip(Uuid::nil(), Uuid::nil(), odd, &tz, &nothing);
        assert_eq!(
            gunzip(&drain(gzip)),
            reference(Uuid::nil(), Uuid::nil(), odd, &tz, &[])
        );
        assert_eq!(days, GzipDays::default());
    }

    /// The body made from cached days is the body of the starts they keep: `slots` cut
    /// into days of uneven sizes, the first cut short as a bookable window cuts it or
    /// left out whole, the last cut short, one in the middle left out, each day's
    /// rendering made by the first answer and kept for the second. The body is read as
    /// hyper reads it, chunk by chunk.
    fn check_days(zone: &str, tz: &TimeZone, slots: &[Slot]) {
        let (id, service) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let bounds = [0, 7, 27, 28, 40, 41, slots.len()];
        for first in [2..7, 0..0] {
            let days: Vec<(Vec<Slot>, Range<usize>)> = bounds
                .windows(2)
                .enumerate()
                .map(|(n, w)| {
                    let day = slots[w[0]..w[1]].to_vec();
                    let range = match n {
                        0 => first.clone(),
                        3 => 0..0,
                        n if n == bounds.len() - 2 => 0..day.len() - 3,
                        _ => 0..day.len(),
                    };
                    (day, range)
                })
                .collect();
            let kept: Vec<Slot> = days
                .iter()
                .flat_map(|(day, range)| day[range.clone()].to_vec())
                .collect();
            let answer = Availability::of_days(days);
            let expected = String::from_utf8(reference(id, service, zone, tz, &kept)).unwrap();
            let stored = if first.is_empty() { 1 } else { 2 };
            for pass in ["rendered", "kept"] {
                let body = drain(encode_days(id, service, zone, tz, &answer));
                assert_eq!(
                    String::from_utf8_lossy(&body),
                    expected,
                    "{zone}, first day {first:?}, {pass}"
                );
                // Compressed, it is the same answer: the cut days stored, the three
                // whole ones deflated by the first answer and reused by the second.
                let (gzip, days) = encode_days_gzip(id, service, zone, tz, &answer);
                assert_eq!(
                    String::from_utf8_lossy(&gunzip(&drain(gzip))),
                    expected,
                    "{zone}, first day {first:?}, {pass}, gzip"
                );
                let (deflated, reused) = if pass == "rendered" { (3, 0) } else { (0, 3) };
                assert_eq!(
                    days,
                    GzipDays {
                        reused,
                        deflated,
                        stored
                    }
                );
            }
        }
    }

    /// A body read frame by frame, as hyper reads it; its size hint is exact at every
    /// step and it ends when it says so.
    fn drain(mut body: Chunks) -> Vec<u8> {
        use http_body::Body;
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        loop {
            let left = body.size_hint();
            assert_eq!(left.exact(), Some(body.to_bytes().len() as u64));
            assert_eq!(body.is_end_stream(), left.exact() == Some(0));
            match std::pin::Pin::new(&mut body).poll_frame(&mut context) {
                std::task::Poll::Ready(Some(Ok(frame))) => {
                    out.extend_from_slice(&frame.into_data().unwrap())
                }
                std::task::Poll::Ready(None) => break,
                other => panic!("a body of chunks is always ready: {other:?}"),
            }
        }
        assert!(body.is_end_stream());
        out
    }

    /// The runs answer as serde writes [`AvailabilityRunsResponse`], from its parsed
    /// fields: the hand-written body must be the same bytes as the schema's type.
    fn reference_runs(json: &serde_json::Value) -> Vec<u8> {
        let uuid = |v: &serde_json::Value| v.as_str().unwrap().parse::<Uuid>().unwrap();
        serde_json::to_vec(&AvailabilityRunsResponse {
            establishment_id: uuid(&json["establishment_id"]),
            service_id: uuid(&json["service_id"]),
            timezone: json["timezone"].as_str().unwrap().to_owned(),
            step_minutes: json["step_minutes"].as_u64().unwrap() as u32,
            staff_ids: json["staff_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(uuid)
                .collect(),
            runs: json["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|run| RunDto {
                    start: run["start"].as_str().unwrap().to_owned(),
                    count: run["count"].as_u64().unwrap() as u32,
                    staff: serde_json::from_value(run["staff"].clone()).unwrap(),
                })
                .collect(),
        })
        .unwrap()
    }

    /// A run's start: the instant and its `±HH:MM` offset in seconds.
    fn parse_start(text: &str) -> (Timestamp, i32) {
        let (sign, hours, minutes) = (&text[19..20], &text[20..22], &text[23..25]);
        let seconds = hours.parse::<i32>().unwrap() * 3600 + minutes.parse::<i32>().unwrap() * 60;
        (
            text.parse().unwrap(),
            if sign == "-" { -seconds } else { seconds },
        )
    }

    /// The runs form read back the way API.md tells a client to (every start of a run,
    /// `step_minutes` apart, shown with the run's offset), as `(start, staff_ids)` per
    /// start; and, per run, (first instant, offset, count, staff) to check that no two
    /// neighbouring runs could have been one.
    #[allow(clippy::type_complexity)]
    fn expand(
        body: &[u8],
    ) -> (
        Vec<(String, Vec<Uuid>)>,
        Vec<(Timestamp, i32, i64, Vec<Uuid>)>,
    ) {
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        let step = body["step_minutes"].as_i64().unwrap();
        let table: Vec<Uuid> = serde_json::from_value(body["staff_ids"].clone()).unwrap();
        let (mut starts, mut runs) = (Vec::new(), Vec::new());
        for run in body["runs"].as_array().unwrap() {
            let (first, seconds) = parse_start(run["start"].as_str().unwrap());
            let offset = Offset::from_seconds(seconds).unwrap();
            let count = run["count"].as_i64().unwrap();
            assert!(count >= 1, "{run}");
            let staff: Vec<Uuid> = run["staff"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| table[i.as_u64().unwrap() as usize])
                .collect();
            for k in 0..count {
                let at = first + jiff::SignedDuration::from_mins(step * k);
                starts.push((at.display_with_offset(offset).to_string(), staff.clone()));
            }
            runs.push((first, seconds, count, staff));
        }
        let mut unique = table.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), table.len(), "a staff id twice in the table");
        (starts, runs)
    }

    /// Everything the runs form promises, for one list of starts: the bytes are the
    /// schema type's, the runs expanded are the `slots` answer's starts (with offsets),
    /// and no two neighbouring runs could have been one.
    fn check_runs(zone: &str, tz: &TimeZone, step: i64, slots: &[Slot]) {
        let (id, service) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let body = encode_runs(id, service, zone, tz, step as u16, slots);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["establishment_id"], id.to_string());
        assert_eq!(json["service_id"], service.to_string());
        assert_eq!(json["timezone"], zone);
        assert_eq!(
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&reference_runs(&json)),
            "the hand-written body is the DTO's serde body"
        );
        let plain: serde_json::Value =
            serde_json::from_slice(&encode(id, service, zone, tz, slots)).unwrap();
        let expected: Vec<(String, Vec<Uuid>)> = plain["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["start"].as_str().unwrap().to_owned(),
                    serde_json::from_value(s["staff_ids"].clone()).unwrap(),
                )
            })
            .collect();
        let (starts, runs) = expand(&body);
        assert_eq!(starts, expected, "{zone}");
        for pair in runs.windows(2) {
            let ((a, a_offset, a_count, a_staff), (b, b_offset, _, b_staff)) = (&pair[0], &pair[1]);
            let joins = *b == *a + jiff::SignedDuration::from_mins(step * a_count);
            assert!(
                !(joins && a_offset == b_offset && a_staff == b_staff),
                "{zone}: two runs that are one at {b}"
            );
        }
    }

    #[test]
    fn the_runs_form_holds_the_same_starts_as_few_runs_as_possible() {
        // Six staff: sets of more than four leave the inline storage of a start's staff.
        let staff: Vec<StaffId> = (1..=6)
            .map(|n| StaffId(Uuid::from_u128(n << 64 | 9)))
            .collect();
        let step = 15;
        let cases = [
            ("America/Sao_Paulo", "2018-11-04T01:00:00Z"),
            ("America/New_York", "2026-03-08T05:00:00Z"),
            ("America/New_York", "2026-11-01T04:00:00Z"),
            ("Europe/Lisbon", "2026-10-25T00:00:00Z"),
            ("Australia/Lord_Howe", "2026-04-04T14:00:00Z"),
            ("Asia/Kolkata", "2026-06-01T00:00:00Z"),
        ];
        // Staff sets that change at every start, that repeat in runs, and runs with
        // holes (a start nobody can take is left out of both forms).
        let changing = |i: i64| Some(staff[..(i as usize % 7)].to_vec());
        let runs = |i: i64| Some(staff[..(i as usize / 5 % 6 + 1)].to_vec());
        let holes = |i: i64| (i % 7 != 3 && i % 11 != 0).then(|| staff[1..].to_vec());
        let patterns: [&dyn Fn(i64) -> Option<Vec<StaffId>>; 3] = [&changing, &runs, &holes];
        for (zone, start) in cases {
            let tz = TimeZone::get(zone).unwrap();
            let first: Timestamp = start.parse().unwrap();
            for pattern in patterns {
                let slots: Vec<Slot> = (0..6 * 4)
                    .filter_map(|i| {
                        pattern(i).map(|ids| Slot {
                            start: first + jiff::SignedDuration::from_mins(step * i),
                            staff_ids: ids.into(),
                        })
                    })
                    .collect();
                check_runs(zone, &tz, step, &slots);
            }
        }
        let tz = TimeZone::UTC;
        let empty = encode_runs(Uuid::nil(), Uuid::nil(), "UTC", &tz, 15, &[]);
        let json: serde_json::Value = serde_json::from_slice(&empty).unwrap();
        assert_eq!(json["runs"], serde_json::json!([]));
        assert_eq!(json["staff_ids"], serde_json::json!([]));
    }

    proptest::proptest! {
        /// Any ascending starts on a grid (gaps of whole steps), any staff sets, in zones
        /// with and without transitions, on any date of four years.
        #[test]
        fn any_starts_as_runs_are_the_same_starts(
            zone in proptest::sample::select(vec![
                "America/Sao_Paulo", "America/New_York", "Europe/Lisbon",
                "Australia/Lord_Howe", "Asia/Kolkata", "UTC",
            ]),
            first_day in 0i64..4 * 365,
            step in proptest::sample::select(vec![5i64, 10, 15, 30, 60]),
            // Mostly neighbouring starts with everyone free, so that runs grow long.
            starts in proptest::collection::vec(
                (
                    proptest::prop_oneof![3 => proptest::strategy::Just(1i64), 1 => 2i64..4],
                    proptest::prop_oneof![3 => proptest::strategy::Just(63u8), 1 => 1u8..64],
                ),
                0..120,
            ),
        ) {
            let staff: Vec<StaffId> =
                (1..=6).map(|n| StaffId(Uuid::from_u128(n << 64 | 3))).collect();
            let tz = TimeZone::get(zone).unwrap();
            let origin: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
            let mut at = origin + jiff::SignedDuration::from_hours(24 * first_day);
            let mut slots = Vec::new();
            for (gap, mask) in starts {
                at += jiff::SignedDuration::from_mins(step * gap);
                let ids: Vec<StaffId> = (0..6)
                    .filter(|bit| mask & (1 << bit) != 0)
                    .map(|bit| staff[bit])
                    .collect();
                slots.push(Slot { start: at, staff_ids: ids.into() });
            }
            check_runs(zone, &tz, step, &slots);
        }
    }
}
