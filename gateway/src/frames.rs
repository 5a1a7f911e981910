//! The live feed's frames as `/openapi.json` describes them, so that clients generate
//! their types (`clients/typescript`) instead of writing them by hand.
//!
//! OpenAPI has no words for WebSocket messages; the document lists them as components:
//! `LiveFrame` is a `oneOf` of `HelloFrame`, `ReloadFrame` and one `…Frame` per event
//! type (`BookingConfirmedFrame` is `{seq, type: "booking.confirmed", at, data:
//! BookingConfirmedData}`), with `type` as its discriminator, and the live route's 101
//! answer names it. The data schemas below mirror the protocol's events as
//! [`crate::live`] encodes them (the protocol crate has no schemas); a test encodes
//! every event kind and checks each frame against the document, so the two cannot
//! drift apart.

use utoipa::openapi::schema::{
    Discriminator, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, ToSchema};
use uuid::Uuid;

use crate::dto::{BookingDto, ServiceDto, StaffDto, TimeOffDto};
use crate::routes::payments::{
    PaymentDto, PaymentKindName, PaymentModeName, PaymentPolicyDto, PaymentStatusName,
};
use crate::routes::queue::TicketDto;

/// Every event type with the schema of its `data`, in `Event`'s order.
pub const EVENT_DATA: [(&str, &str); 29] = [
    ("establishment.created", "EstablishmentCreatedData"),
    ("establishment.updated", "EstablishmentUpdatedData"),
    ("establishment.suspended", "SuspensionData"),
    ("establishment.reinstated", "SuspensionData"),
    ("staff.added", "StaffAddedData"),
    ("staff.hours_set", "StaffHoursSetData"),
    ("staff.time_off_added", "TimeOffAddedData"),
    ("service.added", "ServiceAddedData"),
    ("booking.confirmed", "BookingConfirmedData"),
    ("booking.cancelled", "BookingCancelledData"),
    ("booking.rescheduled", "BookingRescheduledData"),
    ("booking.completed", "BookingData"),
    ("booking.no_show", "BookingData"),
    ("hold.placed", "HoldPlacedData"),
    ("hold.ended", "HoldEndedData"),
    ("payment.policy_set", "PaymentPolicySetData"),
    ("payment.policy_cleared", "PaymentPolicyClearedData"),
    ("payment.card_saved", "PaymentCardSavedData"),
    ("payment.updated", "PaymentUpdatedData"),
    ("queue.joined", "QueueTicketData"),
    ("queue.called", "QueueTicketData"),
    ("queue.started", "QueueTicketData"),
    ("queue.finished", "QueueTicketData"),
    ("queue.no_show", "QueueTicketData"),
    ("queue.left", "QueueTicketData"),
    ("queue.moved", "QueueTicketData"),
    ("queue.estimates", "QueueEstimatesData"),
    ("plugin.installed", "PluginInstalledData"),
    ("plugin.uninstalled", "PluginUninstalledData"),
];

/// `plugin.installed`: a plugin was installed, or its settings changed (members only).
#[derive(ToSchema)]
pub struct PluginInstalledData {
    /// `analytics`, `marketing` or `ads`.
    pub name: String,
    /// The settings it is installed with.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
}

/// `plugin.uninstalled` (members only).
#[derive(ToSchema)]
pub struct PluginUninstalledData {
    pub name: String,
}

/// An establishment's settings as events carry them (the create fields, all present).
#[derive(ToSchema)]
pub struct SettingsData {
    pub name: String,
    pub timezone: String,
    pub slot_minutes: u16,
    pub min_notice_minutes: u32,
    pub horizon_days: u16,
    pub cancel_cutoff_minutes: u32,
    pub max_future_bookings_per_customer: u16,
    pub queue_max_length: u16,
    pub queue_no_show_grace_minutes: u16,
    /// The listing; absent when it has no field set.
    #[schema(required = false)]
    pub listing: ListingData,
}

