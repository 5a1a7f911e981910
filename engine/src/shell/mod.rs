//! The runtime around the domain: establishment actors, their supervisor and registry.
//!
//! [`Engine`] is the handle the gateway holds. `execute` routes a command to its
//! establishment's actor (activating it from the store on first use) and waits for the
//! reply, which the actor releases once the command's events are durable. `view` returns
//! the actor's latest published read view without going through its mailbox.
//! `subscribe` opens a live feed that resumes after a given seq.
//!
//! Bounds: ractor mailboxes are unbounded, so the engine counts commands in flight per
//! establishment and refuses past [`EngineConfig::max_in_flight_per_establishment`] with
//! `overloaded`, instead of letting memory grow.

mod actor;
mod supervisor;
mod view;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use dashmap::DashMap;
use jiff::Timestamp;
use navaro_protocol::{Caller, Command, ErrorCode, EstablishmentId, EventRecord, Rejection, Reply};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorRef, MessagingErr};
use tokio::sync::{OnceCell, broadcast};
use tracing::warn;

use crate::clock::{Clock, SystemClock};
use crate::domain::idempotency::MAX_KEY_LEN;
use crate::store::Journal;
use actor::{Args, EstablishmentActor, Msg};
use supervisor::{Supervisor, SupervisorMsg};
pub use view::View;

/// Tunables of the actor runtime. Every bound says why it is what it is.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Commands queued or awaiting durability per establishment before `overloaded`.
    /// A busy establishment sees a few hundred a second; 1,024 is seconds of backlog at
    /// that rate, which a client should rather retry than wait for.
    pub max_in_flight_per_establishment: usize,
    /// An establishment with no command for this long is snapshotted and stopped.
    pub idle_timeout: Duration,
    /// How often each actor looks at its clock (hold expiry, snapshots, idleness).
    pub tick_interval: Duration,
    /// Snapshot after this many events (0 counts as 1), or after as many as the last
    /// snapshot held bookings, holds, tickets and idempotency keys if that is more:
    /// recovery replays at most about this many, or about as many as its snapshot holds
    /// (see `actor::snapshot_due`).
    pub snapshot_every_events: u64,
    /// ... or after this long with any new event, times the last snapshot's items over
    /// `snapshot_every_events` past that many.
    pub snapshot_interval: Duration,
    /// Recent durable events kept per establishment for live resume without the store.
    pub ring_capacity: usize,
    /// Live events buffered per subscriber; a subscriber further behind is cut off
    /// (slow consumer) rather than buffered without bound.
    pub live_channel_capacity: usize,
    /// The most events a resume reads from the journal; further behind gets `reload`.
    pub max_resume_events: usize,
    /// After an establishment fails to activate (its store is unreachable, or saturated),
    /// requests for it are refused at once for this long, with what the last attempt
    /// failed with (`unavailable`, or `overloaded`), doubling with each failure in a row
    /// up to [`EngineConfig::activation_backoff_max`]; the first request after that tries
    /// again. Without it, every request would wait out the store's timeout.
    pub activation_backoff: Duration,
    pub activation_backoff_max: Duration,
    /// Commands are refused with `overloaded` while the journal's oldest unanswered batch
    /// has waited longer than this ([`crate::store::Journal::lag`]). A store that falls
    /// this far behind is overloaded: taking more work only lengthens its queue until a
    /// call passes the store's deadline (2 s by default), which counts as the database
    /// gone, fails every actor's appends and makes every establishment, reads included,
    /// unavailable until it recovers. On the 2-core box a mix 20% past its knee did
    /// that (docs/benchmarks-history.md, 2026-11-30 late evening). Refusing early keeps reads served
    /// and the store answering; a healthy group commit takes milliseconds. It should stay
    /// well under the store's call timeout, or the breaker opens first. Zero turns the
    /// limit off.
    pub max_journal_lag: Duration,
    /// Days of past bookings each establishment keeps in memory (and in its snapshots):
    /// those that ended before are evicted, and served from the bookings read model
    /// (see `domain::window`). Between `domain::window::MIN_HISTORY_DAYS` and
    /// `MAX_HISTORY_DAYS`; values outside are clamped.
    pub history_days: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_in_flight_per_establishment: 1024,
            idle_timeout: Duration::from_secs(15 * 60),
            tick_interval: Duration::from_secs(1),
            snapshot_every_events: 1000,
            snapshot_interval: Duration::from_secs(5 * 60),
            ring_capacity: 4096,
            live_channel_capacity: 1024,
            max_resume_events: 10_000,
            activation_backoff: Duration::from_millis(250),
            activation_backoff_max: Duration::from_secs(2),
            max_journal_lag: Duration::from_millis(500),
            history_days: crate::domain::window::DEFAULT_HISTORY_DAYS,
        }
    }
}

