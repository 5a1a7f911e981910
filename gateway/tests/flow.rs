//! End-to-end tests of the booking flow against the real binary: the whole flow,
//! contention on one slot, idempotent retries, MessagePack, the authorization matrix and
//! the live feed with resume.

mod common;

use std::collections::HashSet;

use common::{Server, ahead, code, setup, slots};
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn whole_flow_register_to_cancel() {
    whole_flow(Server::start()).await;
}

#[tokio::test]
async fn whole_flow_register_to_cancel_on_postgres() {
    whole_flow(Server::start_postgres()).await;
}

async fn whole_flow(server: Server) {
    let (owner, id, staff_id, service) = setup(&server, 10).await;
    let day = ahead(3);
    let free = slots(&server, &id, &service, day).await;
    assert!(!free.is_empty());
    let start = free[0]["start"].as_str().unwrap().to_owned();
    assert!(
        start.ends_with("-03:00"),
        "instants carry the establishment's offset: {start}"
    );

    let (customer, customer_id) = server.register("customer").await;
    let (status, _, booking) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(&customer),
            Some(json!({"service_id": service, "start": start})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["staff_id"], staff_id.as_str());
    assert_eq!(booking["customer_id"], customer_id.as_str());
    let booking_id = booking["id"].as_str().unwrap().to_owned();

    let after = slots(&server, &id, &service, day).await;
    assert!(
        after.iter().all(|s| s["start"] != start.as_str()),
        "slot no longer offered"
    );

    let (status, _, taken) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(&owner),
            Some(json!({"service_id": service, "start": start})),
        )
        .await;
    assert_eq!(
        (status, code(&taken)),
        (StatusCode::CONFLICT, "slot_unavailable")
    );
    assert!(
        taken["error"]["alternatives"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );

    let path = format!("/v1/establishments/{id}/bookings/{booking_id}");
    let (status, _, _) = server.call(Method::GET, &path, Some(&customer), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, list) = server
        .call(
            Method::GET,
            &format!("/v1/establishments/{id}/bookings?date={day}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["bookings"].as_array().unwrap().len(), 1);
    let (_, _, mine) = server
        .call(Method::GET, "/v1/me/bookings", Some(&customer), None)
        .await;
    assert_eq!(mine["bookings"][0]["id"], booking_id.as_str());

    let second = free[4]["start"].as_str().unwrap();
    let (status, _, moved) = server
        .call(
            Method::POST,
            &format!("{path}/reschedule"),
            Some(&customer),
            Some(json!({"start": second})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["start"], second);

    let (status, _, cancelled) = server
        .call(
            Method::POST,
            &format!("{path}/cancel"),
            Some(&customer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (status, _, again) = server
        .call(
            Method::POST,
            &format!("{path}/cancel"),
            Some(&customer),
            None,
        )
        .await;
    assert_eq!((status, code(&again)), (StatusCode::CONFLICT, "conflict"));
}

#[tokio::test]
async fn two_hundred_concurrent_bookings_of_one_slot_give_exactly_one_201() {
    contention_on_one_slot(Server::start()).await;
}

#[tokio::test]
async fn two_hundred_concurrent_bookings_of_one_slot_give_exactly_one_201_on_postgres() {
    contention_on_one_slot(Server::start_postgres()).await;
}

async fn contention_on_one_slot(server: Server) {
    let (_, id, _, service) = setup(&server, 1000).await;
    let start = slots(&server, &id, &service, ahead(2)).await[0]["start"]
        .as_str()
        .unwrap()
        .to_owned();
    // 20 customers, 10 attempts each, all at once.
    let mut customers = Vec::new();
    for n in 0..20 {
        customers.push(server.register(&format!("c{n}")).await.0);
    }
    let path = format!("/v1/establishments/{id}/bookings");
    let attempts = customers.iter().flat_map(|token| {
        (0..10).map(|_| {
            server.call(
                Method::POST,
                &path,
                Some(token),
                Some(json!({"service_id": service, "start": start})),
            )
        })
    });
    let results = futures::future::join_all(attempts).await;
    let created = results
        .iter()
        .filter(|r| r.0 == StatusCode::CREATED)
        .count();
    let refused = results
        .iter()
        .filter(|r| r.0 == StatusCode::CONFLICT && code(&r.2) == "slot_unavailable")
        .count();
    assert_eq!(results.len(), 200);
    assert_eq!(created, 1, "exactly one booking wins");
    assert_eq!(
        refused,
        199,
        "{:?}",
        results.iter().map(|r| r.0).collect::<HashSet<_>>()
    );
}

#[tokio::test]
async fn idempotent_retries_return_the_first_answer() {
    idempotent_retries(Server::start()).await;
}

#[tokio::test]
async fn idempotent_retries_return_the_first_answer_on_postgres() {
    idempotent_retries(Server::start_postgres()).await;
}

async fn idempotent_retries(server: Server) {
    let (_, id, _, service) = setup(&server, 10).await;
    let free = slots(&server, &id, &service, ahead(2)).await;
    let (customer, _) = server.register("retry").await;
    let path = format!("/v1/establishments/{id}/bookings");
    let body = json!({"service_id": service, "start": free[0]["start"]});
    let key = [("idempotency-key", "booking-attempt-1")];
    let first = server
        .call_with(
            Method::POST,
            &path,
            Some(&customer),
            Some(body.clone()),
            &key,
        )
        .await;
    let retry = server
        .call_with(Method::POST, &path, Some(&customer), Some(body), &key)
        .await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.2);
    assert_eq!(retry.0, StatusCode::CREATED, "{}", retry.2);
    assert_eq!(first.2["id"], retry.2["id"], "never books twice");

    let other = json!({"service_id": service, "start": free[8]["start"]});
    let reused = server
        .call_with(Method::POST, &path, Some(&customer), Some(other), &key)
        .await;
    assert_eq!(reused.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", reused.2);
    assert_eq!(code(&reused.2), "idempotency_key_reused");
}

#[tokio::test]
async fn booking_in_messagepack() {
    let server = Server::start();
    let (_, id, _, service) = setup(&server, 10).await;
    let free = slots(&server, &id, &service, ahead(2)).await;
    let (customer, _) = server.register("mp").await;
    let body = rmp_serde::to_vec_named(&json!({"service_id": service, "start": free[0]["start"]}))
        .unwrap();
    let response = server
        .client
        .post(server.url(&format!("/v1/establishments/{id}/bookings")))
        .bearer_auth(&customer)
        .header("content-type", "application/msgpack")
        .header("accept", "application/msgpack")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let booking: Value = rmp_serde::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["start"], free[0]["start"]);
}

/// `form=runs` holds exactly the starts of the default form, as runs: a booking in the
/// middle of a day splits that day's run in two; MessagePack carries the same fields
/// (of both forms); an unknown form is refused on the field.
#[tokio::test]
async fn availability_in_runs_form() {
    let server = Server::start();
    let (_, id, staff_id, service) = setup(&server, 10).await;
    let day = ahead(2);
    let free = slots(&server, &id, &service, day).await;
    let (customer, _) = server.register("runs").await;
    let (status, _, booking) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(&customer),
            Some(json!({"service_id": service, "start": free[8]["start"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");

    let path =
        format!("/v1/establishments/{id}/availability?service_id={service}&from={day}&days=2");
    let plain = server.client.get(server.url(&path)).send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    // The default form is sent as the kept days' shared chunks with their exact length
    // (a length too long or too short fails the read or the parse below).
    assert!(plain.headers().get("content-length").is_some());
    assert!(plain.headers().get("transfer-encoding").is_none());
    let plain_bytes = plain.bytes().await.unwrap();
    let plain: Value = serde_json::from_slice(&plain_bytes).unwrap();
    // The answer at `path` asked for as MessagePack, decoded.
    let packed = async |path: &str| -> Value {
        let response = server
            .client
            .get(server.url(path))
            .header("accept", "application/msgpack")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        rmp_serde::from_slice(&response.bytes().await.unwrap()).unwrap()
    };
    // MessagePack reads the chunks whole and carries the same answer.
    assert_eq!(packed(&path).await, plain);
    let reused_before = days_metric(&server, "reused").await;
    let runs_path = format!("{path}&form=runs");
    let (status, _, runs) = server.call(Method::GET, &runs_path, None, None).await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    // Nothing changed since the same two days were answered: both come from the cache.
    assert_eq!(days_metric(&server, "reused").await - reused_before, 2.0);
    assert!(days_metric(&server, "computed").await >= 2.0);
    assert_eq!(runs["establishment_id"], id.as_str());
    assert_eq!(runs["service_id"], service.as_str());
    assert_eq!(runs["timezone"], plain["timezone"]);
    assert_eq!(runs["step_minutes"], 15);
    assert_eq!(runs["staff_ids"], json!([staff_id]));
    // Two days of 09:00-18:00, one booking at 11:00: 09:00-10:30, 11:30-17:30, the next
    // day whole.
    let list = runs["runs"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{runs}");
    let mut expanded = Vec::new();
    for run in list {
        let start = run["start"].as_str().unwrap();
        let first: jiff::Timestamp = start.parse().unwrap();
        let offset = jiff::tz::Offset::from_hours(-3).unwrap();
        assert!(start.ends_with("-03:00"), "{start}");
        for k in 0..run["count"].as_i64().unwrap() {
            let at = first + jiff::SignedDuration::from_mins(15 * k);
            expanded.push(json!({
                "start": at.display_with_offset(offset).to_string(),
                "staff_ids": [staff_id],
            }));
        }
        assert_eq!(run["staff"], json!([0]));
    }
    assert_eq!(&expanded, plain["slots"].as_array().unwrap());
    let runs_bytes = serde_json::to_vec(&runs).unwrap().len();
    assert!(
        runs_bytes * 5 < plain_bytes.len(),
        "{runs_bytes} bytes against {}",
        plain_bytes.len()
    );

    assert_eq!(packed(&runs_path).await, runs);

    for form in ["slots", "runs"] {
        let (status, _, _) = server
            .call(Method::GET, &format!("{path}&form={form}"), None, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{form}");
    }
    let (status, _, refused) = server
        .call(Method::GET, &format!("{path}&form=grid"), None, None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(code(&refused), "invalid_request");
    assert_eq!(refused["error"]["field"], "form");
}

/// A client that takes gzip gets the default form compressed, and it inflates to the
/// plain answer byte for byte, before and after a booking changes one of its days; the
/// kept days' compressed form is reused by the next answer. MessagePack, a refused gzip
/// and the runs form get plain bodies.
#[tokio::test]
async fn availability_compressed_for_a_client_that_takes_gzip() {
    use std::io::Read;

    let server = Server::start();
    let (_, id, _, service) = setup(&server, 10).await;
    let from = ahead(1);
    let path =
        format!("/v1/establishments/{id}/availability?service_id={service}&from={from}&days=4");
    let get = async |path: &str, headers: &[(&str, &str)]| {
        let mut request = server.client.get(server.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers().clone();
        (headers, response.bytes().await.unwrap())
    };
    let gzip_days = async |outcome: &str| {
        let text = server.metrics().await;
        let series = format!("navaro_availability_gzip_days_total{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .map_or(0.0, |value| value.trim().parse::<f64>().unwrap())
    };
    let check = async || {
        let (plain_headers, plain) = get(&path, &[]).await;
        assert!(plain_headers.get("content-encoding").is_none());
        assert_eq!(common::vary(&plain_headers), ["accept-encoding", "accept"]);
        let (headers, compressed) = get(&path, &[("accept-encoding", "gzip, deflate, br")]).await;
        assert_eq!(headers["content-encoding"], "gzip");
        assert_eq!(common::vary(&headers), ["accept-encoding", "accept"]);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(
            headers["content-length"].to_str().unwrap(),
            compressed.len().to_string()
        );
        let mut inflated = Vec::new();
        let mut decoder = flate2::bufread::GzDecoder::new(&compressed[..]);
        decoder
            .read_to_end(&mut inflated)
            .expect("a valid gzip body");
        assert!(
            decoder.into_inner().is_empty(),
            "one member, nothing after it"
        );
        assert_eq!(
            String::from_utf8(inflated).unwrap(),
            String::from_utf8(plain.to_vec()).unwrap()
        );
        // Four days of one staff member, 09:00-18:00 every 15 minutes: 14 KB plain.
        assert!(
            compressed.len() * 8 < plain.len(),
            "{} of {}",
            compressed.len(),
            plain.len()
        );
        plain
    };
    let plain = check().await;
    // HEAD: the compressed answer's headers, its length, no body.
    let head = server
        .client
        .head(server.url(&path))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-encoding"], "gzip");
    let (_, compressed) = get(&path, &[("accept-encoding", "gzip")]).await;
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        compressed.len().to_string()
    );
    assert!(head.bytes().await.unwrap().is_empty());
    let deflated = gzip_days("deflated").await;
    assert_eq!(deflated, 4.0);
    // The same days again: their kept segments.
    let reused = gzip_days("reused").await;
    check().await;
    assert_eq!(gzip_days("reused").await - reused, 4.0);
    assert_eq!(gzip_days("deflated").await, deflated);

    // A booking changes its day: that day alone is deflated anew.
    let first: Value = serde_json::from_slice(&plain).unwrap();
    let (customer, _) = server.register("gzip").await;
    let (status, _, booking) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(&customer),
            Some(json!({"service_id": service, "start": first["slots"][5]["start"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    let after = check().await;
    assert_ne!(after, plain);
    assert_eq!(gzip_days("deflated").await - deflated, 1.0);

    // Answers that are not compressed, whatever the client takes.
    let msgpack = [
        ("accept", "application/msgpack"),
        ("accept-encoding", "gzip"),
    ];
    let (headers, packed) = get(&path, &msgpack).await;
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(headers["content-type"], "application/msgpack");
    assert_eq!(common::vary(&headers), ["accept-encoding", "accept"]);
    let packed: Value = rmp_serde::from_slice(&packed).unwrap();
    assert_eq!(packed, serde_json::from_slice::<Value>(&after).unwrap());
    let (headers, refused) = get(&path, &[("accept-encoding", "gzip;q=0, br")]).await;
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(refused, after);
    let (headers, runs) = get(&format!("{path}&form=runs"), &[("accept-encoding", "gzip")]).await;
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(common::vary(&headers), ["accept"]);
    serde_json::from_slice::<Value>(&runs).expect("plain JSON");
}

/// Authorization matrix: two establishments, their owners, a staff member of A, two
/// customers, an admin and anonymous, against every endpoint taking an id of A.
#[tokio::test]
async fn authorization_matrix() {
    let server =
        Server::start_with(&[("NAVARO_AUTH__ADMIN_EMAILS", "[\"admin@navaro.test\"]")]).unwrap();
    let (owner_a, id_a, staff_a_id, service_a) = setup(&server, 10).await;
    let (owner_b, _id_b, _, _) = setup(&server, 10).await;
    let (staff_a, staff_user) = server.register("staff").await;
    let (status, _, _) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id_a}/members"),
            Some(&owner_a),
            Some(json!({"user_id": staff_user, "role": "staff"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (c1, _) = server.register("c1").await;
    let (c2, _) = server.register("c2").await;
    let (status, _, admin) = server
        .call(Method::POST, "/v1/auth/register", None,
            Some(json!({"email": "admin@navaro.test", "password": "correct horse battery", "name": "Admin"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let admin = admin["token"].as_str().unwrap().to_owned();

    let free = slots(&server, &id_a, &service_a, ahead(2)).await;
    let (status, _, booking) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id_a}/bookings"),
            Some(&c1),
            Some(json!({"service_id": service_a, "start": free[0]["start"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    let booking = booking["id"].as_str().unwrap().to_owned();

    let actors: [(&str, Option<&str>); 7] = [
        ("owner_a", Some(&owner_a)),
        ("staff_a", Some(&staff_a)),
        ("admin", Some(&admin)),
        ("c1", Some(&c1)),
        ("owner_b", Some(&owner_b)),
        ("c2", Some(&c2)),
        ("anonymous", None),
    ];
    let e = format!("/v1/establishments/{id_a}");
    let b = format!("{e}/bookings/{booking}");
    // The same hours as set up (every day 09:00-18:00), so the reschedule below still
    // lands inside them whatever the weekday.
    let day_hours = json!([["09:00", "18:00"]]);
    let hours = json!({"hours": {"mon": day_hours, "tue": day_hours, "wed": day_hours,
        "thu": day_hours, "fri": day_hours, "sat": day_hours, "sun": day_hours}});
    let day = ahead(2);
    // (method, path, body, who may: the rest must be refused)
    let manage = ["owner_a", "admin"];
    let sees_booking = ["owner_a", "staff_a", "admin", "c1"];
    let only_admin = ["admin"];
    let (_, victim) = server.register("victim").await;
    let endpoints: Vec<(Method, String, Option<Value>, &[&str])> = vec![
        (
            Method::PATCH,
            e.clone(),
            Some(json!({"name": "Renamed"})),
            &manage,
        ),
        (
            Method::POST,
            format!("{e}/members"),
            Some(json!({"user_id": staff_user, "role": "staff"})),
            &manage,
        ),
        (
            Method::POST,
            format!("{e}/staff"),
            Some(json!({"name": "New", "hours": {}})),
            &manage,
        ),
        (
            Method::PUT,
            format!("{e}/staff/{staff_a_id}/hours"),
            Some(hours),
            &manage,
        ),
        (
            Method::POST,
            format!("{e}/staff/{staff_a_id}/time-off"),
            Some(
                json!({"start": format!("{}T00:00:00Z", ahead(40)), "end": format!("{}T23:00:00Z", ahead(40))}),
            ),
            &manage,
        ),
        (
            Method::POST,
            format!("{e}/services"),
            Some(
                json!({"name": "S", "duration_minutes": 15, "price_cents": 100, "staff_ids": [staff_a_id]}),
            ),
            &manage,
        ),
        (Method::GET, b.clone(), None, &sees_booking),
        (
            Method::POST,
            format!("{b}/reschedule"),
            Some(json!({"start": free[6]["start"]})),
            &sees_booking,
        ),
        // The platform's admin routes: admins only, whatever else the caller is.
        (
            Method::GET,
            "/v1/admin/establishments".into(),
            None,
            &only_admin,
        ),
        (Method::GET, "/v1/admin/users".into(), None, &only_admin),
        (Method::GET, "/v1/admin/stats".into(), None, &only_admin),
        (Method::GET, "/v1/admin/audit".into(), None, &only_admin),
        (
            Method::POST,
            format!("/v1/admin/establishments/{id_a}/suspend"),
            Some(json!({"reason": "matrix"})),
            &only_admin,
        ),
        (
            Method::POST,
            format!("/v1/admin/establishments/{id_a}/reinstate"),
            Some(json!({"reason": "matrix"})),
            &only_admin,
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{victim}/disable"),
            Some(json!({"reason": "matrix"})),
            &only_admin,
        ),
    ];
    for (method, path, body, allowed) in &endpoints {
        for (name, token) in &actors {
            let (status, _, answer) = server
                .call(method.clone(), path, *token, body.clone())
                .await;
            let ok = status.is_success();
            assert_eq!(
                ok,
                allowed.contains(name),
                "{name} {method} {path}: {status} {answer}"
            );
            if !ok {
                let refused = [
                    StatusCode::UNAUTHORIZED,
                    StatusCode::FORBIDDEN,
                    StatusCode::NOT_FOUND,
                ];
                assert!(
                    refused.contains(&status),
                    "{name} {method} {path}: {status}"
                );
                if token.is_none() {
                    assert_eq!(status, StatusCode::UNAUTHORIZED);
                }
            }
        }
    }
    // Lists: members see c1's booking, other customers and other tenants do not.
    for (name, token) in &actors {
        let (status, _, list) = server
            .call(
                Method::GET,
                &format!("{e}/bookings?date={day}"),
                *token,
                None,
            )
            .await;
        if token.is_none() {
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            continue;
        }
        let ids: Vec<&str> = list["bookings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids.contains(&booking.as_str()),
            sees_booking.contains(name),
            "{name}: {list}"
        );
    }
    // Cancel last: others refused, then c1 may.
    for (name, token) in &actors {
        if sees_booking.contains(name) {
            continue;
        }
        let (status, _, _) = server
            .call(Method::POST, &format!("{b}/cancel"), *token, None)
            .await;
        assert!(
            !status.is_success(),
            "{name} cancelled someone else's booking"
        );
    }
    let (status, _, _) = server
        .call(Method::POST, &format!("{b}/cancel"), Some(&c1), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Public reads.
    for (_, token) in &actors {
        let (status, _, _) = server.call(Method::GET, &e, *token, None).await;
        assert_eq!(status, StatusCode::OK);
    }
}

async fn connect(
    server: &Server,
    path: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = format!("ws://127.0.0.1:{}{path}", server.port)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "navaro.v1.json".parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "navaro.v1.json"
    );
    socket
}

async fn next_json(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn live_feed_backlog_live_and_resume() {
    live_resume(Server::start()).await;
}

#[tokio::test]
async fn live_feed_backlog_live_and_resume_on_postgres() {
    live_resume(Server::start_postgres()).await;
}

async fn live_resume(server: Server) {
    let (owner, id, _, service) = setup(&server, 10).await;
    let free = slots(&server, &id, &service, ahead(2)).await;
    let path = format!("/v1/establishments/{id}/live");

    let mut all = connect(&server, &format!("{path}?since=0"), &owner).await;
    let hello = next_json(&mut all).await;
    assert_eq!(hello["type"], "hello");
    let hello_seq = hello["seq"].as_u64().unwrap();
    assert!(hello_seq >= 3, "created, staff, service");
    for seq in 1..=hello_seq {
        let frame = next_json(&mut all).await;
        assert_eq!(frame["seq"].as_u64(), Some(seq), "{frame}");
    }

    let (customer, _) = server.register("live").await;
    let mut own = connect(&server, &path, &customer).await;
    assert_eq!(next_json(&mut own).await["type"], "hello");
    let (status, _, _) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(&customer),
            Some(json!({"service_id": service, "start": free[0]["start"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let frame = next_json(&mut all).await;
    assert_eq!(frame["type"], "booking.confirmed");
    assert_eq!(frame["seq"].as_u64(), Some(hello_seq + 1));
    assert_eq!(next_json(&mut own).await["type"], "booking.confirmed");

    // Resume from the middle: exactly the events after `since`, in order.
    let mut resumed = connect(&server, &format!("{path}?since=2"), &owner).await;
    assert_eq!(next_json(&mut resumed).await["type"], "hello");
    for seq in 3..=hello_seq + 1 {
        assert_eq!(next_json(&mut resumed).await["seq"].as_u64(), Some(seq));
    }
    let _ = all.send(Message::Close(None)).await;
}

#[tokio::test]
async fn overloaded_engine_answers_503_with_retry_after() {
    let server = Server::start_with(&[
        ("NAVARO_ENGINE__MAX_IN_FLIGHT_PER_ESTABLISHMENT", "1"),
        ("NAVARO_LIMITS__OVERLOADED_RETRY_AFTER_SECONDS", "2"),
    ])
    .unwrap();
    let (_, id, _, service) = setup(&server, 1000).await;
    let free = slots(&server, &id, &service, ahead(2)).await;
    let (customer, _) = server.register("busy").await;
    let path = format!("/v1/establishments/{id}/bookings");
    let attempts = free.iter().take(40).map(|slot| {
        server.call(
            Method::POST,
            &path,
            Some(&customer),
            Some(json!({"service_id": service, "start": slot["start"]})),
        )
    });
    let results = futures::future::join_all(attempts).await;
    let overloaded: Vec<_> = results
        .iter()
        .filter(|r| r.0 == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        !overloaded.is_empty(),
        "an in-flight cap of 1 refuses some of 40 at once"
    );
    for (_, headers, body) in overloaded {
        assert_eq!(code(body), "overloaded");
        assert_eq!(headers["retry-after"], "2");
    }
    assert!(results.iter().any(|r| r.0 == StatusCode::CREATED));
}

/// A booking confirmed with 201 survives `kill -9` and a restart, as does the account
/// that made it (SQLite by default, Postgres with `TEST_POSTGRES_URL`).
#[tokio::test]
async fn a_confirmed_booking_survives_kill_9() {
    durability_across_kill_9(Server::start()).await;
}

#[tokio::test]
async fn a_confirmed_booking_survives_kill_9_on_postgres() {
    durability_across_kill_9(Server::start_postgres()).await;
}

async fn durability_across_kill_9(server: Server) {
    let (_, id, _, service) = setup(&server, 10).await;
    let free = slots(&server, &id, &service, ahead(2)).await;
    let email = format!("durable-{}@example.com", uuid::Uuid::new_v4().simple());
    let (status, _, registered) = server
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"email": email, "password": "correct horse battery", "name": "D"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = registered["token"].as_str().unwrap().to_owned();
    let (status, _, booking) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(&token),
            Some(json!({"service_id": service, "start": free[0]["start"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");

    let server = server.crash_and_restart().unwrap();
    let (status, _, login) = server
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": email, "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the account survived");
    let token = login["token"].as_str().unwrap();
    let (status, _, again) = server
        .call(
            Method::GET,
            &format!(
                "/v1/establishments/{id}/bookings/{}",
                booking["id"].as_str().unwrap()
            ),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "confirmed");
    let (_, _, mine) = server
        .call(Method::GET, "/v1/me/bookings", Some(token), None)
        .await;
    assert_eq!(mine["bookings"][0]["id"], booking["id"]);
    let after = slots(&server, &id, &service, ahead(2)).await;
    assert!(
        after.iter().all(|s| s["start"] != free[0]["start"]),
        "still taken"
    );
}

#[tokio::test]
async fn per_user_and_booking_creation_limits() {
    let server = Server::start_with(&[
        ("NAVARO_LIMITS__BOOKINGS_PER_MINUTE", "2"),
        ("NAVARO_LIMITS__BOOKINGS_BURST", "2"),
    ])
    .unwrap();
    let (_, id, _, service) = setup(&server, 10).await;
    let free = slots(&server, &id, &service, ahead(2)).await;
    let (customer, _) = server.register("hoarder").await;
    let path = format!("/v1/establishments/{id}/bookings");
    let mut statuses = Vec::new();
    for slot in free.iter().step_by(4).take(4) {
        let (status, headers, body) = server
            .call(
                Method::POST,
                &path,
                Some(&customer),
                Some(json!({"service_id": service, "start": slot["start"]})),
            )
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(code(&body), "rate_limited");
            assert!(headers.contains_key("retry-after"));
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Reads by the same user are not booking-limited.
    let (status, _, _) = server
        .call(Method::GET, "/v1/me/bookings", Some(&customer), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    let server = Server::start_with(&[
        ("NAVARO_LIMITS__PER_USER_PER_SECOND", "1"),
        ("NAVARO_LIMITS__PER_USER_BURST", "2"),
    ])
    .unwrap();
    let (token, _) = server.register("busy").await;
    let mut limited = 0;
    for _ in 0..5 {
        let (status, _, _) = server.call(Method::GET, "/v1/me", Some(&token), None).await;
        limited += usize::from(status == StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(limited >= 2, "{limited}");
    // Another user is not affected.
    let (other, _) = server.register("calm").await;
    let (status, _, _) = server.call(Method::GET, "/v1/me", Some(&other), None).await;
    assert_eq!(status, StatusCode::OK);
}

/// `navaro_availability_days_total{outcome}` on the server's `/metrics` (0 before any).
async fn days_metric(server: &Server, outcome: &str) -> f64 {
    let text = server.metrics().await;
    let series = format!("navaro_availability_days_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}
