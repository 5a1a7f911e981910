//! WebSocket subscribers and push latency.
//!
//! Before a write that will produce a recognisable event (an uncontended booking: staff
//! and start are unique by construction; a queue join: the ticket name is unique), the
//! operation records the instant it hands the request to the HTTP client under a key.
//! Subscribers (owners on their establishment's live feed, so they see every event)
//! look each `booking.confirmed` / `queue.joined` frame's key up and record
//! frame receipt minus that instant: push latency is measured from the write's send,
//! so it covers the server's decision, the durable commit, the fan-out and delivery.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use jiff::Timestamp;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::world::World;

/// How long a subscriber may take to connect and say hello.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A subscriber's read size (see `subscribe`).
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Send instants by event key, and the push latencies measured against them.
pub struct PushClock {
    sent: Mutex<HashMap<String, Instant>>,
    latency_us: Mutex<Histogram<u64>>,
    pub frames: AtomicU64,
    pub matched: AtomicU64,
    /// Subscribers that ended before the run did, by reason (close code or error).
    pub ended: Mutex<BTreeMap<String, u64>>,
}

impl Default for PushClock {
    fn default() -> PushClock {
        PushClock {
            sent: Mutex::new(HashMap::new()),
            latency_us: Mutex::new(crate::stats::histogram()),
            frames: AtomicU64::new(0),
            matched: AtomicU64::new(0),
            ended: Mutex::new(BTreeMap::new()),
        }
    }
}

impl PushClock {
    pub fn booking_key(staff: &str, start: Timestamp) -> String {
        format!("b:{staff}:{}", start.as_second())
    }

    pub fn ticket_key(name: &str) -> String {
        format!("q:{name}")
    }

    /// Note that a write producing `key` is being sent now.
    pub fn expect(&self, key: String, sent: Instant) {
        self.sent.lock().unwrap().insert(key, sent);
    }

    /// Take the latencies recorded so far, starting a new window.
    pub fn take(&self) -> Histogram<u64> {
        let mut latency = self.latency_us.lock().unwrap();
        std::mem::replace(&mut *latency, crate::stats::histogram())
    }

    fn receive(&self, text: &str, at: Instant) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        let Ok(frame) = serde_json::from_str::<serde_json::Value>(text) else {
            return;
        };
        let key = match frame["type"].as_str() {
            Some("booking.confirmed") => {
                let booking = &frame["data"]["booking"];
                let staff = booking["staff_id"].as_str();
                let start = booking["start"]
                    .as_str()
                    .and_then(|s| s.parse::<Timestamp>().ok());
                match (staff, start) {
                    (Some(staff), Some(start)) => Self::booking_key(staff, start),
                    _ => return,
                }
            }
            Some("queue.joined") => match frame["data"]["ticket"]["name"].as_str() {
                Some(name) => Self::ticket_key(name),
                None => return,
            },
            _ => return,
        };
        let sent = self.sent.lock().unwrap().get(&key).copied();
        if let Some(sent) = sent {
            let micros = at.saturating_duration_since(sent).as_micros() as u64;
            self.matched.fetch_add(1, Ordering::Relaxed);
            crate::stats::record(&mut self.latency_us.lock().unwrap(), micros);
        }
    }

    fn ended(&self, reason: String) {
        *self.ended.lock().unwrap().entry(reason).or_default() += 1;
    }
}

/// Open `count` subscribers round-robin over the establishments; each runs until `stop`
/// turns true. Returns once all of them have said hello.
pub async fn subscribe(
    world: &std::sync::Arc<World>,
    count: usize,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let ws_base = world.http.base().replacen("http://", "ws://", 1);
    let mut handles = Vec::new();
    for n in 0..count {
        let est = &world.establishments[n % world.establishments.len()];
        let url = format!(
            "{ws_base}/v1/establishments/{}/live?access_token={}",
            est.id, est.owner.token
        );
        // tungstenite zero-fills its whole read buffer before every read, 128 KiB by
        // default: on the same cores as the server, that `memset` would be most of a
        // subscriber's cost per frame. Frames are small; longer ones span reads.
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
        let connect = tokio_tungstenite::connect_async_with_config(url, Some(config), false);
        let (mut socket, _) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| anyhow::anyhow!("live feed connect timed out"))??;
        // The hello frame comes first; backlog frames of provisioning follow it and
        // match no key.
        let world = world.clone();
        let mut stop = stop.clone();
        handles.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    frame = socket.next() => match frame {
                        Some(Ok(Message::Text(text))) => world.push.receive(&text, Instant::now()),
                        Some(Ok(Message::Close(close))) => {
                            let code = close.map_or("none".to_owned(), |c| u16::from(c.code).to_string());
                            world.push.ended(format!("closed {code}"));
                            return;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            world.push.ended(format!("error: {e}"));
                            return;
                        }
                        None => {
                            world.push.ended("ended".to_owned());
                            return;
                        }
                    },
                }
            }
            let _ = socket.close(None).await;
        }));
    }
    Ok(handles)
}
