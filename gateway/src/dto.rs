//! Request and response bodies as API.md spells them, with their OpenAPI schemas.
//!
//! Requests parse into protocol types here, once (unknown fields refused). Responses
//! render instants as RFC 3339 with the establishment's UTC offset at that instant,
//! which is why they are not the protocol types themselves.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use navaro_protocol::{
    Alternative, Booking, BookingStatus, Degrees, EstablishmentId, EstablishmentSettings, Listing,
    ListingPatch, ServiceId, SettingsPatch, StaffId, TimeOff, UserId, WeeklyHours,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// An instant as API.md renders it: RFC 3339 with the establishment's offset.
pub fn render(ts: Timestamp, tz: &TimeZone) -> String {
    ts.display_with_offset(tz.to_offset(ts)).to_string()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Compared without regard to case or surrounding spaces.
    #[schema(format = Email, min_length = 3, max_length = 254)]
    pub email: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    /// 1 to 100 characters, not only spaces.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserDto {
    pub id: Uuid,
    pub email: String,
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct RegisterResponse {
    pub user: UserDto,
    pub token: String,
    pub expires_at: String,
    /// Trade it at `POST /v1/auth/refresh` for a new access token (and a new refresh
    /// token: each is good once).
    pub refresh_token: String,
    pub refresh_expires_at: String,
    /// The sign-in session (this device) the tokens belong to.
    pub session_id: Uuid,
}

/// A sign-in's tokens: login, refresh, password change.
#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// The access token (`Authorization: Bearer`), short-lived.
    pub token: String,
    pub expires_at: String,
    /// Good once, at `POST /v1/auth/refresh`; using it twice revokes the session.
    pub refresh_token: String,
    pub refresh_expires_at: String,
    /// The sign-in session (this device) the tokens belong to.
    pub session_id: Uuid,
}

impl From<crate::sessions::Issued> for LoginResponse {
    fn from(issued: crate::sessions::Issued) -> LoginResponse {
        LoginResponse {
            token: issued.access_token,
            expires_at: issued.expires_at.to_string(),
            refresh_token: issued.refresh_token,
            refresh_expires_at: issued.refresh_expires_at.to_string(),
            session_id: issued.session_id,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The current refresh token of the session.
    pub refresh_token: String,
}

/// Everything Navaro holds about the caller (`GET /v1/me/export`).
#[derive(Serialize, ToSchema)]
pub struct ExportResponse {
    pub user_id: Uuid,
    pub exported_at: String,
    /// One entry per kind of data: `account` (profile and memberships), `sessions`
    /// (signed-in devices), `bookings` (as a customer, instants in UTC); more as modules
    /// add their own.
    #[schema(value_type = Object)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    /// The account's password: deletion cannot be undone, so a stolen access token
    /// alone does not suffice.
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    pub current_password: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

#[derive(Serialize, ToSchema)]
pub struct MembershipDto {
    pub establishment_id: Uuid,
    /// `owner` or `staff`.
    pub role: String,
}

#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub admin: bool,
    pub memberships: Vec<MembershipDto>,
}

/// The create-establishment body; omitted fields take API.md's defaults.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEstablishmentRequest {
    /// 1 to 200 printable characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// IANA time zone, e.g. `America/Sao_Paulo`.
    #[schema(schema_with = timezone_schema)]
    pub timezone: String,
    /// Divides the hour.
    #[schema(schema_with = slot_minutes_schema)]
    #[serde(default, deserialize_with = "whole_number")]
    pub slot_minutes: Option<u16>,
    #[schema(minimum = 0, maximum = 43200)]
    #[serde(default, deserialize_with = "whole_number")]
    pub min_notice_minutes: Option<u32>,
    #[schema(minimum = 1, maximum = 366)]
    #[serde(default, deserialize_with = "whole_number")]
    pub horizon_days: Option<u16>,
    #[schema(minimum = 0, maximum = 43200)]
    #[serde(default, deserialize_with = "whole_number")]
    pub cancel_cutoff_minutes: Option<u32>,
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "whole_number")]
    pub max_future_bookings_per_customer: Option<u16>,
    /// Most tickets waiting in the walk-in queue at once.
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "whole_number")]
    pub queue_max_length: Option<u16>,
    /// A called ticket not started within this long is marked no-show.
    #[schema(minimum = 1, maximum = 120)]
    #[serde(default, deserialize_with = "whole_number")]
    pub queue_no_show_grace_minutes: Option<u16>,
    /// One of `barbershop`, `salon`, `clinic`, `spa`, `nails`, `beauty`, `tattoo`, `pet`,
    /// `fitness`, `other`.
    #[schema(schema_with = category_schema)]
    pub category: Option<String>,
    /// Postal address, up to 300 characters, no control characters but line breaks
    /// (trimmed; only spaces: none).
    #[schema(max_length = 300, pattern = r"^[^\x00-\x09\x0B-\x1F\x7F-\x9F]*$")]
    pub address: Option<String>,
    /// Degrees, -90 to 90; with `longitude` (one without the other is refused: 422).
    #[schema(minimum = -90, maximum = 90)]
    pub latitude: Option<f64>,
    /// Degrees, -180 to 180; with `latitude`.
    #[schema(minimum = -180, maximum = 180)]
    pub longitude: Option<f64>,
    /// An http(s) URL of a photo, up to 2000 characters, without spaces (surrounding
    /// spaces are trimmed; only spaces: none).
    #[schema(
        max_length = 2000,
        pattern = r"^ *(https?://[^\s\x00-\x1F\x7F-\x9F]*)? *$"
    )]
    pub photo_url: Option<String>,
    /// A short description, up to 1000 characters, no control characters but line
    /// breaks (trimmed; only spaces: none).
    #[schema(max_length = 1000, pattern = r"^[^\x00-\x09\x0B-\x1F\x7F-\x9F]*$")]
    pub description: Option<String>,
}

