//! Command-line entry: parses options, sets up logging, binds the port and runs the server
//! until SIGTERM or Ctrl-C. Every startup failure is one line on stderr and a non-zero exit.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::config::{AdminAction, Cli, Command, Config, ServeArgs, ServiceTokenAction};

/// A command other than `serve` that runs to completion and prints one line.
enum Task {
    RotateKey,
    Admin { username: String, grant: bool },
    Backup(std::path::PathBuf),
    ServiceToken { name: String, create: bool },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let (args, task, seed): (ServeArgs, Option<Task>, _) = match cli.command {
        Command::Serve(args) => (args, None, None),
        Command::RotateKey(args) => (args, Some(Task::RotateKey), None),
        Command::BenchSeed(seed) => (seed.serve.clone(), None, Some(seed)),
        Command::Admin { action } => {
            let (a, grant) = match action {
                AdminAction::Grant(a) => (a, true),
                AdminAction::Revoke(a) => (a, false),
            };
            let task = Task::Admin {
                username: a.name,
                grant,
            };
            (a.serve, Some(task), None)
        }
        Command::Backup { file, serve } => (serve, Some(Task::Backup(file)), None),
        Command::ServiceToken { action } => {
            let (a, create) = match action {
                ServiceTokenAction::Create(a) => (a, true),
                ServiceTokenAction::Revoke(a) => (a, false),
            };
            let task = Task::ServiceToken {
                name: a.name,
                create,
            };
            (a.serve, Some(task), None)
        }
    };
    let config = match Config::resolve(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chatnode: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(seed) = seed {
        return crate::bench_seed::main(config, seed);
    }
    init_logging(&config.log_format);
    // Every socket is a file descriptor; the default soft limit (often 1,024) would cap the
    // server far below what it can hold. Take the hard limit the system allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chatnode: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(task) = task {
        let done: anyhow::Result<String> = match task {
            Task::RotateKey => runtime
                .block_on(crate::encryption::rotate_key(&config))
                .map(|s| s.to_string()),
            Task::Admin { username, grant } => {
                runtime.block_on(crate::commands::set_admin(&config, &username, grant))
            }
            Task::Backup(file) => crate::commands::backup(&config, &file),
            Task::ServiceToken { name, create } => {
                runtime.block_on(crate::commands::service_token(&config, &name, create))
            }
        };
        return match done {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("chatnode: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatnode: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = crate::bind(config.listen)?;
    let addr = listener.local_addr()?;
    let server = crate::Server::start(config).await?;
    let roles = server.state().config.roles.names().join(",");
    tracing::info!(%addr, %roles, "chatnode listening");
    server.run(listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

fn init_logging(format: &str) {
    let filter = EnvFilter::try_from_env("CHATNODE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    use std::io::IsTerminal;
    // Colors only on a terminal: logs sent to a file or a collector stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
