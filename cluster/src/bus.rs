//! Cross-node events over Redis pub/sub: the owner of an establishment publishes each
//! durable event on `{prefix}:live:{id}`; a node with live subscribers of an
//! establishment it does not own listens on that channel.
//!
//! Redis pub/sub is at most once: a message published while a listener's connection is
//! down, or dropped because a publisher's queue was full or its connection broke, is
//! gone. So this module only carries bytes and says when something may have been lost:
//! every listener gets [`BusEvent::Reconnected`] after its connection was (re)made and
//! its channels subscribed again. The gateway (`gateway/src/relay.rs`) numbers events
//! by the establishment's seq and fills any gap from the journal, which is the truth.
//!
//! One subscriber connection per node, made again after it breaks (a Redis restart,
//! `CLIENT KILL TYPE pubsub`, a network cut noticed by a ping that is not answered);
//! publishing goes through the node's shared multiplexed connection, pipelined.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use navaro_protocol::EstablishmentId;
use redis::aio::{ConnectionManager, PubSubSink};
use tokio::sync::{Mutex, broadcast, mpsc};

/// Events queued for publishing before new ones are dropped (and counted): a Redis that
/// does not keep up must not grow the owner's memory. Listeners recover a dropped event
/// from the journal.
const PUBLISH_QUEUE: usize = 65_536;
/// Most PUBLISH commands in one pipeline.
const PUBLISH_BATCH: usize = 256;
/// Control messages (cache invalidations) buffered for the node's listener.
const CONTROL_BUFFER: usize = 4096;
/// Wait between attempts to make the subscriber connection again.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);

/// What a listener of one establishment receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// A message as published.
    Message(Vec<u8>),
    /// The subscriber connection was (re)made: messages may have been lost meanwhile.
    Reconnected,
}

struct Listener {
    token: u64,
    tx: mpsc::UnboundedSender<BusEvent>,
}

/// Listeners and the current subscriber connection's sink, changed under one lock so
/// that SUBSCRIBE and UNSUBSCRIBE reach Redis in the order they were decided.
#[derive(Default)]
struct Registry {
    listeners: HashMap<EstablishmentId, Listener>,
    sink: Option<PubSubSink>,
}

pub struct Bus {
    client: redis::Client,
    prefix: String,
    registry: Mutex<Registry>,
    next_token: AtomicU64,
    publish: mpsc::Sender<(String, Vec<u8>)>,
    ping_every: Duration,
    /// Messages of the node-wide control channel (`{prefix}:control`), and
    /// [`BusEvent::Reconnected`] after each (re)connection.
    control: broadcast::Sender<BusEvent>,
}

impl Bus {
    /// Start the publisher and the subscriber connection's task.
    pub fn start(
        client: redis::Client,
        conn: ConnectionManager,
        prefix: &str,
        ping_every: Duration,
    ) -> Arc<Bus> {
        let (publish, queue) = mpsc::channel(PUBLISH_QUEUE);
        let bus = Arc::new(Bus {
            client,
            prefix: prefix.to_owned(),
            registry: Mutex::new(Registry::default()),
            next_token: AtomicU64::new(1),
            publish,
            ping_every,
            control: broadcast::channel(CONTROL_BUFFER).0,
        });
        tokio::spawn(publisher(conn, queue));
        tokio::spawn(bus.clone().subscriber());
        bus
    }

    fn channel(&self, id: EstablishmentId) -> String {
        format!("{}:live:{}", self.prefix, id.0)
    }

    /// Publish `payload` for `id`, at most once, without waiting.
    pub fn publish(&self, id: EstablishmentId, payload: Vec<u8>) {
        if self.publish.try_send((self.channel(id), payload)).is_err() {
            metrics::counter!("navaro_cluster_bus_dropped_total").increment(1);
        }
    }

    fn control_channel(&self) -> String {
        format!("{}:control", self.prefix)
    }

    /// Publish a node-wide control message (a cache invalidation), at most once.
    pub fn publish_control(&self, payload: Vec<u8>) {
        if self
            .publish
            .try_send((self.control_channel(), payload))
            .is_err()
        {
            metrics::counter!("navaro_cluster_bus_dropped_total").increment(1);
        }
    }

    /// The control channel's messages, and [`BusEvent::Reconnected`] when some may have
    /// been lost.
    pub fn control(&self) -> broadcast::Receiver<BusEvent> {
        self.control.subscribe()
    }