impl CreateEstablishmentRequest {
    pub fn into_settings(self) -> EstablishmentSettings {
        use navaro_protocol::defaults;
        EstablishmentSettings {
            name: self.name,
            timezone: self.timezone,
            slot_minutes: self.slot_minutes.unwrap_or_else(defaults::slot_minutes),
            min_notice_minutes: self.min_notice_minutes.unwrap_or(0),
            horizon_days: self.horizon_days.unwrap_or_else(defaults::horizon_days),
            cancel_cutoff_minutes: self.cancel_cutoff_minutes.unwrap_or(0),
            max_future_bookings_per_customer: self
                .max_future_bookings_per_customer
                .unwrap_or_else(defaults::max_future_bookings_per_customer),
            queue_max_length: self
                .queue_max_length
                .unwrap_or_else(defaults::queue_max_length),
            queue_no_show_grace_minutes: self
                .queue_no_show_grace_minutes
                .unwrap_or_else(defaults::queue_no_show_grace_minutes),
            listing: Listing {
                category: self.category,
                address: self.address,
                latitude: self.latitude.map(Degrees),
                longitude: self.longitude.map(Degrees),
                photo_url: self.photo_url,
                description: self.description,
            },
        }
    }
}

/// Any of the create fields.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchEstablishmentRequest {
    /// 1 to 200 printable characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: Option<String>,
    /// IANA time zone, e.g. `America/Sao_Paulo`.
    #[schema(schema_with = optional_timezone_schema)]
    pub timezone: Option<String>,
    /// Divides the hour.
    #[schema(schema_with = slot_minutes_schema)]
    #[serde(default, deserialize_with = "whole_number")]
    pub slot_minutes: Option<u16>,
    #[schema(minimum = 0, maximum = 43200)]
    #[serde(default, deserialize_with = "whole_number")]
    pub min_notice_minutes: Option<u32>,
    #[schema(minimum = 1, maximum = 366)]
    #[serde(default, deserialize_with = "whole_number")]
    pub horizon_days: Option<u16>,
    #[schema(minimum = 0, maximum = 43200)]
    #[serde(default, deserialize_with = "whole_number")]
    pub cancel_cutoff_minutes: Option<u32>,
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "whole_number")]
    pub max_future_bookings_per_customer: Option<u16>,
    /// Most tickets waiting in the walk-in queue at once.
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "whole_number")]
    pub queue_max_length: Option<u16>,
    /// A called ticket not started within this long is marked no-show.
    #[schema(minimum = 1, maximum = 120)]
    #[serde(default, deserialize_with = "whole_number")]
    pub queue_no_show_grace_minutes: Option<u16>,
    /// One of `barbershop`, `salon`, `clinic`, `spa`, `nails`, `beauty`, `tattoo`, `pet`,
    /// `fitness`, `other`.
    #[schema(schema_with = category_schema)]
    pub category: Option<String>,
    /// Postal address, up to 300 characters, no control characters but line breaks
    /// (trimmed; only spaces: none).
    #[schema(max_length = 300, pattern = r"^[^\x00-\x09\x0B-\x1F\x7F-\x9F]*$")]
    pub address: Option<String>,
    /// Degrees, -90 to 90; with `longitude` (one without the other is refused: 422).
    #[schema(minimum = -90, maximum = 90)]
    pub latitude: Option<f64>,
    /// Degrees, -180 to 180; with `latitude`.
    #[schema(minimum = -180, maximum = 180)]
    pub longitude: Option<f64>,
    /// An http(s) URL of a photo, up to 2000 characters, without spaces (surrounding
    /// spaces are trimmed; only spaces: none).
    #[schema(
        max_length = 2000,
        pattern = r"^ *(https?://[^\s\x00-\x1F\x7F-\x9F]*)? *$"
    )]
    pub photo_url: Option<String>,
    /// A short description, up to 1000 characters, no control characters but line
    /// breaks (trimmed; only spaces: none).
    #[schema(max_length = 1000, pattern = r"^[^\x00-\x09\x0B-\x1F\x7F-\x9F]*$")]
    pub description: Option<String>,
}

