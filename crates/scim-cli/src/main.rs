//! `scim`: the command-line SCIM 2.0 client, built on `scim-client`.

mod cli;
mod commands;
mod config;
mod csvmap;
mod error;
mod export;
mod import;
mod output;
mod paths;
mod progress;

use clap::Parser;
use cli::{Cli, Command};
use config::{Auth, Connection};
use error::Result;
use scim_client::{Client, ClientCredentials, SecretMethod};
use std::process::ExitCode;

fn env_var(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

fn build_client(conn: &Connection) -> Result<Client> {
    let mut b = Client::builder(conn.url.trim_end_matches('/'));
    match &conn.auth {
        Auth::None => {}
        Auth::Bearer(t) => b = b.bearer_token(t.clone()),
        Auth::ClientCredentials {
            client_id,
            secret,
            token_url,
            scopes,
        } => {
            b = b.client_credentials(ClientCredentials {
                client_id: client_id.clone(),
                client_secret: secret.clone(),
                token_url: token_url.clone(),
                scopes: scopes.clone(),
                method: SecretMethod::Basic,
            })
        }
    }
    for (k, v) in &conn.headers {
        b = b.header(k, v);
    }
    Ok(b.build()?)
}

async fn run(cli: Cli) -> Result<()> {
    let profile = config::load_profile(cli.conn.profile.as_deref(), &env_var)?;
    let conn = config::resolve(&cli.conn, &profile, &env_var)?;
    let client = build_client(&conn)?;
    let out = conn.output;
    match cli.command {
        Command::Users { action } => commands::users(&client, action, out).await,
        Command::Groups { action } => commands::groups(&client, action, out).await,
        Command::Devices { action } => commands::devices(&client, action, out).await,
        Command::Discover => commands::discover(&client, out).await,
        Command::Export(args) => export::run(&client, &args).await,
        Command::Import(args) => import::run(&client, &args).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scim: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scim: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_before_or_after_the_subcommand() {
        let a = Cli::try_parse_from([
            "scim", "--url", "http://x", "-o", "json", "users", "get", "1",
        ])
        .unwrap();
        let b = Cli::try_parse_from([
            "scim", "users", "get", "1", "--url", "http://x", "-o", "json",
        ])
        .unwrap();
        assert_eq!(a.conn.url, b.conn.url);
        assert_eq!(a.conn.output, b.conn.output);
        assert!(
            matches!(b.command, Command::Users { action: cli::UserAction::Get { ref id } } if id == "1")
        );
    }

    #[test]
    fn create_needs_file_or_user_name() {
        assert!(Cli::try_parse_from(["scim", "users", "create"]).is_err());
        assert!(Cli::try_parse_from([
            "scim",
            "users",
            "create",
            "--file",
            "f",
            "--user-name",
            "x"
        ])
        .is_err());
        assert!(Cli::try_parse_from([
            "scim",
            "users",
            "create",
            "--user-name",
            "x",
            "--email",
            "a@b",
            "--email",
            "c@d"
        ])
        .is_ok());
        assert!(Cli::try_parse_from([
            "scim", "users", "patch", "1", "--file", "f", "--remove", "title"
        ])
        .is_err());
    }

    #[test]
    fn members_need_a_user() {
        assert!(Cli::try_parse_from(["scim", "groups", "members", "add", "g"]).is_err());
        assert!(
            Cli::try_parse_from(["scim", "groups", "members", "remove", "g", "u1", "u2"]).is_ok()
        );
    }
}
