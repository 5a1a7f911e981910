//! `GET /v1/establishments/{id}/live`: the live feed over WebSocket.
//!
//! After the upgrade a subscriber gets `{"type":"hello","seq":current}`, then every
//! event after `since` (the engine's backlog, then its live broadcast) as
//! `{"seq","type","data","at"}` frames, each once and in order, or `{"type":"reload"}`
//! when `since` is older than what can be replayed. Members see every event; customers
//! only those whose `Event::customer_id()` is theirs. Encoding follows the subprotocol
//! (`navaro.v1.json`, default, or `navaro.v1.msgpack`).
//!
//! Limits: small per-connection buffers (settings `websocket.*`) so that 100k idle
//! subscribers fit in about 2 GiB; a subscriber that falls `max_lag_events` behind, or
//! whose socket does not take a frame within `websocket.send_timeout_ms`, is closed with
//! [`CLOSE_SLOW_CONSUMER`] and resumes with `since`. Every subscriber is pinged each
//! `websocket.ping_interval_ms`, and one that sent nothing for two intervals is closed
//! with [`CLOSE_NO_PONG`]. On shutdown every subscriber is closed with 1001 (going away).
//! Browsers' `Origin` must be this server's own (its pages, the Pro board), one of
//! `http.allowed_origins`, or localhost in dev mode.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use navaro_protocol::zone::{in_zone, instant};
use navaro_protocol::{
    Caller, Encoding, EstablishmentId, Event, EventRecord, QueuePosition, Ticket, TicketId, encode,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::dto::est;
use crate::error::ApiError;
use crate::routes::establishments::resolve;
use crate::state::AppState;
use crate::wire::{ApiPath, ApiQuery};

/// Subprotocols, in the server's order of preference.
pub const SUBPROTOCOLS: [&str; 2] = ["navaro.v1.json", "navaro.v1.msgpack"];

/// Close code for a subscriber that could not keep up (4000-4999: application codes).
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code when the establishment's feed ended (its actor stopped); reconnect.
pub const CLOSE_FEED_ENDED: u16 = 1012;
/// Close code on server shutdown.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a subscriber that sent nothing, not even a pong, for two ping
/// intervals (`websocket.ping_interval_ms`): most likely gone without a word.
pub const CLOSE_NO_PONG: u16 = 4009;

/// Largest outgoing message; frames are a few KiB, this only bounds a surprise.
const MAX_WRITE_BUFFER_BYTES: usize = 1024 * 1024;

/// Encoded frames kept for reuse: one event fans out to every subscriber of its
/// establishment, and encoding it once instead of once per subscriber is what keeps a
/// 10k-subscriber fan-out cheap. A few hundred entries cover every establishment's
/// latest events at any realistic event rate.
const FRAME_CACHE_ENTRIES: usize = 512;

type FrameKey = (EstablishmentId, u64, Encoding);

/// Open live connections (for the gauge and for draining at shutdown), and the cache of
/// encoded frames they share.
#[derive(Default)]
pub struct LiveRegistry {
    open: AtomicUsize,
    drained: Notify,
    frames: Mutex<(HashMap<FrameKey, Message>, VecDeque<FrameKey>)>,
}

impl LiveRegistry {
    fn enter(self: &Arc<Self>) -> LiveGuard {
        let n = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        metrics::gauge!("navaro_live_subscribers").set(n as f64);
        LiveGuard(self.clone())
    }

    /// The encoded frame for an event, encoding it on first use.
    fn frame(&self, key: FrameKey, encode: impl FnOnce() -> Option<Message>) -> Option<Message> {
        if let Some(message) = self.lock_frames().0.get(&key) {
            return Some(message.clone());
        }
        let message = encode()?;
        let mut frames = self.lock_frames();
        let (map, order) = &mut *frames;
        if map.insert(key, message.clone()).is_none() {
            order.push_back(key);
            if order.len() > FRAME_CACHE_ENTRIES
                && let Some(oldest) = order.pop_front()
            {
                map.remove(&oldest);
            }
        }
        Some(message)
    }

    fn lock_frames(
        &self,
    ) -> std::sync::MutexGuard<'_, (HashMap<FrameKey, Message>, VecDeque<FrameKey>)> {
        self.frames.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Wait until every live connection has closed, at most `grace`.
    pub async fn drain(&self, grace: Duration) {
        let wait = async {
            while self.open() > 0 {
                let notified = self.drained.notified();
                if self.open() == 0 {
                    break;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(grace, wait).await;
    }
}

struct LiveGuard(Arc<LiveRegistry>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let n = self.0.open.fetch_sub(1, Ordering::SeqCst) - 1;
        metrics::gauge!("navaro_live_subscribers").set(n as f64);
        if n == 0 {
            self.0.drained.notify_waiters();
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LiveParams {
    /// The last seq the client has; omitted: from now.
    pub since: Option<u64>,
    /// The access token, for clients that cannot set headers on a WebSocket (browsers).
    pub access_token: Option<String>,
}

/// `hello` and `reload` frames.
#[derive(Serialize)]
struct Control {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: u64,
}

/// An event frame: `{seq, type, data, at}`, encoded in [`in_zone`].
#[derive(Serialize)]
struct Frame<'a> {
    seq: u64,
    #[serde(flatten)]
    event: &'a Event,
    #[serde(serialize_with = "instant")]
    at: Timestamp,
}

/// A queue event as a customer sees it (see [`Session::customer_queue_frame`]).
#[derive(Serialize)]
pub(crate) struct CustomerQueueFrame<'a> {
    pub(crate) seq: u64,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    #[serde(serialize_with = "instant")]
    pub(crate) at: Timestamp,
    pub(crate) data: CustomerQueueData<'a>,
}

#[derive(Serialize)]
pub(crate) struct CustomerQueueData<'a> {
    /// `null` unless the event is about the customer's own ticket.
    pub(crate) ticket: Option<&'a Ticket>,
    pub(crate) queue: Vec<&'a QueuePosition>,
}

fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // native clients send no Origin; browsers always do
    };
    if same_origin(origin, headers) {
        return true; // a page this server served (the Pro board at `/pro`)
    }
    if state
        .settings
        .http
        .allowed_origins
        .iter()
        .any(|o| o == origin)
    {
        return true;
    }
    let local = ["http://localhost", "http://127.0.0.1", "https://localhost"];
    state.settings.dev_mode
        && local.iter().any(|l| {
            origin == *l
                || origin
                    .strip_prefix(l)
                    .is_some_and(|rest| rest.starts_with(':'))
        })
}

/// Whether `origin` names the host the request was sent to (`Host`), as a page served
/// by this server does: a cross-site page cannot make a browser send another site's
/// `Host`, so this admits only our own pages (the check browsers' `fetch` applies).
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

#[utoipa::path(get, path = "/v1/establishments/{id}/live", tag = "live", security(("bearer" = [])),
    params(("id" = Uuid, Path), LiveParams,
        ("Connection" = String, Header, description = "`Upgrade`: a WebSocket handshake (RFC 6455)", pattern = "^[Uu][Pp][Gg][Rr][Aa][Dd][Ee]$"),
        ("Upgrade" = String, Header, description = "`websocket`", pattern = "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$"),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`", pattern = "^13$"),
        ("Sec-WebSocket-Key" = String, Header, description = "16 random bytes, base64", pattern = "^[A-Za-z0-9+/]{21}[AQgw]==$")),
    responses((status = 101, description = "WebSocket; subprotocol navaro.v1.json or navaro.v1.msgpack"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, description = "origin not allowed", body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn live(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<LiveParams>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if !origin_allowed(&state, &headers) {
        return Err(ApiError::new(
            navaro_protocol::ErrorCode::Forbidden,
            "origin not allowed",
        ));
    }
    let token = crate::auth::bearer_in(&headers)
        .or(params.access_token.as_deref())
        .ok_or_else(|| ApiError::unauthorized("bearer token or access_token required"))?;
    let opened = match crate::live_remote::open(&state, est(id), token, params.since).await {
        Ok(Some(remote)) => remote,
        Ok(None) => open_here(&state, token, est(id), params.since).await?,
        Err(response) => return Ok(response),
    };
    let ws = &state.settings.websocket;
    let upgrade = upgrade
        .protocols(SUBPROTOCOLS)
        .read_buffer_size(ws.read_buffer_bytes)
        .write_buffer_size(ws.write_buffer_bytes)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES.max(ws.write_buffer_bytes * 2))
        .max_message_size(ws.max_message_bytes)
        .max_frame_size(ws.max_message_bytes);
    let encoding = match upgrade.selected_protocol().and_then(|p| p.to_str().ok()) {
        Some("navaro.v1.msgpack") => Encoding::MsgPack,
        _ => Encoding::Json,
    };
    let subscription = opened.subscription;
    let session = Session {
        state: state.clone(),
        establishment_id: est(id),
        timezone: opened.timezone,
        caller: opened.caller,
        encoding,
        max_lag: ws.max_lag_events,
        send_timeout: Duration::from_millis(ws.send_timeout_ms),
        ping_interval: (ws.ping_interval_ms > 0)
            .then(|| Duration::from_millis(ws.ping_interval_ms)),
        // The customer's tickets known at connect; later joins are picked up from events.
        my_tickets: Mutex::new(opened.tickets.into_iter().collect()),
        frames_sent: metrics::counter!("navaro_live_frames_total"),
        _feed: opened.feed,
    };
    Ok(upgrade.on_upgrade(move |socket| session.run(socket, subscription)))
}

/// A feed opened on the node that owns the establishment: straight from its engine.
async fn open_here(
    state: &AppState,
    token: &str,
    id: EstablishmentId,
    since: Option<u64>,
) -> Result<crate::live_remote::Opened, ApiError> {
    let auth = AuthUser::from_token(state, token).await?;
    let (view, caller) = resolve(state, &auth, id).await?;
    let since = since.unwrap_or_else(|| view.seq());
    let subscription = state
        .engine
        .subscribe(id, since)
        .await
        .map_err(ApiError::from)?;
    Ok(crate::live_remote::Opened {
        subscription,
        timezone: view.timezone().clone(),
        caller,
        tickets: view.active_tickets_of(caller.user_id),
        feed: None,
    })
}

struct Session {
    state: AppState,
    establishment_id: EstablishmentId,
    /// Instants in frames are rendered in the establishment's offset, as in responses.
    timezone: TimeZone,
    caller: Caller,
    encoding: Encoding,
    max_lag: usize,
    send_timeout: Duration,
    /// See `websocket.ping_interval_ms`; `None`: no pings.
    ping_interval: Option<Duration>,
    /// For a customer: their tickets, whose place and estimate they are shown.
    my_tickets: Mutex<HashSet<TicketId>>,
    /// `navaro_live_frames_total`, looked up once: in a fan-out to 10k subscribers the
    /// registry lookup per frame was 0.65% of the server's samples.
    frames_sent: metrics::Counter,
    /// This node's relay of the establishment's events, when another node owns it.
    _feed: Option<Arc<crate::relay::Feed>>,
}

/// An event's frame as a member sees it, `{seq, type, data, at}`, with its instants in
/// `tz`'s offset.
pub fn encode_frame(
    encoding: Encoding,
    record: &EventRecord,
    tz: &TimeZone,
) -> Result<Vec<u8>, navaro_protocol::CodecError> {
    let frame = Frame {
        seq: record.seq,
        event: &record.event,
        at: record.at,
    };
    in_zone(tz, || encode(encoding, &frame))
}

/// Encoded bytes as a WebSocket message: text for JSON, binary for MessagePack.
fn as_message(encoding: Encoding, bytes: Vec<u8>) -> Option<Message> {
    Some(match encoding {
        Encoding::Json => Message::Text(String::from_utf8(bytes).ok()?.into()),
        Encoding::MsgPack => Message::Binary(bytes.into()),
    })
}

/// Why a session ended, and the close frame to send.
enum End {
    Client,
    Close(u16, &'static str),
}

impl Session {
    fn visible(&self, record: &EventRecord) -> bool {
        self.caller.role.is_member() || record.event.customer_id() == Some(self.caller.user_id)
    }

    /// A queue event as a customer sees it: their own ticket in full when it is the one
    /// that changed, and only their own places and estimates (which move whenever anyone
    /// ahead joins, is called or leaves). `None` when nothing in it is theirs.
    fn customer_queue_frame(&self, record: &EventRecord) -> Option<Message> {
        let event = &record.event;
        // `queue.estimates` concerns no ticket in particular.
        let ticket = event.ticket();
        let own = ticket.is_some_and(|t| t.customer_id == Some(self.caller.user_id));
        let mut mine = self.my_tickets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ticket) = ticket.filter(|_| own) {
            mine.insert(ticket.id);
        }
        let places: Vec<_> = event
            .queue_positions()?
            .iter()
            .filter(|p| mine.contains(&p.ticket_id))
            .collect();
        drop(mine);
        if !own && places.is_empty() {
            return None;
        }
        let frame = CustomerQueueFrame {
            seq: record.seq,
            kind: event.kind(),
            at: record.at,
            data: CustomerQueueData {
                ticket: ticket.filter(|_| own),
                queue: places,
            },
        };
        in_zone(&self.timezone, || self.message(&frame))
    }

    fn message<T: Serialize>(&self, value: &T) -> Option<Message> {
        as_message(self.encoding, encode(self.encoding, value).ok()?)
    }

    async fn send<T: Serialize>(&self, socket: &mut WebSocket, value: &T) -> Result<(), End> {
        match self.message(value) {
            Some(message) => self.send_message(socket, message).await,
            None => Ok(()),
        }
    }

    async fn send_message(&self, socket: &mut WebSocket, message: Message) -> Result<(), End> {
        match tokio::time::timeout(self.send_timeout, socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Client),
            Err(_) => Err(End::Close(
                CLOSE_SLOW_CONSUMER,
                "slow consumer: resume with since",
            )),
        }
    }

    async fn send_record(
        &self,
        socket: &mut WebSocket,
        record: &EventRecord,
        last_seq: &mut u64,
    ) -> Result<(), End> {
        if record.seq <= *last_seq {
            return Ok(()); // already sent from the backlog
        }
        *last_seq = record.seq;
        if !self.caller.role.is_member() && record.event.queue_positions().is_some() {
            return match self.customer_queue_frame(record) {
                Some(message) => self.send_message(socket, message).await,
                None => Ok(()),
            };
        }
        if !self.visible(record) {
            return Ok(());
        }
        let key = (self.establishment_id, record.seq, self.encoding);
        let message = self.state.live.frame(key, || {
            let bytes = encode_frame(self.encoding, record, &self.timezone).ok()?;
            as_message(self.encoding, bytes)
        });
        match message {
            Some(message) => {
                self.frames_sent.increment(1);
                self.send_message(socket, message).await
            }
            None => Ok(()),
        }
    }

    async fn run(self, mut socket: WebSocket, subscription: crate::engine_api::Subscription) {
        let _guard = self.state.live.enter();
        let end = self.stream(&mut socket, subscription).await;
        let reason_label = match &end {
            End::Client => "client",
            End::Close(CLOSE_SLOW_CONSUMER, _) => "slow_consumer",
            End::Close(CLOSE_GOING_AWAY, _) => "shutdown",
            End::Close(CLOSE_NO_PONG, _) => "no_pong",
            End::Close(_, _) => "feed_ended",
        };
        metrics::counter!("navaro_live_disconnects_total", "reason" => reason_label).increment(1);
        if let End::Close(code, reason) = end {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ =
                tokio::time::timeout(self.send_timeout, socket.send(Message::Close(Some(frame))))
                    .await;
        }
    }

    async fn stream(
        &self,
        socket: &mut WebSocket,
        subscription: crate::engine_api::Subscription,
    ) -> End {
        let mut shutdown = self.state.shutdown.clone();
        let hello_seq = subscription.hello_seq;
        let mut live = subscription.live;
        let hello = Control {
            kind: "hello",
            seq: hello_seq,
        };
        if let Err(end) = self.send(socket, &hello).await {
            return end;
        }
        let mut last_seq = 0;
        if subscription.reload {
            let reload = Control {
                kind: "reload",
                seq: hello_seq,
            };
            if let Err(end) = self.send(socket, &reload).await {
                return end;
            }
            last_seq = hello_seq;
        }
        for record in &subscription.backlog {
            if let Err(end) = self.send_record(socket, record, &mut last_seq).await {
                return end;
            }
        }
        last_seq = last_seq.max(hello_seq);
        let mut pings = self.ping_interval.map(|every| {
            let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            (pings, every)
        });
        // When the client last sent anything (a pong included).
        let mut heard = tokio::time::Instant::now();
        loop {
            if live.len() > self.max_lag {
                return End::Close(CLOSE_SLOW_CONSUMER, "slow consumer: resume with since");
            }
            tokio::select! {
                received = live.recv() => match received {
                    Ok(record) => {
                        if let Err(end) = self.send_record(socket, &record, &mut last_seq).await {
                            return end;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return End::Close(CLOSE_SLOW_CONSUMER, "slow consumer: resume with since");
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return End::Close(CLOSE_FEED_ENDED, "feed ended: reconnect with since");
                    }
                },
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return End::Client,
                    // Clients send nothing we act on (their pings are answered by the
                    // library); anything, our pings' pongs included, says they are there.
                    Some(Ok(_)) => heard = tokio::time::Instant::now(),
                },
                every = next_ping(&mut pings) => {
                    if heard.elapsed() >= every * 2 {
                        return End::Close(CLOSE_NO_PONG, "no pong: reconnect with since");
                    }
                    if let Err(end) = self.send_message(socket, Message::Ping(Default::default())).await {
                        return end;
                    }
                }
                _ = shutdown.changed() => {
                    return End::Close(CLOSE_GOING_AWAY, "server shutting down");
                }
            }
        }
    }
}

/// The next tick of the ping interval, with the interval; never, without pings.
async fn next_ping(pings: &mut Option<(tokio::time::Interval, Duration)>) -> Duration {
    match pings {
        Some((interval, every)) => {
            interval.tick().await;
            *every
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;
    use navaro_protocol::{
        Booking, BookingId, BookingStatus, Hold, HoldId, ServiceId, StaffId, TicketStatus, TimeOff,
        TimeOffId, UserId,
    };
    use serde_json::Value;

    use super::*;

    /// What a frame must be: the event as `serde_json` writes it (UTC), with every string
    /// that is an instant re-rendered in `tz` (the tree walk the feed used to make).
    fn reference(record: &EventRecord, tz: &TimeZone) -> Value {
        fn localize(value: &mut Value, tz: &TimeZone) {
            match value {
                Value::String(text) => {
                    if let Ok(at) = text.parse::<Timestamp>() {
                        *text = crate::dto::render(at, tz);
                    }
                }
                Value::Array(items) => items.iter_mut().for_each(|v| localize(v, tz)),
                Value::Object(map) => map.values_mut().for_each(|v| localize(v, tz)),
                _ => {}
            }
        }
        let mut value = serde_json::json!({"seq": record.seq, "at": record.at});
        let event = serde_json::to_value(&record.event).unwrap();
        value["type"] = event["type"].clone();
        value["data"] = event["data"].clone();
        localize(&mut value, tz);
        value
    }

    /// An event of each kind that carries instants, every optional instant set.
    fn events(at: Timestamp) -> Vec<Event> {
        let id = |n: u128| Uuid::from_u128(n);
        let later = |minutes: i64| at + SignedDuration::from_mins(minutes);
        let booking = Booking {
            id: BookingId(id(1)),
            establishment_id: est(id(2)),
            service_id: ServiceId(id(3)),
            staff_id: StaffId(id(4)),
            customer_id: UserId(id(5)),
            start: later(1_440),
            end: later(1_470),
            buffer_after_minutes: 5,
            status: BookingStatus::Confirmed,
            seq: 7,
            created_at: at,
            promotion: None,
            payment_policy: None,
        };
        let hold = Hold {
            id: HoldId(id(6)),
            establishment_id: est(id(2)),
            service_id: ServiceId(id(3)),
            staff_id: StaffId(id(4)),
            customer_id: UserId(id(5)),
            start: later(60),
            end: later(90),
            buffer_after_minutes: 0,
            expires_at: later(10),
            seq: 8,
        };
        let ticket = Ticket {
            id: TicketId(id(9)),
            number: 3,
            customer_id: Some(UserId(id(5))),
            name: Some("Ana".to_owned()),
            service_id: ServiceId(id(3)),
            staff_id: Some(StaffId(id(4))),
            status: TicketStatus::Waiting,
            position: Some(1),
            eta: Some(later(20)),
            joined_at: at,
            called_at: Some(later(21)),
            started_at: Some(later(22)),
            ended_at: Some(later(50)),
        };
        let place = QueuePosition {
            ticket_id: ticket.id,
            position: 1,
            eta: Some(later(20)),
        };
        vec![
            Event::BookingConfirmed {
                booking: booking.clone(),
                from_hold: Some(hold.id),
            },
            Event::BookingRescheduled {
                booking,
                previous_start: later(600),
                previous_staff_id: StaffId(id(4)),
            },
            Event::HoldPlaced { hold },
            Event::TimeOffAdded {
                time_off: TimeOff {
                    id: TimeOffId(id(10)),
                    staff_id: StaffId(id(4)),
                    start: later(2_880),
                    end: later(3_000),
                    reason: Some("dentist".to_owned()),
                },
            },
            Event::QueueJoined {
                ticket,
                queue: vec![place],
            },
            Event::QueueEstimates {
                queue: vec![place, QueuePosition { eta: None, ..place }],
            },
        ]
    }

    #[test]
    fn frames_render_every_instant_in_the_establishments_offset_in_both_encodings() {
        let tz = TimeZone::get("America/Sao_Paulo").unwrap();
        let at: Timestamp = "2026-12-01T11:00:00.25Z".parse().unwrap();
        for event in events(at) {
            let record = EventRecord {
                seq: 42,
                at,
                idempotency: None,
                event,
            };
            let expected = reference(&record, &tz);
            let json = encode_frame(Encoding::Json, &record, &tz).unwrap();
            let json: Value = serde_json::from_slice(&json).unwrap();
            assert_eq!(json, expected);
            let packed = encode_frame(Encoding::MsgPack, &record, &tz).unwrap();
            let packed: Value = rmp_serde::from_slice(&packed).unwrap();
            assert_eq!(packed, expected);
            assert_eq!(json["at"], "2026-12-01T08:00:00.25-03:00");
        }
        // The journal's encoding of the same events is untouched: UTC.
        let stored = serde_json::to_value(&events(at)[0]).unwrap();
        assert_eq!(
            stored["data"]["booking"]["created_at"],
            "2026-12-01T11:00:00.25Z"
        );
    }
}
