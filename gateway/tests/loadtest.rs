//! The load generator end to end: `navaro-loadtest` runs in-process against the real
//! binary on a fresh Postgres database at a modest rate, and its own verification, its
//! outcome counts and its report files are checked. Timings are never asserted.

mod common;

use clap::Parser;
use common::Server;
use navaro_loadtest::Options;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_load_run_verifies_and_reports() {
    let server = Server::start_postgres();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let plot = dir.path().join("latency.svg");
    let options = Options::parse_from([
        "navaro-loadtest",
        "--url",
        &server.base,
        "--establishments",
        "3",
        "--staff",
        "3",
        "--customers",
        "20",
        "--subscribers",
        "3",
        "--seed-bookings",
        "6",
        "--rate",
        "300",
        "--duration",
        "3s",
        "--warmup",
        "500ms",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
        "--quiet",
    ]);
    let report = navaro_loadtest::run(options)
        .await
        .expect("the run completes");
    let table = report.table();
    println!("{table}");

    let verification = report.verification.as_ref().expect("verification ran");
    assert!(verification.passed, "{table}");
    assert!(
        verification.created > 0 && verification.bookings_listed > 0,
        "{table}"
    );

    let baseline = report
        .baseline
        .as_ref()
        .and_then(|r| r.phase())
        .expect("a baseline phase");
    let mix = report.mix.phase().expect("a mix phase");
    for phase in [baseline, mix] {
        assert_eq!(phase.unexpected_errors, 0, "{table}");
        assert_eq!(phase.dropped, 0, "{table}");
    }
    let succeeded = |phase: &navaro_loadtest::driver::Phase, op: &str| {
        phase.ops.iter().any(|o| o.op == op && o.ok > 0)
    };
    assert!(succeeded(baseline, "healthz"), "{table}");
    for op in [
        "availability",
        "establishment",
        "book",
        "book_contended",
        "cancel",
        "reschedule",
        "queue_join",
        "queue_call",
        "queue_start",
        "queue_finish",
    ] {
        assert!(succeeded(mix, op), "no successful {op}:\n{table}");
    }
    assert!(mix.push_samples > 0, "pushes were measured:\n{table}");
    // A week of API.md's availability for three staff is tens of KB plain; the mix's
    // reads take gzip by default, as the apps' HTTP stacks do, and get a few KB.
    let availability = mix.ops.iter().find(|o| o.op == "availability").unwrap();
    assert!(
        availability.response_bytes > 500.0 && availability.response_bytes < 10_000.0,
        "{table}"
    );

    // CPU per request, the server's from its /metrics: both phases did work on both
    // sides, so neither is missing or zero.
    for phase in [baseline, mix] {
        let (server, generator) = (phase.server_cpu_us, phase.generator_cpu_us);
        assert!(server.is_some_and(|us| us > 0.0), "{table}");
        assert!(generator.is_some_and(|us| us > 0.0), "{table}");
    }
    assert!(table.contains("CPU/request: server "), "{table}");
    assert!(!table.contains("CPU/request: server -"), "{table}");

    let parsed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(parsed["verification"]["passed"], true);
    assert!(
        parsed["mix"]["steps"][0]["server_cpu_us"]
            .as_f64()
            .is_some()
    );
    // The default batches the sends of each millisecond, and the report says so.
    assert_eq!(parsed["settings"]["send_tick_ms"], 1.0);
    assert!(table.contains("sends batched every 1 ms"), "{table}");
    assert_eq!(parsed["settings"]["accept_encoding"], "gzip");
    assert!(table.contains("reads accepting gzip"), "{table}");
    assert_eq!(parsed["settings"]["queue_balk"], 12);
    // The runtime it ran on: this test's, with two workers.
    assert_eq!(parsed["settings"]["threads"], 2);
    assert!(table.contains("generator on 2 thread(s)"), "{table}");
    assert!(
        table.contains("walk-ins read a queue of 12 instead of joining"),
        "{table}"
    );
    assert!(
        parsed["mix"]["steps"][0]["ops"]
            .as_array()
            .is_some_and(|o| !o.is_empty())
    );
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
}

/// The generator's options for a world of two establishments of two staff, four
/// customers and one subscriber against `server`, with `args` on top.
fn small_world<'a>(server: &'a Server, args: impl IntoIterator<Item = &'a str>) -> Options {
    let world = [
        "navaro-loadtest",
        "--url",
        &server.base,
        "--establishments",
        "2",
        "--staff",
        "2",
        "--customers",
        "4",
        "--subscribers",
        "1",
    ];
    Options::parse_from(world.into_iter().chain(args))
}

