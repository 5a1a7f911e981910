//! Notifications: a user's push devices and opt-outs (`/v1/me/...`), and an
//! establishment's reminder settings and webhook endpoints with their deliveries
//! (managers only). The work itself is the notify crate's; these routes read and write
//! its tables through the running service, and answer 503 `unavailable` when the server
//! runs without it (memory stores, or `notify.enabled = false`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use navaro_notify::derive::PUSH_KINDS;
use navaro_notify::endpoints::{Endpoint, EndpointError};
use navaro_notify::push::{Device, valid_token};
use navaro_notify::store::DeliveryStatus;
use navaro_notify::{Notify, NotifyError};
use navaro_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::dto::{est, render};
use crate::error::{ApiError, ErrorBody};
use crate::routes::establishments::manager;
use crate::state::AppState;
use crate::wire::{ApiJson, ApiPath, ApiQuery};

/// Devices one user may register: a few phones and tablets; bounds the messages one
/// notification fans out to.
pub const MAX_DEVICES_PER_USER: usize = 10;
/// Deliveries listed at most per call.
pub const MAX_DELIVERIES_LISTED: i64 = 100;
/// Reminders per establishment at most.
pub const MAX_REMINDERS: usize = 5;
/// The longest reminder offset: 30 days.
pub const MAX_REMINDER_MINUTES: u32 = 30 * 24 * 60;

fn service(state: &AppState) -> Result<&Notify, ApiError> {
    state.notify.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unavailable,
            "notifications are not enabled on this server",
        )
    })
}

fn store_error(e: NotifyError) -> ApiError {
    ApiError::unavailable(e)
}

fn instant(us: i64, tz: &TimeZone) -> String {
    render(
        Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH),
        tz,
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterDeviceRequest {
    /// The Expo push token (`ExponentPushToken[...]` or `ExpoPushToken[...]`), up to
    /// 256 bytes.
    #[schema(
        max_length = 256,
        pattern = r"^(ExponentPushToken|ExpoPushToken)\[[\x20-\x7E]*\]$"
    )]
    pub token: String,
    /// `ios`, `android` or `web`.
    #[schema(schema_with = platform_schema)]
    pub platform: String,
}

fn string_enum(values: &[&str]) -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

fn platform_schema() -> utoipa::openapi::schema::Object {
    string_enum(&["ios", "android", "web"])
}

/// A list of some of `values` (repeats are taken once).
fn list_of(values: &[&str], min_items: usize) -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(string_enum(values))
        .min_items(Some(min_items))
        .build()
}

/// At most [`MAX_REMINDERS`] offsets, each 1 to [`MAX_REMINDER_MINUTES`].
fn reminders_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1.0))
                .maximum(Some(f64::from(MAX_REMINDER_MINUTES))),
        )
        .max_items(Some(MAX_REMINDERS))
        .build()
}

fn push_kinds_schema() -> utoipa::openapi::schema::Array {
    list_of(PUSH_KINDS, 0)
}

fn event_types_schema() -> utoipa::openapi::schema::Array {
    list_of(navaro_notify::endpoints::EVENT_TYPES, 1)
}

#[derive(Serialize, ToSchema)]
pub struct DeviceDto {
    pub token: String,
    pub platform: String,
    /// False once Expo said the token is no longer registered.
    pub active: bool,
    pub created_at: String,
}

