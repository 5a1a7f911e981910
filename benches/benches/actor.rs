//! Throughput of booking commands through the actor shell: many establishments, many
//! concurrent callers, replies released after the (in-memory) journal acknowledges.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::SignedDuration;
use navaro_benches::{BENCH_STAFF, bookable_from, customer, open_shops};
use navaro_engine::store::MemoryJournal;
use navaro_engine::{Engine, EngineConfig, Request};
use navaro_protocol::{Command, EstablishmentId, ServiceId};

const ESTABLISHMENTS: usize = 200;
const CALLERS: usize = 400;
const STAFF: u64 = BENCH_STAFF;

async fn setup(engine: &Engine) -> Vec<(EstablishmentId, ServiceId)> {
    open_shops(engine, ESTABLISHMENTS).await
}

fn actor_throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engine = runtime
        .block_on(Engine::start(
            Arc::new(MemoryJournal::new()),
            EngineConfig::default(),
        ))
        .unwrap();
    let shops = Arc::new(runtime.block_on(setup(&engine)));
    let base = bookable_from();
    // Every booking gets a distinct (establishment, slot): a counter walks the grid.
    let counter = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("actor");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function(
        format!("durable bookings, {ESTABLISHMENTS} establishments, {CALLERS} callers"),
        |b| {
            b.iter_custom(|iters| {
                let (engine, shops, counter) = (engine.clone(), shops.clone(), counter.clone());
                runtime.block_on(async move {
                    let started = Instant::now();
                    let per_caller = iters.div_ceil(CALLERS as u64);
                    let tasks: Vec<_> = (0..CALLERS)
                        .map(|caller| {
                            let (engine, shops, counter) =
                                (engine.clone(), shops.clone(), counter.clone());
                            tokio::spawn(async move {
                                for _ in 0..per_caller {
                                    let n = counter.fetch_add(1, Ordering::Relaxed);
                                    let (id, service) = shops[(n % ESTABLISHMENTS as u64) as usize];
                                    // Each half hour, 24 hours a day, once per staff member.
                                    let slot = n / ESTABLISHMENTS as u64;
                                    let start = base
                                        .checked_add(SignedDuration::from_mins(
                                            30 * (slot / STAFF) as i64,
                                        ))
                                        .unwrap();
                                    let command = Command::Book {
                                        service_id: service,
                                        start,
                                        staff_id: None,
                                        customer_id: None,
                                        promotion: None,
                                    };
                                    let request = Request {
                                        caller: customer((n % 100_000) as u128 + caller as u128),
                                        command,
                                        idempotency_key: None,
                                    };
                                    let _ = engine.execute(id, request).await;
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                    started
                        .elapsed()
                        .mul_f64(iters as f64 / (per_caller * CALLERS as u64) as f64)
                })
            })
        },
    );
    group.finish();
}

criterion_group!(benches, actor_throughput);
criterion_main!(benches);