/// An establishment's listing as events carry it: each field absent when not set.
#[derive(ToSchema)]
pub struct ListingData {
    #[schema(required = false)]
    pub category: String,
    #[schema(required = false)]
    pub address: String,
    #[schema(required = false)]
    pub latitude: f64,
    #[schema(required = false)]
    pub longitude: f64,
    #[schema(required = false)]
    pub photo_url: String,
    #[schema(required = false)]
    pub description: String,
}

/// `establishment.suspended` (the owner is told why) and `establishment.reinstated`:
/// the admin's reason and who the admin was.
#[derive(ToSchema)]
pub struct SuspensionData {
    pub reason: String,
    pub by: Uuid,
}

/// `establishment.created`.
#[derive(ToSchema)]
pub struct EstablishmentCreatedData {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub settings: SettingsData,
}

/// `establishment.updated`: the settings after the change.
#[derive(ToSchema)]
pub struct EstablishmentUpdatedData {
    pub settings: SettingsData,
}

/// `staff.added`.
#[derive(ToSchema)]
pub struct StaffAddedData {
    pub staff: StaffDto,
}

/// `staff.hours_set`.
#[derive(ToSchema)]
pub struct StaffHoursSetData {
    pub staff_id: Uuid,
    /// `{"mon": [["09:00","12:00"], ...], ...}`; a missing day is a day off.
    #[schema(value_type = crate::dto::WeeklyHoursSchema)]
    pub hours: serde_json::Value,
}

/// `staff.time_off_added`.
#[derive(ToSchema)]
pub struct TimeOffAddedData {
    pub time_off: TimeOffDto,
}

/// `service.added`.
#[derive(ToSchema)]
pub struct ServiceAddedData {
    pub service: ServiceDto,
}

/// `booking.confirmed`: the booking; `from_hold` when it confirms a hold.
#[derive(ToSchema)]
pub struct BookingConfirmedData {
    pub booking: BookingDto,
    pub from_hold: Option<Uuid>,
}

/// `booking.cancelled`, with who cancelled.
#[derive(ToSchema)]
pub struct BookingCancelledData {
    pub booking: BookingDto,
    pub by: Uuid,
}

/// `booking.rescheduled`: the booking after the move, and where it was.
#[derive(ToSchema)]
pub struct BookingRescheduledData {
    pub booking: BookingDto,
    pub previous_start: String,
    pub previous_staff_id: Uuid,
}

/// `booking.completed` and `booking.no_show`.
#[derive(ToSchema)]
pub struct BookingData {
    pub booking: BookingDto,
}

/// A hold: a slot reserved until `expires_at` while the customer completes a step.
#[derive(ToSchema)]
pub struct HoldDto {
    pub id: Uuid,
    pub establishment_id: Uuid,
    pub service_id: Uuid,
    pub staff_id: Uuid,
    pub customer_id: Uuid,
    pub start: String,
    pub end: String,
    pub buffer_after_minutes: u32,
    pub expires_at: String,
    pub seq: u64,
}

/// Why a hold ended.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum HoldEndReason {
    Released,
    Expired,
}

/// `hold.placed`.
#[derive(ToSchema)]
pub struct HoldPlacedData {
    pub hold: HoldDto,
}

/// `hold.ended`.
#[derive(ToSchema)]
pub struct HoldEndedData {
    pub hold: HoldDto,
    pub reason: HoldEndReason,
}

/// `payment.policy_set`: the establishment's payment policy after the change, or
/// (with `service_id`) that service's own.
#[derive(ToSchema)]
pub struct PaymentPolicySetData {
    pub policy: PaymentPolicyDto,
    pub service_id: Option<Uuid>,
}

/// `payment.policy_cleared`: the service follows the establishment's policy again.
#[derive(ToSchema)]
pub struct PaymentPolicyClearedData {
    pub service_id: Uuid,
}

