//! The actor keeps a window of its history: bookings that ended before it leave the read
//! view, the snapshots and a reactivated actor; everything inside it stays, and commands
//! on what left are refused. Real actors, the in-memory journal, a manual clock.

mod support;

use std::sync::Arc;
use std::time::Duration;

use navaro_engine::store::{Journal, MemoryJournal};
use navaro_engine::{Engine, EngineConfig, ManualClock, Request};
use navaro_protocol::{
    Booking, Caller, Command, ErrorCode, EstablishmentId, Reply, ServiceId, WeeklyHours,
};
use support::*;
use uuid::Uuid;

const NOW: &str = "2026-11-30T08:00:00Z";
const DAY_S: i64 = 86_400;

fn request(caller: Caller, command: Command) -> Request {
    Request {
        caller,
        command,
        idempotency_key: None,
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        tick_interval: Duration::from_millis(5),
        idle_timeout: Duration::from_secs(100 * DAY_S as u64),
        history_days: 7,
        ..EngineConfig::default()
    }
}

async fn open_shop(engine: &Engine) -> (EstablishmentId, ServiceId) {
    let id = EstablishmentId(Uuid::now_v7());
    let create = Command::CreateEstablishment {
        settings: settings("UTC"),
    };
    engine.execute(id, request(owner(), create)).await.unwrap();
    let add = Command::AddStaff {
        name: "Ana".into(),
        user_id: None,
        hours: WeeklyHours::every_day(&[("00:00", "24:00")]),
    };
    let Reply::Staff(staff) = engine.execute(id, request(owner(), add)).await.unwrap() else {
        panic!()
    };
    let service = Command::AddService {
        name: "Corte".into(),
        duration_minutes: 30,
        price_cents: 1000,
        currency: "BRL".into(),
        buffer_after_minutes: 10,
        staff_ids: vec![staff.id],
    };
    let Reply::Service(service) = engine.execute(id, request(owner(), service)).await.unwrap()
    else {
        panic!()
    };
    (id, service.id)
}

