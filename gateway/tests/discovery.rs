//! Discovery and the platform admin against the real binary: search by text (accents),
//! category, distance (checked against a haversine computed here), "free on a day"
//! (checked against the availability route), keyset pages while establishments are
//! being created, bad parameters; suspension (no new bookings, hidden, the owner told
//! on the live feed), disabled accounts, the admin routes refused to everyone else, and
//! the audit log (every action recorded, nothing changes it). Each scenario runs on the
//! default SQLite store and on Postgres.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Server, ahead, code, setup, slots};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN_EMAIL: &str = "admin@navaro.test";
const TZ: &str = "America/Sao_Paulo";

fn start(postgres: bool) -> Server {
    let env = [("NAVARO_AUTH__ADMIN_EMAILS", "[\"admin@navaro.test\"]")];
    if postgres {
        Server::start_postgres_with(&env)
    } else {
        Server::start_with(&env).unwrap()
    }
}

async fn admin_token(server: &Server) -> String {
    let (status, _, body) = server
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(
                json!({"email": ADMIN_EMAIL, "password": "correct horse battery", "name": "Admin"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// GET with query parameters (percent-encoded by reqwest).
async fn get(
    server: &Server,
    path: &str,
    params: &[(&str, &str)],
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = server.client.get(server.url(path)).query(params);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

async fn search(server: &Server, params: &[(&str, &str)]) -> (StatusCode, Value) {
    get(server, "/v1/establishments", params, None).await
}

fn ids(page: &Value) -> Vec<String> {
    page["establishments"]
        .as_array()
        .unwrap_or_else(|| panic!("no establishments in {page}"))
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Create an establishment with these extra fields; returns its id.
async fn create(server: &Server, owner: &str, body: Value) -> String {
    let mut full = json!({"name": "X", "timezone": TZ});
    for (k, v) in body.as_object().unwrap() {
        full[k] = v.clone();
    }
    let (status, _, est) = server
        .call(Method::POST, "/v1/establishments", Some(owner), Some(full))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{est}");
    est["id"].as_str().unwrap().to_owned()
}

/// A staff member with these hours and one 30-minute service; returns the service id.
async fn staff_and_service(
    server: &Server,
    owner: &str,
    id: &str,
    hours: Value,
    service: &str,
) -> String {
    let (status, _, staff) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/staff"),
            Some(owner),
            Some(json!({"name": "Carlos", "hours": hours})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{staff}");
    let (status, _, svc) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/services"),
            Some(owner),
            Some(
                json!({"name": service, "duration_minutes": 30, "price_cents": 5000,
                        "staff_ids": [staff["id"]]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{svc}");
    svc["id"].as_str().unwrap().to_owned()
}

fn every_day(range: Value) -> Value {
    json!({"mon": [range], "tue": [range], "wed": [range], "thu": [range], "fri": [range],
           "sat": [range], "sun": [range]})
}

/// Haversine on the same sphere the server uses (IUGG mean radius), computed here.
fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const R: f64 = 6_371_008.8;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let (dp, dl) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * R * a.sqrt().asin()
}

async fn text_category_and_bad_parameters(postgres: bool) {
    let server = start(postgres);
    let (owner, _) = server.register("owner").await;
    // A unique word per run keeps this test's establishments apart from any other.
    let tag = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let sj = create(
        &server,
        &owner,
        json!({"name": format!("Barbearia São João {tag}"),
        "category": "barbershop", "address": "Rua Augusta, 10", "description": "Cortes",
        "photo_url": "https://example.com/sj.jpg"}),
    )
    .await;
    let salon = create(
        &server,
        &owner,
        json!({"name": format!("Salão Beleza Pura {tag}"),
        "category": "salon"}),
    )
    .await;
    staff_and_service(&server, &owner, &salon, json!({}), "Escova Progressiva").await;
    for q in [
        "sao joao",
        "SÃO JOÃO",
        "são  joão!",
        "Joao Barbearia",
        "barb",
    ] {
        let (status, page) = search(&server, &[("q", &format!("{q} {tag}"))]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(ids(&page), [sj.as_str()], "q={q}: {page}");
    }
    let hit = &search(&server, &[("q", &format!("sao joao {tag}"))])
        .await
        .1["establishments"][0];
    assert_eq!(hit["category"], "barbershop");
    assert_eq!(hit["address"], "Rua Augusta, 10");
    assert_eq!(hit["photo_url"], "https://example.com/sj.jpg");
    assert_eq!(hit["rating_average"], Value::Null);
    assert_eq!(hit["rating_count"], 0);
    // Service names are searched too, without accents.
    let (_, page) = search(&server, &[("q", &format!("escova progressiva {tag}"))]).await;
    assert_eq!(ids(&page), [salon.as_str()]);
    assert_eq!(
        page["establishments"][0]["services"],
        json!(["Escova Progressiva"])
    );
    // Category, alone and with text.
    let (_, page) = search(&server, &[("q", &tag), ("category", "salon")]).await;
    assert_eq!(ids(&page), [salon.as_str()]);
    let (_, page) = search(&server, &[("q", &tag)]).await;
    assert_eq!(ids(&page).len(), 2);
    // A rename is seen by search (the listing follows the journal).
    let (status, _, _) = server
        .call(
            Method::PATCH,
            &format!("/v1/establishments/{salon}"),
            Some(&owner),
            Some(json!({"name": format!("Studio Ágata {tag}")})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = search(&server, &[("q", &format!("agata {tag}"))]).await;
    assert_eq!(ids(&page), [salon.as_str()]);
    let (_, page) = search(&server, &[("q", &format!("beleza {tag}"))]).await;
    assert!(ids(&page).is_empty(), "{page}");

    let long = "a".repeat(10 * 1024);
    let bad: [(&[(&str, &str)], &str); 14] = [
        (
            &[("lat", "-23.5"), ("lon", "-46.6"), ("radius_km", "0")],
            "radius_km",
        ),
        (
            &[("lat", "-23.5"), ("lon", "-46.6"), ("radius_km", "20000")],
            "radius_km",
        ),
        (
            &[("lat", "-23.5"), ("lon", "-46.6"), ("radius_km", "-1")],
            "radius_km",
        ),
        (&[("lat", "91"), ("lon", "0")], "lat"),
        (&[("lat", "0"), ("lon", "180.5")], "lon"),
        (&[("lat", "nan"), ("lon", "0")], "lat"),
        (&[("lat", "0")], "lon"),
        (&[("radius_km", "5")], "radius_km"),
        (&[("q", "")], "q"),
        (&[("q", "  !!  ")], "q"),
        (&[("q", &long)], "q"),
        (&[("category", "casino")], "category"),
        (&[("limit", "0")], "limit"),
        (&[("cursor", "garbage")], "cursor"),
    ];
    for (params, field) in bad {
        let (status, body) = search(&server, params).await;
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{params:?}: {status} {body}"
        );
        assert_eq!(body["error"]["field"], field, "{params:?}: {body}");
        assert_eq!(code(&body), "invalid_request");
    }
    // A listing field out of range is refused at creation, naming it.
    for (body, field) in [
        (json!({"latitude": 91, "longitude": 0}), "latitude"),
        (json!({"latitude": 10}), "longitude"),
        (json!({"category": "casino"}), "category"),
        (json!({"photo_url": "ftp://x"}), "photo_url"),
    ] {
        let mut full = json!({"name": "Bad", "timezone": TZ});
        for (k, v) in body.as_object().unwrap() {
            full[k] = v.clone();
        }
        let (status, _, answer) = server
            .call(Method::POST, "/v1/establishments", Some(&owner), Some(full))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
}

#[tokio::test]
async fn search_by_text_and_category_with_clear_errors_sqlite() {
    text_category_and_bad_parameters(false).await;
}

#[tokio::test]
async fn search_by_text_and_category_with_clear_errors_postgres() {
    text_category_and_bad_parameters(true).await;
}

/// Points scattered around a centre in the southern Atlantic (nothing else is there).
fn scatter(n: usize) -> Vec<(f64, f64)> {
    let (lat0, lon0) = (-40.0, -20.0);
    (0..n)
        .map(|i| {
            let f = i as f64;
            // Deterministic spread up to about 0.2 degrees (~22 km) in each direction.
            let dlat = ((f * 0.7548776662).fract() - 0.5) * 0.4;
            let dlon = ((f * 0.5698402910).fract() - 0.5) * 0.4;
            (lat0 + dlat, lon0 + dlon)
        })
        .collect()
}

async fn distance_order_and_pages(postgres: bool) {
    let server = start(postgres);
    let (owner, _) = server.register("owner").await;
    let tag = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let points = scatter(40);
    let mut created = Vec::new();
    for (i, (lat, lon)) in points.iter().enumerate() {
        let id = create(
            &server,
            &owner,
            json!({"name": format!("Place {i} {tag}"),
            "latitude": lat, "longitude": lon, "category": "clinic"}),
        )
        .await;
        created.push((id, *lat, *lon));
    }
    let (clat, clon, radius_km) = (-40.0, -20.0, 12.0);
    let mut expected: Vec<(f64, String)> = created
        .iter()
        .map(|(id, lat, lon)| (haversine_m(clat, clon, *lat, *lon), id.clone()))
        .filter(|(d, _)| *d <= radius_km * 1000.0)
        .collect();
    expected.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    assert!(
        expected.len() > 5 && expected.len() < created.len(),
        "{}",
        expected.len()
    );
    // Page through with a small limit: the concatenation is the expected order.
    let mut seen: Vec<(f64, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![
            ("q", tag.clone()),
            ("lat", clat.to_string()),
            ("lon", clon.to_string()),
            ("radius_km", radius_km.to_string()),
            ("limit", "4".to_owned()),
        ];
        if let Some(c) = &cursor {
            params.push(("cursor", c.clone()));
        }
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, page) = search(&server, &params).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for e in page["establishments"].as_array().unwrap() {
            seen.push((
                e["distance_m"].as_f64().unwrap(),
                e["id"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen.iter().map(|(_, id)| id).collect::<Vec<_>>(),
        expected.iter().map(|(_, id)| id).collect::<Vec<_>>()
    );
    for ((got, _), (want, _)) in seen.iter().zip(&expected) {
        assert!(
            (got - want).abs() < 0.01,
            "distance {got} vs haversine {want}"
        );
    }
}

#[tokio::test]
async fn search_near_a_point_is_nearest_first_by_haversine_sqlite() {
    distance_order_and_pages(false).await;
}

#[tokio::test]
async fn search_near_a_point_is_nearest_first_by_haversine_postgres() {
    distance_order_and_pages(true).await;
}

async fn pages_while_creating(postgres: bool) {
    let server = std::sync::Arc::new(start(postgres));
    let (owner, _) = server.register("owner").await;
    let tag = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut before = HashSet::new();
    for i in 0..30 {
        // Names spread over the alphabet, so new ones land before and after the cursor.
        let name = format!("{} {tag} {i}", ["Alfa", "Kilo", "Zulu"][i % 3]);
        before.insert(create(&server, &owner, json!({"name": name})).await);
    }
    let creator = {
        let server = server.clone();
        let owner = owner.clone();
        let tag = tag.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                let name = format!("{} {tag} new {i}", ["Bravo", "Lima", "Yankee"][i % 3]);
                create(&server, &owner, json!({"name": name})).await;
            }
        })
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("q", tag.as_str()), ("limit", "4")];
        if let Some(c) = &cursor {
            params.push(("cursor", c.as_str()));
        }
        let (status, page) = search(&server, &params).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    creator.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a page repeated an establishment");
    for id in &before {
        assert!(
            unique.contains(id),
            "{id} existed before the first page and was skipped"
        );
    }
}

#[tokio::test]
async fn pages_have_no_duplicates_or_gaps_while_establishments_are_created_sqlite() {
    pages_while_creating(false).await;
}

#[tokio::test]
async fn pages_have_no_duplicates_or_gaps_while_establishments_are_created_postgres() {
    pages_while_creating(true).await;
}

/// Whether the availability route offers a slot of `service` on `date`.
async fn has_slot(server: &Server, id: &str, service: &str, date: &str) -> bool {
    let (status, body) = get(
        server,
        &format!("/v1/establishments/{id}/availability"),
        &[("service_id", service), ("from", date), ("days", "1")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["slots"].as_array().is_some_and(|s| !s.is_empty())
}

#[tokio::test]
async fn free_on_a_day_agrees_with_the_availability_route() {
    let server = start(false);
    let (owner, _) = server.register("owner").await;
    let tag = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let always = create(&server, &owner, json!({"name": format!("Always {tag}")})).await;
    let always_svc = staff_and_service(
        &server,
        &owner,
        &always,
        every_day(json!(["00:00", "24:00"])),
        "Corte",
    )
    .await;
    let never = create(&server, &owner, json!({"name": format!("Never {tag}")})).await;
    let never_svc = staff_and_service(&server, &owner, &never, json!({}), "Corte").await;
    let days = create(&server, &owner, json!({"name": format!("Days {tag}")})).await;
    let days_svc = staff_and_service(
        &server,
        &owner,
        &days,
        every_day(json!(["09:00", "18:00"])),
        "Barba",
    )
    .await;
    let today = ahead(0).to_string();
    let later = ahead(3).to_string();
    for (free_on, date) in [("today", today.as_str()), (later.as_str(), later.as_str())] {
        let (status, page) = search(&server, &[("q", &tag), ("free_on", free_on)]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let found: HashSet<String> = ids(&page).into_iter().collect();
        for (id, svc) in [
            (&always, &always_svc),
            (&never, &never_svc),
            (&days, &days_svc),
        ] {
            assert_eq!(
                found.contains(id),
                has_slot(&server, id, svc, date).await,
                "free_on={free_on}: {id} {page}"
            );
        }
        assert!(!found.contains(&never));
    }
    // In three days the 09:00-18:00 shop has slots; with `service` only its service counts.
    let (_, page) = search(
        &server,
        &[("q", &tag), ("free_on", &later), ("service", "barba")],
    )
    .await;
    assert_eq!(ids(&page), [days.as_str()]);
    // Open now: the 24-hour shop is; the one with no hours is not.
    let (_, page) = search(&server, &[("q", &tag), ("open_now", "true")]).await;
    let open: HashSet<String> = ids(&page).into_iter().collect();
    assert!(open.contains(&always) && !open.contains(&never), "{page}");
    let (status, body) = search(&server, &[("free_on", "tomorrow")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "free_on");
    let (status, body) = search(&server, &[("service", "corte")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "service");
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON frame of a live feed.
async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("frame ok");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = message {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn suspension(postgres: bool) {
    let server = start(postgres);
    let admin = admin_token(&server).await;
    let (owner, id, _, service) = setup(&server, 10).await;
    let (customer, _) = server.register("c").await;
    let free = slots(&server, &id, &service, ahead(2)).await;
    let (status, _, booking) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(&customer),
            Some(json!({"service_id": service, "start": free[0]["start"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    let booking_id = booking["id"].as_str().unwrap().to_owned();
    let (_, est) = get(&server, &format!("/v1/establishments/{id}"), &[], None).await;
    let name = est["name"].as_str().unwrap().to_owned();
    let seq = est["seq"].as_u64().unwrap();
    // The owner follows the live feed.
    let url = format!(
        "ws://127.0.0.1:{}/v1/establishments/{id}/live?since={seq}&access_token={owner}",
        server.port
    );
    let (mut feed, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(next_frame(&mut feed).await["type"], "hello");

    let reason = "fees unpaid since October";
    let (status, _, done) = server
        .call(
            Method::POST,
            &format!("/v1/admin/establishments/{id}/suspend"),
            Some(&admin),
            Some(json!({"reason": reason})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let frame = next_frame(&mut feed).await;
    assert_eq!(frame["type"], "establishment.suspended", "{frame}");
    assert_eq!(frame["data"]["reason"], reason);
    // No new bookings, holds or walk-ins; the existing booking stays.
    let (status, _, refused) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(&customer),
            Some(json!({"service_id": service, "start": free[4]["start"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(code(&refused), "establishment_suspended");
    let (status, _, refused) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/queue"),
            Some(&customer),
            Some(json!({"service_id": service})),
        )
        .await;
    assert_eq!(
        code(&refused),
        "establishment_suspended",
        "{status} {refused}"
    );
    let (status, _, kept) = server
        .call(
            Method::GET,
            &format!("/v1/establishments/{id}/bookings/{booking_id}"),
            Some(&customer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kept["status"], "confirmed");
    let (_, est) = get(&server, &format!("/v1/establishments/{id}"), &[], None).await;
    assert_eq!(est["suspended_reason"], reason);
    // Hidden from search, listed for admins with the reason.
    let (_, page) = search(&server, &[("q", &name)]).await;
    assert!(!ids(&page).contains(&id), "{page}");
    let (status, page) = get(
        &server,
        "/v1/admin/establishments",
        &[("q", &name)],
        Some(&admin),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed = page["establishments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id.as_str())
        .cloned();
    assert_eq!(listed.expect("admins see it")["suspended_reason"], reason);
    // Twice is a conflict, and records nothing more.
    let (status, _, again) = server
        .call(
            Method::POST,
            &format!("/v1/admin/establishments/{id}/suspend"),
            Some(&admin),
            Some(json!({"reason": reason})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    // Reinstated: bookable and findable again.
    let (status, _, _) = server
        .call(
            Method::POST,
            &format!("/v1/admin/establishments/{id}/reinstate"),
            Some(&admin),
            Some(json!({"reason": "paid"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        next_frame(&mut feed).await["type"],
        "establishment.reinstated"
    );
    let (status, _, booked) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(&customer),
            Some(json!({"service_id": service, "start": free[4]["start"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booked}");
    let (_, page) = search(&server, &[("q", &name)]).await;
    assert!(ids(&page).contains(&id), "{page}");
    // Bad reasons and unknown establishments.
    let (status, _, body) = server
        .call(
            Method::POST,
            &format!("/v1/admin/establishments/{id}/suspend"),
            Some(&admin),
            Some(json!({"reason": "  "})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "reason");
    let nobody = uuid::Uuid::now_v7();
    let (status, _, _) = server
        .call(
            Method::POST,
            &format!("/v1/admin/establishments/{nobody}/suspend"),
            Some(&admin),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Both actions are in the audit log, newest first, with who and why.
    let (status, log) = get(&server, "/v1/admin/audit", &[], Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let entries = log["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["establishment.reinstate", "establishment.suspend"],
        "{log}"
    );
    assert_eq!(entries[1]["reason"], reason);
    assert_eq!(entries[1]["target_id"], id.as_str());
    assert_eq!(entries[0]["admin_id"], entries[1]["admin_id"]);
}

#[tokio::test]
async fn suspension_blocks_new_bookings_hides_and_tells_the_owner_sqlite() {
    suspension(false).await;
}

#[tokio::test]
async fn suspension_blocks_new_bookings_hides_and_tells_the_owner_postgres() {
    suspension(true).await;
}

async fn admin_only(postgres: bool) {
    let server = start(postgres);
    let admin = admin_token(&server).await;
    let (owner, id, staff_id, _) = setup(&server, 10).await;
    let _ = staff_id;
    let (staff, staff_user) = server.register("staff").await;
    let (status, _, _) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/members"),
            Some(&owner),
            Some(json!({"user_id": staff_user, "role": "staff"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (customer, customer_id) = server.register("customer").await;
    let (victim, victim_id) = server.register("victim").await;
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1/admin/establishments".into(), None),
        (Method::GET, "/v1/admin/users".into(), None),
        (Method::GET, "/v1/admin/stats".into(), None),
        (Method::GET, "/v1/admin/audit".into(), None),
        (
            Method::POST,
            format!("/v1/admin/establishments/{id}/suspend"),
            Some(json!({"reason": "r"})),
        ),
        (
            Method::POST,
            format!("/v1/admin/establishments/{id}/reinstate"),
            Some(json!({"reason": "r"})),
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{victim_id}/disable"),
            Some(json!({"reason": "spam"})),
        ),
    ];
    for (method, path, body) in &routes {
        for (who, token) in [
            ("owner", Some(&owner)),
            ("staff", Some(&staff)),
            ("customer", Some(&customer)),
            ("anonymous", None),
        ] {
            let (status, _, answer) = server
                .call(
                    method.clone(),
                    path,
                    token.map(String::as_str),
                    body.clone(),
                )
                .await;
            let want = if token.is_some() {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(status, want, "{who} {method} {path}: {answer}");
        }
        let (status, _, answer) = server
            .call(method.clone(), path, Some(&admin), body.clone())
            .await;
        assert_eq!(status, StatusCode::OK, "admin {method} {path}: {answer}");
    }
    // The refusals changed nothing and recorded nothing: three actions, by the admin.
    let (_, log) = get(&server, "/v1/admin/audit", &[], Some(&admin)).await;
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "user.disable",
            "establishment.reinstate",
            "establishment.suspend"
        ]
    );
    // The disabled account's token stops working, and it cannot sign in again.
    let (status, _, body) = server
        .call(Method::GET, "/v1/me", Some(&victim), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "account_disabled");
    let (_, users) = get(&server, "/v1/admin/users", &[("q", "victim")], Some(&admin)).await;
    let listed = &users["users"][0];
    assert_eq!(listed["id"], victim_id.as_str());
    assert_eq!(listed["disabled"], true);
    assert_eq!(listed["disabled_reason"], "spam");
    let email = listed["email"].as_str().unwrap();
    let (status, _, body) = server
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": email, "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Others are untouched.
    let (status, _, _) = server
        .call(Method::GET, "/v1/me", Some(&customer), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let _ = customer_id;
    // Counters.
    let (_, stats) = get(&server, "/v1/admin/stats", &[], Some(&admin)).await;
    assert_eq!(stats["active_establishments"], 1, "{stats}");
    assert_eq!(stats["disabled_users"], 1);
    assert!(stats["users"].as_i64().unwrap() >= 5);
    for key in [
        "bookings_today",
        "queue_tickets_waiting",
        "server_errors",
        "establishments_in_memory",
    ] {
        assert!(stats[key].is_number(), "{key}: {stats}");
    }
    // The audit log has no route that changes it.
    for method in [Method::PUT, Method::PATCH, Method::DELETE, Method::POST] {
        let (status, _, _) = server
            .call(
                method.clone(),
                "/v1/admin/audit",
                Some(&admin),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    let first = log["entries"][2]["id"].as_i64().unwrap();
    for method in [Method::PUT, Method::PATCH, Method::DELETE] {
        let (status, _, _) = server
            .call(
                method.clone(),
                &format!("/v1/admin/audit/{first}"),
                Some(&admin),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
    }
    // And the database refuses to change it, whoever asks (Postgres: triggers).
    if let Some(url) = server.database_url() {
        for sql in [
            "UPDATE admin_audit SET reason = 'nothing happened'".to_owned(),
            "DELETE FROM admin_audit".to_owned(),
            "TRUNCATE admin_audit".to_owned(),
        ] {
            let output = std::process::Command::new("psql")
                .args([url, "-tA", "-v", "ON_ERROR_STOP=1", "-c", &sql])
                .output()
                .unwrap();
            assert!(!output.status.success(), "{sql} was allowed");
            assert!(String::from_utf8_lossy(&output.stderr).contains("append-only"));
        }
        let count = common::psql_rows(
            url,
            "SELECT count(*) FROM admin_audit WHERE reason <> 'nothing happened'",
        );
        assert_eq!(count.trim(), "3");
    }
    let (_, after) = get(&server, "/v1/admin/audit", &[], Some(&admin)).await;
    assert_eq!(after["entries"], log["entries"]);
}

#[tokio::test]
async fn admin_routes_are_refused_to_everyone_else_sqlite() {
    admin_only(false).await;
}

#[tokio::test]
async fn admin_routes_are_refused_to_everyone_else_postgres() {
    admin_only(true).await;
}
