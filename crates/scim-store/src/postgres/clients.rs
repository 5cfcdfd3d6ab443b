//! `ClientStore` on PostgreSQL: the authorization server's clients and keys in the
//! same database, so every scimd process sees the same clients, keys and lock-outs.

use super::session::{found, Fail, Mode, TxResult};
use super::PostgresStore;
use crate::clients::{ClientRecord, ClientStore, SigningKeyRecord};
use crate::{StoreError, StoreResult};
use postgres::Row;

fn client_row(r: &Row) -> TxResult<ClientRecord> {
    let scopes: String = r.try_get(3)?;
    let created: String = r.try_get(4)?;
    let expires: Option<String> = r.try_get(5)?;
    let locked: Option<String> = r.try_get(7)?;
    Ok(ClientRecord {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        secret_hash: r.try_get(2)?,
        scopes: scopes.split_whitespace().map(str::to_string).collect(),
        created: crate::parse_db_time(&created)?,
        expires: expires.as_deref().map(crate::parse_db_time).transpose()?,
        disabled: r.try_get(6)?,
        locked_until: locked.as_deref().map(crate::parse_db_time).transpose()?,
        origin: r.try_get(8)?,
    })
}

/// The authorization server's clients and keys live in the same database, so every
/// scimd process sees the same clients, keys and lock-outs.
impl ClientStore for PostgresStore {
    fn create_client(&self, c: &ClientRecord) -> StoreResult<()> {
        let scopes = c.scopes.join(" ");
        self.run(Mode::Write, |s| {
            s.execute(
                "INSERT INTO oauth_clients (id, name, secret_hash, scopes, created, expires, disabled, locked_until, origin)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &c.id,
                    &c.name,
                    &c.secret_hash,
                    &scopes,
                    &crate::db_time(c.created),
                    &c.expires.map(crate::db_time),
                    &c.disabled,
                    &c.locked_until.map(crate::db_time),
                    &c.origin,
                ],
            )?;
            Ok(())
        })
    }

    fn get_client(&self, id: &str) -> StoreResult<Option<ClientRecord>> {
        self.run(Mode::Single, |s| {
            s.query_opt(
                "SELECT id, name, secret_hash, scopes, created, expires, disabled, locked_until, origin
                 FROM oauth_clients WHERE id = $1",
                &[&id],
            )?
            .map(|r| client_row(&r))
            .transpose()
        })
    }

    fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        self.run(Mode::Single, |s| {
            s.query(
                "SELECT id, name, secret_hash, scopes, created, expires, disabled, locked_until, origin
                 FROM oauth_clients ORDER BY created, id",
                &[],
            )?
            .iter()
            .map(client_row)
            .collect()
        })
    }

    fn set_client_disabled(&self, id: &str, disabled: bool) -> StoreResult<()> {
        self.run(Mode::Single, |s| {
            found(s.execute(
                "UPDATE oauth_clients SET disabled = $2 WHERE id = $1",
                &[&id, &disabled],
            )?)
        })
    }

    fn delete_client(&self, id: &str) -> StoreResult<()> {
        self.run(Mode::Write, |s| {
            s.execute("DELETE FROM oauth_failures WHERE client_id = $1", &[&id])?;
            found(s.execute("DELETE FROM oauth_clients WHERE id = $1", &[&id])?)
        })
    }

    fn rotate_secret(&self, id: &str, secret_hash: &str) -> StoreResult<()> {
        self.run(Mode::Write, |s| {
            s.execute("DELETE FROM oauth_failures WHERE client_id = $1", &[&id])?;
            found(s.execute(
                "UPDATE oauth_clients SET secret_hash = $2, locked_until = NULL WHERE id = $1",
                &[&id, &secret_hash],
            )?)
        })
    }

    fn record_failure(
        &self,
        id: &str,
        at: chrono::DateTime<chrono::Utc>,
        window_start: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<u64> {
        let (at, window_start) = (crate::db_time(at), crate::db_time(window_start));
        self.run(Mode::Write, |s| {
            // The client's row lock serialises failure counting across processes.
            s.query_opt(
                "SELECT 1 FROM oauth_clients WHERE id = $1 FOR UPDATE",
                &[&id],
            )?;
            s.execute(
                "DELETE FROM oauth_failures WHERE client_id = $1 AND at < $2",
                &[&id, &window_start],
            )?;
            s.execute(
                "INSERT INTO oauth_failures (client_id, at) VALUES ($1, $2)",
                &[&id, &at],
            )?;
            let n: i64 = s
                .query_opt(
                    "SELECT count(*) FROM oauth_failures WHERE client_id = $1",
                    &[&id],
                )?
                .map(|r| r.try_get(0))
                .transpose()?
                .unwrap_or(0);
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn set_locked_until(
        &self,
        id: &str,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> StoreResult<()> {
        let until_text = until.map(crate::db_time);
        self.run(Mode::Write, |s| {
            if until_text.is_none() {
                s.execute("DELETE FROM oauth_failures WHERE client_id = $1", &[&id])?;
            }
            found(s.execute(
                "UPDATE oauth_clients SET locked_until = $2 WHERE id = $1",
                &[&id, &until_text],
            )?)
        })
    }

    fn delete_expired_dynamic_clients(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<u64> {
        let now = crate::db_time(now);
        self.run(Mode::Single, |s| {
            Ok(s.execute(
                "DELETE FROM oauth_clients WHERE origin = 'dynamic' AND expires IS NOT NULL AND expires < $1",
                &[&now],
            )?)
        })
    }

    fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.run(Mode::Single, |s| {
            s.query(
                "SELECT kid, alg, private_key, public_jwk, created, retired
                 FROM oauth_signing_keys ORDER BY created DESC, kid",
                &[],
            )?
            .iter()
            .map(|r| {
                let created: String = r.try_get(4)?;
                let retired: Option<String> = r.try_get(5)?;
                Ok(SigningKeyRecord {
                    kid: r.try_get(0)?,
                    alg: r.try_get(1)?,
                    private_key: r.try_get(2)?,
                    public_jwk: r.try_get(3)?,
                    created: crate::parse_db_time(&created)?,
                    retired: retired.as_deref().map(crate::parse_db_time).transpose()?,
                })
            })
            .collect()
        })
    }

    fn add_signing_key(&self, k: &SigningKeyRecord) -> StoreResult<()> {
        self.run(Mode::Single, |s| {
            s.execute(
                "INSERT INTO oauth_signing_keys (kid, alg, private_key, public_jwk, created, retired)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &k.kid,
                    &k.alg,
                    &k.private_key,
                    &k.public_jwk,
                    &crate::db_time(k.created),
                    &k.retired.map(crate::db_time),
                ],
            )?;
            Ok(())
        })
    }

    fn retire_signing_keys_except(
        &self,
        keep_kid: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<u64> {
        let at = crate::db_time(at);
        self.run(Mode::Single, |s| {
            Ok(s.execute(
                "UPDATE oauth_signing_keys SET retired = $2 WHERE kid <> $1 AND retired IS NULL",
                &[&keep_kid, &at],
            )?)
        })
    }

    fn delete_signing_key(&self, kid: &str) -> StoreResult<()> {
        self.run(Mode::Single, |s| {
            s.execute("DELETE FROM oauth_signing_keys WHERE kid = $1", &[&kid])?;
            Ok(())
        })
    }

    fn server_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        let now = crate::db_time(chrono::Utc::now());
        self.run(Mode::Write, |s| {
            // Concurrent first starts: one insert wins, every process reads it.
            s.execute(
                "INSERT INTO server_secrets (name, value, created) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &candidate, &now],
            )?;
            match s.query_opt("SELECT value FROM server_secrets WHERE name = $1", &[&name])? {
                Some(r) => Ok(r.try_get(0)?),
                None => Err(Fail::Store(StoreError::NotFound)),
            }
        })
    }
}
