//! The OpenAPI 3.1 document, generated from the handlers' annotations and the DTOs'
//! schemas, served at `/openapi.json` and printed by `navaro openapi`; the live feed's
//! frames are added by [`crate::frames`].

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto::*;
use crate::error::{ErrorBody, ErrorDetail};
use crate::frames::LiveFrames;
use crate::openapi_links::Links;
use crate::routes::plugins::{self, ads, analytics, marketing};
use crate::routes::{
    accounts, admin, bookings, discovery, establishments, fees, notifications, ops, payments, queue,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Navaro API", version = "1", description = "Booking and live-queue platform. See shared/API.md."),
    paths(
        accounts::register, accounts::login, accounts::refresh, accounts::logout,
        accounts::logout_all, accounts::change_password, accounts::me, accounts::my_bookings,
        discovery::search_establishments,
        accounts::export_me, accounts::delete_me,
        establishments::create_establishment, establishments::get_establishment,
        establishments::update_establishment, establishments::add_member,
        establishments::add_staff, establishments::set_staff_hours,
        establishments::add_time_off, establishments::add_service,
        establishments::availability,
        bookings::create_booking, bookings::list_bookings, bookings::get_booking,
        bookings::cancel_booking, bookings::reschedule_booking,
        queue::join_queue, queue::list_queue, queue::get_ticket, queue::leave_queue,
        queue::call_next, queue::start_ticket, queue::finish_ticket, queue::no_show_ticket,
        notifications::register_device, notifications::list_devices, notifications::remove_device,
        notifications::get_preferences, notifications::set_preferences,
        notifications::get_notification_settings, notifications::set_notification_settings,
        notifications::create_webhook, notifications::list_webhooks, notifications::delete_webhook,
        notifications::rotate_webhook_secret, notifications::enable_webhook,
        notifications::list_deliveries, notifications::replay_delivery,
        crate::live::live,
        admin::list_establishments, admin::suspend_establishment,
        admin::reinstate_establishment, admin::list_users, admin::disable_user,
        admin::stats, admin::audit,
        payments::get_payment_policy, payments::set_payment_policy, payments::create_checkout,
        payments::get_payment, payments::refresh_payment, payments::stripe_webhook,
        plugins::list_plugins, plugins::install_plugin, plugins::uninstall_plugin,
        analytics::analytics_report,
        marketing::create_promotion, marketing::list_promotions, marketing::end_promotion,
        marketing::win_back,
        ads::create_campaign, ads::list_campaigns, ads::stop_campaign, ads::click,
        payments::get_service_payment_policy, payments::set_service_payment_policy,
        payments::clear_service_payment_policy,
        fees::create_card_setup, fees::complete_card_setup, fees::get_card, fees::mark_no_show,
        fees::get_fee, fees::charge_fee, fees::waive_fee,
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        AlternativeDto,
        AvailabilityForm,
        discovery::ListingCategory,
        fees::FeeKindName
    )),
    modifiers(&BearerAuth, &CommonErrors, &LiveFrames, &Links),
)]
pub struct ApiDoc;

/// The document as JSON, pretty-printed (it is read by people and diffed in review).
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

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

/// The error answers any operation can give, documented on every one: malformed input
/// (400), validation (422), rate limits (429) and overload or timeouts (503); where the
/// operation takes a token, 401; and where its path names an item, 404. Declared once here rather than on each handler so
/// that the document cannot drift from what the middleware does.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let takes_id = path.contains('{');
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let responses = &mut operation.responses.responses;
                let mut add = |code: &str, description: &str| {
                    responses
                        .entry(code.to_owned())
                        .or_insert_with(|| error(description));
                };
                add("400", "invalid_request: the request is malformed");
                add("422", "invalid_request: a field is out of range");
                add("429", "rate_limited, with Retry-After");
                add("503", "overloaded (with Retry-After) or unavailable");
                if operation.request_body.is_some() {
                    add(
                        "408",
                        "request_timeout: the body did not arrive in time (connection closed)",
                    );
                    add(
                        "413",
                        "payload_too_large: the body is over 64 KiB (refused at once when declared)",
                    );
                }
                if secured {
                    add("401", "unauthorized: missing, expired or invalid token");
                }
                if takes_id {
                    add(
                        "404",
                        "not_found: no such item, or not one this caller may see",
                    );
                }
            }
        }
    }
}
