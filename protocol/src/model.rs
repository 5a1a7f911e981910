//! Value types shared by commands, events and replies.
//!
//! These are wire shapes: strings where the API speaks strings (`"09:00"`, `"America/Sao_Paulo"`).
//! The engine parses them into its domain types once, at the edge, and rejects what does
//! not parse with a field-naming error.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{BookingId, EstablishmentId, HoldId, ServiceId, StaffId, TimeOffId, UserId};

/// An establishment's booking policy, as stored and as sent on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstablishmentSettings {
    pub name: String,
    /// IANA time zone name; working hours and the slot grid are local to it.
    pub timezone: String,
    /// The slot grid: bookings start at local times that are a multiple of this.
    #[serde(default = "defaults::slot_minutes")]
    pub slot_minutes: u16,
    /// How long before its start a slot stops being bookable by customers.
    #[serde(default)]
    pub min_notice_minutes: u32,
    /// How far ahead bookings may be made.
    #[serde(default = "defaults::horizon_days")]
    pub horizon_days: u16,
    /// Customers may cancel or reschedule only up to this long before the start.
    #[serde(default)]
    pub cancel_cutoff_minutes: u32,
    /// How many future bookings (and live holds) one customer may have here at once,
    /// so that one client cannot hoard the agenda.
    #[serde(default = "defaults::max_future_bookings_per_customer")]
    pub max_future_bookings_per_customer: u16,
    /// Most tickets waiting in the walk-in queue at once.
    #[serde(default = "defaults::queue_max_length")]
    pub queue_max_length: u16,
    /// A called ticket not started within this long is marked no-show.
    #[serde(default = "defaults::queue_no_show_grace_minutes")]
    pub queue_no_show_grace_minutes: u16,
    /// What customers see in a search result (category, address, place, photo, blurb).
    /// Every field is optional, so establishments created before listings existed
    /// decode with an empty one.
    #[serde(default, skip_serializing_if = "Listing::is_empty")]
    pub listing: Listing,
}

/// An establishment's listing: the fields discovery searches and shows. Absent fields
/// are left out of the encoding (old journals and snapshots have none of them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listing {
    /// One of the platform's categories (`barbershop`, `salon`, `clinic`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// A postal address, as the owner writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Where it is, for "near me" searches; both or neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<Degrees>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<Degrees>,
    /// An https URL of the establishment's photo (stored elsewhere; we keep the link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
    /// A short description shown under the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The categories an establishment may list itself under. A fixed list, so that apps can
/// show them as choices and a search by category is an exact match.
pub const CATEGORIES: [&str; 10] = [
    "barbershop",
    "salon",
    "clinic",
    "spa",
    "nails",
    "beauty",
    "tattoo",
    "pet",
    "fitness",
    "other",
];

/// An angle in decimal degrees (a latitude or a longitude). `Eq` holds because the
/// engine accepts only finite values in range (`rules::Settings::parse`), so no NaN is
/// ever stored or compared.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Degrees(pub f64);

impl Eq for Degrees {}

/// A partial update of a [`Listing`]; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListingPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<Degrees>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<Degrees>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Listing {
    pub fn is_empty(&self) -> bool {
        *self == Listing::default()
    }
}

impl ListingPatch {
    pub fn is_empty(&self) -> bool {
        *self == ListingPatch::default()
    }

    /// The listing with this patch laid over it.
    pub fn apply_to(&self, base: &Listing) -> Listing {
        Listing {
            category: self.category.clone().or_else(|| base.category.clone()),
            address: self.address.clone().or_else(|| base.address.clone()),
            latitude: self.latitude.or(base.latitude),
            longitude: self.longitude.or(base.longitude),
            photo_url: self.photo_url.clone().or_else(|| base.photo_url.clone()),
            description: self
                .description
                .clone()
                .or_else(|| base.description.clone()),
        }
    }
}

/// A partial update of [`EstablishmentSettings`]; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_minutes: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_notice_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon_days: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_cutoff_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_future_bookings_per_customer: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_max_length: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_no_show_grace_minutes: Option<u16>,
    #[serde(default, skip_serializing_if = "ListingPatch::is_empty")]
    pub listing: ListingPatch,
}

impl SettingsPatch {
    /// The settings with this patch laid over them.
    pub fn apply_to(&self, base: &EstablishmentSettings) -> EstablishmentSettings {
        EstablishmentSettings {
            name: self.name.clone().unwrap_or_else(|| base.name.clone()),
            timezone: self
                .timezone
                .clone()
                .unwrap_or_else(|| base.timezone.clone()),
            slot_minutes: self.slot_minutes.unwrap_or(base.slot_minutes),
            min_notice_minutes: self.min_notice_minutes.unwrap_or(base.min_notice_minutes),
            horizon_days: self.horizon_days.unwrap_or(base.horizon_days),
            cancel_cutoff_minutes: self
                .cancel_cutoff_minutes
                .unwrap_or(base.cancel_cutoff_minutes),
            max_future_bookings_per_customer: self
                .max_future_bookings_per_customer
                .unwrap_or(base.max_future_bookings_per_customer),
            queue_max_length: self.queue_max_length.unwrap_or(base.queue_max_length),
            queue_no_show_grace_minutes: self
                .queue_no_show_grace_minutes
                .unwrap_or(base.queue_no_show_grace_minutes),
            listing: self.listing.apply_to(&base.listing),
        }
    }
}

