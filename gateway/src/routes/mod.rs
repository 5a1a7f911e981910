//! The HTTP routes, one module per area of API.md.

pub mod accounts;
pub mod admin;
pub mod bookings;
pub mod discovery;
pub mod establishments;
pub mod fees;
pub mod notifications;
pub mod ops;
pub mod payments;
pub mod plugins;
pub mod queue;

use axum::Router;
use axum::routing::{get, post, put};

use crate::state::AppState;

/// Every `/v1` route.
pub fn api() -> Router<AppState> {
    use accounts::*;
    use bookings::*;
    use establishments::*;
    Router::new()
        .route("/v1/auth/register", post(register))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/logout-all", post(logout_all))
        .route("/v1/me", get(me).delete(delete_me))
        .route("/v1/me/export", get(export_me))
        .route("/v1/me/password", post(change_password))
        .route("/v1/me/bookings", get(my_bookings))
        .route(
            "/v1/me/devices",
            post(notifications::register_device).get(notifications::list_devices),
        )
        .route(
            "/v1/me/devices/{token}",
            axum::routing::delete(notifications::remove_device),
        )
        .route(
            "/v1/me/notification-preferences",
            get(notifications::get_preferences).put(notifications::set_preferences),
        )
        .route(
            "/v1/establishments/{id}/notification-settings",
            get(notifications::get_notification_settings)
                .put(notifications::set_notification_settings),
        )
        .route(
            "/v1/establishments/{id}/plugins",
            get(plugins::list_plugins),
        )
        .route(
            "/v1/establishments/{id}/plugins/{name}",
            put(plugins::install_plugin).delete(plugins::uninstall_plugin),
        )
        .route(
            "/v1/establishments/{id}/plugins/analytics/report",
            get(plugins::analytics::analytics_report),
        )
        .route(
            "/v1/establishments/{id}/plugins/marketing/promotions",
            post(plugins::marketing::create_promotion).get(plugins::marketing::list_promotions),
        )
        .route(
            "/v1/establishments/{id}/plugins/marketing/promotions/{code}",
            axum::routing::delete(plugins::marketing::end_promotion),
        )
        .route(
            "/v1/establishments/{id}/plugins/marketing/audiences/win-back",
            get(plugins::marketing::win_back),
        )
        .route(
            "/v1/establishments/{id}/plugins/ads/campaigns",
            post(plugins::ads::create_campaign).get(plugins::ads::list_campaigns),
        )
        .route(
            "/v1/establishments/{id}/plugins/ads/campaigns/{campaign_id}",
            axum::routing::delete(plugins::ads::stop_campaign),
        )
        .route(
            "/v1/ads/campaigns/{campaign_id}/click",
            post(plugins::ads::click),
        )
        .route(
            "/v1/establishments/{id}/webhooks",
            post(notifications::create_webhook).get(notifications::list_webhooks),
        )
        .route(
            "/v1/establishments/{id}/webhooks/{webhook_id}",
            axum::routing::delete(notifications::delete_webhook),
        )
        .route(
            "/v1/establishments/{id}/webhooks/{webhook_id}/rotate-secret",
            post(notifications::rotate_webhook_secret),
        )
        .route(
            "/v1/establishments/{id}/webhooks/{webhook_id}/enable",
            post(notifications::enable_webhook),
        )
        .route(
            "/v1/establishments/{id}/webhooks/{webhook_id}/deliveries",
            get(notifications::list_deliveries),
        )
        .route(
            "/v1/establishments/{id}/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
            post(notifications::replay_delivery),
        )
        .route(
            "/v1/establishments",
            post(create_establishment).get(discovery::search_establishments),
        )
        .route("/v1/admin/establishments", get(admin::list_establishments))
        .route(
            "/v1/admin/establishments/{id}/suspend",
            post(admin::suspend_establishment),
        )
        .route(
            "/v1/admin/establishments/{id}/reinstate",
            post(admin::reinstate_establishment),
        )
        .route("/v1/admin/users", get(admin::list_users))
        .route("/v1/admin/users/{id}/disable", post(admin::disable_user))
        .route("/v1/admin/stats", get(admin::stats))
        .route("/v1/admin/audit", get(admin::audit))
        .route(
            "/v1/establishments/{id}",
            get(get_establishment).patch(update_establishment),
        )
        .route("/v1/establishments/{id}/members", post(add_member))
        .route("/v1/establishments/{id}/staff", post(add_staff))
        .route(
            "/v1/establishments/{id}/staff/{staff_id}/hours",
            put(set_staff_hours),
        )
        .route(
            "/v1/establishments/{id}/staff/{staff_id}/time-off",
            post(add_time_off),
        )
        .route("/v1/establishments/{id}/services", post(add_service))
        .route("/v1/establishments/{id}/availability", get(availability))
        .route(
            "/v1/establishments/{id}/bookings",
            post(create_booking).get(list_bookings),
        )
        .route(
            "/v1/establishments/{id}/bookings/{booking_id}",
            get(get_booking),
        )
        .route(
            "/v1/establishments/{id}/bookings/{booking_id}/cancel",
            post(cancel_booking),
        )
        .route(
            "/v1/establishments/{id}/bookings/{booking_id}/reschedule",
            post(reschedule_booking),
        )
        .route(
            "/v1/establishments/{id}/queue",
            post(queue::join_queue).get(queue::list_queue),
        )
        .route(
            "/v1/establishments/{id}/queue/call-next",
            post(queue::call_next),
        )
        .route(
            "/v1/establishments/{id}/queue/{ticket_id}",
            get(queue::get_ticket).delete(queue::leave_queue),
        )
        .route(
            "/v1/establishments/{id}/queue/{ticket_id}/start",
            post(queue::start_ticket),
        )
        .route(
            "/v1/establishments/{id}/queue/{ticket_id}/finish",
            post(queue::finish_ticket),
        )
        .route(
            "/v1/establishments/{id}/queue/{ticket_id}/no-show",
            post(queue::no_show_ticket),
        )
        .route("/v1/establishments/{id}/live", get(crate::live::live))
        .route(
            crate::live_remote::HANDSHAKE_PATH,
            get(crate::live_remote::handshake),
        )
        .route(
            "/v1/establishments/{id}/payment-policy",
            get(payments::get_payment_policy).put(payments::set_payment_policy),
        )
        .route(
            "/v1/establishments/{id}/services/{service_id}/payment-policy",
            get(payments::get_service_payment_policy)
                .put(payments::set_service_payment_policy)
                .delete(payments::clear_service_payment_policy),
        )
        .route(
            "/v1/establishments/{id}/checkouts",
            post(payments::create_checkout),
        )
        .route(
            "/v1/establishments/{id}/payments/{payment_id}",
            get(payments::get_payment),
        )
        .route(
            "/v1/establishments/{id}/payments/{payment_id}/refresh",
            post(payments::refresh_payment),
        )
        .route(
            "/v1/establishments/{id}/card-setups",
            post(fees::create_card_setup),
        )
        .route(
            "/v1/establishments/{id}/card-setups/{setup_id}/complete",
            post(fees::complete_card_setup),
        )
        .route("/v1/establishments/{id}/card", get(fees::get_card))
        .route(
            "/v1/establishments/{id}/bookings/{booking_id}/no-show",
            post(fees::mark_no_show),
        )
        .route(
            "/v1/establishments/{id}/bookings/{booking_id}/fees/{fee}",
            get(fees::get_fee),
        )
        .route(
            "/v1/establishments/{id}/bookings/{booking_id}/fees/{fee}/charge",
            post(fees::charge_fee),
        )
        .route(
            "/v1/establishments/{id}/bookings/{booking_id}/fees/{fee}/waive",
            post(fees::waive_fee),
        )
        .route(
            "/v1/payments/stripe/webhook",
            post(payments::stripe_webhook),
        )
}
