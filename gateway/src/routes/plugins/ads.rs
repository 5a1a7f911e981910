//! The ads plugin's routes: an establishment's campaigns (owners create and stop them;
//! members read them with today's figures), the click through a sponsored result, and
//! the sponsored results discovery shows ([`sponsored_for`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use navaro_plugins::ads::{self, Campaign, NewCampaign};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{plugin_error, require_installed, service};
use crate::auth::AuthUser;
use crate::dto::est;
use crate::error::{ApiError, ErrorBody};
use crate::routes::discovery::ListingDto;
use crate::routes::establishments::{manager, resolve};
use crate::state::AppState;
use crate::wire::{ApiJson, ApiPath};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    /// The discovery category to be placed in.
    #[schema(example = "barbershop")]
    pub category: String,
    /// The centre of the area (-90 to 90, -180 to 180).
    #[schema(minimum = -90, maximum = 90)]
    pub latitude: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub longitude: f64,
    /// The area's radius, more than 0 and at most 100 km.
    #[schema(exclusive_minimum = 0, maximum = 100)]
    pub radius_km: f64,
    /// What the campaign may spend per local day, in minor units (1 to 100000000).
    #[schema(minimum = 1, maximum = 100000000)]
    pub daily_budget_cents: i64,
    /// What one click costs, in minor units, at most the daily budget.
    #[schema(minimum = 1)]
    pub cost_per_click_cents: i64,
}

