//! The stores the gateway runs on: `navaro_persistence`'s (Postgres or SQLite, opened
//! and migrated from the configured URL; memory for tests), named here in one place, and
//! the cache of memberships that keeps authorization off the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures::FutureExt;
use futures::future::BoxFuture;
use navaro_persistence::{AccountError, AccountStore, MemberRole, Membership, User};
pub use navaro_persistence::{BookingReadModel, StoreError, StoreOptions, Stores, migrate, open};
use navaro_protocol::{EstablishmentId, UserId};

/// How long a cached role is trusted. Memberships change through this process, which
/// updates the cache at once; the bound is for a change made by another node.
pub const ROLE_TTL: Duration = Duration::from_secs(30);
/// How long past [`ROLE_TTL`] a cached role still answers while the store cannot
/// (overloaded or unavailable): the request is served as the role stood a few minutes
/// ago instead of failing with the store. A membership changed on another node is then
/// seen late by up to the TTL plus this much.
pub const ROLE_STALE_IF_ERROR: Duration = Duration::from_secs(300);
/// How long an expired entry answers as it stands, without asking the store, from the
/// start of a request's refresh of it, and again after that refresh failed. Without it
/// every request of that member waited for its own lookup (up to the pool's 2 s when
/// the store is struggling) and added one more caller to a store already failing to
/// answer.
pub const ROLE_RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);
/// Most (user, establishment) pairs kept; past it the cache starts over.
pub const ROLE_CACHE_ENTRIES: usize = 1_000_000;

/// A cached `role_at` answer.
#[derive(Clone, Copy)]
struct Entry {
    role: Option<MemberRole>,
    /// When the store gave it (or this process wrote it).
    read_at: Instant,
    /// Set when a refresh starts, and again when it fails: until then the entry answers
    /// without a lookup.
    retry_at: Option<Instant>,
}

/// An [`AccountStore`] that remembers `role_at` answers (including "no role", the answer
/// for every customer), so that an authenticated request does not cost a database round
/// trip on the pool the journal writes through. `upsert_membership` writes through and
/// updates the entry. An expired entry is looked up again; if the store cannot answer
/// (busy or gone), the entry still answers for [`ROLE_STALE_IF_ERROR`] past its TTL,
/// as HTTP's `stale-if-error` does: under an overload a member's request is answered
/// with the role it had instead of failing because its role's 30 seconds ran out. While
/// one request refreshes an expired entry, and for [`ROLE_RETRY_AFTER_ERROR`] after its
/// refresh failed, the others are answered as the entry stands (HTTP's
/// `stale-while-revalidate`): one request per entry and second waits on the store.
pub struct RoleCache {
    inner: Arc<dyn AccountStore>,
    roles: DashMap<(UserId, EstablishmentId), Entry>,
    ttl: Duration,
    /// See [`ROLE_STALE_IF_ERROR`].
    stale_if_error: Duration,
    /// See [`ROLE_RETRY_AFTER_ERROR`].
    retry_after_error: Duration,
    capacity: usize,
}

impl RoleCache {
    pub fn new(
        inner: Arc<dyn AccountStore>,
        ttl: Duration,
        stale_if_error: Duration,
        capacity: usize,
    ) -> RoleCache {
        RoleCache {
            inner,
            roles: DashMap::new(),
            ttl,
            stale_if_error,
            retry_after_error: ROLE_RETRY_AFTER_ERROR,
            capacity,
        }
    }

    /// Another wait after a failed refresh than [`ROLE_RETRY_AFTER_ERROR`].
    pub fn with_retry_after_error(mut self, wait: Duration) -> RoleCache {
        self.retry_after_error = wait;
        self
    }

    fn remember(&self, key: (UserId, EstablishmentId), role: Option<MemberRole>) {
        if self.roles.len() >= self.capacity {
            self.roles.clear();
        }
        let entry = Entry {
            role,
            read_at: Instant::now(),
            retry_at: None,
        };
        self.roles.insert(key, entry);
    }

