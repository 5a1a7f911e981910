//! The walk-in queue against the real binary: a Pro client on WebSocket sees every step
//! in order as it happens; a customer sees their own place fall and then their call; and
//! customers act on their own ticket only.

mod common;

use std::time::Duration;

use common::{Server, setup};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(server: &Server, id: &str, token: &str) -> Socket {
    let url = format!(
        "ws://127.0.0.1:{}/v1/establishments/{id}/live?access_token={token}",
        server.port
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket opens");
    let hello = next_value(&mut socket).await;
    assert_eq!(hello["type"], "hello");
    socket
}

async fn next_value(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("frame ok");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

async fn post(server: &Server, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, body) = server
        .call(Method::POST, path, Some(token), Some(body))
        .await;
    (status, body)
}

#[tokio::test]
async fn pro_and_customer_clients_follow_the_queue_live() {
    let server = Server::start();
    let (owner, id, staff, service) = setup(&server, 10).await;
    let queue = format!("/v1/establishments/{id}/queue");
    let (alice, alice_id) = server.register("alice").await;
    let mut pro = open(&server, &id, &owner).await;
    let mut customer = open(&server, &id, &alice).await;

    let mut tickets = Vec::new();
    for name in ["bob", "carol"] {
        let (token, _) = server.register(name).await;
        let (status, ticket) = post(&server, &queue, &token, json!({"service_id": service})).await;
        assert_eq!(status, StatusCode::CREATED, "{ticket}");
        tickets.push(ticket["id"].as_str().unwrap().to_owned());
    }
    let (status, mine) = post(&server, &queue, &alice, json!({"service_id": service})).await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    assert_eq!(
        (mine["position"].as_u64(), mine["status"].as_str()),
        (Some(3), Some("waiting"))
    );
    let my_ticket = mine["id"].as_str().unwrap().to_owned();
    // A walk-in added by the owner, who then leaves.
    let (status, walk_in) = post(
        &server,
        &queue,
        &owner,
        json!({"service_id": service, "name": "Dave"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{walk_in}");
    let (status, _, left) = server
        .call(
            Method::DELETE,
            &format!("{queue}/{}", walk_in["id"].as_str().unwrap()),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(
        (status, left["status"].as_str()),
        (StatusCode::OK, Some("left"))
    );

    // The customer sees the queue with everyone's place, but only their own ticket in full.
    let (_, _, listed) = server.call(Method::GET, &queue, Some(&alice), None).await;
    let listed = listed["tickets"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 3);
    assert!(
        listed
            .iter()
            .filter(|t| t["id"] != my_ticket.as_str())
            .all(|t| t.get("customer_id").is_none())
    );
    assert_eq!(
        listed
            .iter()
            .find(|t| t["id"] == my_ticket.as_str())
            .unwrap()["customer_id"],
        alice_id.as_str()
    );

    let call_next = format!("{queue}/call-next");
    let call = |token: &str| {
        let (server, path, token, body) = (
            &server,
            call_next.clone(),
            token.to_owned(),
            json!({"staff_id": staff}),
        );
        async move { post(server, &path, &token, body).await }
    };
    let (status, called) = call(&owner).await;
    assert_eq!(
        (status, called["id"].as_str()),
        (StatusCode::OK, Some(tickets[0].as_str()))
    );
    let (status, _) = post(
        &server,
        &format!("{queue}/{}/start", tickets[0]),
        &owner,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post(
        &server,
        &format!("{queue}/{}/finish", tickets[0]),
        &owner,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, called) = call(&owner).await;
    assert_eq!(called["id"].as_str(), Some(tickets[1].as_str()));
    let (status, _) = post(
        &server,
        &format!("{queue}/{}/no-show", tickets[1]),
        &owner,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, called) = call(&owner).await;
    assert_eq!(called["id"].as_str(), Some(my_ticket.as_str()));
    let (status, nobody) = call(&owner).await;
    assert_eq!(status, StatusCode::CONFLICT, "{nobody}"); // Carlos is serving alice now

    // The Pro client saw every step, in order, with increasing seqs.
    let expected = [
        "queue.joined",
        "queue.joined",
        "queue.joined",
        "queue.joined",
        "queue.left",
        "queue.called",
        "queue.started",
        "queue.finished",
        "queue.called",
        "queue.no_show",
        "queue.called",
    ];
    let mut last_seq = 0;
    for kind in expected {
        let frame = next_value(&mut pro).await;
        assert_eq!(frame["type"], kind, "{frame}");
        let seq = frame["seq"].as_u64().unwrap();
        assert!(seq > last_seq);
        last_seq = seq;
    }

    // The customer saw only their own place, falling, and then their call.
    let mut places = Vec::new();
    loop {
        let frame = next_value(&mut customer).await;
        let data = &frame["data"];
        if let Some(ticket) = data["ticket"].as_object() {
            assert_eq!(
                ticket["id"],
                my_ticket.as_str(),
                "only their own ticket in full"
            );
        }
        let queue = data["queue"].as_array().unwrap();
        assert!(queue.len() <= 1, "only their own place: {frame}");
        if frame["type"] == "queue.called" && data["ticket"].is_object() {
            assert_eq!(data["ticket"]["status"], "called");
            assert!(
                queue.is_empty(),
                "a called ticket has no place in the queue"
            );
            break;
        }
        places.push(queue[0]["position"].as_u64().unwrap());
    }
    assert_eq!(places.first(), Some(&3));
    assert_eq!(places.last(), Some(&1));
    assert!(
        places.windows(2).all(|w| w[1] <= w[0]),
        "places only fall: {places:?}"
    );
}

#[tokio::test]
async fn customers_act_on_their_own_ticket_only() {
    let server = Server::start();
    let (_owner, id, staff, service) = setup(&server, 10).await;
    let queue = format!("/v1/establishments/{id}/queue");
    let (alice, _) = server.register("alice").await;
    let (bob, _) = server.register("bob").await;
    let (_, ticket) = post(&server, &queue, &alice, json!({"service_id": service})).await;
    let ticket = ticket["id"].as_str().unwrap();
    let (status, again) = post(&server, &queue, &alice, json!({"service_id": service})).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    for (method, path) in [
        (Method::GET, format!("{queue}/{ticket}")),
        (Method::DELETE, format!("{queue}/{ticket}")),
    ] {
        let (status, _, _) = server.call(method, &path, Some(&bob), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = post(
        &server,
        &format!("{queue}/call-next"),
        &bob,
        json!({"staff_id": staff}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(
        &server,
        &format!("{queue}/{ticket}/start"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = server.call(Method::GET, &queue, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, left) = server
        .call(
            Method::DELETE,
            &format!("{queue}/{ticket}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (status, left["status"].as_str()),
        (StatusCode::OK, Some("left"))
    );
}
