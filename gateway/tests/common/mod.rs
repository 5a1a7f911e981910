//! The test harness: the real `navaro` binary on port 0, and a small client.
#![allow(dead_code)]

pub mod localstripe;
pub mod proxy;
pub mod shop;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// How long the binary may take to print its bound address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `navaro serve`, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    pub base: String,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub client: reqwest::Client,
    _data_dir: tempfile::TempDir,
    /// The fresh Postgres database of this server, dropped with it.
    postgres: Option<FreshDatabase>,
}

/// The Postgres admin URL tests create their databases with (as in the README).
pub const POSTGRES_URL_ENV: &str = "NAVARO_TEST_POSTGRES_URL";
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// `NAVARO_TEST_BACKEND=postgres` runs every test server on Postgres; by default they
/// run on the default SQLite file in their own data directory, and the tests that
/// matter most for storage also run on Postgres explicitly ([`Server::start_postgres`]).
pub const BACKEND_ENV: &str = "NAVARO_TEST_BACKEND";

fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

struct FreshDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl FreshDatabase {
    fn create(admin_url: &str) -> anyhow::Result<FreshDatabase> {
        let name = format!("navaro_gw_{}", uuid::Uuid::new_v4().simple());
        psql(admin_url, &format!("CREATE DATABASE {name}"))?;
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        Ok(FreshDatabase {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }
}

/// A fresh Postgres database that several servers share (the nodes of a cluster),
/// dropped when this is.
pub struct SharedDatabase(FreshDatabase);

impl SharedDatabase {
    pub fn create() -> SharedDatabase {
        SharedDatabase(FreshDatabase::create(&postgres_admin_url()).expect("Postgres is reachable"))
    }

    pub fn url(&self) -> &str {
        &self.0.url
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// The rows of a query, as `psql -tA` prints them (one line a row, `|` between columns).
pub fn psql_rows(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-tA", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `host:port` of the Postgres the tests use.
pub fn postgres_address() -> String {
    let url = postgres_admin_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

/// The same Postgres URL with its port replaced.
fn via_port(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, host) = authority
        .rsplit_once('@')
        .map_or(("", authority), |(u, h)| (u, h));
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let at = if userinfo.is_empty() { "" } else { "@" };
    format!("{scheme}://{userinfo}{at}{host}:{port}/{path}")
}

fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let status = Command::new("psql")
        .args([url, "-q", "-c", sql])
        .stdout(Stdio::null())
        .status()
        .context("running psql")?;
    anyhow::ensure!(status.success(), "psql failed: {sql}");
    Ok(())
}

/// Generous limits so tests exercise behaviour, not the default rate limits (tests of
/// the limits set their own).
pub const TEST_ENV: &[(&str, &str)] = &[
    ("NAVARO_LIMITS__PER_IP_PER_SECOND", "100000"),
    ("NAVARO_LIMITS__PER_IP_BURST", "100000"),
    ("NAVARO_LIMITS__PER_USER_PER_SECOND", "100000"),
    ("NAVARO_LIMITS__PER_USER_BURST", "100000"),
    ("NAVARO_LIMITS__LOGIN_PER_MINUTE", "100000"),
    ("NAVARO_LIMITS__LOGIN_BURST", "100000"),
    ("NAVARO_LIMITS__BOOKINGS_PER_MINUTE", "100000"),
    ("NAVARO_LIMITS__BOOKINGS_BURST", "100000"),
    // No journal-lag limit: on a CI box busy with other tests a commit can take longer
    // than the default 500 ms, and a stray `503 overloaded` would fail tests that count
    // errors. `outage.rs` sets one to test it.
    ("NAVARO_ENGINE__MAX_JOURNAL_LAG_MS", "0"),
];

impl Server {
    pub fn start() -> Server {
        Self::start_with(&[]).expect("server starts")
    }

    /// Start with extra `NAVARO_*` variables (applied after [`TEST_ENV`]).
    pub fn start_with(env: &[(&str, &str)]) -> anyhow::Result<Server> {
        Self::spawn(&["serve"], env)
    }

    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Server> {
        let on_postgres = std::env::var(BACKEND_ENV).is_ok_and(|b| b == "postgres");
        Self::spawn_with_backend(args, env, on_postgres)
    }

    /// `navaro serve` on a fresh Postgres database, whatever `NAVARO_TEST_BACKEND` says.
    pub fn start_postgres() -> Server {
        Self::start_postgres_with(&[])
    }

    /// [`Server::start_postgres`] with extra `NAVARO_*` variables.
    pub fn start_postgres_with(env: &[(&str, &str)]) -> Server {
        Self::spawn_with_backend(&["serve"], env, true).expect("server starts on Postgres")
    }

    /// `navaro serve` on a fresh Postgres database that it reaches through `127.0.0.1:
    /// <port>` (a [`proxy::Proxy`] a test can cut) instead of Postgres's own port.
    pub fn start_postgres_via(port: u16) -> anyhow::Result<Server> {
        let data_dir = tempfile::tempdir()?;
        let mut db = FreshDatabase::create(&postgres_admin_url())?;
        let url = db.url.clone();
        db.url = via_port(&url, port);
        let mut server = Self::spawn_on(&["serve"], &[], data_dir, Some(db))?;
        // Tests read the database directly through its own port.
        if let Some(db) = server.postgres.as_mut() {
            db.url = url;
        }
        Ok(server)
    }

    fn spawn_with_backend(
        args: &[&str],
        env: &[(&str, &str)],
        on_postgres: bool,
    ) -> anyhow::Result<Server> {
        let data_dir = tempfile::tempdir()?;
        let postgres = if on_postgres {
            Some(FreshDatabase::create(&postgres_admin_url())?)
        } else {
            None
        };
        Self::spawn_on(args, env, data_dir, postgres)
    }

    /// Kill the process outright (SIGKILL: no shutdown, no snapshot) and start a new
    /// one on the same data directory and database.
    pub fn crash_and_restart(self) -> anyhow::Result<Server> {
        self.crash_and_restart_with(&[])
    }

    /// [`Server::crash_and_restart`] with extra `NAVARO_*` variables for the new process.
    pub fn crash_and_restart_with(mut self, env: &[(&str, &str)]) -> anyhow::Result<Server> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data_dir = std::mem::replace(&mut self._data_dir, tempfile::tempdir()?);
        let postgres = self.postgres.take();
        drop(self);
        Self::spawn_on(&["serve"], env, data_dir, postgres)
    }

    fn spawn_on(
        args: &[&str],
        env: &[(&str, &str)],
        data_dir: tempfile::TempDir,
        postgres: Option<FreshDatabase>,
    ) -> anyhow::Result<Server> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_navaro"));
        command
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("NAVARO_CONFIG")
            .env("NAVARO_HTTP__LISTEN", "127.0.0.1:0")
            .env("NAVARO_DATA_DIR", data_dir.path())
            .env("NAVARO_LOG__FILTER", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // The developer's own NAVARO_* settings must not leak into a test server.
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("NAVARO_")) {
            command.env_remove(k);
        }
        for (k, v) in TEST_ENV.iter().chain(env) {
            command.env(k, v);
        }
        if let Some(db) = &postgres {
            command.env("NAVARO_DATABASE_URL", &db.url);
        }
        let mut child = command.spawn().context("spawning navaro")?;
        let stdout = child.stdout.take().context("stdout")?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listening")
                    && let Some(port) = parse_port(&line)
                {
                    let _ = port_tx.send(port);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let port = match port_rx.recv_timeout(START_TIMEOUT) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                bail!(
                    "navaro did not report its port; logs: {:?}",
                    logs.lock().unwrap()
                );
            }
        };
        Ok(Server {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            logs,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()?,
            _data_dir: data_dir,
            postgres,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL the process and wait for it (no shutdown, nothing flushed).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The value of `key=` in the first log line that has it (`internal=` of a cluster
    /// node, for instance).
    pub fn logged(&self, key: &str) -> Option<String> {
        let needle = format!("{key}=");
        self.logs.lock().unwrap().iter().find_map(|line| {
            let at = line.find(&needle)? + needle.len();
            Some(
                line[at..]
                    .split_whitespace()
                    .next()?
                    .trim_matches('"')
                    .to_owned(),
            )
        })
    }

    /// The URL of this server's own Postgres database, when it runs on one.
    pub fn database_url(&self) -> Option<&str> {
        self.postgres.as_ref().map(|db| db.url.as_str())
    }

    /// The server's resident memory in KiB (Linux).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// CPU time the server has used so far (user + system), from /proc (Linux).
    pub fn cpu_time(&self) -> Duration {
        process_cpu_time(&self.pid().to_string())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Send SIGTERM and wait for the exit status (at most `timeout`).
    pub fn terminate(mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// A JSON call: returns status, headers and the body as JSON (Null if empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body read");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, headers, value)
    }

    /// Register a fresh user; returns (token, user id).
    pub async fn register(&self, name: &str) -> (String, String) {
        let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
        let (status, _, body) = self
            .call(
                Method::POST,
                "/v1/auth/register",
                None,
                Some(json!({"email": email, "password": "correct horse battery", "name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["token"].as_str().unwrap().to_owned(),
            body["user"]["id"].as_str().unwrap().to_owned(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop(self.postgres.take());
    }
}

fn parse_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("addr=")? + 5..];
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    addr.rsplit(':').next()?.parse().ok()
}

/// The error code of an error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

/// The request headers an answer says it varies with, over all its `Vary` lines, in
/// order.
pub fn vary(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .get_all(reqwest::header::VARY)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect()
}

const TZ: &str = "America/Sao_Paulo";

/// A date a few days ahead in the establishment's zone (clear of minimum notice).
pub fn ahead(days: i64) -> Date {
    let today = TimeZone::get(TZ)
        .unwrap()
        .to_datetime(Timestamp::now())
        .date();
    today.checked_add(jiff::Span::new().days(days)).unwrap()
}

/// An establishment with one staff member working every day 09:00-18:00 and a 30-minute
/// service; returns (owner token, establishment id, staff id, service id).
pub async fn setup(server: &Server, max_future: u32) -> (String, String, String, String) {
    let (owner, _) = server.register("owner").await;
    let (status, _, est) = server
        .call(
            Method::POST,
            "/v1/establishments",
            Some(&owner),
            Some(
                json!({"name": "Barbearia", "timezone": TZ, "slot_minutes": 15,
                        "max_future_bookings_per_customer": max_future}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{est}");
    let id = est["id"].as_str().unwrap().to_owned();
    let day = json!([["09:00", "18:00"]]);
    let hours =
        json!({"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day});
    let (status, _, staff) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/staff"),
            Some(&owner),
            Some(json!({"name": "Carlos", "hours": hours})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{staff}");
    let staff_id = staff["id"].as_str().unwrap().to_owned();
    let (status, _, service) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/services"),
            Some(&owner),
            Some(json!({"name": "Corte", "duration_minutes": 30, "price_cents": 5000, "staff_ids": [staff_id]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{service}");
    (
        owner,
        id,
        staff_id,
        service["id"].as_str().unwrap().to_owned(),
    )
}

pub async fn slots(server: &Server, id: &str, service: &str, from: Date) -> Vec<Value> {
    let (status, _, body) = server
        .call(
            Method::GET,
            &format!(
                "/v1/establishments/{id}/availability?service_id={service}&from={from}&days=1"
            ),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["slots"].as_array().unwrap().clone()
}

/// User plus system CPU of a process so far; `pid` is a number or `self`.
pub fn process_cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are 14th and 15th.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// A server's data directory and database after [`Server::kill`], to work on while no
/// server runs and then [`Stopped::start`] again.
pub struct Stopped {
    data_dir: tempfile::TempDir,
    postgres: Option<FreshDatabase>,
}

impl Server {
    /// `navaro serve` on its default SQLite file, whatever `NAVARO_TEST_BACKEND` says.
    pub fn start_sqlite() -> Server {
        Self::spawn_with_backend(&["serve"], &[], false).expect("server starts on SQLite")
    }

    /// Kill the process outright (as [`Server::crash_and_restart`] does) and keep its
    /// data directory and database.
    pub fn kill(mut self) -> anyhow::Result<Stopped> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data_dir = std::mem::replace(&mut self._data_dir, tempfile::tempdir()?);
        let postgres = self.postgres.take();
        Ok(Stopped { data_dir, postgres })
    }
}

impl Stopped {
    /// The URL of the server's database: its Postgres one, or the default SQLite file
    /// in its data directory.
    pub fn database_url(&self) -> String {
        match &self.postgres {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}/navaro.db", self.data_dir.path().display()),
        }
    }

    /// `navaro serve` again on the same data directory and database, with extra
    /// `NAVARO_*` variables.
    pub fn start(self, env: &[(&str, &str)]) -> anyhow::Result<Server> {
        Server::spawn_on(&["serve"], env, self.data_dir, self.postgres)
    }
}
