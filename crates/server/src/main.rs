//! The `persist-server` binary: parses the command line ([`cli`]), sets up logging and the tokio
//! runtime, then serves until SIGTERM / Ctrl-C or runs a token command. Everything it calls is the
//! library's public API, the same one tests and other crates use.

mod cli;

use std::process::ExitCode;

use persist_server::{DatabaseConfig, ServerError};

use cli::{Cli, Command, ServeArgs, TokenCommand};

fn main() -> ExitCode {
    let cli = Cli::from_process();
    let serve = match &cli.command {
        Some(Command::Serve(args)) => Some(args.clone()),
        None => Some(cli.serve.clone()),
        Some(Command::Token(_)) => None,
    };
    init_logging(serve.as_ref().map_or("warn", |args| args.log.as_str()));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("persist-server: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match (serve, cli.command) {
            (Some(args), _) => serve_until_signal(args).await,
            (None, Some(Command::Token(command))) => run_token_command(command).await,
            (None, _) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("persist-server: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `persist-server token create|list|revoke`.
async fn run_token_command(command: TokenCommand) -> Result<(), ServerError> {
    match command {
        TokenCommand::Create { user, database } => {
            let database = DatabaseConfig::parse(&database);
            let token = persist_server::create_token(&database, &user).await?;
            println!("created a token for user {user:?} in {}", database.describe());
            println!("{token}");
        }
        TokenCommand::List { user, database } => {
            let database = DatabaseConfig::parse(&database);
            let tokens = persist_server::list_tokens(&database, user.as_deref()).await?;
            print!("{}", cli::token_table(&tokens));
        }
        TokenCommand::Revoke { user, id, database } => {
            let database = DatabaseConfig::parse(&database);
            let revoked = persist_server::revoke_tokens(&database, &user, id.as_deref()).await?;
            println!("revoked {revoked} token(s) of user {user:?} in {}", database.describe());
            if revoked == 0 {
                // A script revoking a token must learn that nothing matched.
                return Err(ServerError::Config(match id {
                    Some(id) => format!("user {user:?} has no token with id {id}"),
                    None => format!("user {user:?} has no tokens"),
                }));
            }
        }
    }
    Ok(())
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(default))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

async fn serve_until_signal(args: ServeArgs) -> Result<(), ServerError> {
    let config = args.to_config();
    tracing::info!(database = %config.database.describe(), "starting");
    let server = persist_server::start_on(args.listen, config).await?;
    // A stable line on stdout: scripts and tests read the address from it.
    println!("persist-server listening on {}", server.base_url());
    let handle = server.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        handle.shutdown();
    });
    server.wait().await
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("signal received");
}
