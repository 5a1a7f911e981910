//! Live feeds across a cluster's nodes (docs/cluster.md, "Live feeds").
//!
//! The owner of an establishment publishes every durable event, with its seq, on the
//! Redis bus ([`Published`], a journal wrapper: an event is published only once its
//! append answered `Ok`, so nothing leaves a node before the commit that makes it
//! true). A node with WebSocket subscribers of an establishment it does not own keeps
//! one [`Feed`] for it: it listens on the bus and passes events on to its local
//! subscribers strictly in seq order, each once. Redis pub/sub is at most once, so the
//! feed fills from the journal (the truth, in Postgres) whenever
//! - an event is missing for [`REORDER_WAIT`] after a later one arrived (a gap: the
//!   owner's batches can be published slightly out of order, so a moment is given),
//! - the bus connection was made again (a Redis restart, a killed connection), or
//! - [`POLL_EVERY`] passed: the last events of a burst could be lost with no later
//!   event to show the gap (the owner was killed between its commit and its publish).
//!
//! A subscriber takes the feed's receiver and its last seq together, under the feed's
//! lock, and reads what it is missing before that from the journal; the session drops
//! anything at or below what it sent. So a subscriber sees no gap and no duplicate,
//! whichever node it is on, and whichever node owns the establishment meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use navaro_cluster::{Bus, BusEvent};
use navaro_engine::store::{AppendBatch, Journal, JournalError, Recovered, Snapshot};
use navaro_protocol::{EstablishmentId, EventRecord};
use tokio::sync::{broadcast, mpsc};

/// How often a feed reads the journal even when nothing showed a gap.
pub const POLL_EVERY: Duration = Duration::from_secs(2);
/// How long a feed waits for a missing event before reading it from the journal.
const REORDER_WAIT: Duration = Duration::from_millis(50);
/// Most events read from the journal per query.
const READ_PAGE: usize = 256;

/// A journal that publishes each durable batch's events on the bus.
pub struct Published {
    pub inner: Arc<dyn Journal>,
    pub bus: Arc<Bus>,
}

impl Journal for Published {
    fn append(&self, batch: AppendBatch) -> BoxFuture<'static, Result<(), JournalError>> {
        let id = batch.establishment_id;
        // Encoded before the batch moves on; sent only once it is durable.
        let encoded: Vec<Vec<u8>> = batch
            .records
            .iter()
            .filter_map(|r| serde_json::to_vec(r).ok())
            .collect();
        let bus = self.bus.clone();
        self.inner
            .append(batch)
            .map(move |result| {
                if result.is_ok() {
                    for payload in encoded {
                        bus.publish(id, payload);
                    }
                }
                result
            })
            .boxed()
    }

    fn load(
        &self,
        establishment_id: EstablishmentId,
    ) -> BoxFuture<'_, Result<Option<Recovered>, JournalError>> {
        self.inner.load(establishment_id)
    }

    fn save_snapshot(
        &self,
        establishment_id: EstablishmentId,
        snapshot: Snapshot,
    ) -> BoxFuture<'_, Result<(), JournalError>> {
        self.inner.save_snapshot(establishment_id, snapshot)
    }

    fn read_after(
        &self,
        establishment_id: EstablishmentId,
        since: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, JournalError>> {
        self.inner.read_after(establishment_id, since, limit)
    }

    fn lag(&self) -> std::time::Duration {
        self.inner.lag()
    }
}

/// The feeds of the establishments this node has remote subscribers of.
pub struct Relay {
    bus: Arc<Bus>,
    journal: Arc<dyn Journal>,
    capacity: usize,
    feeds: Mutex<HashMap<EstablishmentId, Weak<Feed>>>,
}

/// One establishment's events, in order, for this node's subscribers. Dropped (and its
/// channel left) with its last subscriber's [`Watch`].
pub struct Feed {
    id: EstablishmentId,
    /// The last seq passed on, and the sender: read and written together.
    state: Mutex<(u64, broadcast::Sender<Arc<EventRecord>>)>,
    bus: Arc<Bus>,
    token: Mutex<Option<u64>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What a subscriber holds: the feed (kept alive by it) and where it started.
pub struct Watch {
    pub feed: Arc<Feed>,
    pub receiver: broadcast::Receiver<Arc<EventRecord>>,
    /// The last seq passed on before `receiver` was taken.
    pub last: u64,
}

impl Relay {
    pub fn new(bus: Arc<Bus>, journal: Arc<dyn Journal>, capacity: usize) -> Relay {
        Relay {
            bus,
            journal,
            capacity,
            feeds: Mutex::new(HashMap::new()),
        }
    }

    /// Watch `id`'s events, starting the feed if this node has none; `current` is the
    /// owner's seq as of the subscriber's handshake (where a new feed starts).
    pub async fn watch(&self, id: EstablishmentId, current: u64) -> Watch {
        let existing = lock(&self.feeds).get(&id).and_then(Weak::upgrade);
        let feed = match existing {
            Some(feed) => feed,
            None => self.start(id, current).await,
        };
        let (receiver, last) = {
            let state = lock(&feed.state);
            (state.1.subscribe(), state.0)
        };
        Watch {
            feed,
            receiver,
            last,
        }
    }

