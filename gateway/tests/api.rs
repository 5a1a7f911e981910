//! End-to-end tests of what does not need an establishment: health, docs, OpenAPI,
//! metrics, auth, error shapes, content negotiation, limits, configuration refusal and
//! graceful shutdown. Each starts the real `navaro` binary on port 0.

mod common;

use std::time::Duration;

use common::{Server, code, psql_rows};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn health_ready_docs_openapi_and_metrics() {
    let server = Server::start();
    let (status, headers, body) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert!(
        headers.contains_key("x-request-id"),
        "request id propagated"
    );
    // The client's own id comes back; an answer from outside the routes carries one too.
    let (_, headers, _) = server
        .call_with(
            Method::GET,
            "/healthz",
            None,
            None,
            &[("x-request-id", "trace-me-42")],
        )
        .await;
    assert_eq!(headers["x-request-id"], "trace-me-42");
    let (status, headers, _) = server.call(Method::GET, "/no/such/route", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(headers.contains_key("x-request-id"), "request id on a 404");
    let (status, _, _) = server.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, doc) = server.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/auth/register",
        "/v1/auth/login",
        "/v1/me",
        "/v1/me/bookings",
        "/v1/establishments",
        "/v1/establishments/{id}",
        "/v1/establishments/{id}/members",
        "/v1/establishments/{id}/staff",
        "/v1/establishments/{id}/staff/{staff_id}/hours",
        "/v1/establishments/{id}/staff/{staff_id}/time-off",
        "/v1/establishments/{id}/services",
        "/v1/establishments/{id}/availability",
        "/v1/establishments/{id}/bookings",
        "/v1/establishments/{id}/bookings/{booking_id}",
        "/v1/establishments/{id}/bookings/{booking_id}/cancel",
        "/v1/establishments/{id}/bookings/{booking_id}/reschedule",
        "/v1/establishments/{id}/live",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    // Every reference resolves (a schema named in a parameter is not registered on its
    // own).
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {reference}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "openapi refers to the missing schema {name}"
        );
    }

    // The docs page and everything it loads come from this server (works offline).
    let html = server.client.get(server.url("/docs")).send().await.unwrap();
    assert_eq!(html.status(), StatusCode::OK);
    let html = html.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external links"
    );
    for asset in [
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-ui.css",
        "/docs/init.js",
    ] {
        assert!(html.contains(asset));
        let r = server.client.get(server.url(asset)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
    }

    // A few commands, so that the engine and the journal have something to report.
    common::setup(&server, 10).await;
    let metrics = server.metrics().await;
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/healthz\""), "{metrics}");
    assert!(
        metrics.contains("http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("navaro_connections_open"), "{metrics}");
    for name in [
        "navaro_commands_total",
        "navaro_engine_in_flight_per_establishment",
        "navaro_journal_group_events",
        "navaro_journal_commit_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from {metrics}");
    }
    // The process's own, read at each scrape: a server that did all that used CPU.
    let cpu = metrics
        .lines()
        .find_map(|l| l.strip_prefix("process_cpu_seconds_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(cpu.is_some_and(|s| s > 0.0), "{metrics}");
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_threads",
    ] {
        assert!(metrics.contains(name), "{name} missing from {metrics}");
    }
}

#[tokio::test]
async fn register_login_me() {
    let server = Server::start();
    let email = format!("ana-{}@example.com", uuid::Uuid::new_v4().simple());
    let register = json!({"email": email, "password": "correct horse battery", "name": "Ana"});
    let (status, _, body) = server
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(register.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["user"]["email"], email.as_str());
    assert!(body["token"].as_str().unwrap().split('.').count() == 3);

    let user_id = body["user"]["id"].clone();
    let (status, _, body) = server
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(register.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&body), "conflict");
    assert_eq!(body["error"]["field"], "email");
    // With a key, a retry of the same body (its first answer lost) gets the account it
    // made; another password under the key does not.
    let keyed = [("idempotency-key", "register-1")];
    let (status, _, body) = server
        .call_with(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(register),
            &keyed,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["user"]["id"], user_id);
    let (status, _, me) = server
        .call(Method::GET, "/v1/me", body["token"].as_str(), None)
        .await;
    assert_eq!((status, &me["id"]), (StatusCode::OK, &user_id), "{me}");
    let other = json!({"email": email, "password": "another horse battery", "name": "Ana"});
    let (status, _, body) = server
        .call_with(Method::POST, "/v1/auth/register", None, Some(other), &keyed)
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"));

    let (status, _, body) = server
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": email.to_uppercase(), "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(body["expires_at"].as_str().is_some());

    let (status, _, me) = server.call(Method::GET, "/v1/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], email.as_str());
    assert_eq!(me["admin"], false);
    assert_eq!(me["memberships"], json!([]));

    for (email, password) in [
        (email.as_str(), "wrong password"),
        ("nobody@example.com", "whatever1"),
    ] {
        let (status, _, body) = server
            .call(
                Method::POST,
                "/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(code(&body), "unauthorized");
    }

    let (status, _, body) = server.call(Method::GET, "/v1/me", None, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, _, _) = server
        .call(Method::GET, "/v1/me", Some("not.a.token"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admins_come_from_configuration() {
    let server =
        Server::start_with(&[("NAVARO_AUTH__ADMIN_EMAILS", "[\"root@navaro.test\"]")]).unwrap();
    let (status, _, body) = server
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"email": "Root@navaro.test", "password": "correct horse battery", "name": "Root"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().unwrap();
    let (_, _, me) = server.call(Method::GET, "/v1/me", Some(token), None).await;
    assert_eq!(me["admin"], true);
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let server = Server::start();
    let cases: [(Value, StatusCode, &str, Option<&str>); 4] = [
        (
            json!({"email": "a@b.co", "password": "x", "name": "A"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            Some("password"),
        ),
        (
            json!({"email": "nope", "password": "long enough 1", "name": "A"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            Some("email"),
        ),
        (
            json!({"email": "a@b.co", "password": "long enough 1"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("name"),
        ),
        (
            json!({"email": "a@b.co", "password": "long enough 1", "name": "A", "admin": true}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("admin"),
        ),
    ];
    for (body, want_status, want_code, want_field) in cases {
        let (status, _, answer) = server
            .call(Method::POST, "/v1/auth/register", None, Some(body.clone()))
            .await;
        assert_eq!(status, want_status, "{body} -> {answer}");
        assert_eq!(code(&answer), want_code);
        assert_eq!(answer["error"]["field"].as_str(), want_field, "{answer}");
    }

    let raw = server
        .client
        .post(server.url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(code(&body), "invalid_request");

    let (status, _, body) = server
        .call(Method::GET, "/v1/nothing-here", None, None)
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, headers, body) = server.call(Method::PUT, "/v1/me", None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(code(&body), "invalid_request");
    let allow = headers.get("allow").map(|v| v.to_str().unwrap().to_owned());
    assert!(
        allow.as_deref().is_some_and(|a| a.contains("GET")),
        "a 405 names the methods the route takes: {allow:?}"
    );
    let (status, _, body) = server
        .call(Method::GET, "/v1/establishments/not-a-uuid", None, None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );

    let (token, _) = server.register("idem").await;
    let long_key = "k".repeat(129);
    let (status, _, body) = server
        .call_with(
            Method::POST,
            "/v1/establishments",
            Some(&token),
            Some(json!({"name": "X", "timezone": "UTC"})),
            &[("idempotency-key", &long_key)],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    assert_eq!(body["error"]["field"], "Idempotency-Key");
}

/// `POST /v1/establishments` with the same key and body, sent twice at once, again
/// later and again after a crash, makes one establishment; another body with the key is
/// refused; keys are the user's own.
#[tokio::test]
async fn creating_an_establishment_with_a_key_is_idempotent() {
    async fn create(
        server: &Server,
        token: &str,
        key: Option<&str>,
        name: &str,
    ) -> (StatusCode, Value) {
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        let (status, _, body) = server
            .call_with(
                Method::POST,
                "/v1/establishments",
                Some(token),
                Some(json!({"name": name, "timezone": "America/Sao_Paulo"})),
                &headers,
            )
            .await;
        (status, body)
    }
    async fn owned(server: &Server, token: &str) -> usize {
        let (status, _, me) = server.call(Method::GET, "/v1/me", Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        me["memberships"].as_array().unwrap().len()
    }

    let server = Server::start_postgres();
    let (token, _) = server.register("owner").await;
    // A body that cannot create anything claims no key: the same key with a fixed body
    // then creates.
    let (status, _, body) = server
        .call_with(
            Method::POST,
            "/v1/establishments",
            Some(&token),
            Some(json!({"name": "Shop", "timezone": "Mars/Olympus"})),
            &[("idempotency-key", "shop-1")],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
    );
    let claims = || {
        psql_rows(
            server.database_url().unwrap(),
            "SELECT count(*) FROM creation_keys",
        )
    };
    assert_eq!(claims().trim(), "0", "a refused body claims no key");
    let (a, b) = tokio::join!(
        create(&server, &token, Some("shop-1"), "Shop"),
        create(&server, &token, Some("shop-1"), "Shop")
    );
    assert_eq!(
        (a.0, b.0),
        (StatusCode::CREATED, StatusCode::CREATED),
        "{a:?} {b:?}"
    );
    let id = a.1["id"].clone();
    assert_eq!(b.1["id"], id, "two at once are one establishment");
    let again = create(&server, &token, Some("shop-1"), "Shop").await;
    assert_eq!((again.0, &again.1["id"]), (StatusCode::CREATED, &id));
    let other_body = create(&server, &token, Some("shop-1"), "Another").await;
    assert_eq!(
        (other_body.0, code(&other_body.1)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    let second = create(&server, &token, Some("shop-2"), "Shop").await;
    assert_eq!(second.0, StatusCode::CREATED);
    assert_ne!(second.1["id"], id);
    let (plain_a, plain_b) = (
        create(&server, &token, None, "Shop").await,
        create(&server, &token, None, "Shop").await,
    );
    assert_ne!(
        plain_a.1["id"], plain_b.1["id"],
        "without a key each is new"
    );
    assert_eq!(owned(&server, &token).await, 4);
    assert_eq!(claims().trim(), "2", "one claim per key");
    // Another user's key of the same text is theirs.
    let (stranger, _) = server.register("stranger").await;
    let theirs = create(&server, &stranger, Some("shop-1"), "Shop").await;
    assert_eq!(theirs.0, StatusCode::CREATED);
    assert_ne!(theirs.1["id"], id);

    let server = server.crash_and_restart().unwrap();
    let after = create(&server, &token, Some("shop-1"), "Shop").await;
    assert_eq!(
        (after.0, &after.1["id"]),
        (StatusCode::CREATED, &id),
        "{after:?}"
    );
    assert_eq!(owned(&server, &token).await, 4);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let server = Server::start_with(&[("NAVARO_HTTP__BODY_LIMIT_BYTES", "1024")]).unwrap();
    let big = json!({"email": "a@b.co", "password": "x".repeat(4096), "name": "A"});
    let (status, _, body) = server
        .call(Method::POST, "/v1/auth/register", None, Some(big))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(&body), "payload_too_large");
}

#[tokio::test]
async fn messagepack_in_and_out_with_the_same_fields() {
    let server = Server::start();
    let email = format!("mp-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = rmp_serde::to_vec_named(
        &json!({"email": email, "password": "correct horse battery", "name": "Mp"}),
    )
    .unwrap();
    let response = server
        .client
        .post(server.url("/v1/auth/register"))
        .header("content-type", "application/msgpack")
        .header("accept", "application/msgpack")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["content-type"], "application/msgpack");
    let value: Value = rmp_serde::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(value["user"]["email"], email.as_str());
    let token = value["token"].as_str().unwrap();

    let response = server
        .client
        .get(server.url("/v1/me"))
        .bearer_auth(token)
        .header("accept", "application/msgpack")
        .send()
        .await
        .unwrap();
    let me: Value = rmp_serde::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(me["email"], email.as_str());

    // Errors too.
    let response = server
        .client
        .get(server.url("/v1/me"))
        .header("accept", "application/msgpack")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(common::vary(response.headers()), ["accept"]);
    let error: Value = rmp_serde::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(code(&error), "unauthorized");
    // The same error in JSON says so too: a shared cache keys it by `Accept`. The
    // metrics' text is not negotiated.
    let plain = async |path: &str| server.client.get(server.url(path)).send().await.unwrap();
    let response = plain("/v1/me").await;
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(common::vary(response.headers()), ["accept"]);
    assert!(common::vary(plain("/metrics").await.headers()).is_empty());

    // A body sent from shared chunks (the establishment's kept rendering) transcodes to
    // the same fields.
    let (_, id, _, _) = common::setup(&server, 10).await;
    let path = format!("/v1/establishments/{id}");
    let (status, _, as_json) = server.call(Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::OK);
    let response = server
        .client
        .get(server.url(&path))
        .header("accept", "application/msgpack")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/msgpack");
    let as_msgpack: Value = rmp_serde::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(as_msgpack, as_json);
    assert_eq!(as_json["services"].as_array().map(Vec::len), Some(1));

    // Garbage MessagePack is a 400, never a crash.
    let response = server
        .client
        .post(server.url("/v1/auth/login"))
        .header("content-type", "application/msgpack")
        .body(vec![0xc1, 0xff, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn login_is_rate_limited_with_retry_after() {
    let server = Server::start_with(&[
        ("NAVARO_LIMITS__LOGIN_PER_MINUTE", "2"),
        ("NAVARO_LIMITS__LOGIN_BURST", "2"),
    ])
    .unwrap();
    let login = json!({"email": "x@example.com", "password": "whatever1"});
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let (status, headers, body) = server
            .call(Method::POST, "/v1/auth/login", None, Some(login.clone()))
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(code(&body), "rate_limited");
            retry_after = headers.get("retry-after").cloned();
        }
        statuses.push(status);
    }
    assert_eq!(&statuses[..2], &[StatusCode::UNAUTHORIZED; 2]);
    assert_eq!(&statuses[2..], &[StatusCode::TOO_MANY_REQUESTS; 2]);
    let seconds: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&seconds));
}

#[tokio::test]
async fn per_ip_limit_applies_to_the_api() {
    let server = Server::start_with(&[
        ("NAVARO_LIMITS__PER_IP_PER_SECOND", "1"),
        ("NAVARO_LIMITS__PER_IP_BURST", "3"),
    ])
    .unwrap();
    let mut limited = 0;
    for _ in 0..6 {
        let (status, headers, _) = server.call(Method::GET, "/v1/me", None, None).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(headers.contains_key("retry-after"));
            limited += 1;
        }
    }
    assert!(limited >= 2, "{limited}");
    // Health is not rate limited.
    let (status, _, _) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn refuses_to_start_outside_dev_mode_with_the_default_key() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_navaro"))
        .arg("serve")
        .env("NAVARO_DEV_MODE", "false")
        .env("NAVARO_HTTP__LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("default signing key"), "{stderr}");
}

#[test]
fn unknown_settings_are_refused() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_navaro"))
        .arg("serve")
        .env("NAVARO_HTTP__LISTEN_ADDRESS", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listen_address"), "{stderr}");
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let server = Server::start();
    let (status, _, _) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let status = tokio::task::spawn_blocking(move || server.terminate(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("exited within the grace period");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn demo_loads_a_realistic_establishment() {
    let server = Server::spawn(&["demo"], &[]).unwrap();
    let (status, _, login) = server
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "owner@demo.navaro.dev", "password": "navaro-demo"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let token = login["token"].as_str().unwrap();
    let (_, _, me) = server.call(Method::GET, "/v1/me", Some(token), None).await;
    let id = me["memberships"][0]["establishment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(me["memberships"][0]["role"], "owner");
    let (status, _, est) = server
        .call(Method::GET, &format!("/v1/establishments/{id}"), None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(est["staff"].as_array().unwrap().len(), 3);
    assert_eq!(est["services"].as_array().unwrap().len(), 4);
    let (_, _, login) = server
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "bruno@demo.navaro.dev", "password": "navaro-demo"})),
        )
        .await;
    let (_, _, mine) = server
        .call(
            Method::GET,
            "/v1/me/bookings",
            login["token"].as_str(),
            None,
        )
        .await;
    assert!(!mine["bookings"].as_array().unwrap().is_empty(), "{mine}");
}

#[test]
fn migrate_runs_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_navaro"))
        .arg("migrate")
        .env("NAVARO_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[tokio::test]
async fn connection_cap_holds_further_clients_back() {
    let server = Server::start_with(&[("NAVARO_HTTP__MAX_CONNECTIONS", "1")]).unwrap();
    // One client holds the only connection (keep-alive).
    let (status, _, _) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let other = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let refused = other.get(server.url("/healthz")).send().await;
    assert!(
        refused.is_err(),
        "a second connection waits while the first is open"
    );
    // Still served on the open connection.
    let (status, _, _) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_request_over_the_timeout_is_503() {
    // Registering hashes a password (tens of milliseconds): over a 2 ms budget. (The
    // body's own clock must be shorter than the request's; its body is in at once.)
    let server = Server::start_with(&[
        ("NAVARO_HTTP__REQUEST_TIMEOUT_MS", "2"),
        ("NAVARO_HTTP__BODY_READ_TIMEOUT_MS", "1"),
    ])
    .unwrap();
    let (status, headers, body) = server
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"email": "slow@example.com", "password": "correct horse battery", "name": "S"})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "unavailable");
    assert!(headers.contains_key("retry-after"));
    assert!(
        headers.contains_key("x-request-id"),
        "request id on a timeout"
    );
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => out.push(target.clone()),
                    _ => collect_refs(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
