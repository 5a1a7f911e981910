//! WebSocket subscribers and push latency.
//!
//! Before a write that will produce a recognisable event (an uncontended booking: staff
//! and start are unique by construction; a queue join: the ticket name is unique), the
//! operation records the instant it hands the request to the HTTP client under a key.
//! Subscribers (owners on their establishment's live feed, so they see every event)
//! look each `booking.confirmed` / `queue.joined` frame's key up and record
//! frame receipt minus that instant: push latency is measured from the write's send,
//! so it covers the server's decision, the durable commit, the fan-out and delivery.

use std::borrow::Cow;
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

/// The parts of a live frame the clock reads; the rest is skipped unparsed. `kind`
/// borrows from the frame unless it holds escapes; serde does not borrow through an
/// `Option`, so the optional strings are small owned copies.
#[derive(serde::Deserialize)]
struct PushFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    data: Option<PushData<'a>>,
}

#[derive(serde::Deserialize)]
struct PushData<'a> {
    #[serde(borrow)]
    booking: Option<PushBooking<'a>>,
    #[serde(borrow)]
    ticket: Option<PushTicket<'a>>,
}

#[derive(serde::Deserialize)]
struct PushBooking<'a> {
    #[serde(borrow)]
    staff_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    start: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct PushTicket<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
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
        let Ok(frame) = serde_json::from_str::<PushFrame>(text) else {
            return;
        };
        let key = match (&*frame.kind, frame.data) {
            (
                "booking.confirmed",
                Some(PushData {
                    booking: Some(b), ..
                }),
            ) => {
                match (
                    b.staff_id,
                    b.start.and_then(|s| s.parse::<Timestamp>().ok()),
                ) {
                    (Some(staff), Some(start)) => Self::booking_key(&staff, start),
                    _ => return,
                }
            }
            (
                "queue.joined",
                Some(PushData {
                    ticket: Some(t), ..
                }),
            ) => match t.name {
                Some(name) => Self::ticket_key(&name),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames as the server sends them (instants in the establishment's offset, fields
    /// the clock does not read, other event types with other shapes): the two kinds of
    /// write the clock waits for are matched to their send, and nothing else is.
    #[test]
    fn the_clock_matches_a_confirmed_booking_and_a_joined_ticket_to_their_sends() {
        let clock = PushClock::default();
        let sent = Instant::now();
        let start: Timestamp = "2026-12-01T11:00:00Z".parse().unwrap();
        clock.expect(PushClock::booking_key("s-1", start), sent);
        clock.expect(PushClock::ticket_key("Zé \"walk-in\" 7"), sent);
        clock.expect(PushClock::booking_key("s-2", start), sent);
        let at = sent + Duration::from_millis(3);
        let frames = [
            r#"{"seq":5,"type":"booking.confirmed","at":"2026-11-30T09:00:00-03:00","data":{"booking":{"id":"b-1","staff_id":"s-1","start":"2026-12-01T08:00:00-03:00","end":"2026-12-01T08:30:00-03:00","status":"confirmed"}}}"#,
            r#"{"seq":6,"type":"queue.joined","at":"2026-11-30T09:00:01-03:00","data":{"ticket":{"id":"t-1","name":"Z\u00e9 \"walk-in\" 7","position":3},"queue":[{"ticket_id":"t-1","position":3}]}}"#,
            r#"{"seq":7,"type":"queue.estimates","at":"2026-11-30T09:00:02-03:00","data":{"queue":[{"ticket_id":"t-1","position":3,"eta":"2026-11-30T09:20:00-03:00"}]}}"#,
            r#"{"seq":8,"type":"booking.cancelled","at":"2026-11-30T09:00:03-03:00","data":{"booking":{"id":"b-2","staff_id":"s-2","start":"2026-12-01T08:00:00-03:00"}}}"#,
            "not json",
        ];
        for frame in frames {
            clock.receive(frame, at);
        }
        assert_eq!(clock.frames.load(Ordering::Relaxed), 5);
        assert_eq!(clock.matched.load(Ordering::Relaxed), 2);
        let latency = clock.take();
        assert_eq!(latency.len(), 2);
        // 3 ms from the send, within the histogram's precision.
        assert!(
            latency.equivalent(latency.max(), 3_000),
            "{}",
            latency.max()
        );
    }
}
