//! Webhook delivery against real HTTP receivers and a real Postgres, with an injected
//! clock: the retry schedule, one id across attempts, 410, Retry-After, the SSRF guard.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{FreshDb, enqueue, receiver, row};
use navaro_notify::webhook::webhook_id;
use navaro_notify::{ManualClock, WebhookOptions, WebhookSender};
use uuid::Uuid;

const T0: i64 = 1_800_000_000_000_000;

fn options(allow_private: bool) -> WebhookOptions {
    WebhookOptions {
        timeout: Duration::from_secs(5),
        allow_private_addresses: allow_private,
        ..WebhookOptions::default()
    }
}

async fn endpoint(db: &navaro_notify::Db, url: &str) -> Uuid {
    db.create_endpoint(Uuid::now_v7(), url, &["booking.confirmed".into()], T0)
        .await
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test]
async fn a_failing_receiver_gets_the_same_id_on_the_schedule_then_success() {
    let fresh = FreshDb::create().await;
    let db = fresh.db().await;
    let clock = ManualClock::new(T0);
    let sender = WebhookSender::new(db.clone(), Arc::new(clock.clone()), options(true)).unwrap();
    let (addr, seen) = receiver(vec![(500, None), (500, None), (200, None)]).await;
    let ep = endpoint(&db, &format!("http://{addr}/hook")).await;
    let id = enqueue(
        &db,
        "webhook",
        ep,
        "booking.confirmed",
        r#"{"type":"booking.confirmed"}"#,
        T0,
    )
    .await;

    assert_eq!(
        sender.run_once().await.unwrap(),
        1,
        "the first attempt goes at once"
    );
    assert_eq!(
        row(&db, id).await.2,
        T0 + 5_000_000,
        "the second is due 5 s later"
    );
    clock.advance_seconds(4);
    assert_eq!(sender.run_once().await.unwrap(), 0, "not before its time");
    clock.advance_seconds(1);
    assert_eq!(sender.run_once().await.unwrap(), 1);
    assert_eq!(
        row(&db, id).await.2,
        T0 + 5_000_000 + 300_000_000,
        "the third 5 min later"
    );
    clock.advance_seconds(299);
    assert_eq!(sender.run_once().await.unwrap(), 0);
    clock.advance_seconds(1);
    assert_eq!(sender.run_once().await.unwrap(), 1);

    let (status, attempts, _, _) = row(&db, id).await;
    assert_eq!((status.as_str(), attempts), ("delivered", 3));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    let ids: Vec<&str> = seen
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap())
        .collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one webhook-id across attempts: {ids:?}"
    );
    assert!(ids[0].starts_with("msg_"));
    let stamps: Vec<i64> = seen
        .iter()
        .map(|(h, _)| h["webhook-timestamp"].to_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        stamps,
        [T0 / 1_000_000, T0 / 1_000_000 + 5, T0 / 1_000_000 + 305]
    );
    assert!(
        seen[0].0["webhook-signature"]
            .to_str()
            .unwrap()
            .starts_with("v1,")
    );
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_retry_after_is_honoured() {
    let fresh = FreshDb::create().await;
    let db = fresh.db().await;
    let clock = ManualClock::new(T0);
    let sender = WebhookSender::new(db.clone(), Arc::new(clock.clone()), options(true)).unwrap();

    let (gone, _) = receiver(vec![(410, None)]).await;
    let ep = endpoint(&db, &format!("http://{gone}/")).await;
    let id = enqueue(&db, "webhook", ep, "booking.confirmed", "{}", T0).await;
    let later = enqueue(&db, "webhook", ep, "booking.confirmed", "{}", T0 + 1).await;
    sender.run_once().await.unwrap();
    assert_eq!(row(&db, id).await.0, "failed");
    let stored = db.endpoint(ep).await.unwrap().unwrap();
    assert!(stored.disabled_reason.unwrap().contains("410"));
    clock.advance_seconds(1);
    sender.run_once().await.unwrap();
    assert_eq!(
        row(&db, later).await.0,
        "cancelled",
        "nothing more goes to a disabled endpoint"
    );

    let (busy, _) = receiver(vec![(503, Some(120))]).await;
    let ep = endpoint(&db, &format!("http://{busy}/")).await;
    let id = enqueue(
        &db,
        "webhook",
        ep,
        "booking.confirmed",
        "{}",
        clock_now(&clock),
    )
    .await;
    sender.run_once().await.unwrap();
    let (status, attempts, due, error) = row(&db, id).await;
    assert_eq!((status.as_str(), attempts), ("pending", 1));
    assert_eq!(
        due,
        clock_now(&clock) + 120_000_000,
        "Retry-After: 120 beats the 5 s step"
    );
    assert!(error.unwrap().contains("503"));
}

fn clock_now(clock: &ManualClock) -> i64 {
    use navaro_notify::Clock;
    clock.now_us()
}

