//! Plugins: installing and uninstalling them per establishment, and each plugin's own
//! routes under `/v1/establishments/{id}/plugins/{name}/...`.
//!
//! Installation is a command to the establishment's actor (owners only), so it is an
//! event in the journal: the Pro apps see `plugin.installed` / `plugin.uninstalled` on
//! the live feed, and every plugin's consumer sees it in order. A plugin's routes answer
//! 404 `not_found` while it is not installed. The plugins' work is the
//! `navaro-plugins` crate's; these routes answer 503 `unavailable` when the server runs
//! without it (memory stores).

pub mod ads;
pub mod analytics;
pub mod marketing;

use axum::Json;
use axum::extract::State;
use navaro_engine::View;
use navaro_plugins::{PluginError, Plugins};
use navaro_protocol::{Command, ErrorCode, PromotionTerms, Reply};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::dto::est;
use crate::error::{ApiError, ErrorBody};
use crate::routes::establishments::{execute, manager, resolve};
use crate::state::AppState;
use crate::wire::{ApiJson, ApiPath, IdempotencyKey};

/// The running plugins, or 503 when this server runs without them.
pub(crate) fn service(state: &AppState) -> Result<&Plugins, ApiError> {
    state.plugins.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unavailable,
            "plugins are not enabled on this server",
        )
    })
}

/// A plugin error as an answer.
pub(crate) fn plugin_error(e: PluginError) -> ApiError {
    match e {
        PluginError::Invalid { field, message } => ApiError::invalid(field, message),
        PluginError::NotFound(what) => ApiError::not_found(what),
        PluginError::Conflict(message) => ApiError::new(ErrorCode::Conflict, message),
        PluginError::PromotionUnavailable(message) => {
            let mut error = ApiError::new(ErrorCode::PromotionUnavailable, message);
            error.rejection.field = Some("promotion_code".into());
            error
        }
        PluginError::Store(cause) => ApiError::unavailable(cause),
    }
}

/// Refused with 404 unless plugin `name` is installed at this establishment.
pub(crate) fn require_installed(view: &View, name: &str) -> Result<(), ApiError> {
    if view.state().plugins.contains_key(name) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::NotFound,
            format!("the {name} plugin is not installed here"),
        ))
    }
}

/// The terms of a promotion code for a booking at this establishment now.
pub(crate) async fn promotion_terms(
    state: &AppState,
    view: &View,
    code: &str,
) -> Result<PromotionTerms, ApiError> {
    let unavailable =
        |message: &str| plugin_error(PluginError::PromotionUnavailable(message.to_owned()));
    if !view
        .state()
        .plugins
        .contains_key(navaro_plugins::marketing::NAME)
    {
        return Err(unavailable("this establishment takes no promotion codes"));
    }
    if navaro_plugins::marketing::normalise_code(code).is_err() {
        return Err(unavailable("unknown promotion code"));
    }
    let plugins = service(state)?;
    navaro_plugins::marketing::terms_for(&plugins.db, view.id().0, code, state.engine.now())
        .await
        .map_err(plugin_error)
}

/// A plugin and whether it is installed here.
#[derive(Serialize, ToSchema)]
pub struct PluginDto {
    /// `analytics`, `marketing` or `ads`.
    pub name: String,
    pub installed: bool,
    /// The settings it is installed with (absent while not installed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct PluginsDto {
    /// Every plugin this server ships, installed or not.
    pub plugins: Vec<PluginDto>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// The plugin's settings; the shipped plugins take none (`{}`, the default).
    #[schema(schema_with = no_settings_schema)]
    pub settings: Option<serde_json::Value>,
}

/// The settings the shipped plugins take: none, so an object without properties.
fn no_settings_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .description(Some("the shipped plugins take no settings: `{}`"))
        .build()
}

fn known(name: &str) -> Result<(), ApiError> {
    if navaro_plugins::NAMES.contains(&name) {
        Ok(())
    } else {
        Err(ApiError::not_found("plugin"))
    }
}

#[utoipa::path(get, path = "/v1/establishments/{id}/plugins", tag = "plugins", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PluginsDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_plugins(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<PluginsDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    if !caller.role.is_member() {
        return Err(ApiError::forbidden());
    }
    let installed = &view.state().plugins;
    let plugins = navaro_plugins::NAMES
        .iter()
        .map(|name| PluginDto {
            name: (*name).to_owned(),
            installed: installed.contains_key(*name),
            settings: installed.get(*name).cloned(),
        })
        .collect();
    Ok(Json(PluginsDto { plugins }))
}

#[utoipa::path(put, path = "/v1/establishments/{id}/plugins/{name}", tag = "plugins", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("name" = String, Path, description = "analytics, marketing or ads")),
    request_body = InstallRequest,
    responses((status = 200, description = "installed (or its settings changed); `plugin.installed` on the live feed", body = PluginDto),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn install_plugin(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, name)): ApiPath<(Uuid, String)>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<InstallRequest>,
) -> Result<Json<PluginDto>, ApiError> {
    known(&name)?;
    let (view, caller) = manager(&state, &auth, est(id)).await?;
    let raw = body.settings.unwrap_or_else(|| serde_json::json!({}));
    let settings = navaro_plugins::validate_settings(&name, &raw).map_err(plugin_error)?;
    if view.state().plugins.get(&name) == Some(&settings) {
        // Already so: PUT is idempotent, no second event.
        return Ok(Json(PluginDto {
            name,
            installed: true,
            settings: Some(settings),
        }));
    }
    let command = Command::InstallPlugin { name, settings };
    plugin_reply(execute(&state, est(id), caller, command, key).await?)
}

#[utoipa::path(delete, path = "/v1/establishments/{id}/plugins/{name}", tag = "plugins", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("name" = String, Path, description = "analytics, marketing or ads")),
    responses((status = 200, description = "uninstalled; `plugin.uninstalled` on the live feed", body = PluginDto),
        (status = 403, body = ErrorBody), (status = 404, description = "unknown or not installed", body = ErrorBody)))]
pub async fn uninstall_plugin(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, name)): ApiPath<(Uuid, String)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Json<PluginDto>, ApiError> {
    known(&name)?;
    let (_, caller) = manager(&state, &auth, est(id)).await?;
    let command = Command::UninstallPlugin { name };
    plugin_reply(execute(&state, est(id), caller, command, key).await?)
}

fn plugin_reply(reply: Reply) -> Result<Json<PluginDto>, ApiError> {
    match reply {
        Reply::Plugin { name, settings } => Ok(Json(PluginDto {
            name,
            installed: settings.is_some(),
            settings,
        })),
        _ => Err(ApiError::internal(
            "unexpected engine reply to a plugin command",
        )),
    }
}
