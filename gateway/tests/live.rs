//! The live feed over WebSocket against the real binary: token in the query, the
//! MessagePack subprotocol, per-customer filtering, `reload`, the Origin allow-list,
//! pings and "going away" on shutdown.

mod common;

use std::time::Duration;

use common::{Server, ahead, setup, slots};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(
    server: &Server,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<Socket, WsError> {
    let mut request = format!("ws://127.0.0.1:{}{path_and_query}", server.port)
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        let name =
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        request.headers_mut().insert(name, v.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(s, _)| s)
}

async fn next(socket: &mut Socket) -> Message {
    tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a frame within 10 s")
        .expect("socket open")
        .expect("frame ok")
}

async fn next_value(socket: &mut Socket) -> Value {
    loop {
        match next(socket).await {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Binary(b) => return rmp_serde::from_slice(&b).unwrap(),
            _ => {}
        }
    }
}

async fn book(server: &Server, id: &str, token: &str, service: &str, start: &Value) {
    let (status, _, body) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(token),
            Some(json!({"service_id": service, "start": start})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn customers_see_only_their_own_events_in_msgpack_with_a_query_token() {
    let server = Server::start();
    let (_, id, _, service) = setup(&server, 10).await;
    let free = slots(&server, &id, &service, ahead(2)).await;
    let (alice, _) = server.register("alice").await;
    let (bob, _) = server.register("bob").await;
    let path = format!("/v1/establishments/{id}/live?access_token={alice}");
    let mut feed = open(
        &server,
        &path,
        &[("sec-websocket-protocol", "navaro.v1.msgpack")],
    )
    .await
    .unwrap();
    let hello = match next(&mut feed).await {
        Message::Binary(b) => rmp_serde::from_slice::<Value>(&b).unwrap(),
        other => panic!("msgpack frames are binary: {other:?}"),
    };
    assert_eq!(hello["type"], "hello");
    book(&server, &id, &bob, &service, &free[0]["start"]).await;
    book(&server, &id, &alice, &service, &free[4]["start"]).await;
    let frame = next_value(&mut feed).await;
    assert_eq!(frame["type"], "booking.confirmed");
    assert_eq!(
        frame["data"]["booking"]["start"], free[4]["start"],
        "in the establishment's offset"
    );
    assert!(frame["at"].as_str().unwrap().ends_with("-03:00"));
    assert_eq!(
        frame["seq"].as_u64(),
        Some(hello["seq"].as_u64().unwrap() + 2),
        "bob's booking (seq+1) is not shown to alice"
    );
}

#[tokio::test]
async fn since_in_the_future_gets_reload() {
    let server = Server::start();
    let (owner, id, _, _) = setup(&server, 10).await;
    // The scheme's name in any case, as HTTP allows.
    let auth = format!("BEARER {owner}");
    let mut feed = open(
        &server,
        &format!("/v1/establishments/{id}/live?since=99999"),
        &[("authorization", &auth)],
    )
    .await
    .unwrap();
    let hello = next_value(&mut feed).await;
    assert_eq!(hello["type"], "hello");
    let reload = next_value(&mut feed).await;
    assert_eq!(reload["type"], "reload");
    assert_eq!(reload["seq"], hello["seq"]);
}

#[tokio::test]
async fn upgrade_refused_without_token_or_from_a_foreign_origin() {
    let server = Server::start_with(&[(
        "NAVARO_HTTP__ALLOWED_ORIGINS",
        "[\"https://app.navaro.test\"]",
    )])
    .unwrap();
    let (owner, id, _, _) = setup(&server, 10).await;
    let path = format!("/v1/establishments/{id}/live");
    let status_of = |e: WsError| match e {
        WsError::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    };
    assert_eq!(status_of(open(&server, &path, &[]).await.unwrap_err()), 401);
    let auth = format!("Bearer {owner}");
    let evil = [
        ("authorization", auth.as_str()),
        ("origin", "https://evil.example"),
    ];
    assert_eq!(
        status_of(open(&server, &path, &evil).await.unwrap_err()),
        403
    );
    let good = [
        ("authorization", auth.as_str()),
        ("origin", "https://app.navaro.test"),
    ];
    assert!(open(&server, &path, &good).await.is_ok());
    let local = [
        ("authorization", auth.as_str()),
        ("origin", "http://localhost:5173"),
    ];
    assert!(
        open(&server, &path, &local).await.is_ok(),
        "dev mode allows localhost"
    );
}

#[tokio::test]
async fn a_page_of_this_server_may_open_the_feed_outside_dev_mode() {
    let server = Server::start_with(&[
        ("NAVARO_DEV_MODE", "false"),
        (
            "NAVARO_AUTH__SIGNING_KEY__SECRET",
            "a-test-signing-key-of-at-least-thirty-two-bytes",
        ),
    ])
    .unwrap();
    let (owner, id, _, _) = setup(&server, 10).await;
    let path = format!("/v1/establishments/{id}/live");
    let auth = format!("Bearer {owner}");
    // The Host the client sends is `127.0.0.1:<port>`: the board at /pro has this origin.
    let own = format!("http://127.0.0.1:{}", server.port);
    let same = [("authorization", auth.as_str()), ("origin", own.as_str())];
    assert!(open(&server, &path, &same).await.is_ok());
    let status_of = |e: WsError| match e {
        WsError::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    };
    let other_port = format!("http://127.0.0.1:{}", server.port.wrapping_add(1));
    for origin in [
        other_port.as_str(),
        "http://localhost:5173",
        "https://evil.example",
    ] {
        let headers = [("authorization", auth.as_str()), ("origin", origin)];
        assert_eq!(
            status_of(open(&server, &path, &headers).await.unwrap_err()),
            403,
            "{origin} outside dev mode"
        );
    }
}

#[tokio::test]
async fn shutdown_closes_live_feeds_with_going_away() {
    let server = Server::start();
    let (owner, id, _, _) = setup(&server, 10).await;
    let auth = format!("Bearer {owner}");
    let mut feed = open(
        &server,
        &format!("/v1/establishments/{id}/live"),
        &[("authorization", &auth)],
    )
    .await
    .unwrap();
    assert_eq!(next_value(&mut feed).await["type"], "hello");
    let exit = tokio::task::spawn_blocking(move || server.terminate(Duration::from_secs(20)));
    let close = loop {
        match next(&mut feed).await {
            Message::Close(frame) => break frame,
            _ => continue,
        }
    };
    assert_eq!(close.unwrap().code, CloseCode::Away);
    let status = exit.await.unwrap().expect("exited");
    assert!(status.success());
}

/// The server pings every subscriber; one that answers (any client that reads: the
/// library sends the pong) stays, and one silent for two intervals is closed with 4009,
/// so that a vanished phone's feed does not hold its establishment in memory for good.
#[tokio::test]
async fn silent_subscribers_are_closed_and_answering_ones_stay() {
    // Intervals long enough that a test starved of CPU for a moment still answers in
    // time (silence is two intervals, 800 ms).
    let server = Server::start_with(&[("NAVARO_WEBSOCKET__PING_INTERVAL_MS", "400")]).unwrap();
    let (owner, id, _, _) = setup(&server, 10).await;
    let auth = format!("Bearer {owner}");
    let path = format!("/v1/establishments/{id}/live");
    let mut answering = open(&server, &path, &[("authorization", &auth)])
        .await
        .unwrap();
    let mut silent = open(&server, &path, &[("authorization", &auth)])
        .await
        .unwrap();
    assert_eq!(next_value(&mut answering).await["type"], "hello");
    assert_eq!(next_value(&mut silent).await["type"], "hello");
    // Reading for two and a half seconds: six intervals, each ping answered.
    let mut pings = 0;
    let reading = tokio::time::sleep(Duration::from_millis(2500));
    tokio::pin!(reading);
    loop {
        tokio::select! {
            frame = next(&mut answering) => match frame {
                Message::Ping(_) => pings += 1,
                Message::Close(frame) => panic!("an answering subscriber was closed: {frame:?}"),
                _ => {}
            },
            _ = &mut reading => break,
        }
    }
    assert!(pings >= 3, "pinged {pings} times in 2.5 s at 400 ms");
    // The silent one read nothing meanwhile, so answered nothing: it was closed (its
    // pings queued before the close; a still-open feed would send pings for ever).
    let close = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match next(&mut silent).await {
                Message::Close(frame) => break frame,
                _ => continue,
            }
        }
    })
    .await
    .expect("the silent subscriber was closed");
    assert_eq!(close.unwrap().code, CloseCode::from(4009));
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"navaro_live_disconnects_total{reason="no_pong"} 1"#),
        "{metrics}"
    );
}

