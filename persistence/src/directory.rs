//! The platform-wide store: discovery's search over the establishments read model, and
//! what the platform's admins read and write (users, disabled accounts, counters, the
//! append-only audit log).
//!
//! These queries go to the database's pool directly, not through the journal's breaker:
//! they are reads and rare admin writes, and when the database is gone they fail after
//! the pool's acquire timeout with `Unavailable`, as any read does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use jiff::Timestamp;
use navaro_protocol::UserId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;
use crate::listing::{ListingChange, ListingHit, ListingRecord, SearchQuery, matches, page};

/// One account as the admin's list shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub created_at: Timestamp,
    /// Why the platform disabled it, if it did.
    pub disabled_reason: Option<String>,
}

/// One admin action, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Assigned by the store, increasing: the log's order and its cursor.
    pub id: i64,
    pub at: Timestamp,
    pub admin_id: Uuid,
    /// What was done (`establishment.suspend`, `user.disable`, ...).
    pub action: String,
    /// What it was done to (`establishment`, `user`).
    pub target_kind: String,
    pub target_id: Option<Uuid>,
    pub reason: String,
    /// Anything else worth keeping, as a JSON object.
    pub detail: String,
}

/// Platform-wide counts the admin's dashboard shows (the store's part of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCounters {
    /// Bookings (not cancelled) starting in the given day.
    pub bookings_today: i64,
    pub active_establishments: i64,
    pub suspended_establishments: i64,
    pub users: i64,
    pub disabled_users: i64,
}

/// Most rows one list call returns, whatever the caller asks.
pub const MAX_PAGE: usize = 100;