    /// An expired entry standing in for the store (which cannot answer, or is being
    /// asked by another request), if it is still within its bound; counted in
    /// `navaro_role_cache_stale_total`.
    fn stale(&self, entry: Entry) -> Option<Option<MemberRole>> {
        (entry.read_at.elapsed() < self.ttl + self.stale_if_error).then(|| {
            metrics::counter!("navaro_role_cache_stale_total").increment(1);
            entry.role
        })
    }
}

impl AccountStore for RoleCache {
    fn create_user(&self, user: User) -> BoxFuture<'_, Result<User, AccountError>> {
        self.inner.create_user(user)
    }

    fn user_by_email(&self, email: &str) -> BoxFuture<'_, Result<Option<User>, AccountError>> {
        self.inner.user_by_email(email)
    }

    fn user_by_id(&self, id: UserId) -> BoxFuture<'_, Result<Option<User>, AccountError>> {
        self.inner.user_by_id(id)
    }

    fn upsert_membership(&self, membership: Membership) -> BoxFuture<'_, Result<(), AccountError>> {
        async move {
            let key = (membership.user_id, membership.establishment_id);
            let role = membership.role;
            let written = self.inner.upsert_membership(membership).await;
            match &written {
                Ok(()) => self.remember(key, Some(role)),
                // Unknown outcome: ask the store next time.
                Err(_) => {
                    self.roles.remove(&key);
                }
            }
            written
        }
        .boxed()
    }

    fn memberships_of(
        &self,
        user_id: UserId,
    ) -> BoxFuture<'_, Result<Vec<Membership>, AccountError>> {
        self.inner.memberships_of(user_id)
    }

    fn claim_creation_key(
        &self,
        user_id: UserId,
        key: &str,
        candidate: EstablishmentId,
        now: jiff::Timestamp,
    ) -> BoxFuture<'_, Result<EstablishmentId, AccountError>> {
        self.inner.claim_creation_key(user_id, key, candidate, now)
    }

    fn role_at(
        &self,
        user_id: UserId,
        establishment_id: EstablishmentId,
    ) -> BoxFuture<'_, Result<Option<MemberRole>, AccountError>> {
        let key = (user_id, establishment_id);
        let cached = self.roles.get(&key).map(|entry| *entry);
        if let Some(entry) = cached {
            if entry.read_at.elapsed() < self.ttl {
                return futures::future::ready(Ok(entry.role)).boxed();
            }
            // A refresh failed a moment ago, or another request is refreshing the
            // entry: answer as the entry stands, if it may.
            if entry.retry_at.is_some_and(|at| Instant::now() < at)
                && let Some(role) = self.stale(entry)
            {
                return futures::future::ready(Ok(role)).boxed();
            }
            // This request refreshes it; until it has an answer (for a second at most),
            // the others do not line up behind it on a store that may not answer.
            if let Some(mut refreshing) = self.roles.get_mut(&key) {
                refreshing.retry_at = Some(Instant::now() + self.retry_after_error);
            }
        }
        async move {
            match self.inner.role_at(user_id, establishment_id).await {
                Ok(role) => {
                    self.remember(key, role);
                    Ok(role)
                }
                Err(e @ (AccountError::Overloaded(_) | AccountError::Unavailable(_))) => {
                    // The entry as it stands now: a change through this process made
                    // during the lookup (or its removal after an unknown outcome)
                    // wins over what was read before it.
                    let Some(mut kept) = self.roles.get_mut(&key) else {
                        return Err(e);
                    };
                    match self.stale(*kept) {
                        Some(role) => {
                            kept.retry_at = Some(Instant::now() + self.retry_after_error);
                            Ok(role)
                        }
                        None => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use navaro_persistence::MemoryAccounts;
    use uuid::Uuid;

    use super::*;

    /// Counts the lookups that reach the store.
    struct Counting {
        inner: MemoryAccounts,
        lookups: AtomicUsize,
        /// Every lookup fails as an overloaded store's does.
        busy: AtomicBool,
        /// Each lookup answers after this many milliseconds.
        delay_ms: std::sync::atomic::AtomicU64,
    }

    impl Counting {
        fn new() -> Arc<Counting> {
            Arc::new(Counting {
                inner: MemoryAccounts::new(),
                lookups: AtomicUsize::new(0),
                busy: AtomicBool::new(false),
                delay_ms: Default::default(),
            })
        }
    }

    impl AccountStore for Counting {
        fn create_user(&self, user: User) -> BoxFuture<'_, Result<User, AccountError>> {
            self.inner.create_user(user)
        }
        fn user_by_email(&self, email: &str) -> BoxFuture<'_, Result<Option<User>, AccountError>> {
            self.inner.user_by_email(email)
        }
        fn user_by_id(&self, id: UserId) -> BoxFuture<'_, Result<Option<User>, AccountError>> {
            self.inner.user_by_id(id)
        }
        fn upsert_membership(&self, m: Membership) -> BoxFuture<'_, Result<(), AccountError>> {
            self.inner.upsert_membership(m)
        }
        fn memberships_of(
            &self,
            id: UserId,
        ) -> BoxFuture<'_, Result<Vec<Membership>, AccountError>> {
            self.inner.memberships_of(id)
        }
        fn claim_creation_key(
            &self,
            user_id: UserId,
            key: &str,
            candidate: EstablishmentId,
            now: jiff::Timestamp,
        ) -> BoxFuture<'_, Result<EstablishmentId, AccountError>> {
            self.inner.claim_creation_key(user_id, key, candidate, now)
        }
        fn role_at(
            &self,
            user_id: UserId,
            establishment_id: EstablishmentId,
        ) -> BoxFuture<'_, Result<Option<MemberRole>, AccountError>> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let delay = Duration::from_millis(self.delay_ms.load(Ordering::SeqCst));
            let busy = self.busy.load(Ordering::SeqCst);
            async move {
                tokio::time::sleep(delay).await;
                if busy {
                    return Err(AccountError::Overloaded("busy".into()));
                }
                self.inner.role_at(user_id, establishment_id).await
            }
            .boxed()
        }
    }

    fn user(n: u128) -> User {
        User {
            id: UserId(Uuid::from_u128(n)),
            email: format!("u{n}@example.com"),
            name: format!("u{n}"),
            password_hash: "x".into(),
            created_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn roles_are_looked_up_once_and_follow_membership_changes() {
        let counting = Counting::new();
        let cache = RoleCache::new(counting.clone(), ROLE_TTL, ROLE_STALE_IF_ERROR, 10);
        let alice = cache.create_user(user(1)).await.unwrap().id;
        let shop = EstablishmentId(Uuid::from_u128(9));
        for _ in 0..3 {
            assert_eq!(cache.role_at(alice, shop).await.unwrap(), None);
        }
        assert_eq!(counting.lookups.load(Ordering::SeqCst), 1);
        cache
            .upsert_membership(Membership {
                user_id: alice,
                establishment_id: shop,
                role: MemberRole::Staff,
            })
            .await
            .unwrap();
        assert_eq!(
            cache.role_at(alice, shop).await.unwrap(),
            Some(MemberRole::Staff),
            "a grant through this process is seen at once"
        );
        assert_eq!(counting.lookups.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn expired_entries_are_looked_up_again_and_the_cache_stays_bounded() {
        let counting = Counting::new();
        let cache = RoleCache::new(counting.clone(), Duration::ZERO, Duration::ZERO, 4);
        let alice = cache.create_user(user(1)).await.unwrap().id;
        for n in 0..20 {
            let shop = EstablishmentId(Uuid::from_u128(n));
            cache.role_at(alice, shop).await.unwrap();
            cache.role_at(alice, shop).await.unwrap();
            assert!(cache.roles.len() <= 4);
        }
        assert_eq!(
            counting.lookups.load(Ordering::SeqCst),
            40,
            "a zero TTL trusts nothing"
        );
    }

    /// A user made `role` at a shop, in the store behind the cache.
    async fn grant(counting: &Counting, user_id: UserId, role: MemberRole) -> EstablishmentId {
        let shop = EstablishmentId(Uuid::from_u128(9));
        let membership = Membership {
            user_id,
            establishment_id: shop,
            role,
        };
        counting.upsert_membership(membership).await.unwrap();
        shop
    }

    #[tokio::test]
    async fn an_expired_role_answers_while_the_store_cannot_and_not_past_its_bound() {
        let counting = Counting::new();
        let owner = counting.create_user(user(1)).await.unwrap().id;
        let shop = grant(&counting, owner, MemberRole::Owner).await;
        // Every entry has expired at once; a busy store is covered for five minutes.
        let cache = RoleCache::new(counting.clone(), Duration::ZERO, ROLE_STALE_IF_ERROR, 4);
        assert_eq!(
            cache.role_at(owner, shop).await.unwrap(),
            Some(MemberRole::Owner)
        );
        counting.busy.store(true, Ordering::SeqCst);
        assert_eq!(
            cache.role_at(owner, shop).await.unwrap(),
            Some(MemberRole::Owner),
            "the last answer stands in for the busy store"
        );
        assert_eq!(
            counting.lookups.load(Ordering::SeqCst),
            2,
            "the store was asked first"
        );
        assert_eq!(
            cache.role_at(owner, shop).await.unwrap(),
            Some(MemberRole::Owner)
        );
        assert_eq!(
            counting.lookups.load(Ordering::SeqCst),
            2,
            "right after a failed refresh the entry answers without asking the store again"
        );
        // A pair never looked up has nothing to stand in: the store's error.
        let stranger = EstablishmentId(Uuid::from_u128(10));
        assert!(matches!(
            cache.role_at(owner, stranger).await,
            Err(AccountError::Overloaded(_))
        ));
        // Past its bound an entry answers nothing either.
        let strict = RoleCache::new(counting.clone(), Duration::ZERO, Duration::ZERO, 4);
        counting.busy.store(false, Ordering::SeqCst);
        strict.role_at(owner, shop).await.unwrap();
        counting.busy.store(true, Ordering::SeqCst);
        assert!(matches!(
            strict.role_at(owner, shop).await,
            Err(AccountError::Overloaded(_))
        ));
        assert!(
            matches!(
                strict.role_at(owner, shop).await,
                Err(AccountError::Overloaded(_))
            ),
            "an entry past its bound is not kept answering by a failed refresh"
        );
    }

    #[tokio::test]
    async fn once_its_wait_is_over_a_failed_refresh_is_tried_again_and_its_answer_taken() {
        let counting = Counting::new();
        let owner = counting.create_user(user(1)).await.unwrap().id;
        let shop = grant(&counting, owner, MemberRole::Owner).await;
        let cache = RoleCache::new(counting.clone(), Duration::ZERO, ROLE_STALE_IF_ERROR, 4)
            .with_retry_after_error(Duration::ZERO);
        cache.role_at(owner, shop).await.unwrap();
        counting.busy.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            assert_eq!(
                cache.role_at(owner, shop).await.unwrap(),
                Some(MemberRole::Owner)
            );
        }
        assert_eq!(
            counting.lookups.load(Ordering::SeqCst),
            4,
            "with no wait every request asks the store"
        );
        // The store answers again, with a role changed meanwhile by another node.
        counting.busy.store(false, Ordering::SeqCst);
        grant(&counting, owner, MemberRole::Staff).await;
        assert_eq!(
            cache.role_at(owner, shop).await.unwrap(),
            Some(MemberRole::Staff),
            "the store's new answer replaces the stale one"
        );
    }

    #[tokio::test]
    async fn while_one_request_refreshes_an_expired_role_the_others_do_not_wait_on_the_store() {
        let counting = Counting::new();
        let owner = counting.create_user(user(1)).await.unwrap().id;
        let shop = grant(&counting, owner, MemberRole::Owner).await;
        let cache = RoleCache::new(counting.clone(), Duration::ZERO, ROLE_STALE_IF_ERROR, 4);
        cache.role_at(owner, shop).await.unwrap();
        // A store that takes its time to fail, and five requests at once.
        counting.busy.store(true, Ordering::SeqCst);
        counting.delay_ms.store(200, Ordering::SeqCst);
        let answers = futures::future::join_all((0..5).map(|_| cache.role_at(owner, shop))).await;
        for answer in answers {
            assert_eq!(answer.unwrap(), Some(MemberRole::Owner));
        }
        assert_eq!(
            counting.lookups.load(Ordering::SeqCst),
            2,
            "one lookup to fill the entry, one refresh for the five"
        );
    }
}
