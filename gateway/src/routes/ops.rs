//! Health, readiness, metrics, the OpenAPI document and the interactive docs page.
//!
//! The docs page is Swagger UI served from files vendored into the binary
//! (`gateway/assets/swagger-ui`), so it works with no internet access.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::dto::StatusResponse;
use crate::state::AppState;

/// The operational routes (no rate limit, no auth).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
        .route("/docs/", get(docs))
        .route("/docs/init.js", get(docs_init))
        .route("/docs/swagger-ui-bundle.js", get(docs_bundle))
        .route("/docs/swagger-ui.css", get(docs_css))
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "the process is up", body = StatusResponse)))]
pub async fn healthz() -> Json<StatusResponse> {
    Json(StatusResponse {
        status: "ok".to_owned(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "the store is reachable", body = StatusResponse),
        (status = 503, description = "the store is not reachable", body = StatusResponse)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<StatusResponse>) {
    if state.stores.ready().await {
        (
            StatusCode::OK,
            Json(StatusResponse {
                status: "ready".to_owned(),
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(StatusResponse {
                status: "store unreachable".to_owned(),
            }),
        )
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // Sampled at each scrape: the age of the journal's oldest unanswered append (past
    // the engine's `max_journal_lag`, commands are refused with `overloaded`).
    metrics::gauge!("navaro_journal_lag_seconds").set(state.engine.journal_lag().as_secs_f64());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::render_metrics(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "this document")))]
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document(),
    )
        .into_response()
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

pub async fn docs() -> Response {
    asset(
        "text/html; charset=utf-8",
        include_bytes!("../../assets/docs.html"),
    )
}

pub async fn docs_init() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/docs-init.js"),
    )
}

pub async fn docs_bundle() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js"),
    )
}

pub async fn docs_css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/swagger-ui.css"),
    )
}
