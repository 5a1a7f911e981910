//! The world the load runs against, provisioned through the public API: establishments
//! with staff, services and hours, customers with tokens, and the bookkeeping the
//! operations share (the slot allocator, live bookings, queue lanes, the ledger of every
//! 201 that verification checks afterwards).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use hyper::Method;
use hyper::header::HeaderValue;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};

use crate::http::{Http, bearer};
use crate::live::PushClock;
use crate::options::{AvailabilityForm, Options};

/// Every establishment's zone (no DST since 2019, but the code does not rely on it).
pub const TIMEZONE: &str = "America/Sao_Paulo";
/// Local opening hours of every staff member, every day.
const OPEN_MINUTE: u32 = 8 * 60;
const CLOSE_MINUTE: u32 = 20 * 60;
/// The booked service's length; the allocator's grid has the same step.
pub const CELL_MINUTES: u32 = 30;
/// Days ahead bookings are spread over (the server allows up to 366).
const HORIZON_DAYS: u32 = 360;
/// Availability reads look at a week starting within the first month.
pub const AVAILABILITY_WINDOW_DAYS: u32 = 30;
/// Registrations hash a password (argon2) on the server, so a few at a time.
const REGISTER_CONCURRENCY: usize = 8;
/// The server's per-customer cap on future bookings per establishment, set to its maximum.
const MAX_FUTURE_BOOKINGS: u32 = 1000;
/// The server's cap on waiting tickets, set to its maximum.
const QUEUE_MAX_LENGTH: u32 = 1000;

/// A registered user.
pub struct Account {
    pub id: String,
    pub token: String,
    /// `Bearer <token>`, built once.
    pub auth: HeaderValue,
}

/// One free slot handed out by the allocator: a staff member at a local start.
#[derive(Clone, Copy, Debug)]
pub struct Cell {
    pub day: u32,
    pub minute: u32,
    pub staff: usize,
}

/// A confirmed booking the run owns and may cancel or reschedule.
#[derive(Clone, Debug)]
pub struct LiveBooking {
    pub id: String,
    pub customer: usize,
}

/// Where a staff member's queue work stands; only one operation holds a lane at a time.
#[derive(Clone, Debug)]
pub enum LaneStage {
    Idle,
    Called {
        ticket: String,
        customer: Option<usize>,
    },
    Serving {
        ticket: String,
        customer: Option<usize>,
    },
    /// The last step failed: its answer was lost (a 5xx, a timeout) or the server's
    /// queue was not where the lane thought (a 409). The next advance reads the queue to
    /// find where the staff member really stands. `customer` is the one whose ticket the
    /// failed step concerned: back in the waiting room once no ticket of theirs is
    /// listed active (the listing can run ahead of the store by an append that then
    /// fails; such a customer's next join gets a 409 and waits again).
    Resync {
        customer: Option<usize>,
    },
}

#[derive(Clone, Debug)]
pub struct Lane {
    pub staff: usize,
    pub stage: LaneStage,
}

impl LaneStage {
    /// The customer whose ticket this stage concerns.
    fn customer(&self) -> Option<usize> {
        match self {
            LaneStage::Idle => None,
            LaneStage::Called { customer, .. }
            | LaneStage::Serving { customer, .. }
            | LaneStage::Resync { customer } => *customer,
        }
    }
}

/// A lane taken from its establishment for one step, put back when dropped. A step
/// whose future is dropped half-way (the generator's request timeout drops it) does
/// not know what the server did, so the lane goes back to resync; before, it was
/// lost, and the run went on with one staff member fewer.
pub struct TakenLane<'a> {
    lanes: &'a Mutex<Vec<Lane>>,
    pub lane: Lane,
    finished: bool,
}

impl<'a> TakenLane<'a> {
    /// The lane put back last, if any is free.
    pub fn take(lanes: &'a Mutex<Vec<Lane>>) -> Option<TakenLane<'a>> {
        let lane = lanes.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
        Some(TakenLane {
            lanes,
            lane,
            finished: false,
        })
    }

    /// The step ended with an answer: the lane goes back at the stage it was left in.
    pub fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for TakenLane<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.lane.stage = LaneStage::Resync {
                customer: self.lane.stage.customer(),
            };
        }
        let lane = Lane {
            staff: self.lane.staff,
            stage: std::mem::replace(&mut self.lane.stage, LaneStage::Idle),
        };
        self.lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(lane);
    }
}

