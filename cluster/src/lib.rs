//! Navaro's cluster: several `navaro` nodes on one Postgres and one Redis, each
//! establishment owned by exactly one node at a time (docs/cluster.md).
//!
//! How the modules fit. [`membership`] keeps this node live in Redis (a key with a TTL,
//! renewed every third of it) and reads which other nodes are; it also keeps, by the
//! monotonic clock, the instant until which this node's lease is safely current. The
//! [`directory`] records in Redis which node owns each establishment; an establishment
//! whose owner is not live is claimed by the node that [`placement`] (rendezvous
//! hashing over the live members) picks. [`Cluster`] answers the gateway's one question,
//! [`Cluster::route`]: serve this establishment here, or forward to which node. It is
//! also the persistence crate's [`navaro_persistence::OwnershipGate`]: nothing is loaded
//! (and so claimed in Postgres) that the directory does not give this node, and nothing
//! is committed while the lease is not current. [`wire`] and [`forward`] carry a request
//! to its owner over one persistent TCP connection per peer (MessagePack frames), and
//! [`server`] takes them on the other side.
//!
//! Safety does not rest here. Redis says who *should* own an establishment; the epoch
//! fence in Postgres (`navaro_persistence::fence`) says who *does*, so a paused or
//! partitioned node whose lease lapsed can never commit.

pub mod bus;
pub mod directory;
pub mod forward;
pub mod membership;
pub mod placement;
pub mod server;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use navaro_protocol::EstablishmentId;

pub use bus::{Bus, BusEvent};
pub use directory::Directory;
pub use forward::{ForwardError, Peers};
pub use membership::Membership;
pub use server::{Handler, InternalServer};
pub use wire::{Frame, RequestHead, ResponseHead};

/// What a node is told at start-up.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub node_id: String,
    /// The address the other nodes forward to.
    pub advertise: String,
    pub redis_url: String,
    pub prefix: String,
    pub lease_ttl: Duration,
    pub lease_margin: Duration,
    pub forward_timeout: Duration,
}

/// Why the cluster could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach Redis at cluster.redis_url: {0}")]
    Redis(String),
    #[error(
        "cluster.node_id {0:?} is already live (another node runs with it, or one that just stopped has not expired yet)"
    )]
    NodeIdLive(String),
    #[error("cannot bind cluster.internal_listen {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

impl From<redis::RedisError> for ClusterError {
    fn from(e: redis::RedisError) -> Self {
        ClusterError::Redis(e.to_string())
    }
}

/// Where a request for an establishment goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Serve it here (this node owns it, or is the one to claim it).
    Local,
    /// Forward it to this node, at this address.
    Forward { node: String, addr: String },
    /// This node cannot tell (its lease is not current, Redis does not answer): answer
    /// a retriable error.
    Unavailable(String),
}

/// The handle the gateway holds.
#[derive(Clone)]
pub struct Cluster {
    pub membership: Arc<Membership>,
    pub directory: Arc<Directory>,
    pub peers: Arc<Peers>,
    /// Live events across nodes (Redis pub/sub).
    pub bus: Arc<Bus>,
    pub config: ClusterConfig,
}

impl Cluster {
    /// Join: connect to Redis (refusing to start if it cannot be reached), register this
    /// node (refusing if its id is live already), and start renewing.
    pub async fn join(config: ClusterConfig) -> Result<Cluster, ClusterError> {
        let client = redis::Client::open(config.redis_url.as_str())?;
        let connect = redis::aio::ConnectionManager::new(client.clone());
        let conn = tokio::time::timeout(config.lease_ttl, connect)
            .await
            .map_err(|_| ClusterError::Redis("no answer within the lease TTL".into()))??;
        let membership = Arc::new(Membership::new(conn.clone(), &config));
        membership.register().await?;
        let bus = Bus::start(client, conn.clone(), &config.prefix, config.lease_ttl / 3);
        let directory = Arc::new(Directory::new(conn, &config, membership.clone()));
        let peers = Arc::new(Peers::new(config.forward_timeout));
        membership
            .clone()
            .spawn_renewal(directory.clone(), peers.clone());
        tracing::info!(node = %config.node_id, advertise = %config.advertise, "joined the cluster");
        Ok(Cluster {
            membership,
            directory,
            peers,
            bus,
            config,
        })
    }

    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// Where a request for `id` goes (see [`Directory::route`]).
    pub async fn route(&self, id: EstablishmentId) -> Route {
        self.directory.route(id).await
    }

    /// Leave: stop renewing, give up every establishment this node owns in the
    /// directory (they are claimed at once by whichever node next gets a request for
    /// them) and remove this node's key. Called after the engine passivated everything
    /// (so the group commits are flushed and snapshots taken).
    pub async fn leave(&self) {
        self.membership.stop_renewing();
        self.directory.release_all().await;
        self.membership.deregister().await;
        tracing::info!(node = %self.config.node_id, "left the cluster");
    }
}

impl navaro_persistence::OwnershipGate for Cluster {
    fn admit(&self, id: EstablishmentId) -> BoxFuture<'_, Result<(), String>> {
        async move { self.directory.admit(id).await }.boxed()
    }

    fn writable(&self) -> bool {
        self.membership.lease_current()
    }
}