    /// Listen on `id`'s channel (replacing an earlier listener of it). Returns the
    /// token that [`Bus::unlisten`] takes. Subscribed when this returns if the
    /// subscriber connection is up; otherwise as soon as it is made again (and then the
    /// listener gets [`BusEvent::Reconnected`]).
    pub async fn listen(&self, id: EstablishmentId, tx: mpsc::UnboundedSender<BusEvent>) -> u64 {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let mut registry = self.registry.lock().await;
        registry.listeners.insert(id, Listener { token, tx });
        if let Some(sink) = registry.sink.as_mut()
            && let Err(e) = sink.subscribe(self.channel(id)).await
        {
            tracing::warn!(establishment_id = %id, error = %e, "cannot subscribe; done when the connection is made again");
        }
        token
    }

    /// Stop listening on `id`'s channel, if `token`'s listener is still the one.
    pub async fn unlisten(&self, id: EstablishmentId, token: u64) {
        let mut registry = self.registry.lock().await;
        if registry.listeners.get(&id).is_none_or(|l| l.token != token) {
            return;
        }
        registry.listeners.remove(&id);
        if let Some(sink) = registry.sink.as_mut() {
            let _ = sink.unsubscribe(self.channel(id)).await;
        }
    }

    /// How many establishments this node listens to.
    pub async fn listening(&self) -> usize {
        self.registry.lock().await.listeners.len()
    }

    /// Keep a subscriber connection: make it, subscribe every listener's channel, tell
    /// them to resync, pass messages on until it breaks, and start again.
    async fn subscriber(self: Arc<Self>) {
        let mut first = true;
        loop {
            if !first {
                tokio::time::sleep(RECONNECT_BACKOFF).await;
            }
            first = false;
            let connected = tokio::time::timeout(self.ping_every, self.client.get_async_pubsub());
            let (sink, mut stream) = match connected.await {
                Ok(Ok(pubsub)) => pubsub.split(),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot open the live bus connection to Redis");
                    continue;
                }
                Err(_) => continue,
            };
            if !self.resubscribe(sink.clone()).await {
                continue;
            }
            let mut pings = tokio::time::interval(self.ping_every);
            pings.tick().await;
            loop {
                tokio::select! {
                    message = stream.next() => match message {
                        Some(message) => self.dispatch(message).await,
                        None => break,
                    },
                    _ = pings.tick() => {
                        let mut sink = sink.clone();
                        let ping = tokio::time::timeout(self.ping_every, sink.ping::<redis::Value>());
                        if !matches!(ping.await, Ok(Ok(_))) {
                            break;
                        }
                    }
                }
            }
            self.registry.lock().await.sink = None;
            metrics::counter!("navaro_cluster_bus_reconnects_total").increment(1);
            tracing::warn!("live bus connection to Redis lost; listeners resync from the journal");
        }
    }

    /// Install `sink` and subscribe every listener's channel; tell each listener to
    /// resync. `false` if Redis refused.
    async fn resubscribe(&self, mut sink: PubSubSink) -> bool {
        let mut registry = self.registry.lock().await;
        let mut channels: Vec<String> = registry
            .listeners
            .keys()
            .map(|id| self.channel(*id))
            .collect();
        channels.push(self.control_channel());
        if let Err(e) = sink.subscribe(&channels).await {
            tracing::warn!(error = %e, "cannot subscribe the live bus's channels");
            return false;
        }
        registry.sink = Some(sink);
        for listener in registry.listeners.values() {
            let _ = listener.tx.send(BusEvent::Reconnected);
        }
        let _ = self.control.send(BusEvent::Reconnected);
        true
    }

    async fn dispatch(&self, message: redis::Msg) {
        if message.get_channel_name() == self.control_channel() {
            let payload = message.get_payload_bytes().to_vec();
            let _ = self.control.send(BusEvent::Message(payload));
            return;
        }
        let id = message
            .get_channel_name()
            .strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_prefix(":live:"))
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .map(EstablishmentId);
        let Some(id) = id else { return };
        let registry = self.registry.lock().await;
        if let Some(listener) = registry.listeners.get(&id) {
            let _ = listener
                .tx
                .send(BusEvent::Message(message.get_payload_bytes().to_vec()));
        }
    }
}

/// Publish what is queued, pipelining what has piled up; a failed pipeline's messages
/// are lost (counted), as pub/sub's would be.
async fn publisher(mut conn: ConnectionManager, mut queue: mpsc::Receiver<(String, Vec<u8>)>) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while queue.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for (channel, payload) in &batch {
            pipe.cmd("PUBLISH")
                .arg(channel)
                .arg(payload.as_slice())
                .ignore();
        }
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            metrics::counter!("navaro_cluster_bus_dropped_total").increment(batch.len() as u64);
            tracing::warn!(error = %e, count = batch.len(), "cannot publish live events; listeners resync from the journal");
        }
        batch.clear();
    }
}
