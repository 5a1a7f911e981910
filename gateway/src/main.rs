//! The `navaro` binary: load settings, then serve, migrate or load the demo.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use navaro_config::Settings;
use navaro_gateway::{Application, demo, stores, telemetry};

/// mimalloc: under load glibc's malloc and free were a quarter of the server's samples
/// (the first profile in docs/benchmarks-history.md); mimalloc's thread-local free lists make them cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "navaro",
    version,
    about = "Navaro booking and live-queue server"
)]
struct Cli {
    /// TOML settings file (also $NAVARO_CONFIG); NAVARO_* variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Load a demo establishment (staff, services, bookings), then serve.
    Demo,
    /// Print the OpenAPI document (`/openapi.json`) and exit: what the TypeScript
    /// client's types are generated from, with no server running.
    Openapi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Cmd::Openapi) = cli.command {
        // Needs no settings: the document is the code's.
        println!("{}", navaro_gateway::openapi::document());
        return Ok(());
    }
    let settings = Settings::load(cli.config.as_deref()).context("loading settings")?;
    telemetry::init_logging(&settings.log);
    tracing::info!(
        dev_mode = settings.dev_mode,
        postgres = settings.uses_postgres(),
        "starting"
    );
    if settings.dev_mode {
        tracing::warn!("dev mode: built-in signing key allowed; never run this in production");
    }
    match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::Serve => {
            let app = Application::build(settings).await.context("starting")?;
            app.run_until_stopped().await.context("serving")?;
        }
        Cmd::Migrate => {
            stores::migrate(settings.database_url().expose())
                .await
                .context("migrating")?;
            tracing::info!("migrations applied");
        }
        // Printed above, before the settings (and the logs, on stdout) were set up.
        Cmd::Openapi => {}
        Cmd::Demo => {
            let app = Application::build(settings).await.context("starting")?;
            let summary = demo::load(app.state()).await.context("loading demo data")?;
            let ip = app.state().settings.http.listen.ip();
            let base = format!("http://{ip}:{}", app.port());
            tracing::info!(
                establishment_id = %summary.establishment_id,
                owner = %summary.owner_email,
                customers = ?summary.customer_emails,
                bookings = summary.bookings,
                password = demo::DEMO_PASSWORD,
                pro_board = %format!("{base}/pro/"),
                docs = %format!("{base}/docs"),
                "demo loaded"
            );
            app.run_until_stopped().await.context("serving")?;
        }
    }
    Ok(())
}