/// A command with who sends it and, optionally, the key that makes a retry safe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub caller: Caller,
    pub command: Command,
    pub idempotency_key: Option<String>,
}

/// The engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot start the supervisor: {0}")]
    Spawn(String),
}

/// A live feed of one establishment's durable events.
pub struct Subscription {
    /// The last durable seq when the feed opened (the `hello` frame's seq).
    pub hello_seq: u64,
    /// `since` is too far behind: the client must refetch state; `backlog` is empty
    /// and `live` continues after `hello_seq`.
    pub reload: bool,
    /// Every durable event after `since` up to `hello_seq`, in order.
    pub backlog: Vec<Arc<EventRecord>>,
    /// Every event after `hello_seq`, in order. `Lagged` means the subscriber fell too
    /// far behind and must be cut off.
    pub live: broadcast::Receiver<Arc<EventRecord>>,
}

#[derive(Clone)]
struct Handle {
    actor: ActorRef<Msg>,
    view: Arc<ArcSwapOption<View>>,
    in_flight: Arc<AtomicUsize>,
}

type Slot = Arc<OnceCell<Handle>>;

pub(crate) struct Shared {
    journal: Arc<dyn Journal>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    registry: DashMap<EstablishmentId, Slot>,
    actors: DashMap<ActorId, EstablishmentId>,
    supervisor: ActorRef<SupervisorMsg>,
    stopping: AtomicBool,
    /// Establishments whose last activation failed: refused at once until the backoff
    /// ends.
    backoff: DashMap<EstablishmentId, Backoff>,
}

/// A failed activation's backoff.
struct Backoff {
    /// Refused at once until this instant (engine clock).
    until: Timestamp,
    /// Activations in a row that failed.
    failures: u32,
    /// What the last one failed with (`unavailable`, or `overloaded` when the store was
    /// up but had no connection free), and so what the refusals answer.
    code: ErrorCode,
}

/// The handle to the engine: cheap to clone, shared by every request handler.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

