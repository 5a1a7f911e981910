//! Navaro's plugins: the boundary a plugin is written against, and the three that ship.
//!
//! A plugin is a module of the binary. It has:
//! - settings, validated here when an owner installs it; the installation itself is a
//!   command to the establishment's actor and a `plugin.installed` event in its journal
//!   (so the Pro apps see it live, and every plugin sees it in order with the rest);
//! - a consumer of the establishment's events ([`boundary::Plugin::on_event`]), run by
//!   the same [`navaro_notify::ConsumerRunner`] notifications use: at least once, from a
//!   durable checkpoint, off the booking path, its statements applied in one transaction
//!   with the checkpoint's move so nothing is counted twice, with a panic guard and a time
//!   limit so a failing or hanging plugin only delays itself, and is retried;
//! - its routes under `/v1/establishments/{id}/plugins/{name}/...`, in the gateway
//!   (`gateway/src/routes/plugins/`), which call the plugin's queries here.
//!
//! [`boundary`] holds the trait and the adapter that turns a plugin into a consumer;
//! [`runtime`] starts one runner per plugin; [`analytics`], [`marketing`] and [`ads`]
//! are the plugins; [`sql`] runs a statement on either database. `docs/plugins.md` shows
//! how to add a fourth.

pub mod ads;
pub mod analytics;
pub mod analytics_report;
pub mod boundary;
pub mod marketing;
pub mod runtime;
pub mod sql;

pub use boundary::{EventContext, Plugin, PluginConsumer};

pub use runtime::{PluginOptions, Plugins};

/// The plugins this binary ships, by name.
pub const NAMES: [&str; 3] = [analytics::NAME, marketing::NAME, ads::NAME];

/// Why a plugin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// A request field is wrong; the field and a message for the client.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
    /// A promotion code that cannot be used now (unknown, inactive, outside its dates).
    #[error("promotion unavailable: {0}")]
    PromotionUnavailable(String),
    #[error("plugin store: {0}")]
    Store(String),
}

impl PluginError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> PluginError {
        PluginError::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for PluginError {
    fn from(e: sqlx::Error) -> Self {
        PluginError::Store(e.to_string())
    }
}

/// The settings of plugin `name`, validated and normalised, or why they are refused.
pub fn validate_settings(
    name: &str,
    raw: &serde_json::Value,
) -> Result<serde_json::Value, PluginError> {
    match name {
        analytics::NAME => analytics::Analytics.settings(raw),
        marketing::NAME => marketing::Marketing.settings(raw),
        ads::NAME => ads::Ads.settings(raw),
        _ => Err(PluginError::NotFound("plugin")),
    }
}

/// Settings for a plugin that takes none: an empty object, and nothing else.
pub(crate) fn no_settings(raw: &serde_json::Value) -> Result<serde_json::Value, PluginError> {
    match raw.as_object() {
        Some(map) if map.is_empty() => Ok(serde_json::json!({})),
        Some(map) => Err(PluginError::invalid(
            "settings",
            format!(
                "unknown setting {:?}: this plugin takes none",
                map.keys().next().map_or("", String::as_str)
            ),
        )),
        None => Err(PluginError::invalid(
            "settings",
            "settings must be an object",
        )),
    }
}
