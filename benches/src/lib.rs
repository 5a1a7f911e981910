//! Shared fixtures for the benchmarks: a realistic establishment built through the pure
//! domain (ten staff, a week of bookings at a typical fill rate).

use jiff::{SignedDuration, Timestamp};
use navaro_engine::domain::{self, Context, Establishment};
use navaro_engine::{Engine, Request};
use navaro_protocol::{
    Caller, Command, EstablishmentId, EstablishmentSettings, Reply, Role, ServiceId, StaffId,
    UserId, WeeklyHours,
};
use uuid::Uuid;

pub const NOW: &str = "2026-11-30T10:00:00Z";

pub fn ts(s: &str) -> Timestamp {
    s.parse().expect("a valid timestamp")
}

/// Midnight (UTC) two days after today's: where the benches that run on the system
/// clock start booking, a day or two ahead as the notice and horizon allow. A fixed
/// date goes stale: on 2026-12-01 every booking at `2026-12-01T00:00:00Z` was refused
/// as too soon, which failed the durable bench and left the actor bench timing
/// refusals.
pub fn bookable_from() -> Timestamp {
    const DAY: i64 = 24 * 60 * 60;
    let today = Timestamp::now().as_second().div_euclid(DAY) * DAY;
    Timestamp::from_second(today + 2 * DAY).expect("in range")
}

pub fn owner() -> Caller {
    Caller {
        user_id: UserId(Uuid::from_u128(1)),
        role: Role::Owner,
    }
}

pub fn customer(n: u128) -> Caller {
    Caller {
        user_id: UserId(Uuid::from_u128(1_000_000 + n)),
        role: Role::Customer,
    }
}

/// A pure, in-memory establishment with a counter for fresh ids.
pub struct Shop {
    pub state: Option<Establishment>,
    pub now: Timestamp,
    pub staff: Vec<StaffId>,
    pub cut: ServiceId,
    next_id: u128,
}

impl Shop {
    pub fn exec(&mut self, caller: Caller, command: &Command) -> Option<Reply> {
        self.next_id += 1;
        let ctx = Context {
            now: self.now,
            new_id: Uuid::from_u128(self.next_id),
        };
        let events = match &self.state {
            None => {
                domain::decide_create(EstablishmentId(Uuid::from_u128(9)), &caller, command).ok()?
            }
            Some(est) => domain::decide(est, &ctx, &caller, command).ok()?,
        };
        let after = self.state.as_ref().map_or(0, |e| e.seq);
        let records = domain::number(after, events, self.now, None);
        domain::apply_all(&mut self.state, &records).ok()
    }

    pub fn est(&self) -> &Establishment {
        self.state.as_ref().expect("created")
    }

    pub fn next_id(&mut self) -> Uuid {
        self.next_id += 1;
        Uuid::from_u128(self.next_id)
    }
}

/// Ten staff on 09:00-12:00 and 13:00-19:00 six days a week, a 30-minute service with a
/// 10-minute buffer, and `fill` (0..1) of each staff member's week booked.
pub fn realistic_shop(staff_count: usize, fill: f64) -> Shop {
    let mut shop = Shop {
        state: None,
        now: ts(NOW),
        staff: Vec::new(),
        cut: ServiceId(Uuid::nil()),
        next_id: 100,
    };
    let settings = EstablishmentSettings {
        name: "Barbearia Central".into(),
        timezone: "America/Sao_Paulo".into(),
        slot_minutes: 15,
        min_notice_minutes: 0,
        horizon_days: 60,
        cancel_cutoff_minutes: 0,
        max_future_bookings_per_customer: 1000,
        queue_max_length: 100,
        queue_no_show_grace_minutes: 5,
        listing: Default::default(),
    };
    shop.exec(owner(), &Command::CreateEstablishment { settings });
    let mut hours = WeeklyHours::weekdays(&[("09:00", "12:00"), ("13:00", "19:00")]);
    hours.sat = hours.mon.clone();
    for i in 0..staff_count {
        let add = Command::AddStaff {
            name: format!("Barber {i}"),
            user_id: None,
            hours: hours.clone(),
        };
        if let Some(Reply::Staff(s)) = shop.exec(owner(), &add) {
            shop.staff.push(s.id);
        }
    }
    let add = Command::AddService {
        name: "Corte".into(),
        duration_minutes: 30,
        price_cents: 5000,
        currency: "BRL".into(),
        buffer_after_minutes: 10,
        staff_ids: shop.staff.clone(),
    };
    if let Some(Reply::Service(s)) = shop.exec(owner(), &add) {
        shop.cut = s.id;
    }
    // Book every 45 minutes where the pseudo-random draw falls under `fill`.
    let first = ts("2026-11-30T12:00:00Z");
    let mut draw: u64 = 0x2545_f491_4f6c_dd1d;
    for (s, staff) in shop.staff.clone().into_iter().enumerate() {
        for k in 0..(7 * 24 * 60 / 45) {
            draw ^= draw << 13;
            draw ^= draw >> 7;
            draw ^= draw << 17;
            if (draw % 1000) as f64 >= fill * 1000.0 {
                continue;
            }
            let start = first
                .checked_add(SignedDuration::from_mins(45 * k))
                .expect("in range");
            let book = Command::Book {
                service_id: shop.cut,
                start,
                staff_id: Some(staff),
                customer_id: None,
                promotion: None,
            };
            shop.exec(customer((s * 10_000 + k as usize) as u128), &book);
        }
    }
    shop
}

/// Staff per establishment in the actor benches.
pub const BENCH_STAFF: u64 = 4;

/// `count` establishments open around the clock through the engine, each with
/// [`BENCH_STAFF`] staff and a 30-minute service: for the actor-path benches.
pub async fn open_shops(engine: &Engine, count: usize) -> Vec<(EstablishmentId, ServiceId)> {
    let mut shops = Vec::new();
    for _ in 0..count {
        let id = EstablishmentId(Uuid::now_v7());
        let settings = EstablishmentSettings {
            name: "Shop".into(),
            timezone: "UTC".into(),
            slot_minutes: 15,
            min_notice_minutes: 0,
            horizon_days: 366,
            cancel_cutoff_minutes: 0,
            max_future_bookings_per_customer: 1000,
            queue_max_length: 100,
            queue_no_show_grace_minutes: 5,
            listing: Default::default(),
        };
        let exec = |command| {
            engine.execute(
                id,
                Request {
                    caller: owner(),
                    command,
                    idempotency_key: None,
                },
            )
        };
        exec(Command::CreateEstablishment { settings })
            .await
            .expect("create");
        let mut staff = Vec::new();
        for i in 0..BENCH_STAFF {
            let hours = WeeklyHours::every_day(&[("00:00", "24:00")]);
            if let Ok(Reply::Staff(s)) = exec(Command::AddStaff {
                name: format!("s{i}"),
                user_id: None,
                hours,
            })
            .await
            {
                staff.push(s.id);
            }
        }
        let add = Command::AddService {
            name: "Cut".into(),
            duration_minutes: 30,
            price_cents: 100,
            currency: "BRL".into(),
            buffer_after_minutes: 0,
            staff_ids: staff,
        };
        if let Ok(Reply::Service(s)) = exec(add).await {
            shops.push((id, s.id));
        }
    }
    shops
}
