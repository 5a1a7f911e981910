//! A person's own data against the real binary (issue 26, LGPD): the export holds the
//! account, the sessions, the bookings and the push devices and preferences; deletion
//! ends every session, frees the email, leaves no email, name or device in the store, and the establishment keeps its
//! booking under an id that no longer names anyone.

mod common;

use common::{Server, ahead, code, psql_rows, setup, slots};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

async fn register(server: &Server, email: &str) -> Value {
    let (status, _, body) = server
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"email": email, "password": PASSWORD, "name": "Bruna Lima"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn export_then_erase(server: &Server) {
    let (owner, id, _staff, service) = setup(server, 10).await;
    let email = format!("bruna-{}@example.com", uuid::Uuid::new_v4().simple());
    let customer = register(server, &email).await;
    let token = customer["token"].as_str().unwrap().to_owned();
    let user_id = customer["user"]["id"].as_str().unwrap().to_owned();
    let start = slots(server, &id, &service, ahead(2)).await[0]["start"].clone();
    let (status, _, booking) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(&token),
            Some(json!({"service_id": service, "start": start})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");

    // A phone for push messages, and a kind of message turned off.
    let device = format!("ExponentPushToken[{}]", uuid::Uuid::new_v4().simple());
    let (status, _, body) = server
        .call(
            Method::POST,
            "/v1/me/devices",
            Some(&token),
            Some(json!({"token": device, "platform": "ios"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, body) = server
        .call(
            Method::PUT,
            "/v1/me/notification-preferences",
            Some(&token),
            Some(json!({"disabled": ["reminder"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The export: account, sessions, bookings, notifications.
    let (status, _, export) = server
        .call(Method::GET, "/v1/me/export", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{export}");
    let data = &export["data"];
    assert_eq!(data["account"]["email"], email.as_str());
    assert_eq!(data["account"]["name"], "Bruna Lima");
    assert_eq!(data["sessions"].as_array().unwrap().len(), 1, "{export}");
    assert_eq!(data["sessions"][0]["id"], customer["session_id"]);
    assert_eq!(data["bookings"][0]["id"], booking["id"], "{export}");
    let notifications = &data["notifications"];
    assert_eq!(
        notifications["devices"][0]["token"],
        device.as_str(),
        "{export}"
    );
    assert_eq!(
        notifications["disabled_kinds"],
        json!(["reminder"]),
        "{export}"
    );
    assert!(
        !export.to_string().contains("$argon2"),
        "no password hash in an export"
    );

    // An owner cannot just vanish from their establishment.
    let (status, _, body) = server
        .call(
            Method::DELETE,
            "/v1/me",
            Some(&owner),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Deletion needs the password.
    let (status, _, _) = server
        .call(
            Method::DELETE,
            "/v1/me",
            Some(&token),
            Some(json!({"password": "not the password"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = server
        .call(
            Method::DELETE,
            "/v1/me",
            Some(&token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Signed out everywhere; the credentials open nothing.
    let (status, _, body) = server.call(Method::GET, "/v1/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "unauthorized");
    let (status, _, _) = server
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": customer["refresh_token"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = server
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The establishment keeps the booking (its counts and revenue), under the old id.
    let date = ahead(2);
    let (status, _, list) = server
        .call(
            Method::GET,
            &format!("/v1/establishments/{id}/bookings?date={date}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let kept = list["bookings"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{list}");
    assert_eq!(kept[0]["customer_id"], user_id.as_str());
    assert_eq!(kept[0]["status"], "confirmed");

    // The email is free again: a new account, a new id.
    let again = register(server, &email).await;
    assert_ne!(again["user"]["id"], user_id.as_str());

    if let Some(url) = server.database_url() {
        let row = psql_rows(
            url,
            &format!("SELECT email, name, password_hash FROM users WHERE id = '{user_id}'"),
        );
        assert!(!row.contains(&email) && !row.contains("Bruna"), "{row}");
        assert!(row.contains("erased.invalid"), "{row}");
        let sessions = psql_rows(
            url,
            &format!("SELECT count(*) FROM sessions WHERE user_id = '{user_id}'"),
        );
        assert_eq!(sessions.trim(), "0");
        for table in ["push_devices", "push_opt_outs"] {
            let left = psql_rows(
                url,
                &format!("SELECT count(*) FROM {table} WHERE user_id = '{user_id}'"),
            );
            assert_eq!(left.trim(), "0", "{table}");
        }
        let pushes = psql_rows(
            url,
            &format!(
                "SELECT count(*) FROM notify_outbox WHERE channel = 'push' AND target = '{user_id}'"
            ),
        );
        assert_eq!(pushes.trim(), "0");
    }
}

#[tokio::test]
async fn export_and_erasure_on_sqlite() {
    let server = Server::start();
    export_then_erase(&server).await;
}

#[tokio::test]
async fn export_and_erasure_on_postgres() {
    let server = Server::start_postgres();
    export_then_erase(&server).await;
}
