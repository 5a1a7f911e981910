//! [`SqlJournal`]: the [`Journal`] on Postgres or SQLite, in front of the group-commit
//! writer.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use navaro_engine::store::{AppendBatch, Journal, JournalError, Recovered, Snapshot};
use navaro_protocol::{EstablishmentId, EventRecord};
use tokio::sync::mpsc;

use crate::backend::Backend;
use crate::fence::{ClusterFence, Epochs};
use crate::rows::{decode_events, encode_batch, seq_to_sql};
use crate::writer::{Backlog, Pending, StreamState, Streams, pending};

/// Events read per query while loading, so one establishment with a long tail does not
/// hold one huge result in memory twice.
const LOAD_PAGE_EVENTS: i64 = 10_000;

pub(crate) struct SqlJournal {
    pub backend: Arc<dyn Backend>,
    pub streams: Streams,
    /// One sender per writer shard; an establishment always goes to the same shard, so
    /// its batches stay in order.
    pub shards: Vec<mpsc::Sender<Pending>>,
    /// Each shard's writer's [`Backlog`], index-aligned with `shards`.
    pub backlogs: Vec<Arc<Backlog>>,
    /// On a clustered node: the gate asked before an establishment is loaded, and the
    /// epochs its claims got (shared with the writers).
    pub cluster: Option<(ClusterFence, Epochs)>,
}

/// The shard of an establishment: from the id's random low bits (v7 ids begin with a
/// timestamp, which would put establishments created together on one shard).
fn shard_of(id: EstablishmentId, shards: usize) -> usize {
    (id.0.as_u128() as u64 % shards.max(1) as u64) as usize
}

fn unavailable(e: impl std::fmt::Display) -> JournalError {
    JournalError::Unavailable(e.to_string())
}

/// A failed read or snapshot write: `overloaded` when the pool was saturated (the store
/// is up and busy), else `unavailable`.
fn store_error(e: sqlx::Error) -> JournalError {
    crate::backend::overloaded_or(&e, JournalError::Overloaded, JournalError::Unavailable)
}

fn contiguous(batch: &AppendBatch) -> bool {
    batch
        .records
        .windows(2)
        .all(|w| w[0].seq.checked_add(1) == Some(w[1].seq))
}

impl SqlJournal {
    /// Hand a batch to the writer now, so batches reach it in the order `append` was
    /// called; the returned future only waits for the answer.
    fn enqueue(
        &self,
        batch: AppendBatch,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<(), JournalError>>, JournalError> {
        if !contiguous(&batch) {
            self.streams
                .set(batch.establishment_id, StreamState::Fenced);
            return Err(JournalError::Fenced {
                establishment_id: batch.establishment_id,
                seq: batch.first_seq(),
            });
        }
        let rows = encode_batch(batch.establishment_id, &batch.records).map_err(unavailable)?;
        let (p, rx) = pending(batch, rows);
        let shard = &self.shards[shard_of(p.establishment_id, self.shards.len())];
        shard.try_send(p).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => unavailable("journal writer queue is full"),
            mpsc::error::TrySendError::Closed(_) => unavailable("journal writer stopped"),
        })?;
        Ok(rx)
    }

    /// On a clustered node, take the establishment over before reading it: the gate
    /// must admit it, then the claim bumps its epoch in Postgres. Everything another
    /// node committed before the claim is read below; nothing it commits after is
    /// accepted (migration 0010).
    async fn claim(&self, id: EstablishmentId) -> Result<(), JournalError> {
        let Some((fence, epochs)) = &self.cluster else {
            return Ok(());
        };
        fence
            .gate
            .admit(id)
            .await
            .map_err(|why| JournalError::Unavailable(format!("not this node's to load: {why}")))?;
        let epoch = self
            .backend
            .claim_owner(id.0, &fence.node_id)
            .await
            .map_err(store_error)?;
        epochs.set(id, epoch);
        tracing::info!(establishment_id = %id, epoch, node = %fence.node_id, "establishment claimed");
        metrics::counter!("navaro_cluster_claims_total").increment(1);
        Ok(())
    }

    async fn load_now(&self, id: EstablishmentId) -> Result<Option<Recovered>, JournalError> {
        self.claim(id).await?;
        let snapshot =
            self.backend
                .snapshot(id.0)
                .await
                .map_err(store_error)?
                .map(|(seq, state)| Snapshot {
                    seq: u64::try_from(seq).unwrap_or(0),
                    state,
                });
        let after = snapshot.as_ref().map_or(0, |s| s.seq);
        let events = self.read_all_after(id, after).await?;
        if snapshot.is_none() && events.is_empty() {
            self.streams.set(id, StreamState::Durable(0));
            return Ok(None);
        }
        let last = events.last().map_or(after, |r| r.seq);
        self.streams.set(id, StreamState::Durable(last));
        Ok(Some(Recovered { snapshot, events }))
    }

    async fn read_all_after(
        &self,
        id: EstablishmentId,
        after: u64,
    ) -> Result<Vec<EventRecord>, JournalError> {
        let mut events = Vec::new();
        let mut since = after;
        loop {
            let page = self.read_page(id, since, LOAD_PAGE_EVENTS).await?;
            let full = page.len() as i64 == LOAD_PAGE_EVENTS;
            since = page.last().map_or(since, |r| r.seq);
            events.extend(page);
            if !full {
                return Ok(events);
            }
        }
    }

    async fn read_page(
        &self,
        id: EstablishmentId,
        since: u64,
        limit: i64,
    ) -> Result<Vec<EventRecord>, JournalError> {
        let rows = self
            .backend
            .events_after(id.0, seq_to_sql(since), limit)
            .await
            .map_err(store_error)?;
        decode_events(id, since, rows)
    }
}

impl Journal for SqlJournal {
    fn append(&self, batch: AppendBatch) -> BoxFuture<'static, Result<(), JournalError>> {
        if batch.records.is_empty() {
            return futures::future::ready(Ok(())).boxed();
        }
        let id = batch.establishment_id;
        match self.enqueue(batch) {
            Ok(rx) => async move {
                rx.await.unwrap_or_else(|_| {
                    tracing::error!(establishment_id = %id, "journal writer dropped an append");
                    Err(unavailable("journal writer stopped"))
                })
            }
            .boxed(),
            Err(e) => futures::future::ready(Err(e)).boxed(),
        }
    }

    /// The most any shard's oldest unanswered batch has waited. A batch still in a
    /// shard's channel is younger than the one its writer holds.
    fn lag(&self) -> std::time::Duration {
        self.backlogs
            .iter()
            .map(|b| b.lag())
            .max()
            .unwrap_or_default()
    }

    fn load(&self, id: EstablishmentId) -> BoxFuture<'_, Result<Option<Recovered>, JournalError>> {
        self.load_now(id).boxed()
    }

    fn save_snapshot(
        &self,
        id: EstablishmentId,
        snapshot: Snapshot,
    ) -> BoxFuture<'_, Result<(), JournalError>> {
        async move {
            self.backend
                .save_snapshot(id.0, seq_to_sql(snapshot.seq), snapshot.state)
                .await
                .map_err(store_error)
        }
        .boxed()
    }

    fn read_after(
        &self,
        id: EstablishmentId,
        since: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, JournalError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_page(id, since, limit).boxed()
    }
}
