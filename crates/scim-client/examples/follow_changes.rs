//! Follow scimd's `/Changes` feed: print every change, then poll for more.
//!
//! ```sh
//! cargo run -p scim-client --example follow_changes -- [BASE_URL] [CURSOR]
//! ```
//! BASE_URL defaults to `$SCIM_URL`, then `http://127.0.0.1:8080/scim/v2`.
//! Credentials as in `list_users`. Stop with Ctrl-C; the last cursor printed
//! resumes where it stopped.

mod common;

use std::env;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = env::args().skip(1);
    let url = args
        .next()
        .or_else(|| env::var("SCIM_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8080/scim/v2".into());
    let mut cursor = args.next();
    let client = common::client_from_env(&url)?;
    loop {
        let page = client.changes_page(cursor.as_deref(), Some(500)).await?;
        for c in &page.changes {
            println!(
                "{}\t{}\t{}\t{}",
                c.at.as_deref().unwrap_or("-"),
                c.op,
                c.resource_type,
                c.id
            );
        }
        if page.next_cursor.is_some() && page.next_cursor != cursor {
            cursor = page.next_cursor;
            eprintln!("cursor {}", cursor.as_deref().unwrap_or_default());
        }
        if !page.more {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}