impl PatchEstablishmentRequest {
    pub fn into_patch(self) -> SettingsPatch {
        SettingsPatch {
            name: self.name,
            timezone: self.timezone,
            slot_minutes: self.slot_minutes,
            min_notice_minutes: self.min_notice_minutes,
            horizon_days: self.horizon_days,
            cancel_cutoff_minutes: self.cancel_cutoff_minutes,
            max_future_bookings_per_customer: self.max_future_bookings_per_customer,
            queue_max_length: self.queue_max_length,
            queue_no_show_grace_minutes: self.queue_no_show_grace_minutes,
            listing: ListingPatch {
                category: self.category,
                address: self.address,
                latitude: self.latitude.map(Degrees),
                longitude: self.longitude.map(Degrees),
                photo_url: self.photo_url,
                description: self.description,
            },
        }
    }
}

/// [`WeeklyHours`] in the document: per weekday (`mon` .. `sun`), up to
/// `MAX_RANGES_PER_DAY` local `["HH:MM", "HH:MM"]` ranges, in order, end exclusive,
/// `"24:00"` only as an end; a missing day is a day off. The pattern is the shape; the
/// order and `24:00`-only-as-an-end rules are checked by the engine (422 naming the day).
pub struct WeeklyHoursSchema;

/// `HH:MM` from `00:00` to `24:00`.
const LOCAL_TIME_PATTERN: &str = "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$";

impl utoipa::PartialSchema for WeeklyHoursSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        let time = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(LOCAL_TIME_PATTERN));
        let range = ArrayBuilder::new()
            .items(time)
            .min_items(Some(2))
            .max_items(Some(2))
            .description(Some("`[start, end)`, local times"));
        let day: utoipa::openapi::schema::Schema = ArrayBuilder::new()
            .items(range)
            .max_items(Some(navaro_engine::domain::rules::MAX_RANGES_PER_DAY))
            .into();
        let mut week = ObjectBuilder::new()
            .description(Some(
                "Working hours per weekday; a missing day is a day off.",
            ))
            .additional_properties(Some(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
            ));
        for name in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] {
            week = week.property(name, day.clone());
        }
        week.into()
    }
}

impl ToSchema for WeeklyHoursSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "WeeklyHours".into()
    }
}

#[derive(Serialize, ToSchema)]
pub struct StaffDto {
    pub id: Uuid,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    /// `{"mon": [["09:00","12:00"], ...], ...}`; a missing day is a day off.
    #[schema(value_type = crate::dto::WeeklyHoursSchema)]
    pub hours: WeeklyHours,
}

