//! This node's liveness in Redis, the live members, and the lease by the monotonic clock.
//!
//! A node is live while its key `{prefix}:node:{id}` exists. The key holds the node's
//! advertised address and a per-process instance id, and expires after the lease TTL
//! unless renewed; the node renews it every third of the TTL. Each renewal that Redis
//! acknowledges moves the instant until which the lease counts as *current* to the
//! renewal's send time plus the TTL minus a margin, on this process's monotonic clock:
//! since the key cannot expire in Redis before the TTL has run from the moment Redis set
//! it (which is after we sent it), a node whose lease is current still holds its key,
//! and a node that stops hearing from Redis stops writing before its key can expire
//! and its establishments be claimed elsewhere. (That is only liveness: the fence in
//! Postgres is what keeps a node that got it wrong from committing.)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use crate::directory::Directory;
use crate::forward::Peers;
use crate::{ClusterConfig, ClusterError};

/// Most node keys read per SCAN step. A cluster has a handful of nodes; this only
/// bounds one reply if the prefix is shared with something else by mistake.
const SCAN_COUNT: usize = 100;

/// Renew the key if it is ours or gone (Redis restarted, flushed, or the key expired
/// while this node was paused): 1 renewed, 2 created again; 0 if another process holds
/// this node id now.
const RENEW: &str = r"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
elseif v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0";

/// Delete the key only if it is still ours.
const DEREGISTER: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

pub struct Membership {
    conn: ConnectionManager,
    node_id: String,
    /// `addr|instance`: what this process writes in its key.
    value: String,
    key: String,
    prefix: String,
    ttl: Duration,
    margin: Duration,
    origin: Instant,
    /// Microseconds after `origin` until which the lease is current, plus one; 0: never.
    current_until_us: AtomicU64,
    /// Live nodes (this one included) and their addresses, as last read.
    members: RwLock<BTreeMap<String, String>>,
    stopped: AtomicBool,
}

impl Membership {
    pub fn new(conn: ConnectionManager, config: &ClusterConfig) -> Membership {
        Membership {
            conn,
            node_id: config.node_id.clone(),
            value: format!("{}|{}", config.advertise, uuid::Uuid::new_v4().simple()),
            key: node_key(&config.prefix, &config.node_id),
            prefix: config.prefix.clone(),
            ttl: config.lease_ttl,
            margin: config.lease_margin,
            origin: Instant::now(),
            current_until_us: AtomicU64::new(0),
            members: RwLock::new(BTreeMap::new()),
            stopped: AtomicBool::new(false),
        }
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A Redis call bounded by a third of the TTL: a renewal that takes longer is as
    /// good as lost.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ClusterError> {
        tokio::time::timeout(self.ttl / 3, call)
            .await
            .map_err(|_| ClusterError::Redis("no answer from Redis in time".into()))?
            .map_err(ClusterError::from)
    }

    /// Create this node's key; refuse if the id is live already.
    pub async fn register(&self) -> Result<(), ClusterError> {
        let sent = Instant::now();
        let set: Option<String> = self
            .bounded(
                redis::cmd("SET")
                    .arg(&self.key)
                    .arg(&self.value)
                    .arg("NX")
                    .arg("PX")
                    .arg(self.ttl.as_millis() as u64)
                    .query_async(&mut self.conn()),
            )
            .await?;
        if set.is_none() {
            return Err(ClusterError::NodeIdLive(self.node_id.clone()));
        }
        self.renewed_at(sent);
        self.refresh_members().await?;
        Ok(())
    }

    fn renewed_at(&self, sent: Instant) {
        let until = sent.saturating_duration_since(self.origin) + self.ttl - self.margin;
        self.current_until_us
            .fetch_max(until.as_micros() as u64 + 1, Ordering::AcqRel);
    }