    async fn start(&self, id: EstablishmentId, current: u64) -> Arc<Feed> {
        let (sender, _) = broadcast::channel(self.capacity);
        let feed = Arc::new(Feed {
            id,
            state: Mutex::new((current, sender)),
            bus: self.bus.clone(),
            token: Mutex::new(None),
            task: Mutex::new(None),
        });
        {
            let mut feeds = lock(&self.feeds);
            // Another subscriber may have started one meanwhile: use it.
            if let Some(other) = feeds.get(&id).and_then(Weak::upgrade) {
                return other;
            }
            feeds.insert(id, Arc::downgrade(&feed));
            feeds.retain(|_, f| f.strong_count() > 0);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // Listening before the first read: nothing published after it is missed.
        let token = self.bus.listen(id, tx).await;
        *lock(&feed.token) = Some(token);
        let runner = Runner {
            feed: Arc::downgrade(&feed),
            journal: self.journal.clone(),
            id,
        };
        *lock(&feed.task) = Some(tokio::spawn(runner.run(rx)));
        feed
    }

    /// How many establishments have a feed here.
    pub fn feeds(&self) -> usize {
        lock(&self.feeds)
            .values()
            .filter(|f| f.strong_count() > 0)
            .count()
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
        if let Some(token) = lock(&self.token).take() {
            let (bus, id) = (self.bus.clone(), self.id);
            tokio::spawn(async move { bus.unlisten(id, token).await });
        }
    }
}

impl Feed {
    /// The last seq passed on.
    fn last(&self) -> u64 {
        lock(&self.state).0
    }

    /// Pass `record` on if it is the next one; whether it was.
    fn pass(&self, record: Arc<EventRecord>) -> bool {
        let mut state = lock(&self.state);
        if record.seq != state.0 + 1 {
            return false;
        }
        state.0 = record.seq;
        let _ = state.1.send(record);
        true
    }
}

/// The task behind a feed: holds it weakly, so the feed goes with its last subscriber.
struct Runner {
    feed: Weak<Feed>,
    journal: Arc<dyn Journal>,
    id: EstablishmentId,
}

impl Runner {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<BusEvent>) {
        let mut poll = tokio::time::interval(POLL_EVERY);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Events that arrived ahead of a missing one, and until when to wait for it
        // (the owner's batches can be published slightly out of order).
        let mut ahead: BTreeMap<u64, Arc<EventRecord>> = BTreeMap::new();
        let mut wait_until: Option<tokio::time::Instant> = None;
        loop {
            // The first tick is at once: what was committed between the subscriber's
            // handshake and the bus listening is read from the journal.
            let waited = async {
                match wait_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let event = tokio::select! {
                event = rx.recv() => event,
                _ = poll.tick() => Some(BusEvent::Reconnected),
                () = waited => {
                    metrics::counter!("navaro_live_relay_gaps_total").increment(1);
                    Some(BusEvent::Reconnected)
                }
            };
            let Some(feed) = self.feed.upgrade() else {
                return;
            };
            match event {
                None => return,
                Some(BusEvent::Message(payload)) => {
                    let Ok(record) = serde_json::from_slice::<EventRecord>(&payload) else {
                        tracing::warn!(establishment_id = %self.id, "undecodable live event on the bus");
                        continue;
                    };
                    if record.seq > feed.last() {
                        ahead.insert(record.seq, Arc::new(record));
                    }
                }
                Some(BusEvent::Reconnected) => self.catch_up(&feed).await,
            }
            // Pass on what now follows, in order; wait a moment for what is missing.
            ahead.retain(|seq, _| *seq > feed.last());
            while let Some(entry) = ahead.first_entry() {
                if *entry.key() != feed.last() + 1 {
                    break;
                }
                feed.pass(entry.remove());
            }
            wait_until = match (ahead.is_empty(), wait_until) {
                (true, _) => None,
                (false, Some(at)) => Some(at),
                (false, None) => Some(tokio::time::Instant::now() + REORDER_WAIT),
            };
        }
    }

    /// Pass on every event after the feed's last seq that the journal has.
    async fn catch_up(&self, feed: &Feed) {
        loop {
            let from = feed.last();
            let page = match self.journal.read_after(self.id, from, READ_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(establishment_id = %self.id, error = %e, "cannot read the journal to fill a live feed; trying again");
                    return;
                }
            };
            let full = page.len() == READ_PAGE;
            let mut filled: u64 = 0;
            for record in page {
                if record.seq <= feed.last() {
                    continue; // passed on meanwhile from the bus
                }
                if !feed.pass(Arc::new(record)) {
                    break;
                }
                filled += 1;
            }
            if filled > 0 {
                metrics::counter!("navaro_live_relay_filled_total").increment(filled);
            }
            if !full {
                return;
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
