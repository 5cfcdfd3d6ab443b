//! Throwaway schemas for tests (feature `test-support`): one database shared by
//! many test runs without them seeing each other's rows.

use super::{db_error, describe};
use crate::StoreError;
use crate::StoreResult;
use postgres::{Config, NoTls};
use std::str::FromStr;

/// The variable naming the tests' PostgreSQL server (`scripts/test.sh` sets it).
pub const TEST_URL_VAR: &str = "SCIMD_TEST_POSTGRES_URL";

/// The tests' server when the variable is unset: the database that
/// `scripts/ensure-postgres.sh` creates.
pub const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/scimd_test";

/// The PostgreSQL server tests use: `SCIMD_TEST_POSTGRES_URL`, else the default.
pub fn test_url() -> String {
    std::env::var(TEST_URL_VAR).unwrap_or_else(|_| DEFAULT_TEST_URL.to_string())
}

/// Append `-c search_path=SCHEMA` to a connection URL, so that every connection
/// made from it works in that schema.
pub fn url_with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// A fresh schema in the database at `url`, dropped (with everything in it) when
/// this value is dropped. Lets test runs share one database without seeing each
/// other's rows; `url` connects with it as the search path.
pub struct ScratchSchema {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl ScratchSchema {
    /// A scratch schema on the tests' server, by one rule for every test:
    /// - `SCIMD_TEST_POSTGRES_URL` set (as `scripts/test.sh` does): the server is
    ///   required, and an unreachable one fails the test (panics);
    /// - unset: the default server if it answers, else `None` with a notice on
    ///   stderr, and the caller skips its PostgreSQL part.
    // Test support only: failing the calling test is what this is for.
    #[allow(clippy::panic)]
    pub fn for_tests(prefix: &str) -> Option<ScratchSchema> {
        let required = std::env::var_os(TEST_URL_VAR).is_some();
        let url = test_url();
        match ScratchSchema::create(&url, prefix) {
            Ok(schema) => Some(schema),
            Err(e) if required => panic!(
                "PostgreSQL is required for this test ({TEST_URL_VAR} is set) and is not \
                 reachable at {url}: {e}\n(start it with ./scripts/ensure-postgres.sh, or \
                 unset {TEST_URL_VAR} to skip the PostgreSQL tests when no server runs)"
            ),
            Err(e) => {
                eprintln!(
                    "NOTICE: skipping a PostgreSQL test: no server at {url} ({e}). Start one \
                     with ./scripts/ensure-postgres.sh, or set {TEST_URL_VAR} to a server \
                     (then an unreachable one fails the tests, as under ./scripts/test.sh)."
                );
                None
            }
        }
    }

    pub fn create(url: &str, prefix: &str) -> StoreResult<ScratchSchema> {
        let name = format!(
            "{prefix}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mut client = Config::from_str(url)
            .and_then(|c| c.connect(NoTls))
            .map_err(|e| {
                StoreError::Backend(format!(
                    "cannot connect to PostgreSQL at {url}: {}",
                    describe(&e)
                ))
            })?;
        client
            .batch_execute(&format!("CREATE SCHEMA \"{name}\""))
            .map_err(db_error)?;
        Ok(ScratchSchema {
            admin_url: url.to_string(),
            url: url_with_schema(url, &name),
            name,
        })
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        let dropped = Config::from_str(&self.admin_url)
            .and_then(|c| c.connect(NoTls))
            .and_then(|mut c| {
                c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name))
            });
        if let Err(e) = dropped {
            tracing::warn!(schema = %self.name, error = %describe(&e), "could not drop scratch schema");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_urls() {
        assert_eq!(
            url_with_schema("postgres://u@h/db", "s1"),
            "postgres://u@h/db?options=-c%20search_path%3Ds1"
        );
        assert_eq!(
            url_with_schema("postgres://u@h/db?sslmode=disable", "s1"),
            "postgres://u@h/db?sslmode=disable&options=-c%20search_path%3Ds1"
        );
    }
}