/// Put `customer` back in a waiting room, unless they are there already (a customer
/// sent back after a lost join whose ticket did exist comes back again when a lane
/// serves that ticket).
pub fn back_to_room(room: &Mutex<VecDeque<usize>>, customer: usize) {
    let mut room = room.lock().unwrap_or_else(|e| e.into_inner());
    if !room.contains(&customer) {
        room.push_back(customer);
    }
}

/// A customer taken from an establishment's waiting room to join its queue. Dropped
/// without a word (the join's answer was lost, or its future was dropped by the request
/// timeout), they go back to the room and are marked unsure: the join may not have made
/// a ticket, and a customer kept out for one that does not exist would never come back.
/// If it does exist, their next join gets a 409, which [`Joining::keep_out`] reads as
/// expected for an unsure customer.
pub struct Joining<'a> {
    room: &'a Mutex<VecDeque<usize>>,
    unsure: &'a Mutex<HashSet<usize>>,
    pub customer: usize,
    settled: bool,
}

impl<'a> Joining<'a> {
    pub fn take(
        room: &'a Mutex<VecDeque<usize>>,
        unsure: &'a Mutex<HashSet<usize>>,
    ) -> Option<Joining<'a>> {
        let customer = room.lock().unwrap_or_else(|e| e.into_inner()).pop_front()?;
        Some(Joining {
            room,
            unsure,
            customer,
            settled: false,
        })
    }

    /// The customer holds a ticket (made now, or earlier): out until it is served.
    /// Returns whether they were unsure (a 409 then answers an earlier lost join).
    pub fn keep_out(mut self) -> bool {
        self.settled = true;
        self.unsure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.customer)
    }

    /// The join was refused and made nothing: back to the room, no doubt about it.
    pub fn refused(mut self) {
        self.settled = true;
        back_to_room(self.room, self.customer);
    }
}

impl Drop for Joining<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.unsure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(self.customer);
            back_to_room(self.room, self.customer);
        }
    }
}

/// The popular slot contended bookings aim at, and how many attempts it has left.
struct Hot {
    cell: Option<Cell>,
    attempts_left: u32,
}

/// One establishment and its share of the run's bookkeeping.
pub struct Establishment {
    pub id: String,
    pub owner: Account,
    pub staff: Vec<String>,
    /// Every service; bookings use the first (it is [`CELL_MINUTES`] long).
    pub services: Vec<String>,
    pub path: String,
    pub bookings_path: String,
    pub queue_path: String,
    pub call_next_path: String,
    /// The next allocator index; see [`World::cell`].
    cursor: AtomicU64,
    hot: Mutex<Hot>,
    pub live: Mutex<Vec<LiveBooking>>,
    pub lanes: Mutex<Vec<Lane>>,
    /// Customers with no ticket in this queue (the server allows one each).
    pub waiting_room: Mutex<VecDeque<usize>>,
    /// Customers whose last join had no answer: they may hold a ticket (see
    /// [`Joining`]).
    pub unsure: Mutex<HashSet<usize>>,
    /// Local days that may hold bookings, for verification.
    pub days: Mutex<BTreeSet<u32>>,
}

/// What the run expects of one booking it got a 201 for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Confirmed {
        staff: String,
        start: Timestamp,
    },
    Cancelled,
    /// A later call on it had no answer, so its state is unknown.
    Unknown,
}

/// Every booking that got a 201, by id, with the establishment index.
#[derive(Default)]
pub struct Ledger {
    pub entries: Mutex<HashMap<String, (usize, Expect)>>,
}

impl Ledger {
    pub fn set(&self, id: &str, establishment: usize, expect: Expect) {
        self.entries
            .lock()
            .unwrap()
            .insert(id.to_owned(), (establishment, expect));
    }
}

