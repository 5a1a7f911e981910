//! The payment sweeper on an injected clock, against localstripe: a lapsed checkout
//! that was paid at the last second confirms; an unpaid one is cancelled at the provider
//! and frees its slot; one paid after its slot was given away is refunded in full.
//! The engine runs in process (memory journal, `ManualClock`); the provider is the real
//! Stripe client.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::localstripe::{API_KEY, LocalStripe};
use jiff::Timestamp;
use navaro_engine::store::MemoryJournal;
use navaro_engine::{Engine, EngineConfig, ManualClock, Request};
use navaro_gateway::payments::PaymentService;
use navaro_payments::stripe::Stripe;
use navaro_protocol::{
    Caller, Command, EstablishmentId, EstablishmentSettings, Payment, PaymentMode, PaymentPolicy,
    PaymentStatus, Reply, Role, ServiceId, UserId, WeeklyHours,
};
use uuid::Uuid;

const TTL_SECONDS: u32 = 60;

fn caller(user: UserId, role: Role) -> Caller {
    Caller {
        user_id: user,
        role,
    }
}

async fn run(engine: &Engine, est: EstablishmentId, who: Caller, command: Command) -> Reply {
    engine
        .execute(
            est,
            Request {
                caller: who,
                command,
                idempotency_key: None,
            },
        )
        .await
        .unwrap_or_else(|r| panic!("{r}"))
}

/// A shop open 00:00-24:00 every day with a 30-minute service at 100.00 BRL and a 50%
/// deposit.
async fn shop(engine: &Engine, owner: Caller) -> (EstablishmentId, ServiceId) {
    let est = EstablishmentId(Uuid::now_v7());
    let settings = EstablishmentSettings {
        name: "Barbearia".into(),
        timezone: "UTC".into(),
        slot_minutes: 15,
        min_notice_minutes: 0,
        horizon_days: 60,
        cancel_cutoff_minutes: 0,
        max_future_bookings_per_customer: 10,
        queue_max_length: 100,
        queue_no_show_grace_minutes: 5,
        listing: Default::default(),
    };
    run(
        engine,
        est,
        owner,
        Command::CreateEstablishment { settings },
    )
    .await;
    let Reply::Staff(staff) = run(
        engine,
        est,
        owner,
        Command::AddStaff {
            name: "Carlos".into(),
            user_id: None,
            hours: WeeklyHours::every_day(&[("00:00", "24:00")]),
        },
    )
    .await
    else {
        panic!()
    };
    let Reply::Service(service) = run(
        engine,
        est,
        owner,
        Command::AddService {
            name: "Corte".into(),
            duration_minutes: 30,
            price_cents: 10_000,
            currency: "BRL".into(),
            buffer_after_minutes: 0,
            staff_ids: vec![staff.id],
        },
    )
    .await
    else {
        panic!()
    };
    let policy = PaymentPolicy {
        mode: PaymentMode::Deposit,
        deposit_percent: Some(50),
        deposit_cents: None,
        ..PaymentPolicy::default()
    };
    run(
        engine,
        est,
        owner,
        Command::SetPaymentPolicy {
            policy,
            service_id: None,
        },
    )
    .await;
    (est, service.id)
}

async fn checkout(
    engine: &Engine,
    service_ops: &PaymentService,
    est: EstablishmentId,
    customer: Caller,
    service: ServiceId,
    start: Timestamp,
) -> Payment {
    let Reply::Payment(payment) = run(
        engine,
        est,
        customer,
        Command::Checkout {
            service_id: service,
            start,
            staff_id: None,
            ttl_seconds: TTL_SECONDS,
            provider: "stripe".into(),
        },
    )
    .await
    else {
        panic!()
    };
    assert_eq!(payment.amount_cents, 5_000);
    let (payment, secret) = service_ops.open_intent(est, &payment).await.unwrap();
    assert!(secret.is_some());
    payment
}

