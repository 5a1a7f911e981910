//! The marketing plugin on the real binary: promotion codes applied at booking with the
//! discount on the booking; one customer using a once-per-customer code twice at the
//! same time gets it once; usage limits, validity and uninstalling are honoured; the
//! win-back audience lists the customers not served for N days.

mod common;

use std::time::Duration;

use common::plugins::{append, establishment, every_day, install, next_seq, poll};
use common::{Server, code};
use jiff::{Timestamp, ToSpan};
use navaro_protocol::{
    Booking, BookingId, BookingStatus, EstablishmentId, Event, ServiceId, StaffId, UserId,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

const TZ: &str = "America/Sao_Paulo";

struct Shop {
    server: Server,
    owner: String,
    id: String,
    service: String,
}

impl Shop {
    fn start(&self, days: i64, hour: i8) -> String {
        let zone = jiff::tz::TimeZone::get(TZ).unwrap();
        let day = jiff::Timestamp::now()
            .to_zoned_datetime(zone.clone())
            .date()
            + days.days();
        day.at(hour, 0, 0, 0)
            .to_zoned_datetime(zone)
            .unwrap()
            .timestamp()
            .to_string()
    }

    async fn book(&self, token: &str, start: &str, code: Option<&str>) -> (StatusCode, Value) {
        let mut body = json!({"service_id": self.service, "start": start});
        if let Some(code) = code {
            body["promotion_code"] = json!(code);
        }
        let (status, _, b) = self
            .server
            .call(
                Method::POST,
                &format!("/v1/establishments/{}/bookings", self.id),
                Some(token),
                Some(body),
            )
            .await;
        (status, b)
    }

    async fn promote(&self, body: Value) -> (StatusCode, Value) {
        let (status, _, b) = self
            .server
            .call(
                Method::POST,
                &format!(
                    "/v1/establishments/{}/plugins/marketing/promotions",
                    self.id
                ),
                Some(&self.owner),
                Some(body),
            )
            .await;
        (status, b)
    }
}

async fn promotion_codes(server: Server) {
    let (owner, id, _, service) =
        establishment(&server, TZ, every_day("08:00", "20:00"), json!({})).await;
    let shop = Shop {
        server,
        owner,
        id,
        service,
    };
    let (alice, alice_id) = shop.server.register("alice").await;
    let (bruno, _) = shop.server.register("bruno").await;

    // Not installed: no promotions, and a code at booking is refused.
    let (status, _) = shop
        .promote(json!({"code": "WELCOME10", "percent_off": 10}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, b) = shop
        .book(&alice, &shop.start(2, 9), Some("WELCOME10"))
        .await;
    assert_eq!(
        (status, code(&b)),
        (StatusCode::CONFLICT, "promotion_unavailable"),
        "{b}"
    );
    install(&shop.server, &shop.owner, &shop.id, "marketing").await;

    // Bad promotions name their field.
    for (body, field) in [
        (json!({"code": "x", "percent_off": 10}), "code"),
        (json!({"code": "HALF", "percent_off": 101}), "percent_off"),
        (
            json!({"code": "BOTH", "percent_off": 10, "amount_off_cents": 100}),
            "percent_off",
        ),
        (json!({"code": "NONE"}), "percent_off"),
        (
            json!({"code": "ZERO", "amount_off_cents": 0}),
            "amount_off_cents",
        ),
        (
            json!({"code": "LIM0", "percent_off": 5, "usage_limit": 0}),
            "usage_limit",
        ),
        (
            json!({"code": "BACK", "percent_off": 5, "valid_from": "2027-01-02T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z"}),
            "valid_until",
        ),
    ] {
        let (status, err) = shop.promote(body.clone()).await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{body}: {err}"
        );
    }
    let (status, created) = shop
        .promote(json!({"code": "welcome10", "percent_off": 10}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (
            created["code"].as_str(),
            created["once_per_customer"].as_bool()
        ),
        (Some("WELCOME10"), Some(true))
    );
    let (status, again) = shop
        .promote(json!({"code": "WELCOME10", "amount_off_cents": 100}))
        .await;
    assert_eq!((status, code(&again)), (StatusCode::CONFLICT, "conflict"));

    // Applied: the discount is on the booking, and on reading it back.
    let (status, booked) = shop
        .book(&alice, &shop.start(2, 9), Some("Welcome10"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booked}");
    let expected =
        json!({"code": "WELCOME10", "price_cents": 5000, "discount_cents": 500, "currency": "USD"});
    assert_eq!(booked["promotion"], expected);
    let path = format!(
        "/v1/establishments/{}/bookings/{}",
        shop.id,
        booked["id"].as_str().unwrap()
    );
    let (_, _, read) = shop
        .server
        .call(Method::GET, &path, Some(&alice), None)
        .await;
    assert_eq!(read["promotion"], expected);
    // Without a code, no promotion field.
    let (status, plain) = shop.book(&alice, &shop.start(2, 10), None).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(plain.get("promotion").is_none(), "{plain}");

    // One customer, the same code, twice at once: applied once, the other refused and
    // not booked.
    let (nine, ten) = (shop.start(3, 9), shop.start(3, 10));
    let (first, second) = tokio::join!(
        shop.book(&bruno, &nine, Some("WELCOME10")),
        shop.book(&bruno, &ten, Some("WELCOME10")),
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::CONFLICT],
        "{first:?} {second:?}"
    );
    let refused = if first.0 == StatusCode::CONFLICT {
        &first.1
    } else {
        &second.1
    };
    assert_eq!(code(refused), "promotion_unavailable");
    assert_eq!(refused["error"]["field"], "promotion_code");
    let (_, _, list) = shop
        .server
        .call(
            Method::GET,
            &format!(
                "/v1/establishments/{}/bookings?date={}",
                shop.id,
                &shop.start(3, 9)[..10]
            ),
            Some(&shop.owner),
            None,
        )
        .await;
    let with_code = list["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["promotion"]["code"] == "WELCOME10")
        .count();
    assert_eq!(with_code, 1, "{list}");

    // Usage limit across customers; validity; unknown codes.
    let (status, _) = shop.promote(json!({"code": "ONLY1", "amount_off_cents": 1000, "usage_limit": 1, "once_per_customer": false})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, b) = shop.book(&alice, &shop.start(4, 9), Some("ONLY1")).await;
    assert_eq!(
        (status, b["promotion"]["discount_cents"].as_i64()),
        (StatusCode::CREATED, Some(1000))
    );
    let (status, b) = shop.book(&bruno, &shop.start(4, 10), Some("ONLY1")).await;
    assert_eq!(
        (status, code(&b)),
        (StatusCode::CONFLICT, "promotion_unavailable")
    );
    let (status, _) = shop
        .promote(json!({"code": "OLD", "percent_off": 50, "valid_until": "2020-01-01T00:00:00Z"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, b) = shop.book(&alice, &shop.start(4, 11), Some("OLD")).await;
    assert_eq!(
        (status, code(&b)),
        (StatusCode::CONFLICT, "promotion_unavailable")
    );
    let (status, b) = shop.book(&alice, &shop.start(4, 11), Some("NOSUCH")).await;
    assert_eq!(
        (status, code(&b)),
        (StatusCode::CONFLICT, "promotion_unavailable")
    );

    // The list shows each code's uses, as the establishment counted them.
    let (_, _, promos) = shop
        .server
        .call(
            Method::GET,
            &format!(
                "/v1/establishments/{}/plugins/marketing/promotions",
                shop.id
            ),
            Some(&shop.owner),
            None,
        )
        .await;
    let uses = |c: &str| {
        promos["promotions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["code"] == c)
            .unwrap()["uses"]
            .as_i64()
    };
    assert_eq!(
        (uses("WELCOME10"), uses("ONLY1"), uses("OLD")),
        (Some(2), Some(1), Some(0)),
        "{promos}"
    );
    // Ended: no longer usable.
    let (status, _, ended) = shop
        .server
        .call(
            Method::DELETE,
            &format!(
                "/v1/establishments/{}/plugins/marketing/promotions/welcome10",
                shop.id
            ),
            Some(&shop.owner),
            None,
        )
        .await;
    assert_eq!(
        (status, ended["active"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    let (carla, _) = shop.server.register("carla").await;
    let (status, _) = shop
        .book(&carla, &shop.start(5, 9), Some("WELCOME10"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Win-back: customers last served long ago, from the journal (a completed booking
    // 60 days back, written while the server is stopped).
    let last_start = shop.start(6, 9);
    let server = shop.server;
    let stopped = server.kill().unwrap();
    let url = stopped.database_url();
    let est: Uuid = shop.id.parse().unwrap();
    let seq = next_seq(&url, est).await;
    // 60 days ago, on a whole minute (as every booking starts).
    let ago = (Timestamp::now() - (60 * 24).hours()).as_second();
    let start = Timestamp::from_second(ago - ago.rem_euclid(3600)).unwrap();
    let staff = first_staff(&url, est).await;
    let booking = Booking {
        id: BookingId(Uuid::now_v7()),
        establishment_id: EstablishmentId(est),
        service_id: ServiceId(shop.service.parse().unwrap()),
        staff_id: staff,
        customer_id: UserId(alice_id.parse().unwrap()),
        start,
        end: start + 30.minutes(),
        buffer_after_minutes: 0,
        status: BookingStatus::Confirmed,
        seq,
        created_at: start - 1.hour(),
        promotion: None,
        payment_policy: None,
    };
    let completed = Booking {
        status: BookingStatus::Completed,
        seq: seq + 1,
        ..booking.clone()
    };
    append(
        &url,
        est,
        vec![
            (
                booking.created_at,
                Event::BookingConfirmed {
                    booking: booking.clone(),
                    from_hold: None,
                },
            ),
            (booking.end, Event::BookingCompleted { booking: completed }),
        ],
    )
    .await;
    let server = stopped.start(&[]).unwrap();
    let audience = |days: u32| {
        format!(
            "/v1/establishments/{}/plugins/marketing/audiences/win-back?days={days}",
            shop.id
        )
    };
    let thirty = poll(
        &server,
        &audience(30),
        &shop.owner,
        Duration::from_secs(20),
        |b| !b["customers"].as_array().unwrap().is_empty(),
    )
    .await;
    assert_eq!(thirty["customers"].as_array().unwrap().len(), 1, "{thirty}");
    assert_eq!(thirty["customers"][0]["customer_id"], alice_id.as_str());
    assert_eq!(thirty["customers"][0]["visits"], 1);
    let (_, _, ninety) = server
        .call(Method::GET, &audience(90), Some(&shop.owner), None)
        .await;
    assert_eq!(ninety["customers"], json!([]));
    let (status, _, err) = server
        .call(Method::GET, &audience(0), Some(&shop.owner), None)
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("days"))
    );

    // Uninstalled: codes are refused at booking again.
    let (status, _, _) = server
        .call(
            Method::DELETE,
            &format!("/v1/establishments/{}/plugins/marketing", shop.id),
            Some(&shop.owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, b) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{}/bookings", shop.id),
            Some(&carla),
            Some(
                json!({"service_id": shop.service, "start": last_start, "promotion_code": "ONLY1"}),
            ),
        )
        .await;
    assert_eq!(
        (status, code(&b)),
        (StatusCode::CONFLICT, "promotion_unavailable")
    );
}

/// The establishment's first staff member, from its journal.
async fn first_staff(url: &str, est: Uuid) -> StaffId {
    let stores = navaro_persistence::open(url, navaro_persistence::StoreOptions::default())
        .await
        .unwrap();
    let events = stores
        .journal
        .read_after(EstablishmentId(est), 0, 100)
        .await
        .unwrap();
    events
        .iter()
        .find_map(|r| match &r.event {
            Event::StaffAdded { staff } => Some(staff.id),
            _ => None,
        })
        .expect("a staff member")
}

#[tokio::test]
async fn promotion_codes_and_win_back_on_sqlite() {
    promotion_codes(Server::start_sqlite()).await;
}

#[tokio::test]
async fn promotion_codes_and_win_back_on_postgres() {
    promotion_codes(Server::start_postgres()).await;
}
