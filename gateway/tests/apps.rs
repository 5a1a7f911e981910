//! The apps' suites, run by `cargo test` so that the README's one test command runs
//! them too: the TypeScript client's tests (vitest, against this build's `navaro`,
//! including the check that its generated types match this server's `/openapi.json`),
//! the Pro board's tests in a real headless Chromium (Playwright), both packages' type
//! checks, and the check that the committed `web/dist` (what the binary embeds) is what
//! `web/` builds to.
//!
//! They need Node (>= 20.19, with npm) and Debian's `chromium` (`.ci/run` installs it);
//! a missing one is a failure, never a skip. `npm ci` runs first when `node_modules` is
//! missing or older than `package-lock.json`. The suites run one at a time: they start
//! servers and a browser, and the board's "within 1 s" is not to be measured against
//! another suite's load.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Node's oldest version that Vite 8 and the client's tooling run on.
const MIN_NODE: (u32, u32) = (20, 19);

/// Where `npm ci` records which `package-lock.json` it installed.
const INSTALLED_MARKER: &str = "node_modules/.navaro-installed-lock";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the gateway is in the workspace")
        .to_path_buf()
}

/// One suite at a time, after `npm ci` if needed.
fn ready() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(why) = INSTALLED.get_or_init(install) {
        panic!("{why}");
    }
    guard
}

fn install() -> Result<(), String> {
    let version = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node is required for the apps' tests (Node >= 20.19): {e}"))?;
    let text = String::from_utf8_lossy(&version.stdout);
    let mut parts = text.trim().trim_start_matches('v').split('.');
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if (major, minor) < MIN_NODE {
        return Err(format!(
            "Node {}.{} or newer is required, found {}",
            MIN_NODE.0,
            MIN_NODE.1,
            text.trim()
        ));
    }
    let lock = std::fs::read(repo().join("package-lock.json"))
        .map_err(|e| format!("package-lock.json: {e}"))?;
    let installed = std::fs::read(repo().join(INSTALLED_MARKER)).unwrap_or_default();
    if installed != lock {
        run(
            "npm ci",
            Command::new("npm").args(["ci", "--no-audit", "--no-fund"]),
            &repo(),
        )?;
        std::fs::write(repo().join(INSTALLED_MARKER), &lock)
            .map_err(|e| format!("{INSTALLED_MARKER}: {e}"))?;
    }
    Ok(())
}

/// Run a command in `dir`; its output goes into the error when it fails.
fn run(what: &str, command: &mut Command, dir: &Path) -> Result<String, String> {
    let output = command
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("FORCE_COLOR", "0")
        .env("CI", "true")
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!("{what} failed ({}):\n{text}", output.status))
    }
}

fn npx(what: &str, args: &[&str], dir: &str, env: &[(&str, &str)]) {
    let mut command = Command::new("npx");
    command.args(["--no-install"]).args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    // The developer's own settings must not reach the servers the suites start.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("NAVARO_")) {
        command.env_remove(k);
    }
    command.env("NAVARO_BIN", env!("CARGO_BIN_EXE_navaro"));
    match run(what, &mut command, &repo().join(dir)) {
        Ok(output) => println!("{output}"),
        Err(why) => panic!("{why}"),
    }
}

#[test]
fn typescript_client_against_the_real_binary() {
    let _one = ready();
    npx(
        "the TypeScript client's tests",
        &["vitest", "run"],
        "clients/typescript",
        &[],
    );
}

#[test]
fn pro_board_in_chromium() {
    let _one = ready();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists(),
        "no Chromium at {chromium}: `apt-get install -y chromium` (.ci/run does), or set CHROMIUM"
    );
    npx(
        "the Pro board's tests in Chromium",
        &["vitest", "run"],
        "web",
        &[("CHROMIUM", &chromium)],
    );
}

#[test]
fn typescript_type_checks() {
    let _one = ready();
    npx(
        "tsc (client)",
        &["tsc", "-p", "tsconfig.json", "--noEmit"],
        "clients/typescript",
        &[],
    );
    npx(
        "tsc (client build)",
        &[
            "tsc",
            "-p",
            "tsconfig.build.json",
            "--outDir",
            &temp("client-dist"),
        ],
        "clients/typescript",
        &[],
    );
    npx(
        "tsc (board)",
        &["tsc", "-p", "tsconfig.json", "--noEmit"],
        "web",
        &[],
    );
}

#[test]
fn committed_board_build_is_what_web_builds_to() {
    let _one = ready();
    let out = temp("pro-dist");
    npx(
        "vite build",
        &["vite", "build", "--outDir", &out, "--emptyOutDir"],
        "web",
        &[],
    );
    let built = files(Path::new(&out));
    let committed = files(&repo().join("web/dist"));
    let names = |f: &[(String, Vec<u8>)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&committed),
        names(&built),
        "web/dist is stale: run `npm run build --workspace @navaro/pro-board` and commit web/dist"
    );
    for ((name, committed), (_, built)) in committed.iter().zip(&built) {
        assert!(
            committed == built,
            "web/dist/{name} differs from the build: run `npm run build --workspace @navaro/pro-board` and commit web/dist"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// A fresh directory path under the system's temp dir.
fn temp(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "navaro-{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    dir.to_string_lossy().into_owned()
}

/// Every file under `root`, sorted, with its bytes.
fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}
