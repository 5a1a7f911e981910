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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use navaro_engine::store::{AppendBatch, JournalError};
use navaro_protocol::EstablishmentId;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;

use crate::backend::{Backend, Group, Losers, WriteError};
use crate::fence::WriterFence;
use crate::rows::{EncodedBatch, ItemRow, Projection};

/// One batch on its way to the writer.
pub(crate) struct Pending {
    pub establishment_id: EstablishmentId,
    pub first_seq: u64,
    pub last_seq: u64,
    pub rows: EncodedBatch,
    pub reply: oneshot::Sender<Result<(), JournalError>>,
    /// When `append` handed it over.
    pub handed_over: std::time::Instant,
}

/// The instant [`Backlog`] counts from.
static ORIGIN: std::sync::LazyLock<std::time::Instant> =
    std::sync::LazyLock::new(std::time::Instant::now);

/// When the first batch of the group a writer is gathering or committing was handed
/// over. Batches reach a writer in order and it answers a group before taking the next,
/// so no batch in its shard waits longer: the lag it gives is an upper bound, by at most
/// the group's spread, once some of the group was answered early (fenced, or written
/// apart after an overlap). One atomic, read by every command ([`Journal::lag`]).
#[derive(Default)]
pub(crate) struct Backlog {
    /// Microseconds from [`ORIGIN`] to that batch's hand-over, plus one; 0 when idle.
    since: AtomicU64,
}

/// A writer's hold on its [`Backlog`]: cleared on drop.
struct Holding<'a>(&'a Backlog);

impl<'a> Holding<'a> {
    fn taken(backlog: &'a Backlog, handed_over: std::time::Instant) -> Holding<'a> {
        backlog.taken(handed_over);
        Holding(backlog)
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0.answered();
    }
}

impl Backlog {
    fn taken(&self, handed_over: std::time::Instant) {
        let us = handed_over.saturating_duration_since(*ORIGIN).as_micros();
        self.since.store(
            u64::try_from(us).unwrap_or(u64::MAX - 1) + 1,
            Ordering::Release,
        );
    }

    fn answered(&self) {
        self.since.store(0, Ordering::Release);
    }

    /// How long that batch has waited; zero when the writer waits for work (without
    /// reading the clock).
    pub fn lag(&self) -> Duration {
        if self.since.load(Ordering::Acquire) == 0 {
            return Duration::ZERO;
        }
        self.lag_at(std::time::Instant::now())
    }

