//! What every handler shares.

use std::sync::Arc;

use navaro_config::Settings;
use tokio::sync::watch;

use crate::auth::{Passwords, TokenKeys};
use crate::engine_api::Engine;
use crate::limits::Limiters;
use crate::live::LiveRegistry;
use crate::sessions::Sessions;
use crate::stores::Stores;

/// The application state, shared by every request: one `Arc`, so that the per-request
/// clone (and drop) the router makes is one atomic operation rather than one per handle.
/// Dropping the handles one by one was 1.4% of the server's samples under the mix; the
/// server's CPU per request did not move measurably (108-113 µs before, 110-115 µs after,
/// within the runs' spread). Fields are reached through `Deref`: `state.engine`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds: cheap handles and `Arc`s.
pub struct Shared {
    pub settings: Arc<Settings>,
    pub engine: Engine,
    pub stores: Stores,
    pub tokens: Arc<TokenKeys>,
    pub passwords: Arc<Passwords>,
    pub limits: Arc<Limiters>,
    /// Flips to `true` when shutdown begins; live connections close with "going away".
    pub shutdown: watch::Receiver<bool>,
    pub live: Arc<LiveRegistry>,
    /// Notifications (push, webhooks); `None` on the memory stores or when turned off.
    pub notify: Option<navaro_notify::Notify>,
    /// The plugins (analytics, marketing, ads); `None` on the memory stores or when
    /// turned off.
    pub plugins: Option<navaro_plugins::Plugins>,
    /// Accounts the platform disabled: their tokens are refused.
    pub disabled: Arc<crate::routes::admin::DisabledUsers>,
    /// This node's cluster, when `[cluster]` is enabled: who owns which establishment,
    /// and the connections to forward to them.
    pub cluster: Option<navaro_cluster::Cluster>,
    /// Live events of establishments other nodes own, for this node's subscribers.
    pub relay: Option<Arc<crate::relay::Relay>>,
    /// Establishments moving to other nodes while this one leaves the cluster.
    pub handoff: Arc<crate::handoff::Handoff>,
    /// Zones of establishments other nodes own (for rendering in their offset).
    pub zones: Arc<crate::live_remote::ZoneCache>,
    /// Sign-in sessions: refresh tokens and the revocation check of access tokens.
    pub sessions: Arc<Sessions>,
    /// The payment provider and its bookkeeping; `None` when `payments.provider` is
    /// `none` (checkouts are refused).
    pub payments: Option<Arc<crate::payments::PaymentService>>,
}