/// Decrements an establishment's in-flight count when the command is answered (or its
/// caller goes away).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Engine {
    /// Start with the system clock.
    pub async fn start(
        journal: Arc<dyn Journal>,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        Self::start_with_clock(journal, Arc::new(SystemClock), config).await
    }

    pub async fn start_with_clock(
        journal: Arc<dyn Journal>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let engine_slot: Arc<std::sync::OnceLock<Weak<Shared>>> = Arc::default();
        let (supervisor, _) = Actor::spawn(None, Supervisor, engine_slot.clone())
            .await
            .map_err(|e| EngineError::Spawn(e.to_string()))?;
        let shared = Arc::new(Shared {
            journal,
            clock,
            config,
            registry: DashMap::new(),
            actors: DashMap::new(),
            supervisor,
            stopping: AtomicBool::new(false),
            backoff: DashMap::new(),
        });
        let _ = engine_slot.set(Arc::downgrade(&shared));
        Ok(Engine { shared })
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Engine {
        Engine { shared }
    }

    /// The engine's notion of now (the injected clock).
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// How far behind the journal is ([`crate::store::Journal::lag`]).
    pub fn journal_lag(&self) -> Duration {
        self.shared.journal.lag()
    }

    /// How many establishments have a running actor.
    pub fn active_establishments(&self) -> usize {
        self.shared.registry.len()
    }

    /// The read views of the establishments that have a running actor (the platform
    /// admin's counters read them; nothing is activated).
    pub fn active_views(&self) -> Vec<Arc<View>> {
        self.shared
            .registry
            .iter()
            .filter_map(|entry| entry.value().get().and_then(|h| h.view.load_full()))
            .collect()
    }

    /// The establishments that have a running actor (for sweeps over live state).
    pub fn active_establishment_ids(&self) -> Vec<EstablishmentId> {
        self.shared.registry.iter().map(|e| *e.key()).collect()
    }

    /// Commands in flight for an establishment (0 when it is not active).
    pub fn in_flight(&self, id: EstablishmentId) -> usize {
        self.shared
            .registry
            .get(&id)
            .and_then(|slot| slot.get().map(|h| h.in_flight.load(Ordering::Acquire)))
            .unwrap_or(0)
    }

    /// Carry out a command and return its reply once its events are durable.
    pub async fn execute(&self, id: EstablishmentId, request: Request) -> Result<Reply, Rejection> {
        if let Some(key) = &request.idempotency_key
            && (key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control))
        {
            return Err(Rejection::invalid(
                "Idempotency-Key",
                format!("an idempotency key is 1 to {MAX_KEY_LEN} printable characters"),
            ));
        }
        // Before activation: loading an establishment is store work too.
        self.check_journal()?;
        let creating = matches!(request.command, Command::CreateEstablishment { .. });
        let mut request = Box::new(request);
        for _ in 0..3 {
            let handle = self.activate(id, creating).await?;
            let _in_flight = self.admit(&handle)?;
            match handle
                .actor
                .call(|port| Msg::Execute(request, port), None)
                .await
            {
                Ok(CallResult::Success(outcome)) => return outcome,
                Ok(_) => return Err(unavailable()),
                // Not delivered: the actor stopped in between (passivated or failed).
                Err(MessagingErr::SendErr(Msg::Execute(undelivered, _))) => {
                    self.forget(id, &handle);
                    request = undelivered;
                }
                Err(_) => return Err(unavailable()),
            }
        }
        Err(unavailable())
    }

    /// The latest read view of an establishment (activating it if needed).
    pub async fn view(&self, id: EstablishmentId) -> Result<Arc<View>, Rejection> {
        let handle = self.activate(id, false).await?;
        handle
            .view
            .load_full()
            .ok_or_else(|| Rejection::not_found("establishment"))
    }

    /// Open a live feed of the events after `since`.
    pub async fn subscribe(
        &self,
        id: EstablishmentId,
        since: u64,
    ) -> Result<Subscription, Rejection> {
        let handle = self.activate(id, false).await?;
        let parts = match handle
            .actor
            .call(|reply| Msg::Subscribe { since, reply }, None)
            .await
        {
            Ok(CallResult::Success(parts)) => parts,
            _ => return Err(unavailable()),
        };
        let mut subscription = Subscription {
            hello_seq: parts.durable_seq,
            reload: false,
            backlog: parts.backlog,
            live: parts.live,
        };
        if since > parts.durable_seq {
            subscription.reload = true;
            subscription.backlog.clear();
        } else if let Some((from, first_in_ring)) = parts.gap {
            let missing = (first_in_ring - from - 1) as usize;
            if missing > self.shared.config.max_resume_events {
                subscription.reload = true;
                subscription.backlog.clear();
            } else {
                let older = self
                    .shared
                    .journal
                    .read_after(id, from, missing)
                    .await
                    .map_err(|e| store_refused(e.refusal_code()))?;
                let mut backlog: Vec<Arc<EventRecord>> = older
                    .into_iter()
                    .filter(|r| r.seq < first_in_ring)
                    .map(Arc::new)
                    .collect();
                backlog.extend(subscription.backlog);
                subscription.backlog = backlog;
            }
        }
        Ok(subscription)
    }

    /// Settle one establishment (every applied event durable, every reply released),
    /// snapshot it and stop its actor: a cluster node handing it to another node. `true`
    /// if it was not active or stopped cleanly within `timeout`.
    pub async fn passivate(&self, id: EstablishmentId, timeout: Duration) -> bool {
        let Some(handle) = self
            .shared
            .registry
            .get(&id)
            .and_then(|slot| slot.value().get().cloned())
        else {
            return true;
        };
        let passivated = handle
            .actor
            .call(|port| Msg::Passivate(Some(port)), Some(timeout))
            .await;
        let clean = matches!(passivated, Ok(CallResult::Success(())));
        self.forget(id, &handle);
        clean
    }

    /// Snapshot every active establishment and stop its actor, then the supervisor.
    pub async fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let handles: Vec<Handle> = self
            .shared
            .registry
            .iter()
            .filter_map(|e| e.value().get().cloned())
            .collect();
        for handle in handles {
            let passivated = handle
                .actor
                .call(
                    |port| Msg::Passivate(Some(port)),
                    Some(Duration::from_secs(10)),
                )
                .await;
            if !matches!(passivated, Ok(CallResult::Success(()))) {
                warn!("an establishment did not passivate cleanly at shutdown");
            }
        }
        self.shared.supervisor.stop(None);
    }

    /// Refuse while the journal is further behind than [`EngineConfig::max_journal_lag`]
    /// (zero: never).
    fn check_journal(&self) -> Result<(), Rejection> {
        let max = self.shared.config.max_journal_lag;
        if !max.is_zero() && self.shared.journal.lag() > max {
            metrics::counter!("navaro_engine_refused_total", "reason" => "journal_lag")
                .increment(1);
            return Err(Rejection::new(
                ErrorCode::Overloaded,
                "the store is behind; retry shortly",
            ));
        }
        Ok(())
    }

    /// Take a slot in the establishment's in-flight budget, or refuse.
    fn admit(&self, handle: &Handle) -> Result<InFlight, Rejection> {
        let before = handle.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(handle.in_flight.clone());
        // The establishment's in-flight count each command finds: a histogram rather than a
        // gauge per establishment, which would be one time series per establishment.
        metrics::histogram!("navaro_engine_in_flight_per_establishment").record(before as f64);
        if before >= self.shared.config.max_in_flight_per_establishment {
            metrics::counter!("navaro_engine_refused_total", "reason" => "in_flight").increment(1);
            return Err(Rejection::new(
                ErrorCode::Overloaded,
                "too many requests for this establishment; retry shortly",
            ));
        }
        Ok(guard)
    }

    /// The running actor of an establishment, started from the store if needed. Unless
    /// `creating`, an id the store does not know is `not_found` and keeps no actor.
    async fn activate(&self, id: EstablishmentId, creating: bool) -> Result<Handle, Rejection> {
        if self.shared.stopping.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        for _ in 0..3 {
            let slot = self.shared.registry.entry(id).or_default().clone();
            // The backoff is checked and recorded inside the initialisation: off the hot
            // path (an active establishment's slot is already initialised), and the
            // callers queued behind a failed one see it at once instead of each waiting
            // out the store's timeout in turn.
            let init = async || {
                if let Some(code) = self.backing_off(id) {
                    return Err(store_refused(code));
                }
                let spawned = self.spawn(id).await;
                if let Err(refused) = &spawned {
                    self.back_off(id, refused.code);
                }
                spawned
            };
            let handle = slot.get_or_try_init(init).await?.clone();
            if handle.actor.get_status() as u8 >= ractor::ActorStatus::Stopping as u8 {
                self.forget(id, &handle);
                continue;
            }
            if !creating && handle.view.load().is_none() {
                handle.actor.stop(Some("no such establishment".into()));
                self.forget(id, &handle);
                return Err(Rejection::not_found("establishment"));
            }
            return Ok(handle);
        }
        Err(unavailable())
    }

    /// The code to refuse with, while an establishment's activation backs off.
    fn backing_off(&self, id: EstablishmentId) -> Option<ErrorCode> {
        self.shared
            .backoff
            .get(&id)
            .filter(|b| self.shared.clock.now() < b.until)
            .map(|b| b.code)
    }

    /// Record a failed activation: refuse at once, with its `code`, for the next backoff
    /// period.
    fn back_off(&self, id: EstablishmentId, code: ErrorCode) {
        let config = &self.shared.config;
        let now = self.shared.clock.now();
        let mut entry = self.shared.backoff.entry(id).or_insert(Backoff {
            until: now,
            failures: 0,
            code,
        });
        let failures = entry.failures.saturating_add(1);
        let wait = config
            .activation_backoff
            .saturating_mul(1u32 << (failures - 1).min(16))
            .min(config.activation_backoff_max);
        let until = now
            .checked_add(jiff::SignedDuration::try_from(wait).unwrap_or_default())
            .unwrap_or(now);
        *entry = Backoff {
            until,
            failures,
            code,
        };
        warn!(establishment_id = %id, failures, backoff_ms = wait.as_millis() as u64, code = code.as_str(), "activation failed; refusing at once until the backoff ends");
    }

    async fn spawn(&self, id: EstablishmentId) -> Result<Handle, Rejection> {
        let view = Arc::new(ArcSwapOption::empty());
        let (live, _) = broadcast::channel(self.shared.config.live_channel_capacity);
        let args = Args {
            id,
            journal: self.shared.journal.clone(),
            clock: self.shared.clock.clone(),
            config: self.shared.config.clone(),
            view: view.clone(),
            live,
        };
        let (actor, _) = Actor::spawn_linked(
            None,
            EstablishmentActor,
            args,
            self.shared.supervisor.get_cell(),
        )
        .await
        .map_err(|e| {
            warn!(establishment_id = %id, error = %e, "establishment failed to start");
            store_refused(startup_failure_code(&e))
        })?;
        self.shared.actors.insert(actor.get_id(), id);
        self.shared.backoff.remove(&id);
        Ok(Handle {
            actor,
            view,
            in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Drop the registry entry of an establishment if it still points at `handle`.
    fn forget(&self, id: EstablishmentId, handle: &Handle) {
        let dead = handle.actor.get_id();
        self.shared.registry.remove_if(&id, |_, slot| {
            slot.get().is_none_or(|h| h.actor.get_id() == dead)
        });
    }

    /// Called by the supervisor when an actor ended: forget it, and restart it at once if
    /// it failed (so its establishment is back before the next request needs it).
    pub(crate) async fn actor_ended(&self, actor: ActorId, failed: bool) {
        let Some((_, id)) = self.shared.actors.remove(&actor) else {
            return;
        };
        self.shared.registry.remove_if(&id, |_, slot| {
            slot.get().is_none_or(|h| h.actor.get_id() == actor)
        });
        if failed
            && !self.shared.stopping.load(Ordering::SeqCst)
            && let Err(rejection) = self.activate(id, false).await
        {
            warn!(establishment_id = %id, error = %rejection, "restart after failure did not succeed; next request retries");
        }
    }
}

fn unavailable() -> Rejection {
    Rejection::new(
        ErrorCode::Unavailable,
        "the establishment is temporarily unavailable; retry shortly",
    )
}

/// A read of the store (an activation, a feed's resume) that failed with `code`:
/// `overloaded` tells the caller the store is up but busy, anything else that the
/// establishment is unavailable.
fn store_refused(code: ErrorCode) -> Rejection {
    match code {
        ErrorCode::Overloaded => {
            Rejection::new(ErrorCode::Overloaded, "the store is busy; retry shortly")
        }
        _ => unavailable(),
    }
}

/// Why an actor did not start, as a code: its recovery's journal error's (`overloaded`
/// when a saturated store refused its reads), else `unavailable`.
fn startup_failure_code(error: &ractor::SpawnErr) -> ErrorCode {
    match error {
        ractor::SpawnErr::StartupFailed(cause) => {
            cause.downcast_ref::<crate::store::JournalError>().map_or(
                ErrorCode::Unavailable,
                crate::store::JournalError::refusal_code,
            )
        }
        _ => ErrorCode::Unavailable,
    }
}
