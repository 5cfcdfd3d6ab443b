//! A SCIM 2.0 client (RFC 7643 / 7644) that works against any SCIM server,
//! with the extras of Gluu and scimd.
//!
//! - credentials: static bearer token, OAuth 2.0 client_credentials (token
//!   endpoint given or discovered, `client_secret_basic` or `_post`), UMA 2.0
//!   (ticket → RPT) or HTTP Basic; tokens are fetched lazily, renewed before
//!   they expire and once more on a 401;
//! - retries with jittered backoff on 429/502/503/504 and connection errors,
//!   honouring `Retry-After`, within a wall-clock budget ([`RetryPolicy`]);
//! - typed [`User`], [`Group`], [`FidoDevice`], [`Fido2Device`] (extensions and
//!   custom attributes by URN) or raw JSON for any resource type;
//! - create / get / replace / [`Patch`] / delete with ETags, searches as a
//!   [`Stream`](futures_core::Stream) over every page (cursor paging when the
//!   server offers it), [`Client::bulk`] split to the server's limits, and the
//!   change feeds.
//!
//! A [`Client`] is cheap to clone and safe to share across tasks.
//!
//! ```no_run
//! use futures_util::TryStreamExt;
//! use scim_client::{Client, ClientCredentials, Patch, SearchRequest, User};
//!
//! # async fn run() -> scim_client::Result<()> {
//! let client = Client::builder("http://127.0.0.1:8080/scim/v2")
//!     .client_credentials(
//!         ClientCredentials::new("my-client-id", "my-secret")
//!             .scopes(["https://gluu.org/scim/users.read", "https://gluu.org/scim/users.write"]),
//!     )
//!     .build()?;
//!
//! let created = client.users().create(&User::new("bjensen")).await?;
//! let id = created.id.as_deref().unwrap_or_default();
//! client
//!     .users()
//!     .patch(id, &Patch::new().replace("name.givenName", "Barbara"), None)
//!     .await?;
//!
//! let everyone: Vec<User> = client
//!     .users()
//!     .search(SearchRequest::filter("userName sw \"b\""))
//!     .try_collect()
//!     .await?;
//! println!("{} users", everyone.len());
//!
//! match client.users().create(&User::new("bjensen")).await {
//!     Err(e) if e.scim_type() == Some("uniqueness") => println!("taken: {e}"),
//!     other => { other?; }
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod auth;
mod bulk;
mod client;
mod discovery;
mod error;
mod feed;
mod partition;
mod patch;
mod resource;
mod resources;
mod retry;
mod transport;

pub use auth::{ClientCredentials, SecretMethod};
pub use bulk::{BulkMethod, BulkOperation, BulkResult};
pub use client::{Client, ClientBuilder};
pub use discovery::{BulkLimits, Capabilities, ResourceTypeInfo};
pub use error::{Error, Result};
pub use feed::{Change, ChangesPage, UpdatedUsers};
pub use patch::Patch;
pub use resource::{
    Fido2Device, FidoDevice, Group, Member, Meta, MultiValued, Name, Resource, User,
    ENTERPRISE_USER_SCHEMA, FIDO2_DEVICE_SCHEMA, FIDO_DEVICE_SCHEMA, GLUU_USER_EXTENSION,
    GROUP_SCHEMA, USER_SCHEMA,
};
pub use resources::{GetOptions, ListResponse, Resources, SearchRequest, SortOrder};
pub use retry::{parse_retry_after, RetryPolicy};