/// `payment.card_saved`: a customer's card on file (the customer's feed too).
#[derive(ToSchema)]
pub struct PaymentCardSavedData {
    pub card: crate::routes::fees::CardDto,
}

/// `payment.updated`: a payment after it was opened or changed.
#[derive(ToSchema)]
pub struct PaymentUpdatedData {
    pub payment: PaymentDto,
}

/// A waiting ticket's place and estimate.
#[derive(ToSchema)]
pub struct QueuePositionDto {
    pub ticket_id: Uuid,
    /// 1-based.
    pub position: u32,
    /// Estimated start of service; absent when none can be made.
    pub eta: Option<String>,
}

/// `queue.*`: the ticket after the change, and every waiting ticket's place after it. A
/// customer gets `ticket` only when it is theirs (`null` otherwise) and only their own
/// places.
#[derive(ToSchema)]
pub struct QueueTicketData {
    #[schema(required)]
    pub ticket: Option<TicketDto>,
    pub queue: Vec<QueuePositionDto>,
}

/// `queue.estimates`: estimates moved with time alone. A customer's frame also has
/// `ticket: null`.
#[derive(ToSchema)]
pub struct QueueEstimatesData {
    #[schema(inline, required = false)]
    pub ticket: Null,
    pub queue: Vec<QueuePositionDto>,
}

/// JSON's `null`, the only value of a field that is there for the shape's sake.
pub struct Null;

impl utoipa::PartialSchema for Null {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Null).into()
    }
}

impl ToSchema for Null {}

/// The data schemas, registered as components.
pub fn data_schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    macro_rules! add {
        ($($t:ty),* $(,)?) => {$(
            schemas.push((<$t as utoipa::ToSchema>::name().into_owned(), <$t as utoipa::PartialSchema>::schema()));
        )*};
    }
    add!(
        SettingsData,
        ListingData,
        SuspensionData,
        EstablishmentCreatedData,
        EstablishmentUpdatedData,
        StaffAddedData,
        StaffHoursSetData,
        TimeOffAddedData,
        ServiceAddedData,
        BookingConfirmedData,
        BookingCancelledData,
        BookingRescheduledData,
        BookingData,
        HoldDto,
        HoldEndReason,
        HoldPlacedData,
        HoldEndedData,
        PaymentPolicySetData,
        PaymentPolicyClearedData,
        PaymentCardSavedData,
        crate::routes::fees::CardDto,
        crate::routes::payments::PolicyAudienceName,
        PaymentUpdatedData,
        PaymentPolicyDto,
        PaymentDto,
        PaymentModeName,
        PaymentKindName,
        PaymentStatusName,
        QueuePositionDto,
        QueueTicketData,
        QueueEstimatesData,
        PluginInstalledData,
        PluginUninstalledData,
        StaffDto,
        ServiceDto,
        TimeOffDto,
        BookingDto,
        TicketDto,
    );
}

/// `BookingConfirmedFrame` for `booking.confirmed`.
pub fn frame_name(kind: &str) -> String {
    let mut name = String::new();
    for part in kind.split(['.', '_']) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            name.extend(first.to_uppercase());
            name.push_str(chars.as_str());
        }
    }
    name.push_str("Frame");
    name
}

fn seq_schema(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(0))
        .description(Some(description))
}

fn type_schema(kind: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([kind]))
}

fn control_frame(kind: &str, description: &str) -> Schema {
    ObjectBuilder::new()
        .description(Some(description))
        .property("type", type_schema(kind))
        .required("type")
        .property(
            "seq",
            seq_schema("The establishment's latest durable event."),
        )
        .required("seq")
        .into()
}

fn event_frame(kind: &str, data: &str) -> Schema {
    ObjectBuilder::new()
        .description(Some(format!("A `{kind}` event.")))
        .property(
            "seq",
            seq_schema("The event's number in its establishment."),
        )
        .required("seq")
        .property("type", type_schema(kind))
        .required("type")
        .property(
            "at",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .description(Some("When the establishment decided it.")),
        )
        .required("at")
        .property("data", Ref::from_schema_name(data))
        .required("data")
        .into()
}

