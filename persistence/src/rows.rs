//! The rows the stores write, built from journal records, and the decoding of what they
//! read back.
//!
//! Encoding and projection happen on the caller's task (in `append`), not on the single
//! writer task, so the writer only moves bytes. The projection is pure: each booking or
//! hold event carries the whole item after the change, so one event gives one row.

use navaro_engine::store::JournalError;
use navaro_protocol::{Booking, BookingStatus, Encoding, EstablishmentId, Event, EventRecord};
use uuid::Uuid;

/// One `events` row.
#[derive(Clone, Debug)]
pub(crate) struct EventRow {
    pub establishment_id: Uuid,
    pub seq: i64,
    pub kind: &'static str,
    pub payload: Vec<u8>,
}

/// Whether a `bookings` row holds a booking or a hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ItemKind {
    Booking,
    Hold,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Booking => "booking",
            ItemKind::Hold => "hold",
        }
    }
}

/// One `bookings` row: a booking or a hold as of event `seq`.
#[derive(Clone, Debug)]
pub(crate) struct ItemRow {
    pub id: Uuid,
    pub establishment_id: Uuid,
    pub kind: ItemKind,
    pub staff_id: Uuid,
    pub customer_id: Uuid,
    pub start_us: i64,
    pub end_us: i64,
    /// End plus the buffer after it: the staff member is busy until then.
    pub busy_until_us: i64,
    pub status: &'static str,
    pub seq: i64,
    pub data: Vec<u8>,
}

/// What the read model must do for one event.
#[derive(Clone, Debug)]
pub(crate) enum Projection {
    /// Insert or replace the row of this item.
    Upsert(ItemRow),
    /// A hold became a booking: its row stops blocking the slot.
    HoldConverted(Uuid),
    /// The establishment's listing changed (creation, settings, a service, suspension).
    Listing(crate::listing::ListingChange),
}

/// A batch turned into rows, ready for the writer.
#[derive(Debug, Default)]
pub(crate) struct EncodedBatch {
    pub events: Vec<EventRow>,
    pub projections: Vec<Projection>,
}

/// Status of a hold row while it blocks its slot, and once it no longer does.
pub(crate) const HOLD_LIVE: &str = "held";
pub(crate) const HOLD_ENDED: &str = "ended";
pub(crate) const HOLD_CONVERTED: &str = "converted";

/// Encode a batch's records and project them. Fails only if a record cannot be encoded,
/// which for our own types means a bug; the caller reports it as unavailable.
pub(crate) fn encode_batch(
    establishment_id: EstablishmentId,
    records: &[EventRecord],
) -> Result<EncodedBatch, String> {
    let mut out = EncodedBatch::default();
    for record in records {
        let payload = navaro_protocol::encode(Encoding::MsgPack, record)
            .map_err(|e| format!("cannot encode seq {}: {e}", record.seq))?;
        out.events.push(EventRow {
            establishment_id: establishment_id.0,
            seq: seq_to_sql(record.seq),
            kind: record.event.kind(),
            payload,
        });
        project(record, &mut out.projections)?;
        if let Some(change) = crate::listing::listing_change(establishment_id.0, record) {
            out.projections.push(Projection::Listing(change));
        }
    }
    Ok(out)
}

fn booking_status(status: BookingStatus) -> &'static str {
    match status {
        BookingStatus::Confirmed => "confirmed",
        BookingStatus::Cancelled => "cancelled",
        BookingStatus::Completed => "completed",
        BookingStatus::NoShow => "no_show",
    }
}

