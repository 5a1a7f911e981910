//! Handing establishments to other nodes when this one is stopped (SIGTERM, a rolling
//! deploy), so that clients see no error (docs/cluster.md, "Leaving").
//!
//! On the stop signal, while the listeners drain, [`hand_off_all`]: the directory stops
//! claiming and placing anything here; then, for each establishment this node owns,
//! requests for it are held at the routing layer ([`Handoff::enter`] refuses, and
//! [`Handoff::wait`] holds them), the ones already inside finish, the engine settles
//! and snapshots it (flushing its group commit) and stops its actor, and the directory
//! records the successor that placement picks. The held requests are then routed
//! again: a client's is forwarded to the successor; a forwarded one is answered
//! `x-navaro-not-owner`, which makes the forwarding node route again and send it to
//! the successor (it retries once). No command is cut off half-way: one that reached
//! the establishment's actor is answered before the actor stops; one that did not is
//! routed to the successor.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use navaro_protocol::EstablishmentId;

use crate::state::AppState;

/// The longest a request is held while its establishment moves, and the longest a move
/// waits for the requests already inside.
pub const HOLD: Duration = Duration::from_secs(5);
/// Establishments moved at once.
const CONCURRENT_MOVES: usize = 16;

/// Requests inside the router per establishment, and the establishments moving.
#[derive(Default)]
pub struct Handoff {
    state: Mutex<(HashMap<EstablishmentId, usize>, HashSet<EstablishmentId>)>,
}

/// A request inside the router for an establishment; counted until dropped.
pub struct Inside<'a> {
    handoff: &'a Handoff,
    id: EstablishmentId,
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        let mut state = self.handoff.lock();
        if let Some(n) = state.0.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                state.0.remove(&self.id);
            }
        }
    }
}

impl Handoff {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, (HashMap<EstablishmentId, usize>, HashSet<EstablishmentId>)>
    {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count a request in, unless its establishment is moving (`None`: hold it with
    /// [`Handoff::wait`] and route it again).
    pub fn enter(&self, id: EstablishmentId) -> Option<Inside<'_>> {
        let mut state = self.lock();
        if state.1.contains(&id) {
            return None;
        }
        *state.0.entry(id).or_default() += 1;
        Some(Inside { handoff: self, id })
    }

    /// Wait until `id` is no longer moving (at most [`HOLD`]).
    pub async fn wait(&self, id: EstablishmentId) {
        let deadline = Instant::now() + HOLD;
        while self.lock().1.contains(&id) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Mark `id` moving and wait until no request is inside for it (at most [`HOLD`]).
    async fn start_moving(&self, id: EstablishmentId) {
        self.lock().1.insert(id);
        let deadline = Instant::now() + HOLD;
        while self.lock().0.contains_key(&id) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn done_moving(&self, id: EstablishmentId) {
        self.lock().1.remove(&id);
    }
}

/// Hand every establishment this node owns to another node (see the module's doc).
/// How many moved, and how long it took.
pub async fn hand_off_all(state: &AppState) -> (usize, Duration) {
    let Some(cluster) = &state.cluster else {
        return (0, Duration::ZERO);
    };
    let started = Instant::now();
    cluster.directory.set_leaving();
    let owned = cluster.directory.owned();
    let count = owned.len();
    futures::stream::iter(owned)
        .for_each_concurrent(CONCURRENT_MOVES, |id| async move {
            state.handoff.start_moving(id).await;
            if !state.engine.passivate(id, HOLD).await {
                tracing::warn!(establishment_id = %id, "did not settle in time; handing it over anyway (the epoch fence refuses what it commits late)");
            }
            let to = cluster.directory.hand_over(id).await;
            state.handoff.done_moving(id);
            tracing::debug!(establishment_id = %id, to = ?to, "handed over");
        })
        .await;
    let took = started.elapsed();
    metrics::histogram!("navaro_cluster_handoff_seconds").record(took.as_secs_f64());
    tracing::info!(
        establishments = count,
        took_ms = took.as_millis() as u64,
        "handed every establishment to other nodes"
    );
    (count, took)
}
