//! The `weir` command line: `weir run <manifest>`, `weir check <manifest>`,
//! `weir new-filter <name>`, `weir build [<crate dir>...]` and `weir dev <manifest>`.

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
    /// The process log's format on stderr: `text` or `json` (one object per line); the
    /// level still comes from RUST_LOG.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
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
    /// Make a new filter crate (config, one hook, native tests, README) in <dir>/<name>,
    /// registered in the enclosing Cargo workspace if there is one.
    NewFilter {
        /// Crate and plugin name: lower-case letters, digits and '-' (e.g. rate-guard).
        name: String,
        /// Where to put it.
        #[arg(long, default_value = "plugins")]
        dir: PathBuf,
        /// weir's sdk/ directory, when the enclosing workspace doesn't provide weir-sdk.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Run the proxy and rebuild filter crates when their sources change (the proxy reloads
    /// each new build as it does any plugin change).
    Dev {
        /// The manifest (TOML).
        manifest: PathBuf,
        /// Filter crates to watch; default: plugins/<name>/ for each filter's <name>.wasm.
        #[arg(long = "src")]
        crates: Vec<PathBuf>,
    },
    /// Build filter crates to Wasm components (plugin profile, wasm32-wasip2), check each is
    /// a filter this weir loads, and copy it to <out>/<crate dir name>.wasm.
    Build {
        /// The crates' directories.
        #[arg(default_value = ".")]
        dirs: Vec<PathBuf>,
        /// The plugins directory to copy the components into.
        #[arg(long, default_value = "target/plugins")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    weir::handover::remember_command_line();
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
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
        Command::NewFilter { name, dir, sdk } => new_filter(&name, &dir, sdk.as_deref()),
        Command::Build { dirs, out } => build(&dirs, &out),
        Command::Dev { manifest, crates } => match runtime.block_on(dev(manifest, crates)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("weir dev: {e:#}");
                ExitCode::FAILURE
            }
        },
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

fn new_filter(name: &str, dir: &std::path::Path, sdk: Option<&std::path::Path>) -> ExitCode {
    match weir::scaffold::new_filter(name, dir, sdk) {
        Ok(made) => {
            println!("weir new-filter: created {}", made.dir.display());
            match made.workspace {
                Some((ws, true)) => {
                    println!("  added to the workspace members in {}", ws.display())
                }
                Some((ws, false)) => println!("  a member of the workspace {}", ws.display()),
                None => println!("  a standalone crate (its own workspace)"),
            }
            println!("  next: cd {} && cargo test", made.dir.display());
            println!("        cargo build --profile plugin --target wasm32-wasip2");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("weir new-filter: {e}");
            ExitCode::FAILURE
        }
    }
}

fn build(dirs: &[PathBuf], out: &std::path::Path) -> ExitCode {
    let toolchain = match weir::builder::toolchain() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("weir build: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for dir in dirs {
        match weir::builder::build(dir, out, toolchain) {
            Ok(wasm) => println!("weir build: {} -> {}", dir.display(), wasm.display()),
            Err(e) => {
                eprintln!("weir build: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn dev(manifest: PathBuf, crates: Vec<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(&manifest).map_err(|d| anyhow::anyhow!("invalid manifest:\n{d}"))?;
    let crates = weir::dev::crates(&config, &crates);
    if crates.is_empty() {
        anyhow::bail!("no filter crates to watch: pass --src <crate dir> (or keep crates in plugins/<name>/ for filters named <name>.wasm)");
    }
    let toolchain = weir::builder::toolchain()?;
    let out = config.plugins_dir.clone();
    // The first builds run before the proxy loads the filters they make.
    tokio::task::spawn_blocking(move || weir::dev::start(crates, out, toolchain)).await??;
    run(manifest).await
}

async fn run(manifest: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&manifest).map_err(|d| anyhow::anyhow!("invalid manifest:\n{d}"))?;
    let engine = FilterEngine::new()?.with_cache(config.compile_cache.as_deref());
    // Filters that prepare an instance per worker at load prepare one per worker only.
    weir::filter::set_worker_count(config.workers);
    let filters = server::load_filters(&engine, &config)
        .await
        .map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            anyhow::anyhow!("cannot load filters:\n{}", lines.join("\n"))
        })?;
    let purges = weir::cache::shared::PurgeChannel::for_config(&config, &engine)
        .map_err(anyhow::Error::msg)?;
    let mut first = Generation::build(1, Arc::new(config), filters);
    first.share_purges(purges);
    first.start_background_tasks();
    let live = Arc::new(Live::new(first));
    server::serve(live, engine, manifest, server::shutdown_signal()).await
}
