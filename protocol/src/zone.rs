//! Instants in an establishment's offset while a value is encoded for a client.
//!
//! The protocol's instants are UTC in every stored and internal encoding (the journal,
//! snapshots, the engine's messages). API.md asks that a client see them in the
//! establishment's offset, so the live feed encodes its frames inside [`in_zone`]: every
//! instant field of this crate's types (they name [`instant`] or [`opt_instant`] as
//! their `serialize_with`) is then written as `2026-12-01T08:00:00-03:00` instead of
//! `2026-12-01T11:00:00Z`, in one pass and without an intermediate tree. Outside
//! [`in_zone`] they serialize exactly as `jiff` does.

use std::cell::RefCell;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Serialize, Serializer};

thread_local! {
    /// The zone of the encoding running on this thread, if it asked for one.
    static ZONE: RefCell<Option<TimeZone>> = const { RefCell::new(None) };
}

/// Run `encode` with the instants of this crate's types rendered in `tz`'s offset. The
/// zone belongs to this thread for the length of the call only: an encoding deferred
/// past it (a returned future, a lazy iterator) writes UTC. Nests: the zone before the
/// call is restored after it, also when `encode` panics.
pub fn in_zone<R>(tz: &TimeZone, encode: impl FnOnce() -> R) -> R {
    struct Restore(Option<TimeZone>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            ZONE.with(|zone| *zone.borrow_mut() = previous);
        }
    }
    let previous = ZONE.with(|zone| zone.replace(Some(tz.clone())));
    let _restore = Restore(previous);
    encode()
}

/// `serialize_with` for an instant: in the zone of [`in_zone`], or as `jiff` writes it.
pub fn instant<S: Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    let offset = ZONE.with(|zone| zone.borrow().as_ref().map(|tz| tz.to_offset(*at)));
    match offset {
        Some(offset) => serializer.collect_str(&at.display_with_offset(offset)),
        None => at.serialize(serializer),
    }
}

/// `serialize_with` for an optional instant (see [`instant`]).
pub fn opt_instant<S: Serializer>(
    at: &Option<Timestamp>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    struct Instant<'a>(&'a Timestamp);
    impl Serialize for Instant<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            instant(self.0, serializer)
        }
    }
    match at {
        Some(at) => serializer.serialize_some(&Instant(at)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{QueuePosition, TicketId};

    fn position(eta: Option<Timestamp>) -> QueuePosition {
        QueuePosition {
            ticket_id: TicketId(uuid::Uuid::from_u128(1)),
            position: 1,
            eta,
        }
    }

    #[test]
    fn instants_take_the_zone_only_inside_in_zone() {
        let tz = TimeZone::get("America/Sao_Paulo").unwrap();
        let at: Timestamp = "2026-12-01T11:00:00Z".parse().unwrap();
        let value = position(Some(at));
        let utc = serde_json::to_value(value).unwrap();
        assert_eq!(utc["eta"], "2026-12-01T11:00:00Z");
        let local = in_zone(&tz, || serde_json::to_value(value).unwrap());
        assert_eq!(local["eta"], "2026-12-01T08:00:00-03:00");
        // The same instant either way, and the zone is gone afterwards.
        let back: QueuePosition = serde_json::from_value(local).unwrap();
        assert_eq!(back, value);
        assert_eq!(serde_json::to_value(value).unwrap(), utc);
    }

    #[test]
    fn an_absent_instant_stays_absent_and_nesting_restores_the_outer_zone() {
        let (paris, tokyo) = (
            TimeZone::get("Europe/Paris").unwrap(),
            TimeZone::get("Asia/Tokyo").unwrap(),
        );
        let at: Timestamp = "2026-07-01T10:00:00Z".parse().unwrap();
        let json = in_zone(&paris, || {
            let inner = in_zone(&tokyo, || serde_json::to_string(&position(Some(at))));
            let outer = serde_json::to_string(&position(Some(at)));
            let absent = serde_json::to_string(&position(None));
            (inner.unwrap(), outer.unwrap(), absent.unwrap())
        });
        assert!(
            json.0.contains("\"2026-07-01T19:00:00+09:00\""),
            "{}",
            json.0
        );
        assert!(
            json.1.contains("\"2026-07-01T12:00:00+02:00\""),
            "{}",
            json.1
        );
        assert!(!json.2.contains("eta"), "{}", json.2);
    }

    #[test]
    fn a_panicking_encoding_does_not_leave_its_zone_behind() {
        let tz = TimeZone::get("Asia/Tokyo").unwrap();
        let panicked = std::panic::catch_unwind(|| in_zone(&tz, || panic!("encoder failed")));
        assert!(panicked.is_err());
        let at: Timestamp = "2026-07-01T10:00:00Z".parse().unwrap();
        let json = serde_json::to_value(position(Some(at))).unwrap();
        assert_eq!(json["eta"], "2026-07-01T10:00:00Z");
    }
}