/// Adds the frames and their data to the document's components.
pub struct LiveFrames;

impl Modify for LiveFrames {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut schemas = Vec::new();
        data_schemas(&mut schemas);
        for (name, schema) in schemas {
            components.schemas.insert(name, schema);
        }
        let control = [
            ("hello", "HelloFrame", "The first frame: the current seq."),
            (
                "reload",
                "ReloadFrame",
                "`since` was too old (or ahead): refetch, then resume after `seq`.",
            ),
        ];
        let mut one_of = OneOfBuilder::new();
        let mut discriminator = Discriminator::new("type");
        for (kind, name, description) in control {
            components
                .schemas
                .insert(name.to_owned(), control_frame(kind, description).into());
            one_of = one_of.item(Ref::from_schema_name(name));
            discriminator
                .mapping
                .insert(kind.to_owned(), format!("#/components/schemas/{name}"));
        }
        for (kind, data) in EVENT_DATA {
            let name = frame_name(kind);
            components
                .schemas
                .insert(name.clone(), event_frame(kind, data).into());
            one_of = one_of.item(Ref::from_schema_name(&name));
            discriminator
                .mapping
                .insert(kind.to_owned(), format!("#/components/schemas/{name}"));
        }
        let live_frame = one_of
            .description(Some(
                "A frame of the live feed (`GET /v1/establishments/{id}/live`), by `type`.",
            ))
            .discriminator(Some(discriminator));
        components
            .schemas
            .insert("LiveFrame".to_owned(), live_frame.into());
        // The upgrade's answer names the frames that follow it.
        let upgrade = openapi
            .paths
            .paths
            .get_mut(LIVE_PATH)
            .and_then(|item| item.get.as_mut())
            .and_then(|get| get.responses.responses.get_mut("101"));
        if let Some(RefOr::T(response)) = upgrade {
            use utoipa::openapi::ContentBuilder;
            for media in SUBPROTOCOL_MEDIA {
                response.content.insert(
                    media.to_owned(),
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("LiveFrame")))
                        .build(),
                );
            }
        }
    }
}

/// The live route, whose 101 answer is described with the frames.
const LIVE_PATH: &str = "/v1/establishments/{id}/live";

/// How the frames are encoded: JSON text (`navaro.v1.json`) or MessagePack binary
/// (`navaro.v1.msgpack`), same fields.
const SUBPROTOCOL_MEDIA: [&str; 2] = ["application/json", "application/msgpack"];

#[cfg(test)]
mod tests {
    use jiff::tz::TimeZone;
    use jiff::{SignedDuration, Timestamp};
    use navaro_protocol::{
        Booking, BookingId, BookingStatus, Encoding, EstablishmentId, EstablishmentSettings, Event,
        EventRecord, Hold, HoldEnd, HoldId, Payment, PaymentId, PaymentKind, PaymentMode,
        PaymentPolicy, PaymentStatus, QueuePosition, Service, ServiceId, Staff, StaffId, Ticket,
        TicketId, TicketStatus, TimeOff, TimeOffId, UserId, WeeklyHours,
    };
    use serde_json::Value;
    use uuid::Uuid;

    use super::*;
    use crate::live::{CustomerQueueData, CustomerQueueFrame, encode_frame};

