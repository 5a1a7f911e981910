//! The OpenAPI 3.1 document, generated from the handlers' annotations and the DTOs'
//! schemas, served at `/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto::*;
use crate::error::{ErrorBody, ErrorDetail};
use crate::routes::{accounts, bookings, establishments, ops, queue};

#[derive(OpenApi)]
#[openapi(
    info(title = "Navaro API", version = "1", description = "Booking and live-queue platform. See shared/API.md."),
    paths(
        accounts::register, accounts::login, accounts::me, accounts::my_bookings,
        establishments::create_establishment, establishments::get_establishment,
        establishments::update_establishment, establishments::add_member,
        establishments::add_staff, establishments::set_staff_hours,
        establishments::add_time_off, establishments::add_service,
        establishments::availability,
        bookings::create_booking, bookings::list_bookings, bookings::get_booking,
        bookings::cancel_booking, bookings::reschedule_booking,
        queue::join_queue, queue::list_queue, queue::get_ticket, queue::leave_queue,
        queue::call_next, queue::start_ticket, queue::finish_ticket, queue::no_show_ticket,
        crate::live::live,
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
    ),
    components(schemas(ErrorBody, ErrorDetail, AlternativeDto)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
