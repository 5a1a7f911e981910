//! Cards on file and fees end to end: the real `navaro` binary on Postgres against
//! localstripe. A card saved through a SetupIntent (read back at the provider, never
//! taken from the client); a no-show fee charged exactly once when the no-show is sent
//! twice concurrently, and once again after the process is killed between the
//! provider's charge and the journal append (`payments.dev_abort_after_fee_charge`);
//! late-cancellation fees by policy, confirmed or waived by a member; who may do what.
//!
//! localstripe does not enforce idempotency keys: a second call with the same key would
//! charge again there. The exactly-once guarantees checked here are the server's own
//! (one fee per booking and kind, one attempt in flight, a lost attempt looked up at the
//! provider before another), which is what these tests count on: they count charges at
//! localstripe.

mod common;

use std::time::{Duration, Instant};

use common::localstripe::LocalStripe;
use common::{Server, ahead, code, psql_rows, setup, slots};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The engine's clock two days behind: a booking made "tomorrow" is in the past once the
/// server restarts with the real clock, so that it can be marked a no-show.
const TWO_DAYS_AGO: &str = "-172800";

fn env(stripe: &LocalStripe, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = stripe.server_env();
    // A short provider timeout keeps the attempt lease (timeout + 5 s) short.
    env.push(("NAVARO_PAYMENTS__STRIPE__TIMEOUT_MS".into(), "2000".into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

async fn call(
    server: &Server,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, _, body) = server.call(method, path, Some(token), body).await;
    (status, body)
}

/// The customer saves a card the way the app does: a setup from the server, confirmed at
/// the provider with a test card, then completed (the server reads it back).
async fn save_card(server: &Server, stripe: &LocalStripe, id: &str, token: &str) -> Value {
    let (status, setup) = call(
        server,
        Method::POST,
        &format!("/v1/establishments/{id}/card-setups"),
        token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{setup}");
    let setup_id = setup["setup_id"].as_str().unwrap().to_owned();
    assert!(
        setup["client_secret"]
            .as_str()
            .unwrap()
            .starts_with(&setup_id)
    );
    let complete = format!("/v1/establishments/{id}/card-setups/{setup_id}/complete");
    // The client's word alone saves nothing: the setup is not complete at the provider.
    let (status, body) = call(server, Method::POST, &complete, token, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "{body}"
    );
    let (status, body) = stripe
        .post(
            &format!("/v1/setup_intents/{setup_id}/confirm"),
            &[("payment_method", "pm_card_visa")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, card) = call(server, Method::POST, &complete, token, None).await;
    assert_eq!(status, StatusCode::OK, "{card}");
    assert!(card["customer_ref"].as_str().unwrap().starts_with("cus_"));
    card
}

async fn book(server: &Server, id: &str, token: &str, service: &str, start: &Value) -> Value {
    let (status, body) = call(
        server,
        Method::POST,
        &format!("/v1/establishments/{id}/bookings"),
        token,
        Some(json!({"service_id": service, "start": start})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Every charge localstripe holds for this provider customer.
async fn charges(stripe: &LocalStripe, customer_ref: &str) -> Vec<Value> {
    let list = stripe
        .get(&format!("/v1/charges?customer={customer_ref}&limit=100"))
        .await;
    list["data"].as_array().unwrap().clone()
}

async fn no_show(server: &Server, id: &str, token: &str, booking: &str) -> (StatusCode, Value) {
    call(
        server,
        Method::POST,
        &format!("/v1/establishments/{id}/bookings/{booking}/no-show"),
        token,
        None,
    )
    .await
}

/// The journal's `payment.updated` events that record this fee charged (MessagePack
/// with field names: the fee's id and the status are found in the payload's bytes).
fn charged_events(server: &Server, fee_id: &str) -> usize {
    let hex = fee_id.replace('-', "");
    let sql = format!(
        "SELECT count(*) FROM events WHERE kind = 'payment.updated' \
         AND (position(decode('{hex}', 'hex') in payload) > 0 \
              OR position(convert_to('{fee_id}', 'UTF8') in payload) > 0) \
         AND position(convert_to('succeeded', 'UTF8') in payload) > 0"
    );
    let count = psql_rows(server.database_url().unwrap(), &sql);
    let all = psql_rows(
        server.database_url().unwrap(),
        "SELECT count(*) FROM events WHERE kind = 'payment.updated'",
    );
    assert_ne!(all.trim(), "0", "the journal has payment events");
    count.trim().parse().unwrap()
}

#[tokio::test]
async fn a_no_show_fee_is_charged_once_when_sent_twice_concurrently_and_after_a_kill_9() {
    let stripe = LocalStripe::start().await.expect("localstripe starts");
    let behind = env(
        &stripe,
        &[("NAVARO_ENGINE__DEV_CLOCK_OFFSET_SECONDS", TWO_DAYS_AGO)],
    );
    let server = Server::start_postgres_with(&refs(&behind));
    let (owner, id, _staff, service) = setup(&server, 10).await;
    let policy = json!({"mode": "card_on_file", "no_show_fee_percent": 40});
    let (status, body) = call(
        &server,
        Method::PUT,
        &format!("/v1/establishments/{id}/payment-policy"),
        &owner,
        Some(policy),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (customer, _) = server.register("diego").await;
    // "Tomorrow" for the engine, yesterday for the wall clock.
    let day = slots(&server, &id, &service, ahead(-1)).await;
    let (first, second) = (day[0]["start"].clone(), day[4]["start"].clone());
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/v1/establishments/{id}/bookings"),
        &customer,
        Some(json!({"service_id": service, "start": first})),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYMENT_REQUIRED, "payment_required"),
        "{body}"
    );
    let card = save_card(&server, &stripe, &id, &customer).await;
    let customer_ref = card["customer_ref"].as_str().unwrap().to_owned();
    let a = book(&server, &id, &customer, &service, &first).await;
    let b = book(&server, &id, &customer, &service, &second).await;
    assert_eq!(
        a["payment_policy"]["no_show_fee_percent"], 40,
        "the policy is copied onto the booking"
    );
    let (a, b) = (
        a["id"].as_str().unwrap().to_owned(),
        b["id"].as_str().unwrap().to_owned(),
    );

    // The real clock: both bookings are over.
    let now_env = env(&stripe, &[]);
    let server = server.crash_and_restart_with(&refs(&now_env)).unwrap();
    let (x, y) = tokio::join!(
        no_show(&server, &id, &owner, &a),
        no_show(&server, &id, &owner, &a)
    );
    for (status, body) in [&x, &y] {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["booking"]["status"], "no_show");
        assert_eq!(body["fee"]["status"], "succeeded", "{body}");
        assert_eq!(body["fee"]["amount_cents"], 2000);
    }
    assert_eq!(x.1["fee"]["id"], y.1["fee"]["id"], "one fee");
    let charge_path = format!("/v1/establishments/{id}/bookings/{a}/fees/no_show/charge");
    let charge = || call(&server, Method::POST, &charge_path, &owner, None);
    let (p, q) = tokio::join!(charge(), charge());
    assert_eq!((p.0, q.0), (StatusCode::OK, StatusCode::OK));
    assert_eq!(p.1["attempt"], 1, "no second attempt: {}", p.1);
    let held = charges(&stripe, &customer_ref).await;
    assert_eq!(
        held.len(),
        1,
        "exactly one charge at the provider: {held:?}"
    );
    assert_eq!(held[0]["amount"], 2000);
    let fee_a = x.1["fee"]["id"].as_str().unwrap().to_owned();
    assert_eq!(charged_events(&server, &fee_a), 1);

    // Killed between the provider's charge and the journal append.
    let abort = env(
        &stripe,
        &[("NAVARO_PAYMENTS__DEV_ABORT_AFTER_FEE_CHARGE", "true")],
    );
    let server = server.crash_and_restart_with(&refs(&abort)).unwrap();
    let died = server
        .client
        .post(server.url(&format!("/v1/establishments/{id}/bookings/{b}/no-show")))
        .bearer_auth(&owner)
        .send()
        .await;
    assert!(died.is_err(), "the process aborted mid-request: {died:?}");
    assert_eq!(
        charges(&stripe, &customer_ref).await.len(),
        2,
        "B's charge reached the provider"
    );
    let server = server.crash_and_restart_with(&refs(&now_env)).unwrap();
    let (status, fee) = call(
        &server,
        Method::GET,
        &format!("/v1/establishments/{id}/bookings/{b}/fees/no_show"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{fee}");
    assert_eq!(
        charged_events(&server, fee["id"].as_str().unwrap()),
        0,
        "the charge never reached the journal"
    );
    // The retry (or the sweeper, whichever comes first) finds the charge: no second one.
    let (status, body) = no_show(&server, &id, &owner, &b).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["fee"]["status"], "succeeded", "{body}");
    assert_eq!(body["fee"]["attempt"], 1);
    let held = charges(&stripe, &customer_ref).await;
    assert_eq!(held.len(), 2, "still one charge per fee: {held:?}");
    let intents: Vec<&Value> = held.iter().map(|c| &c["payment_intent"]).collect();
    assert!(
        intents.contains(&&body["fee"]["provider_ref"]),
        "{intents:?} {body}"
    );
    assert_eq!(charged_events(&server, fee["id"].as_str().unwrap()), 1);
}

#[tokio::test]
async fn late_cancellation_fees_follow_the_policy_and_members_confirm_or_waive_them() {
    let stripe = LocalStripe::start().await.expect("localstripe starts");
    let server = Server::start_with(&refs(&env(&stripe, &[]))).unwrap();
    let (owner, id, _staff, service) = setup(&server, 10).await;
    // 30 days: every booking of the next days is cancelled "late".
    let policy = json!({"mode": "card_on_file", "cancel_window_minutes": 43200,
        "late_cancel_fee_cents": 1500, "late_cancel_fee_needs_confirmation": true});
    let path = format!("/v1/establishments/{id}/payment-policy");
    let (status, body) = call(&server, Method::PUT, &path, &owner, Some(policy)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (customer, _) = server.register("diego").await;
    let card = save_card(&server, &stripe, &id, &customer).await;
    let customer_ref = card["customer_ref"].as_str().unwrap().to_owned();
    let day = slots(&server, &id, &service, ahead(2)).await;
    let cancel = |booking: String| {
        let server = &server;
        let (id, customer) = (id.clone(), customer.clone());
        async move {
            let (status, body) = call(
                server,
                Method::POST,
                &format!("/v1/establishments/{id}/bookings/{booking}/cancel"),
                &customer,
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    let fee_path =
        |booking: &str| format!("/v1/establishments/{id}/bookings/{booking}/fees/late_cancel");

    // Waiting for a member, who waives it: never charged.
    let waived = book(&server, &id, &customer, &service, &day[0]["start"]).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cancel(waived.clone()).await;
    let (status, fee) = call(&server, Method::GET, &fee_path(&waived), &customer, None).await;
    assert_eq!(status, StatusCode::OK, "the customer sees their fee: {fee}");
    assert_eq!(
        (fee["status"].as_str(), fee["amount_cents"].as_i64()),
        (Some("requires_confirmation"), Some(1500))
    );
    let (status, fee) = call(
        &server,
        Method::POST,
        &format!("{}/waive", fee_path(&waived)),
        &owner,
        None,
    )
    .await;
    assert_eq!(
        (status, fee["status"].as_str()),
        (StatusCode::OK, Some("waived")),
        "{fee}"
    );
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("{}/charge", fee_path(&waived)),
        &owner,
        None,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "{body}"
    );
    assert!(charges(&stripe, &customer_ref).await.is_empty());

    // Waiting for a member, who charges it.
    let confirmed = book(&server, &id, &customer, &service, &day[2]["start"]).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cancel(confirmed.clone()).await;
    let (status, fee) = call(
        &server,
        Method::POST,
        &format!("{}/charge", fee_path(&confirmed)),
        &owner,
        None,
    )
    .await;
    assert_eq!(
        (status, fee["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{fee}"
    );
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("{}/waive", fee_path(&confirmed)),
        &owner,
        None,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "charged: {body}"
    );

    // Charged at once when the policy does not wait for a member.
    let auto = json!({"mode": "card_on_file", "cancel_window_minutes": 43200, "late_cancel_fee_percent": 10});
    call(&server, Method::PUT, &path, &owner, Some(auto)).await;
    let automatic = book(&server, &id, &customer, &service, &day[4]["start"]).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cancel(automatic.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, fee) = call(&server, Method::GET, &fee_path(&automatic), &owner, None).await;
        if fee["status"] == "succeeded" {
            assert_eq!(fee["amount_cents"], 500);
            break;
        }
        assert!(Instant::now() < deadline, "never charged: {fee}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Outside the window: no fee.
    let outside =
        json!({"mode": "card_on_file", "cancel_window_minutes": 60, "late_cancel_fee_percent": 10});
    call(&server, Method::PUT, &path, &owner, Some(outside)).await;
    let early = book(&server, &id, &customer, &service, &day[6]["start"]).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cancel(early.clone()).await;
    let (status, _) = call(&server, Method::GET, &fee_path(&early), &owner, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let amounts: Vec<i64> = charges(&stripe, &customer_ref)
        .await
        .iter()
        .map(|c| c["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(
        amounts.iter().sum::<i64>(),
        2000,
        "1500 confirmed + 500 automatic: {amounts:?}"
    );
}

#[tokio::test]
async fn only_members_here_charge_or_waive_and_nobody_reads_another_customers_fee_or_card() {
    let stripe = LocalStripe::start().await.expect("localstripe starts");
    let server = Server::start_with(&refs(&env(&stripe, &[]))).unwrap();
    let (owner, id, _staff, service) = setup(&server, 10).await;
    // The owner of another establishment is a customer here.
    let (other_owner, _other_id, _, _) = setup(&server, 10).await;
    let policy = json!({"mode": "card_on_file", "cancel_window_minutes": 43200,
        "late_cancel_fee_cents": 1500, "late_cancel_fee_needs_confirmation": true});
    call(
        &server,
        Method::PUT,
        &format!("/v1/establishments/{id}/payment-policy"),
        &owner,
        Some(policy),
    )
    .await;
    let (customer, _) = server.register("diego").await;
    let (stranger, _) = server.register("eva").await;
    let card = save_card(&server, &stripe, &id, &customer).await;
    let start = slots(&server, &id, &service, ahead(2)).await[0]["start"].clone();
    let booking = book(&server, &id, &customer, &service, &start).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = call(
        &server,
        Method::POST,
        &format!("/v1/establishments/{id}/bookings/{booking}/cancel"),
        &customer,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let fee = format!("/v1/establishments/{id}/bookings/{booking}/fees/late_cancel");

    for token in [&other_owner, &stranger, &customer] {
        for action in ["charge", "waive"] {
            let (status, body) = call(
                &server,
                Method::POST,
                &format!("{fee}/{action}"),
                token,
                None,
            )
            .await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{action}: {body}"
            );
        }
        let (status, body) = no_show(&server, &id, token, &booking).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    for token in [&other_owner, &stranger] {
        let (status, body) = call(&server, Method::GET, &fee, token, None).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{body}"
        );
        // Their own card only: none here.
        let (status, _) = call(
            &server,
            Method::GET,
            &format!("/v1/establishments/{id}/card"),
            token,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Someone else's setup cannot be completed as theirs.
        let setup = card["setup_ref"].as_str().unwrap();
        let (status, body) = call(
            &server,
            Method::POST,
            &format!("/v1/establishments/{id}/card-setups/{setup}/complete"),
            token,
            None,
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{body}"
        );
    }
    let (status, mine) = call(
        &server,
        Method::GET,
        &format!("/v1/establishments/{id}/card"),
        &customer,
        None,
    )
    .await;
    assert_eq!(
        (status, &mine["setup_ref"]),
        (StatusCode::OK, &card["setup_ref"])
    );
    // Still untouched: nobody above could charge it.
    let (status, body) = call(&server, Method::GET, &fee, &owner, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("requires_confirmation")),
        "{body}"
    );
    assert!(
        charges(&stripe, card["customer_ref"].as_str().unwrap())
            .await
            .is_empty()
    );
    // A bad fee name is refused with a code.
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/v1/establishments/{id}/bookings/{booking}/fees/everything/charge"),
        &owner,
        None,
    )
    .await;
    assert!(
        status.is_client_error() && !code(&body).is_empty(),
        "{status} {body}"
    );
}
