//! Load N users and a group holding them all with Bulk, split to the server's
//! limits (the group refers to the users by bulkId).
//!
//! ```sh
//! cargo run -p scim-client --example bulk_load -- [BASE_URL] [N]
//! ```
//! BASE_URL defaults to `$SCIM_URL`, then `http://127.0.0.1:8080/scim/v2`; N to
//! 100. Credentials as in `list_users`: `SCIM_TOKEN`, or `SCIM_CLIENT_ID` +
//! `SCIM_CLIENT_SECRET` (+ `SCIM_SCOPES`), or none.

mod common;

use scim_client::{BulkOperation, GROUP_SCHEMA, USER_SCHEMA};
use serde_json::json;
use std::env;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = env::args().skip(1);
    let url = args
        .next()
        .or_else(|| env::var("SCIM_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8080/scim/v2".into());
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100);
    let client = common::client_from_env(&url)?;

    let limits = client
        .discover()
        .await?
        .bulk
        .ok_or("the server does not support Bulk")?;
    // The group first: the client moves it after the users it names.
    let run = chrono::Utc::now().format("%H%M%S");
    let members: Vec<_> = (0..n)
        .map(|i| json!({"value": format!("bulkId:u{i}")}))
        .collect();
    let mut ops = vec![BulkOperation::post(
        "/Groups",
        "group",
        json!({"schemas": [GROUP_SCHEMA], "displayName": format!("bulk-load-{run}"), "members": members}),
    )];
    for i in 0..n {
        ops.push(BulkOperation::post(
            "/Users",
            format!("u{i}"),
            json!({"schemas": [USER_SCHEMA], "userName": format!("load-{run}-{i:05}"),
                   "emails": [{"value": format!("load{i}@example.com"), "primary": true}]}),
        ));
    }
    let started = Instant::now();
    let results = client.bulk(ops, None).await?;
    let failed: Vec<_> = results.iter().filter_map(|r| r.error()).collect();
    println!(
        "{} operations in {:.2?} (at most {} per request), {} failed",
        results.len(),
        started.elapsed(),
        limits.max_operations,
        failed.len()
    );
    for e in failed.iter().take(5) {
        println!("  {e}");
    }
    if let Some(group) = results.first().and_then(|r| r.id()) {
        let g = client.groups().get(group).await?;
        println!("group {} has {} members", g.display_name, g.members.len());
    }
    Ok(())
}