impl From<navaro_protocol::Staff> for StaffDto {
    fn from(s: navaro_protocol::Staff) -> Self {
        StaffDto {
            id: s.id.0,
            name: s.name,
            user_id: s.user_id.map(|u| u.0),
            hours: s.hours,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ServiceDto {
    pub id: Uuid,
    pub name: String,
    pub duration_minutes: u32,
    pub price_cents: i64,
    pub currency: String,
    pub buffer_after_minutes: u32,
    pub staff_ids: Vec<Uuid>,
}

impl From<navaro_protocol::Service> for ServiceDto {
    fn from(s: navaro_protocol::Service) -> Self {
        ServiceDto {
            id: s.id.0,
            name: s.name,
            duration_minutes: s.duration_minutes,
            price_cents: s.price_cents,
            currency: s.currency,
            buffer_after_minutes: s.buffer_after_minutes,
            staff_ids: s.staff_ids.into_iter().map(|i| i.0).collect(),
        }
    }
}

/// An establishment with its staff and services (public).
#[derive(Serialize, ToSchema)]
pub struct EstablishmentDto {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub timezone: String,
    pub slot_minutes: u16,
    pub min_notice_minutes: u32,
    pub horizon_days: u16,
    pub cancel_cutoff_minutes: u32,
    pub max_future_bookings_per_customer: u16,
    pub queue_max_length: u16,
    pub queue_no_show_grace_minutes: u16,
    pub category: Option<String>,
    pub address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub photo_url: Option<String>,
    pub description: Option<String>,
    /// Reserved for ratings: always null for now.
    pub rating_average: Option<f64>,
    /// Reserved for ratings: always 0 for now.
    pub rating_count: u32,
    /// Why the platform suspended the establishment (it then takes no new bookings,
    /// holds or walk-ins); null while it is active.
    pub suspended_reason: Option<String>,
    /// The establishment's latest event sequence number (for `live?since=`).
    pub seq: u64,
    pub staff: Vec<StaffDto>,
    pub services: Vec<ServiceDto>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    pub user_id: Uuid,
    /// `owner` or `staff`.
    #[schema(schema_with = member_role_schema)]
    pub role: String,
}

#[derive(Serialize, ToSchema)]
pub struct MemberDto {
    pub establishment_id: Uuid,
    pub user_id: Uuid,
    pub role: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddStaffRequest {
    /// 1 to 200 printable characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    pub user_id: Option<Uuid>,
    #[schema(value_type = crate::dto::WeeklyHoursSchema)]
    pub hours: WeeklyHours,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetHoursRequest {
    #[schema(value_type = crate::dto::WeeklyHoursSchema)]
    pub hours: WeeklyHours,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeOffRequest {
    /// RFC 3339, any offset.
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// After `start`, at most 366 days later (422 on `end` otherwise).
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
    /// 1 to 200 printable characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TimeOffDto {
    pub id: Uuid,
    pub staff_id: Uuid,
    pub start: String,
    pub end: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl TimeOffDto {
    pub fn new(t: TimeOff, tz: &TimeZone) -> Self {
        TimeOffDto {
            id: t.id.0,
            staff_id: t.staff_id.0,
            start: render(t.start, tz),
            end: render(t.end, tz),
            reason: t.reason,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddServiceRequest {
    /// 1 to 200 printable characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// 1 to 720.
    #[schema(minimum = 1, maximum = 720)]
    pub duration_minutes: u32,
    /// The price in the currency's minor units, not negative.
    #[schema(minimum = 0)]
    pub price_cents: i64,
    /// ISO 4217 (three capital letters); default `BRL`.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    /// Minutes kept free after the service, 0 to 240; default 0.
    #[schema(minimum = 0, maximum = 240)]
    pub buffer_after_minutes: Option<u32>,
    /// The staff members who perform it, each once; 1 to 256 (each must exist: 404).
    #[schema(schema_with = staff_ids_schema)]
    pub staff_ids: Vec<Uuid>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookRequest {
    pub service_id: Uuid,
    /// RFC 3339, any offset.
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// Omitted: any free staff member.
    pub staff_id: Option<Uuid>,
    /// Members only: book on behalf of this customer.
    pub customer_id: Option<Uuid>,
    /// A promotion code of the establishment's marketing plugin (any case). The
    /// discount is on the booking (`promotion`); a code that cannot be used is refused
    /// `promotion_unavailable` (409) and nothing is booked.
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_-]{3,32}$")]
    pub promotion_code: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    pub staff_id: Option<Uuid>,
}

/// Where a booking stands: [`BookingStatus`]'s wire names, for the document (the
/// protocol crate has no schemas; a test checks the two name the same states).
#[derive(ToSchema)]
#[schema(as = BookingStatus, rename_all = "snake_case")]
pub enum BookingStatusName {
    Confirmed,
    Cancelled,
    Completed,
    NoShow,
}

#[derive(Serialize, ToSchema)]
pub struct BookingDto {
    pub id: Uuid,
    pub establishment_id: Uuid,
    pub service_id: Uuid,
    pub staff_id: Uuid,
    pub customer_id: Uuid,
    pub start: String,
    pub end: String,
    pub buffer_after_minutes: u32,
    #[schema(value_type = BookingStatusName)]
    pub status: BookingStatus,
    /// The establishment event that confirmed (or last moved) it.
    pub seq: u64,
    pub created_at: String,
    /// The promotion applied at booking, with the discount; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionAppliedDto>,
    /// The payment policy copied onto the booking when it was made (when it asked
    /// anything): its fees and refunds follow this copy, never a later change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_policy: Option<crate::routes::payments::PaymentPolicyDto>,
}

/// A promotion applied to a booking.
#[derive(Serialize, ToSchema)]
pub struct PromotionAppliedDto {
    pub code: String,
    /// The service's price when booked, in minor units.
    pub price_cents: i64,
    /// What the promotion took off, in minor units; the customer pays the difference.
    pub discount_cents: i64,
    pub currency: String,
}

impl BookingDto {
    pub fn new(b: Booking, tz: &TimeZone) -> Self {
        BookingDto {
            id: b.id.0,
            establishment_id: b.establishment_id.0,
            service_id: b.service_id.0,
            staff_id: b.staff_id.0,
            customer_id: b.customer_id.0,
            start: render(b.start, tz),
            end: render(b.end, tz),
            buffer_after_minutes: b.buffer_after_minutes,
            status: b.status,
            seq: b.seq,
            created_at: render(b.created_at, tz),
            promotion: b.promotion.map(|p| PromotionAppliedDto {
                code: p.code,
                price_cents: p.price_cents,
                discount_cents: p.discount_cents,
                currency: p.currency,
            }),
            payment_policy: b.payment_policy.map(|p| (*p).into()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BookingsResponse {
    pub bookings: Vec<BookingDto>,
}

/// A free start near a requested one.
#[derive(Serialize, ToSchema)]
pub struct AlternativeDto {
    pub start: String,
    pub staff_id: Uuid,
}

impl AlternativeDto {
    pub fn new(a: &Alternative, tz: &TimeZone) -> Self {
        AlternativeDto {
            start: render(a.start, tz),
            staff_id: a.staff_id.0,
        }
    }
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityParams {
    pub service_id: Uuid,
    /// First local date, `YYYY-MM-DD`, in the years 1970 to 2199. (The pattern admits
    /// days 01-28 of every month, which every month has; the server also takes the
    /// 29th to the 31st where the month has them.)
    #[param(pattern = r"^(19[7-9][0-9]|2[01][0-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$")]
    pub from: String,
    /// Number of days, 1 to 31.
    #[param(minimum = 1, maximum = 31)]
    pub days: Option<u16>,
    pub staff_id: Option<Uuid>,
    /// `slots` (the default): one entry per start. `runs`: the same starts,
    /// run-length encoded; typically a tenth of the size or less, about a quarter when
    /// the free staff change at nearly every start.
    #[param(value_type = Option<AvailabilityForm>)]
    pub form: Option<String>,
}

/// The shape of an availability answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum AvailabilityForm {
    Slots,
    Runs,
}

impl AvailabilityForm {
    /// The `form` parameter; `None` when it names no form (the caller answers 422 on
    /// the field, which serde's message for a query would not name).
    pub fn parse(raw: Option<&str>) -> Option<AvailabilityForm> {
        match raw {
            None | Some("slots") => Some(AvailabilityForm::Slots),
            Some("runs") => Some(AvailabilityForm::Runs),
            Some(_) => None,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DateParams {
    /// Local date, `YYYY-MM-DD`. (The pattern admits days 01-28 of every month, which
    /// every month has; the server also takes the 29th to the 31st where the month
    /// has them.)
    #[param(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$")]
    pub date: String,
}

#[derive(Serialize, ToSchema)]
pub struct SlotDto {
    pub start: String,
    pub staff_ids: Vec<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct AvailabilityResponse {
    pub establishment_id: Uuid,
    pub service_id: Uuid,
    pub timezone: String,
    pub slots: Vec<SlotDto>,
}

/// Consecutive starts with the same staff free: `count` starts, `step_minutes` apart,
/// from `start` (so all with `start`'s UTC offset; a run ends where the offset changes).
#[derive(Serialize, ToSchema)]
pub struct RunDto {
    pub start: String,
    pub count: u32,
    /// Indexes into the answer's `staff_ids`.
    pub staff: Vec<u32>,
}

/// `form=runs`: the starts of the `slots` form, in the same order, as runs.
#[derive(Serialize, ToSchema)]
pub struct AvailabilityRunsResponse {
    pub establishment_id: Uuid,
    pub service_id: Uuid,
    pub timezone: String,
    /// Minutes between the starts of one run (the establishment's slot grid).
    pub step_minutes: u32,
    /// Every staff member the runs name, in order of first appearance.
    pub staff_ids: Vec<Uuid>,
    pub runs: Vec<RunDto>,
}

/// The availability answer in the form the query asked for.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum AvailabilityAnswer {
    Slots(AvailabilityResponse),
    Runs(AvailabilityRunsResponse),
}

/// `{"status": "ok"}` and friends.
#[derive(Serialize, ToSchema)]
pub struct StatusResponse {
    pub status: String,
}

pub fn ids<T: From<Uuid>>(list: Vec<Uuid>) -> Vec<T> {
    list.into_iter().map(T::from).collect()
}

pub fn est(id: Uuid) -> EstablishmentId {
    EstablishmentId(id)
}

pub fn staff(id: Uuid) -> StaffId {
    StaffId(id)
}

pub fn service(id: Uuid) -> ServiceId {
    ServiceId(id)
}

pub fn user(id: Uuid) -> UserId {
    UserId(id)
}

/// The time zones the server knows (its bundled IANA database), as an enum.
fn timezone_names() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::db()
        .available()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name.len() <= 64 && TimeZone::get(name).is_ok())
        .collect();
    names.sort();
    names
}

fn timezone_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(timezone_names()))
        .build()
}

fn optional_timezone_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            utoipa::openapi::schema::Type::String,
            utoipa::openapi::schema::Type::Null,
        ]))
        .enum_values(Some(
            timezone_names()
                .into_iter()
                .map(serde_json::Value::from)
                .chain([serde_json::Value::Null]),
        ))
        .build()
}

/// 1 to [`MAX_STAFF_PER_SERVICE`](navaro_engine::domain::rules::MAX_STAFF_PER_SERVICE)
/// staff ids, none twice.
fn staff_ids_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
        )
        .min_items(Some(1))
        .max_items(Some(navaro_engine::domain::rules::MAX_STAFF_PER_SERVICE))
        .unique_items(true)
        .build()
}

fn nullable_enum(values: &[&str]) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(
            values
                .iter()
                .map(|&v| serde_json::Value::from(v))
                .chain([serde_json::Value::Null]),
        ))
        .build()
}

/// [`navaro_protocol::CATEGORIES`], or none.
fn category_schema() -> utoipa::openapi::schema::Object {
    nullable_enum(&navaro_protocol::CATEGORIES)
}

fn member_role_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["owner", "staff"]))
        .build()
}

/// The slot grids the engine accepts (`rules::SLOT_MINUTES_ALLOWED`), or none.
fn slot_minutes_schema() -> utoipa::openapi::schema::Object {
    use navaro_engine::domain::rules::SLOT_MINUTES_ALLOWED;
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            utoipa::openapi::schema::Type::Integer,
            utoipa::openapi::schema::Type::Null,
        ]))
        .enum_values(Some(
            SLOT_MINUTES_ALLOWED
                .iter()
                .map(|&m| serde_json::Value::from(m))
                .chain([serde_json::Value::Null]),
        ))
        .build()
}

/// An optional whole number that JSON may write as `15` or `15.0` (both are integers to
/// JSON Schema, so a client generated from the document may send either).
fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(f))
            .map(|f| f as u64)
    });
    let whole = whole.ok_or_else(|| D::Error::custom("expected a non-negative whole number"))?;
    T::try_from(whole)
        .map(Some)
        .map_err(|_| D::Error::custom("number out of range"))
}
