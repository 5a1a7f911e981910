//! Payments end to end: the real `navaro` binary against localstripe (a stateful fake
//! Stripe, `pip install localstripe`). Deposits confirmed only by the signed webhook and
//! seen on the Pro feed; declined cards freeing the slot; webhook security (altered
//! body, stale timestamp, unknown secret, duplicate event); who may read what.

mod common;

use std::time::{Duration, Instant};

use common::localstripe::{LocalStripe, OLD_WEBHOOK_SECRET, WEBHOOK_SECRET};
use common::{Server, ahead, code, setup, slots};
use futures::StreamExt;
use navaro_payments::webhook::sign;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

async fn start() -> (LocalStripe, Server) {
    let stripe = LocalStripe::start().await.expect("localstripe starts");
    let env = stripe.server_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with(&env).expect("server starts");
    (stripe, server)
}

async fn set_policy(server: &Server, id: &str, token: &str, policy: Value) -> (StatusCode, Value) {
    let (status, _, body) = server
        .call(
            Method::PUT,
            &format!("/v1/establishments/{id}/payment-policy"),
            Some(token),
            Some(policy),
        )
        .await;
    (status, body)
}

async fn checkout(server: &Server, id: &str, token: &str, service: &str, start: &Value) -> Value {
    let (status, _, body) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/checkouts"),
            Some(token),
            Some(json!({"service_id": service, "start": start})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn payment(server: &Server, id: &str, token: &str, payment_id: &str) -> (StatusCode, Value) {
    let (status, _, body) = server
        .call(
            Method::GET,
            &format!("/v1/establishments/{id}/payments/{payment_id}"),
            Some(token),
            None,
        )
        .await;
    (status, body)
}

/// Poll the payment until `done` holds, for at most 20 s.
async fn until(
    server: &Server,
    id: &str,
    token: &str,
    payment_id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = payment(server, id, token, payment_id).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "payment never got there: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn webhook(server: &Server, body: &[u8], signature: Option<&str>) -> (StatusCode, Value) {
    let mut request = server
        .client
        .post(server.url("/v1/payments/stripe/webhook"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("Stripe-Signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

async fn open_feed(
    server: &Server,
    id: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!(
        "ws://127.0.0.1:{}/v1/establishments/{id}/live?access_token={token}",
        server.port
    );
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The feed's frames of the given types, until one of type `last` (10 s at most).
async fn frames_until(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    last: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).unwrap();
            let stop = last(&frame);
            frames.push(frame);
            if stop {
                return frames;
            }
        }
    }
}

#[tokio::test]
async fn a_deposit_confirms_the_booking_only_on_the_signed_webhook_and_the_pro_feed_sees_it() {
    let (stripe, server) = start().await;
    let (owner, id, _staff, service) = setup(&server, 10).await;
    let (customer, customer_id) = server.register("bruno").await;
    let free = slots(&server, &id, &service, ahead(2)).await;
    let start = free[0]["start"].clone();

    // No policy: nothing to pay, a checkout is refused and booking works as before.
    let (status, _, body) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/checkouts"),
            Some(&customer),
            Some(json!({"service_id": service, "start": start})),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "{body}"
    );

    let (status, policy) = set_policy(
        &server,
        &id,
        &owner,
        json!({"mode": "deposit", "deposit_percent": 30}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    // A customer may not book it directly any more.
    let (status, _, body) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(&customer),
            Some(json!({"service_id": service, "start": start})),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYMENT_REQUIRED, "payment_required"),
        "{body}"
    );

    let mut feed = open_feed(&server, &id, &owner).await;

    // Localstripe delivers to the server, but signed with a secret it does not know.
    stripe
        .register_webhook(
            &server.url("/v1/payments/stripe/webhook"),
            "whsec_someone_else",
        )
        .await;
    let opened = checkout(&server, &id, &customer, &service, &start).await;
    let pay = &opened["payment"];
    assert_eq!(pay["amount_cents"], 1500, "30% of 5000: {opened}");
    assert_eq!(pay["currency"], "BRL");
    assert_eq!(pay["status"], "requires_payment");
    assert_eq!(pay["customer_id"], customer_id.as_str());
    assert_eq!(
        pay["policy"],
        json!({"mode": "deposit", "deposit_percent": 30, "cancel_window_minutes": 0})
    );
    let secret = opened["client_secret"].as_str().expect("a client secret");
    let intent = pay["provider_ref"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(&intent), "{secret}");
    let payment_id = pay["id"].as_str().unwrap().to_owned();
    // The intent at the provider carries the amount and where it belongs.
    let at_stripe = stripe.get(&format!("/v1/payment_intents/{intent}")).await;
    assert_eq!(at_stripe["amount"], 1500);
    assert_eq!(
        at_stripe["metadata"]["navaro_payment_id"],
        payment_id.as_str()
    );
    // The slot is held: nobody else can take it.
    let free_now = slots(&server, &id, &service, ahead(2)).await;
    assert!(
        !free_now.iter().any(|s| s["start"] == start),
        "the held slot is still offered"
    );

    // The customer pays; localstripe's delivery is refused (unknown secret), so the
    // booking is not confirmed, whatever the client believes.
    assert_eq!(stripe.pay(&intent, "pm_card_visa").await, 200);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (_, still) = payment(&server, &id, &customer, &payment_id).await;
    assert_eq!(still["status"], "requires_payment", "{still}");

    // The genuine event, signed with the previous secret (a rotation in progress).
    let event = stripe
        .event_about("payment_intent.succeeded", &intent)
        .await
        .expect("localstripe recorded the event");
    let raw = serde_json::to_vec(&event).unwrap();
    // Altered body, stale timestamp, unknown secret, no header: 400, no effect.
    let good = sign(&raw, OLD_WEBHOOK_SECRET, now_s());
    let mut altered = raw.clone();
    let at = altered.iter().position(|b| *b == b'1').unwrap();
    altered[at] = b'2';
    for (body, signature) in [
        (altered.clone(), Some(good.clone())),
        (
            raw.clone(),
            Some(sign(&raw, WEBHOOK_SECRET, now_s() - 3_600)),
        ),
        (raw.clone(), Some(sign(&raw, "whsec_unknown", now_s()))),
        (raw.clone(), None),
    ] {
        let (status, answer) = webhook(&server, &body, signature.as_deref()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(code(&answer), "invalid_request");
    }
    let (_, still) = payment(&server, &id, &customer, &payment_id).await;
    assert_eq!(still["status"], "requires_payment", "{still}");

    let (status, answer) = webhook(&server, &raw, Some(&good)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, paid) = payment(&server, &id, &customer, &payment_id).await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    let booking_id = paid["booking_id"].as_str().expect("a booking").to_owned();
    let (status, _, booking) = server
        .call(
            Method::GET,
            &format!("/v1/establishments/{id}/bookings/{booking_id}"),
            Some(&customer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{booking}");
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["start"], start);

    // The same event again (Stripe redelivers): 200 and no second effect.
    let seq_before = server
        .call(Method::GET, &format!("/v1/establishments/{id}"), None, None)
        .await
        .2["seq"]
        .clone();
    let again = sign(&raw, WEBHOOK_SECRET, now_s());
    assert_eq!(webhook(&server, &raw, Some(&again)).await.0, StatusCode::OK);
    let seq_after = server
        .call(Method::GET, &format!("/v1/establishments/{id}"), None, None)
        .await
        .2["seq"]
        .clone();
    assert_eq!(seq_before, seq_after, "a duplicate event changed something");

    // The Pro feed saw the checkout and then the confirmation, in order.
    let frames = frames_until(&mut feed, |f| {
        f["type"] == "payment.updated" && f["data"]["payment"]["status"] == "succeeded"
    })
    .await;
    assert_eq!(frames[0]["type"], "hello", "{frames:?}");
    let hello_seq = frames[0]["seq"].as_u64().unwrap();
    let frames = &frames[1..];
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    let seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gap-free: {seqs:?}"
    );
    assert_eq!(seqs.first(), Some(&(hello_seq + 1)), "{seqs:?}");
    let tail: Vec<&str> = kinds.iter().rev().take(2).rev().copied().collect();
    assert_eq!(tail, ["booking.confirmed", "payment.updated"], "{kinds:?}");
    assert!(kinds.contains(&"hold.placed"), "{kinds:?}");
    assert_eq!(
        frames
            .iter()
            .filter(|f| f["type"] == "payment.updated")
            .count(),
        3,
        "opened, provider object attached, succeeded: {kinds:?}"
    );
}

#[tokio::test]
async fn a_declined_card_fails_the_payment_and_frees_the_slot_and_a_good_one_confirms() {
    let (stripe, server) = start().await;
    let (owner, id, _staff, service) = setup(&server, 10).await;
    let (customer, _) = server.register("carla").await;
    stripe
        .register_webhook(&server.url("/v1/payments/stripe/webhook"), WEBHOOK_SECRET)
        .await;
    let (status, body) = set_policy(&server, &id, &owner, json!({"mode": "prepayment"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let start = slots(&server, &id, &service, ahead(3)).await[0]["start"].clone();

    let opened = checkout(&server, &id, &customer, &service, &start).await;
    assert_eq!(
        opened["payment"]["amount_cents"], 5000,
        "prepayment is the price"
    );
    let intent = opened["payment"]["provider_ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let payment_id = opened["payment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(stripe.pay(&intent, "pm_card_chargeCustomerFail").await, 402);
    // localstripe sends payment_intent.payment_failed; the server re-reads and records it.
    let failed = until(&server, &id, &customer, &payment_id, |p| {
        p["status"] != "requires_payment"
    })
    .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["failure"].as_str().unwrap().contains("declined"),
        "{failed}"
    );
    assert!(failed.get("booking_id").is_none());
    let free = slots(&server, &id, &service, ahead(3)).await;
    assert!(
        free.iter().any(|s| s["start"] == start),
        "the slot is bookable again"
    );

    // Another checkout for the same slot, a good card, localstripe's own delivery.
    let opened = checkout(&server, &id, &customer, &service, &start).await;
    let intent = opened["payment"]["provider_ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let payment_id = opened["payment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(stripe.pay(&intent, "pm_card_visa").await, 200);
    let paid = until(&server, &id, &customer, &payment_id, |p| {
        p["status"] != "requires_payment"
    })
    .await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert!(paid["booking_id"].is_string(), "{paid}");
}

#[tokio::test]
async fn payments_are_private_and_only_the_provider_settles_them() {
    let (stripe, server) = start().await;
    let (owner, id, _staff, service) = setup(&server, 10).await;
    let (customer, _) = server.register("diego").await;
    let (other, _) = server.register("eva").await;
    // The owner of another establishment is a customer here.
    let (other_owner, other_id, _, _) = setup(&server, 10).await;
    set_policy(
        &server,
        &id,
        &owner,
        json!({"mode": "deposit", "deposit_cents": 2000}),
    )
    .await;
    let start = slots(&server, &id, &service, ahead(2)).await[0]["start"].clone();
    let opened = checkout(&server, &id, &customer, &service, &start).await;
    assert_eq!(opened["payment"]["amount_cents"], 2000);
    let payment_id = opened["payment"]["id"].as_str().unwrap().to_owned();

    for token in [&other, &other_owner] {
        let (status, body) = payment(&server, &id, token, &payment_id).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{body}"
        );
        let (status, _, body) = server
            .call(
                Method::POST,
                &format!("/v1/establishments/{id}/payments/{payment_id}/refresh"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{body}"
        );
        // Nor through their own establishment's path.
        let (status, _) = payment(&server, &other_id, token, &payment_id).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, body) = set_policy(&server, &id, &customer, json!({"mode": "none"})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
    let (status, body) = set_policy(&server, &id, &other_owner, json!({"mode": "none"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Bad policies name their field.
    for (bad, field) in [
        (json!({"mode": "deposit"}), "deposit_percent"),
        (
            json!({"mode": "deposit", "deposit_percent": 0}),
            "deposit_percent",
        ),
        (
            json!({"mode": "deposit", "deposit_percent": 101}),
            "deposit_percent",
        ),
        (
            json!({"mode": "deposit", "deposit_cents": -5}),
            "deposit_cents",
        ),
        (
            json!({"mode": "prepayment", "deposit_cents": 5}),
            "deposit_cents",
        ),
    ] {
        let (status, body) = set_policy(&server, &id, &owner, bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_eq!(body["error"]["field"], field, "{bad}: {body}");
    }
    let (status, body) = set_policy(&server, &id, &owner, json!({"mode": "sometimes"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The customer's refresh is only a request to re-read: unpaid stays unpaid.
    let (status, _, body) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/payments/{payment_id}/refresh"),
            Some(&customer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "requires_payment");
    // Paid at the provider, the refresh (the server's own re-read) confirms at once.
    let intent = opened["payment"]["provider_ref"].as_str().unwrap();
    assert_eq!(stripe.pay(intent, "pm_card_visa").await, 200);
    let (status, _, body) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/payments/{payment_id}/refresh"),
            Some(&customer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    // Members see it; the policy is public.
    let (status, body) = payment(&server, &id, &owner, &payment_id).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("succeeded"))
    );
    let (status, _, body) = server
        .call(
            Method::GET,
            &format!("/v1/establishments/{id}/payment-policy"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"mode": "deposit", "deposit_cents": 2000, "cancel_window_minutes": 0})
    );
}

/// Pay a checkout at localstripe and have the server re-read it (no webhook needed).
async fn paid_booking(
    stripe: &LocalStripe,
    server: &Server,
    id: &str,
    token: &str,
    service: &str,
    start: &Value,
) -> (String, String) {
    let opened = checkout(server, id, token, service, start).await;
    let intent = opened["payment"]["provider_ref"]
        .as_str()
        .unwrap()
        .to_owned();
    let payment_id = opened["payment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(stripe.pay(&intent, "pm_card_visa").await, 200);
    let (status, _, body) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/payments/{payment_id}/refresh"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{body}"
    );
    (payment_id, body["booking_id"].as_str().unwrap().to_owned())
}

async fn refunds_at_stripe(
    stripe: &LocalStripe,
    server: &Server,
    id: &str,
    token: &str,
    payment_id: &str,
) -> Vec<i64> {
    let (_, body) = payment(server, id, token, payment_id).await;
    let intent = body["provider_ref"].as_str().unwrap();
    stripe
        .get(&format!("/v1/refunds?payment_intent={intent}"))
        .await["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn cancellations_refund_by_the_policy_agreed_to_outside_and_inside_the_window() {
    let (stripe, server) = start().await;
    let (owner, id, _staff, service) = setup(&server, 10).await;
    let (customer, _) = server.register("fabio").await;
    let free = slots(&server, &id, &service, ahead(2)).await;
    let cancel = |booking: String| {
        let (server, id, customer) = (&server, &id, &customer);
        async move {
            let (status, _, body) = server
                .call(
                    Method::POST,
                    &format!("/v1/establishments/{id}/bookings/{booking}/cancel"),
                    Some(customer),
                    None,
                )
                .await;
            assert_eq!(
                (status, body["status"].as_str()),
                (StatusCode::OK, Some("cancelled")),
                "{body}"
            );
        }
    };

    // A 30% deposit (15.00 of 50.00), a 10-day window and a 5.00 late fee: two days
    // ahead is inside the window.
    let policy = json!({"mode": "deposit", "deposit_percent": 30, "cancel_window_minutes": 14400,
                        "late_cancel_fee_cents": 500});
    assert_eq!(
        set_policy(&server, &id, &owner, policy).await.0,
        StatusCode::OK
    );
    let (late_payment, late_booking) = paid_booking(
        &stripe,
        &server,
        &id,
        &customer,
        &service,
        &free[0]["start"],
    )
    .await;
    // The policy changes; the first payment keeps what was agreed: a 1-hour window.
    let policy = json!({"mode": "deposit", "deposit_percent": 30, "cancel_window_minutes": 60,
                        "late_cancel_fee_percent": 100});
    assert_eq!(
        set_policy(&server, &id, &owner, policy).await.0,
        StatusCode::OK
    );
    let (early_payment, early_booking) = paid_booking(
        &stripe,
        &server,
        &id,
        &customer,
        &service,
        &free[4]["start"],
    )
    .await;

    cancel(late_booking).await;
    let (_, late) = payment(&server, &id, &customer, &late_payment).await;
    assert_eq!(
        late["refund_due_cents"], 1000,
        "15.00 minus the 5.00 fee: {late}"
    );
    assert_eq!(late["refunded_cents"], 1000, "{late}");
    assert_eq!(late["status"], "succeeded", "the fee is kept: {late}");
    assert_eq!(
        refunds_at_stripe(&stripe, &server, &id, &customer, &late_payment).await,
        [1000]
    );

    cancel(early_booking).await;
    let (_, early) = payment(&server, &id, &customer, &early_payment).await;
    assert_eq!(
        early["refunded_cents"], 1500,
        "outside its window: in full: {early}"
    );
    assert_eq!(early["status"], "refunded", "{early}");
    assert_eq!(
        refunds_at_stripe(&stripe, &server, &id, &customer, &early_payment).await,
        [1500]
    );
    // A second cancellation is refused and refunds nothing more.
    let (status, _, _) = server
        .call(
            Method::POST,
            &format!(
                "/v1/establishments/{id}/bookings/{}/cancel",
                early["booking_id"].as_str().unwrap()
            ),
            Some(&customer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        refunds_at_stripe(&stripe, &server, &id, &customer, &early_payment).await,
        [1500]
    );
}

#[tokio::test]
async fn checkouts_and_payments_survive_kill_9_on_postgres() {
    let stripe = LocalStripe::start().await.expect("localstripe starts");
    let env = stripe.server_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_postgres_with(&env);
    let (owner, id, _staff, service) = setup(&server, 10).await;
    let (customer, _) = server.register("gabi").await;
    set_policy(&server, &id, &owner, json!({"mode": "prepayment"})).await;
    let free = slots(&server, &id, &service, ahead(2)).await;
    let a = checkout(&server, &id, &customer, &service, &free[0]["start"]).await;
    let b = checkout(&server, &id, &customer, &service, &free[2]["start"]).await;
    let (a_id, b_id) = (
        a["payment"]["id"].as_str().unwrap(),
        b["payment"]["id"].as_str().unwrap(),
    );
    // A is paid while the server is down (no webhook reaches it).
    let server = server.crash_and_restart_with(&env).expect("restarts");
    assert_eq!(
        stripe
            .pay(
                a["payment"]["provider_ref"].as_str().unwrap(),
                "pm_card_visa"
            )
            .await,
        200
    );
    // Both payments and their holds came back from the journal.
    for p in [a_id, b_id] {
        let (status, body) = payment(&server, &id, &customer, p).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("requires_payment")),
            "{body}"
        );
    }
    let free_now = slots(&server, &id, &service, ahead(2)).await;
    assert!(
        !free_now.iter().any(|s| s["start"] == free[2]["start"]),
        "B's slot is still held"
    );
    // The server's own re-read confirms A; B confirms through localstripe's webhook.
    let (status, _, body) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/payments/{a_id}/refresh"),
            Some(&customer),
            None,
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{body}"
    );
    stripe
        .register_webhook(&server.url("/v1/payments/stripe/webhook"), WEBHOOK_SECRET)
        .await;
    assert_eq!(
        stripe
            .pay(
                b["payment"]["provider_ref"].as_str().unwrap(),
                "pm_card_visa"
            )
            .await,
        200
    );
    let paid = until(&server, &id, &customer, b_id, |p| {
        p["status"] != "requires_payment"
    })
    .await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    // Durable: another kill -9, and both bookings are there.
    let server = server.crash_and_restart_with(&env).expect("restarts");
    for p in [a_id, b_id] {
        let (_, body) = payment(&server, &id, &customer, p).await;
        let booking = body["booking_id"].as_str().expect("booked");
        let (status, _, booking) = server
            .call(
                Method::GET,
                &format!("/v1/establishments/{id}/bookings/{booking}"),
                Some(&customer),
                None,
            )
            .await;
        assert_eq!(
            (status, booking["status"].as_str()),
            (StatusCode::OK, Some("confirmed"))
        );
    }
}

#[tokio::test]
async fn a_checkout_the_provider_cannot_open_gives_the_slot_back_at_once() {
    // A provider that is not there: nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let server = Server::start_with(&[
        ("NAVARO_PAYMENTS__PROVIDER", "stripe"),
        ("NAVARO_PAYMENTS__STRIPE__BASE_URL", base.as_str()),
        ("NAVARO_PAYMENTS__STRIPE__API_KEY", "sk_test_navaro"),
        ("NAVARO_PAYMENTS__STRIPE__WEBHOOK_SECRETS", "[\"whsec_x\"]"),
        ("NAVARO_PAYMENTS__STRIPE__TIMEOUT_MS", "2000"),
    ])
    .expect("server starts");
    let (owner, id, _staff, service) = setup(&server, 10).await;
    let (customer, _) = server.register("hana").await;
    set_policy(&server, &id, &owner, json!({"mode": "prepayment"})).await;
    let start = slots(&server, &id, &service, ahead(2)).await[0]["start"].clone();
    let (status, headers, body) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/checkouts"),
            Some(&customer),
            Some(json!({"service_id": service, "start": start})),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"));
    let free = slots(&server, &id, &service, ahead(2)).await;
    assert!(
        free.iter().any(|s| s["start"] == start),
        "the slot was given back"
    );
}