/// A second of availability reads only, against `server`, with `args` on top; its
/// table, and the availability figures of its mix.
async fn availability_only(
    server: &Server,
    args: &[&str],
) -> (String, navaro_loadtest::stats::OpSummary) {
    let base = [
        "--mix",
        "avail=1",
        "--rate",
        "100",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--no-baseline",
        "--no-verify",
        "--quiet",
    ];
    let options = small_world(server, base.iter().chain(args).copied());
    let report = navaro_loadtest::run(options)
        .await
        .expect("the run completes");
    let table = report.table();
    let mix = report.mix.phase().expect("a mix phase");
    assert_eq!(mix.unexpected_errors, 0, "{table}");
    let availability = mix.ops.iter().find(|o| o.op == "availability").unwrap();
    assert!(availability.ok > 0, "{table}");
    (table, availability.clone())
}

/// `--availability-form runs` asks for `form=runs`, which the server accepts (a refusal
/// would count as an unexpected error) and answers in a few KB; the report says which
/// form ran. This run also sends each request at its own instant (`--send-tick 0`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mix_can_ask_for_availability_as_runs() {
    let server = Server::start();
    let args = ["--availability-form", "runs", "--send-tick", "0"];
    let (table, availability) = availability_only(&server, &args).await;
    assert!(table.contains("availability as runs"), "{table}");
    assert!(
        table.contains("each request sent at its instant"),
        "{table}"
    );
    // The runs form of a week for two staff is a few KB (API.md's would be tens).
    assert!(
        availability.response_bytes > 0.0 && availability.response_bytes < 10_000.0,
        "{table}"
    );
}

/// `--accept-encoding identity` reads the default form's plain bodies (tens of KB a
/// week; the default, gzip, gets a few, as the first test checks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mix_can_read_plain_bodies() {
    let server = Server::start();
    let args = ["--accept-encoding", "identity"];
    let (table, availability) = availability_only(&server, &args).await;
    assert!(table.contains("reads accepting identity"), "{table}");
    assert!(availability.response_bytes > 10_000.0, "{table}");
}

/// Step mode against the real binary: with limits no step can miss (no timing is
/// asserted), the search rises by the factor to `--max-rate` and reports the highest
/// step; with a p99 limit no step can meet, the first step is run again once
/// (`--step-retries`, default 1) and the search ends with no sustainable rate, both runs
/// of the step in the report, and no recovery probe before the rerun (nothing has held
/// yet, so a probe at the first step's rate could tell nothing). Each search writes its
/// throughput plot beside its percentile plot, and `--from-report` draws the same plot
/// from the saved JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_mode_rises_to_the_highest_step_and_reruns_a_failed_one() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("step.json");
    let plot = dir.path().join("step.svg");
    let throughput = dir.path().join("step-throughput.svg");
    let step = async |limit_ms: &str, max_error_ratio: &str| {
        let options = small_world(
            &server,
            [
                "--json",
                json.to_str().unwrap(),
                "--plot",
                plot.to_str().unwrap(),
                "--mix",
                "est=1",
                "--step",
                "--start-rate",
                "50",
                "--step-factor",
                "2",
                "--max-rate",
                "400",
                "--step-duration",
                "500ms",
                "--warmup",
                "200ms",
                "--p99-limit-ms",
                limit_ms,
                "--max-error-ratio",
                max_error_ratio,
                "--no-verify",
                "--quiet",
            ],
        );
        navaro_loadtest::run(options)
            .await
            .expect("the run completes")
    };
    let report = step("1000000000", "1").await;
    let table = report.table();
    let rates = |run: &navaro_loadtest::report::Run| -> Vec<f64> {
        run.steps.iter().map(|p| p.target_rps).collect()
    };
    for run in [report.baseline.as_ref().unwrap(), &report.mix] {
        assert_eq!(rates(run), [50.0, 100.0, 200.0, 400.0], "{table}");
        assert_eq!(run.sustainable_rps, Some(400.0), "{table}");
    }
    assert!(table.contains("highest sustainable rate 400/s"), "{table}");
    assert!(
        table.contains("a failed step is run again up to 1 time(s)"),
        "{table}"
    );
    let drawn = std::fs::read_to_string(&throughput).expect("the throughput plot, beside --plot");
    assert!(
        drawn.contains("mix held 400/s") && drawn.contains("/healthz held 400/s"),
        "{drawn}"
    );
    let again = dir.path().join("again.svg");
    let written =
        navaro_loadtest::replot(&json, Some(&again)).expect("drawn from the saved report");
    assert_eq!(written, again);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), drawn);

    let report = step("0.000001", "0.01").await;
    let table = report.table();
    for run in [report.baseline.as_ref().unwrap(), &report.mix] {
        assert_eq!(rates(run), [50.0, 50.0], "{table}");
        assert!(run.steps.iter().all(|p| !p.sustainable), "{table}");
        assert_eq!(run.sustainable_rps, None, "{table}");
    }
    let drawn = std::fs::read_to_string(&throughput).unwrap();
    assert!(drawn.contains("mix: no step held"), "{drawn}");
}

