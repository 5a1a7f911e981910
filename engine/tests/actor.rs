//! The actor shell: serialized decisions under contention, durability before replies,
//! idempotent retries across restarts, failure and recovery, passivation, bounds, live
//! feeds. Real actors, the in-memory journal (or a gate around it to hold appends).

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use navaro_engine::store::{
    AppendBatch, Journal, JournalError, MemoryJournal, Recovered, Snapshot,
};
use navaro_engine::{Engine, EngineConfig, ManualClock, Request};
use navaro_protocol::{
    Booking, Caller, Command, ErrorCode, EstablishmentId, EventRecord, Reply, ServiceId, StaffId,
    WeeklyHours,
};
use support::*;
use tokio::sync::Semaphore;
use uuid::Uuid;

const NOW: &str = "2026-11-30T00:00:00Z";

fn request(caller: Caller, command: Command) -> Request {
    Request {
        caller,
        command,
        idempotency_key: None,
    }
}

async fn engine_on(journal: Arc<dyn Journal>, clock: &ManualClock, config: EngineConfig) -> Engine {
    Engine::start_with_clock(journal, Arc::new(clock.clone()), config)
        .await
        .unwrap()
}

/// An establishment open around the clock with `staff` people and a 15-minute service.
async fn open_shop(engine: &Engine, staff: usize) -> (EstablishmentId, Vec<StaffId>, ServiceId) {
    let id = EstablishmentId(Uuid::now_v7());
    engine
        .execute(
            id,
            request(
                owner(),
                Command::CreateEstablishment {
                    settings: settings("UTC"),
                },
            ),
        )
        .await
        .unwrap();
    let mut staff_ids = Vec::new();
    for i in 0..staff {
        let hours = WeeklyHours::every_day(&[("00:00", "24:00")]);
        let Reply::Staff(s) = engine
            .execute(
                id,
                request(
                    owner(),
                    Command::AddStaff {
                        name: format!("s{i}"),
                        user_id: None,
                        hours,
                    },
                ),
            )
            .await
            .unwrap()
        else {
            panic!()
        };
        staff_ids.push(s.id);
    }
    let command = Command::AddService {
        name: "Quick".into(),
        duration_minutes: 15,
        price_cents: 1000,
        currency: "BRL".into(),
        buffer_after_minutes: 0,
        staff_ids: staff_ids.clone(),
    };
    let Reply::Service(service) = engine.execute(id, request(owner(), command)).await.unwrap()
    else {
        panic!()
    };
    (id, staff_ids, service.id)
}

fn book(service: ServiceId, start: jiff::Timestamp) -> Command {
    Command::Book {
        service_id: service,
        start,
        staff_id: None,
        customer_id: None,
        promotion: None,
    }
}

fn booking(reply: Reply) -> Booking {
    match reply {
        Reply::Booking(b) => b,
        other => panic!("not a booking: {other:?}"),
    }
}

