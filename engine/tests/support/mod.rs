//! A pure, in-memory harness around the domain: decide, number, apply, with a settable
//! clock. No actors, no tokio.
#![allow(dead_code)]

use jiff::Timestamp;
use jiff::civil::Date;
use navaro_engine::domain::{self, AvailabilityQuery, Context, Establishment, Slot};
use navaro_protocol::{
    Booking, Caller, Command, EstablishmentId, EstablishmentSettings, Rejection, Reply, Role,
    ServiceId, StaffId, UserId, WeeklyHours,
};
use uuid::Uuid;

pub fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub fn date(s: &str) -> Date {
    s.parse().unwrap()
}

pub fn settings(timezone: &str) -> EstablishmentSettings {
    EstablishmentSettings {
        name: "Barbearia Central".into(),
        timezone: timezone.into(),
        slot_minutes: 15,
        min_notice_minutes: 0,
        horizon_days: 60,
        cancel_cutoff_minutes: 0,
        max_future_bookings_per_customer: 1000,
        queue_max_length: 100,
        queue_no_show_grace_minutes: 5,
        listing: Default::default(),
    }
}

pub fn owner() -> Caller {
    Caller {
        user_id: UserId(Uuid::from_u128(0xABC)),
        role: Role::Owner,
    }
}

pub fn staff_member() -> Caller {
    Caller {
        user_id: UserId(Uuid::from_u128(0xDEF)),
        role: Role::Staff,
    }
}

pub fn customer(n: u128) -> Caller {
    Caller {
        user_id: UserId(Uuid::from_u128(0x1000 + n)),
        role: Role::Customer,
    }
}

pub struct Sim {
    pub id: EstablishmentId,
    pub state: Option<Establishment>,
    pub now: Timestamp,
    /// Events applied so far, counted apart from the state's seq.
    pub events: u64,
    next_id: u128,
}

impl Sim {
    pub fn new(settings: EstablishmentSettings, now: &str) -> Sim {
        let mut sim = Sim {
            id: EstablishmentId(Uuid::from_u128(7)),
            state: None,
            now: ts(now),
            events: 0,
            next_id: 1 << 64,
        };
        sim.exec(owner(), Command::CreateEstablishment { settings })
            .expect("create");
        sim
    }

    /// The same simulation (clock, ids to come) over another state: a restored one, say.
    pub fn with_state(&self, state: Establishment) -> Sim {
        Sim {
            id: self.id,
            state: Some(state),
            now: self.now,
            events: self.events,
            next_id: self.next_id,
        }
    }

    pub fn est(&self) -> &Establishment {
        self.state.as_ref().unwrap()
    }

    pub fn exec(&mut self, caller: Caller, command: Command) -> Result<Reply, Rejection> {
        self.next_id += 1;
        let ctx = Context {
            now: self.now,
            new_id: Uuid::from_u128(self.next_id),
        };
        let events = match &self.state {
            None => domain::decide_create(self.id, &caller, &command)?,
            Some(est) => domain::decide(est, &ctx, &caller, &command)?,
        };
        let after = self.state.as_ref().map_or(0, |e| e.seq);
        let records = domain::number(after, events, self.now, None);
        self.events += records.len() as u64;
        Ok(domain::apply_all(&mut self.state, &records).expect("accepted events apply"))
    }

    pub fn add_staff(&mut self, name: &str, hours: WeeklyHours) -> StaffId {
        match self
            .exec(
                owner(),
                Command::AddStaff {
                    name: name.into(),
                    user_id: None,
                    hours,
                },
            )
            .unwrap()
        {
            Reply::Staff(s) => s.id,
            other => panic!("{other:?}"),
        }
    }

    pub fn add_service(
        &mut self,
        name: &str,
        duration: u32,
        buffer: u32,
        staff: &[StaffId],
    ) -> ServiceId {
        let command = Command::AddService {
            name: name.into(),
            duration_minutes: duration,
            price_cents: 5000,
            currency: "BRL".into(),
            buffer_after_minutes: buffer,
            staff_ids: staff.to_vec(),
        };
        match self.exec(owner(), command).unwrap() {
            Reply::Service(s) => s.id,
            other => panic!("{other:?}"),
        }
    }

    pub fn book(
        &mut self,
        who: Caller,
        service: ServiceId,
        start: &str,
        staff: Option<StaffId>,
    ) -> Result<Booking, Rejection> {
        match self.exec(
            who,
            Command::Book {
                service_id: service,
                start: ts(start),
                staff_id: staff,
                customer_id: None,
                promotion: None,
            },
        )? {
            Reply::Booking(b) => Ok(b),
            other => panic!("{other:?}"),
        }
    }

    pub fn availability(
        &self,
        service: ServiceId,
        from: &str,
        days: u16,
        staff: Option<StaffId>,
    ) -> Result<Vec<Slot>, Rejection> {
        let query = AvailabilityQuery {
            service_id: service,
            from: date(from),
            days,
            staff_id: staff,
        };
        let answer = domain::availability(self.est(), &query, self.now).map(|a| a.to_vec());
        // Every test's availability is also a check of the cached days against a sweep.
        assert_eq!(
            answer,
            domain::availability_uncached(self.est(), &query, self.now),
            "cached days differ from a fresh sweep"
        );
        answer
    }

    /// The starts of the availability, as RFC 3339 strings in UTC.
    pub fn starts(
        &self,
        service: ServiceId,
        from: &str,
        days: u16,
        staff: Option<StaffId>,
    ) -> Vec<String> {
        self.availability(service, from, days, staff)
            .unwrap()
            .iter()
            .map(|s| s.start.to_string())
            .collect()
    }
}