/// Everything the operations share.
pub struct World {
    pub http: Http,
    pub establishments: Vec<Establishment>,
    pub customers: Vec<Account>,
    customer_by_id: HashMap<String, usize>,
    pub zone: TimeZone,
    /// Local day 0 of the allocator: tomorrow, clear of minimum notice.
    pub first_day: Date,
    pub ledger: Ledger,
    pub push: PushClock,
    /// Staff lanes' grid: `cells_per_day` starts per staff member per day.
    cells_per_day: u32,
    capacity: u64,
    stride: u64,
    next_ticket_name: AtomicU64,
    pub contention: u32,
    /// Customers of the run in a queue from which a walk-in reads it instead of
    /// joining; see [`Options::queue_balk`].
    pub queue_balk: usize,
    /// The form every availability query asks for.
    pub availability_form: AvailabilityForm,
}

impl World {
    /// Register everyone and create the establishments, then seed a few bookings each.
    pub async fn provision(http: &Http, options: &Options) -> anyhow::Result<World> {
        anyhow::ensure!(options.establishments > 0, "at least one establishment");
        anyhow::ensure!(options.staff > 0, "at least one staff member");
        anyhow::ensure!(options.customers > 0, "at least one customer");
        let nonce = Timestamp::now().as_nanosecond();
        let owners = register_many(http, "owner", options.establishments, nonce).await?;
        let customers = register_many(http, "customer", options.customers, nonce).await?;
        let zone = TimeZone::get(TIMEZONE)?;
        let first_day = zone
            .to_datetime(Timestamp::now())
            .date()
            .checked_add(1.day())?;
        let mut establishments = Vec::new();
        let created = futures::stream::iter(owners.into_iter().enumerate())
            .map(|(n, owner)| create_establishment(http, n, owner, options, customers.len()))
            .buffered(4)
            .try_collect::<Vec<_>>()
            .await?;
        establishments.extend(created);
        let cells_per_day = (CLOSE_MINUTE - OPEN_MINUTE) / CELL_MINUTES;
        let capacity = u64::from(HORIZON_DAYS) * u64::from(cells_per_day) * options.staff as u64;
        let customer_by_id = customers
            .iter()
            .enumerate()
            .map(|(n, c)| (c.id.clone(), n))
            .collect();
        Ok(World {
            http: http.clone(),
            establishments,
            customers,
            customer_by_id,
            zone,
            first_day,
            ledger: Ledger::default(),
            push: PushClock::default(),
            cells_per_day,
            capacity,
            stride: coprime_stride(capacity),
            next_ticket_name: AtomicU64::new(0),
            contention: options.contention.max(1),
            queue_balk: match options.queue_balk {
                0 => usize::MAX,
                n => n,
            },
            availability_form: options.availability_form,
        })
    }

    /// The next never-used slot of an establishment, or `None` once its agenda is full.
    ///
    /// Index k maps to cell `k * stride mod capacity` with the stride coprime to the
    /// capacity, a permutation that spreads bookings over the whole horizon instead of
    /// filling the first days; a cell is never handed out twice, so uncontended
    /// bookings and reschedules never collide with each other.
    pub fn cell(&self, establishment: usize) -> Option<Cell> {
        let est = &self.establishments[establishment];
        let k = est.cursor.fetch_add(1, Ordering::Relaxed);
        if k >= self.capacity {
            return None;
        }
        let index = (u128::from(k) * u128::from(self.stride) % u128::from(self.capacity)) as u64;
        let per_day = u64::from(self.cells_per_day) * est.staff.len() as u64;
        let day = (index / per_day) as u32;
        let within = index % per_day;
        let staff = (within % est.staff.len() as u64) as usize;
        let minute = OPEN_MINUTE + (within / est.staff.len() as u64) as u32 * CELL_MINUTES;
        est.days.lock().unwrap().insert(day);
        Some(Cell { day, minute, staff })
    }

