//! The establishments read model ("listings") and discovery's search over it, shared by
//! the three stores: what a row holds, how events change it, folding text for
//! accent-insensitive matching, great-circle distances, and the cursor of a search.
//!
//! Rows are projected from the journal in the append's transaction, like bookings: an
//! establishment's creation and settings changes write its listing fields, each added
//! service appends its name, a suspension sets the reason (and hides it from search).
//! Text is folded once, here, in Rust (NFD, combining marks dropped, lowercased, every
//! other character a space), so the stores compare folded text with folded text and
//! need no `unaccent`.

use jiff::Timestamp;
use navaro_protocol::{EstablishmentSettings, Event, EventRecord, UserId};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use uuid::Uuid;

use crate::rows::seq_to_sql;

/// The mean Earth radius (IUGG), in metres: distances are haversine on this sphere.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// `text` folded for matching: accents and case dropped, anything not a letter or digit
/// a single space, trimmed. "Barbearia São João!" -> "barbearia sao joao".
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.nfd().filter(|c| !is_combining_mark(*c)) {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// The great-circle distance in metres between two points given in degrees.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// A latitude/longitude box holding every point within `radius_m` of a centre:
/// (min_lat, min_lon, max_lat, max_lon). Near a pole, or across the antimeridian, the
/// box spans every longitude (still correct: the exact distance decides; only the
/// index narrows less).
pub fn bounding_box(lat: f64, lon: f64, radius_m: f64) -> (f64, f64, f64, f64) {
    let dlat = (radius_m / EARTH_RADIUS_M).to_degrees();
    let (min_lat, max_lat) = ((lat - dlat).max(-90.0), (lat + dlat).min(90.0));
    if min_lat <= -90.0 || max_lat >= 90.0 {
        return (min_lat, -180.0, max_lat, 180.0);
    }
    // The widest longitude span is at the box's latitude farthest from the equator.
    let widest = min_lat.abs().max(max_lat.abs()).to_radians().cos();
    let dlon = dlat / widest;
    if lon - dlon < -180.0 || lon + dlon > 180.0 {
        return (min_lat, -180.0, max_lat, 180.0);
    }
    (min_lat, lon - dlon, max_lat, lon + dlon)
}

/// The listing fields a creation or settings change writes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ListingFields {
    pub name: String,
    pub name_folded: String,
    pub timezone: String,
    pub category: Option<String>,
    pub address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub photo_url: Option<String>,
    pub description: Option<String>,
}

impl ListingFields {
    fn of(settings: &EstablishmentSettings) -> ListingFields {
        let l = &settings.listing;
        ListingFields {
            name: settings.name.clone(),
            name_folded: fold(&settings.name),
            timezone: settings.timezone.clone(),
            category: l.category.clone(),
            address: l.address.clone(),
            latitude: l.latitude.map(|d| d.0),
            longitude: l.longitude.map(|d| d.0),
            photo_url: l.photo_url.clone(),
            description: l.description.clone(),
        }
    }
}

/// What one event changes in an establishment's listing row. Each carries the event's
/// seq; a store applies a change only to a row at an earlier seq, so a replayed group
/// changes nothing twice.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ListingChange {
    Created {
        id: Uuid,
        owner_id: Uuid,
        created_us: i64,
        seq: i64,
        fields: ListingFields,
    },
    Updated {
        id: Uuid,
        seq: i64,
        fields: ListingFields,
    },
    ServiceAdded {
        id: Uuid,
        seq: i64,
        name: String,
        folded: String,
    },
    /// `Some(reason)` when suspended, `None` when reinstated.
    Suspension {
        id: Uuid,
        seq: i64,
        reason: Option<String>,
    },
}

impl ListingChange {
    pub fn establishment_id(&self) -> Uuid {
        match self {
            ListingChange::Created { id, .. }
            | ListingChange::Updated { id, .. }
            | ListingChange::ServiceAdded { id, .. }
            | ListingChange::Suspension { id, .. } => *id,
        }
    }
}

/// The listing change of one record, if it makes one.
pub(crate) fn listing_change(est: Uuid, record: &EventRecord) -> Option<ListingChange> {
    let seq = seq_to_sql(record.seq);
    Some(match &record.event {
        Event::EstablishmentCreated {
            id,
            owner_id,
            settings,
        } => ListingChange::Created {
            id: id.0,
            owner_id: owner_id.0,
            created_us: record.at.as_microsecond(),
            seq,
            fields: ListingFields::of(settings),
        },
        Event::SettingsUpdated { settings } => ListingChange::Updated {
            id: est,
            seq,
            fields: ListingFields::of(settings),
        },
        Event::ServiceAdded { service } => ListingChange::ServiceAdded {
            id: est,
            seq,
            name: service.name.clone(),
            folded: fold(&service.name),
        },
        Event::EstablishmentSuspended { reason, .. } => ListingChange::Suspension {
            id: est,
            seq,
            reason: Some(reason.clone()),
        },
        Event::EstablishmentReinstated { .. } => ListingChange::Suspension {
            id: est,
            seq,
            reason: None,
        },
        _ => return None,
    })
}

