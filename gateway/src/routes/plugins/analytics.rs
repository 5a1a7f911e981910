//! The analytics plugin's route: a report per day, week or month, for the establishment
//! or one staff member, as JSON or CSV (members only).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use navaro_plugins::analytics_report::{Period, Report, report, to_csv};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{plugin_error, require_installed, service};
use crate::auth::AuthUser;
use crate::dto::est;
use crate::error::{ApiError, ErrorBody};
use crate::routes::establishments::{parse_date, resolve};
use crate::state::AppState;
use crate::wire::{ApiPath, ApiQuery};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// First local date, `YYYY-MM-DD`.
    pub from: String,
    /// Last local date, `YYYY-MM-DD`, inclusive; at most 366 days after `from`.
    pub to: String,
    /// `day` (default), `week` (Monday first) or `month`.
    pub period: Option<String>,
    /// One staff member's figures; absent: the whole establishment.
    pub staff_id: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// One period's figures (see `docs/plugins.md` for what each counts).
#[derive(Serialize, ToSchema)]
pub struct ReportRowDto {
    /// The period's first local date (clipped to `from`).
    pub start: String,
    pub bookings: i64,
    pub cancellations: i64,
    pub no_shows: i64,
    pub no_show_rate: f64,
    pub completed: i64,
    pub revenue_cents: i64,
    pub busy_minutes: i64,
    pub working_minutes: i64,
    pub utilisation: f64,
    pub walk_ins: i64,
    pub waits: i64,
    pub avg_wait_seconds: Option<f64>,
    pub p90_wait_seconds: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct HourCountDto {
    /// Local hour of the day, 0 to 23.
    pub hour: i64,
    pub arrivals: i64,
}

/// An analytics report (the CSV form has the rows only).
#[derive(Serialize, ToSchema)]
pub struct ReportDto {
    pub timezone: String,
    pub currency: Option<String>,
    /// `day`, `week` or `month`.
    pub period: String,
    pub from: String,
    pub to: String,
    pub staff_id: Option<Uuid>,
    pub rows: Vec<ReportRowDto>,
    /// Local hours with arrivals, busiest first.
    pub busiest_hours: Vec<HourCountDto>,
}

impl From<Report> for ReportDto {
    fn from(r: Report) -> Self {
        ReportDto {
            timezone: r.timezone,
            currency: r.currency,
            period: match r.period {
                Period::Day => "day",
                Period::Week => "week",
                Period::Month => "month",
            }
            .to_owned(),
            from: r.from,
            to: r.to,
            staff_id: r.staff_id,
            rows: r
                .rows
                .into_iter()
                .map(|x| ReportRowDto {
                    start: x.start,
                    bookings: x.bookings,
                    cancellations: x.cancellations,
                    no_shows: x.no_shows,
                    no_show_rate: x.no_show_rate,
                    completed: x.completed,
                    revenue_cents: x.revenue_cents,
                    busy_minutes: x.busy_minutes,
                    working_minutes: x.working_minutes,
                    utilisation: x.utilisation,
                    walk_ins: x.walk_ins,
                    waits: x.waits,
                    avg_wait_seconds: x.avg_wait_seconds,
                    p90_wait_seconds: x.p90_wait_seconds,
                })
                .collect(),
            busiest_hours: r
                .busiest_hours
                .into_iter()
                .map(|h| HourCountDto {
                    hour: h.hour,
                    arrivals: h.arrivals,
                })
                .collect(),
        }
    }
}

#[utoipa::path(get, path = "/v1/establishments/{id}/plugins/analytics/report", tag = "plugins", security(("bearer" = [])),
    params(("id" = Uuid, Path), ReportParams),
    responses((status = 200, description = "JSON, or CSV (one line per period) with `format=csv`",
            content((ReportDto = "application/json"), (String = "text/csv"))),
        (status = 403, body = ErrorBody), (status = 404, description = "not installed, or unknown staff member", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn analytics_report(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Response, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    if !caller.role.is_member() {
        return Err(ApiError::forbidden());
    }
    require_installed(&view, navaro_plugins::analytics::NAME)?;
    let from = parse_date("from", &params.from)?;
    let to = parse_date("to", &params.to)?;
    let period = match params.period.as_deref() {
        None => Period::Day,
        Some(p) => Period::parse(p)
            .ok_or_else(|| ApiError::invalid("period", "period must be day, week or month"))?,
    };
    let staff_id = params
        .staff_id
        .as_deref()
        .map(|s| {
            s.parse::<Uuid>()
                .map_err(|_| ApiError::invalid("staff_id", "must be a UUID"))
        })
        .transpose()?;
    let csv = match params.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid("format", "format must be json or csv")),
    };
    let plugins = service(&state)?;
    let report = report(&plugins.db, id, from, to, period, staff_id)
        .await
        .map_err(plugin_error)?;
    if csv {
        let headers = [(header::CONTENT_TYPE, "text/csv; charset=utf-8")];
        return Ok((headers, to_csv(&report)).into_response());
    }
    Ok(axum::Json(ReportDto::from(report)).into_response())
}
