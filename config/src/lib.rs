//! Navaro's typed settings.
//!
//! [`Settings`] is everything the `navaro` binary can be told, in one tree of structs
//! with a default for every field, so that `cargo run` works with no file at all. It is
//! loaded by [`Settings::load`] from an optional TOML file and then from `NAVARO_*`
//! environment variables (nested keys joined with `__`, as in `NAVARO_HTTP__LISTEN`;
//! `NAVARO_DATABASE_URL` and `NAVARO_DATA_DIR` are top level). Unknown keys are an error
//! rather than silently ignored, because a misspelt limit is a limit not applied.
//! [`Settings::validate`] refuses configurations that must never run in production, the
//! default signing key above all. Secrets are held in [`Secret`], whose `Debug` is
//! redacted, so logging the settings never logs a key.

mod secret;
mod settings;

pub use secret::Secret;
pub use settings::*;

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};

/// Why settings could not be loaded or are unsafe to run with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable does not parse, names an unknown key, or has
    /// a value of the wrong type. Figment's message names the key and where it came from.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// The signing key is the built-in development key, outside dev mode.
    #[error(
        "refusing to start outside dev mode with the default signing key: set auth.signing_key (NAVARO_AUTH__SIGNING_KEY__SECRET)"
    )]
    DefaultSigningKey,
    /// A key is too short to be a safe HMAC secret.
    #[error("auth key {kid:?} is shorter than {min} bytes")]
    WeakKey { kid: String, min: usize },
    /// Two keys share a `kid`, so a token's key could not be told apart.
    #[error("auth key id {0:?} is used by more than one key")]
    DuplicateKid(String),
    /// A value is out of its allowed range.
    #[error("invalid configuration: {field}: {reason}")]
    OutOfRange { field: &'static str, reason: String },
}

/// The environment variable naming the configuration file.
pub const CONFIG_FILE_ENV: &str = "NAVARO_CONFIG";

impl Settings {
    /// Load from `file` (if given and present, else from `$NAVARO_CONFIG` if set), then
    /// `NAVARO_*` environment variables, over the defaults; then [`Settings::validate`].
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new();
        let env_file = std::env::var_os(CONFIG_FILE_ENV);
        if let Some(path) = file.or(env_file.as_deref().map(Path::new)) {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(Self::env_provider());
        Self::from_figment(figment)
    }

    /// The environment provider: `NAVARO_` prefix, `__` between nested keys, and the
    /// variable that names the file left out.
    pub fn env_provider() -> Env {
        Env::prefixed("NAVARO_").split("__").ignore(&["config"])
    }

    /// Extract and validate settings from any figment (tests build their own).
    pub fn from_figment(figment: Figment) -> Result<Settings, ConfigError> {
        let settings: Settings = figment.extract().map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests;
