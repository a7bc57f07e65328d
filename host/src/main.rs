//! The `weir` command line: `weir run <manifest>` and `weir check <manifest>`.

use clap::{Parser, Subcommand};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;
use weir::check::check;
use weir::config::Config;
use weir::filter::FilterEngine;
use weir::live::{Generation, Live};
use weir::server;

/// Weir: a reverse proxy with sandboxed WebAssembly filters.
#[derive(Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve traffic as the manifest says, until SIGINT or SIGTERM.
    Run {
        /// The manifest (TOML).
        manifest: PathBuf,
    },
    /// Validate the manifest and load and init every filter; list every problem.
    Check {
        /// The manifest (TOML).
        manifest: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weir: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Check { manifest } => {
            let report = runtime.block_on(check(&manifest));
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            if report.problems.is_empty() {
                println!("weir check: {}", report.summary);
                ExitCode::SUCCESS
            } else {
                for p in &report.problems {
                    eprintln!("{p}");
                }
                eprintln!("weir check: {} problem(s) found", report.problems.len());
                ExitCode::FAILURE
            }
        }
        Command::Run { manifest } => match runtime.block_on(run(manifest)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("weir: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn run(manifest: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&manifest).map_err(|d| anyhow::anyhow!("invalid manifest:\n{d}"))?;
    let engine = FilterEngine::new()?.with_cache(config.compile_cache.as_deref());
    let filters = server::load_filters(&engine, &config)
        .await
        .map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            anyhow::anyhow!("cannot load filters:\n{}", lines.join("\n"))
        })?;
    let first = Generation::build(1, Arc::new(config), filters);
    first.start_background_tasks();
    let live = Arc::new(Live::new(first));
    server::serve(live, engine, manifest, server::shutdown_signal()).await
}