/// Poll until `check` holds, failing after a generous deadline (no timing in assertions).
async fn eventually(mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_racers_for_one_slot_yield_one_booking() {
    let clock = ManualClock::new(ts(NOW));
    let journal = MemoryJournal::new();
    let engine = engine_on(Arc::new(journal.clone()), &clock, EngineConfig::default()).await;
    let (id, _, service) = open_shop(&engine, 1).await;
    let start = ts("2026-11-30T10:00:00Z");
    let racers: Vec<_> = (0..1000u128)
        .map(|n| {
            let engine = engine.clone();
            tokio::spawn(async move {
                engine
                    .execute(id, request(customer(n), book(service, start)))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => won += 1,
            Err(rejection) => {
                assert_eq!(rejection.code, ErrorCode::SlotUnavailable);
                assert!(!rejection.alternatives.is_empty());
            }
        }
    }
    assert_eq!(won, 1);

    // 1,000 distinct slots (15 minutes each, 24 hours a day) all succeed.
    let bookers: Vec<_> = (0..1000i64)
        .map(|n| {
            let engine = engine.clone();
            let start = ts("2026-12-01T00:00:00Z")
                .checked_add(jiff::SignedDuration::from_mins(15 * n))
                .unwrap();
            tokio::spawn(async move {
                engine
                    .execute(
                        id,
                        request(customer(5000 + n as u128), book(service, start)),
                    )
                    .await
            })
        })
        .collect();
    for booker in bookers {
        booker
            .await
            .unwrap()
            .expect("a distinct slot is always free");
    }
    let records = journal.records(id);
    assert!(
        records
            .iter()
            .enumerate()
            .all(|(i, r)| r.seq == i as u64 + 1),
        "gap-free seqs"
    );
    let view = engine.view(id).await.unwrap();
    assert_eq!(view.state().bookings.len(), 1001);
}

#[tokio::test]
async fn retries_with_a_key_get_the_first_answer_even_after_a_restart() {
    let clock = ManualClock::new(ts(NOW));
    let journal = MemoryJournal::new();
    let engine = engine_on(Arc::new(journal.clone()), &clock, EngineConfig::default()).await;
    let (id, _, service) = open_shop(&engine, 2).await;
    let keyed = |command: Command| Request {
        caller: customer(1),
        command,
        idempotency_key: Some("k-1".into()),
    };
    let first = booking(
        engine
            .execute(id, keyed(book(service, ts("2026-11-30T10:00:00Z"))))
            .await
            .unwrap(),
    );
    let again = booking(
        engine
            .execute(id, keyed(book(service, ts("2026-11-30T10:00:00Z"))))
            .await
            .unwrap(),
    );
    assert_eq!(first, again);
    let other = engine
        .execute(id, keyed(book(service, ts("2026-11-30T11:00:00Z"))))
        .await
        .unwrap_err();
    assert_eq!(other.code, ErrorCode::IdempotencyKeyReused);
    // The same key from another user is another request.
    let theirs = Request {
        caller: customer(2),
        command: book(service, ts("2026-11-30T10:00:00Z")),
        idempotency_key: Some("k-1".into()),
    };
    assert_ne!(
        booking(engine.execute(id, theirs).await.unwrap()).id,
        first.id
    );
    engine.shutdown().await;

    // A new engine on the same journal (a restarted process) remembers the key.
    let engine = engine_on(Arc::new(journal.clone()), &clock, EngineConfig::default()).await;
    let after_restart = booking(
        engine
            .execute(id, keyed(book(service, ts("2026-11-30T10:00:00Z"))))
            .await
            .unwrap(),
    );
    assert_eq!(after_restart, first);
    assert_eq!(engine.view(id).await.unwrap().state().bookings.len(), 2);
    let bad = Request {
        idempotency_key: Some("x".repeat(129)),
        ..keyed(book(service, ts("2026-11-30T12:00:00Z")))
    };
    assert_eq!(
        engine.execute(id, bad).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
}

#[tokio::test]
async fn a_failed_append_confirms_nothing_and_the_actor_recovers_from_the_store() {
    let clock = ManualClock::new(ts(NOW));
    let journal = MemoryJournal::new();
    let engine = engine_on(Arc::new(journal.clone()), &clock, EngineConfig::default()).await;
    let (id, _, service) = open_shop(&engine, 1).await;
    let durable_before = journal.records(id).len();
    journal.set_failing(true);
    let err = engine
        .execute(
            id,
            request(customer(1), book(service, ts("2026-11-30T10:00:00Z"))),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    journal.set_failing(false);
    // The restarted actor knows only what is durable: the slot is free again.
    let retry = engine
        .execute(
            id,
            request(customer(1), book(service, ts("2026-11-30T10:00:00Z"))),
        )
        .await;
    let booked = booking(retry.expect("service comes back by itself when the store does"));
    assert_eq!(
        booked.seq as usize,
        durable_before + 1,
        "seqs continue from the durable state, gap-free"
    );
    assert_eq!(journal.records(id).len(), durable_before + 1);
}

/// A journal further behind than `max_journal_lag` gets no more work: commands are
/// refused at once with `overloaded`, without touching the state, while reads go on;
/// once it has caught up they are taken again.
#[tokio::test]
async fn commands_are_refused_while_the_journal_is_behind() {
    let clock = ManualClock::new(ts(NOW));
    let journal = MemoryJournal::new();
    let config = EngineConfig {
        max_journal_lag: Duration::from_millis(500),
        ..EngineConfig::default()
    };
    let engine = engine_on(Arc::new(journal.clone()), &clock, config).await;
    let (id, _, service) = open_shop(&engine, 1).await;
    let durable_before = journal.records(id).len();
    let at = ts("2026-11-30T10:00:00Z");
    journal.set_lag(Duration::from_millis(500));
    let at_the_limit = engine.execute(id, request(customer(1), book(service, at)));
    booking(
        at_the_limit
            .await
            .expect("a lag at the limit is still taken"),
    );
    journal.set_lag(Duration::from_millis(501));
    let refused = engine
        .execute(
            id,
            request(customer(2), book(service, ts("2026-11-30T11:00:00Z"))),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::Overloaded);
    assert_eq!(journal.records(id).len(), durable_before + 1);
    engine.view(id).await.expect("reads are served");
    journal.set_lag(Duration::ZERO);
    let taken = engine
        .execute(
            id,
            request(customer(2), book(service, ts("2026-11-30T11:00:00Z"))),
        )
        .await;
    booking(taken.expect("taken again once the journal caught up"));
    assert_eq!(journal.records(id).len(), durable_before + 2);
}

/// An establishment opened and shut down on a memory journal, then a new engine over a
/// [`Controlled`] journal on the same memory, set up by `prepare` before the engine
/// starts (activation backoff 1 s, at most 4 s): the establishment's next command
/// activates it from the store.
async fn reopened(
    clock: &ManualClock,
    prepare: impl FnOnce(&Controlled),
) -> (Engine, Controlled, EstablishmentId, ServiceId) {
    let memory = MemoryJournal::new();
    let first = engine_on(Arc::new(memory.clone()), clock, EngineConfig::default()).await;
    let (id, _, service) = open_shop(&first, 1).await;
    first.shutdown().await;
    let journal = Controlled::over(memory);
    prepare(&journal);
    let config = EngineConfig {
        activation_backoff: Duration::from_secs(1),
        activation_backoff_max: Duration::from_secs(4),
        ..EngineConfig::default()
    };
    let engine = engine_on(Arc::new(journal.clone()), clock, config).await;
    (engine, journal, id, service)
}

#[tokio::test]
async fn an_unreachable_store_is_answered_at_once_until_the_backoff_ends() {
    use std::sync::atomic::Ordering::SeqCst;
    let clock = ManualClock::new(ts(NOW));
    let (engine, journal, id, service) = reopened(&clock, |j| j.down.store(true, SeqCst)).await;
    let attempt = async || {
        let at_ten = book(service, ts("2026-11-30T10:00:00Z"));
        engine.execute(id, request(customer(1), at_ten)).await
    };
    assert_eq!(attempt().await.unwrap_err().code, ErrorCode::Unavailable);
    assert_eq!(journal.loads.load(SeqCst), 1);
    // Within the backoff: refused without asking the store.
    for _ in 0..5 {
        assert_eq!(attempt().await.unwrap_err().code, ErrorCode::Unavailable);
    }
    assert_eq!(journal.loads.load(SeqCst), 1);
    // After it: one more try, which fails and doubles the wait.
    clock.advance_seconds(1);
    assert_eq!(attempt().await.unwrap_err().code, ErrorCode::Unavailable);
    assert_eq!(journal.loads.load(SeqCst), 2);
    clock.advance_seconds(1);
    assert_eq!(attempt().await.unwrap_err().code, ErrorCode::Unavailable);
    assert_eq!(
        journal.loads.load(SeqCst),
        2,
        "the second wait is two seconds"
    );
    // The store is back: the first request after the backoff activates and books.
    journal.down.store(false, SeqCst);
    clock.advance_seconds(1);
    booking(attempt().await.expect("service comes back with the store"));
    assert_eq!(journal.loads.load(SeqCst), 3);
    assert!(engine.view(id).await.is_ok(), "served by the active actor");
}

#[tokio::test]
async fn a_saturated_store_at_activation_is_answered_overloaded_until_the_backoff_ends() {
    use std::sync::atomic::Ordering::SeqCst;
    let clock = ManualClock::new(ts(NOW));
    let (engine, journal, id, service) = reopened(&clock, |j| j.busy.store(true, SeqCst)).await;
    let attempt = async || {
        let at_ten = book(service, ts("2026-11-30T10:00:00Z"));
        engine.execute(id, request(customer(1), at_ten)).await
    };
    assert_eq!(attempt().await.unwrap_err().code, ErrorCode::Overloaded);
    // Within the backoff: refused at once, with the same code.
    assert_eq!(attempt().await.unwrap_err().code, ErrorCode::Overloaded);
    assert_eq!(journal.loads.load(SeqCst), 1);
    // The next failure is an outage: the refusals say so.
    journal.busy.store(false, SeqCst);
    journal.down.store(true, SeqCst);
    clock.advance_seconds(1);
    assert_eq!(attempt().await.unwrap_err().code, ErrorCode::Unavailable);
    assert_eq!(attempt().await.unwrap_err().code, ErrorCode::Unavailable);
    assert_eq!(journal.loads.load(SeqCst), 2);
    journal.down.store(false, SeqCst);
    clock.advance_seconds(2);
    booking(attempt().await.expect("service comes back with the store"));
    assert_eq!(journal.loads.load(SeqCst), 3);
}

#[tokio::test]
async fn a_resume_refused_by_a_saturated_store_is_answered_overloaded() {
    use std::sync::atomic::Ordering::SeqCst;
    let clock = ManualClock::new(ts(NOW));
    let journal = Controlled::over(MemoryJournal::new());
    let (engine, id, _) = ring_of_four_after_ten_bookings(Arc::new(journal.clone()), &clock).await;
    // The ring holds 10..=13; a resume from 2 reads 3..=9 from the journal.
    journal.busy.store(true, SeqCst);
    let refused = engine.subscribe(id, 2).await.err().map(|r| r.code);
    assert_eq!(refused, Some(ErrorCode::Overloaded));
    assert!(
        engine.subscribe(id, 11).await.is_ok(),
        "a resume the ring covers reads nothing"
    );
    journal.busy.store(false, SeqCst);
    let resumed = engine.subscribe(id, 2).await.ok().map(|s| s.backlog.len());
    assert_eq!(resumed, Some(11));
}

/// A memory journal a test controls: appends wait for a permit of `gate` (to hold events
/// "in flight") and fail with `failing` while it is set, loads fail while `down` is set
/// (`unavailable`) or `busy` is (`overloaded`, a saturated pool), and so do reads of
/// older events while `busy` is; `loads` counts the loads asked for.
#[derive(Clone)]
struct Controlled {
    inner: MemoryJournal,
    gate: Arc<Semaphore>,
    failing: Arc<std::sync::Mutex<Option<JournalError>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
    busy: Arc<std::sync::atomic::AtomicBool>,
    loads: Arc<std::sync::atomic::AtomicUsize>,
}

impl Controlled {
    fn over(inner: MemoryJournal) -> Controlled {
        Controlled {
            inner,
            gate: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            failing: Arc::default(),
            down: Arc::default(),
            busy: Arc::default(),
            loads: Arc::default(),
        }
    }
}

impl Journal for Controlled {
    fn append(&self, batch: AppendBatch) -> BoxFuture<'static, Result<(), JournalError>> {
        let (inner, gate) = (self.inner.clone(), self.gate.clone());
        let failing = self.failing.lock().unwrap().clone();
        Box::pin(async move {
            gate.acquire().await.unwrap().forget();
            match failing {
                Some(failure) => Err(failure),
                None => inner.append(batch).await,
            }
        })
    }
    fn load(&self, id: EstablishmentId) -> BoxFuture<'_, Result<Option<Recovered>, JournalError>> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(async { Err(JournalError::Unavailable("store down".into())) });
        }
        if self.busy.load(std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(async { Err(JournalError::Overloaded("no connection free".into())) });
        }
        self.inner.load(id)
    }
    fn save_snapshot(
        &self,
        id: EstablishmentId,
        snapshot: Snapshot,
    ) -> BoxFuture<'_, Result<(), JournalError>> {
        self.inner.save_snapshot(id, snapshot)
    }
    fn read_after(
        &self,
        id: EstablishmentId,
        since: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, JournalError>> {
        if self.busy.load(std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(async { Err(JournalError::Overloaded("no connection free".into())) });
        }
        self.inner.read_after(id, since, limit)
    }
}

#[tokio::test]
async fn the_actor_pipelines_reads_do_not_wait_and_replies_wait_for_durability() {
    let clock = ManualClock::new(ts(NOW));
    let gated = Controlled {
        gate: Arc::new(Semaphore::new(1000)),
        ..Controlled::over(MemoryJournal::new())
    };
    let config = EngineConfig {
        max_in_flight_per_establishment: 2,
        ..EngineConfig::default()
    };
    let engine = engine_on(Arc::new(gated.clone()), &clock, config).await;
    let (id, _, service) = open_shop(&engine, 1).await;
    // Close the gate: appends now wait.
    let open_permits = gated.gate.available_permits();
    gated
        .gate
        .acquire_many(open_permits as u32)
        .await
        .unwrap()
        .forget();

    let slot = ts("2026-11-30T10:00:00Z");
    let first = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .execute(id, request(customer(1), book(service, slot)))
                .await
        }
    });
    // The actor already applied the first booking: the read view shows it, without waiting.
    eventually(async || engine.view(id).await.unwrap().state().bookings.len() == 1).await;
    assert!(
        !first.is_finished(),
        "no reply before the events are durable"
    );
    // The next decision already sees the pending booking: refused at once (a refusal
    // changes nothing, so it does not wait for the journal).
    let second = engine
        .execute(id, request(customer(2), book(service, slot)))
        .await
        .unwrap_err();
    assert_eq!(second.code, ErrorCode::SlotUnavailable);
    let third = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .execute(
                    id,
                    request(customer(3), book(service, ts("2026-11-30T11:00:00Z"))),
                )
                .await
        }
    });
    eventually(async || engine.in_flight(id) == 2).await;
    // Past the in-flight cap: refused at once, typed.
    let fourth = engine
        .execute(
            id,
            request(customer(4), book(service, ts("2026-11-30T12:00:00Z"))),
        )
        .await
        .unwrap_err();
    assert_eq!(fourth.code, ErrorCode::Overloaded);
    assert!(!first.is_finished() && !third.is_finished());
    gated.gate.add_permits(1000);
    booking(first.await.unwrap().unwrap());
    booking(third.await.unwrap().unwrap());
    assert_eq!(engine.in_flight(id), 0);
}