#[tokio::test]
async fn an_endpoint_failing_for_days_is_disabled_and_the_owners_told() {
    let fresh = FreshDb::create().await;
    let db = fresh.db().await;
    let clock = ManualClock::new(T0);
    let tell = WebhookOptions {
        tell_owners: true,
        ..options(true)
    };
    let sender = WebhookSender::new(db.clone(), Arc::new(clock.clone()), tell).unwrap();
    let (down, _) = receiver(vec![(500, None)]).await;
    let establishment = Uuid::now_v7();
    let owner = Uuid::now_v7();
    let navaro_notify::Db::Pg(pool) = &db else {
        panic!()
    };
    sqlx::query("INSERT INTO users VALUES ($1, 'o@example.com', 'o', 'x', now())")
        .bind(owner)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO memberships VALUES ($1, $2, 'owner')")
        .bind(owner)
        .bind(establishment)
        .execute(pool)
        .await
        .unwrap();
    let ep = db
        .create_endpoint(
            establishment,
            &format!("http://{down}/"),
            &["booking.confirmed".into()],
            T0,
        )
        .await
        .unwrap()
        .unwrap()
        .id;
    enqueue(&db, "webhook", ep, "booking.confirmed", "{}", T0).await;
    sender.run_once().await.unwrap();
    assert!(
        db.endpoint(ep)
            .await
            .unwrap()
            .unwrap()
            .disabled_reason
            .is_none()
    );
    clock.advance_seconds(5 * 24 * 3600);
    enqueue(
        &db,
        "webhook",
        ep,
        "booking.confirmed",
        "{}",
        clock_now(&clock),
    )
    .await;
    sender.run_once().await.unwrap();
    let reason = db.endpoint(ep).await.unwrap().unwrap().disabled_reason;
    assert!(
        reason.unwrap().contains("failing"),
        "disabled after five days of failures"
    );
}

#[tokio::test]
async fn internal_addresses_are_refused_unless_allowed() {
    let fresh = FreshDb::create().await;
    let db = fresh.db().await;
    let clock = ManualClock::new(T0);
    let guarded = WebhookSender::new(db.clone(), Arc::new(clock.clone()), options(false)).unwrap();
    let (addr, seen) = receiver(vec![(200, None)]).await;
    let port = addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
    ] {
        let ep = endpoint(&db, &url).await;
        let id = enqueue(
            &db,
            "webhook",
            ep,
            "booking.confirmed",
            "{}",
            clock_now(&clock),
        )
        .await;
        guarded.run_once().await.unwrap();
        let (status, _, _, error) = row(&db, id).await;
        assert_eq!(status, "pending", "{url}: retried later, not delivered");
        let error = error.unwrap_or_default();
        assert!(error.contains("refused address"), "{url}: {error}");
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the receiver"
    );

    let open = WebhookSender::new(db.clone(), Arc::new(clock.clone()), options(true)).unwrap();
    let ep = endpoint(&db, &format!("http://127.0.0.1:{port}/")).await;
    let id = enqueue(
        &db,
        "webhook",
        ep,
        "booking.confirmed",
        "{}",
        clock_now(&clock),
    )
    .await;
    // The allowed sender also takes the earlier rows once they come due; this one is due.
    open.run_once().await.unwrap();
    assert_eq!(row(&db, id).await.0, "delivered", "allowed by the setting");
    let _ = webhook_id;
}

/// Two deliverers on their own pools over one database, as two nodes of a cluster are:
/// every delivery goes out exactly once (the claim's `FOR UPDATE SKIP LOCKED` and lease),
/// though both claim at the same instants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deliverers_on_one_database_send_each_delivery_once() {
    let fresh = FreshDb::create().await;
    let (a, b) = (fresh.db().await, fresh.db().await);
    let clock = ManualClock::new(T0);
    let sender = |db: &navaro_notify::Db| {
        WebhookSender::new(db.clone(), Arc::new(clock.clone()), options(true)).unwrap()
    };
    let (sa, sb) = (sender(&a), sender(&b));
    let (addr, seen) = receiver(vec![(200, None)]).await;
    let ep = endpoint(&a, &format!("http://{addr}/hook")).await;
    let mut ids = Vec::new();
    for n in 0..120 {
        let body = format!(r#"{{"type":"booking.confirmed","n":{n}}}"#);
        ids.push(enqueue(&a, "webhook", ep, "booking.confirmed", &body, T0).await);
    }
    // Each deliverer in its own loop, as on two nodes: their claims interleave with the
    // other's deliveries in flight.
    let run = |sender: WebhookSender| {
        tokio::spawn(async move {
            let (mut sent, mut idle) = (0, 0);
            while idle < 3 {
                let n = sender.run_once().await.unwrap();
                sent += n;
                idle = if n == 0 { idle + 1 } else { 0 };
                tokio::task::yield_now().await;
            }
            sent
        })
    };
    let (x, y) = tokio::join!(run(sa), run(sb));
    let sent = x.unwrap() + y.unwrap();
    assert_eq!(sent, ids.len(), "claimed once each between the two");
    let mut delivered: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered.len(), ids.len(), "one request per delivery");
    delivered.sort_unstable();
    delivered.dedup();
    assert_eq!(delivered.len(), ids.len(), "no webhook-id twice");
    for id in ids {
        assert_eq!(row(&a, id).await.0, "delivered");
    }
}
