//! A booking that left its establishment's history window, on the real binary: still
//! read by id, listed on its date and in its customer's bookings (from the bookings read
//! model), and refused `booking_archived` when someone tries to change it; bookings
//! inside the window are served and changed as before. On SQLite and on Postgres.
//!
//! A booking cannot be made in the past and the binary runs on the system clock, so the
//! old booking is written the way the server itself writes one: the server is stopped,
//! the test appends a `booking.confirmed` event dated 30 days ago to the establishment's
//! journal through `navaro_persistence` (which projects it into the read model in the
//! same transaction), and the server starts again. Its actor replays the event on
//! activation and evicts the booking from the window before the first read.

mod common;

use common::{Server, ahead, code, setup, slots};
use jiff::{Timestamp, ToSpan};
use navaro_engine::store::AppendBatch;
use navaro_persistence::StoreOptions;
use navaro_protocol::{
    Booking, BookingId, BookingStatus, EstablishmentId, Event, EventRecord, ServiceId, StaffId,
    UserId,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

fn uuid(value: &Value) -> Uuid {
    value.as_str().unwrap().parse().unwrap()
}

/// Append a confirmed booking of `customer` 30 days ago, 10:00-10:30 local, to the
/// establishment's journal; returns it.
async fn append_old_booking(
    database_url: &str,
    establishment: Uuid,
    staff: Uuid,
    service: Uuid,
    customer: Uuid,
) -> Booking {
    let stores = navaro_persistence::open(database_url, StoreOptions::default())
        .await
        .expect("the server's database opens");
    let id = EstablishmentId(establishment);
    let events = stores.journal.read_after(id, 0, 100_000).await.unwrap();
    let seq = events.last().expect("the establishment's events").seq + 1;
    let start = ahead(-30)
        .at(10, 0, 0, 0)
        .to_zoned_datetime(jiff::tz::TimeZone::get("America/Sao_Paulo").unwrap())
        .unwrap()
        .timestamp();
    let booking = Booking {
        id: BookingId(Uuid::now_v7()),
        establishment_id: id,
        service_id: ServiceId(service),
        staff_id: StaffId(staff),
        customer_id: UserId(customer),
        start,
        end: start + 30.minutes(),
        buffer_after_minutes: 0,
        status: BookingStatus::Confirmed,
        seq,
        created_at: start - 24.hours(),
        promotion: None,
        payment_policy: None,
    };
    let record = EventRecord {
        seq,
        at: booking.created_at,
        idempotency: None,
        event: Event::BookingConfirmed {
            booking: booking.clone(),
            from_hold: None,
        },
    };
    stores
        .journal
        .append(AppendBatch {
            establishment_id: id,
            records: vec![record],
        })
        .await
        .expect("the old booking is journaled");
    booking
}

fn ts_of(value: &Value) -> Timestamp {
    value.as_str().unwrap().parse().unwrap()
}

async fn a_booking_that_left_the_window_is_still_served(server: Server) {
    let (owner, id, staff, service) = setup(&server, 10).await;
    let (customer, customer_id) = server.register("customer").await;
    let (other, _) = server.register("other").await;
    // One booking inside the window (days ahead), made through the API.
    let slot = slots(&server, &id, &service, ahead(3)).await[0]["start"].clone();
    let (status, _, recent) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(&customer),
            Some(json!({"service_id": service, "start": slot})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{recent}");

    let stopped = server.kill().unwrap();
    let old = append_old_booking(
        &stopped.database_url(),
        id.parse().unwrap(),
        staff.parse().unwrap(),
        service.parse().unwrap(),
        customer_id.parse().unwrap(),
    )
    .await;
    let server = stopped.start(&[]).unwrap();
    let old_path = format!("/v1/establishments/{id}/bookings/{}", old.id);
    // The first read activates the establishment, which evicts the old booking.
    let (status, _, _) = server
        .call(Method::GET, &format!("/v1/establishments/{id}"), None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        server
            .metrics()
            .await
            .contains("navaro_engine_history_evicted_total{kind=\"booking\"} 1"),
        "the booking left the actor's window"
    );

    // By id, for its customer and the owner; not for someone else.
    for token in [&customer, &owner] {
        let (status, _, body) = server.call(Method::GET, &old_path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(uuid(&body["id"]), old.id.0);
        assert_eq!(ts_of(&body["start"]), old.start);
        assert_eq!(body["status"], "confirmed");
    }
    let (status, _, body) = server
        .call(Method::GET, &old_path, Some(&other), None)
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));

    // On its date's agenda, and in the customer's bookings.
    let (status, _, day) = server
        .call(
            Method::GET,
            &format!("/v1/establishments/{id}/bookings?date={}", ahead(-30)),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{day}");
    let listed: Vec<Uuid> = day["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| uuid(&b["id"]))
        .collect();
    assert_eq!(listed, vec![old.id.0]);
    let (status, _, mine) = server
        .call(Method::GET, "/v1/me/bookings", Some(&customer), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let mine: Vec<Uuid> = mine["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| uuid(&b["id"]))
        .collect();
    assert!(
        mine.contains(&old.id.0) && mine.contains(&uuid(&recent["id"])),
        "{mine:?}"
    );

    // It can no longer be changed, by anyone; someone else still learns nothing of it.
    for (token, expected) in [
        (&owner, (StatusCode::CONFLICT, "booking_archived")),
        (&customer, (StatusCode::CONFLICT, "booking_archived")),
        (&other, (StatusCode::NOT_FOUND, "not_found")),
    ] {
        let (status, _, body) = server
            .call(
                Method::POST,
                &format!("{old_path}/cancel"),
                Some(token),
                None,
            )
            .await;
        assert_eq!((status, code(&body)), expected, "{body}");
    }
    let (status, _, body) = server
        .call(
            Method::POST,
            &format!("{old_path}/reschedule"),
            Some(&owner),
            Some(json!({"start": slot})),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "booking_archived"),
        "{body}"
    );

    // Inside the window, as before: listed from the actor's view, and cancelled.
    let recent_id = recent["id"].as_str().unwrap();
    let (status, _, day) = server
        .call(
            Method::GET,
            &format!("/v1/establishments/{id}/bookings?date={}", ahead(3)),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(day["bookings"][0]["id"], recent["id"]);
    let (status, _, cancelled) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings/{recent_id}/cancel"),
            Some(&customer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    // An id nobody booked is not found, window or not.
    let (status, _, body) = server
        .call(
            Method::GET,
            &format!("/v1/establishments/{id}/bookings/{}", Uuid::now_v7()),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn a_booking_that_left_the_window_is_still_served_on_sqlite() {
    let server = Server::start_sqlite();
    a_booking_that_left_the_window_is_still_served(server).await;
}

#[tokio::test]
async fn a_booking_that_left_the_window_is_still_served_on_postgres() {
    a_booking_that_left_the_window_is_still_served(Server::start_postgres()).await;
}
