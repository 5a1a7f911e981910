//! A shop ready for bookings: the establishment of [`super::setup`], a customer and the
//! free slots of one day, which many end-to-end tests start from.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Server, ahead, setup, slots};

/// An establishment (one staff member, a 30-minute service on a 15-minute grid), a
/// registered customer, and the service's free slots on one day.
pub struct Shop {
    /// The owner's token.
    pub owner: String,
    pub id: String,
    pub staff: String,
    pub service: String,
    /// The customer's token.
    pub customer: String,
    /// The free slots `days` ahead (see [`Shop::open`]), earliest first.
    pub free: Vec<Value>,
}

impl Shop {
    /// [`setup`] with `max_future` future bookings allowed per customer, a customer
    /// registered, and the free slots `days` ahead.
    pub async fn open(server: &Server, max_future: u32, days: i64) -> Shop {
        let (owner, id, staff, service) = setup(server, max_future).await;
        let (customer, _) = server.register("customer").await;
        let free = slots(server, &id, &service, ahead(days)).await;
        Shop {
            owner,
            id,
            staff,
            service,
            customer,
            free,
        }
    }

    /// The `n`th free slot's start.
    pub fn start(&self, n: usize) -> &str {
        self.free[n]["start"].as_str().unwrap()
    }

    /// Book the `n`th free slot as the customer; asserts 201 and returns the booking.
    pub async fn book(&self, server: &Server, n: usize) -> Value {
        book(
            server,
            &self.customer,
            &self.id,
            &self.service,
            self.start(n),
        )
        .await
    }
}

/// Book `service` at `start` in establishment `id` as `token`; asserts 201 and returns
/// the booking.
pub async fn book(server: &Server, token: &str, id: &str, service: &str, start: &str) -> Value {
    let (status, _, booking) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(token),
            Some(json!({"service_id": service, "start": start})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    booking
}
