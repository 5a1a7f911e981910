//! The establishment actor: serializes an establishment's commands, applies their events
//! at once and releases each reply when its events are durable.
//!
//! Per command: decide (pure) → number the events → apply → publish the new read view →
//! hand the batch to the journal and move on to the next message. The journal's answer
//! comes back as an [`Msg::Appended`] message: on success every reply up to that seq is
//! released and the events go out to live subscribers, in order; on failure every
//! not-yet-durable caller gets `unavailable` and the actor fails, so the supervisor
//! restarts it from what the store holds.

use std::collections::VecDeque;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use jiff::Timestamp;
use navaro_protocol::{
    ErrorCode, EstablishmentId, Event, EventRecord, IdempotencyRecord, Rejection, Reply,
    fingerprint,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tracing::{debug, error, warn};
use uuid::Uuid;

use super::{EngineConfig, Request, View};
use crate::clock::Clock;
use crate::domain::idempotency::{IdempotencyCache, Lookup, Remembered, StoredKey};
use crate::domain::queue::{expire_called, refresh_estimates};
use crate::domain::window;
use crate::domain::{
    Context, Establishment, SnapshotState, apply_all, decide, decide_create, expire_holds, number,
};
use crate::store::{AppendBatch, Journal, JournalError, Snapshot};

pub(crate) type Outcome = Result<Reply, Rejection>;

/// How often, at most, a busy actor publishes a new read view. Publishing is cheap (a
/// structural clone), but the first write after it copies the touched paths of the
/// persistent maps; coalescing bursts keeps writes in place. A stale view is published at
/// the next journal acknowledgement or tick, so reads lag by at most about a millisecond
/// or one journal round trip, and never show a state the actor did not pass through.
const PUBLISH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1);

/// What an establishment actor is asked.
pub(crate) enum Msg {
    /// Boxed: a command is a few hundred bytes, the other messages a few words.
    Execute(Box<Request>, RpcReplyPort<Outcome>),
    /// The journal's answer for the batch ending at `last_seq`.
    Appended {
        last_seq: u64,
        result: Result<(), JournalError>,
    },
    Subscribe {
        since: u64,
        reply: RpcReplyPort<SubscribeParts>,
    },
    /// The clock: expire holds, snapshot, passivate when idle.
    Tick,
    /// Snapshot and stop once every reply is released (idle or shutting down).
    Passivate(Option<RpcReplyPort<()>>),
}

/// The actor's side of a new live subscription: taken in one handler run, so nothing
/// published falls between the backlog and the live receiver.
pub(crate) struct SubscribeParts {
    pub durable_seq: u64,
    pub backlog: Vec<Arc<EventRecord>>,
    /// Events after `since` older than the ring holds: `(since, first_in_ring)`.
    pub gap: Option<(u64, u64)>,
    pub live: broadcast::Receiver<Arc<EventRecord>>,
}

/// What a snapshot stores: the state and the durable idempotency keys.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSnapshot {
    state: SnapshotState,
    keys: Vec<StoredKey>,
}

pub(crate) struct Args {
    pub id: EstablishmentId,
    pub journal: Arc<dyn Journal>,
    pub clock: Arc<dyn Clock>,
    pub config: EngineConfig,
    pub view: Arc<ArcSwapOption<View>>,
    pub live: broadcast::Sender<Arc<EventRecord>>,
}

/// A reply waiting for its events to be durable.
struct Waiting {
    seq: u64,
    port: RpcReplyPort<Outcome>,
    outcome: Outcome,
}

