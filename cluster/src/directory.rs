//! Which node owns each establishment, in Redis: `{prefix}:owner:{id}` holds the owning
//! node's id, with no expiry. The entry is only as good as its node's liveness: an
//! establishment whose recorded owner is not live (its node key expired) may be claimed
//! by another node. So an establishment stays with its owner while the owner lives
//! (sticky: a node joining moves nothing), and moves when the owner dies, is paused
//! past its lease, or leaves (and releases its entries).
//!
//! Reads are cached per node: a request for an establishment whose owner is known and
//! live costs no Redis round trip. The cache forgets the entries of a node that stops
//! being live, is corrected by every claim (ours or a refusal naming the owner), and is
//! dropped whole when this node's own lease lapsed or Redis lost its data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dashmap::{DashMap, DashSet};
use navaro_protocol::EstablishmentId;
use redis::aio::ConnectionManager;

use crate::membership::{Membership, node_key};
use crate::placement::place;
use crate::{ClusterConfig, Route};

/// Claim the establishment unless a live node other than this one owns it; the owner
/// after the call.
const CLAIM: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then return cur end
if cur and redis.call('EXISTS', ARGV[2] .. cur) == 1 then return cur end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]";

/// Hand the establishment to another node (ARGV[2]) if this node still owns it.
const HAND_OVER: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end
return 0";

/// Give the establishment up if this node still owns it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

pub struct Directory {
    conn: ConnectionManager,
    me: String,
    prefix: String,
    membership: Arc<Membership>,
    /// Owner of each establishment as last seen.
    cache: DashMap<EstablishmentId, String>,
    /// Establishments this node claimed in the directory.
    owned: DashSet<EstablishmentId>,
    call_timeout: Duration,
    /// Set when this node starts leaving: it claims nothing more, and placement no
    /// longer picks it.
    leaving: AtomicBool,
}

impl Directory {
    pub fn new(
        conn: ConnectionManager,
        config: &ClusterConfig,
        membership: Arc<Membership>,
    ) -> Directory {
        Directory {
            conn,
            me: config.node_id.clone(),
            prefix: config.prefix.clone(),
            membership,
            cache: DashMap::new(),
            owned: DashSet::new(),
            call_timeout: config.lease_ttl / 3,
            leaving: AtomicBool::new(false),
        }
    }

