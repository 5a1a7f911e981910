//! The availability answer, the most frequent request of all (customers browsing), made
//! cheap: the JSON body is written directly into one buffer instead of through a tree of
//! DTOs (every start used to cost a `String`, a `Vec` of staff ids and their formatting,
//! and serde's escaping of each).
//!
//! Not cached: a cache keyed on the read view's seq, the query and the clock (what the
//! answer depends on) was measured under the load test's mix and hit almost never, since
//! every write to an establishment makes a new seq, while its churn of 30-60 KiB bodies
//! cost more than the encoding it saved.

use bytes::Bytes;
use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use navaro_engine::domain::Slot;
use navaro_protocol::StaffId;
use uuid::Uuid;

use crate::dto::render;

/// `{establishment_id, service_id, timezone, slots: [{start, staff_ids}]}` as API.md
/// gives it (the same bytes `serde_json` makes of [`crate::dto::AvailabilityResponse`]).
pub fn encode(
    establishment_id: Uuid,
    service_id: Uuid,
    timezone: &str,
    tz: &TimeZone,
    slots: &[Slot],
) -> Bytes {
    // About 40 bytes a start plus 39 a staff id.
    let ids: usize = slots.iter().map(|s| s.staff_ids.len()).sum();
    let mut out = Vec::with_capacity(160 + slots.len() * 48 + ids * 39);
    out.extend_from_slice(b"{\"establishment_id\":\"");
    out.extend_from_slice(
        establishment_id
            .hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    out.extend_from_slice(b"\",\"service_id\":\"");
    out.extend_from_slice(
        service_id
            .hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    out.extend_from_slice(b"\",\"timezone\":");
    // The zone name came from the owner: escape it properly.
    serde_json::to_writer(&mut out, timezone).expect("writing to a Vec");
    out.extend_from_slice(b",\"slots\":[");
    // Staff ids repeat on every start: format each once.
    let mut rendered: Vec<(StaffId, [u8; 36])> = Vec::new();
    let mut offsets = Offsets::new(tz);
    // Neighbouring starts mostly have the same staff free: the rendered list of the
    // previous start is copied whole when its staff are the same.
    let mut last_staff: &[StaffId] = &[];
    let mut last_list: Vec<u8> = Vec::new();
    for (n, slot) in slots.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"start\":\"");
        write_instant(&mut out, slot.start, offsets.at(slot.start), tz);
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
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
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
    use crate::dto::{AvailabilityResponse, SlotDto};

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
    }
}