#[derive(Serialize, ToSchema)]
pub struct DayFiguresDto {
    /// The establishment's local day.
    pub day: String,
    pub impressions: i64,
    pub clicks: i64,
    pub spent_cents: i64,
    /// Still placed today: active, and the budget covers another click.
    pub placing: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CampaignDto {
    pub id: Uuid,
    pub establishment_id: Uuid,
    pub category: String,
    pub latitude: f64,
    pub longitude: f64,
    pub radius_km: f64,
    pub daily_budget_cents: i64,
    pub cost_per_click_cents: i64,
    /// False once stopped.
    pub active: bool,
    pub today: DayFiguresDto,
}

impl From<Campaign> for CampaignDto {
    fn from(c: Campaign) -> Self {
        CampaignDto {
            id: c.id,
            establishment_id: c.establishment_id,
            category: c.category,
            latitude: c.latitude,
            longitude: c.longitude,
            radius_km: c.radius_km,
            daily_budget_cents: c.daily_budget_cents,
            cost_per_click_cents: c.cost_per_click_cents,
            active: c.active,
            today: DayFiguresDto {
                day: c.today.day,
                impressions: c.today.impressions,
                clicks: c.today.clicks,
                spent_cents: c.today.spent_cents,
                placing: c.today.placing,
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CampaignsDto {
    pub campaigns: Vec<CampaignDto>,
}

#[utoipa::path(post, path = "/v1/establishments/{id}/plugins/ads/campaigns", tag = "plugins", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CampaignRequest,
    responses((status = 201, body = CampaignDto), (status = 403, body = ErrorBody),
        (status = 404, description = "ads not installed", body = ErrorBody),
        (status = 409, description = "too many active campaigns", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_campaign(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CampaignRequest>,
) -> Result<(StatusCode, Json<CampaignDto>), ApiError> {
    let (view, _) = manager(&state, &auth, est(id)).await?;
    require_installed(&view, ads::NAME)?;
    let plugins = service(&state)?;
    let new = NewCampaign {
        category: body.category,
        latitude: body.latitude,
        longitude: body.longitude,
        radius_km: body.radius_km,
        daily_budget_cents: body.daily_budget_cents,
        cost_per_click_cents: body.cost_per_click_cents,
    };
    let timezone = view.settings().timezone.clone();
    let campaign = ads::create(&plugins.db, id, &timezone, &new, Timestamp::now())
        .await
        .map_err(plugin_error)?;
    Ok((StatusCode::CREATED, Json(campaign.into())))
}

#[utoipa::path(get, path = "/v1/establishments/{id}/plugins/ads/campaigns", tag = "plugins", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = CampaignsDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_campaigns(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<CampaignsDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    if !caller.role.is_member() {
        return Err(ApiError::forbidden());
    }
    require_installed(&view, ads::NAME)?;
    let plugins = service(&state)?;
    let campaigns = ads::list(&plugins.db, id, Timestamp::now())
        .await
        .map_err(plugin_error)?;
    Ok(Json(CampaignsDto {
        campaigns: campaigns.into_iter().map(CampaignDto::from).collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/establishments/{id}/plugins/ads/campaigns/{campaign_id}", tag = "plugins", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("campaign_id" = Uuid, Path)),
    responses((status = 200, description = "stopped: no longer placed", body = CampaignDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn stop_campaign(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, campaign_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<CampaignDto>, ApiError> {
    let (view, _) = manager(&state, &auth, est(id)).await?;
    require_installed(&view, ads::NAME)?;
    let plugins = service(&state)?;
    let campaign = ads::stop(&plugins.db, id, campaign_id, Timestamp::now())
        .await
        .map_err(plugin_error)?;
    Ok(Json(campaign.into()))
}

#[derive(Serialize, ToSchema)]
pub struct ClickDto {
    pub campaign_id: Uuid,
    /// Where the click leads.
    pub establishment_id: Uuid,
}

#[utoipa::path(post, path = "/v1/ads/campaigns/{campaign_id}/click", tag = "plugins",
    params(("campaign_id" = Uuid, Path)),
    responses((status = 200, description = "counted (and charged while the day's budget allows)", body = ClickDto),
        (status = 404, body = ErrorBody)))]
pub async fn click(
    State(state): State<AppState>,
    ApiPath(campaign_id): ApiPath<Uuid>,
) -> Result<Json<ClickDto>, ApiError> {
    let plugins = service(&state)?;
    let click = ads::click(&plugins.db, campaign_id, Timestamp::now())
        .await
        .map_err(plugin_error)?;
    Ok(Json(ClickDto {
        campaign_id: click.campaign_id,
        establishment_id: click.establishment_id,
    }))
}

/// A sponsored result: always labelled, apart from the organic results.
#[derive(Serialize, ToSchema)]
pub struct SponsoredDto {
    /// Always `sponsored`: apps must show it as such.
    #[schema(example = "sponsored")]
    pub label: &'static str,
    pub campaign_id: Uuid,
    /// POST here when the customer opens the result (counts the click).
    pub click_url: String,
    pub establishment: ListingDto,
}

/// The sponsored results for a search in `category` (near `point`): on the first page
/// only, none on servers without plugins. A failure to place ads never fails the
/// search: it is logged and the search answers without them.
pub(crate) async fn sponsored_for(
    state: &AppState,
    category: Option<&str>,
    point: Option<(f64, f64)>,
) -> Vec<SponsoredDto> {
    let (Some(plugins), Some(category)) = (state.plugins.as_ref(), category) else {
        return Vec::new();
    };
    let placements = match ads::sponsored(&plugins.db, category, point, Timestamp::now()).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "sponsored placement failed; search answered without ads");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for p in placements {
        let Ok(view) = state.engine.view(est(p.establishment_id)).await else {
            continue;
        };
        if view.suspended().is_some() {
            continue;
        }
        out.push(SponsoredDto {
            label: ads::LABEL,
            campaign_id: p.campaign_id,
            click_url: format!("/v1/ads/campaigns/{}/click", p.campaign_id),
            establishment: listing_of(&view),
        });
    }
    out
}

fn listing_of(view: &navaro_engine::View) -> ListingDto {
    let s = view.settings();
    let l = &s.listing;
    ListingDto {
        id: view.id().0,
        name: s.name.clone(),
        category: l.category.clone(),
        address: l.address.clone(),
        latitude: l.latitude.map(|d| d.0),
        longitude: l.longitude.map(|d| d.0),
        photo_url: l.photo_url.clone(),
        description: l.description.clone(),
        timezone: s.timezone.clone(),
        services: view.services().into_iter().map(|s| s.name).collect(),
        rating_average: None,
        rating_count: 0,
        distance_m: None,
    }
}