    fn owner_key(&self, id: EstablishmentId) -> String {
        format!("{}:owner:{}", self.prefix, id.0)
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.call_timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("Redis: {e}")),
            Err(_) => Err("no answer from Redis in time".to_owned()),
        }
    }

    /// The recorded owner (cached).
    async fn owner(&self, id: EstablishmentId) -> Result<Option<String>, String> {
        if let Some(owner) = self.cache.get(&id) {
            return Ok(Some(owner.clone()));
        }
        let owner: Option<String> = self
            .bounded(
                redis::cmd("GET")
                    .arg(self.owner_key(id))
                    .query_async(&mut self.conn.clone()),
            )
            .await?;
        if let Some(owner) = &owner {
            self.cache.insert(id, owner.clone());
        }
        Ok(owner)
    }

    /// Where a request for `id` goes: here if this node owns it; to its owner if that
    /// is live; else to the node placement picks among the live ones (which claims it
    /// when it loads it).
    pub async fn route(&self, id: EstablishmentId) -> Route {
        if !self.membership.lease_current() {
            return Route::Unavailable("this node's cluster lease is not current".into());
        }
        let owner = match self.owner(id).await {
            Ok(owner) => owner,
            Err(e) => return Route::Unavailable(e),
        };
        let mut members = self.membership.members();
        if self.is_leaving() {
            members.remove(&self.me);
        }
        let target = match owner {
            Some(owner) if owner == self.me => return Route::Local,
            Some(owner) if members.contains_key(&owner) => owner,
            _ => match place(id, members.keys().map(String::as_str)) {
                Some(node) => node.to_owned(),
                None => return Route::Local,
            },
        };
        if target == self.me {
            return Route::Local;
        }
        match members.get(&target) {
            Some(addr) => Route::Forward {
                node: target,
                addr: addr.clone(),
            },
            None => Route::Unavailable(format!("node {target} has no address")),
        }
    }

    /// The gate before a load: claim `id` for this node unless a live other node owns
    /// it. `Err` names the owner (or why Redis could not tell).
    pub async fn admit(&self, id: EstablishmentId) -> Result<(), String> {
        if !self.membership.lease_current() {
            return Err("this node's cluster lease is not current".into());
        }
        if self.is_leaving() {
            return Err("this node is leaving the cluster".into());
        }
        let owner: String = self
            .bounded(
                redis::Script::new(CLAIM)
                    .key(self.owner_key(id))
                    .arg(&self.me)
                    .arg(node_key(&self.prefix, ""))
                    .invoke_async(&mut self.conn.clone()),
            )
            .await?;
        self.cache.insert(id, owner.clone());
        if owner == self.me {
            self.owned.insert(id);
            Ok(())
        } else {
            self.owned.remove(&id);
            Err(format!("owned by node {owner}"))
        }
    }

    /// Forget what is cached of `id` (a forwarded request was refused by the node
    /// thought to own it).
    pub fn forget(&self, id: EstablishmentId) {
        self.cache.remove(&id);
    }

    /// The members were read again: forget the owners that are no longer live.
    pub fn members_changed(&self, members: &BTreeMap<String, String>) {
        self.cache.retain(|_, owner| members.contains_key(owner));
    }

    /// This node's lease was re-established after a lapse, or Redis lost its data:
    /// drop the cache, and record again as ours what nobody else claimed meanwhile.
    pub async fn rejoined(&self) {
        self.cache.clear();
        let owned: Vec<EstablishmentId> = self.owned.iter().map(|id| *id).collect();
        for id in owned {
            let set: Result<Option<String>, String> = self
                .bounded(
                    redis::cmd("SET")
                        .arg(self.owner_key(id))
                        .arg(&self.me)
                        .arg("NX")
                        .query_async(&mut self.conn.clone()),
                )
                .await;
            match set {
                Ok(Some(_)) => {
                    self.cache.insert(id, self.me.clone());
                }
                _ => {
                    self.owned.remove(&id);
                }
            }
        }
    }

    /// Start leaving: claim nothing more, and place nothing here.
    pub fn set_leaving(&self) {
        self.leaving.store(true, Ordering::SeqCst);
    }

    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::SeqCst)
    }

    /// The establishments this node owns in the directory.
    pub fn owned(&self) -> Vec<EstablishmentId> {
        self.owned.iter().map(|id| *id).collect()
    }

    /// Hand `id` (already passivated here) to the node placement picks among the other
    /// live members, recording it as the owner so that requests go there at once; it
    /// claims it in Postgres (bumping the epoch) when it loads it. With no other member,
    /// release it. The node it went to, if any.
    pub async fn hand_over(&self, id: EstablishmentId) -> Option<String> {
        let members = self.membership.members();
        let others = members.keys().map(String::as_str).filter(|n| *n != self.me);
        let Some(successor) = place(id, others).map(str::to_owned) else {
            self.release(id).await;
            return None;
        };
        let handed: Result<i64, String> = self
            .bounded(
                redis::Script::new(HAND_OVER)
                    .key(self.owner_key(id))
                    .arg(&self.me)
                    .arg(&successor)
                    .invoke_async(&mut self.conn.clone()),
            )
            .await;
        self.owned.remove(&id);
        match handed {
            Ok(_) => {
                self.cache.insert(id, successor.clone());
                Some(successor)
            }
            Err(e) => {
                tracing::warn!(establishment_id = %id, error = %e, "cannot hand an establishment over; it moves when this node's key expires");
                self.cache.remove(&id);
                None
            }
        }
    }

    async fn release(&self, id: EstablishmentId) {
        let released: Result<i64, String> = self
            .bounded(
                redis::Script::new(RELEASE)
                    .key(self.owner_key(id))
                    .arg(&self.me)
                    .invoke_async(&mut self.conn.clone()),
            )
            .await;
        if let Err(e) = released {
            tracing::warn!(establishment_id = %id, error = %e, "cannot release an establishment; it moves when this node's key expires");
        }
        self.owned.remove(&id);
        self.cache.remove(&id);
    }

    /// Give up every establishment this node owns (leaving).
    pub async fn release_all(&self) {
        for id in self.owned() {
            self.release(id).await;
        }
        self.owned.clear();
        self.cache.clear();
    }

    /// How many establishments this node owns in the directory.
    pub fn owned_count(&self) -> usize {
        self.owned.len()
    }
}
