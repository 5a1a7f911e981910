//! `navaro demo`: a realistic establishment to click around in.
//!
//! A barbershop in São Paulo with three barbers, four services, an owner and a few
//! customers (all with password [`DEMO_PASSWORD`]), bookings today and over the next
//! days and two walk-ins waiting, made through the engine exactly as the API would make
//! them.

use jiff::{Timestamp, ToSpan};
use navaro_persistence::accounts::{AccountError, MemberRole, Membership, User};
use navaro_protocol::{
    Caller, Command, EstablishmentId, EstablishmentSettings, Reply, Role, ServiceId, StaffId,
    UserId, WeeklyHours,
};
use uuid::Uuid;

use crate::engine_api::{AvailabilityQuery, Request};
use crate::state::AppState;

/// The password of every demo account. Demo data is for local use only.
pub const DEMO_PASSWORD: &str = "navaro-demo";

/// Why the demo could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("account store: {0}")]
    Accounts(#[from] AccountError),
    #[error("engine refused {what}: {rejection}")]
    Engine {
        what: &'static str,
        rejection: navaro_protocol::Rejection,
    },
    #[error("password hashing: {0}")]
    Hashing(#[from] crate::auth::AuthError),
}

/// What was loaded, for the operator.
#[derive(Debug)]
pub struct DemoSummary {
    pub establishment_id: EstablishmentId,
    pub owner_email: String,
    pub customer_emails: Vec<String>,
    pub bookings: usize,
}

async fn user(state: &AppState, email: &str, name: &str) -> Result<UserId, DemoError> {
    if let Some(existing) = state.stores.accounts.user_by_email(email).await? {
        return Ok(existing.id);
    }
    let password_hash = state.passwords.hash(DEMO_PASSWORD.to_owned()).await?;
    let user = User {
        id: UserId(Uuid::now_v7()),
        email: email.to_owned(),
        name: name.to_owned(),
        password_hash,
        created_at: Timestamp::now(),
    };
    Ok(state.stores.accounts.create_user(user).await?.id)
}

async fn run(
    state: &AppState,
    id: EstablishmentId,
    caller: Caller,
    what: &'static str,
    command: Command,
) -> Result<Reply, DemoError> {
    let request = Request {
        caller,
        command,
        idempotency_key: None,
    };
    state
        .engine
        .execute(id, request)
        .await
        .map_err(|rejection| DemoError::Engine { what, rejection })
}

/// Load the demo establishment.
pub async fn load(state: &AppState) -> Result<DemoSummary, DemoError> {
    let owner_email = "owner@demo.navaro.dev";
    let owner_id = user(state, owner_email, "Ana Souza").await?;
    let owner = Caller {
        user_id: owner_id,
        role: Role::Owner,
    };
    let id = EstablishmentId(Uuid::now_v7());
    let settings = EstablishmentSettings {
        name: "Barbearia Central".to_owned(),
        timezone: "America/Sao_Paulo".to_owned(),
        slot_minutes: 15,
        min_notice_minutes: 30,
        horizon_days: 60,
        cancel_cutoff_minutes: 120,
        max_future_bookings_per_customer: 5,
        queue_max_length: 30,
        queue_no_show_grace_minutes: 5,
        listing: navaro_protocol::Listing {
            category: Some("barbershop".to_owned()),
            address: Some("Rua Augusta, 1500 - Consolação, São Paulo - SP".to_owned()),
            latitude: Some(navaro_protocol::Degrees(-23.5587)),
            longitude: Some(navaro_protocol::Degrees(-46.6600)),
            photo_url: None,
            description: Some("Cortes clássicos e barba desde 1998.".to_owned()),
        },
    };
    run(
        state,
        id,
        owner,
        "establishment",
        Command::CreateEstablishment { settings },
    )
    .await?;
    state
        .stores
        .accounts
        .upsert_membership(Membership {
            user_id: owner_id,
            establishment_id: id,
            role: MemberRole::Owner,
        })
        .await?;

    let mut staff_ids: Vec<StaffId> = Vec::new();
    let barbers = [
        (
            "Carlos",
            WeeklyHours::weekdays(&[("09:00", "12:00"), ("13:00", "19:00")]),
        ),
        ("Marcos", WeeklyHours::every_day(&[("10:00", "18:00")])),
        ("Júlia", WeeklyHours::weekdays(&[("12:00", "20:00")])),
    ];
    for (name, hours) in barbers {
        let command = Command::AddStaff {
            name: name.to_owned(),
            user_id: None,
            hours,
        };
        if let Reply::Staff(s) = run(state, id, owner, "staff", command).await? {
            staff_ids.push(s.id);
        }
    }
    let mut services: Vec<ServiceId> = Vec::new();
    let menu = [
        ("Corte masculino", 30, 5_000, 5),
        ("Barba", 20, 3_500, 5),
        ("Corte + barba", 50, 7_500, 10),
        ("Pigmentação", 45, 9_000, 15),
    ];
    for (name, minutes, cents, buffer) in menu {
        let command = Command::AddService {
            name: name.to_owned(),
            duration_minutes: minutes,
            price_cents: cents,
            currency: "BRL".to_owned(),
            buffer_after_minutes: buffer,
            staff_ids: staff_ids.clone(),
        };
        if let Reply::Service(s) = run(state, id, owner, "service", command).await? {
            services.push(s.id);
        }
    }

    let customers = [
        ("bruno@demo.navaro.dev", "Bruno Lima"),
        ("carla@demo.navaro.dev", "Carla Dias"),
        ("diego@demo.navaro.dev", "Diego Rocha"),
    ];
    let mut customer_emails = Vec::new();
    let mut bookings = 0;
    for (n, (email, name)) in customers.iter().enumerate() {
        let customer = Caller {
            user_id: user(state, email, name).await?,
            role: Role::Customer,
        };
        customer_emails.push((*email).to_owned());
        let service = services[n % services.len()];
        bookings += book_today(state, id, customer, service, n).await;
        bookings += book_some(state, id, customer, service, n).await;
    }
    // Two walk-ins waiting, so the Pro board (`/pro`) has a queue to move.
    for name in ["Rafael", "Sofia"] {
        let command = Command::JoinQueue {
            service_id: services[0],
            staff_id: None,
            name: Some(name.to_owned()),
        };
        // A full or closed queue leaves the demo without walk-ins, nothing worse.
        let _ = run(state, id, owner, "walk-in", command).await;
    }
    Ok(DemoSummary {
        establishment_id: id,
        owner_email: owner_email.to_owned(),
        customer_emails,
        bookings,
    })
}

/// Book one of today's remaining free slots for a customer (none late in the day);
/// returns how many were made.
async fn book_today(
    state: &AppState,
    id: EstablishmentId,
    customer: Caller,
    service_id: ServiceId,
    offset: usize,
) -> usize {
    let Ok(view) = state.engine.view(id).await else {
        return 0;
    };
    let now = Timestamp::now();
    let query = AvailabilityQuery {
        service_id,
        from: view.timezone().to_datetime(now).date(),
        days: 1,
        staff_id: None,
    };
    let Ok(slots) = view.availability(&query, now) else {
        return 0;
    };
    let Some(slot) = slots
        .iter()
        .skip(2 + offset * 5)
        .find(|s| !s.staff_ids.is_empty())
    else {
        return 0;
    };
    let command = Command::Book {
        service_id,
        start: slot.start,
        staff_id: slot.staff_ids.get(offset % slot.staff_ids.len()).copied(),
        customer_id: None,
        promotion: None,
    };
    usize::from(run(state, id, customer, "booking", command).await.is_ok())
}

/// Book two free slots for a customer, a day or two ahead; returns how many were made.
async fn book_some(
    state: &AppState,
    id: EstablishmentId,
    customer: Caller,
    service_id: ServiceId,
    offset: usize,
) -> usize {
    let Ok(view) = state.engine.view(id).await else {
        return 0;
    };
    let now = Timestamp::now();
    let today = view.timezone().to_datetime(now).date();
    let query = AvailabilityQuery {
        service_id,
        from: today.saturating_add(1.day()),
        days: 7,
        staff_id: None,
    };
    let Ok(slots) = view.availability(&query, now) else {
        return 0;
    };
    let mut made = 0;
    for slot in slots.iter().skip(offset * 7).step_by(5).take(2) {
        let command = Command::Book {
            service_id,
            start: slot.start,
            staff_id: None,
            customer_id: None,
            promotion: None,
        };
        if run(state, id, customer, "booking", command).await.is_ok() {
            made += 1;
        }
    }
    made
}
