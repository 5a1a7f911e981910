//! Idempotency keys: a retried command gets the first answer, never a second booking.
//!
//! Keys are scoped to the user who sent them. An accepted command's key is journaled with
//! its last event (so the cache is rebuilt on recovery and a retry after a crash still
//! gets the first answer); a rejection's key is kept in memory only, since a rejection
//! changed nothing and answering it again afresh is safe.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use navaro_protocol::{Rejection, Reply, UserId};

/// How long a key is remembered: a day covers every client's retry policy.
pub const KEY_TTL_SECONDS: i64 = 24 * 3600;
/// How many keys one establishment remembers at most; the oldest go first. Bounds memory
/// against a client that sends a new key with every request.
pub const MAX_KEYS: usize = 20_000;
/// Longest key accepted (API.md).
pub const MAX_KEY_LEN: usize = 128;

/// The first answer to a keyed command.
#[derive(Clone, Debug)]
pub struct Remembered {
    pub fingerprint: u64,
    pub outcome: Result<Reply, Rejection>,
    /// The seq of the command's last event (0 for a rejection): the answer may be given
    /// only once that seq is durable.
    pub seq: u64,
    pub at_s: i64,
}

/// What the cache knows of a key.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// Never seen (or forgotten): decide the command.
    Miss,
    /// The same command again: give its first answer.
    Replay(&'a Remembered),
    /// The key was used with a different command.
    Mismatch,
}

type Key = (UserId, Arc<str>);

/// The remembered keys of one establishment.
#[derive(Clone, Debug, Default)]
pub struct IdempotencyCache {
    entries: HashMap<Key, Remembered>,
    order: VecDeque<(Key, i64)>,
}

impl IdempotencyCache {
    pub fn lookup(&self, user_id: UserId, key: &str, fingerprint: u64, now_s: i64) -> Lookup<'_> {
        match self.entries.get(&(user_id, Arc::from(key))) {
            Some(entry) if now_s - entry.at_s < KEY_TTL_SECONDS => {
                if entry.fingerprint == fingerprint {
                    Lookup::Replay(entry)
                } else {
                    Lookup::Mismatch
                }
            }
            _ => Lookup::Miss,
        }
    }

    pub fn remember(&mut self, user_id: UserId, key: &str, remembered: Remembered) {
        let key: Key = (user_id, Arc::from(key));
        self.order.push_back((key.clone(), remembered.at_s));
        self.entries.insert(key, remembered);
        self.evict(self.order.back().map_or(0, |(_, at)| *at));
    }

    /// Forget keys past their TTL, and the oldest beyond [`MAX_KEYS`].
    pub fn evict(&mut self, now_s: i64) {
        while let Some((key, at)) = self.order.front() {
            let expired = now_s - at >= KEY_TTL_SECONDS;
            if !expired && self.order.len() <= MAX_KEYS {
                break;
            }
            // Remove only if the entry is the one this queue slot recorded (a key can be
            // re-remembered later, leaving an older slot behind).
            if self.entries.get(key).is_some_and(|e| e.at_s == *at) {
                self.entries.remove(key);
            }
            self.order.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A durable key as snapshots keep it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredKey {
    pub user_id: UserId,
    pub key: String,
    pub fingerprint: u64,
    pub seq: u64,
    pub at_s: i64,
    pub reply: Reply,
}

impl IdempotencyCache {
    /// The keys of accepted commands (rejections are not worth keeping across restarts).
    pub fn durable_keys(&self) -> Vec<StoredKey> {
        self.order
            .iter()
            .filter_map(|(key, at)| {
                let entry = self.entries.get(key)?;
                match &entry.outcome {
                    Ok(reply) if entry.at_s == *at && entry.seq > 0 => Some(StoredKey {
                        user_id: key.0,
                        key: key.1.to_string(),
                        fingerprint: entry.fingerprint,
                        seq: entry.seq,
                        at_s: entry.at_s,
                        reply: reply.clone(),
                    }),
                    _ => None,
                }
            })
            .collect()
    }
}
