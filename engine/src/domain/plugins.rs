//! Plugin installations and promotions: the two plugin decisions the establishment's
//! actor makes itself.
//!
//! Installing a plugin is an event in the journal (so the Pro apps see it live and every
//! plugin's consumer sees it in order with the rest). Applying a promotion is part of a
//! booking decision: the actor counts each code's uses, so the usage limit and the
//! once-per-customer rule hold however many bookings race for the code.

use navaro_protocol::{
    AppliedPromotion, Caller, ErrorCode, Event, PluginSettings, PromotionTerms, Rejection,
    ServiceId, UserId, valid_plugin_name,
};

use super::decide::{Events, require_manager_of_setup};
use super::state::Establishment;

/// Largest settings document a plugin may keep in the journal, in bytes of JSON: settings
/// are a few knobs, and every installation event carries them whole.
pub const MAX_PLUGIN_SETTINGS_BYTES: usize = 8 * 1024;

/// Install a plugin (or change an installed plugin's settings).
pub fn install(
    est: &Establishment,
    caller: &Caller,
    name: &str,
    settings: &PluginSettings,
) -> Result<Events, Rejection> {
    require_manager_of_setup(caller)?;
    if !valid_plugin_name(name) {
        return Err(Rejection::invalid("name", "not a plugin name"));
    }
    if !settings.is_object() {
        return Err(Rejection::invalid("settings", "settings must be an object"));
    }
    if settings.to_string().len() > MAX_PLUGIN_SETTINGS_BYTES {
        return Err(Rejection::invalid(
            "settings",
            format!("settings must be at most {MAX_PLUGIN_SETTINGS_BYTES} bytes of JSON"),
        ));
    }
    if est.plugins.get(name) == Some(settings) {
        return Err(Rejection::new(
            ErrorCode::Conflict,
            "the plugin is already installed with these settings",
        ));
    }
    Ok(vec![Event::PluginInstalled {
        name: name.to_owned(),
        settings: settings.clone(),
    }])
}

/// Uninstall a plugin.
pub fn uninstall(est: &Establishment, caller: &Caller, name: &str) -> Result<Events, Rejection> {
    require_manager_of_setup(caller)?;
    if !est.plugins.contains_key(name) {
        return Err(Rejection::not_found("plugin"));
    }
    Ok(vec![Event::PluginUninstalled {
        name: name.to_owned(),
    }])
}

/// The promotion a booking of `service_id` by `customer` gets under `terms`, or why the
/// code cannot be used for it.
pub fn apply_promotion(
    est: &Establishment,
    customer: UserId,
    service_id: ServiceId,
    terms: &PromotionTerms,
) -> Result<AppliedPromotion, Rejection> {
    let unavailable = |message: &str| {
        Rejection::field(ErrorCode::PromotionUnavailable, "promotion_code", message)
    };
    let service = est
        .service(service_id)
        .ok_or_else(|| Rejection::not_found("service"))?;
    let uses = est.promotion_uses.get(&terms.code);
    let count = uses.map_or(0, |u| u.count);
    if terms.usage_limit.is_some_and(|limit| count >= limit) {
        return Err(unavailable("this promotion code has been used up"));
    }
    if terms.once_per_customer && uses.is_some_and(|u| u.customers.contains(&customer)) {
        return Err(unavailable(
            "this customer has already used this promotion code",
        ));
    }
    let price_cents = service.info.price_cents;
    Ok(AppliedPromotion {
        code: terms.code.clone(),
        price_cents,
        discount_cents: terms.discount.on(price_cents),
        currency: service.info.currency.clone(),
    })
}
