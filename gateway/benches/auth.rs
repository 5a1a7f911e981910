//! A bearer token's verification, on every authenticated request:
//! `cargo bench -p navaro-gateway --bench auth`. A token met for the first time (header
//! and claims parsed, HS256 checked, then remembered) against one verified before.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use navaro_config::Settings;
use navaro_gateway::auth::TokenKeys;
use navaro_protocol::UserId;
use uuid::Uuid;

fn verify(c: &mut Criterion) {
    let keys = TokenKeys::from_settings(&Settings::default());
    let issue = || {
        keys.issue(
            UserId(Uuid::now_v7()),
            "customer@example.com",
            Some(Uuid::now_v7()),
            Timestamp::now(),
        )
        .0
    };
    let mut group = c.benchmark_group("token");
    group.bench_function("first verification", |b| {
        b.iter_batched(
            issue,
            |token| keys.verify(black_box(&token)),
            BatchSize::SmallInput,
        )
    });
    let token = issue();
    keys.verify(&token).expect("a token just issued verifies");
    group.bench_function("remembered", |b| b.iter(|| keys.verify(black_box(&token))));
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
