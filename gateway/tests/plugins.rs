//! The plugin boundary and the analytics plugin on the real binary: install and
//! uninstall are events the Pro apps see live; only owners install; analytics figures
//! match the bookings and tickets the test made, per day, week and staff member, JSON
//! and CSV, including a daylight-saving day in the establishment's zone (America/New_York,
//! 2026-11-01, a 25-hour day) written into the journal as past events.

mod common;

use std::time::Duration;

use common::plugins::{append, establishment, every_day, install, next_seq, poll};
use common::{Server, code};
use futures::StreamExt;
use jiff::{Timestamp, ToSpan};
use navaro_protocol::{
    Booking, BookingId, BookingStatus, EstablishmentId, Event, ServiceId, StaffId, UserId,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const NY: &str = "America/New_York";
const WAIT: Duration = Duration::from_secs(20);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn live(server: &Server, id: &str, token: &str) -> Socket {
    let url = format!(
        "ws://127.0.0.1:{}/v1/establishments/{id}/live?access_token={token}",
        server.port
    );
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("live feed opens");
    socket
}

/// The next frame of type `kind`, skipping others.
async fn frame_of(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("frame ok");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] == kind {
                return value;
            }
        }
    }
}

async fn plugins_install_and_uninstall_live(server: Server) {
    let (owner, id, _, _) =
        establishment(&server, NY, every_day("09:00", "18:00"), json!({})).await;
    let (customer, _) = server.register("customer").await;
    let mut feed = live(&server, &id, &owner).await;
    let path = |name: &str| format!("/v1/establishments/{id}/plugins/{name}");

    // Nothing installed yet; the list names every plugin.
    let (status, _, list) = server
        .call(
            Method::GET,
            &format!("/v1/establishments/{id}/plugins"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: Vec<&str> = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["analytics", "marketing", "ads"]);
    assert!(
        list["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["installed"] == false)
    );

    // Customers may neither install nor list; unknown plugins and settings are refused.
    let body = Some(json!({"settings": {}}));
    let (status, _, _) = server
        .call(
            Method::PUT,
            &path("analytics"),
            Some(&customer),
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = server
        .call(
            Method::GET,
            &format!("/v1/establishments/{id}/plugins"),
            Some(&customer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, err) = server
        .call(Method::PUT, &path("crm"), Some(&owner), body.clone())
        .await;
    assert_eq!((status, code(&err)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, _, err) = server
        .call(
            Method::PUT,
            &path("analytics"),
            Some(&owner),
            Some(json!({"settings": {"colour": "red"}})),
        )
        .await;
    assert_eq!(
        (status, code(&err), err["error"]["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            Some("settings")
        )
    );
    // Before installation the plugin's routes answer 404.
    let report =
        format!("/v1/establishments/{id}/plugins/analytics/report?from=2026-11-01&to=2026-11-01");
    let (status, _, _) = server.call(Method::GET, &report, Some(&owner), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Install: the answer, the live feed, the list.
    let installed = install(&server, &owner, &id, "analytics").await;
    assert_eq!(
        installed,
        json!({"name": "analytics", "installed": true, "settings": {}})
    );
    let frame = frame_of(&mut feed, "plugin.installed").await;
    assert_eq!(frame["data"]["name"], "analytics");
    // A second identical PUT changes nothing (no second event).
    install(&server, &owner, &id, "analytics").await;
    let (status, _, _) = server.call(Method::GET, &report, Some(&owner), None).await;
    assert_eq!(status, StatusCode::OK);

    // Uninstall: the answer, the live feed; the routes are gone again.
    let (status, _, gone) = server
        .call(Method::DELETE, &path("analytics"), Some(&owner), None)
        .await;
    assert_eq!(
        (status, gone["installed"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{gone}"
    );
    let frame = frame_of(&mut feed, "plugin.uninstalled").await;
    assert_eq!(frame["data"]["name"], "analytics");
    let (status, _, _) = server
        .call(Method::DELETE, &path("analytics"), Some(&owner), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = server.call(Method::GET, &report, Some(&owner), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn plugins_install_and_uninstall_live_on_sqlite() {
    plugins_install_and_uninstall_live(Server::start_sqlite()).await;
}

#[tokio::test]
async fn plugins_install_and_uninstall_live_on_postgres() {
    plugins_install_and_uninstall_live(Server::start_postgres()).await;
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A booking of 30 minutes from `start`, as the server would journal it.
fn past_booking(
    id: Uuid,
    staff: Uuid,
    service: Uuid,
    customer: Uuid,
    start: Timestamp,
    seq: u64,
) -> Booking {
    Booking {
        id: BookingId(Uuid::now_v7()),
        establishment_id: EstablishmentId(id),
        service_id: ServiceId(service),
        staff_id: StaffId(staff),
        customer_id: UserId(customer),
        start,
        end: start + 30.minutes(),
        buffer_after_minutes: 0,
        status: BookingStatus::Confirmed,
        seq,
        created_at: start - 48.hours(),
        promotion: None,
        payment_policy: None,
    }
}

/// Two bookings on 2026-11-01 in New York, the day clocks go back (25 hours): one at
/// 01:30 EST (the second 01:30 that day, 06:30Z), completed; one at 23:30 EST (04:30Z on
/// the 2nd in UTC, still the 1st locally), a no-show.
async fn append_dst_day(url: &str, id: Uuid, staff: Uuid, service: Uuid, customer: Uuid) {
    let seq = next_seq(url, id).await;
    let early = past_booking(
        id,
        staff,
        service,
        customer,
        at("2026-11-01T06:30:00Z"),
        seq,
    );
    let late = past_booking(
        id,
        staff,
        service,
        customer,
        at("2026-11-02T04:30:00Z"),
        seq + 1,
    );
    let done = |b: &Booking, status, seq| Booking {
        status,
        seq,
        ..b.clone()
    };
    let events = vec![
        (
            early.created_at,
            Event::BookingConfirmed {
                booking: early.clone(),
                from_hold: None,
            },
        ),
        (
            late.created_at,
            Event::BookingConfirmed {
                booking: late.clone(),
                from_hold: None,
            },
        ),
        (
            early.end,
            Event::BookingCompleted {
                booking: done(&early, BookingStatus::Completed, seq + 2),
            },
        ),
        (
            late.end,
            Event::BookingNoShow {
                booking: done(&late, BookingStatus::NoShow, seq + 3),
            },
        ),
    ];
    append(url, id, events).await;
}

fn secs(value: &Value) -> i64 {
    value
        .as_str()
        .unwrap()
        .parse::<Timestamp>()
        .unwrap()
        .as_second()
}

async fn analytics_figures_match(server: Server) {
    // Staff works around the clock every day, so the DST day has 25 hours of work.
    let (owner, id, staff, service) = establishment(
        &server,
        NY,
        every_day("00:00", "24:00"),
        json!({"min_notice_minutes": 0}),
    )
    .await;
    let (customer, customer_id) = server.register("customer").await;
    let stopped = server.kill().unwrap();
    let uuid = |s: &str| s.parse::<Uuid>().unwrap();
    append_dst_day(
        &stopped.database_url(),
        uuid(&id),
        uuid(&staff),
        uuid(&service),
        uuid(&customer_id),
    )
    .await;
    let server = stopped.start(&[]).unwrap();
    install(&server, &owner, &id, "analytics").await;
    let base = format!("/v1/establishments/{id}/plugins/analytics/report");

    // The DST day: two bookings, one completed (50.00), one no-show, 25 working hours.
    let day = poll(
        &server,
        &format!("{base}?from=2026-11-01&to=2026-11-01"),
        &owner,
        WAIT,
        |b| b["rows"][0]["bookings"] == 2 && b["rows"][0]["no_shows"] == 1,
    )
    .await;
    let row = &day["rows"][0];
    assert_eq!(day["timezone"], NY);
    assert_eq!(day["currency"], "USD");
    assert_eq!(row["start"], "2026-11-01");
    assert_eq!(
        (row["completed"].as_i64(), row["revenue_cents"].as_i64()),
        (Some(1), Some(5000))
    );
    assert_eq!(row["no_show_rate"].as_f64(), Some(0.5));
    assert_eq!(row["working_minutes"].as_i64(), Some(25 * 60), "{row}");
    assert_eq!(row["busy_minutes"].as_i64(), Some(60));
    assert_eq!(row["utilisation"].as_f64(), Some(0.04));
    let hours: Vec<(i64, i64)> = day["busiest_hours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["hour"].as_i64().unwrap(), h["arrivals"].as_i64().unwrap()))
        .collect();
    assert_eq!(hours, [(1, 1), (23, 1)]);
    // In UTC the late booking falls on the 2nd: the report's days are New York's.
    let next = poll(
        &server,
        &format!("{base}?from=2026-11-02&to=2026-11-02"),
        &owner,
        WAIT,
        |_| true,
    )
    .await;
    assert_eq!(next["rows"][0]["bookings"], 0);
    assert_eq!(next["rows"][0]["working_minutes"].as_i64(), Some(24 * 60));
    // The week of Monday 2026-10-26 holds them; the next week nothing.
    let weeks = poll(
        &server,
        &format!("{base}?from=2026-10-26&to=2026-11-08&period=week"),
        &owner,
        WAIT,
        |_| true,
    )
    .await;
    let starts: Vec<&str> = weeks["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["start"].as_str().unwrap())
        .collect();
    assert_eq!(starts, ["2026-10-26", "2026-11-02"]);
    assert_eq!(weeks["rows"][0]["bookings"], 2);
    assert_eq!(
        weeks["rows"][0]["working_minutes"].as_i64(),
        Some(7 * 24 * 60 + 60)
    );
    assert_eq!(weeks["rows"][1]["bookings"], 0);
    let month = poll(
        &server,
        &format!("{base}?from=2026-11-01&to=2026-11-30&period=month"),
        &owner,
        WAIT,
        |_| true,
    )
    .await;
    assert_eq!(month["rows"].as_array().unwrap().len(), 1);
    assert_eq!(month["rows"][0]["bookings"], 2);

    // Live bookings three days ahead: three made, one cancelled.
    let zone = jiff::tz::TimeZone::get(NY).unwrap();
    let when = jiff::Timestamp::now()
        .to_zoned_datetime(zone.clone())
        .date()
        + 3.days();
    let mut made = Vec::new();
    for hour in [10, 11, 12] {
        let start = when
            .at(hour, 0, 0, 0)
            .to_zoned_datetime(zone.clone())
            .unwrap()
            .timestamp()
            .to_string();
        let (status, _, b) = server
            .call(
                Method::POST,
                &format!("/v1/establishments/{id}/bookings"),
                Some(&customer),
                Some(json!({"service_id": service, "start": start})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{b}");
        made.push(b["id"].as_str().unwrap().to_owned());
    }
    let (status, _, _) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings/{}/cancel", made[0]),
            Some(&customer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Two walk-ins: joined, called, started, finished; their waits from the tickets.
    let queue = format!("/v1/establishments/{id}/queue");
    let mut waits = Vec::new();
    let mut today = String::new();
    for _ in 0..2 {
        let (status, _, t) = server
            .call(
                Method::POST,
                &queue,
                Some(&customer),
                Some(json!({"service_id": service})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        let (status, _, _) = server
            .call(
                Method::POST,
                &format!("{queue}/call-next"),
                Some(&owner),
                Some(json!({"staff_id": staff})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let tid = t["id"].as_str().unwrap();
        let (status, _, started) = server
            .call(
                Method::POST,
                &format!("{queue}/{tid}/start"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{started}");
        let (status, _, _) = server
            .call(
                Method::POST,
                &format!("{queue}/{tid}/finish"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        waits.push(secs(&started["started_at"]) - secs(&started["joined_at"]));
        today = started["joined_at"].as_str().unwrap()[..10].to_owned();
    }
    let ahead = poll(
        &server,
        &format!("{base}?from={when}&to={when}"),
        &owner,
        WAIT,
        |b| b["rows"][0]["cancellations"] == 1,
    )
    .await;
    let row = &ahead["rows"][0];
    assert_eq!(
        (row["bookings"].as_i64(), row["busy_minutes"].as_i64()),
        (Some(3), Some(60)),
        "{row}"
    );
    let queue_day = poll(
        &server,
        &format!("{base}?from={today}&to={today}"),
        &owner,
        WAIT,
        |b| b["rows"][0]["waits"] == 2,
    )
    .await;
    let row = &queue_day["rows"][0];
    assert_eq!(row["walk_ins"], 2);
    let average = (waits[0] + waits[1]) as f64 / 2.0;
    assert_eq!(
        row["avg_wait_seconds"].as_f64(),
        Some(average),
        "{row} {waits:?}"
    );
    assert_eq!(
        row["p90_wait_seconds"].as_i64(),
        Some(waits[0].max(waits[1]))
    );

    // Per staff member: the same (one staff member); an unknown one is 404.
    let mine = poll(
        &server,
        &format!("{base}?from=2026-11-01&to=2026-11-01&staff_id={staff}"),
        &owner,
        WAIT,
        |_| true,
    )
    .await;
    assert_eq!(mine["rows"], day["rows"]);
    let (status, _, _) = server
        .call(
            Method::GET,
            &format!(
                "{base}?from=2026-11-01&to=2026-11-01&staff_id={}",
                Uuid::now_v7()
            ),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // CSV: a header and one line per day.
    let response = server
        .client
        .get(server.url(&format!("{base}?from=2026-10-31&to=2026-11-01&format=csv")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = response.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("start,bookings,cancellations,no_shows"));
    assert!(
        lines[2].starts_with("2026-11-01,2,0,1,0.5,1,5000,60,1500,0.04,"),
        "{text}"
    );

    // Bad parameters name themselves; customers are refused.
    for (query, field) in [
        ("from=2026-13-01&to=2026-11-01", "from"),
        ("from=2026-11-02&to=2026-11-01", "to"),
        ("from=2026-01-01&to=2027-06-01", "to"),
        ("from=2026-11-01&to=2026-11-01&period=year", "period"),
        ("from=2026-11-01&to=2026-11-01&format=xml", "format"),
        ("from=2026-11-01&to=2026-11-01&staff_id=x", "staff_id"),
    ] {
        let (status, _, err) = server
            .call(Method::GET, &format!("{base}?{query}"), Some(&owner), None)
            .await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{query}: {err}"
        );
    }
    let (status, _, _) = server
        .call(
            Method::GET,
            &format!("{base}?from=2026-11-01&to=2026-11-01"),
            Some(&customer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn analytics_figures_match_the_bookings_and_tickets_on_sqlite() {
    analytics_figures_match(Server::start_sqlite()).await;
}

#[tokio::test]
async fn analytics_figures_match_the_bookings_and_tickets_on_postgres() {
    analytics_figures_match(Server::start_postgres()).await;
}
