//! The group-commit writer: one task gathers the appends of every actor and makes each
//! gathered group durable with one statement and one commit.
//!
//! Why one task: a commit (an fsync) costs the same for one row as for a thousand, so the
//! writer's throughput is groups per second times group size. While one group commits,
//! the next one gathers in the channel; under load groups grow by themselves.
//!
//! The writer also keeps the fencing rules of [`Journal::append`]: it knows the last
//! durable seq of every establishment it has written or loaded, refuses a batch that
//! would leave a gap, and once an establishment is fenced keeps refusing its batches
//! until `load` is called for it again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use navaro_engine::store::{AppendBatch, JournalError};
use navaro_protocol::EstablishmentId;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;

use crate::backend::{Backend, Group, Losers, WriteError};
use crate::rows::{EncodedBatch, ItemRow, Projection};

/// One batch on its way to the writer.
pub(crate) struct Pending {
    pub establishment_id: EstablishmentId,
    pub first_seq: u64,
    pub last_seq: u64,
    pub rows: EncodedBatch,
    pub reply: oneshot::Sender<Result<(), JournalError>>,
}

/// What the writer knows of an establishment's journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamState {
    /// Every seq up to this one is durable, and no other is known to be.
    Durable(u64),
    /// A batch lost to another writer or would have left a gap: refuse until reloaded.
    Fenced,
}

/// The writer's view of every establishment, shared with `load` which resets it.
#[derive(Clone, Default)]
pub(crate) struct Streams(Arc<Mutex<HashMap<EstablishmentId, StreamState>>>);

impl Streams {
    fn lock(&self) -> MutexGuard<'_, HashMap<EstablishmentId, StreamState>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, id: EstablishmentId, state: StreamState) {
        self.lock().insert(id, state);
    }

    /// Record a durable batch, unless the establishment was fenced meanwhile (a later
    /// batch of the same group was refused): that stays until a reload.
    fn mark_durable(&self, id: EstablishmentId, last_seq: u64) {
        let mut streams = self.lock();
        if streams.get(&id) != Some(&StreamState::Fenced) {
            streams.insert(id, StreamState::Durable(last_seq));
        }
    }

    fn get(&self, id: EstablishmentId) -> Option<StreamState> {
        self.lock().get(&id).copied()
    }
}

/// Limits of one group.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupLimits {
    pub max_events: usize,
    pub max_wait: Duration,
}

pub(crate) struct Writer {
    pub backend: Arc<dyn Backend>,
    pub streams: Streams,
    pub limits: GroupLimits,
}

impl Writer {
    /// Run until every sender is gone.
    pub async fn run(self, mut rx: mpsc::Receiver<Pending>) {
        while let Some(first) = rx.recv().await {
            let group = self.gather(first, &mut rx).await;
            self.commit_group(group).await;
        }
        tracing::debug!("journal writer stopped: no more senders");
    }