async fn book(engine: &Engine, id: EstablishmentId, service: ServiceId, start: &str) -> Booking {
    let command = Command::Book {
        service_id: service,
        start: ts(start),
        staff_id: None,
        customer_id: None,
        promotion: None,
    };
    match engine
        .execute(id, request(customer(1), command))
        .await
        .unwrap()
    {
        Reply::Booking(b) => b,
        other => panic!("{other:?}"),
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

#[tokio::test]
async fn bookings_that_end_before_the_window_leave_the_view_snapshots_and_recovery() {
    let clock = ManualClock::new(ts(NOW));
    let journal = MemoryJournal::new();
    let engine =
        Engine::start_with_clock(Arc::new(journal.clone()), Arc::new(clock.clone()), config())
            .await
            .unwrap();
    let (id, service) = open_shop(&engine).await;
    // Ends (buffer included) at 10:40 on the 1st; another on the 8th, one on the 20th.
    let old = book(&engine, id, service, "2026-12-01T10:00:00Z").await;
    let recent = book(&engine, id, service, "2026-12-08T10:00:00Z").await;
    let future = book(&engine, id, service, "2026-12-20T10:00:00Z").await;
    let view = engine.view(id).await.unwrap();
    assert_eq!(view.state().booking_count(), 3);

    // A minute before the old one's end leaves the window (7 days after it), it stays.
    clock.set(ts("2026-12-08T10:39:00Z"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        engine.view(id).await.unwrap().booking(old.id),
        Some(old.clone())
    );
    // Once it has, the next tick evicts it; the rest stay.
    clock.set(ts("2026-12-08T10:41:00Z"));
    eventually(async || engine.view(id).await.unwrap().booking(old.id).is_none()).await;
    let view = engine.view(id).await.unwrap();
    assert_eq!(view.booking(recent.id), Some(recent.clone()));
    assert_eq!(view.booking(future.id), Some(future.clone()));
    assert_eq!(view.history_from(), Some(ts("2026-12-01T10:41:00Z")));
    assert!(!view.holds_day(date("2026-12-01")) && view.holds_day(date("2026-12-02")));
    assert!(view.bookings_on(date("2026-12-01"), None).is_empty());

    // Commands on it are refused as on an unknown booking (the gateway tells them
    // apart with the read model); its slot's neighbours are untouched.
    for command in [
        Command::Cancel { booking_id: old.id },
        Command::MarkCompleted { booking_id: old.id },
    ] {
        let refused = engine
            .execute(id, request(staff_member(), command))
            .await
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::NotFound);
    }
    let completed = engine
        .execute(
            id,
            request(
                staff_member(),
                Command::MarkCompleted {
                    booking_id: recent.id,
                },
            ),
        )
        .await
        .unwrap();
    assert!(matches!(completed, Reply::Booking(_)));

    // Shutdown snapshots the window; a new engine on the same journal restores it
    // without the old booking, and the journal still has every event.
    engine.shutdown().await;
    let recovered = journal.load(id).await.unwrap().unwrap();
    assert!(
        recovered.events.is_empty(),
        "the snapshot is the latest state"
    );
    let engine =
        Engine::start_with_clock(Arc::new(journal.clone()), Arc::new(clock.clone()), config())
            .await
            .unwrap();
    let view = engine.view(id).await.unwrap();
    assert_eq!(view.booking(old.id), None);
    assert_eq!(view.state().booking_count(), 2);
    assert_eq!(view.history_from(), Some(ts("2026-12-01T10:41:00Z")));
    assert!(
        journal
            .records(id)
            .iter()
            .any(|r| matches!(&r.event, navaro_protocol::Event::BookingConfirmed { booking, .. } if booking.id == old.id)),
        "the journal keeps every booking"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn an_establishment_asleep_past_the_window_wakes_without_its_old_bookings() {
    let clock = ManualClock::new(ts(NOW));
    let journal = MemoryJournal::new();
    // No snapshot before the restart: recovery replays the whole journal, then evicts
    // before the first read.
    let config = EngineConfig {
        tick_interval: Duration::from_secs(3600),
        snapshot_every_events: 1_000_000,
        snapshot_interval: Duration::from_secs(1_000_000),
        ..config()
    };
    let engine = Engine::start_with_clock(
        Arc::new(journal.clone()),
        Arc::new(clock.clone()),
        config.clone(),
    )
    .await
    .unwrap();
    let (id, service) = open_shop(&engine).await;
    let old = book(&engine, id, service, "2026-12-01T10:00:00Z").await;
    let later = book(&engine, id, service, "2026-12-29T10:00:00Z").await;
    drop(engine);
    clock.set(ts("2026-12-20T00:00:00Z"));
    let engine =
        Engine::start_with_clock(Arc::new(journal.clone()), Arc::new(clock.clone()), config)
            .await
            .unwrap();
    let view = engine.view(id).await.unwrap();
    assert_eq!(view.booking(old.id), None);
    assert_eq!(view.booking(later.id), Some(later));
    assert_eq!(view.history_from(), Some(ts("2026-12-13T00:00:00Z")));
    // The slot where the old booking was is in the past either way; a new booking in
    // the window goes through as before.
    book(&engine, id, service, "2026-12-21T10:00:00Z").await;
    engine.shutdown().await;
}

/// A keyed change made just before its booking leaves the window is replayed to a retry
/// after it left (keys live a day with their answer), not refused.
#[tokio::test]
async fn a_retry_after_the_booking_left_the_window_gets_the_first_answer() {
    let clock = ManualClock::new(ts(NOW));
    let engine = Engine::start_with_clock(
        Arc::new(MemoryJournal::new()),
        Arc::new(clock.clone()),
        config(),
    )
    .await
    .unwrap();
    let (id, service) = open_shop(&engine).await;
    let old = book(&engine, id, service, "2026-12-01T10:00:00Z").await;
    // A minute before it leaves the window, a member marks it completed, with a key.
    clock.set(ts("2026-12-08T10:39:00Z"));
    let keyed = || Request {
        caller: staff_member(),
        command: Command::MarkCompleted { booking_id: old.id },
        idempotency_key: Some("mark-1".into()),
    };
    let first = engine.execute(id, keyed()).await.unwrap();
    clock.set(ts("2026-12-08T12:00:00Z"));
    eventually(async || engine.view(id).await.unwrap().booking(old.id).is_none()).await;
    assert_eq!(engine.execute(id, keyed()).await.unwrap(), first);
    // Without the key it is a new command on a booking the actor no longer has.
    let refused = engine
        .execute(
            id,
            request(
                staff_member(),
                Command::MarkCompleted { booking_id: old.id },
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::NotFound);
    engine.shutdown().await;
}
