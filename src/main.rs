//! The `relurl` binary: command line → configuration → [`relurl::app::run`].

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use relurl::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

// Measured on the redirect + click path: glibc malloc spent ~12% of CPU in
// malloc/free/consolidate under load; mimalloc's thread-local pages avoid it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "relurl",
    version,
    about = "Link shortener with signed real-time click webhooks"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Configuration file (default: $RELURL_CONFIG, else config/relurl.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Validate the configuration and print the effective listen address.
    CheckConfig,
    /// The admin token (the one credential that creates accounts).
    AdminToken {
        #[command(subcommand)]
        action: AdminTokenAction,
    },
}

#[derive(Subcommand)]
enum AdminTokenAction {
    /// Replace the stored admin token with a new one, printed once. Run it with
    /// the server stopped (embedded store); scylla nodes read it at start.
    Reset,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match relurl::config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("relurl: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&config.log);
    if matches!(cli.command, Some(Command::CheckConfig)) {
        println!("configuration ok; would listen on {}", config.server.listen);
        return std::process::ExitCode::SUCCESS;
    }
    let reset = matches!(
        cli.command,
        Some(Command::AdminToken {
            action: AdminTokenAction::Reset
        })
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("relurl: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if reset {
        return match runtime.block_on(relurl::app::reset_admin_token(&config)) {
            Ok(token) => {
                println!("new admin token (shown once, store it now): {token}");
                println!(
                    "the old admin token no longer works; start the server (restart every \
                     node on the scylla backend) and use the new one to create accounts"
                );
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("relurl: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(serve(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relurl: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `[log]`, with `RELURL_LOG` (a filter directive) taking precedence over `log.level`.
fn init_logging(log: &LogConfig) {
    let filter =
        EnvFilter::try_from_env("RELURL_LOG").unwrap_or_else(|_| EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A closed log pipe must not take the server down (the default reports
        // write errors with eprintln!, which panics when stderr is gone).
        .log_internal_errors(false);
    match log.format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // Fields at the top level, next to "message", as log shippers expect.
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn serve(config: relurl::config::Config) -> anyhow::Result<()> {
    // Handlers go in before the socket is bound: a SIGTERM that arrives as soon as
    // we say "listening" must still mean a graceful stop.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the SIGINT handler")?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding server.listen {}", config.server.listen))?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    relurl::app::run(config, listener, shutdown).await
}
