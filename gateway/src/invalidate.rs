//! Cache invalidations across a cluster's nodes (docs/cluster.md, "Caches").
//!
//! Each node caches what it checks on every request: the accounts the platform disabled
//! ([`crate::routes::admin::DisabledUsers`]) and the sessions seen lately
//! ([`crate::sessions::Sessions`]). A disable or a revocation on one node is announced
//! on the bus's control channel, and every node applies it at once. Pub/sub is at most
//! once: after its bus connection was made again a node reads the disabled accounts
//! from the store again, and a session's state is read again at most
//! [`crate::sessions::SESSION_RECHECK`] after it was cached in any case.

use std::sync::{Arc, OnceLock};

use navaro_cluster::{Bus, BusEvent};
use navaro_protocol::UserId;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::state::AppState;

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Invalidation {
    /// One session was revoked (sign out, a refresh token reused).
    Session { session_id: Uuid, user_id: Uuid },
    /// Every session of a user was revoked (sign out everywhere, a password change,
    /// the account erased).
    User { user_id: Uuid },
    /// The platform disabled an account.
    Disabled { user_id: Uuid },
}

/// Where a node announces its invalidations: the bus once the node joined a cluster,
/// nowhere on a single node.
#[derive(Default)]
pub struct Announcer(OnceLock<Arc<Bus>>);

impl Announcer {
    pub fn set(&self, bus: Arc<Bus>) {
        let _ = self.0.set(bus);
    }

    pub fn announce(&self, what: Invalidation) {
        if let Some(bus) = self.0.get()
            && let Ok(payload) = serde_json::to_vec(&what)
        {
            bus.publish_control(payload);
        }
    }
}

/// Apply what other nodes announce, until the process ends.
pub fn spawn_listener(state: AppState) {
    let Some(cluster) = &state.cluster else {
        return;
    };
    let mut control = cluster.bus.control();
    tokio::spawn(async move {
        loop {
            match control.recv().await {
                Ok(BusEvent::Message(payload)) => match serde_json::from_slice(&payload) {
                    Ok(what) => apply(&state, what),
                    Err(_) => tracing::warn!("undecodable invalidation on the bus"),
                },
                Ok(BusEvent::Reconnected) | Err(RecvError::Lagged(_)) => reload(&state).await,
                Err(RecvError::Closed) => return,
            }
        }
    });
}

fn apply(state: &AppState, what: Invalidation) {
    metrics::counter!("navaro_cluster_invalidations_total").increment(1);
    match what {
        Invalidation::Session {
            session_id,
            user_id,
        } => state
            .sessions
            .revoked_elsewhere(session_id, UserId(user_id)),
        Invalidation::User { user_id } => state.sessions.reread_user(UserId(user_id)),
        Invalidation::Disabled { user_id } => state.disabled.insert(UserId(user_id)),
    }
}

/// Some announcements may have been lost: read the disabled accounts again.
async fn reload(state: &AppState) {
    match state.stores.directory.disabled_users().await {
        Ok(ids) => {
            for id in ids {
                state.disabled.insert(UserId(id));
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the disabled accounts again"),
    }
}
