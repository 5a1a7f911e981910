//! The `navaro-loadtest` binary: parse the options, run, print the table.

use clap::Parser;
use navaro_loadtest::Options;

/// The options plus what only the binary decides: its runtime's threads.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    options: Options,
    /// Worker threads of the generator's runtime (it shares the machine with the
    /// server, so fewer threads leave more for the server).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()?;
    let report = runtime.block_on(navaro_loadtest::run(cli.options))?;
    println!("{}", report.table());
    if report.verification.as_ref().is_some_and(|v| !v.passed) {
        std::process::exit(1);
    }
    Ok(())
}
