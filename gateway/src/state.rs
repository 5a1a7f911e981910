//! What every handler shares.

use std::sync::Arc;

use navaro_config::Settings;
use tokio::sync::watch;

use crate::auth::{Passwords, TokenKeys};
use crate::engine_api::Engine;
use crate::limits::Limiters;
use crate::live::LiveRegistry;
use crate::stores::Stores;

/// The application state: cheap to clone (handles and `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub engine: Engine,
    pub stores: Stores,
    pub tokens: Arc<TokenKeys>,
    pub passwords: Arc<Passwords>,
    pub limits: Arc<Limiters>,
    /// Flips to `true` when shutdown begins; live connections close with "going away".
    pub shutdown: watch::Receiver<bool>,
    pub live: Arc<LiveRegistry>,
}