/// Discovery and administration across establishments.
pub trait Directory: Send + Sync + 'static {
    /// Establishments matching `query`, in its order, at most `query.limit`.
    fn search(&self, query: SearchQuery) -> BoxFuture<'_, Result<Vec<ListingHit>, StoreError>>;
    /// Accounts whose email or name contains `text` (case-insensitive; all without),
    /// by id, after `after`, at most `limit`.
    fn search_users(
        &self,
        text: Option<String>,
        after: Option<Uuid>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<UserSummary>, StoreError>>;
    /// Record that `user` is disabled; `false` when there is no such user. Disabling a
    /// disabled user keeps the first record.
    fn disable_user(
        &self,
        user: UserId,
        by: UserId,
        reason: String,
        at: Timestamp,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// Every disabled account (the gateway keeps them in memory).
    fn disabled_users(&self) -> BoxFuture<'_, Result<Vec<Uuid>, StoreError>>;
    /// Append an entry (its `id` is ignored); returns it with the id assigned.
    fn append_audit(&self, entry: AuditEntry) -> BoxFuture<'_, Result<AuditEntry, StoreError>>;
    /// Entries newest first, before id `before`, at most `limit`.
    fn audit(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<AuditEntry>, StoreError>>;
    /// Counts across the platform; bookings are those starting in `[day_start, day_end)`.
    fn counters(
        &self,
        day_start: Timestamp,
        day_end: Timestamp,
    ) -> BoxFuture<'_, Result<StoreCounters, StoreError>>;
}

/// A listing row as the memory store keeps it.
#[derive(Clone, Debug)]
struct MemoryRow {
    record: ListingRecord,
    services_folded: String,
    seq: i64,
}

/// The directory in process memory, fed by the memory journal (tests). It knows no
/// accounts (the memory accounts store keeps its own) and counts no bookings by day.
#[derive(Clone, Default)]
pub(crate) struct MemoryDirectory {
    listings: Arc<Mutex<HashMap<Uuid, MemoryRow>>>,
    users: Arc<Mutex<BTreeMap<Uuid, UserSummary>>>,
    disabled: Arc<Mutex<HashSet<Uuid>>>,
    audit: Arc<Mutex<Vec<AuditEntry>>>,
}

impl MemoryDirectory {
    pub fn apply(&self, change: &ListingChange) {
        let mut map = self.listings.lock().unwrap_or_else(|e| e.into_inner());
        match change {
            ListingChange::Created {
                id,
                owner_id,
                created_us,
                seq,
                fields,
            } => {
                let created_at = Timestamp::from_microsecond(*created_us).unwrap_or_default();
                let record = ListingRecord {
                    id: *id,
                    owner_id: UserId(*owner_id),
                    name: fields.name.clone(),
                    timezone: fields.timezone.clone(),
                    category: fields.category.clone(),
                    address: fields.address.clone(),
                    latitude: fields.latitude,
                    longitude: fields.longitude,
                    photo_url: fields.photo_url.clone(),
                    description: fields.description.clone(),
                    services: Vec::new(),
                    suspended_reason: None,
                    created_at,
                    name_folded: fields.name_folded.clone(),
                };
                map.entry(*id).or_insert(MemoryRow {
                    record,
                    services_folded: String::new(),
                    seq: *seq,
                });
            }
            ListingChange::Updated { id, seq, fields } => {
                if let Some(row) = map.get_mut(id).filter(|r| r.seq < *seq) {
                    let r = &mut row.record;
                    r.name.clone_from(&fields.name);
                    r.name_folded.clone_from(&fields.name_folded);
                    r.timezone.clone_from(&fields.timezone);
                    r.category.clone_from(&fields.category);
                    r.address.clone_from(&fields.address);
                    r.latitude = fields.latitude;
                    r.longitude = fields.longitude;
                    r.photo_url.clone_from(&fields.photo_url);
                    r.description.clone_from(&fields.description);
                    row.seq = *seq;
                }
            }
            ListingChange::ServiceAdded {
                id,
                seq,
                name,
                folded,
            } => {
                if let Some(row) = map.get_mut(id).filter(|r| r.seq < *seq) {
                    row.record.services.push(name.clone());
                    row.services_folded = format!("{} {folded}", row.services_folded);
                    row.seq = *seq;
                }
            }
            ListingChange::Suspension { id, seq, reason } => {
                if let Some(row) = map.get_mut(id).filter(|r| r.seq < *seq) {
                    row.record.suspended_reason.clone_from(reason);
                    row.seq = *seq;
                }
            }
        }
    }
}

fn ready<T: Send + 'static>(value: T) -> BoxFuture<'static, T> {
    futures::future::ready(value).boxed()
}

impl Directory for MemoryDirectory {
    fn search(&self, query: SearchQuery) -> BoxFuture<'_, Result<Vec<ListingHit>, StoreError>> {
        let map = self.listings.lock().unwrap_or_else(|e| e.into_inner());
        let candidates = map
            .values()
            .filter(|row| {
                let text =
                    crate::listing::search_text(&row.record.name_folded, &row.services_folded);
                matches(&query, &row.record, &text)
            })
            .map(|row| row.record.clone())
            .collect();
        ready(Ok(page(&query, candidates)))
    }

    fn search_users(
        &self,
        text: Option<String>,
        after: Option<Uuid>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<UserSummary>, StoreError>> {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let text = text.map(|t| t.to_lowercase());
        let list = users
            .values()
            .filter(|u| after.is_none_or(|a| u.id > a))
            .filter(|u| {
                text.as_ref().is_none_or(|t| {
                    u.email.to_lowercase().contains(t) || u.name.to_lowercase().contains(t)
                })
            })
            .take(limit)
            .cloned()
            .collect();
        ready(Ok(list))
    }

    fn disable_user(
        &self,
        user: UserId,
        _by: UserId,
        reason: String,
        _at: Timestamp,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let Some(summary) = users.get_mut(&user.0) else {
            return ready(Ok(false));
        };
        summary.disabled_reason.get_or_insert(reason);
        self.disabled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user.0);
        ready(Ok(true))
    }

    fn disabled_users(&self) -> BoxFuture<'_, Result<Vec<Uuid>, StoreError>> {
        let set = self.disabled.lock().unwrap_or_else(|e| e.into_inner());
        ready(Ok(set.iter().copied().collect()))
    }

    fn append_audit(&self, entry: AuditEntry) -> BoxFuture<'_, Result<AuditEntry, StoreError>> {
        let mut log = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        let entry = AuditEntry {
            id: log.len() as i64 + 1,
            ..entry
        };
        log.push(entry.clone());
        ready(Ok(entry))
    }

    fn audit(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<AuditEntry>, StoreError>> {
        let log = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        let list = log
            .iter()
            .rev()
            .filter(|e| before.is_none_or(|b| e.id < b))
            .take(limit)
            .cloned()
            .collect();
        ready(Ok(list))
    }

    fn counters(
        &self,
        _day_start: Timestamp,
        _day_end: Timestamp,
    ) -> BoxFuture<'_, Result<StoreCounters, StoreError>> {
        let map = self.listings.lock().unwrap_or_else(|e| e.into_inner());
        let suspended = map
            .values()
            .filter(|r| r.record.suspended_reason.is_some())
            .count() as i64;
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner()).len() as i64;
        let disabled = self
            .disabled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len() as i64;
        ready(Ok(StoreCounters {
            // The memory store keeps no bookings index by day; its tests do not ask.
            bookings_today: 0,
            active_establishments: map.len() as i64 - suspended,
            suspended_establishments: suspended,
            users,
            disabled_users: disabled,
        }))
    }
}
