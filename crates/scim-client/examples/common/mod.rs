//! What the examples share: a client from the environment (`SCIM_TOKEN`, or
//! `SCIM_CLIENT_ID` + `SCIM_CLIENT_SECRET` [+ `SCIM_SCOPES`], or no credentials).

use scim_client::{Client, ClientCredentials};
use std::env;

/// A client of `url` with the credentials the environment gives.
pub(crate) fn client_from_env(url: &str) -> scim_client::Result<Client> {
    let builder = Client::builder(url);
    let builder = match (
        env::var("SCIM_TOKEN"),
        env::var("SCIM_CLIENT_ID"),
        env::var("SCIM_CLIENT_SECRET"),
    ) {
        (Ok(token), _, _) => builder.bearer_token(token),
        (_, Ok(id), Ok(secret)) => {
            let scopes = env::var("SCIM_SCOPES").unwrap_or_default();
            builder.client_credentials(
                ClientCredentials::new(id, secret).scopes(scopes.split_whitespace()),
            )
        }
        _ => builder,
    };
    builder.build()
}