    /// One event of every kind, with every optional field set in `full` and none in
    /// the other.
    fn every_event(at: Timestamp, full: bool) -> Vec<Event> {
        let id = |n: u128| Uuid::from_u128(n);
        let later = |minutes: i64| at + SignedDuration::from_mins(minutes);
        let settings = EstablishmentSettings {
            name: "Barbearia".to_owned(),
            timezone: "America/Sao_Paulo".to_owned(),
            slot_minutes: 15,
            min_notice_minutes: 0,
            horizon_days: 60,
            cancel_cutoff_minutes: 0,
            max_future_bookings_per_customer: 10,
            queue_max_length: 100,
            queue_no_show_grace_minutes: 5,
            listing: if full {
                navaro_protocol::Listing {
                    category: Some("barbershop".to_owned()),
                    address: Some("Rua A, 1".to_owned()),
                    latitude: Some(navaro_protocol::Degrees(-23.5)),
                    longitude: Some(navaro_protocol::Degrees(-46.6)),
                    photo_url: Some("https://example.com/a.jpg".to_owned()),
                    description: Some("Cortes".to_owned()),
                }
            } else {
                Default::default()
            },
        };
        let booking = Booking {
            id: BookingId(id(1)),
            establishment_id: EstablishmentId(id(2)),
            service_id: ServiceId(id(3)),
            staff_id: StaffId(id(4)),
            customer_id: UserId(id(5)),
            start: later(60),
            end: later(90),
            buffer_after_minutes: 5,
            status: BookingStatus::Confirmed,
            seq: 7,
            created_at: at,
            promotion: None,
            payment_policy: full.then(|| {
                Box::new(PaymentPolicy {
                    mode: PaymentMode::CardOnFile,
                    no_show_fee_percent: Some(40),
                    ..PaymentPolicy::default()
                })
            }),
        };
        let hold = Hold {
            id: HoldId(id(6)),
            establishment_id: EstablishmentId(id(2)),
            service_id: ServiceId(id(3)),
            staff_id: StaffId(id(4)),
            customer_id: UserId(id(5)),
            start: later(60),
            end: later(90),
            buffer_after_minutes: 0,
            expires_at: later(10),
            seq: 8,
        };
        let ticket = Ticket {
            id: TicketId(id(9)),
            number: 3,
            customer_id: full.then_some(UserId(id(5))),
            name: full.then(|| "Ana".to_owned()),
            service_id: ServiceId(id(3)),
            staff_id: full.then_some(StaffId(id(4))),
            status: TicketStatus::Waiting,
            position: full.then_some(1),
            eta: full.then(|| later(20)),
            joined_at: at,
            called_at: full.then(|| later(21)),
            started_at: full.then(|| later(22)),
            ended_at: full.then(|| later(50)),
        };
        let queue = vec![QueuePosition {
            ticket_id: ticket.id,
            position: 1,
            eta: full.then(|| later(20)),
        }];
        let hours = WeeklyHours::weekdays(&[("09:00", "18:00")]);
        let policy = if full {
            PaymentPolicy {
                // Every field a policy can carry, in a shape the engine accepts.
                mode: PaymentMode::CardOnFile,
                deposit_percent: None,
                deposit_cents: None,
                cancel_window_minutes: 1440,
                late_cancel_fee_percent: Some(10),
                late_cancel_fee_cents: None,
                late_cancel_fee_needs_confirmation: true,
                no_show_fee_percent: None,
                no_show_fee_cents: Some(1_000),
                applies_to: navaro_protocol::PolicyAudience::NewCustomers,
            }
        } else {
            PaymentPolicy::default()
        };
        let payment = Payment {
            id: PaymentId(id(6)),
            establishment_id: EstablishmentId(id(2)),
            customer_id: UserId(id(5)),
            hold_id: HoldId(id(6)),
            booking_id: full.then_some(BookingId(id(1))),
            service_id: ServiceId(id(3)),
            staff_id: StaffId(id(4)),
            start: later(60),
            kind: PaymentKind::Deposit,
            amount_cents: 1_500,
            price_cents: 5_000,
            currency: "BRL".to_owned(),
            status: PaymentStatus::Succeeded,
            provider: "stripe".to_owned(),
            provider_ref: full.then(|| "pi_123".to_owned()),
            refunded_cents: 0,
            refund_due_cents: 0,
            refund_refs: if full {
                vec!["re_1".to_owned()]
            } else {
                Vec::new()
            },
            failure: full.then(|| "declined".to_owned()),
            policy: policy.clone(),
            expires_at: later(10),
            created_at: at,
            seq: 9,
            attempt: if full { 1 } else { 0 },
            attempt_started_at: full.then_some(at),
        };
        let events = vec![
            Event::EstablishmentCreated {
                id: EstablishmentId(id(2)),
                owner_id: UserId(id(11)),
                settings: settings.clone(),
            },
            Event::SettingsUpdated { settings },
            Event::EstablishmentSuspended {
                reason: "unpaid fees".to_owned(),
                by: UserId(id(13)),
            },
            Event::EstablishmentReinstated {
                reason: "paid".to_owned(),
                by: UserId(id(13)),
            },
            Event::StaffAdded {
                staff: Staff {
                    id: StaffId(id(4)),
                    name: "Carlos".to_owned(),
                    user_id: full.then_some(UserId(id(12))),
                    hours: hours.clone(),
                },
            },
            Event::StaffHoursSet {
                staff_id: StaffId(id(4)),
                hours,
            },
            Event::TimeOffAdded {
                time_off: TimeOff {
                    id: TimeOffId(id(10)),
                    staff_id: StaffId(id(4)),
                    start: later(2_880),
                    end: later(3_000),
                    reason: full.then(|| "dentist".to_owned()),
                },
            },
            Event::ServiceAdded {
                service: Service {
                    id: ServiceId(id(3)),
                    name: "Corte".to_owned(),
                    duration_minutes: 30,
                    price_cents: 5_000,
                    currency: "BRL".to_owned(),
                    buffer_after_minutes: 5,
                    staff_ids: vec![StaffId(id(4))],
                },
            },
            Event::BookingConfirmed {
                booking: booking.clone(),
                from_hold: full.then_some(hold.id),
            },
            Event::BookingCancelled {
                booking: booking.clone(),
                by: UserId(id(5)),
            },
            Event::BookingRescheduled {
                booking: booking.clone(),
                previous_start: later(600),
                previous_staff_id: StaffId(id(4)),
            },
            Event::BookingCompleted {
                booking: booking.clone(),
            },
            Event::BookingNoShow { booking },
            Event::HoldPlaced { hold: hold.clone() },
            Event::HoldEnded {
                hold,
                reason: if full {
                    HoldEnd::Expired
                } else {
                    HoldEnd::Released
                },
            },
            Event::PaymentPolicySet {
                policy: policy.clone(),
                service_id: full.then_some(ServiceId(id(3))),
            },
            Event::PaymentPolicyCleared {
                service_id: ServiceId(id(3)),
            },
            Event::PaymentCardSaved {
                card: navaro_protocol::SavedCard {
                    customer_id: UserId(id(5)),
                    provider: "stripe".into(),
                    customer_ref: "cus_1".into(),
                    payment_method_ref: "pm_1".into(),
                    setup_ref: "seti_1".into(),
                    saved_at: at,
                    seq: 9,
                },
            },
            Event::PaymentUpdated { payment },
            Event::QueueJoined {
                ticket: ticket.clone(),
                queue: queue.clone(),
            },
            Event::QueueCalled {
                ticket: ticket.clone(),
                queue: queue.clone(),
            },
            Event::QueueStarted {
                ticket: ticket.clone(),
                queue: queue.clone(),
            },
            Event::QueueFinished {
                ticket: ticket.clone(),
                queue: queue.clone(),
            },
            Event::QueueNoShow {
                ticket: ticket.clone(),
                queue: queue.clone(),
            },
            Event::QueueLeft {
                ticket: ticket.clone(),
                queue: queue.clone(),
            },
            Event::QueueMoved {
                ticket,
                queue: queue.clone(),
            },
            Event::QueueEstimates { queue },
            Event::PluginInstalled {
                name: "analytics".to_owned(),
                settings: serde_json::json!({}),
            },
            Event::PluginUninstalled {
                name: "analytics".to_owned(),
            },
        ];
        events.iter().for_each(exhaustive);
        events
    }

