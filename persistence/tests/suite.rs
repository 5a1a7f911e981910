//! One test suite, run against Postgres (a fresh database per test) and SQLite (a temp
//! file per test). A missing Postgres fails the Postgres half; it is never skipped.

mod common;

use std::time::Duration;

use common::*;
use futures::future::join_all;
use navaro_engine::store::{AppendBatch, JournalError, Snapshot};
use navaro_persistence::{AccountError, MemberRole, Membership, StoreOptions, Stores, User};
use navaro_protocol::*;

/// Generate one `#[tokio::test]` per case for a backend.
macro_rules! suite {
    ($module:ident, $db:ty) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn append_load_snapshot_round_trip() {
                super::append_load_snapshot_round_trip::<$db>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn gaps_are_fenced_until_reload() {
                super::gaps_are_fenced_until_reload::<$db>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn two_writers_one_wins() {
                super::two_writers_one_wins::<$db>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stale_batch_keeps_nothing() {
                super::stale_batch_keeps_nothing::<$db>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn group_commit_many_callers() {
                super::group_commit_many_callers::<$db>(1).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn group_commit_sharded_writers() {
                super::group_commit_many_callers::<$db>(3).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn read_model_projection() {
                super::read_model_projection::<$db>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn listings_follow_the_journal_and_are_backfilled() {
                super::listings_follow_the_journal_and_are_backfilled::<$db>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_audit_log_is_append_only() {
                super::the_audit_log_is_append_only::<$db>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn corrupt_payload_is_reported() {
                super::corrupt_payload_is_reported::<$db>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn accounts() {
                super::accounts::<$db>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn migrate_is_idempotent() {
                super::migrate_is_idempotent::<$db>().await
            }
        }
    };
}

suite!(postgres, PgDb);
suite!(sqlite, SqliteDb);

async fn append_load_snapshot_round_trip<D: TestDb>() {
    let db = D::create().await;
    let stores = db.open().await;
    let est = new_establishment();
    assert!(stores.journal.load(est).await.unwrap().is_none());
    let first = batch(est, 1, 3);
    stores.journal.append(first.clone()).await.unwrap();
    stores.journal.append(batch(est, 4, 4)).await.unwrap();
    let loaded = stores.journal.load(est).await.unwrap().unwrap();
    assert_eq!(loaded.snapshot, None);
    assert_eq!(loaded.events[..3], first.records[..]);
    assert_eq!(
        loaded.events.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );

    let snap = Snapshot {
        seq: 3,
        state: b"state at 3".to_vec(),
    };
    stores
        .journal
        .save_snapshot(est, snap.clone())
        .await
        .unwrap();
    // An older snapshot never replaces a newer one.
    stores
        .journal
        .save_snapshot(
            est,
            Snapshot {
                seq: 2,
                state: b"old".to_vec(),
            },
        )
        .await
        .unwrap();
    stores.journal.append(batch(est, 5, 6)).await.unwrap();
    drop(stores);

    let reopened = db.open().await;
    let loaded = reopened.journal.load(est).await.unwrap().unwrap();
    assert_eq!(loaded.snapshot, Some(snap));
    assert_eq!(
        loaded.events.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [4, 5, 6]
    );
    let page = reopened.journal.read_after(est, 1, 2).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3]);
    assert!(
        reopened
            .journal
            .read_after(est, 6, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // `since` comes from clients: any value is answered, none panics.
    let beyond = reopened
        .journal
        .read_after(est, u64::MAX, 10)
        .await
        .unwrap();
    assert!(beyond.is_empty());
    let all = reopened
        .journal
        .read_after(est, 0, usize::MAX)
        .await
        .unwrap();
    assert_eq!(all.len(), 6);
    // The reloaded writer continues the stream.
    reopened.journal.append(batch(est, 7, 7)).await.unwrap();
    assert!(reopened.ready().await);
}

fn is_fenced(result: &Result<(), JournalError>, seq: u64) -> bool {
    matches!(result, Err(JournalError::Fenced { seq: s, .. }) if *s == seq)
}

async fn gaps_are_fenced_until_reload<D: TestDb>() {
    let db = D::create().await;
    let stores = db.open().await;
    let est = new_establishment();
    stores.journal.append(batch(est, 1, 2)).await.unwrap();
    let gap = stores.journal.append(batch(est, 4, 4)).await;
    assert!(is_fenced(&gap, 4), "{gap:?}");
    // Even a batch that would now fit is refused until the establishment is reloaded.
    assert!(is_fenced(&stores.journal.append(batch(est, 3, 3)).await, 3));
    let loaded = stores.journal.load(est).await.unwrap().unwrap();
    assert_eq!(loaded.events.len(), 2);
    stores.journal.append(batch(est, 3, 3)).await.unwrap();
    // A batch whose own seqs are not contiguous is refused too.
    let mut torn = batch(est, 4, 5);
    torn.records[1].seq = 7;
    assert!(is_fenced(&stores.journal.append(torn).await, 4));
    assert_eq!(db.stored_seqs(est.0).await, [1, 2, 3]);
    // A refused batch fences the establishment even when an earlier batch handed over
    // just before it (maybe in the same group) was made durable.
    let est2 = new_establishment();
    let fine = stores.journal.append(batch(est2, 1, 1));
    let gap = stores.journal.append(batch(est2, 3, 3));
    fine.await.unwrap();
    assert!(is_fenced(&gap.await, 3));
    let after = stores.journal.append(batch(est2, 2, 2)).await;
    assert!(is_fenced(&after, 2), "{after:?}");
    // A writer that never loaded it learns the last seq from the store.
    let other = db.open().await;
    other.journal.append(batch(est, 4, 4)).await.unwrap();
    assert!(is_fenced(&other.journal.append(batch(est, 6, 6)).await, 6));
}

async fn two_writers_one_wins<D: TestDb>() {
    let db = D::create().await;
    let (a, b) = (db.open().await, db.open().await);
    let est = new_establishment();
    assert!(a.journal.load(est).await.unwrap().is_none());
    assert!(b.journal.load(est).await.unwrap().is_none());
    a.journal.append(batch(est, 1, 1)).await.unwrap();
    assert!(is_fenced(&b.journal.append(batch(est, 1, 1)).await, 1));
    assert!(
        is_fenced(&b.journal.append(batch(est, 2, 2)).await, 2),
        "fenced writer keeps failing"
    );
    a.journal.append(batch(est, 2, 3)).await.unwrap();
    // B reloads and takes over; now A is the stale one.
    let loaded = b.journal.load(est).await.unwrap().unwrap();
    assert_eq!(loaded.events.len(), 3);
    let winner = batch(est, 4, 4);
    b.journal.append(winner.clone()).await.unwrap();
    assert!(is_fenced(&a.journal.append(batch(est, 4, 4)).await, 4));
    let stored = a.journal.read_after(est, 0, 100).await.unwrap();
    assert_eq!(
        stored.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(
        stored[3], winner.records[0],
        "the winner's record is the stored one"
    );
}

/// A stale batch that overlaps the durable seqs only in part keeps none of its rows: its
/// new seqs must not land after another writer's.
async fn stale_batch_keeps_nothing<D: TestDb>() {
    let db = D::create().await;
    let (a, b) = (db.open().await, db.open().await);
    let est = new_establishment();
    a.journal.append(batch(est, 1, 2)).await.unwrap();
    b.journal.load(est).await.unwrap();
    let bystander = new_establishment();
    a.journal.append(batch(est, 3, 3)).await.unwrap();
    // B thinks 2 is the last; its batch 3..=5 conflicts on 3 only. It shares a group with a
    // bystander, which must not suffer.
    let stale = b.journal.append(batch(est, 3, 5));
    let fine = b.journal.append(batch(bystander, 1, 2));
    assert!(is_fenced(&stale.await, 3));
    fine.await.unwrap();
    assert_eq!(db.stored_seqs(est.0).await, [1, 2, 3]);
    assert_eq!(db.stored_seqs(bystander.0).await, [1, 2]);
}

async fn group_commit_many_callers<D: TestDb>(writer_shards: usize) {
    const ESTABLISHMENTS: usize = 40;
    const APPENDS_EACH: u64 = 25;
    let db = D::create().await;
    let options = StoreOptions {
        writer_shards,
        ..test_options()
    };
    let stores = navaro_persistence::open(&db.url(), options).await.unwrap();
    let ests: Vec<_> = (0..ESTABLISHMENTS).map(|_| new_establishment()).collect();
    let tasks = ests.iter().map(|&est| {
        let journal = stores.journal.clone();
        tokio::spawn(async move {
            // Like an actor: hand every batch over at once, await the answers after.
            let answers: Vec<_> = (1..=APPENDS_EACH)
                .map(|s| journal.append(batch(est, s, s)))
                .collect();
            join_all(answers).await
        })
    });
    for answers in join_all(tasks).await {
        assert!(answers.unwrap().iter().all(|a| a.is_ok()));
    }
    for est in ests {
        let loaded = stores.journal.load(est).await.unwrap().unwrap();
        let seqs: Vec<u64> = loaded.events.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=APPENDS_EACH).collect::<Vec<_>>());
    }
}

async fn read_model_projection<D: TestDb>() {
    let db = D::create().await;
    let stores = db.open().await;
    check_projection(&stores).await;
    let est = new_establishment();
    let customer = UserId(new_id());
    let item = Item::new(est, StaffId(new_id()), customer, 0);
    let (hold_id, booking_id) = (HoldId(new_id()), BookingId(new_id()));
    let events = vec![
        record(
            1,
            Event::HoldPlaced {
                hold: item.hold(hold_id, 1),
            },
        ),
        record(
            2,
            Event::BookingConfirmed {
                booking: item.booking(booking_id, BookingStatus::Confirmed, 2),
                from_hold: Some(hold_id),
            },
        ),
    ];
    stores
        .journal
        .append(AppendBatch {
            establishment_id: est,
            records: events,
        })
        .await
        .unwrap();
    assert_eq!(
        db.item_status(hold_id.0).await.as_deref(),
        Some("converted")
    );
    assert_eq!(
        db.item_status(booking_id.0).await.as_deref(),
        Some("confirmed")
    );
    let ended = HoldId(new_id());
    let later = Item::new(est, item.staff, customer, 120);
    stores
        .journal
        .append(one(
            est,
            record(
                3,
                Event::HoldPlaced {
                    hold: later.hold(ended, 3),
                },
            ),
        ))
        .await
        .unwrap();
    assert_eq!(db.item_status(ended.0).await.as_deref(), Some("held"));
    let end = Event::HoldEnded {
        hold: later.hold(ended, 3),
        reason: HoldEnd::Expired,
    };
    stores
        .journal
        .append(one(est, record(4, end)))
        .await
        .unwrap();
    assert_eq!(db.item_status(ended.0).await.as_deref(), Some("ended"));
}

fn listed_settings(name: &str) -> EstablishmentSettings {
    EstablishmentSettings {
        name: name.to_owned(),
        timezone: "America/Sao_Paulo".to_owned(),
        slot_minutes: 15,
        min_notice_minutes: 0,
        horizon_days: 60,
        cancel_cutoff_minutes: 0,
        max_future_bookings_per_customer: 10,
        queue_max_length: 100,
        queue_no_show_grace_minutes: 5,
        listing: Listing {
            category: Some("salon".to_owned()),
            latitude: Some(Degrees(-23.55)),
            longitude: Some(Degrees(-46.63)),
            ..Listing::default()
        },
    }
}

fn text_query(text: &str) -> navaro_persistence::SearchQuery {
    navaro_persistence::SearchQuery {
        words: navaro_persistence::fold(text)
            .split(' ')
            .map(str::to_owned)
            .collect(),
        limit: 10,
        ..Default::default()
    }
}

/// The listing follows creation, settings, services and suspension, in the append's
/// transaction; a replayed change does nothing; an establishment created before the
/// listings existed (its row missing, its id queued as the migration queues them) gets
/// its listing from the journal when the stores open.
async fn listings_follow_the_journal_and_are_backfilled<D: TestDb>() {
    let db = D::create().await;
    let stores = db.open().await;
    let est = new_establishment();
    let owner = UserId(new_id());
    let service = Service {
        id: ServiceId(new_id()),
        name: "Escova Progressiva".to_owned(),
        duration_minutes: 30,
        price_cents: 100,
        currency: "BRL".to_owned(),
        buffer_after_minutes: 0,
        staff_ids: vec![],
    };
    let events = vec![
        record(
            1,
            Event::EstablishmentCreated {
                id: est,
                owner_id: owner,
                settings: listed_settings("Salão Ágata"),
            },
        ),
        record(2, Event::ServiceAdded { service }),
        // A second service: the listing keeps one a line, in order.
        record(
            3,
            Event::ServiceAdded {
                service: Service {
                    id: ServiceId(new_id()),
                    name: "Corte Feminino".to_owned(),
                    duration_minutes: 30,
                    price_cents: 100,
                    currency: "BRL".to_owned(),
                    buffer_after_minutes: 0,
                    staff_ids: vec![],
                },
            },
        ),
        record(
            4,
            Event::SettingsUpdated {
                settings: listed_settings("Salão Ágata Nova"),
            },
        ),
    ];
    stores
        .journal
        .append(AppendBatch {
            establishment_id: est,
            records: events,
        })
        .await
        .unwrap();
    let hits = stores
        .directory
        .search(text_query("agata nova escova"))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    let listing = &hits[0].listing;
    assert_eq!(listing.id, est.0);
    assert_eq!(listing.name, "Salão Ágata Nova");
    assert_eq!(listing.services, ["Escova Progressiva", "Corte Feminino"]);
    assert_eq!(listing.category.as_deref(), Some("salon"));
    assert_eq!(listing.owner_id, owner);
    let suspend = Event::EstablishmentSuspended {
        reason: "fraud".to_owned(),
        by: UserId(new_id()),
    };
    stores
        .journal
        .append(one(est, record(5, suspend)))
        .await
        .unwrap();
    assert!(
        stores
            .directory
            .search(text_query("agata"))
            .await
            .unwrap()
            .is_empty()
    );
    let mut admin = text_query("agata");
    admin.include_suspended = true;
    let hits = stores.directory.search(admin.clone()).await.unwrap();
    assert_eq!(hits[0].listing.suspended_reason.as_deref(), Some("fraud"));
    drop(stores);

    // As if the establishment predated the listings: no row, its id queued.
    db.execute("DELETE FROM establishments").await;
    db.execute_with_id(
        "INSERT INTO listings_pending (establishment_id) VALUES",
        est.0,
    )
    .await;
    let reopened = db.open().await;
    let hits = reopened.directory.search(admin).await.unwrap();
    assert_eq!(hits.len(), 1, "backfilled: {hits:?}");
    assert_eq!(hits[0].listing.name, "Salão Ágata Nova");
    assert_eq!(
        hits[0].listing.services,
        ["Escova Progressiva", "Corte Feminino"]
    );
    assert_eq!(hits[0].listing.suspended_reason.as_deref(), Some("fraud"));
    // Dequeued: the next open projects nothing again.
    drop(reopened);
    db.execute("DELETE FROM establishments").await;
    let again = db.open().await;
    assert!(
        again
            .directory
            .search(text_query("agata"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Entries come back newest first with their ids; the database refuses to change or
/// remove them, whoever asks.
async fn the_audit_log_is_append_only<D: TestDb>() {
    let db = D::create().await;
    let stores = db.open().await;
    let admin = new_id();
    let mut ids = Vec::new();
    for (i, action) in [
        "establishment.suspend",
        "user.disable",
        "establishment.reinstate",
    ]
    .into_iter()
    .enumerate()
    {
        let entry = navaro_persistence::AuditEntry {
            id: 0,
            at: base_time(),
            admin_id: admin,
            action: action.to_owned(),
            target_kind: "establishment".to_owned(),
            target_id: Some(new_id()),
            reason: format!("reason {i}"),
            detail: "{}".to_owned(),
        };
        ids.push(stores.directory.append_audit(entry).await.unwrap().id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let newest_first = stores.directory.audit(None, 10).await.unwrap();
    let actions: Vec<&str> = newest_first.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "establishment.reinstate",
            "user.disable",
            "establishment.suspend"
        ]
    );
    let older = stores.directory.audit(Some(ids[2]), 1).await.unwrap();
    assert_eq!(older[0].id, ids[1]);
    let mut refused = vec![
        "UPDATE admin_audit SET reason = 'nothing happened'",
        "DELETE FROM admin_audit",
    ];
    if D::POSTGRES {
        refused.push("TRUNCATE admin_audit");
    }
    for sql in refused {
        let error = db.try_execute(sql).await.expect_err(sql);
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    assert_eq!(
        stores.directory.audit(None, 10).await.unwrap(),
        newest_first
    );
}

/// The read-model answers through the public trait; shared with the memory stores.
async fn check_projection(stores: &Stores) {
    let est = new_establishment();
    let customer = UserId(new_id());
    let staff = StaffId(new_id());
    let (b1, b2, b3) = (
        BookingId(new_id()),
        BookingId(new_id()),
        BookingId(new_id()),
    );
    let morning = Item::new(est, staff, customer, 0);
    let noon = Item::new(est, staff, customer, 60);
    let tomorrow = Item::new(est, staff, UserId(new_id()), 24 * 60);
    let moved = Item::new(est, staff, customer, 90);
    let events = vec![
        record(
            1,
            Event::BookingConfirmed {
                booking: morning.booking(b1, BookingStatus::Confirmed, 1),
                from_hold: None,
            },
        ),
        record(
            2,
            Event::BookingConfirmed {
                booking: noon.booking(b2, BookingStatus::Confirmed, 2),
                from_hold: None,
            },
        ),
        record(
            3,
            Event::BookingConfirmed {
                booking: tomorrow.booking(b3, BookingStatus::Confirmed, 3),
                from_hold: None,
            },
        ),
    ];
    stores
        .journal
        .append(AppendBatch {
            establishment_id: est,
            records: events,
        })
        .await
        .unwrap();
    let cancel = Event::BookingCancelled {
        booking: morning.booking(b1, BookingStatus::Cancelled, 4),
        by: customer,
    };
    stores
        .journal
        .append(one(est, record(4, cancel)))
        .await
        .unwrap();
    let reschedule = Event::BookingRescheduled {
        booking: moved.booking(b2, BookingStatus::Confirmed, 5),
        previous_start: at_minutes(60),
        previous_staff_id: staff,
    };
    stores
        .journal
        .append(one(est, record(5, reschedule)))
        .await
        .unwrap();

    let mine = stores
        .bookings
        .bookings_of_customer(customer, 10)
        .await
        .unwrap();
    assert_eq!(
        mine,
        vec![
            moved.booking(b2, BookingStatus::Confirmed, 5),
            morning.booking(b1, BookingStatus::Cancelled, 4)
        ]
    );
    assert_eq!(
        stores
            .bookings
            .bookings_of_customer(customer, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    let day = stores
        .bookings
        .bookings_of_establishment(est, at_minutes(0), at_minutes(24 * 60))
        .await
        .unwrap();
    assert_eq!(day.iter().map(|b| b.id).collect::<Vec<_>>(), [b1, b2]);
    let next_day = stores
        .bookings
        .bookings_of_establishment(est, at_minutes(24 * 60), at_minutes(48 * 60))
        .await
        .unwrap();
    assert_eq!(next_day.iter().map(|b| b.id).collect::<Vec<_>>(), [b3]);
    // One booking by id, as its last event left it; only under its own establishment.
    assert_eq!(
        stores.bookings.booking(est, b1).await.unwrap(),
        Some(morning.booking(b1, BookingStatus::Cancelled, 4))
    );
    assert_eq!(
        stores.bookings.booking(est, b2).await.unwrap(),
        Some(moved.booking(b2, BookingStatus::Confirmed, 5))
    );
    assert_eq!(
        stores
            .bookings
            .booking(new_establishment(), b1)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        stores
            .bookings
            .booking(est, BookingId(new_id()))
            .await
            .unwrap(),
        None
    );

    // One batch that confirms and then moves the same booking: the row ends up moved.
    let b4 = BookingId(new_id());
    let (first, second) = (
        Item::new(est, staff, customer, 600),
        Item::new(est, staff, customer, 660),
    );
    let confirm = Event::BookingConfirmed {
        booking: first.booking(b4, BookingStatus::Confirmed, 6),
        from_hold: None,
    };
    let moved_again = Event::BookingRescheduled {
        booking: second.booking(b4, BookingStatus::Confirmed, 7),
        previous_start: at_minutes(600),
        previous_staff_id: staff,
    };
    let batch = AppendBatch {
        establishment_id: est,
        records: vec![record(6, confirm), record(7, moved_again)],
    };
    stores.journal.append(batch).await.unwrap();
    let evening = stores
        .bookings
        .bookings_of_establishment(est, at_minutes(600), at_minutes(720))
        .await
        .unwrap();
    assert_eq!(
        evening,
        vec![second.booking(b4, BookingStatus::Confirmed, 7)]
    );
}

#[tokio::test]
async fn memory_stores_project_too() {
    let stores = Stores::memory();
    check_projection(&stores).await;
    assert!(stores.ready().await);
}

async fn corrupt_payload_is_reported<D: TestDb>() {
    let db = D::create().await;
    let stores = db.open().await;
    let est = new_establishment();
    stores.journal.append(batch(est, 1, 1)).await.unwrap();
    db.insert_raw_event(est.0, 2, b"\xc1 not msgpack".to_vec())
        .await;
    let err = stores.journal.load(est).await.unwrap_err();
    assert!(
        matches!(err, JournalError::Corrupt { establishment_id, seq: 2, .. } if establishment_id == est),
        "{err:?}"
    );
    assert!(err.to_string().contains(&est.to_string()));
    let err = stores.journal.read_after(est, 1, 10).await.unwrap_err();
    assert!(
        matches!(err, JournalError::Corrupt { seq: 2, .. }),
        "{err:?}"
    );

    // A valid record stored under the wrong seq is corrupt too.
    let other = new_establishment();
    let wrong = navaro_protocol::encode(Encoding::MsgPack, &filler(other, 9)).unwrap();
    db.insert_raw_event(other.0, 1, wrong).await;
    let err = stores.journal.load(other).await.unwrap_err();
    assert!(
        matches!(err, JournalError::Corrupt { seq: 1, .. }),
        "{err:?}"
    );
    // A gap in the stored seqs is reported, not skipped.
    let gappy = new_establishment();
    stores.journal.append(batch(gappy, 1, 1)).await.unwrap();
    let third = navaro_protocol::encode(Encoding::MsgPack, &filler(gappy, 3)).unwrap();
    db.insert_raw_event(gappy.0, 3, third).await;
    let err = stores.journal.load(gappy).await.unwrap_err();
    assert!(
        matches!(err, JournalError::Corrupt { seq: 3, .. }),
        "{err:?}"
    );
}

fn user(email: &str) -> User {
    User {
        id: UserId(new_id()),
        email: email.to_string(),
        name: "Ana".to_string(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_string(),
        created_at: "2026-11-29T01:02:03.456789123Z".parse().unwrap(),
    }
}

async fn accounts<D: TestDb>() {
    let db = D::create().await;
    let stores = db.open().await;
    let accounts = &stores.accounts;
    let ana = accounts
        .create_user(user("  Ana@Example.COM "))
        .await
        .unwrap();
    assert_eq!(ana.email, "ana@example.com");
    assert_eq!(
        accounts.create_user(user("ana@example.com")).await,
        Err(AccountError::EmailTaken)
    );
    // Two registrations of one new email at once: exactly one wins.
    let (a, b) = tokio::join!(
        accounts.create_user(user("race@example.com")),
        accounts.create_user(user("RACE@example.com"))
    );
    let taken = [&a, &b]
        .iter()
        .filter(|r| **r == &Err(AccountError::EmailTaken))
        .count();
    assert_eq!(
        (a.is_ok() as usize + b.is_ok() as usize, taken),
        (1, 1),
        "{a:?} {b:?}"
    );
    assert_eq!(
        accounts.user_by_email("ANA@example.com").await.unwrap(),
        Some(ana.clone())
    );
    assert_eq!(
        accounts.user_by_id(ana.id).await.unwrap(),
        Some(ana.clone())
    );
    assert_eq!(accounts.user_by_id(UserId(new_id())).await.unwrap(), None);
    assert_eq!(
        accounts.user_by_email("nobody@example.com").await.unwrap(),
        None
    );

    let (e1, e2) = (new_establishment(), new_establishment());
    let m = |establishment_id, role| Membership {
        user_id: ana.id,
        establishment_id,
        role,
    };
    accounts
        .upsert_membership(m(e2, MemberRole::Staff))
        .await
        .unwrap();
    accounts
        .upsert_membership(m(e1, MemberRole::Staff))
        .await
        .unwrap();
    accounts
        .upsert_membership(m(e1, MemberRole::Owner))
        .await
        .unwrap();
    let mut expected = vec![m(e1, MemberRole::Owner), m(e2, MemberRole::Staff)];
    expected.sort_by_key(|m| m.establishment_id);
    assert_eq!(accounts.memberships_of(ana.id).await.unwrap(), expected);
    assert_eq!(
        accounts.role_at(ana.id, e1).await.unwrap(),
        Some(MemberRole::Owner)
    );
    assert_eq!(
        accounts.role_at(ana.id, new_establishment()).await.unwrap(),
        None
    );
    let ghost = Membership {
        user_id: UserId(new_id()),
        establishment_id: e1,
        role: MemberRole::Staff,
    };
    assert_eq!(
        accounts.upsert_membership(ghost).await,
        Err(AccountError::NoSuchUser)
    );

    // Creation keys: the first claim's establishment for every later one, concurrent
    // claims included, until it expires; keys are per user.
    let t0: jiff::Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
    let at = |seconds: i64| t0 + jiff::SignedDuration::from_secs(seconds);
    let ttl = navaro_persistence::CREATION_KEY_TTL_SECONDS;
    let first = new_establishment();
    assert_eq!(
        accounts.claim_creation_key(ana.id, "k", first, t0).await,
        Ok(first)
    );
    assert_eq!(
        accounts
            .claim_creation_key(ana.id, "k", new_establishment(), at(ttl))
            .await,
        Ok(first),
        "a claim names its establishment for the key's whole lifetime"
    );
    let (x, y) = (new_establishment(), new_establishment());
    let (cx, cy) = tokio::join!(
        accounts.claim_creation_key(ana.id, "race", x, t0),
        accounts.claim_creation_key(ana.id, "race", y, t0)
    );
    assert!(cx == cy && (cx == Ok(x) || cx == Ok(y)), "{cx:?} {cy:?}");
    let bea = accounts.create_user(user("bea@example.com")).await.unwrap();
    let hers = new_establishment();
    assert_eq!(
        accounts.claim_creation_key(bea.id, "k", hers, t0).await,
        Ok(hers)
    );
    // Past its lifetime the key makes a new establishment, which the key then names.
    let later = new_establishment();
    assert_eq!(
        accounts
            .claim_creation_key(ana.id, "k", later, at(ttl + 1))
            .await,
        Ok(later)
    );
    assert_eq!(
        accounts
            .claim_creation_key(ana.id, "k", new_establishment(), at(ttl + 2))
            .await,
        Ok(later)
    );
    assert_eq!(
        accounts
            .claim_creation_key(UserId(new_id()), "k", new_establishment(), t0)
            .await,
        Err(AccountError::NoSuchUser)
    );
}

async fn migrate_is_idempotent<D: TestDb>() {
    let db = D::create().await;
    navaro_persistence::migrate(&db.url()).await.unwrap();
    navaro_persistence::migrate(&db.url()).await.unwrap();
    assert!(db.open().await.ready().await);
}

#[tokio::test]
async fn bad_urls_are_refused() {
    let err = navaro_persistence::open("mysql://x", StoreOptions::default())
        .await
        .err();
    assert!(matches!(
        err,
        Some(navaro_persistence::StoreError::InvalidUrl(_))
    ));
}

/// Each Postgres writer keeps a connection, so a pool no bigger than the writers would
/// leave none for reads: refused at open, before any connection is made, with a message
/// that names both settings. SQLite's writer keeps none.
#[tokio::test]
async fn a_postgres_pool_no_bigger_than_its_writers_is_refused() {
    // Nothing listens on port 1: a check that let the pool through would fail to connect.
    let url = "postgres://postgres@127.0.0.1:1/none";
    for (max_connections, writers) in [(2, 0), (1, 1), (3, 3)] {
        let options = StoreOptions {
            max_connections,
            writer_shards: writers,
            ..StoreOptions::default()
        };
        match navaro_persistence::open(url, options).await.err() {
            Some(navaro_persistence::StoreError::Settings(message)) => {
                assert!(
                    message.contains("store.max_connections") && message.contains("store.writers"),
                    "{message}"
                );
            }
            other => panic!("{max_connections} connections, {writers} writers: {other:?}"),
        }
    }
    let options = StoreOptions {
        max_connections: 3,
        writer_shards: 2,
        ..StoreOptions::default()
    };
    assert!(matches!(
        navaro_persistence::open(url, options).await.err(),
        Some(navaro_persistence::StoreError::Connect(_))
    ));
}

// ---- Postgres only ----

/// Establishment X confirms a booking that overlaps one it already stored (a bug or a
/// split brain the engine cannot see); it shares a group with two innocent ones.
#[tokio::test(flavor = "current_thread")]
async fn postgres_exclusion_rejects_overlap_and_isolates() {
    let db = PgDb::create().await;
    let stores = db.open().await;
    let (x, e1, e2) = (
        new_establishment(),
        new_establishment(),
        new_establishment(),
    );
    let staff = StaffId(new_id());
    let mut first = Item::new(x, staff, UserId(new_id()), 0);
    first.buffer_minutes = 15;
    let confirm = |item: &Item, seq| {
        one(
            x,
            record(
                seq,
                Event::BookingConfirmed {
                    booking: item.booking(BookingId(new_id()), BookingStatus::Confirmed, seq),
                    from_hold: None,
                },
            ),
        )
    };
    stores.journal.append(confirm(&first, 1)).await.unwrap();
    // Starts when the service ends but inside its buffer: overlaps.
    let overlapping = Item::new(x, staff, UserId(new_id()), 30);
    // No await between the three: on this single-threaded runtime they form one group.
    let a = stores.journal.append(batch(e1, 1, 2));
    let bad = stores.journal.append(confirm(&overlapping, 2));
    let b = stores.journal.append(batch(e2, 1, 1));
    let (a, bad, b) = tokio::join!(a, bad, b);
    a.unwrap();
    b.unwrap();
    assert!(is_fenced(&bad, 2), "{bad:?}");
    assert_eq!(db.stored_seqs(x.0).await, [1]);
    assert_eq!(db.stored_seqs(e1.0).await, [1, 2]);
    assert!(is_fenced(
        &stores.journal.append(confirm(&overlapping, 2)).await,
        2
    ));
    // After a reload, a booking after the buffer is fine.
    stores.journal.load(x).await.unwrap();
    let after_buffer = Item::new(x, staff, UserId(new_id()), 45);
    stores
        .journal
        .append(confirm(&after_buffer, 2))
        .await
        .unwrap();
    // A cancelled booking no longer blocks its slot.
    let b1 = BookingId(new_id());
    let late = Item::new(x, staff, UserId(new_id()), 300);
    stores
        .journal
        .append(one(
            x,
            record(
                3,
                Event::BookingConfirmed {
                    booking: late.booking(b1, BookingStatus::Confirmed, 3),
                    from_hold: None,
                },
            ),
        ))
        .await
        .unwrap();
    let cancel = Event::BookingCancelled {
        booking: late.booking(b1, BookingStatus::Cancelled, 4),
        by: late.customer,
    };
    stores
        .journal
        .append(one(x, record(4, cancel)))
        .await
        .unwrap();
    stores.journal.append(confirm(&late, 5)).await.unwrap();
}

/// The time helpers inline into the queries that call them (migration 0003): a call
/// that is not inlined runs as its own SQL-function execution, per row.
#[tokio::test(flavor = "current_thread")]
async fn postgres_time_helpers_inline() {
    use sqlx::Connection;
    let db = PgDb::create().await;
    let _stores = db.open().await;
    let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    for query in [
        "EXPLAIN VERBOSE SELECT navaro_ts(x) FROM generate_series(1::bigint, 3) x",
        "EXPLAIN VERBOSE SELECT navaro_us(now() + x * interval '1 second') FROM generate_series(1, 3) x",
    ] {
        let plan: Vec<String> = sqlx::query_scalar(query)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let plan = plan.join("\n");
        assert!(!plan.contains("navaro_"), "not inlined: {plan}");
    }
    // Inlined or not, the round trip is exact to the microsecond.
    let us = 1_796_083_200_123_457_i64;
    let back: i64 = sqlx::query_scalar("SELECT navaro_us(navaro_ts($1))")
        .bind(us)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(back, us);
}

/// Postgres goes away (every connection cut, new ones refused) and comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_fast_then_recovers() {
    let db = PgDb::create().await;
    let proxy = Proxy::start().await;
    let url = pg_url_with(&pg_base_url(), &db_name(&db.url()), Some(proxy.addr));
    let options = StoreOptions {
        acquire_timeout: Duration::from_millis(500),
        call_timeout: Duration::from_secs(2),
        ..test_options()
    };
    let stores = navaro_persistence::open(&url, options).await.unwrap();
    let est = new_establishment();
    stores.journal.append(batch(est, 1, 1)).await.unwrap();
    proxy.set_up(false);
    let started = std::time::Instant::now();
    let failed = stores.journal.append(batch(est, 2, 2)).await;
    assert!(
        matches!(failed, Err(JournalError::Unavailable(_))),
        "{failed:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failed fast: {:?}",
        started.elapsed()
    );
    assert!(!stores.ready().await);
    proxy.set_up(true);
    retry_until_ok(|| stores.journal.append(batch(est, 2, 2))).await;
    assert!(stores.ready().await);
    assert_eq!(db.stored_seqs(est.0).await, [1, 2]);
}

/// Postgres kills every connection of the pool (a restart, a failover): the pool
/// replaces them and appends go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_terminated_connections_are_replaced() {
    use sqlx::Connection;
    let db = PgDb::create().await;
    let stores = db.open().await;
    let est = new_establishment();
    stores.journal.append(batch(est, 1, 1)).await.unwrap();
    let mut admin = sqlx::PgConnection::connect(&pg_base_url()).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
    )
    .bind(db_name(&db.url()))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty());
    retry_until_ok(|| stores.journal.append(batch(est, 2, 2))).await;
    assert_eq!(db.stored_seqs(est.0).await, [1, 2]);
}

/// SQLite's version of "the store goes away": another process holds the write lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_fails_fast_then_recovers() {
    use sqlx::Connection;
    let db = SqliteDb::create().await;
    let options = StoreOptions {
        acquire_timeout: Duration::from_millis(300),
        ..test_options()
    };
    let stores = navaro_persistence::open(&db.url(), options).await.unwrap();
    let est = new_establishment();
    stores.journal.append(batch(est, 1, 1)).await.unwrap();
    let mut locker = sqlx::SqliteConnection::connect(&db.url()).await.unwrap();
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    let failed = stores.journal.append(batch(est, 2, 2)).await;
    assert!(
        matches!(failed, Err(JournalError::Unavailable(_))),
        "{failed:?}"
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut locker)
        .await
        .unwrap();
    retry_until_ok(|| stores.journal.append(batch(est, 2, 2))).await;
    assert_eq!(db.stored_seqs(est.0).await, [1, 2]);
}

fn db_name(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

/// Retry an append until it succeeds, with a deadline (the pool reconnects in the background).
async fn retry_until_ok<F, Fut>(mut append: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), JournalError>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match append().await {
            Ok(()) => return,
            Err(JournalError::Unavailable(e)) if std::time::Instant::now() < deadline => {
                eprintln!("still unavailable: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("append did not recover: {e:?}"),
        }
    }
}