/// The generator's status-only GET counts a 200's body without keeping it, and keeps
/// the body of anything else so its error code can be counted.
#[tokio::test]
async fn a_status_only_get_counts_a_200_and_keeps_an_error() {
    let server = Server::start();
    let http = navaro_loadtest::http::Http::new(&server.base).unwrap();
    let (ok, received) =
        navaro_loadtest::http::counting_bytes(http.get_status("/openapi.json", None)).await;
    let ok = ok.unwrap();
    assert_eq!(ok.status, 200);
    assert!(ok.body.is_empty());
    let whole = http.get("/openapi.json").await.unwrap();
    assert_eq!(received, whole.body.len() as u64);
    assert!(received > 1_000, "{received}");
    let missing = http
        .get_status(
            "/v1/establishments/00000000-0000-0000-0000-000000000000",
            None,
        )
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "not_found");
}

/// A queue lane whose step was refused because the queue moved behind its back (or whose
/// answer was lost) reads the queue and goes on from where its staff member really
/// stands, instead of failing every call after it; the customer of a ticket that ended
/// meanwhile may join again, and a customer already in the queue stays out of the
/// waiting room. Overloaded steps used to leave lanes behind that failed every later
/// step of a search with `409 conflict`.
#[tokio::test]
async fn a_queue_lane_that_lost_track_reads_the_queue_and_goes_on() {
    use navaro_loadtest::ops::{Draw, OpKind, Outcome, execute};
    use navaro_loadtest::world::LaneStage;
    use reqwest::Method;

    let server = Server::start();
    let options = small_world(&server, ["--seed-bookings", "0"]);
    let http = navaro_loadtest::http::Http::new(&server.base).unwrap();
    let world = navaro_loadtest::world::World::provision(&http, &options)
        .await
        .expect("the world is provisioned");
    // r = 0 draws establishment 0, and an advance takes the last lane and puts it back:
    // every advance below moves the same lane.
    let e = &world.establishments[0];
    let lane_staff = e.lanes.lock().unwrap().last().unwrap().staff;
    let staff = e.staff[lane_staff].clone();
    let advance = async || execute(&world, Draw::QueueAdvance, 0).await;
    let post = async |path: &str, auth, body: String| {
        let reply = world.http.send(Method::POST, path, Some(auth), Some(body));
        reply.await.unwrap().status
    };
    let error = |what: &str| Outcome::Error(what.to_owned());

    // Behind the lane's back, the owner calls a walk-in for its staff member.
    let walk_in = format!(r#"{{"service_id":"{}","name":"walk-in"}}"#, e.services[0]);
    assert_eq!(post(&e.queue_path, &e.owner.auth, walk_in).await, 201);
    let call = format!(r#"{{"staff_id":"{staff}"}}"#);
    assert_eq!(post(&e.call_next_path, &e.owner.auth, call).await, 200);
    assert_eq!(advance().await, (OpKind::QueueCall, error("409 conflict")));
    assert_eq!(advance().await, (OpKind::QueueResync, Outcome::Ok));
    assert_eq!(advance().await, (OpKind::QueueStart, Outcome::Ok));
    assert_eq!(advance().await, (OpKind::QueueFinish, Outcome::Ok));
    assert_eq!(
        advance().await,
        (OpKind::QueueCall, Outcome::Expected("queue_empty"))
    );

    // The lane calls a customer's ticket, which the owner then marks a no-show.
    let customers = e.waiting_room.lock().unwrap().len();
    let first = e.waiting_room.lock().unwrap().front().copied().unwrap();
    assert_eq!(
        execute(&world, Draw::QueueJoin, 0).await,
        (OpKind::QueueJoin, Outcome::Ok)
    );
    assert_eq!(advance().await, (OpKind::QueueCall, Outcome::Ok));
    let ticket = match &e.lanes.lock().unwrap().last().unwrap().stage {
        LaneStage::Called { ticket, customer } => {
            assert_eq!(*customer, Some(first));
            ticket.clone()
        }
        other => panic!("the lane called the ticket: {other:?}"),
    };
    let no_show = format!("{}/{ticket}/no-show", e.queue_path);
    assert_eq!(post(&no_show, &e.owner.auth, "{}".into()).await, 200);
    assert_eq!(advance().await, (OpKind::QueueStart, error("409 conflict")));
    assert!(!e.waiting_room.lock().unwrap().contains(&first));
    assert_eq!(advance().await, (OpKind::QueueResync, Outcome::Ok));
    assert!(matches!(
        e.lanes.lock().unwrap().last().unwrap().stage,
        LaneStage::Idle
    ));
    // No ticket of theirs is active any more: the customer is back.
    assert_eq!(e.waiting_room.lock().unwrap().len(), customers);
    assert_eq!(e.waiting_room.lock().unwrap().back(), Some(&first));

    // A customer who joined behind the generator's back gets a 409 from its join, and
    // stays out of the waiting room until the lane has served that ticket.
    let next = e.waiting_room.lock().unwrap().front().copied().unwrap();
    let join = format!(r#"{{"service_id":"{}","name":"own"}}"#, e.services[0]);
    assert_eq!(
        post(&e.queue_path, &world.customers[next].auth, join).await,
        201
    );
    assert_eq!(
        execute(&world, Draw::QueueJoin, 0).await,
        (OpKind::QueueJoin, error("409 conflict"))
    );
    assert!(!e.waiting_room.lock().unwrap().contains(&next));
    assert_eq!(advance().await, (OpKind::QueueCall, Outcome::Ok));
    assert_eq!(advance().await, (OpKind::QueueStart, Outcome::Ok));
    assert_eq!(advance().await, (OpKind::QueueFinish, Outcome::Ok));
    assert_eq!(e.waiting_room.lock().unwrap().back(), Some(&next));
}

/// A walk-in who finds `--queue-balk` of the run's customers already in the queue reads
/// it instead of joining, so the run's queues stay short; `0` joins until every
/// customer is queued.
#[tokio::test]
async fn a_walk_in_reads_a_long_queue_instead_of_joining_it() {
    use navaro_loadtest::ops::{Draw, OpKind, Outcome, execute};
    use reqwest::Method;

    let server = Server::start();
    let http = navaro_loadtest::http::Http::new(&server.base).unwrap();
    let provision = async |balk: &str| {
        let options = small_world(&server, ["--seed-bookings", "0", "--queue-balk", balk]);
        let world = navaro_loadtest::world::World::provision(&http, &options).await;
        world.expect("the world is provisioned")
    };
    // r = 0 draws establishment 0 every time.
    let walk_in = async |world| execute(world, Draw::QueueJoin, 0).await;
    let tickets = async |world: &navaro_loadtest::world::World| {
        let e = &world.establishments[0];
        let reply = world
            .http
            .send(Method::GET, &e.queue_path, Some(&e.owner.auth), None);
        let queue = reply.await.unwrap().json().unwrap();
        queue["tickets"].as_array().map(Vec::len)
    };
    let joined = (OpKind::QueueJoin, Outcome::Ok);
    let read = (OpKind::QueueRead, Outcome::Ok);

    let world = provision("2").await;
    assert_eq!(walk_in(&world).await, joined);
    assert_eq!(walk_in(&world).await, joined);
    assert_eq!(walk_in(&world).await, read);
    assert_eq!(walk_in(&world).await, read);
    assert_eq!(tickets(&world).await, Some(2));
    assert_eq!(
        world.establishments[0].waiting_room.lock().unwrap().len(),
        2
    );

    let world = provision("0").await;
    for _ in 0..4 {
        assert_eq!(walk_in(&world).await, joined);
    }
    assert_eq!(
        walk_in(&world).await,
        (
            OpKind::QueueJoin,
            Outcome::Skipped("every customer already queued")
        )
    );
    assert_eq!(tickets(&world).await, Some(4));
}