    /// Take what is waiting, up to `max_events`, lingering at most `max_wait` for more.
    async fn gather(&self, first: Pending, rx: &mut mpsc::Receiver<Pending>) -> Vec<Pending> {
        let deadline = Instant::now() + self.limits.max_wait;
        let mut events = first.rows.events.len();
        let mut group = vec![first];
        while events < self.limits.max_events {
            let next = match rx.try_recv() {
                Ok(p) => p,
                Err(mpsc::error::TryRecvError::Empty) if !self.limits.max_wait.is_zero() => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(p)) => p,
                        _ => break,
                    }
                }
                Err(_) => break,
            };
            events += next.rows.events.len();
            group.push(next);
        }
        group
    }

    async fn commit_group(&self, pending: Vec<Pending>) {
        let accepted = match self.admit(pending).await {
            Some(accepted) => accepted,
            None => return,
        };
        let group = build_group(&accepted);
        let started = std::time::Instant::now();
        // The store bounds the write by its call timeout (`StoreOptions::call_timeout`).
        let written = self.backend.write_group(&group).await;
        // Exported by the gateway's Prometheus endpoint: how big groups get and what a
        // commit costs, the two numbers that explain durable throughput.
        metrics::histogram!("navaro_journal_group_events").record(group.events.len() as f64);
        metrics::histogram!("navaro_journal_commit_seconds", "ok" => if written.is_ok() { "true" } else { "false" })
            .record(started.elapsed().as_secs_f64());
        tracing::debug!(
            batches = accepted.len(),
            events = group.events.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            ok = written.is_ok(),
            "journal group written"
        );
        match written {
            Ok(losers) => self.settle(accepted, &losers),
            Err(WriteError::Overlap(reason)) => self.isolate(accepted, &reason).await,
            Err(
                WriteError::Unavailable(reason)
                | WriteError::Unreachable(reason)
                | WriteError::NoConnection(reason),
            ) => {
                tracing::warn!(batches = accepted.len(), error = %reason, "journal group not committed");
                fail_all(accepted, &reason);
            }
        }
    }

    /// Apply the gap and fence rules; answer refused batches now and return the others.
    async fn admit(&self, pending: Vec<Pending>) -> Option<Vec<Pending>> {
        let unknown = self.unknown_streams(&pending);
        let mut known: HashMap<EstablishmentId, StreamState> = HashMap::new();
        if !unknown.is_empty() {
            let ids: Vec<Uuid> = unknown.iter().map(|id| id.0).collect();
            match self.backend.last_seqs(&ids).await {
                Ok(found) => {
                    for id in &unknown {
                        let last = found
                            .get(&id.0)
                            .map_or(0, |s| u64::try_from(*s).unwrap_or(0));
                        known.insert(*id, StreamState::Durable(last));
                    }
                }
                Err(e) => return fail_all_none(pending, &e.to_string()),
            }
        }
        let mut accepted = Vec::with_capacity(pending.len());
        for p in pending {
            let state = known
                .get(&p.establishment_id)
                .copied()
                .or_else(|| self.streams.get(p.establishment_id))
                .unwrap_or(StreamState::Durable(0));
            if p.first_seq > 0 && state == StreamState::Durable(p.first_seq - 1) {
                known.insert(p.establishment_id, StreamState::Durable(p.last_seq));
                accepted.push(p);
            } else {
                tracing::warn!(establishment_id = %p.establishment_id, seq = p.first_seq, ?state, "journal append fenced");
                known.insert(p.establishment_id, StreamState::Fenced);
                self.streams.set(p.establishment_id, StreamState::Fenced);
                fence(p);
            }
        }
        Some(accepted)
    }

    /// Establishments the writer has no state for whose batch does not start at seq 1:
    /// their last durable seq must be read from the store.
    fn unknown_streams(&self, pending: &[Pending]) -> Vec<EstablishmentId> {
        let mut seen = HashSet::new();
        pending
            .iter()
            .filter(|p| p.first_seq > 1 && self.streams.get(p.establishment_id).is_none())
            .filter(|p| seen.insert(p.establishment_id))
            .map(|p| p.establishment_id)
            .collect()
    }

    /// The group committed: losers are fenced, every other batch is durable.
    fn settle(&self, accepted: Vec<Pending>, losers: &Losers) {
        for p in accepted {
            if losers.contains(&p.establishment_id.0) {
                tracing::warn!(establishment_id = %p.establishment_id, seq = p.first_seq, "journal append lost to another writer");
                self.streams.set(p.establishment_id, StreamState::Fenced);
                fence(p);
            } else {
                self.streams.mark_durable(p.establishment_id, p.last_seq);
                let _ = p.reply.send(Ok(()));
            }
        }
    }

    /// The overlap constraint refused the group: write each establishment's batches on
    /// their own, so that only the offender fails.
    async fn isolate(&self, accepted: Vec<Pending>, reason: &str) {
        tracing::warn!(batches = accepted.len(), error = %reason, "overlap in group; writing establishments one by one");
        let mut by_est: Vec<(EstablishmentId, Vec<Pending>)> = Vec::new();
        for p in accepted {
            match by_est.iter_mut().find(|(id, _)| *id == p.establishment_id) {
                Some((_, list)) => list.push(p),
                None => by_est.push((p.establishment_id, vec![p])),
            }
        }
        for (id, batches) in by_est {
            let group = build_group(&batches);
            match self.backend.write_group(&group).await {
                Ok(losers) => self.settle(batches, &losers),
                Err(WriteError::Overlap(reason)) => {
                    tracing::error!(establishment_id = %id, error = %reason, "establishment's bookings overlap stored ones; fenced");
                    self.streams.set(id, StreamState::Fenced);
                    batches.into_iter().for_each(fence);
                }
                Err(
                    WriteError::Unavailable(reason)
                    | WriteError::Unreachable(reason)
                    | WriteError::NoConnection(reason),
                ) => fail_all(batches, &reason),
            }
        }
    }
}

fn fence(p: Pending) {
    let _ = p.reply.send(Err(JournalError::Fenced {
        establishment_id: p.establishment_id,
        seq: p.first_seq,
    }));
}

fn fail_all(pending: Vec<Pending>, reason: &str) {
    for p in pending {
        let _ = p
            .reply
            .send(Err(JournalError::Unavailable(reason.to_string())));
    }
}

fn fail_all_none(pending: Vec<Pending>, reason: &str) -> Option<Vec<Pending>> {
    tracing::warn!(batches = pending.len(), error = %reason, "journal group not admitted");
    fail_all(pending, reason);
    None
}

/// Put the batches' rows into one group, keeping one read-model row per item (the last:
/// one statement cannot touch a row twice; on Postgres the overlap constraint is checked
/// at commit, so the order of rows within the group does not matter).
fn build_group(batches: &[Pending]) -> Group {
    let mut group = Group::default();
    let mut latest: HashMap<Uuid, usize> = HashMap::new();
    let mut items: Vec<Option<ItemRow>> = Vec::new();
    for p in batches {
        group.events.extend(p.rows.events.iter().cloned());
        for projection in &p.rows.projections {
            match projection {
                Projection::Upsert(row) => {
                    if let Some(i) = latest.insert(row.id, items.len()) {
                        items[i] = None;
                    }
                    items.push(Some(row.clone()));
                }
                Projection::HoldConverted(hold) => {
                    group.converted_holds.push((p.establishment_id.0, *hold));
                }
            }
        }
    }
    group.items = items.into_iter().flatten().collect();
    // One order for every writer, so that two writers on one database (split brain) take
    // row locks in the same order and do not deadlock each other.
    group
        .events
        .sort_unstable_by_key(|r| (r.establishment_id, r.seq));
    group.items.sort_unstable_by_key(|r| r.id);
    group
}

/// Turn a batch into a [`Pending`] with its reply channel.
pub(crate) fn pending(
    batch: AppendBatch,
    rows: EncodedBatch,
) -> (Pending, oneshot::Receiver<Result<(), JournalError>>) {
    let (reply, rx) = oneshot::channel();
    let p = Pending {
        establishment_id: batch.establishment_id,
        first_seq: batch.first_seq(),
        last_seq: batch.last_seq(),
        rows,
        reply,
    };
    (p, rx)
}