/// A subscriber that stops reading is cut off as a slow consumer instead of being
/// buffered for: with its receive buffer tiny and a burst of large events, the server's
/// send stalls past `websocket.send_timeout_ms` and the session ends (counted in
/// `navaro_live_disconnects_total{reason="slow_consumer"}`).
#[tokio::test]
async fn a_subscriber_that_stops_reading_is_disconnected() {
    let server = Server::start_with(&[("NAVARO_WEBSOCKET__SEND_TIMEOUT_MS", "300")]).unwrap();
    let (owner, id, staff, _) = setup(&server, 10).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(format!("127.0.0.1:{}", server.port).parse().unwrap())
        .await
        .unwrap();
    let mut request = format!("ws://127.0.0.1:{}/v1/establishments/{id}/live", server.port)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {owner}").parse().unwrap());
    let (mut feed, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    let hello = tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(hello.to_text().unwrap().contains("hello"));

    // Big events (every day split into many ranges), many of them, nobody reading.
    let ranges: Vec<[String; 2]> = (0..12)
        .map(|i| {
            [
                format!("{:02}:{:02}", i / 4 + 6, (i % 4) * 15),
                format!("{:02}:{:02}", i / 4 + 6, (i % 4) * 15 + 10),
            ]
        })
        .collect();
    let day = json!(ranges);
    let hours = json!({"hours": {"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day}});
    let path = format!("/v1/establishments/{id}/staff/{staff}/hours");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let cut_off = loop {
        for _ in 0..50 {
            let (status, _, body) = server
                .call(Method::PUT, &path, Some(&owner), Some(hours.clone()))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let metrics = server.metrics().await;
        if metrics.contains("navaro_live_disconnects_total{reason=\"slow_consumer\"} 1") {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
    };
    assert!(cut_off, "the stalled subscriber was not disconnected");
    drop(feed);
}

/// A client that disconnects, and reconnects with `since` after the server restarted
/// (kill -9), receives every event it missed exactly once, in order: the ring buffer is
/// gone with the process, so the backlog comes from the journal.
#[tokio::test]
async fn resume_with_since_across_a_server_restart() {
    let server = Server::start();
    let (owner, id, _, service) = setup(&server, 10).await;
    let free = slots(&server, &id, &service, ahead(2)).await;
    let path = format!("/v1/establishments/{id}/live?since=0&access_token={owner}");
    let mut feed = open(&server, &path, &[]).await.unwrap();
    let hello = next_value(&mut feed).await;
    assert_eq!(hello["type"], "hello");
    book(&server, &id, &owner, &service, &free[0]["start"]).await;
    let mut last_seen = 0;
    while last_seen < hello["seq"].as_u64().unwrap() + 1 {
        let frame = next_value(&mut feed).await;
        last_seen = frame["seq"].as_u64().unwrap();
    }
    drop(feed);
    // Missed while disconnected: one booking before the restart, one after.
    book(&server, &id, &owner, &service, &free[4]["start"]).await;
    let server = server.crash_and_restart().unwrap();
    book(&server, &id, &owner, &service, &free[8]["start"]).await;
    let path = format!("/v1/establishments/{id}/live?since={last_seen}&access_token={owner}");
    let mut feed = open(&server, &path, &[]).await.unwrap();
    let hello = next_value(&mut feed).await;
    assert_eq!(
        (hello["type"].as_str(), hello["seq"].as_u64()),
        (Some("hello"), Some(last_seen + 2))
    );
    let first = next_value(&mut feed).await;
    let second = next_value(&mut feed).await;
    assert_eq!(first["seq"].as_u64(), Some(last_seen + 1), "{first}");
    assert_eq!(second["seq"].as_u64(), Some(last_seen + 2), "{second}");
    assert_eq!(first["data"]["booking"]["start"], free[4]["start"]);
    assert_eq!(second["data"]["booking"]["start"], free[8]["start"]);
    // Nothing more: no duplicate of what was already delivered.
    let extra = tokio::time::timeout(Duration::from_millis(300), feed.next()).await;
    assert!(extra.is_err(), "unexpected extra frame: {extra:?}");
}