    /// A new event kind fails to compile here: add it to `every_event` and `EVENT_DATA`.
    fn exhaustive(event: &Event) {
        match event {
            Event::EstablishmentCreated { .. }
            | Event::SettingsUpdated { .. }
            | Event::EstablishmentSuspended { .. }
            | Event::EstablishmentReinstated { .. }
            | Event::StaffAdded { .. }
            | Event::StaffHoursSet { .. }
            | Event::TimeOffAdded { .. }
            | Event::ServiceAdded { .. }
            | Event::BookingConfirmed { .. }
            | Event::BookingCancelled { .. }
            | Event::BookingRescheduled { .. }
            | Event::BookingCompleted { .. }
            | Event::BookingNoShow { .. }
            | Event::HoldPlaced { .. }
            | Event::HoldEnded { .. }
            | Event::PaymentPolicySet { .. }
            | Event::PaymentPolicyCleared { .. }
            | Event::PaymentCardSaved { .. }
            | Event::PaymentUpdated { .. }
            | Event::QueueJoined { .. }
            | Event::QueueCalled { .. }
            | Event::QueueStarted { .. }
            | Event::QueueFinished { .. }
            | Event::QueueNoShow { .. }
            | Event::QueueLeft { .. }
            | Event::QueueMoved { .. }
            | Event::QueueEstimates { .. }
            | Event::PluginInstalled { .. }
            | Event::PluginUninstalled { .. } => {}
        }
    }

