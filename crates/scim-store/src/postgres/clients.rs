//! `ClientStore` on PostgreSQL: the authorization server's clients and keys in the
//! same database, so every scimd process sees the same clients, keys and lock-outs.

use super::session::{found, Fail, TxKind, TxResult};
use super::PostgresStore;
use crate::clients::{ClientRecord, ClientStore, SigningKeyRecord};
use crate::statements;
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
        self.run(TxKind::Write, |s| {
            s.execute(
                &statements::postgres().create_client,
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
        self.run(TxKind::Single, |s| {
            s.query_opt(&statements::postgres().get_client, &[&id])?
                .map(|r| client_row(&r))
                .transpose()
        })
    }

    fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        self.run(TxKind::Single, |s| {
            s.query(&statements::postgres().list_clients, &[])?
                .iter()
                .map(client_row)
                .collect()
        })
    }

    fn set_client_disabled(&self, id: &str, disabled: bool) -> StoreResult<()> {
        self.run(TxKind::Single, |s| {
            found(s.execute(
                &statements::postgres().set_client_disabled,
                &[&id, &disabled],
            )?)
        })
    }

    fn delete_client(&self, id: &str) -> StoreResult<()> {
        self.run(TxKind::Single, |s| {
            found(s.execute(&statements::postgres().delete_client, &[&id])?)
        })
    }

    fn rotate_secret(&self, id: &str, secret_hash: &str) -> StoreResult<()> {
        self.run(TxKind::Single, |s| {
            found(s.execute(&statements::postgres().rotate_secret, &[&id, &secret_hash])?)
        })
    }

    fn redeem_ticket(
        &self,
        jti: &str,
        expires: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        let expires = crate::db_time(expires);
        self.run(TxKind::Single, |s| {
            Ok(s.execute(&statements::postgres().redeem_ticket, &[&jti, &expires])? == 1)
        })
    }

    fn delete_expired_dynamic_clients(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<u64> {
        let now = crate::db_time(now);
        self.run(TxKind::Write, |s| {
            s.execute(&statements::postgres().prune_redeemed_tickets, &[&now])?;
            Ok(s.execute(
                &statements::postgres().delete_expired_dynamic_clients,
                &[&now],
            )?)
        })
    }

    fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.run(TxKind::Single, |s| {
            s.query(&statements::postgres().signing_keys, &[])?
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
        self.run(TxKind::Single, |s| {
            s.execute(
                &statements::postgres().add_signing_key,
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
        self.run(TxKind::Single, |s| {
            Ok(s.execute(
                &statements::postgres().retire_signing_keys,
                &[&keep_kid, &at],
            )?)
        })
    }

    fn delete_signing_key(&self, kid: &str) -> StoreResult<()> {
        self.run(TxKind::Single, |s| {
            s.execute(&statements::postgres().delete_signing_key, &[&kid])?;
            Ok(())
        })
    }

    fn server_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        let now = crate::db_time(chrono::Utc::now());
        self.run(TxKind::Write, |s| {
            // Concurrent first starts: one insert wins, every process reads it.
            s.execute(
                &statements::postgres().add_server_secret,
                &[&name, &candidate, &now],
            )?;
            match s.query_opt(&statements::postgres().server_secret, &[&name])? {
                Some(r) => Ok(r.try_get(0)?),
                None => Err(Fail::Store(StoreError::NotFound)),
            }
        })
    }
}