/// One establishment as discovery and the admin lists show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListingRecord {
    pub id: Uuid,
    pub owner_id: UserId,
    pub name: String,
    pub timezone: String,
    pub category: Option<String>,
    pub address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub photo_url: Option<String>,
    pub description: Option<String>,
    /// Service names, in the order they were added.
    pub services: Vec<String>,
    /// Why the platform suspended it, while it is suspended.
    pub suspended_reason: Option<String>,
    pub created_at: Timestamp,
    /// The folded name: the sort key of a search without a point.
    pub name_folded: String,
}

/// A search result: the listing and, for a search near a point, its distance.
#[derive(Clone, Debug, PartialEq)]
pub struct ListingHit {
    pub listing: ListingRecord,
    pub distance_m: Option<f64>,
}

impl ListingHit {
    /// The cursor that continues a search after this hit.
    pub fn cursor(&self) -> Cursor {
        match self.distance_m {
            Some(d) => Cursor::Distance {
                meters: d,
                id: self.listing.id,
            },
            None => Cursor::Name {
                name_folded: self.listing.name_folded.clone(),
                id: self.listing.id,
            },
        }
    }
}

/// Where a search resumes: after the last hit of the previous page, in the search's
/// order (distance then id near a point, else folded name then id). Keyset pagination:
/// a page never repeats or skips an establishment that existed when the first page was
/// read, however many are created or change meanwhile (those created since may or may
/// not appear, depending on where they sort).
#[derive(Clone, Debug, PartialEq)]
pub enum Cursor {
    Distance { meters: f64, id: Uuid },
    Name { name_folded: String, id: Uuid },
}

impl Cursor {
    /// An opaque token: `d` or `n`, the key in hex, the id.
    pub fn encode(&self) -> String {
        match self {
            Cursor::Distance { meters, id } => {
                format!("d{:016x}{}", meters.to_bits(), id.simple())
            }
            Cursor::Name { name_folded, id } => {
                let hex: String = name_folded.bytes().map(|b| format!("{b:02x}")).collect();
                format!("n{}{hex}", id.simple())
            }
        }
    }

    /// The cursor a token encodes; `None` for anything [`Cursor::encode`] cannot make.
    pub fn decode(token: &str) -> Option<Cursor> {
        if !token.is_ascii() || token.len() > MAX_CURSOR_CHARS {
            return None;
        }
        let (kind, rest) = token.split_at_checked(1)?;
        match kind {
            "d" if rest.len() == 48 => {
                let meters = f64::from_bits(u64::from_str_radix(&rest[..16], 16).ok()?);
                let id = Uuid::try_parse(&rest[16..]).ok()?;
                (meters.is_finite() && meters >= 0.0).then_some(Cursor::Distance { meters, id })
            }
            "n" if rest.len() >= 32 && rest.len() % 2 == 0 => {
                let id = Uuid::try_parse(&rest[..32]).ok()?;
                let bytes = (32..rest.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&rest[i..i + 2], 16).ok())
                    .collect::<Option<Vec<u8>>>()?;
                let name_folded = String::from_utf8(bytes).ok()?;
                Some(Cursor::Name { name_folded, id })
            }
            _ => None,
        }
    }
}

/// Longest cursor token accepted: a folded name of up to 200 characters of up to 4
/// bytes, in hex, and an id.
pub const MAX_CURSOR_CHARS: usize = 1 + 32 + 2 * 4 * 200;

/// A point and a radius.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Near {
    pub latitude: f64,
    pub longitude: f64,
    pub radius_m: f64,
}

/// A search, already checked by the caller (the gateway parses the query string).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchQuery {
    /// Folded words; each must occur in the folded name or a folded service name.
    pub words: Vec<String>,
    pub category: Option<String>,
    pub near: Option<Near>,
    /// Admins see suspended establishments too; discovery never does.
    pub include_suspended: bool,
    pub after: Option<Cursor>,
    pub limit: usize,
}