pub(crate) struct State {
    args: Args,
    est: Option<Establishment>,
    keys: IdempotencyCache,
    durable_seq: u64,
    waiting: VecDeque<Waiting>,
    undelivered: VecDeque<Arc<EventRecord>>,
    ring: VecDeque<Arc<EventRecord>>,
    snapshot_seq: u64,
    /// The items (bookings, holds, tickets, idempotency keys) the last snapshot held.
    snapshot_items: u64,
    /// The size of the last snapshot this activation encoded (0 before its first).
    snapshot_bytes: usize,
    last_snapshot_s: i64,
    last_activity_s: i64,
    /// The minute whose estimates were last compared with the published ones.
    estimates_checked_minute: i64,
    passivating: Option<Option<RpcReplyPort<()>>>,
    ticker: Option<JoinHandle<()>>,
    /// The state has changed since the view was last published.
    view_stale: bool,
    last_published: std::time::Instant,
}

pub(crate) struct EstablishmentActor;

impl Actor for EstablishmentActor {
    type Msg = Msg;
    type State = State;
    type Arguments = Args;

    async fn pre_start(
        &self,
        myself: ActorRef<Msg>,
        args: Args,
    ) -> Result<State, ActorProcessingErr> {
        let (mut est, keys, snapshot_seq) = recover(args.id, args.journal.as_ref()).await?;
        let now_s = args.clock.now().as_second();
        // What left the window while the establishment slept goes before anyone reads.
        if let Some(est) = est.as_mut() {
            evict_history(args.id, est, &args.config, now_s);
        }
        let durable_seq = est.as_ref().map_or(0, |e| e.seq);
        // What the restored state holds stands for what its snapshot held.
        let snapshot_items =
            est.as_ref().map_or(0, Establishment::snapshot_items) + keys.len() as u64;
        if let Some(est) = &est {
            args.view.store(Some(View::new(est.clone())));
        }
        let ticker = myself.send_interval(args.config.tick_interval, || Msg::Tick);
        Ok(State {
            args,
            est,
            keys,
            durable_seq,
            waiting: VecDeque::new(),
            undelivered: VecDeque::new(),
            ring: VecDeque::new(),
            snapshot_seq,
            snapshot_items,
            snapshot_bytes: 0,
            last_snapshot_s: now_s,
            last_activity_s: now_s,
            estimates_checked_minute: now_s.div_euclid(60),
            passivating: None,
            ticker: Some(ticker),
            view_stale: false,
            last_published: std::time::Instant::now(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Msg>,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Msg>,
        message: Msg,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            Msg::Execute(request, port) => state.execute(&myself, *request, port),
            Msg::Appended { last_seq, result } => state.appended(&myself, last_seq, result).await,
            Msg::Subscribe { since, reply } => {
                let _ = reply.send(state.subscribe(since));
                Ok(())
            }
            Msg::Tick => state.tick(&myself).await,
            Msg::Passivate(port) => {
                state.passivating = Some(port);
                state.finish_passivation(&myself).await;
                Ok(())
            }
        }
    }
}

/// Rebuild an establishment from its latest snapshot and the events after it.
async fn recover(
    id: EstablishmentId,
    journal: &dyn Journal,
) -> Result<(Option<Establishment>, IdempotencyCache, u64), ActorProcessingErr> {
    let mut keys = IdempotencyCache::default();
    let Some(recovered) = journal.load(id).await? else {
        return Ok((None, keys, 0));
    };
    let mut est = None;
    let mut snapshot_seq = 0;
    if let Some(snapshot) = recovered.snapshot {
        let stored: StoredSnapshot =
            rmp_serde::from_slice(&snapshot.state).map_err(|e| JournalError::Corrupt {
                establishment_id: id,
                seq: snapshot.seq,
                reason: format!("snapshot: {e}"),
            })?;
        let restored =
            Establishment::restore(&stored.state).map_err(|e| JournalError::Corrupt {
                establishment_id: id,
                seq: snapshot.seq,
                reason: format!("snapshot: {e}"),
            })?;
        for key in stored.keys {
            keys.remember(
                key.user_id,
                &key.key,
                Remembered {
                    fingerprint: key.fingerprint,
                    outcome: Ok(key.reply),
                    seq: key.seq,
                    at_s: key.at_s,
                },
            );
        }
        snapshot_seq = restored.seq;
        est = Some(restored);
    }
    for record in &recovered.events {
        let corrupt = |reason: String| JournalError::Corrupt {
            establishment_id: id,
            seq: record.seq,
            reason,
        };
        match est.as_mut() {
            None => {
                est = Some(Establishment::from_created(record).map_err(|e| corrupt(e.to_string()))?)
            }
            Some(state) => state.apply(record).map_err(|e| corrupt(e.to_string()))?,
        }
        if let (Some(state), Some(key)) = (est.as_ref(), &record.idempotency) {
            keys.remember(
                key.user_id,
                &key.key,
                Remembered {
                    fingerprint: key.fingerprint,
                    outcome: Ok(state.reply_for(&record.event)),
                    seq: record.seq,
                    at_s: record.at.as_second(),
                },
            );
        }
    }
    Ok((est, keys, snapshot_seq))
}

impl State {
    fn execute(
        &mut self,
        myself: &ActorRef<Msg>,
        request: Request,
        port: RpcReplyPort<Outcome>,
    ) -> Result<(), ActorProcessingErr> {
        let now = self.args.clock.now();
        self.last_activity_s = now.as_second();
        let Request {
            caller,
            command,
            idempotency_key,
        } = request;
        let keyed = idempotency_key.map(|key| (key, fingerprint(&command)));
        if let Some((key, print)) = &keyed {
            match self
                .keys
                .lookup(caller.user_id, key, *print, now.as_second())
            {
                Lookup::Replay(first) => {
                    let (seq, outcome) = (first.seq, first.outcome.clone());
                    self.answer_when_durable(seq, port, outcome);
                    return Ok(());
                }
                Lookup::Mismatch => {
                    let rejection = Rejection::field(
                        ErrorCode::IdempotencyKeyReused,
                        "Idempotency-Key",
                        "this idempotency key was used with a different request",
                    );
                    let _ = port.send(Err(rejection));
                    return Ok(());
                }
                Lookup::Miss => {}
            }
        }
        let ctx = Context {
            now,
            new_id: Uuid::now_v7(),
        };
        let decided = match &self.est {
            None => decide_create(self.args.id, &caller, &command),
            Some(est) => decide(est, &ctx, &caller, &command),
        };
        let events = match decided {
            Ok(events) => events,
            Err(rejection) => {
                if let Some((key, print)) = &keyed {
                    let remembered = Remembered {
                        fingerprint: *print,
                        outcome: Err(rejection.clone()),
                        seq: 0,
                        at_s: now.as_second(),
                    };
                    self.keys.remember(caller.user_id, key, remembered);
                }
                let _ = port.send(Err(rejection));
                if self.est.is_none() {
                    // Nothing to keep alive for: do not let unknown ids hold actors.
                    myself.stop(Some("no such establishment".into()));
                }
                return Ok(());
            }
        };
        let idempotency = keyed.as_ref().map(|(key, print)| IdempotencyRecord {
            user_id: caller.user_id,
            key: key.clone(),
            fingerprint: *print,
        });
        let (seq, reply) = self.commit(myself, events, idempotency, now)?;
        if let Some((key, print)) = &keyed {
            let remembered = Remembered {
                fingerprint: *print,
                outcome: Ok(reply.clone()),
                seq,
                at_s: now.as_second(),
            };
            self.keys.remember(caller.user_id, key, remembered);
        }
        self.waiting.push_back(Waiting {
            seq,
            port,
            outcome: Ok(reply),
        });
        Ok(())
    }

    fn answer_when_durable(&mut self, seq: u64, port: RpcReplyPort<Outcome>, outcome: Outcome) {
        if seq <= self.durable_seq {
            let _ = port.send(outcome);
        } else {
            self.waiting.push_back(Waiting { seq, port, outcome });
        }
    }

    /// Number, apply, publish and journal the events of one accepted command; returns the
    /// seq of its last event and its reply.
    fn commit(
        &mut self,
        myself: &ActorRef<Msg>,
        events: Vec<Event>,
        idempotency: Option<IdempotencyRecord>,
        now: Timestamp,
    ) -> Result<(u64, Reply), ActorProcessingErr> {
        let after = self.est.as_ref().map_or(0, |e| e.seq);
        let records = number(after, events, now, idempotency);
        let reply = apply_all(&mut self.est, &records)?;
        let est = self.est.as_ref().ok_or("no state after commit")?;
        let seq = est.seq;
        self.view_stale = true;
        if self.last_published.elapsed() >= PUBLISH_INTERVAL {
            self.publish_view();
        }
        self.undelivered
            .extend(records.iter().cloned().map(Arc::new));
        let append = self.args.journal.append(AppendBatch {
            establishment_id: self.args.id,
            records,
        });
        let me = myself.clone();
        tokio::spawn(async move {
            let result = append.await;
            let _ = me.cast(Msg::Appended {
                last_seq: seq,
                result,
            });
        });
        Ok((seq, reply))
    }

    async fn appended(
        &mut self,
        myself: &ActorRef<Msg>,
        last_seq: u64,
        result: Result<(), JournalError>,
    ) -> Result<(), ActorProcessingErr> {
        if let Err(failure) = result {
            let not_durable = Rejection::new(
                failure.refusal_code(),
                "the change could not be stored; retry with the same Idempotency-Key",
            );
            for waiting in self.waiting.drain(..) {
                if waiting.seq <= self.durable_seq {
                    let _ = waiting.port.send(waiting.outcome);
                } else {
                    let _ = waiting.port.send(Err(not_durable.clone()));
                }
            }
            error!(establishment_id = %self.args.id, seq = last_seq, error = %failure, "journal append failed; restarting from the store");
            return Err(failure.into());
        }
        self.durable_seq = self.durable_seq.max(last_seq);
        let durable = self.durable_seq;
        if self.view_stale {
            self.publish_view();
        }
        let mut still_waiting = VecDeque::with_capacity(self.waiting.len());
        for waiting in self.waiting.drain(..) {
            if waiting.seq <= durable {
                let _ = waiting.port.send(waiting.outcome);
            } else {
                still_waiting.push_back(waiting);
            }
        }
        self.waiting = still_waiting;
        while self.undelivered.front().is_some_and(|r| r.seq <= durable) {
            if let Some(record) = self.undelivered.pop_front() {
                let _ = self.args.live.send(record.clone());
                self.ring.push_back(record);
                if self.ring.len() > self.args.config.ring_capacity {
                    self.ring.pop_front();
                }
            }
        }
        if self.passivating.is_some() {
            self.finish_passivation(myself).await;
        }
        Ok(())
    }

    fn subscribe(&self, since: u64) -> SubscribeParts {
        let first_in_ring = self.ring.front().map_or(self.durable_seq + 1, |r| r.seq);
        let gap = (since + 1 < first_in_ring && since < self.durable_seq)
            .then_some((since, first_in_ring));
        SubscribeParts {
            durable_seq: self.durable_seq,
            backlog: self
                .ring
                .iter()
                .filter(|r| r.seq > since)
                .cloned()
                .collect(),
            gap,
            live: self.args.live.subscribe(),
        }
    }

    fn publish_view(&mut self) {
        if let Some(est) = &self.est {
            self.args.view.store(Some(View::new(est.clone())));
        }
        self.view_stale = false;
        self.last_published = std::time::Instant::now();
    }

    async fn tick(&mut self, myself: &ActorRef<Msg>) -> Result<(), ActorProcessingErr> {
        let now = self.args.clock.now();
        if self.view_stale {
            self.publish_view();
        }
        if let Some(est) = &self.est {
            let expired = expire_holds(est, now);
            if !expired.is_empty() {
                debug!(establishment_id = %self.args.id, count = expired.len(), "holds expired");
                self.commit(myself, expired, None, now)?;
            }
        }
        if let Some(est) = &self.est {
            let ctx = Context {
                now,
                new_id: Uuid::nil(),
            };
            let lapsed = expire_called(est, &ctx);
            if !lapsed.is_empty() {
                debug!(establishment_id = %self.args.id, count = lapsed.len(), "called tickets not started: no-show");
                self.commit(myself, lapsed, None, now)?;
            }
        }
        // Estimates move with time alone (a service runs over, a booking fills a gap);
        // once a minute, tell subscribers when they did.
        let minute = now.as_second().div_euclid(60);
        if minute != self.estimates_checked_minute
            && let Some(est) = &self.est
        {
            self.estimates_checked_minute = minute;
            if let Some(event) = refresh_estimates(est, now.as_second()) {
                self.commit(myself, vec![event], None, now)?;
            }
            // The window moves by the minute too.
            self.evict_history(now.as_second());
        }
        let config = self.args.config.clone();
        let now_s = now.as_second();
        let seq = self.est.as_ref().map_or(0, |e| e.seq);
        let due = snapshot_due(
            &config,
            seq.saturating_sub(self.snapshot_seq),
            self.snapshot_items,
            now_s - self.last_snapshot_s,
        );
        if due && self.is_settled() {
            self.save_snapshot(false).await;
        }
        // An open live feed keeps its establishment: stopping would close the feed
        // (`1012`) of a Pro app that is only watching, every `idle_timeout`, and the
        // app's reconnect would activate it again at once.
        // Nor while a payment is open (a checkout awaiting payment, a refund due): the
        // payment sweeper looks only at running establishments.
        let idle = now_s - self.last_activity_s >= config.idle_timeout.as_secs() as i64
            && self.args.live.receiver_count() == 0
            && !self
                .est
                .as_ref()
                .is_some_and(crate::domain::payments::has_open_payments);
        if idle && self.is_settled() {
            debug!(establishment_id = %self.args.id, "passivating idle establishment");
            self.passivating = Some(None);
            self.finish_passivation(myself).await;
        }
        Ok(())
    }

    /// Evict what left the history window by `now_s`; the next view shows it gone.
    fn evict_history(&mut self, now_s: i64) {
        if let Some(est) = self.est.as_mut()
            && evict_history(self.args.id, est, &self.args.config, now_s)
        {
            self.view_stale = true;
        }
    }

    /// Every applied event is durable and every reply released.
    fn is_settled(&self) -> bool {
        self.waiting.is_empty() && self.undelivered.is_empty()
    }

    async fn finish_passivation(&mut self, myself: &ActorRef<Msg>) {
        if !self.is_settled() {
            return;
        }
        if self.est.as_ref().is_some_and(|e| e.seq > self.snapshot_seq) {
            self.save_snapshot(true).await;
        }
        if let Some(Some(port)) = self.passivating.take() {
            let _ = port.send(());
        }
        myself.stop(Some("passivated".into()));
    }

    /// Snapshot the (settled, so durable) state; `wait` to await the store, else in the
    /// background.
    async fn save_snapshot(&mut self, wait: bool) {
        // A snapshot holds the window only, whenever it is taken.
        self.evict_history(self.args.clock.now().as_second());
        let Some(est) = &self.est else { return };
        let stored = StoredSnapshot {
            state: est.to_snapshot(),
            keys: self.keys.durable_keys(),
        };
        // The last snapshot's size and a little: one allocation, not a doubling series
        // of them that copies the snapshot again and faults in fresh pages each time
        // (from the second snapshot of an activation on).
        let mut bytes = Vec::with_capacity(self.snapshot_bytes + self.snapshot_bytes / 8);
        let bytes = match rmp_serde::encode::write_named(&mut bytes, &stored) {
            Ok(()) => bytes,
            Err(e) => {
                error!(establishment_id = %self.args.id, error = %e, "snapshot encoding failed");
                return;
            }
        };
        let snapshot = Snapshot {
            seq: est.seq,
            state: bytes,
        };
        self.snapshot_seq = est.seq;
        self.snapshot_items = est.snapshot_items() + stored.keys.len() as u64;
        self.snapshot_bytes = snapshot.state.len();
        self.last_snapshot_s = self.args.clock.now().as_second();
        let (journal, id) = (self.args.journal.clone(), self.args.id);
        let save = async move {
            if let Err(e) = journal.save_snapshot(id, snapshot).await {
                warn!(establishment_id = %id, error = %e, "snapshot not saved");
            }
        };
        if wait {
            save.await;
        } else {
            tokio::spawn(save);
        }
    }
}

/// Evict from `est` what left its history window by `now_s` (see `domain::window`);
/// whether anything did.
fn evict_history(
    id: EstablishmentId,
    est: &mut Establishment,
    config: &EngineConfig,
    now_s: i64,
) -> bool {
    let days = config
        .history_days
        .clamp(window::MIN_HISTORY_DAYS, window::MAX_HISTORY_DAYS);
    let evicted = est.evict_history(window::window_start(now_s.div_euclid(60), days));
    if !evicted.is_empty() {
        debug!(establishment_id = %id, bookings = evicted.bookings, time_off = evicted.time_off, "history left the window");
        metrics::counter!("navaro_engine_history_evicted_total", "kind" => "booking")
            .increment(evicted.bookings as u64);
        metrics::counter!("navaro_engine_history_evicted_total", "kind" => "time_off")
            .increment(evicted.time_off as u64);
    }
    !evicted.is_empty()
}

/// Whether a snapshot is due, `events` and `elapsed_s` after the last one, which held
/// `items` bookings, holds, tickets and idempotency keys.
///
/// A snapshot costs in proportion to what it holds (about 0.27 µs and 375 bytes a
/// booking, gathered and encoded), which grows with every booking an establishment
/// takes. So both limits grow with the last snapshot's size past `snapshot_every_events`
/// items (0 counts as 1):
/// - after `snapshot_every_events` events, or after as many events as the last snapshot
///   held items if that is more;
/// - or, with any new event, after `snapshot_interval` times the last snapshot's items
///   over `snapshot_every_events` (at least once).
///
/// A snapshot's cost per event then stays bounded (about two items encoded per event
/// when every event adds one) instead of growing with the establishment's history. The
/// price is in recovery after a crash: it replays up to about as many events as its
/// snapshot holds items (an actor that stops for idleness snapshots first and replays
/// none).
pub(crate) fn snapshot_due(config: &EngineConfig, events: u64, items: u64, elapsed_s: i64) -> bool {
    let every = config.snapshot_every_events.max(1);
    let scale = (items / every).max(1);
    let interval_s = config.snapshot_interval.as_secs().saturating_mul(scale);
    events >= every.max(items)
        || (events > 0 && elapsed_s >= i64::try_from(interval_s).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn snapshots_are_spaced_by_the_larger_of_the_setting_and_their_size() {
        let config = EngineConfig {
            snapshot_every_events: 1000,
            snapshot_interval: Duration::from_secs(300),
            ..EngineConfig::default()
        };
        // A small state: every 1,000 events.
        assert!(!snapshot_due(&config, 999, 10, 0));
        assert!(snapshot_due(&config, 1000, 10, 0));
        // 5,000 bookings: every 5,000 events.
        assert!(!snapshot_due(&config, 4999, 5000, 0));
        assert!(snapshot_due(&config, 5000, 5000, 0));
        // Time: only with a new event, and five times the interval for five times the
        // items.
        assert!(snapshot_due(&config, 1, 10, 300));
        assert!(!snapshot_due(&config, 1, 10, 299));
        assert!(!snapshot_due(&config, 0, 10, 3000));
        assert!(!snapshot_due(&config, 1, 5000, 1499));
        assert!(snapshot_due(&config, 1, 5000, 1500));
    }
}
