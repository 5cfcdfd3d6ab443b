//! List users, every page, as a stream.
//!
//! ```sh
//! cargo run -p scim-client --example list_users -- [BASE_URL] [FILTER]
//! ```
//! BASE_URL defaults to `$SCIM_URL`, then `http://127.0.0.1:8080/scim/v2`.
//! Credentials from the environment: `SCIM_TOKEN` (a bearer token), or
//! `SCIM_CLIENT_ID` + `SCIM_CLIENT_SECRET` (OAuth client_credentials, token
//! endpoint discovered; `SCIM_SCOPES` optional), or none.

mod common;

use futures_util::StreamExt;
use scim_client::SearchRequest;
use std::env;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = env::args().skip(1);
    let url = args
        .next()
        .or_else(|| env::var("SCIM_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8080/scim/v2".into());
    let filter = args.next();
    let client = common::client_from_env(&url)?;

    let caps = client.discover().await?;
    eprintln!(
        "{url}: paging by {}",
        if caps.cursor_paging {
            "cursor"
        } else {
            "index"
        }
    );
    let q = SearchRequest {
        filter,
        sort_by: Some("userName".into()),
        ..SearchRequest::default()
    };
    let mut users = Box::pin(client.users().search(q));
    let mut n = 0;
    while let Some(user) = users.next().await {
        let user = user?;
        n += 1;
        println!(
            "{}\t{}\t{}",
            user.id.as_deref().unwrap_or("-"),
            user.user_name,
            user.primary_email().unwrap_or("-")
        );
    }
    eprintln!("{n} users");
    Ok(())
}
