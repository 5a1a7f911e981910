//! The epoch fence of a clustered node (docs/cluster.md; migration 0010).
//!
//! A node of a cluster owns some establishments; which ones is decided outside this
//! crate (Redis leases in `navaro-cluster`), and asked through [`OwnershipGate`] before
//! an establishment is loaded. Loading then *claims* it in Postgres: the `owners` row's
//! epoch is bumped and remembered here ([`Epochs`]), and every group commit names, for
//! each of its establishments, the epoch it holds. The database keeps only the rows of
//! establishments whose epoch is still current, in the same transaction as the write,
//! so a node that lost an establishment (paused, partitioned, outvoted) can never make
//! anything durable for it again, whatever the clocks or Redis say. Its callers get a
//! retriable error and its actor stops and reloads, which the gate then refuses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;
use navaro_protocol::EstablishmentId;

/// What a clustered node's journal asks of the cluster layer.
pub trait OwnershipGate: Send + Sync + 'static {
    /// Whether this node may take `id` over now: it owns it already, or may claim it
    /// (nobody live owns it). `Err` says why not (another node owns it, this node's
    /// lease has lapsed); the load then fails with `unavailable`, which is retriable.
    fn admit(&self, id: EstablishmentId) -> BoxFuture<'_, Result<(), String>>;

    /// Whether this node's lease is safely current (renewed recently enough, by the
    /// monotonic clock, that no other node can have taken its establishments over on
    /// lease expiry). While it is not, the writer commits nothing.
    fn writable(&self) -> bool;
}

/// A clustered node's side of the fence: who it is, and what it asks before claiming.
#[derive(Clone)]
pub struct ClusterFence {
    /// This node's `cluster.node_id`, recorded in `owners.node`.
    pub node_id: String,
    pub gate: Arc<dyn OwnershipGate>,
}

impl std::fmt::Debug for ClusterFence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterFence")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// The epoch this node holds for each establishment it has claimed, shared by the
/// journal (which claims on load) and the writers (which name it in each commit).
#[derive(Clone, Default)]
pub(crate) struct Epochs(Arc<Mutex<HashMap<EstablishmentId, i64>>>);

impl Epochs {
    fn lock(&self) -> MutexGuard<'_, HashMap<EstablishmentId, i64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, id: EstablishmentId, epoch: i64) {
        self.lock().insert(id, epoch);
    }

    pub fn get(&self, id: EstablishmentId) -> Option<i64> {
        self.lock().get(&id).copied()
    }

    /// Forget an establishment whose epoch was refused: nothing more is written for it
    /// until it is claimed again.
    pub fn forget(&self, id: EstablishmentId) {
        self.lock().remove(&id);
    }
}

/// The writer's view of the fence.
#[derive(Clone)]
pub(crate) struct WriterFence {
    pub epochs: Epochs,
    pub gate: Arc<dyn OwnershipGate>,
}
