//! Push against a fake Expo push service that follows Expo's documented request and
//! answer shapes (`/--/api/v2/push/send`: an array of at most 100 messages answered with
//! `{"data": [tickets]}`; `/--/api/v2/push/getReceipts`: `{"ids"}` answered with
//! `{"data": {id: receipt}}`; 429 with `{"errors": [...]}`), on a real Postgres.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use common::{FreshDb, enqueue, row};
use navaro_notify::{Clock, ManualClock, PushOptions, PushSender};
use serde_json::{Value, json};
use uuid::Uuid;

const T0: i64 = 1_800_000_000_000_000;
const DEAD_TICKET: &str = "ExponentPushToken[dead-in-ticket]";
const DEAD_RECEIPT: &str = "ExponentPushToken[dead-in-receipt]";

#[derive(Default)]
struct Fake {
    /// Messages per send request, in order, 429s included.
    sends: Vec<usize>,
    /// 429s still to answer.
    throttle: usize,
    receipts_asked: Vec<usize>,
}

async fn fake_expo(throttle: usize) -> (String, Arc<Mutex<Fake>>) {
    let state = Arc::new(Mutex::new(Fake {
        throttle,
        ..Fake::default()
    }));
    let send = {
        let state = state.clone();
        move |Json(messages): Json<Vec<Value>>| {
            let state = state.clone();
            async move {
                let mut s = state.lock().unwrap();
                s.sends.push(messages.len());
                if messages.len() > 100 {
                    let e = json!({"errors": [{"code": "PUSH_TOO_MANY_NOTIFICATIONS", "message": "over 100"}]});
                    return (StatusCode::BAD_REQUEST, Json(e)).into_response();
                }
                if s.throttle > 0 {
                    s.throttle -= 1;
                    let e =
                        json!({"errors": [{"code": "TOO_MANY_REQUESTS", "message": "slow down"}]});
                    return (StatusCode::TOO_MANY_REQUESTS, Json(e)).into_response();
                }
                let data: Vec<Value> = messages
                    .iter()
                    .map(|m| {
                        let to = m["to"].as_str().unwrap();
                        if to == DEAD_TICKET {
                            json!({"status": "error", "message": "not registered",
                                   "details": {"error": "DeviceNotRegistered", "expoPushToken": to}})
                        } else {
                            json!({"status": "ok", "id": format!("ticket:{to}")})
                        }
                    })
                    .collect();
                Json(json!({ "data": data })).into_response()
            }
        }
    };
    let receipts = {
        let state = state.clone();
        move |Json(body): Json<Value>| {
            let state = state.clone();
            async move {
                let ids: Vec<String> = body["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_str().unwrap().to_owned())
                    .collect();
                state.lock().unwrap().receipts_asked.push(ids.len());
                let mut data = serde_json::Map::new();
                for id in ids {
                    let receipt = if id == format!("ticket:{DEAD_RECEIPT}") {
                        json!({"status": "error", "message": "gone", "details": {"error": "DeviceNotRegistered"}})
                    } else {
                        json!({"status": "ok"})
                    };
                    data.insert(id, receipt);
                }
                Json(json!({ "data": data }))
            }
        }
    };
    let app = Router::new()
        .route("/--/api/v2/push/send", post(send))
        .route("/--/api/v2/push/getReceipts", post(receipts));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

fn options(base_url: String) -> PushOptions {
    PushOptions {
        base_url,
        requests_per_second: 1000,
        backoff: Duration::from_millis(20),
        ..PushOptions::default()
    }
}

const MESSAGE: &str = r#"{"title":"Booking confirmed","body":"Your booking is confirmed.","data":{"type":"booking_confirmed"}}"#;

#[tokio::test]
async fn two_hundred_fifty_tokens_go_as_100_100_50_after_a_429_and_dead_tokens_are_dropped() {
    let fresh = FreshDb::create().await;
    let db = fresh.db().await;
    let clock = ManualClock::new(T0);
    let (base, fake) = fake_expo(1).await;
    let sender = PushSender::new(db.clone(), Arc::new(clock.clone()), options(base)).unwrap();
    let user = Uuid::now_v7();
    for i in 0..248 {
        db.register_device(user, &format!("ExponentPushToken[t{i:03}]"), "ios", T0 + i)
            .await
            .unwrap();
    }
    db.register_device(user, DEAD_TICKET, "ios", T0 + 300)
        .await
        .unwrap();
    db.register_device(user, DEAD_RECEIPT, "android", T0 + 301)
        .await
        .unwrap();
    let id = enqueue(&db, "push", user, "booking_confirmed", MESSAGE, T0).await;

    assert_eq!(sender.run_once().await.unwrap(), 1);
    assert_eq!(row(&db, id).await.0, "delivered");
    assert_eq!(
        fake.lock().unwrap().sends,
        [100, 100, 100, 50],
        "a 429, retried, then 100 + 100 + 50"
    );
    let devices = db.devices_of(user).await.unwrap();
    let inactive: Vec<&str> = devices
        .iter()
        .filter(|d| !d.active)
        .map(|d| d.token.as_str())
        .collect();
    assert_eq!(
        inactive,
        [DEAD_TICKET],
        "DeviceNotRegistered in a ticket: off at once"
    );

    // Receipts are asked for once they are due, in one batch; a dead receipt turns
    // its token off too.
    assert_eq!(sender.fetch_receipts().await.unwrap(), 0, "not yet due");
    clock.advance_seconds(16 * 60);
    assert_eq!(sender.fetch_receipts().await.unwrap(), 249);
    assert_eq!(fake.lock().unwrap().receipts_asked, [249]);
    let devices = db.devices_of(user).await.unwrap();
    assert_eq!(devices.iter().filter(|d| !d.active).count(), 2);
    assert!(
        !devices
            .iter()
            .find(|d| d.token == DEAD_RECEIPT)
            .unwrap()
            .active
    );

    // The dead tokens are not sent to again.
    enqueue(
        &db,
        "push",
        user,
        "booking_confirmed",
        MESSAGE,
        clock.now_us(),
    )
    .await;
    sender.run_once().await.unwrap();
    assert_eq!(fake.lock().unwrap().sends[4..], [100, 100, 48]);
}

#[tokio::test]
async fn opted_out_kinds_and_users_without_devices_send_nothing() {
    let fresh = FreshDb::create().await;
    let db = fresh.db().await;
    let clock = ManualClock::new(T0);
    let (base, fake) = fake_expo(0).await;
    let sender = PushSender::new(db.clone(), Arc::new(clock.clone()), options(base)).unwrap();
    let user = Uuid::now_v7();
    db.register_device(user, "ExponentPushToken[a]", "ios", T0)
        .await
        .unwrap();
    db.set_opt_outs(user, &["reminder".to_owned()])
        .await
        .unwrap();
    let reminder = enqueue(&db, "push", user, "reminder", MESSAGE, T0).await;
    let nobody = enqueue(
        &db,
        "push",
        Uuid::now_v7(),
        "booking_confirmed",
        MESSAGE,
        T0,
    )
    .await;
    sender.run_once().await.unwrap();
    assert_eq!(row(&db, reminder).await.0, "cancelled");
    assert_eq!(row(&db, nobody).await.0, "cancelled");
    assert!(fake.lock().unwrap().sends.is_empty());
}

#[tokio::test]
async fn expo_down_retries_the_delivery_later() {
    let fresh = FreshDb::create().await;
    let db = fresh.db().await;
    let clock = ManualClock::new(T0);
    let (base, fake) = fake_expo(100).await;
    let sender = PushSender::new(db.clone(), Arc::new(clock.clone()), options(base)).unwrap();
    let user = Uuid::now_v7();
    db.register_device(user, "ExponentPushToken[a]", "ios", T0)
        .await
        .unwrap();
    let id = enqueue(&db, "push", user, "booking_confirmed", MESSAGE, T0).await;
    sender.run_once().await.unwrap();
    let (status, attempts, due, _) = row(&db, id).await;
    assert_eq!(
        (status.as_str(), attempts, due),
        ("pending", 1, T0 + 5_000_000)
    );
    assert_eq!(
        fake.lock().unwrap().sends,
        [1, 1, 1],
        "three tries with backoff in a round"
    );
}