    /// The popular slot for the next contended attempt at this establishment.
    pub fn hot_cell(&self, establishment: usize) -> Option<Cell> {
        let mut hot = self.establishments[establishment].hot.lock().unwrap();
        if hot.attempts_left == 0 || hot.cell.is_none() {
            hot.cell = self.cell(establishment);
            hot.attempts_left = self.contention;
        }
        hot.attempts_left -= 1;
        hot.cell
    }

    /// The local date of allocator day `day`.
    pub fn date(&self, day: u32) -> Date {
        self.first_day
            .checked_add(i64::from(day).days())
            .expect("dates within the horizon")
    }

    /// The instant a cell starts.
    pub fn start_of(&self, cell: Cell) -> anyhow::Result<Timestamp> {
        let hour = i8::try_from(cell.minute / 60)?;
        let minute = i8::try_from(cell.minute % 60)?;
        let local = self.date(cell.day).at(hour, minute, 0, 0);
        Ok(self
            .zone
            .to_ambiguous_zoned_datetime(local)
            .compatible()?
            .timestamp())
    }

    /// The customer index of a user id (for tickets coming back from call-next).
    pub fn customer_index(&self, user_id: &str) -> Option<usize> {
        self.customer_by_id.get(user_id).copied()
    }

    /// A unique ticket name, which the live feed carries back (push latency).
    pub fn ticket_name(&self) -> String {
        format!(
            "lt-{}",
            self.next_ticket_name.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// The smallest stride >= capacity / φ that shares no factor with `capacity`.
fn coprime_stride(capacity: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let mut stride = ((capacity as f64) / 1.618).max(1.0) as u64;
    while gcd(stride, capacity) != 1 {
        stride += 1;
    }
    stride
}

async fn register_many(
    http: &Http,
    role: &str,
    count: usize,
    nonce: i128,
) -> anyhow::Result<Vec<Account>> {
    futures::stream::iter(0..count)
        .map(|n| register(http, format!("{role}-{n}"), nonce))
        .buffered(REGISTER_CONCURRENCY)
        .try_collect()
        .await
}

async fn register(http: &Http, name: String, nonce: i128) -> anyhow::Result<Account> {
    let body = json!({
        "email": format!("lt-{nonce}-{name}@example.com"),
        "password": "load test password",
        "name": name,
    });
    let reply = http
        .send(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(body.to_string()),
        )
        .await?;
    let value = expect(reply, 201, "register")?;
    let token = text(&value["token"])?;
    Ok(Account {
        id: text(&value["user"]["id"])?,
        auth: bearer(&token)?,
        token,
    })
}

async fn create_establishment(
    http: &Http,
    n: usize,
    owner: Account,
    options: &Options,
    customers: usize,
) -> anyhow::Result<Establishment> {
    let body = json!({
        "name": format!("Barbearia {n}"), "timezone": TIMEZONE, "slot_minutes": 15,
        "horizon_days": HORIZON_DAYS + 2, "max_future_bookings_per_customer": MAX_FUTURE_BOOKINGS,
        "queue_max_length": QUEUE_MAX_LENGTH,
    });
    let created = post(http, "/v1/establishments", &owner, body).await?;
    let id = text(&created["id"])?;
    let path = format!("/v1/establishments/{id}");
    let open = format!("{:02}:{:02}", OPEN_MINUTE / 60, OPEN_MINUTE % 60);
    let close = format!("{:02}:{:02}", CLOSE_MINUTE / 60, CLOSE_MINUTE % 60);
    let day = json!([[open, close]]);
    let hours =
        json!({"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day});
    let mut staff = Vec::new();
    for s in 0..options.staff {
        let body = json!({"name": format!("Staff {s}"), "hours": hours});
        let member = post(http, &format!("{path}/staff"), &owner, body).await?;
        staff.push(text(&member["id"])?);
    }
    let mut services = Vec::new();
    for (name, minutes, cents) in [("Corte", CELL_MINUTES, 5000), ("Corte e barba", 60, 8000)] {
        let body = json!({"name": name, "duration_minutes": minutes, "price_cents": cents, "staff_ids": staff});
        let service = post(http, &format!("{path}/services"), &owner, body).await?;
        services.push(text(&service["id"])?);
    }
    let lanes = (0..staff.len())
        .map(|staff| Lane {
            staff,
            stage: LaneStage::Idle,
        })
        .collect();
    Ok(Establishment {
        bookings_path: format!("{path}/bookings"),
        queue_path: format!("{path}/queue"),
        call_next_path: format!("{path}/queue/call-next"),
        path,
        id,
        owner,
        staff,
        services,
        cursor: AtomicU64::new(0),
        hot: Mutex::new(Hot {
            cell: None,
            attempts_left: 0,
        }),
        live: Mutex::new(Vec::new()),
        lanes: Mutex::new(lanes),
        waiting_room: Mutex::new((0..customers).collect()),
        unsure: Mutex::new(HashSet::new()),
        days: Mutex::new(BTreeSet::new()),
    })
}

async fn post(http: &Http, path: &str, who: &Account, body: Value) -> anyhow::Result<Value> {
    let reply = http
        .send(Method::POST, path, Some(&who.auth), Some(body.to_string()))
        .await?;
    expect(reply, 201, path)
}

fn expect(reply: crate::http::Reply, status: u16, what: &str) -> anyhow::Result<Value> {
    if reply.status != status {
        bail!(
            "{what}: expected {status}, got {} {} (is the server running with the load-test limits? see loadtest/README.md)",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    reply.json()
}

fn text(value: &Value) -> anyhow::Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("expected a string, got {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn called(customer: usize) -> Lane {
        Lane {
            staff: 3,
            stage: LaneStage::Called {
                ticket: "t".to_owned(),
                customer: Some(customer),
            },
        }
    }

    #[test]
    fn a_lane_comes_back_as_left_or_to_resync_when_its_step_was_dropped() {
        let lanes = Mutex::new(vec![called(7)]);
        let taken = TakenLane::take(&lanes).unwrap();
        assert!(TakenLane::take(&lanes).is_none(), "one step holds it");
        taken.finish();
        let back = lanes.lock().unwrap().clone();
        assert!(matches!(
            back.as_slice(),
            [Lane {
                staff: 3,
                stage: LaneStage::Called {
                    customer: Some(7),
                    ..
                }
            }]
        ));
        // A step dropped half-way (a timeout) cannot say what the server did.
        drop(TakenLane::take(&lanes).unwrap());
        let back = lanes.lock().unwrap().clone();
        assert!(
            matches!(
                back.as_slice(),
                [Lane {
                    staff: 3,
                    stage: LaneStage::Resync { customer: Some(7) }
                }]
            ),
            "{back:?}"
        );
    }

    #[test]
    fn a_joining_customer_comes_back_unless_a_ticket_keeps_them_out() {
        let room = Mutex::new(VecDeque::from([1, 2, 3]));
        let unsure = Mutex::new(HashSet::new());
        // A lost join: back, and unsure.
        let first = Joining::take(&room, &unsure).unwrap();
        assert_eq!(first.customer, 1);
        drop(first);
        assert_eq!(
            room.lock().unwrap().iter().copied().collect::<Vec<_>>(),
            [2, 3, 1]
        );
        assert!(unsure.lock().unwrap().contains(&1));
        // A refused join: back, sure.
        Joining::take(&room, &unsure).unwrap().refused();
        assert_eq!(
            room.lock().unwrap().iter().copied().collect::<Vec<_>>(),
            [3, 1, 2]
        );
        assert!(!unsure.lock().unwrap().contains(&2));
        // A ticket: out; the unsure one's 409 is the earlier join's ticket.
        assert!(!Joining::take(&room, &unsure).unwrap().keep_out());
        assert!(Joining::take(&room, &unsure).unwrap().keep_out());
        assert_eq!(
            room.lock().unwrap().iter().copied().collect::<Vec<_>>(),
            [2]
        );
        assert!(unsure.lock().unwrap().is_empty());
        // Served twice over (sent back, then its ticket finished): in the room once.
        back_to_room(&room, 2);
        back_to_room(&room, 3);
        assert_eq!(
            room.lock().unwrap().iter().copied().collect::<Vec<_>>(),
            [2, 3]
        );
    }
}