/// Whether a listing matches a query's filters (the stores that filter in Rust).
pub(crate) fn matches(query: &SearchQuery, listing: &ListingRecord, search_text: &str) -> bool {
    (query.include_suspended || listing.suspended_reason.is_none())
        && query
            .category
            .as_ref()
            .is_none_or(|c| listing.category.as_ref() == Some(c))
        && query.words.iter().all(|w| search_text.contains(w.as_str()))
}

/// The search text of a listing: its folded name and folded service names.
pub(crate) fn search_text(name_folded: &str, services_folded: &str) -> String {
    format!("{name_folded} {services_folded}")
}

/// Order, filter by distance and cursor, and cut to a page: the part of a search the
/// SQLite and memory stores do in Rust, over candidates already filtered by
/// [`matches`].
pub(crate) fn page(query: &SearchQuery, candidates: Vec<ListingRecord>) -> Vec<ListingHit> {
    let mut hits: Vec<ListingHit> = match query.near {
        Some(near) => candidates
            .into_iter()
            .filter_map(|l| {
                let d = haversine_m(near.latitude, near.longitude, l.latitude?, l.longitude?);
                (d <= near.radius_m).then_some(ListingHit {
                    listing: l,
                    distance_m: Some(d),
                })
            })
            .collect(),
        None => candidates
            .into_iter()
            .map(|l| ListingHit {
                listing: l,
                distance_m: None,
            })
            .collect(),
    };
    hits.sort_by(|a, b| {
        let by_key = match (a.distance_m, b.distance_m) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => a.listing.name_folded.cmp(&b.listing.name_folded),
        };
        by_key.then(a.listing.id.cmp(&b.listing.id))
    });
    if let Some(after) = &query.after {
        hits.retain(|h| match (after, h.distance_m) {
            (Cursor::Distance { meters, id }, Some(d)) => {
                d.total_cmp(meters).then(h.listing.id.cmp(id)).is_gt()
            }
            (Cursor::Name { name_folded, id }, None) => {
                (h.listing.name_folded.as_str(), h.listing.id) > (name_folded.as_str(), *id)
            }
            _ => false,
        });
    }
    hits.truncate(query.limit);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_drops_accents_case_and_punctuation() {
        assert_eq!(fold("Barbearia São João!"), "barbearia sao joao");
        assert_eq!(fold("  ÉCOLE  d'Art  "), "ecole d art");
        assert_eq!(fold("Çà-et-là 42"), "ca et la 42");
        assert_eq!(fold(""), "");
    }

    #[test]
    fn haversine_matches_known_distances() {
        // São Paulo (Praça da Sé) to Rio de Janeiro (Candelária): about 357 km.
        let d = haversine_m(-23.5503, -46.6339, -22.9009, -43.1780);
        assert!((d - 361_000.0).abs() < 10_000.0, "{d}");
        assert_eq!(haversine_m(10.0, 20.0, 10.0, 20.0), 0.0);
        // A quarter of the equator.
        let q = haversine_m(0.0, 0.0, 0.0, 90.0);
        assert!((q - EARTH_RADIUS_M * std::f64::consts::FRAC_PI_2).abs() < 1e-6);
    }

    #[test]
    fn the_box_holds_every_point_of_the_circle() {
        for (lat, lon) in [(-23.5, -46.6), (0.0, 0.0), (60.0, 10.0), (-75.0, 170.0)] {
            let r = 50_000.0;
            let (a, b, c, d) = bounding_box(lat, lon, r);
            for i in 0..360 {
                let bearing = f64::from(i).to_radians();
                // A point at distance r (destination formula on the sphere).
                let delta = r / EARTH_RADIUS_M;
                let p1 = lat.to_radians();
                let p2 = (p1.sin() * delta.cos() + p1.cos() * delta.sin() * bearing.cos()).asin();
                let l2 = lon.to_radians()
                    + (bearing.sin() * delta.sin() * p1.cos())
                        .atan2(delta.cos() - p1.sin() * p2.sin());
                let (plat, plon) = (p2.to_degrees(), l2.to_degrees());
                assert!(plat >= a - 1e-9 && plat <= c + 1e-9, "{lat},{lon} {i}");
                assert!(plon >= b - 1e-9 && plon <= d + 1e-9, "{lat},{lon} {i}");
            }
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let id = Uuid::from_u128(7);
        for c in [
            Cursor::Distance {
                meters: 1234.5678,
                id,
            },
            Cursor::Name {
                name_folded: "sao joao".into(),
                id,
            },
        ] {
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        for bad in [
            "",
            "x",
            "d123",
            "nzz",
            "d7ff8000000000000000000000000000000000000000000007",
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
