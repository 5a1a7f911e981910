//! Sessions against the real binary, on SQLite and on Postgres (issue 26): refresh
//! tokens rotate on every use and a reused one revokes its whole session; signing out
//! revokes this device's tokens, signing out everywhere every device's; a password
//! change revokes every session and starts a new one.

mod common;

use common::{Server, code};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// Register a user and sign in on a second device: (email, first device, second).
async fn two_devices(server: &Server) -> (String, Value, Value) {
    let email = format!("s-{}@example.com", uuid::Uuid::new_v4().simple());
    let (status, _, first) = server
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"email": email, "password": PASSWORD, "name": "S"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(first["refresh_token"].is_string(), "{first}");
    let second = login(server, &email, PASSWORD).await;
    assert_ne!(first["session_id"], second["session_id"]);
    (email, first, second)
}

async fn login(server: &Server, email: &str, password: &str) -> Value {
    let (status, _, body) = server
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn refresh(server: &Server, refresh_token: &Value) -> (StatusCode, Value) {
    let (status, _, body) = server
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh_token})),
        )
        .await;
    (status, body)
}

/// The status of `GET /v1/me` with a device's access token.
async fn me(server: &Server, device: &Value) -> StatusCode {
    let token = device["token"].as_str().unwrap();
    server
        .call(Method::GET, "/v1/me", Some(token), None)
        .await
        .0
}

async fn post(
    server: &Server,
    path: &str,
    device: &Value,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let token = device["token"].as_str().unwrap();
    let (status, _, body) = server.call(Method::POST, path, Some(token), body).await;
    (status, body)
}

async fn refresh_rotates_and_a_reused_token_revokes_the_session(server: &Server) {
    let (_, first, second) = two_devices(server).await;
    let (status, rotated) = refresh(server, &first["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_ne!(rotated["refresh_token"], first["refresh_token"]);
    assert_eq!(rotated["session_id"], first["session_id"]);
    assert_eq!(me(server, &rotated).await, StatusCode::OK);
    // And again with the new one: each refresh token is good once.
    let (status, rotated) = refresh(server, &rotated["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");

    // The first refresh token again (a thief's copy, or the device's): the whole
    // session is revoked, the newest tokens included.
    let (status, body) = refresh(server, &first["refresh_token"]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "unauthorized");
    assert_eq!(me(server, &rotated).await, StatusCode::UNAUTHORIZED);
    let (status, _) = refresh(server, &rotated["refresh_token"]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The other device's session is not touched.
    assert_eq!(me(server, &second).await, StatusCode::OK);
    let (status, _) = refresh(server, &second["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK);

    // Garbage and forged tokens are refused without revoking anything.
    for bad in [json!("nonsense"), json!("a.b"), json!("x".repeat(500))] {
        let (status, _) = refresh(server, &bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

async fn logout_revokes_this_device_and_logout_all_every_device(server: &Server) {
    let (email, first, second) = two_devices(server).await;
    let (status, _) = post(server, "/v1/auth/logout", &first, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me(server, &first).await, StatusCode::UNAUTHORIZED);
    let (status, _) = refresh(server, &first["refresh_token"]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(me(server, &second).await, StatusCode::OK);

    let third = login(server, &email, PASSWORD).await;
    let (status, _) = post(server, "/v1/auth/logout-all", &second, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for device in [&second, &third] {
        assert_eq!(me(server, device).await, StatusCode::UNAUTHORIZED);
        let (status, _) = refresh(server, &device["refresh_token"]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Signing in again works.
    let again = login(server, &email, PASSWORD).await;
    assert_eq!(me(server, &again).await, StatusCode::OK);
}

async fn a_password_change_revokes_every_session(server: &Server) {
    let (email, first, second) = two_devices(server).await;
    let wrong =
        json!({"current_password": "not the password", "new_password": "a new long password"});
    let (status, body) = post(server, "/v1/me/password", &first, Some(wrong)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        me(server, &second).await,
        StatusCode::OK,
        "a wrong one changes nothing"
    );
    let short = json!({"current_password": PASSWORD, "new_password": "short"});
    let (status, body) = post(server, "/v1/me/password", &first, Some(short)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "new_password");

    let change = json!({"current_password": PASSWORD, "new_password": "a new long password"});
    let (status, fresh) = post(server, "/v1/me/password", &first, Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    for device in [&first, &second] {
        assert_eq!(me(server, device).await, StatusCode::UNAUTHORIZED);
        let (status, _) = refresh(server, &device["refresh_token"]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(me(server, &fresh).await, StatusCode::OK);
    let (status, _) = refresh(server, &fresh["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old password is gone");
    login(server, &email, "a new long password").await;
}

#[tokio::test]
async fn sessions_on_sqlite() {
    let server = Server::start();
    refresh_rotates_and_a_reused_token_revokes_the_session(&server).await;
    logout_revokes_this_device_and_logout_all_every_device(&server).await;
    a_password_change_revokes_every_session(&server).await;
}

#[tokio::test]
async fn sessions_on_postgres() {
    let server = Server::start_postgres();
    refresh_rotates_and_a_reused_token_revokes_the_session(&server).await;
    logout_revokes_this_device_and_logout_all_every_device(&server).await;
    a_password_change_revokes_every_session(&server).await;
}

/// Sessions are durable: a refresh token works after a restart (kill -9), and a
/// revocation holds after one (read from the store, not the lost cache).
#[tokio::test]
async fn a_refresh_token_survives_a_restart() {
    let server = Server::start_postgres();
    let (_, first, _) = two_devices(&server).await;
    let server = server.crash_and_restart().unwrap();
    let (status, rotated) = refresh(&server, &first["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(me(&server, &rotated).await, StatusCode::OK);
    let (status, _) = post(&server, "/v1/auth/logout", &rotated, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // After a restart the revocation is read from the store.
    let server = server.crash_and_restart().unwrap();
    assert_eq!(me(&server, &rotated).await, StatusCode::UNAUTHORIZED);
}

/// Disabling an account (platform admin) revokes its sessions: its refresh tokens stop
/// working at once, and its sessions are revoked in the store, which is what another
/// node (that learns of the disabling only at its next start) checks access tokens
/// against.
#[tokio::test]
async fn disabling_an_account_revokes_its_sessions() {
    let admin_email = "admin@sessions.test";
    let admins = format!("[\"{admin_email}\"]");
    let server = Server::start_postgres_with(&[("NAVARO_AUTH__ADMIN_EMAILS", &admins)]);
    let (status, _, admin) = server
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"email": admin_email, "password": PASSWORD, "name": "Admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{admin}");
    let (_, first, second) = two_devices(&server).await;
    let victim = first["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(me(&server, &first).await, StatusCode::OK);

    let (status, body) = post(
        &server,
        &format!("/v1/admin/users/{victim}/disable"),
        &admin,
        Some(json!({"reason": "fraud"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for device in [&first, &second] {
        let (status, body) = refresh(&server, &device["refresh_token"]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(me(&server, device).await, StatusCode::FORBIDDEN);
    }
    let url = server.database_url().expect("on Postgres");
    let live = common::psql_rows(
        url,
        &format!("SELECT count(*) FROM sessions WHERE user_id = '{victim}' AND revoked_at IS NULL"),
    );
    assert_eq!(live.trim(), "0", "every session of the account is revoked");
    // The admin's own session is not touched.
    assert_eq!(me(&server, &admin).await, StatusCode::OK);
}