/// Defaults named by API.md for fields a client may leave out.
pub mod defaults {
    pub fn slot_minutes() -> u16 {
        15
    }
    pub fn horizon_days() -> u16 {
        60
    }
    pub fn max_future_bookings_per_customer() -> u16 {
        10
    }
    pub fn queue_max_length() -> u16 {
        100
    }
    pub fn queue_no_show_grace_minutes() -> u16 {
        5
    }
    pub fn currency() -> String {
        "BRL".to_owned()
    }
}

/// A local `["HH:MM", "HH:MM"]` range, end exclusive; `"24:00"` ends a day.
pub type HoursRange = [String; 2];

/// Working hours per weekday, local to the establishment. Several ranges a day; the gaps
/// between them are breaks. A missing day is a day off.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyHours {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mon: Vec<HoursRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tue: Vec<HoursRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wed: Vec<HoursRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thu: Vec<HoursRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fri: Vec<HoursRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sat: Vec<HoursRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sun: Vec<HoursRange>,
}

impl WeeklyHours {
    /// The days in ISO order (Monday first) with their wire names.
    pub fn days(&self) -> [(&'static str, &Vec<HoursRange>); 7] {
        [
            ("mon", &self.mon),
            ("tue", &self.tue),
            ("wed", &self.wed),
            ("thu", &self.thu),
            ("fri", &self.fri),
            ("sat", &self.sat),
            ("sun", &self.sun),
        ]
    }

    /// The same hours on every day from Monday to Friday, as demos and tests like them.
    pub fn weekdays(ranges: &[(&str, &str)]) -> Self {
        let day: Vec<HoursRange> = ranges
            .iter()
            .map(|(a, b)| [(*a).to_owned(), (*b).to_owned()])
            .collect();
        WeeklyHours {
            mon: day.clone(),
            tue: day.clone(),
            wed: day.clone(),
            thu: day.clone(),
            fri: day,
            ..WeeklyHours::default()
        }
    }

    /// The same hours on all seven days.
    pub fn every_day(ranges: &[(&str, &str)]) -> Self {
        let mut week = Self::weekdays(ranges);
        week.sat = week.mon.clone();
        week.sun = week.mon.clone();
        week
    }
}

/// A staff member as the establishment describes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staff {
    pub id: StaffId,
    pub name: String,
    /// The user account of this staff member, when they have one (for the Pro app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    pub hours: WeeklyHours,
}

/// A range of instants in which a staff member does not work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeOff {
    pub id: TimeOffId,
    pub staff_id: StaffId,
    #[serde(serialize_with = "crate::zone::instant")]
    pub start: Timestamp,
    #[serde(serialize_with = "crate::zone::instant")]
    pub end: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An amount of money: integer minor units plus an ISO 4217 currency code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub cents: i64,
    pub currency: String,
}

/// A service on the menu.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: ServiceId,
    pub name: String,
    pub duration_minutes: u32,
    pub price_cents: i64,
    pub currency: String,
    /// Time the staff member needs after the service (cleaning, notes) before the next.
    pub buffer_after_minutes: u32,
    /// Who can perform it.
    pub staff_ids: Vec<StaffId>,
}

/// Where a booking stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Confirmed,
    Cancelled,
    Completed,
    NoShow,
}

/// A booking. `end` is the end of the service; the staff member is also busy for the
/// buffer after it, which is frozen here so that editing the service later does not move
/// existing bookings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    pub id: BookingId,
    pub establishment_id: EstablishmentId,
    pub service_id: ServiceId,
    pub staff_id: StaffId,
    pub customer_id: UserId,
    #[serde(serialize_with = "crate::zone::instant")]
    pub start: Timestamp,
    #[serde(serialize_with = "crate::zone::instant")]
    pub end: Timestamp,
    pub buffer_after_minutes: u32,
    pub status: BookingStatus,
    /// The establishment event that confirmed (or last moved) this booking.
    pub seq: u64,
    #[serde(serialize_with = "crate::zone::instant")]
    pub created_at: Timestamp,
    /// The promotion applied when it was booked, with the discount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<crate::plugin::AppliedPromotion>,
    /// The payment policy in force for this booking when it was made (its service's, for
    /// this customer), when it asks anything: fees and refunds follow this copy, never
    /// a later change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_policy: Option<Box<crate::payment::PaymentPolicy>>,
}

/// A hold: a slot reserved while the customer completes a step (payment), until
/// `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: HoldId,
    pub establishment_id: EstablishmentId,
    pub service_id: ServiceId,
    pub staff_id: StaffId,
    pub customer_id: UserId,
    #[serde(serialize_with = "crate::zone::instant")]
    pub start: Timestamp,
    #[serde(serialize_with = "crate::zone::instant")]
    pub end: Timestamp,
    pub buffer_after_minutes: u32,
    #[serde(serialize_with = "crate::zone::instant")]
    pub expires_at: Timestamp,
    pub seq: u64,
}

/// Why a hold stopped blocking its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldEnd {
    Released,
    Expired,
}