async fn current(service_ops: &PaymentService, est: EstablishmentId, payment: &Payment) -> Payment {
    service_ops.current(est, payment.id).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_asks_the_provider_once_more_before_freeing_a_lapsed_checkout() {
    let stripe = LocalStripe::start().await.expect("localstripe starts");
    let clock = ManualClock::new(Timestamp::now());
    let engine = Engine::start_with_clock(
        Arc::new(MemoryJournal::new()),
        Arc::new(clock.clone()),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    let provider = Stripe::new(&stripe.base, API_KEY, Duration::from_secs(10)).unwrap();
    let ops = PaymentService::new(engine.clone(), Arc::new(provider));
    let owner = caller(UserId(Uuid::now_v7()), Role::Owner);
    let customer = caller(UserId(Uuid::now_v7()), Role::Customer);
    let walk_in = caller(UserId(Uuid::now_v7()), Role::Customer);
    let (est, service) = shop(&engine, owner).await;
    // Slots a day ahead on the hour (UTC, on the 15-minute grid).
    let base = Timestamp::from_second((clock_now(&engine) / 3600 + 24) * 3600).unwrap();
    let slot = |hours: i64| Timestamp::from_second(base.as_second() + hours * 3600).unwrap();

    // A: paid just before the sweep (no webhook arrived): confirmed, not lost.
    let a = checkout(&engine, &ops, est, customer, service, slot(0)).await;
    // B: never paid.
    let b = checkout(&engine, &ops, est, customer, service, slot(1)).await;
    // C: paid after its hold lapsed and its slot was taken by someone else.
    let c = checkout(&engine, &ops, est, customer, service, slot(2)).await;
    assert_eq!(
        stripe
            .pay(a.provider_ref.as_deref().unwrap(), "pm_card_visa")
            .await,
        200
    );

    // Before the expiry the sweeper leaves them all alone.
    assert_eq!(ops.sweep_once().await, 0);
    clock.advance_seconds(i64::from(TTL_SECONDS) + 1);
    // The actor's own clock tick does not end holds awaiting payment.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let view = engine.view(est).await.unwrap();
    assert_eq!(
        view.state().holds.len(),
        3,
        "holds awaiting payment are the sweeper's"
    );
    // C's slot is free (its hold lapsed): the shop books it for a walk-in (customers
    // cannot book directly under a deposit policy); then C's customer pays.
    run(
        &engine,
        est,
        owner,
        Command::Book {
            service_id: service,
            start: slot(2),
            staff_id: None,
            customer_id: Some(walk_in.user_id),
            promotion: None,
        },
    )
    .await;
    assert_eq!(
        stripe
            .pay(c.provider_ref.as_deref().unwrap(), "pm_card_visa")
            .await,
        200
    );

    assert_eq!(ops.sweep_once().await, 3);
    let a = current(&ops, est, &a).await;
    assert_eq!(a.status, PaymentStatus::Succeeded, "{a:?}");
    let booking = a.booking_id.expect("A booked");
    let view = engine.view(est).await.unwrap();
    assert_eq!(view.state().bookings.get(&booking).unwrap().start, slot(0));

    let b = current(&ops, est, &b).await;
    assert_eq!(b.status, PaymentStatus::Expired, "{b:?}");
    assert!(view.state().holds.is_empty(), "every hold ended");
    let intent = stripe
        .get(&format!(
            "/v1/payment_intents/{}",
            b.provider_ref.as_deref().unwrap()
        ))
        .await;
    assert_eq!(intent["status"], "canceled", "B cancelled at the provider");

    let c = current(&ops, est, &c).await;
    assert_eq!(c.status, PaymentStatus::Refunded, "{c:?}");
    assert_eq!((c.booking_id, c.refunded_cents), (None, 5_000));
    let refunds = stripe
        .get(&format!(
            "/v1/refunds?payment_intent={}",
            c.provider_ref.as_deref().unwrap()
        ))
        .await;
    let amounts: Vec<i64> = refunds["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [5_000], "one full refund");

    // B's slot is bookable again; a second sweep finds nothing to do.
    run(
        &engine,
        est,
        owner,
        Command::Book {
            service_id: service,
            start: slot(1),
            staff_id: None,
            customer_id: Some(walk_in.user_id),
            promotion: None,
        },
    )
    .await;
    assert_eq!(ops.sweep_once().await, 0);
}

fn clock_now(engine: &Engine) -> i64 {
    engine.now().as_second()
}