    fn document() -> Value {
        serde_json::from_str(&crate::openapi::document()).unwrap()
    }

    /// Whether `value` is what `schema` describes: types, enums, required properties,
    /// and no property the schema does not name (so a field added on the wire and not
    /// in the document fails, as does one the document has and the wire lacks).
    fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference.trim_start_matches("#/components/schemas/");
            let target = &doc["components"]["schemas"][name];
            if target.is_null() {
                return Err(format!("{at}: no schema {name}"));
            }
            return conforms(doc, target, value, at);
        }
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
            let fits: Vec<_> = options
                .iter()
                .map(|o| conforms(doc, o, value, at))
                .collect();
            return match fits.iter().filter(|f| f.is_ok()).count() {
                1 => Ok(()),
                0 => Err(format!("{at}: no option fits {value}: {fits:?}")),
                n => Err(format!("{at}: {n} options fit {value}")),
            };
        }
        for part in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            conforms(doc, part, value, at)?;
        }
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let fits = |t: &str| match t {
                "null" => value.is_null(),
                "boolean" => value.is_boolean(),
                "string" => value.is_string(),
                "integer" => value.is_u64() || value.is_i64(),
                "number" => value.is_number(),
                "array" => value.is_array(),
                "object" => value.is_object(),
                _ => false,
            };
            if !types.iter().any(|t| fits(t)) {
                return Err(format!("{at}: {value} is not {types:?}"));
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            return Err(format!("{at}: {value} is not one of {allowed:?}"));
        }
        if let (Some(properties), Some(object)) = (
            schema.get("properties").and_then(Value::as_object),
            value.as_object(),
        ) {
            for (key, item) in object {
                let Some(property) = properties.get(key) else {
                    return Err(format!("{at}: {key} is not in the schema"));
                };
                conforms(doc, property, item, &format!("{at}.{key}"))?;
            }
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !object.contains_key(required) {
                    return Err(format!("{at}: {required} is missing"));
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (n, item) in array.iter().enumerate() {
                conforms(doc, items, item, &format!("{at}[{n}]"))?;
            }
        }
        Ok(())
    }

    fn live_frame(doc: &Value, frame: &Value) -> Result<(), String> {
        let schema = serde_json::json!({"$ref": "#/components/schemas/LiveFrame"});
        conforms(doc, &schema, frame, "frame")
    }

    #[test]
    fn every_frame_a_member_or_customer_gets_is_in_the_document() {
        let doc = document();
        let tz = TimeZone::get("America/Sao_Paulo").unwrap();
        let at: Timestamp = "2026-12-01T11:00:00Z".parse().unwrap();
        let mut kinds = Vec::new();
        for full in [true, false] {
            for event in every_event(at, full) {
                kinds.push(event.kind());
                let record = EventRecord {
                    seq: 42,
                    at,
                    idempotency: None,
                    event,
                };
                for encoding in [Encoding::Json, Encoding::MsgPack] {
                    let bytes = encode_frame(encoding, &record, &tz).unwrap();
                    let frame: Value = match encoding {
                        Encoding::Json => serde_json::from_slice(&bytes).unwrap(),
                        Encoding::MsgPack => rmp_serde::from_slice(&bytes).unwrap(),
                    };
                    live_frame(&doc, &frame).unwrap();
                }
                // As a customer sees a queue event: their ticket or null, their places.
                if let Some(queue) = record.event.queue_positions() {
                    for ticket in [record.event.ticket(), None] {
                        let frame = CustomerQueueFrame {
                            seq: record.seq,
                            kind: record.event.kind(),
                            at,
                            data: CustomerQueueData {
                                ticket,
                                queue: queue.iter().collect(),
                            },
                        };
                        let frame = serde_json::to_value(&frame).unwrap();
                        live_frame(&doc, &frame).unwrap();
                    }
                }
            }
        }
        kinds.sort_unstable();
        kinds.dedup();
        let mut documented: Vec<&str> = EVENT_DATA.iter().map(|(kind, _)| *kind).collect();
        documented.sort_unstable();
        assert_eq!(kinds, documented, "EVENT_DATA names every event kind");
        for control in [
            serde_json::json!({"type": "hello", "seq": 3}),
            serde_json::json!({"type": "reload", "seq": 3}),
        ] {
            live_frame(&doc, &control).unwrap();
        }
        assert!(live_frame(&doc, &serde_json::json!({"type": "hello"})).is_err());
        let extra = serde_json::json!({"type": "reload", "seq": 3, "more": 1});
        assert!(live_frame(&doc, &extra).is_err());
    }

    #[test]
    fn the_statuses_in_the_document_are_the_protocols() {
        let doc = document();
        let names = |schema: &str| -> Vec<String> {
            let mut names: Vec<String> = doc["components"]["schemas"][schema]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{schema} is an enum"))
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            names.sort();
            names
        };
        let wire = |values: Vec<Value>| -> Vec<String> {
            let mut names: Vec<String> = values
                .into_iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            names.sort();
            names
        };
        use BookingStatus as B;
        let bookings = [B::Confirmed, B::Cancelled, B::Completed, B::NoShow];
        for status in bookings {
            // A new status fails to compile here: add it to `BookingStatusName`.
            match status {
                B::Confirmed | B::Cancelled | B::Completed | B::NoShow => {}
            }
        }
        assert_eq!(
            names("BookingStatus"),
            wire(
                bookings
                    .iter()
                    .map(|s| serde_json::to_value(s).unwrap())
                    .collect()
            )
        );
        use TicketStatus as T;
        let tickets = [
            T::Waiting,
            T::Called,
            T::InService,
            T::Done,
            T::NoShow,
            T::Left,
        ];
        for status in tickets {
            // A new status fails to compile here: add it to `TicketStatusName`.
            match status {
                T::Waiting | T::Called | T::InService | T::Done | T::NoShow | T::Left => {}
            }
        }
        assert_eq!(
            names("TicketStatus"),
            wire(
                tickets
                    .iter()
                    .map(|s| serde_json::to_value(s).unwrap())
                    .collect()
            )
        );
        for end in [HoldEnd::Released, HoldEnd::Expired] {
            let name = serde_json::to_value(end).unwrap();
            assert!(names("HoldEndReason").contains(&name.as_str().unwrap().to_owned()));
        }
    }
}