    /// Whether this node's lease is current (see the module's doc).
    pub fn lease_current(&self) -> bool {
        if self.stopped.load(Ordering::Acquire) {
            return false;
        }
        let until = self.current_until_us.load(Ordering::Acquire);
        until != 0 && (self.origin.elapsed().as_micros() as u64) < until - 1
    }

    /// The live nodes and their addresses.
    pub fn members(&self) -> BTreeMap<String, String> {
        self.members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Read the live nodes (SCAN over the node keys, then their values).
    pub async fn refresh_members(&self) -> Result<BTreeMap<String, String>, ClusterError> {
        let pattern = format!("{}:node:*", self.prefix);
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, page): (u64, Vec<String>) = self
                .bounded(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut self.conn()),
                )
                .await?;
            keys.extend(page);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let mut members = BTreeMap::new();
        if !keys.is_empty() {
            let values: Vec<Option<String>> = self
                .bounded(redis::cmd("MGET").arg(&keys).query_async(&mut self.conn()))
                .await?;
            let skip = format!("{}:node:", self.prefix).len();
            for (key, value) in keys.iter().zip(values) {
                if let Some(value) = value {
                    let addr = value.split('|').next().unwrap_or_default().to_owned();
                    members.insert(key[skip..].to_owned(), addr);
                }
            }
        }
        *self.members.write().unwrap_or_else(|e| e.into_inner()) = members.clone();
        Ok(members)
    }

    /// Renew once; what happened.
    async fn renew(&self) -> Result<i64, ClusterError> {
        let sent = Instant::now();
        let outcome: i64 = self
            .bounded(
                redis::Script::new(RENEW)
                    .key(&self.key)
                    .arg(&self.value)
                    .arg(self.ttl.as_millis() as u64)
                    .invoke_async(&mut self.conn()),
            )
            .await?;
        if outcome != 0 {
            self.renewed_at(sent);
        }
        Ok(outcome)
    }

    /// Renew every third of the TTL until [`Membership::stop_renewing`], and read the
    /// members each time.
    pub fn spawn_renewal(self: Arc<Self>, directory: Arc<Directory>, peers: Arc<Peers>) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.ttl / 3);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if self.stopped.load(Ordering::Acquire) {
                    return;
                }
                let was_current = self.lease_current();
                match self.renew().await {
                    Ok(1) if was_current => {}
                    Ok(1 | 2) => {
                        // The key was gone (Redis lost it) or this node's lease had
                        // lapsed (paused): what it cached may be stale, and others may
                        // have claimed its establishments meanwhile.
                        tracing::warn!(node = %self.node_id, "lease re-established after a lapse or a Redis restart");
                        metrics::counter!("navaro_cluster_rejoins_total").increment(1);
                        directory.rejoined().await;
                    }
                    Ok(_) => {
                        tracing::error!(node = %self.node_id, "another process holds this node id; this node stops writing");
                        self.current_until_us.store(0, Ordering::Release);
                    }
                    Err(e) => {
                        tracing::warn!(node = %self.node_id, error = %e, "lease renewal failed");
                        metrics::counter!("navaro_cluster_renewals_failed_total").increment(1);
                    }
                }
                match self.refresh_members().await {
                    Ok(members) => {
                        directory.members_changed(&members);
                        let live: Vec<&str> = members.values().map(String::as_str).collect();
                        peers.retain(&live);
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read the cluster's members"),
                }
            }
        });
    }

    /// Stop renewing and stop counting the lease as current (leaving).
    pub fn stop_renewing(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// Remove this node's key if it is still this process's.
    pub async fn deregister(&self) {
        let removed: Result<i64, _> = self
            .bounded(
                redis::Script::new(DEREGISTER)
                    .key(&self.key)
                    .arg(&self.value)
                    .invoke_async(&mut self.conn()),
            )
            .await;
        if let Err(e) = removed {
            tracing::warn!(error = %e, "cannot remove this node's key; it expires by itself");
        }
    }
}

/// The key of a node.
pub fn node_key(prefix: &str, node: &str) -> String {
    format!("{prefix}:node:{node}")
}