/// The read-model changes one record makes.
pub(crate) fn project(record: &EventRecord, out: &mut Vec<Projection>) -> Result<(), String> {
    match &record.event {
        Event::BookingConfirmed { booking, from_hold } => {
            if let Some(hold) = from_hold {
                out.push(Projection::HoldConverted(hold.0));
            }
            out.push(Projection::Upsert(booking_row(booking, record.seq)?));
        }
        Event::BookingCancelled { booking, .. }
        | Event::BookingRescheduled { booking, .. }
        | Event::BookingCompleted { booking }
        | Event::BookingNoShow { booking } => {
            out.push(Projection::Upsert(booking_row(booking, record.seq)?));
        }
        Event::HoldPlaced { hold } | Event::HoldEnded { hold, .. } => {
            let status = match record.event {
                Event::HoldPlaced { .. } => HOLD_LIVE,
                _ => HOLD_ENDED,
            };
            let data = encode_item(hold)?;
            out.push(Projection::Upsert(ItemRow {
                id: hold.id.0,
                establishment_id: hold.establishment_id.0,
                kind: ItemKind::Hold,
                staff_id: hold.staff_id.0,
                customer_id: hold.customer_id.0,
                start_us: hold.start.as_microsecond(),
                end_us: hold.end.as_microsecond(),
                busy_until_us: busy_until_us(hold.end, hold.buffer_after_minutes),
                status,
                seq: seq_to_sql(record.seq),
                data,
            }));
        }
        _ => {}
    }
    Ok(())
}

fn booking_row(booking: &Booking, seq: u64) -> Result<ItemRow, String> {
    Ok(ItemRow {
        id: booking.id.0,
        establishment_id: booking.establishment_id.0,
        kind: ItemKind::Booking,
        staff_id: booking.staff_id.0,
        customer_id: booking.customer_id.0,
        start_us: booking.start.as_microsecond(),
        end_us: booking.end.as_microsecond(),
        busy_until_us: busy_until_us(booking.end, booking.buffer_after_minutes),
        status: booking_status(booking.status),
        seq: seq_to_sql(seq),
        data: encode_item(booking)?,
    })
}

fn encode_item<T: serde::Serialize>(item: &T) -> Result<Vec<u8>, String> {
    navaro_protocol::encode(Encoding::MsgPack, item).map_err(|e| format!("cannot encode item: {e}"))
}

fn busy_until_us(end: jiff::Timestamp, buffer_after_minutes: u32) -> i64 {
    end.as_microsecond()
        .saturating_add(i64::from(buffer_after_minutes).saturating_mul(60_000_000))
}

/// Sequence numbers are u64 in Rust and bigint in SQL; no establishment gets near 2^63.
pub(crate) fn seq_to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Decode stored `events` rows (seq, payload), checking that each payload is a record of
/// the seq it is stored under and that the seqs follow `after` without a gap.
pub(crate) fn decode_events(
    establishment_id: EstablishmentId,
    after: u64,
    rows: Vec<(i64, Vec<u8>)>,
) -> Result<Vec<EventRecord>, JournalError> {
    let mut records = Vec::with_capacity(rows.len());
    for (i, (seq, payload)) in rows.into_iter().enumerate() {
        let corrupt = |reason: String| JournalError::Corrupt {
            establishment_id,
            seq: u64::try_from(seq).unwrap_or(0),
            reason,
        };
        // `after` may come from a client (`since=N`): no overflow even near u64::MAX.
        let expected = after.saturating_add(1).saturating_add(i as u64);
        if u64::try_from(seq).ok() != Some(expected) {
            return Err(corrupt(format!(
                "expected seq {expected}: the journal has a gap"
            )));
        }
        let record: EventRecord = navaro_protocol::decode(Encoding::MsgPack, &payload)
            .map_err(|e| corrupt(e.to_string()))?;
        if record.seq != expected {
            return Err(corrupt(format!("payload carries seq {}", record.seq)));
        }
        records.push(record);
    }
    Ok(records)
}

/// Decode the `data` of booking rows for the read model.
pub(crate) fn decode_bookings(rows: Vec<(Uuid, Vec<u8>)>) -> Result<Vec<Booking>, String> {
    rows.into_iter()
        .map(|(id, data)| {
            navaro_protocol::decode(Encoding::MsgPack, &data)
                .map_err(|e| format!("bookings row {id} is corrupt: {e}"))
        })
        .collect()
}