impl DeviceDto {
    fn new(d: Device) -> DeviceDto {
        DeviceDto {
            token: d.token,
            platform: d.platform,
            active: d.active,
            created_at: instant(d.created_at_us, &TimeZone::UTC),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DevicesDto {
    pub devices: Vec<DeviceDto>,
}

#[utoipa::path(post, path = "/v1/me/devices", tag = "notifications", security(("bearer" = [])),
    request_body = RegisterDeviceRequest,
    responses((status = 201, body = DeviceDto), (status = 409, description = "limit_reached: too many devices", body = ErrorBody)))]
pub async fn register_device(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<RegisterDeviceRequest>,
) -> Result<(StatusCode, Json<DeviceDto>), ApiError> {
    let notify = service(&state)?;
    if !valid_token(&body.token) {
        return Err(ApiError::invalid("token", "not an Expo push token"));
    }
    if !matches!(body.platform.as_str(), "ios" | "android" | "web") {
        return Err(ApiError::invalid("platform", "ios, android or web"));
    }
    let user = auth.user_id.0;
    let devices = notify.db.devices_of(user).await.map_err(store_error)?;
    let known = devices.iter().any(|d| d.token == body.token);
    if !known && devices.len() >= MAX_DEVICES_PER_USER {
        return Err(ApiError::new(
            ErrorCode::LimitReached,
            format!("at most {MAX_DEVICES_PER_USER} devices; remove one first"),
        ));
    }
    let now = Timestamp::now().as_microsecond();
    let db = &notify.db;
    db.register_device(user, &body.token, &body.platform, now)
        .await
        .map_err(store_error)?;
    let device = Device {
        token: body.token,
        platform: body.platform,
        created_at_us: now,
        active: true,
    };
    Ok((StatusCode::CREATED, Json(DeviceDto::new(device))))
}

#[utoipa::path(get, path = "/v1/me/devices", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = DevicesDto)))]
pub async fn list_devices(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<DevicesDto>, ApiError> {
    let notify = service(&state)?;
    let devices = notify
        .db
        .devices_of(auth.user_id.0)
        .await
        .map_err(store_error)?;
    Ok(Json(DevicesDto {
        devices: devices.into_iter().map(DeviceDto::new).collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/me/devices/{token}", tag = "notifications", security(("bearer" = [])),
    params(("token" = String, Path, description = "the Expo push token, URL-encoded")),
    responses((status = 204, description = "removed"), (status = 404, body = ErrorBody)))]
pub async fn remove_device(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(token): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let notify = service(&state)?;
    let removed = notify
        .db
        .remove_device(auth.user_id.0, &token)
        .await
        .map_err(store_error)?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("device"))
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesDto {
    /// The message kinds turned off.
    #[schema(schema_with = push_kinds_schema)]
    pub disabled: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PreferencesAnswer {
    /// The message kinds turned off.
    pub disabled: Vec<String>,
    /// Every kind there is.
    pub kinds: Vec<String>,
}

fn preferences(disabled: Vec<String>) -> PreferencesAnswer {
    PreferencesAnswer {
        disabled,
        kinds: PUSH_KINDS.iter().map(|k| (*k).to_owned()).collect(),
    }
}

#[utoipa::path(get, path = "/v1/me/notification-preferences", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = PreferencesAnswer)))]
pub async fn get_preferences(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<PreferencesAnswer>, ApiError> {
    let notify = service(&state)?;
    let disabled = notify
        .db
        .opt_outs(auth.user_id.0)
        .await
        .map_err(store_error)?;
    Ok(Json(preferences(disabled)))
}

#[utoipa::path(put, path = "/v1/me/notification-preferences", tag = "notifications", security(("bearer" = [])),
    request_body = PreferencesDto, responses((status = 200, body = PreferencesAnswer)))]
pub async fn set_preferences(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<PreferencesDto>,
) -> Result<Json<PreferencesAnswer>, ApiError> {
    let notify = service(&state)?;
    if let Some(bad) = body
        .disabled
        .iter()
        .find(|k| !PUSH_KINDS.contains(&k.as_str()))
    {
        return Err(ApiError::invalid(
            "disabled",
            format!("unknown kind {bad:?}"),
        ));
    }
    let mut disabled = body.disabled;
    disabled.sort();
    disabled.dedup();
    notify
        .db
        .set_opt_outs(auth.user_id.0, &disabled)
        .await
        .map_err(store_error)?;
    Ok(Json(preferences(disabled)))
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettingsDto {
    /// Reminders, in minutes before a booking's start (at most 5, each 1..=43200); an
    /// empty list sends none. Applies to bookings confirmed or moved from now on.
    #[schema(schema_with = reminders_schema)]
    pub reminders_minutes: Vec<u32>,
}

#[utoipa::path(get, path = "/v1/establishments/{id}/notification-settings", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = NotificationSettingsDto), (status = 403, body = ErrorBody)))]
pub async fn get_notification_settings(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<NotificationSettingsDto>, ApiError> {
    let notify = service(&state)?;
    manager(&state, &auth, est(id)).await?;
    let set = notify.db.reminder_offsets(id).await.map_err(store_error)?;
    Ok(Json(NotificationSettingsDto {
        reminders_minutes: set.unwrap_or_else(|| notify.options.reminders_minutes.clone()),
    }))
}

#[utoipa::path(put, path = "/v1/establishments/{id}/notification-settings", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = NotificationSettingsDto,
    responses((status = 200, body = NotificationSettingsDto), (status = 403, body = ErrorBody)))]
pub async fn set_notification_settings(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NotificationSettingsDto>,
) -> Result<Json<NotificationSettingsDto>, ApiError> {
    let notify = service(&state)?;
    manager(&state, &auth, est(id)).await?;
    let mut minutes = body.reminders_minutes;
    if minutes.len() > MAX_REMINDERS {
        return Err(ApiError::invalid(
            "reminders_minutes",
            format!("at most {MAX_REMINDERS}"),
        ));
    }
    if minutes.iter().any(|m| *m == 0 || *m > MAX_REMINDER_MINUTES) {
        return Err(ApiError::invalid(
            "reminders_minutes",
            "each must be 1..=43200 minutes",
        ));
    }
    minutes.sort_unstable_by(|a, b| b.cmp(a));
    minutes.dedup();
    notify
        .db
        .set_reminder_offsets(id, &minutes)
        .await
        .map_err(store_error)?;
    notify.invalidate(id);
    Ok(Json(NotificationSettingsDto {
        reminders_minutes: minutes,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where deliveries are POSTed: an http or https URL with a host name and no
    /// credentials, up to 2048 bytes. (The pattern is a plain subset of the URLs the
    /// server takes: it also takes IP addresses and any WHATWG-valid URL.)
    #[schema(
        max_length = 2048,
        pattern = r"^https?://([A-Za-z0-9]+(-[A-Za-z0-9]+)*\.)*[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*(:[0-9]{1,4})?(/[A-Za-z0-9._~/-]*)?$"
    )]
    pub url: String,
    /// The event types wanted (`booking.confirmed`, `queue.called`, ...), at least one.
    #[schema(schema_with = event_types_schema)]
    pub event_types: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookDto {
    pub id: Uuid,
    pub establishment_id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    /// False once disabled (410, or failing too long); `disabled_reason` says why.
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Since when deliveries have failed without a success, if they have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
    pub created_at: String,
    /// The signing secret (`whsec_...`): only in the answers to create and rotate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// After a rotation: until when the previous secret also signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<String>,
}

impl WebhookDto {
    fn new(e: Endpoint, tz: &TimeZone, with_secret: bool) -> WebhookDto {
        WebhookDto {
            id: e.id,
            establishment_id: e.establishment_id,
            url: e.url,
            event_types: e.event_types,
            enabled: e.disabled_reason.is_none(),
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since_us.map(|us| instant(us, tz)),
            created_at: instant(e.created_at_us, tz),
            secret: with_secret.then_some(e.secret),
            previous_secret_expires_at: e.previous_until_us.map(|us| instant(us, tz)),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhooksDto {
    pub endpoints: Vec<WebhookDto>,
    /// The event types an endpoint may subscribe to.
    pub event_types: Vec<String>,
}

fn endpoint_error(e: EndpointError) -> ApiError {
    match e {
        EndpointError::Url(m) => ApiError::invalid("url", m),
        EndpointError::EventTypes(m) => ApiError::invalid("event_types", m),
        EndpointError::TooMany(n) => ApiError::new(
            ErrorCode::LimitReached,
            format!("at most {n} webhook endpoints per establishment"),
        ),
    }
}

/// The endpoint, if it belongs to this establishment.
async fn endpoint_at(notify: &Notify, id: Uuid, webhook_id: Uuid) -> Result<Endpoint, ApiError> {
    match notify.db.endpoint(webhook_id).await.map_err(store_error)? {
        Some(e) if e.establishment_id == id => Ok(e),
        _ => Err(ApiError::not_found("webhook endpoint")),
    }
}

#[utoipa::path(post, path = "/v1/establishments/{id}/webhooks", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CreateWebhookRequest,
    responses((status = 201, description = "with its secret", body = WebhookDto), (status = 403, body = ErrorBody),
        (status = 409, description = "limit_reached: too many endpoints", body = ErrorBody)))]
pub async fn create_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateWebhookRequest>,
) -> Result<(StatusCode, Json<WebhookDto>), ApiError> {
    let notify = service(&state)?;
    let (view, _) = manager(&state, &auth, est(id)).await?;
    let created = notify
        .db
        .create_endpoint(id, &body.url, &body.event_types, notify.now_us())
        .await
        .map_err(store_error)?
        .map_err(endpoint_error)?;
    notify.invalidate(id);
    let dto = WebhookDto::new(created, view.timezone(), true);
    Ok((StatusCode::CREATED, Json(dto)))
}

#[utoipa::path(get, path = "/v1/establishments/{id}/webhooks", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhooksDto), (status = 403, body = ErrorBody)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<WebhooksDto>, ApiError> {
    let notify = service(&state)?;
    let (view, _) = manager(&state, &auth, est(id)).await?;
    let endpoints = notify.db.endpoints_of(id).await.map_err(store_error)?;
    Ok(Json(WebhooksDto {
        endpoints: endpoints
            .into_iter()
            .map(|e| WebhookDto::new(e, view.timezone(), false))
            .collect(),
        event_types: navaro_notify::endpoints::EVENT_TYPES
            .iter()
            .map(|t| (*t).to_owned())
            .collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/establishments/{id}/webhooks/{webhook_id}", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("webhook_id" = Uuid, Path)),
    responses((status = 204, description = "removed; its pending deliveries are dropped"), (status = 403, body = ErrorBody)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, webhook_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let notify = service(&state)?;
    manager(&state, &auth, est(id)).await?;
    endpoint_at(notify, id, webhook_id).await?;
    notify
        .db
        .delete_endpoint(webhook_id)
        .await
        .map_err(store_error)?;
    notify.invalidate(id);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/establishments/{id}/webhooks/{webhook_id}/rotate-secret", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("webhook_id" = Uuid, Path)),
    responses((status = 200, description = "with the new secret; the old one signs too until previous_secret_expires_at", body = WebhookDto),
        (status = 403, body = ErrorBody)))]
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, webhook_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<WebhookDto>, ApiError> {
    let notify = service(&state)?;
    let (view, _) = manager(&state, &auth, est(id)).await?;
    endpoint_at(notify, id, webhook_id).await?;
    let overlap = notify.options.webhooks.rotation_overlap.as_micros() as i64;
    let rotated = notify
        .db
        .rotate_secret(webhook_id, notify.now_us() + overlap)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found("webhook endpoint"))?;
    Ok(Json(WebhookDto::new(rotated, view.timezone(), true)))
}

#[utoipa::path(post, path = "/v1/establishments/{id}/webhooks/{webhook_id}/enable", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("webhook_id" = Uuid, Path)),
    responses((status = 200, description = "enabled again", body = WebhookDto), (status = 403, body = ErrorBody)))]
pub async fn enable_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, webhook_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<WebhookDto>, ApiError> {
    let notify = service(&state)?;
    let (view, _) = manager(&state, &auth, est(id)).await?;
    endpoint_at(notify, id, webhook_id).await?;
    notify
        .db
        .enable_endpoint(webhook_id)
        .await
        .map_err(store_error)?;
    notify.invalidate(id);
    let endpoint = endpoint_at(notify, id, webhook_id).await?;
    Ok(Json(WebhookDto::new(endpoint, view.timezone(), false)))
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryDto {
    /// Also the `webhook-id` header, without its `msg_` prefix.
    pub id: Uuid,
    pub webhook_id: String,
    pub event_type: String,
    /// `pending`, `delivered`, `failed` or `cancelled`.
    pub status: String,
    pub attempts: i32,
    /// The receiver's last HTTP status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: String,
    /// When the next attempt goes (pending deliveries).
    pub next_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
}

impl DeliveryDto {
    fn new(d: DeliveryStatus, tz: &TimeZone) -> DeliveryDto {
        DeliveryDto {
            id: d.id,
            webhook_id: format!("msg_{}", d.id.simple()),
            event_type: d.event_type,
            next_attempt_at: (d.status == "pending").then(|| instant(d.due_at_us, tz)),
            status: d.status,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: instant(d.created_at_us, tz),
            delivered_at: d.delivered_at_us.map(|us| instant(us, tz)),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveriesDto {
    pub deliveries: Vec<DeliveryDto>,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// At most this many, newest first: 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/establishments/{id}/webhooks/{webhook_id}/deliveries", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("webhook_id" = Uuid, Path), DeliveriesQuery),
    responses((status = 200, body = DeliveriesDto), (status = 403, body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, webhook_id)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveriesDto>, ApiError> {
    let notify = service(&state)?;
    let (view, _) = manager(&state, &auth, est(id)).await?;
    endpoint_at(notify, id, webhook_id).await?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_DELIVERIES_LISTED).contains(&limit) {
        return Err(ApiError::invalid("limit", "1..=100"));
    }
    let rows = notify
        .db
        .deliveries_of(webhook_id, limit)
        .await
        .map_err(store_error)?;
    Ok(Json(DeliveriesDto {
        deliveries: rows
            .into_iter()
            .map(|d| DeliveryDto::new(d, view.timezone()))
            .collect(),
    }))
}

#[utoipa::path(post, path = "/v1/establishments/{id}/webhooks/{webhook_id}/deliveries/{delivery_id}/replay", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("webhook_id" = Uuid, Path), ("delivery_id" = Uuid, Path)),
    responses((status = 202, description = "queued again now, with the same webhook-id", body = DeliveryDto), (status = 403, body = ErrorBody)))]
pub async fn replay_delivery(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, webhook_id, delivery_id)): ApiPath<(Uuid, Uuid, Uuid)>,
) -> Result<(StatusCode, Json<DeliveryDto>), ApiError> {
    let notify = service(&state)?;
    let (view, _) = manager(&state, &auth, est(id)).await?;
    let endpoint = endpoint_at(notify, id, webhook_id).await?;
    if let Some(reason) = endpoint.disabled_reason {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("the endpoint is disabled ({reason}); enable it first"),
        ));
    }
    let replayed = notify
        .db
        .replay(delivery_id, webhook_id, notify.now_us())
        .await
        .map_err(store_error)?;
    if !replayed {
        return Err(ApiError::not_found("delivery"));
    }
    let rows = notify
        .db
        .deliveries_of(webhook_id, MAX_DELIVERIES_LISTED)
        .await
        .map_err(store_error)?;
    let row = rows
        .into_iter()
        .find(|d| d.id == delivery_id)
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeliveryDto::new(row, view.timezone())),
    ))
}
