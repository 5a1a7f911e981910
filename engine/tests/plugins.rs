//! Plugin installations and promotions, decided by the establishment (pure domain):
//! installs are events owners alone make; a promotion's discount is on the booking, and
//! its usage limit and once-per-customer rule are counted by the establishment itself,
//! survive a snapshot, and are given back by a cancellation.

mod support;

use navaro_engine::domain::Establishment;
use navaro_protocol::{
    Booking, Command, Discount, ErrorCode, PromotionTerms, Reply, ServiceId, WeeklyHours,
};
use serde_json::json;
use support::*;

fn shop() -> (Sim, ServiceId) {
    let mut sim = Sim::new(settings("America/Sao_Paulo"), "2026-11-30T11:00:00Z");
    let hours = WeeklyHours::weekdays(&[("09:00", "18:00")]);
    let ana = sim.add_staff("Ana", hours.clone());
    let bia = sim.add_staff("Bia", hours);
    // 30 minutes at 50.00 BRL (the support's price).
    let cut = sim.add_service("Corte", 30, 0, &[ana, bia]);
    (sim, cut)
}

fn terms(discount: Discount, usage_limit: Option<u32>, once: bool) -> PromotionTerms {
    PromotionTerms {
        code: "WELCOME".into(),
        discount,
        usage_limit,
        once_per_customer: once,
    }
}

fn book_with(
    sim: &mut Sim,
    who: navaro_protocol::Caller,
    cut: ServiceId,
    start: &str,
    promotion: &PromotionTerms,
) -> Result<Booking, navaro_protocol::Rejection> {
    let command = Command::Book {
        service_id: cut,
        start: ts(start),
        staff_id: None,
        customer_id: None,
        promotion: Some(promotion.clone()),
    };
    match sim.exec(who, command)? {
        Reply::Booking(b) => Ok(b),
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_owners_install_and_uninstall_and_each_is_an_event() {
    let (mut sim, _) = shop();
    let install = Command::InstallPlugin {
        name: "analytics".into(),
        settings: json!({}),
    };
    let refused = sim.exec(staff_member(), install.clone()).unwrap_err();
    assert_eq!(refused.code, ErrorCode::Forbidden);
    let seq = sim.est().seq;
    let reply = sim.exec(owner(), install.clone()).unwrap();
    assert_eq!(
        reply,
        Reply::Plugin {
            name: "analytics".into(),
            settings: Some(json!({}))
        }
    );
    assert_eq!(sim.est().seq, seq + 1);
    assert!(sim.est().plugins.contains_key("analytics"));
    // The same settings again: nothing to record.
    assert_eq!(
        sim.exec(owner(), install).unwrap_err().code,
        ErrorCode::Conflict
    );
    let bad = Command::InstallPlugin {
        name: "Not A Name".into(),
        settings: json!({}),
    };
    assert_eq!(
        sim.exec(owner(), bad).unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    let uninstall = Command::UninstallPlugin {
        name: "analytics".into(),
    };
    sim.exec(owner(), uninstall.clone()).unwrap();
    assert!(!sim.est().plugins.contains_key("analytics"));
    assert_eq!(
        sim.exec(owner(), uninstall).unwrap_err().code,
        ErrorCode::NotFound
    );
}

#[test]
fn the_discount_is_on_the_booking() {
    let (mut sim, cut) = shop();
    let percent = terms(Discount::Percent(15), None, false);
    let b = book_with(&mut sim, customer(1), cut, "2026-11-30T13:00:00Z", &percent).unwrap();
    let p = b.promotion.expect("the promotion is on the booking");
    assert_eq!((p.price_cents, p.discount_cents), (5000, 750));
    assert_eq!(p.code, "WELCOME");
    assert_eq!(p.currency, "BRL");
    // A fixed amount above the price takes the price off, never more.
    let fixed = terms(Discount::FixedCents(9000), None, false);
    let b = book_with(&mut sim, customer(2), cut, "2026-11-30T14:00:00Z", &fixed).unwrap();
    assert_eq!(b.promotion.unwrap().discount_cents, 5000);
}

#[test]
fn once_per_customer_holds_and_a_cancellation_gives_the_use_back() {
    let (mut sim, cut) = shop();
    let once = terms(Discount::Percent(10), None, true);
    let first = book_with(&mut sim, customer(1), cut, "2026-11-30T13:00:00Z", &once).unwrap();
    // The second booking of the same customer with the code is refused, and nothing is
    // booked: the actor decides one after the other, so two concurrent requests meet
    // this same check.
    let seq = sim.est().seq;
    let again = book_with(&mut sim, customer(1), cut, "2026-11-30T13:00:00Z", &once).unwrap_err();
    assert_eq!(again.code, ErrorCode::PromotionUnavailable);
    assert_eq!(again.field.as_deref(), Some("promotion_code"));
    assert_eq!(sim.est().seq, seq);
    // Another customer may.
    book_with(&mut sim, customer(2), cut, "2026-11-30T13:00:00Z", &once).unwrap();
    // Cancelling gives the use back.
    sim.exec(
        customer(1),
        Command::Cancel {
            booking_id: first.id,
        },
    )
    .unwrap();
    book_with(&mut sim, customer(1), cut, "2026-11-30T14:00:00Z", &once).unwrap();
}

#[test]
fn the_usage_limit_counts_every_customer_and_survives_a_snapshot() {
    let (mut sim, cut) = shop();
    let limited = terms(Discount::Percent(10), Some(2), false);
    book_with(&mut sim, customer(1), cut, "2026-11-30T13:00:00Z", &limited).unwrap();
    book_with(&mut sim, customer(2), cut, "2026-11-30T13:00:00Z", &limited).unwrap();
    let restored = Establishment::restore(&sim.est().to_snapshot()).unwrap();
    assert_eq!(restored.promotion_uses, sim.est().promotion_uses);
    let mut sim = sim.with_state(restored);
    let used_up =
        book_with(&mut sim, customer(3), cut, "2026-11-30T14:00:00Z", &limited).unwrap_err();
    assert_eq!(used_up.code, ErrorCode::PromotionUnavailable);
    // Plugins survive the snapshot too.
    sim.exec(
        owner(),
        Command::InstallPlugin {
            name: "ads".into(),
            settings: json!({}),
        },
    )
    .unwrap();
    let restored = Establishment::restore(&sim.est().to_snapshot()).unwrap();
    assert_eq!(restored.plugins, sim.est().plugins);
}
