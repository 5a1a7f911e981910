//! The cluster's epoch fence (migration 0010) on a real Postgres: a node that loads an
//! establishment claims it (bumping its epoch), and a node whose epoch is no longer
//! current commits nothing for it. A missing Postgres fails these tests.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use futures::FutureExt;
use futures::future::BoxFuture;
use navaro_engine::store::JournalError;
use navaro_persistence::{ClusterFence, OwnershipGate, StoreError, Stores};
use navaro_protocol::EstablishmentId;
use sqlx::Connection;

/// A gate whose answers the test sets.
#[derive(Default)]
struct Switch {
    refuse: AtomicBool,
    lapsed: AtomicBool,
}

impl OwnershipGate for Switch {
    fn admit(&self, _id: EstablishmentId) -> BoxFuture<'_, Result<(), String>> {
        let refuse = self.refuse.load(Ordering::SeqCst);
        async move {
            if refuse {
                Err("owned by another node".to_owned())
            } else {
                Ok(())
            }
        }
        .boxed()
    }

    fn writable(&self) -> bool {
        !self.lapsed.load(Ordering::SeqCst)
    }
}

async fn node(db: &PgDb, name: &str) -> (Stores, Arc<Switch>) {
    let gate = Arc::new(Switch::default());
    let fence = ClusterFence {
        node_id: name.to_owned(),
        gate: gate.clone(),
    };
    let stores = navaro_persistence::open_clustered(&db.url(), test_options(), Some(fence))
        .await
        .expect("open clustered stores");
    (stores, gate)
}

async fn owner_row(db: &PgDb, est: EstablishmentId) -> Option<(i64, String)> {
    let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    sqlx::query_as("SELECT epoch, node FROM owners WHERE establishment_id = $1")
        .bind(est.0)
        .fetch_optional(&mut conn)
        .await
        .unwrap()
}

fn fenced(result: &Result<(), JournalError>) -> bool {
    matches!(result, Err(JournalError::Fenced { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_owner_commits_nothing_once_another_node_claimed() {
    let db = PgDb::create().await;
    let (a, _) = node(&db, "a").await;
    let (b, _) = node(&db, "b").await;
    let est = new_establishment();

    assert!(a.journal.load(est).await.unwrap().is_none());
    assert_eq!(owner_row(&db, est).await, Some((1, "a".to_owned())));
    a.journal.append(batch(est, 1, 3)).await.unwrap();

    // b takes over: it sees everything a committed before the claim.
    let seen = b.journal.load(est).await.unwrap().unwrap();
    assert_eq!(seen.events.len(), 3);
    assert_eq!(owner_row(&db, est).await, Some((2, "b".to_owned())));

    // a's next commit (seq 4, which no one holds yet: only the epoch stops it) is refused,
    // and so is every later one until it claims again.
    let late = a.journal.append(batch(est, 4, 4)).await;
    assert!(
        fenced(&late),
        "a stale owner's commit must be refused: {late:?}"
    );
    assert_eq!(db.stored_seqs(est.0).await, [1, 2, 3]);
    b.journal.append(batch(est, 4, 5)).await.unwrap();
    assert_eq!(db.stored_seqs(est.0).await, [1, 2, 3, 4, 5]);
    let again = a.journal.append(batch(est, 6, 6)).await;
    assert!(fenced(&again), "{again:?}");
    assert_eq!(db.stored_seqs(est.0).await, [1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fence_refuses_only_the_stale_establishments_of_a_group() {
    let db = PgDb::create().await;
    let (a, _) = node(&db, "a").await;
    let (b, _) = node(&db, "b").await;
    let ests: Vec<EstablishmentId> = (0..8).map(|_| new_establishment()).collect();
    for est in &ests {
        a.journal.load(*est).await.unwrap();
    }
    // b claims every other one; a then writes all eight at once (one or a few groups).
    for est in ests.iter().step_by(2) {
        b.journal.load(*est).await.unwrap();
    }
    let results =
        futures::future::join_all(ests.iter().map(|est| a.journal.append(batch(*est, 1, 2)))).await;
    for (i, (est, result)) in ests.iter().zip(&results).enumerate() {
        if i % 2 == 0 {
            assert!(fenced(result), "claimed by b: {result:?}");
            assert!(db.stored_seqs(est.0).await.is_empty());
        } else {
            assert_eq!(result, &Ok(()));
            assert_eq!(db.stored_seqs(est.0).await, [1, 2]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_claims_let_exactly_one_epoch_commit() {
    let db = PgDb::create().await;
    let (a, _) = node(&db, "a").await;
    let (b, _) = node(&db, "b").await;
    for _ in 0..20 {
        let est = new_establishment();
        let (la, lb) = tokio::join!(a.journal.load(est), b.journal.load(est));
        assert!(la.unwrap().is_none() && lb.unwrap().is_none());
        let (ra, rb) = tokio::join!(
            a.journal.append(batch(est, 1, 1)),
            b.journal.append(batch(est, 1, 1))
        );
        let ok = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "exactly one claim commits: {ra:?} {rb:?}");
        assert!(fenced(&ra) || fenced(&rb));
        let (epoch, node) = owner_row(&db, est).await.unwrap();
        assert_eq!(epoch, 2, "two claims, two epochs");
        // The winner is the node holding the current epoch.
        assert_eq!(ra.is_ok(), node == "a");
        assert_eq!(db.stored_seqs(est.0).await, [1]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_gate_or_a_lapsed_lease_makes_nothing_durable() {
    let db = PgDb::create().await;
    let (a, gate) = node(&db, "a").await;
    let est = new_establishment();

    gate.refuse.store(true, Ordering::SeqCst);
    let refused = a.journal.load(est).await;
    assert!(
        matches!(refused, Err(JournalError::Unavailable(_))),
        "{refused:?}"
    );
    assert_eq!(
        owner_row(&db, est).await,
        None,
        "a refused load claims nothing"
    );

    gate.refuse.store(false, Ordering::SeqCst);
    a.journal.load(est).await.unwrap();
    gate.lapsed.store(true, Ordering::SeqCst);
    let lapsed = a.journal.append(batch(est, 1, 1)).await;
    assert!(
        matches!(lapsed, Err(JournalError::Unavailable(_))),
        "{lapsed:?}"
    );
    assert!(db.stored_seqs(est.0).await.is_empty());

    // An establishment never claimed (no load) is never written.
    gate.lapsed.store(false, Ordering::SeqCst);
    let other = new_establishment();
    let unclaimed = a.journal.append(batch(other, 1, 1)).await;
    assert!(fenced(&unclaimed), "{unclaimed:?}");
    assert!(db.stored_seqs(other.0).await.is_empty());
}

#[tokio::test]
async fn a_cluster_on_sqlite_is_refused() {
    let db = SqliteDb::create().await;
    let fence = ClusterFence {
        node_id: "a".to_owned(),
        gate: Arc::new(Switch::default()),
    };
    let opened = navaro_persistence::open_clustered(&db.url(), test_options(), Some(fence)).await;
    assert!(
        matches!(&opened, Err(StoreError::Settings(m)) if m.contains("Postgres")),
        "{:?}",
        opened.err()
    );
}