    fn lag_at(&self, now: std::time::Instant) -> Duration {
        match self.since.load(Ordering::Acquire) {
            0 => Duration::ZERO,
            since => now
                .saturating_duration_since(*ORIGIN)
                .saturating_sub(Duration::from_micros(since - 1)),
        }
    }
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

/// How many times a group is offered to the store while it finds every connection busy
/// (the pool's acquire timeout ran out while the database answered other calls: nothing
/// was sent) before its callers are told `overloaded`. Each attempt has already waited
/// out the acquire timeout, so no pause comes between them. Failing at once made every
/// actor in the group restart from the store, closing its live feeds, for a write that
/// a moment later would have gone through; meanwhile the writer's lag grows and the
/// gateway sheds new writes with `503 overloaded`, which is the backpressure wanted.
const SATURATED_ATTEMPTS: u32 = 3;

/// No attempt starts this long after the first did: with the default 2 s acquire
/// timeout all three run (6 s in all), with a longer one fewer, so that a caller's
/// answer still comes well within the HTTP request timeout (10 s by default).
const SATURATED_RETRY_BUDGET: Duration = Duration::from_secs(5);

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
    pub backlog: Arc<Backlog>,
    /// On a clustered node, the epochs to name in each commit and the lease to check
    /// before it; `None` on a single node.
    pub fence: Option<WriterFence>,
}

impl Writer {
    /// Run until every sender is gone.
    pub async fn run(self, mut rx: mpsc::Receiver<Pending>) {
        let mut pace = Pace::default();
        let mut next = rx.recv().await;
        while let Some(first) = next {
            // Cleared when the group is answered, or if this task panics: a writer that
            // is gone must not leave every command refused.
            let holding = Holding::taken(&self.backlog, first.handed_over);
            let group = gather(self.limits, &mut pace, first, &mut rx).await;
            self.commit_group(group).await;
            next = match rx.try_recv() {
                // A batch already waits: it is the oldest now. No await comes between
                // clearing and taking it, so the lag does not read zero meanwhile.
                Ok(waiting) => Some(waiting),
                Err(mpsc::error::TryRecvError::Empty) => {
                    drop(holding);
                    rx.recv().await
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
        }
        tracing::debug!("journal writer stopped: no more senders");
    }

    async fn commit_group(&self, pending: Vec<Pending>) {
        let accepted = match self.admit(pending).await {
            Some(accepted) => accepted,
            None => return,
        };
        let accepted = self.check_fence(accepted);
        if accepted.is_empty() {
            return;
        }
        let group = self.group_of(&accepted);
        let (written, started) = self.write_group(&group).await;
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
            Err(failure) => {
                tracing::warn!(batches = accepted.len(), error = %failure, "journal group not committed");
                fail_all(accepted, &not_committed(failure));
            }
        }
    }

    /// Write `group`, offering it again while it finds every connection busy (see
    /// [`SATURATED_ATTEMPTS`]); with the instant the last attempt started.
    async fn write_group(&self, group: &Group) -> (Result<Losers, WriteError>, std::time::Instant) {
        // tokio's clock, which tests can pause.
        let first = Instant::now();
        let mut attempt = 1;
        loop {
            let started = std::time::Instant::now();
            // The store bounds the write by its call timeout (`StoreOptions::call_timeout`).
            match self.backend.write_group(group).await {
                Err(WriteError::Saturated(reason))
                    if attempt < SATURATED_ATTEMPTS && first.elapsed() < SATURATED_RETRY_BUDGET =>
                {
                    tracing::warn!(events = group.events.len(), attempt, error = %reason, "journal group found every connection busy; trying again");
                    metrics::counter!("navaro_journal_group_retries_total").increment(1);
                    attempt += 1;
                }
                written => return (written, started),
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
                Err(e) => return fail_all_none(pending, &e),
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
                fence_batch(p);
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

    /// On a clustered node: refuse everything while the node's lease is not safely
    /// current (its callers get `unavailable`, retriable; the actors restart and ask
    /// the gate again), and fence the batches of establishments it holds no epoch for.
    fn check_fence(&self, accepted: Vec<Pending>) -> Vec<Pending> {
        let Some(fence) = &self.fence else {
            return accepted;
        };
        if !fence.gate.writable() {
            tracing::warn!(
                batches = accepted.len(),
                "cluster lease not current; nothing committed"
            );
            metrics::counter!("navaro_cluster_writes_refused_total", "reason" => "lease")
                .increment(1);
            fail_all(
                accepted,
                &JournalError::Unavailable("this node's cluster lease is not current".into()),
            );
            return Vec::new();
        }
        let mut kept = Vec::with_capacity(accepted.len());
        for p in accepted {
            if fence.epochs.get(p.establishment_id).is_some() {
                kept.push(p);
            } else {
                tracing::warn!(establishment_id = %p.establishment_id, "no ownership epoch held; append fenced");
                self.streams.set(p.establishment_id, StreamState::Fenced);
                fence_batch(p);
            }
        }
        kept
    }

    /// The group of these batches, with the epochs held for their establishments on a
    /// clustered node.
    fn group_of(&self, batches: &[Pending]) -> Group {
        let mut group = build_group(batches);
        if let Some(fence) = &self.fence {
            let mut seen = HashSet::new();
            group.fence = batches
                .iter()
                .filter(|p| seen.insert(p.establishment_id))
                .filter_map(|p| {
                    let epoch = fence.epochs.get(p.establishment_id)?;
                    Some((p.establishment_id.0, epoch))
                })
                .collect();
        }
        group
    }

    /// The group committed: losers are fenced, every other batch is durable. On a
    /// clustered node a loser may have lost its epoch (another node claimed it): its
    /// epoch is forgotten, so nothing more is written for it until it is claimed again.
    fn settle(&self, accepted: Vec<Pending>, losers: &Losers) {
        for p in accepted {
            if losers.contains(&p.establishment_id.0) {
                if let Some(fence) = &self.fence {
                    fence.epochs.forget(p.establishment_id);
                }
                tracing::warn!(establishment_id = %p.establishment_id, seq = p.first_seq, "journal append lost to another writer");
                self.streams.set(p.establishment_id, StreamState::Fenced);
                fence_batch(p);
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
            let group = self.group_of(&batches);
            match self.write_group(&group).await.0 {
                Ok(losers) => self.settle(batches, &losers),
                Err(WriteError::Overlap(reason)) => {
                    tracing::error!(establishment_id = %id, error = %reason, "establishment's bookings overlap stored ones; fenced");
                    self.streams.set(id, StreamState::Fenced);
                    batches.into_iter().for_each(fence_batch);
                }
                Err(failure) => fail_all(batches, &not_committed(failure)),
            }
        }
    }
}

fn fence_batch(p: Pending) {
    let _ = p.reply.send(Err(JournalError::Fenced {
        establishment_id: p.establishment_id,
        seq: p.first_seq,
    }));
}

/// What the callers of a group that did not commit are told (an overlap is handled
/// apart, by isolating the group's establishments).
fn not_committed(failure: WriteError) -> JournalError {
    match failure {
        WriteError::Saturated(reason) => JournalError::Overloaded(reason),
        other => JournalError::Unavailable(other.to_string()),
    }
}

fn fail_all(pending: Vec<Pending>, failure: &JournalError) {
    for p in pending {
        let _ = p.reply.send(Err(failure.clone()));
    }
}

/// The last seqs of a group's new streams could not be read: nothing is written, and
/// its callers are told `overloaded` when every connection was busy, else `unavailable`.
fn fail_all_none(pending: Vec<Pending>, error: &sqlx::Error) -> Option<Vec<Pending>> {
    tracing::warn!(batches = pending.len(), error = %error, "journal group not admitted");
    let failure =
        crate::backend::overloaded_or(error, JournalError::Overloaded, JournalError::Unavailable);
    fail_all(pending, &failure);
    None
}

/// Take what is waiting, up to `max_events`. When appends have been arriving faster than
/// one per `max_wait` and the last group was small, linger until `max_wait` after the
/// first for more: at 8,000 mix req/s on the 2-core box a 2 ms linger made groups of 3.3
/// events instead of 1.1 and cut Postgres's CPU per request from 43 to 24 µs, for 2 ms
/// more on a write's latency. When they arrive more slowly, lingering would most likely
/// catch nothing and only delay the one caller. When the last group was already big
/// (callers that wait for their commit before sending again come back all at once),
/// its commit was already shared and lingering only idles the writer: 400 such callers
/// made 25-26k durable bookings/s with a plain 2 ms linger against 27-29k without.
async fn gather(
    limits: GroupLimits,
    pace: &mut Pace,
    first: Pending,
    rx: &mut mpsc::Receiver<Pending>,
) -> Vec<Pending> {
    let now = Instant::now();
    pace.record(now);
    let linger =
        pace.last_group_events < LINGER_BELOW_EVENTS && pace.expected_within(limits.max_wait);
    let deadline = now + limits.max_wait;
    let mut events = first.rows.events.len();
    let mut group = vec![first];
    while events < limits.max_events {
        let next = match rx.try_recv() {
            Ok(p) => p,
            Err(mpsc::error::TryRecvError::Empty) if linger => {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(p)) => p,
                    _ => break,
                }
            }
            Err(_) => break,
        };
        pace.record(Instant::now());
        events += next.rows.events.len();
        group.push(next);
    }
    pace.last_group_events = events;
    group
}

/// A writer lingers only after a group of fewer events than this. A commit's fixed cost
/// (about 0.24 ms of Postgres CPU, against 0.14 ms per row: fitted from the per-request
/// CPU with groups of 2 and of 3.75) is already mostly shared by 8.
const LINGER_BELOW_EVENTS: usize = 8;

/// How busy one writer is: how fast appends reach it (a moving average of the gaps
/// between them, each new gap weighing 1/8) and how big its last group was. Appends
/// taken together from the queue count as gaps of zero, so under load the average is
/// the commit time over the group size, the true mean gap.
#[derive(Debug, Default)]
struct Pace {
    last: Option<Instant>,
    /// Seconds; `None` until two appends have been seen.
    mean_gap: Option<f64>,
    /// Events in the writer's last group.
    last_group_events: usize,
}

impl Pace {
    fn record(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let gap = now.saturating_duration_since(last).as_secs_f64();
            self.mean_gap = Some(match self.mean_gap {
                Some(mean) => mean + (gap - mean) / 8.0,
                None => gap,
            });
        }
        self.last = Some(now);
    }

    /// Whether another append is expected within `window`.
    fn expected_within(&self, window: Duration) -> bool {
        !window.is_zero()
            && self
                .mean_gap
                .is_some_and(|mean| mean < window.as_secs_f64())
    }
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
                Projection::Listing(change) => group.listings.push(change.clone()),
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
        handed_over: std::time::Instant::now(),
    };
    (p, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch with no rows (gathering only counts batches and events); its reply
    /// receiver is dropped, as no test here waits for a commit.
    fn pending_batch() -> Pending {
        Pending {
            establishment_id: EstablishmentId(Uuid::nil()),
            first_seq: 1,
            last_seq: 1,
            rows: EncodedBatch {
                events: Vec::new(),
                projections: Vec::new(),
            },
            reply: oneshot::channel().0,
            handed_over: std::time::Instant::now(),
        }
    }

    #[test]
    fn the_backlog_is_the_age_of_the_batch_taken_until_it_is_answered() {
        let backlog = Backlog::default();
        let t = *ORIGIN + Duration::from_secs(1);
        assert_eq!(backlog.lag_at(t), Duration::ZERO, "idle");
        backlog.taken(t);
        assert_eq!(backlog.lag_at(t), Duration::ZERO);
        assert_eq!(
            backlog.lag_at(t + Duration::from_millis(1500)),
            Duration::from_millis(1500)
        );
        backlog.answered();
        assert_eq!(backlog.lag_at(t + Duration::from_secs(9)), Duration::ZERO);
        // A batch handed over before the origin counts from it.
        backlog.taken(*ORIGIN);
        assert_eq!(
            backlog.lag_at(*ORIGIN + Duration::from_millis(7)),
            Duration::from_millis(7)
        );
    }

    /// Send a batch every `gap`, `count` times.
    fn send_every(tx: &mpsc::Sender<Pending>, gap: Duration, count: usize) {
        let tx = tx.clone();
        tokio::spawn(async move {
            for _ in 0..count {
                tokio::time::sleep(gap).await;
                tx.try_send(pending_batch()).ok().unwrap();
            }
        });
    }

    #[test]
    fn a_group_refused_for_busy_connections_is_an_overload_and_the_rest_unavailable() {
        assert_eq!(
            not_committed(WriteError::Saturated("pool timed out".into())),
            JournalError::Overloaded("pool timed out".into())
        );
        for failure in [
            WriteError::NoConnection("pool timed out".into()),
            WriteError::Unreachable("reset".into()),
            WriteError::Unavailable("disk full".into()),
        ] {
            let reason = failure.to_string();
            assert_eq!(not_committed(failure), JournalError::Unavailable(reason));
        }
    }

    /// A writer over `fake`, running; what it is sent and its one batch's answer.
    async fn answer_of_one_batch(fake: &Arc<crate::fake::Fake>) -> Result<(), JournalError> {
        let writer = Writer {
            backend: fake.clone(),
            streams: Streams::default(),
            limits: GroupLimits {
                max_events: 1024,
                max_wait: Duration::ZERO,
            },
            backlog: Arc::default(),
            fence: None,
        };
        let (tx, rx) = mpsc::channel(4);
        let running = tokio::spawn(writer.run(rx));
        let (reply, answer) = oneshot::channel();
        let batch = Pending {
            reply,
            ..pending_batch()
        };
        tx.send(batch).await.ok().unwrap();
        let answer = answer.await.unwrap();
        drop(tx);
        running.await.unwrap();
        answer
    }

    #[tokio::test]
    async fn a_group_that_found_every_connection_busy_is_offered_again() {
        let busy = || WriteError::Saturated("pool timed out".into());
        // Twice busy, then written: the caller is told it is durable.
        let fake = crate::fake::Fake::new();
        fake.fail_next_write(busy());
        fake.fail_next_write(busy());
        assert_eq!(answer_of_one_batch(&fake).await, Ok(()));
        assert_eq!(fake.calls(), 3);

        // Busy at every attempt: after the third the caller is told `overloaded`.
        let fake = crate::fake::Fake::new();
        for _ in 0..4 {
            fake.fail_next_write(busy());
        }
        assert_eq!(
            answer_of_one_batch(&fake).await,
            Err(JournalError::Overloaded("pool timed out".into()))
        );
        assert_eq!(fake.calls(), 3);

        // Any other failure is not offered again: its outcome may be unknown.
        let fake = crate::fake::Fake::new();
        fake.fail_next_write(WriteError::Unreachable("no answer".into()));
        assert_eq!(
            answer_of_one_batch(&fake).await,
            Err(JournalError::Unavailable("no answer".into()))
        );
        assert_eq!(fake.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_attempt_begins_past_the_budget() {
        // Each attempt waits out a 3 s acquire timeout: the second ends past the 5 s
        // budget, so no third begins.
        let fake = crate::fake::Fake::new();
        for _ in 0..3 {
            fake.fail_next_write_after(
                WriteError::Saturated("pool timed out".into()),
                Duration::from_secs(3),
            );
        }
        let started = Instant::now();
        assert_eq!(
            answer_of_one_batch(&fake).await,
            Err(JournalError::Overloaded("pool timed out".into()))
        );
        assert_eq!(fake.calls(), 2);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(6) && took < Duration::from_secs(7),
            "two attempts of 3 s: {took:?}"
        );
    }

    #[test]
    fn appends_are_expected_only_when_they_come_faster_than_the_window() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let window = Duration::from_millis(2);
        let mut pace = Pace::default();
        pace.record(t0);
        assert!(!pace.expected_within(window), "one append says nothing");
        for n in 1..=20 {
            pace.record(ms(n));
        }
        assert!(pace.expected_within(window), "one per ms");
        assert!(!pace.expected_within(Duration::ZERO), "zero never lingers");
        // A quiet spell: one gap of a second ends the lingering at once.
        pace.record(ms(1020));
        assert!(!pace.expected_within(window));
    }

    /// Send a group's first batch and `later` more, one a ms after it; gather the group.
    /// Returns its size and how long gathering took.
    async fn one_group(
        pace: &mut Pace,
        tx: &mpsc::Sender<Pending>,
        rx: &mut mpsc::Receiver<Pending>,
        later: usize,
    ) -> (usize, Duration) {
        let limits = GroupLimits {
            max_events: 1024,
            max_wait: Duration::from_millis(5),
        };
        tx.try_send(pending_batch()).ok().unwrap();
        let first = rx.recv().await.unwrap();
        send_every(tx, Duration::from_millis(1), later);
        let started = Instant::now();
        let group = gather(limits, pace, first, rx).await;
        (group.len(), started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_writer_lingers_for_the_window_and_a_quiet_one_does_not() {
        let (tx, mut rx) = mpsc::channel(16);
        let window = Duration::from_millis(5);

        // Quiet: the first append of a writer goes alone, however soon the next comes.
        let mut pace = Pace::default();
        let (size, took) = one_group(&mut pace, &tx, &mut rx, 1).await;
        assert_eq!((size, took), (1, Duration::ZERO), "no linger");
        let _later = rx.recv().await.unwrap();

        // Busy: appends every ms; the next group waits its 5 ms and takes what came.
        pace.mean_gap = Some(0.001);
        let (size, took) = one_group(&mut pace, &tx, &mut rx, 3).await;
        assert_eq!(size, 4, "the first and the three that came within 5 ms");
        assert!(
            took >= window && took < window + Duration::from_millis(2),
            "lingered {took:?}"
        );

        // Busy, but the last group was big: its callers come back together, so the
        // group goes with what is there.
        pace.mean_gap = Some(0.001);
        pace.last_group_events = LINGER_BELOW_EVENTS;
        let (size, took) = one_group(&mut pace, &tx, &mut rx, 1).await;
        assert_eq!(
            (size, took),
            (1, Duration::ZERO),
            "no linger after a big group"
        );
    }
}