#[tokio::test]
async fn idle_establishments_passivate_and_come_back_from_their_snapshot() {
    let clock = ManualClock::new(ts(NOW));
    let journal = MemoryJournal::new();
    let config = EngineConfig {
        tick_interval: Duration::from_millis(5),
        idle_timeout: Duration::from_secs(600),
        ..EngineConfig::default()
    };
    let engine = engine_on(Arc::new(journal.clone()), &clock, config).await;
    let (id, _, service) = open_shop(&engine, 1).await;
    let made = booking(
        engine
            .execute(
                id,
                request(customer(1), book(service, ts("2026-11-30T10:00:00Z"))),
            )
            .await
            .unwrap(),
    );
    assert_eq!(engine.active_establishments(), 1);
    clock.advance_seconds(601);
    eventually(async || engine.active_establishments() == 0).await;
    let recovered = journal.load(id).await.unwrap().unwrap();
    assert_eq!(
        recovered.snapshot.as_ref().map(|s| s.seq),
        Some(made.seq),
        "passivation snapshots first"
    );
    assert!(recovered.events.is_empty());
    let view = engine.view(id).await.unwrap();
    assert_eq!(view.booking(made.id), Some(made));
    assert_eq!(view.seq(), journal.records(id).len() as u64);
}

#[tokio::test]
async fn an_establishment_with_an_open_live_feed_is_not_passivated() {
    let clock = ManualClock::new(ts(NOW));
    let config = EngineConfig {
        tick_interval: Duration::from_millis(5),
        idle_timeout: Duration::from_secs(600),
        ..EngineConfig::default()
    };
    let engine = engine_on(Arc::new(MemoryJournal::new()), &clock, config).await;
    let (watched, _, _) = open_shop(&engine, 1).await;
    let (_quiet, _, _) = open_shop(&engine, 1).await;
    let mut feed = engine.subscribe(watched, 0).await.unwrap();
    clock.advance_seconds(601);
    // The quiet one stops; the watched one stays through many more ticks past its
    // idle timeout, its feed open.
    eventually(async || engine.active_establishments() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(engine.active_establishments(), 1);
    assert!(
        matches!(
            feed.live.try_recv(),
            Err(tokio::sync::broadcast::error::TryRecvError::Empty)
        ),
        "the feed is still open"
    );
    // Once nobody watches, it is idle like any other.
    drop(feed);
    eventually(async || engine.active_establishments() == 0).await;
}

/// After a snapshot of a long history, the next comes after as many events as it held
/// items when that is more than `snapshot_every_events`: an establishment with thousands
/// of bookings is not encoded whole every thousand events.
#[tokio::test]
async fn snapshots_of_a_long_history_are_spaced_by_its_size() {
    let clock = ManualClock::new(ts(NOW));
    let journal = MemoryJournal::new();
    let config = EngineConfig {
        tick_interval: Duration::from_millis(5),
        snapshot_every_events: 5,
        // Never idle here: passivation would snapshot on its own account.
        idle_timeout: Duration::from_secs(86_400),
        ..EngineConfig::default()
    };
    let engine = engine_on(Arc::new(journal.clone()), &clock, config).await;
    let (id, _, service) = open_shop(&engine, 1).await;
    // One booking a quarter hour from tomorrow on, each by its own customer: one event
    // and one item each.
    let mut booked = 0;
    let mut book_next = async |count: usize| {
        for _ in 0..count {
            let start = ts("2026-12-01T00:00:00Z") + jiff::SignedDuration::from_mins(15 * booked);
            let reply = engine
                .execute(
                    id,
                    request(customer(1000 + booked as u128), book(service, start)),
                )
                .await
                .unwrap();
            booking(reply);
            booked += 1;
        }
    };
    let snapshot_at = async || {
        let recovered = journal.load(id).await.unwrap().unwrap();
        recovered.snapshot.map_or(0, |s| s.seq)
    };
    book_next(40).await;
    // Any new event and long enough (the interval times 40 items over 5): a snapshot
    // of all 40.
    clock.advance_seconds(3600);
    let seq = engine.view(id).await.unwrap().seq();
    eventually(async || snapshot_at().await == seq).await;
    // After a snapshot of `items` items at `seq`: none `items - 1` events on, though
    // that is far past 5; the next at the `items`th. Twice: 40 items, then 80.
    let mut at = seq;
    for items in [40, 80] {
        book_next(items - 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(snapshot_at().await, at, "{items} items, one event short");
        book_next(1).await;
        at = engine.view(id).await.unwrap().seq();
        eventually(async || snapshot_at().await == at).await;
    }
}

#[tokio::test]
async fn holds_expire_on_the_actor_clock() {
    let clock = ManualClock::new(ts(NOW));
    let journal = MemoryJournal::new();
    let config = EngineConfig {
        tick_interval: Duration::from_millis(5),
        ..EngineConfig::default()
    };
    let engine = engine_on(Arc::new(journal.clone()), &clock, config).await;
    let (id, _, service) = open_shop(&engine, 1).await;
    let command = Command::PlaceHold {
        service_id: service,
        start: ts("2026-11-30T10:00:00Z"),
        staff_id: None,
        ttl_seconds: 60,
    };
    let Reply::Hold(hold) = engine
        .execute(id, request(customer(1), command))
        .await
        .unwrap()
    else {
        panic!()
    };
    clock.advance_seconds(61);
    eventually(async || engine.view(id).await.unwrap().state().holds.is_empty()).await;
    let last = journal.records(id).pop().unwrap();
    assert!(
        matches!(last.event, navaro_protocol::Event::HoldEnded { hold: ref h, reason: navaro_protocol::HoldEnd::Expired } if h.id == hold.id)
    );
}

#[tokio::test]
async fn the_clock_publishes_estimates_when_a_service_runs_over() {
    let clock = ManualClock::new(ts(NOW));
    let journal = MemoryJournal::new();
    let config = EngineConfig {
        tick_interval: Duration::from_millis(5),
        ..EngineConfig::default()
    };
    let engine = engine_on(Arc::new(journal.clone()), &clock, config).await;
    let (id, staff, service) = open_shop(&engine, 1).await;
    let join = |who| {
        request(
            customer(who),
            Command::JoinQueue {
                service_id: service,
                staff_id: None,
                name: None,
            },
        )
    };
    let Reply::Ticket(first) = engine.execute(id, join(1)).await.unwrap() else {
        panic!()
    };
    let call = request(staff_member(), Command::CallNext { staff_id: staff[0] });
    engine.execute(id, call).await.unwrap();
    let start = request(
        staff_member(),
        Command::StartTicket {
            ticket_id: first.id,
        },
    );
    engine.execute(id, start).await.unwrap();
    let Reply::Ticket(second) = engine.execute(id, join(2)).await.unwrap() else {
        panic!()
    };
    assert_eq!(second.eta, Some(ts("2026-11-30T00:15:00Z")));
    // Twenty minutes into a fifteen-minute service: the estimate follows the clock.
    clock.advance_seconds(20 * 60);
    let refreshed = async || {
        journal
            .records(id)
            .iter()
            .any(|r| r.event.kind() == "queue.estimates")
    };
    eventually(refreshed).await;
    let records = journal.records(id);
    let event = &records.last().unwrap().event;
    let place = event.queue_positions().unwrap()[0];
    assert_eq!(
        (place.ticket_id, place.eta),
        (second.id, Some(ts("2026-11-30T00:20:00Z")))
    );
    // Told once: later ticks in the same state add nothing.
    let count = records.len();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(journal.records(id).len(), count);
}

#[tokio::test]
async fn unknown_establishments_are_not_found_and_keep_no_actor() {
    let clock = ManualClock::new(ts(NOW));
    let engine = engine_on(
        Arc::new(MemoryJournal::new()),
        &clock,
        EngineConfig::default(),
    )
    .await;
    let ghost = EstablishmentId(Uuid::now_v7());
    assert_eq!(
        engine.view(ghost).await.unwrap_err().code,
        ErrorCode::NotFound
    );
    let err = engine
        .execute(
            ghost,
            request(
                customer(1),
                Command::Cancel {
                    booking_id: navaro_protocol::BookingId(Uuid::nil()),
                },
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    eventually(async || engine.active_establishments() == 0).await;
}

/// An engine whose live ring holds 4 events (resumes read up to 20 from the journal),
/// with one establishment of one staff member and ten bookings: seqs 1..=13 durable,
/// 10..=13 in the ring.
async fn ring_of_four_after_ten_bookings(
    journal: Arc<dyn Journal>,
    clock: &ManualClock,
) -> (Engine, EstablishmentId, ServiceId) {
    let config = EngineConfig {
        ring_capacity: 4,
        max_resume_events: 20,
        ..EngineConfig::default()
    };
    let engine = engine_on(journal, clock, config).await;
    let (id, _, service) = open_shop(&engine, 1).await; // seqs 1..=3
    for n in 0..10i64 {
        let start = ts("2026-11-30T10:00:00Z")
            .checked_add(jiff::SignedDuration::from_mins(15 * n))
            .unwrap();
        booking(
            engine
                .execute(id, request(customer(n as u128), book(service, start)))
                .await
                .unwrap(),
        );
    }
    (engine, id, service)
}

#[tokio::test]
async fn live_feeds_resume_from_the_ring_from_the_journal_or_reload() {
    let clock = ManualClock::new(ts(NOW));
    let journal = MemoryJournal::new();
    let (engine, id, service) =
        ring_of_four_after_ten_bookings(Arc::new(journal.clone()), &clock).await;
    // seqs 1..=13 are durable; the ring holds 10..=13.
    let seqs =
        |s: &navaro_engine::Subscription| s.backlog.iter().map(|r| r.seq).collect::<Vec<_>>();
    let recent = engine.subscribe(id, 11).await.unwrap();
    assert_eq!(
        (recent.hello_seq, recent.reload, seqs(&recent)),
        (13, false, vec![12, 13])
    );
    let older = engine.subscribe(id, 2).await.unwrap();
    assert_eq!(
        seqs(&older),
        (3..=13).collect::<Vec<_>>(),
        "older events come from the journal, once each, in order"
    );
    let mut live = engine.subscribe(id, 13).await.unwrap();
    assert!(live.backlog.is_empty());
    engine
        .execute(
            id,
            request(customer(77), book(service, ts("2026-12-01T10:00:00Z"))),
        )
        .await
        .unwrap();
    let next = live.live.recv().await.unwrap();
    assert_eq!(next.seq, 14);
    // Too far behind (more than max_resume_events) or ahead of the durable seq: reload.
    for _ in 0..20 {
        engine
            .execute(
                id,
                request(
                    owner(),
                    Command::UpdateSettings {
                        patch: Default::default(),
                    },
                ),
            )
            .await
            .unwrap();
    }
    assert!(engine.subscribe(id, 0).await.unwrap().reload);
    assert!(engine.subscribe(id, 10_000).await.unwrap().reload);
}

#[tokio::test]
async fn an_append_the_store_refuses_answers_overloaded_or_unavailable_as_the_store_says() {
    let clock = ManualClock::new(ts(NOW));
    let journal = Controlled::over(MemoryJournal::new());
    let engine = engine_on(Arc::new(journal.clone()), &clock, EngineConfig::default()).await;
    let (id, _, service) = open_shop(&engine, 1).await;
    let cases = [
        (
            JournalError::Overloaded("every connection busy".into()),
            ErrorCode::Overloaded,
        ),
        (
            JournalError::Unavailable("connection refused".into()),
            ErrorCode::Unavailable,
        ),
    ];
    let slot = ts("2026-11-30T10:00:00Z");
    for (n, (failure, code)) in cases.into_iter().enumerate() {
        *journal.failing.lock().unwrap() = Some(failure);
        let refused = engine
            .execute(id, request(customer(n as u128 + 1), book(service, slot)))
            .await
            .unwrap_err();
        assert_eq!(refused.code, code, "{refused:?}");
        *journal.failing.lock().unwrap() = None;
    }
    // Nothing was stored: the actor reloaded and the slot is still free.
    let mut booked = None;
    for _ in 0..50 {
        match engine
            .execute(id, request(customer(9), book(service, slot)))
            .await
        {
            Ok(reply) => {
                booked = Some(booking(reply));
                break;
            }
            Err(e) if e.code == ErrorCode::Unavailable => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(
        booked.is_some(),
        "the slot could be booked after the failures"
    );
}
