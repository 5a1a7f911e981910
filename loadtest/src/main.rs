//! The `navaro-loadtest` binary: parse the options, run, print the table.

use clap::Parser;
use navaro_loadtest::Options;

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if let Some(report) = &options.from_report {
        let path = navaro_loadtest::replot(report, options.throughput_plot.as_deref())?;
        println!("wrote {}", path.display());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads.max(1))
        .enable_all()
        .build()?;
    let report = runtime.block_on(navaro_loadtest::run(options))?;
    println!("{}", report.table());
    if report.verification.as_ref().is_some_and(|v| !v.passed) {
        std::process::exit(1);
    }
    Ok(())
}
