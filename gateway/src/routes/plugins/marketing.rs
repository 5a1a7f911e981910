//! The marketing plugin's routes: promotion codes (owners create and end them; members
//! read them with their use counts) and win-back audiences (members).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use navaro_plugins::marketing::{self, NewPromotion, Promotion};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{plugin_error, require_installed, service};
use crate::auth::AuthUser;
use crate::dto::{est, render};
use crate::error::{ApiError, ErrorBody};
use crate::routes::establishments::{manager, resolve};
use crate::state::AppState;
use crate::wire::{ApiJson, ApiPath, ApiQuery};

/// The longest win-back window: ten years.
pub const MAX_WIN_BACK_DAYS: u32 = 3650;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionRequest {
    /// 3 to 32 letters, digits, `-` or `_`; matched without case, stored upper case.
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_-]{3,32}$")]
    pub code: String,
    /// Percent off the service's price, 1 to 100; exactly one of this and
    /// `amount_off_cents`.
    #[schema(minimum = 1, maximum = 100)]
    pub percent_off: Option<u8>,
    /// Minor units off the price (never below zero).
    #[schema(minimum = 1)]
    pub amount_off_cents: Option<i64>,
    /// Usable from this instant (RFC 3339); absent: at once.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub valid_from: Option<Timestamp>,
    /// Usable until this instant, exclusive; absent: no end.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub valid_until: Option<Timestamp>,
    /// Bookings that may use it in all; absent: unlimited. A cancelled booking gives
    /// its use back.
    #[schema(minimum = 1)]
    pub usage_limit: Option<u32>,
    /// Each customer may use it once (default true).
    pub once_per_customer: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct PromotionDto {
    pub code: String,
    pub percent_off: Option<u8>,
    pub amount_off_cents: Option<i64>,
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
    pub usage_limit: Option<u32>,
    pub once_per_customer: bool,
    /// False once ended (`DELETE`).
    pub active: bool,
    /// Live bookings that used it (the establishment's own count).
    pub uses: u32,
    pub created_at: String,
}

fn dto(p: Promotion, view: &navaro_engine::View) -> PromotionDto {
    let tz = view.timezone();
    let uses = view
        .state()
        .promotion_uses
        .get(&p.code)
        .map_or(0, |u| u.count);
    PromotionDto {
        code: p.code,
        percent_off: p.percent_off,
        amount_off_cents: p.amount_off_cents,
        valid_from: p.valid_from.map(|t| render(t, tz)),
        valid_until: p.valid_until.map(|t| render(t, tz)),
        usage_limit: p.usage_limit,
        once_per_customer: p.once_per_customer,
        active: p.active,
        uses,
        created_at: render(p.created_at, tz),
    }
}

#[derive(Serialize, ToSchema)]
pub struct PromotionsDto {
    pub promotions: Vec<PromotionDto>,
}

#[utoipa::path(post, path = "/v1/establishments/{id}/plugins/marketing/promotions", tag = "plugins", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = PromotionRequest,
    responses((status = 201, body = PromotionDto), (status = 403, body = ErrorBody),
        (status = 404, description = "marketing not installed", body = ErrorBody),
        (status = 409, description = "the code exists", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_promotion(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PromotionRequest>,
) -> Result<(StatusCode, Json<PromotionDto>), ApiError> {
    let (view, _) = manager(&state, &auth, est(id)).await?;
    require_installed(&view, marketing::NAME)?;
    let plugins = service(&state)?;
    let new = NewPromotion {
        code: body.code,
        percent_off: body.percent_off,
        amount_off_cents: body.amount_off_cents,
        valid_from: body.valid_from,
        valid_until: body.valid_until,
        usage_limit: body.usage_limit,
        once_per_customer: body.once_per_customer.unwrap_or(true),
    };
    let created = marketing::create(&plugins.db, id, &new, Timestamp::now())
        .await
        .map_err(plugin_error)?;
    Ok((StatusCode::CREATED, Json(dto(created, &view))))
}

#[utoipa::path(get, path = "/v1/establishments/{id}/plugins/marketing/promotions", tag = "plugins", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PromotionsDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_promotions(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<PromotionsDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    if !caller.role.is_member() {
        return Err(ApiError::forbidden());
    }
    require_installed(&view, marketing::NAME)?;
    let plugins = service(&state)?;
    let list = marketing::list(&plugins.db, id)
        .await
        .map_err(plugin_error)?;
    Ok(Json(PromotionsDto {
        promotions: list.into_iter().map(|p| dto(p, &view)).collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/establishments/{id}/plugins/marketing/promotions/{code}", tag = "plugins", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("code" = String, Path)),
    responses((status = 200, description = "ended: no longer usable", body = PromotionDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn end_promotion(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, code)): ApiPath<(Uuid, String)>,
) -> Result<Json<PromotionDto>, ApiError> {
    let (view, _) = manager(&state, &auth, est(id)).await?;
    require_installed(&view, marketing::NAME)?;
    let plugins = service(&state)?;
    let ended = marketing::deactivate(&plugins.db, id, &code)
        .await
        .map_err(plugin_error)?;
    Ok(Json(dto(ended, &view)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WinBackParams {
    /// Customers not served for more than this many days (1 to 3650).
    #[param(value_type = u32, minimum = 1, maximum = 3650)]
    pub days: String,
}

#[derive(Serialize, ToSchema)]
pub struct AudienceMemberDto {
    pub customer_id: Uuid,
    /// When they were last served (a booking completed, a walk-in finished).
    pub last_seen: String,
    pub visits: i64,
}

#[derive(Serialize, ToSchema)]
pub struct AudienceDto {
    pub days: u32,
    /// Longest absent first; at most 5000.
    pub customers: Vec<AudienceMemberDto>,
}

#[utoipa::path(get, path = "/v1/establishments/{id}/plugins/marketing/audiences/win-back", tag = "plugins", security(("bearer" = [])),
    params(("id" = Uuid, Path), WinBackParams),
    responses((status = 200, body = AudienceDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn win_back(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<WinBackParams>,
) -> Result<Json<AudienceDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    if !caller.role.is_member() {
        return Err(ApiError::forbidden());
    }
    require_installed(&view, marketing::NAME)?;
    let days = params
        .days
        .parse::<u32>()
        .ok()
        .filter(|d| (1..=MAX_WIN_BACK_DAYS).contains(d))
        .ok_or_else(|| {
            ApiError::invalid("days", format!("days must be 1 to {MAX_WIN_BACK_DAYS}"))
        })?;
    let plugins = service(&state)?;
    let members = marketing::win_back(&plugins.db, id, days, Timestamp::now())
        .await
        .map_err(plugin_error)?;
    let tz = view.timezone();
    Ok(Json(AudienceDto {
        days,
        customers: members
            .into_iter()
            .map(|m| AudienceMemberDto {
                customer_id: m.customer_id,
                last_seen: render(m.last_seen, tz),
                visits: m.visits,
            })
            .collect(),
    }))
}
