//! `ClientStore` on the SQLite file that also holds the resources.

use super::backend;
use crate::clients::{ClientRecord, ClientStore, SigningKeyRecord};
use crate::statements;
use crate::{db_time, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// `ClientStore` on the SQLite file that also holds the resources. It keeps one
/// connection of its own: the registry is small and read rarely (validators cache).
pub struct SqliteClientStore {
    conn: Mutex<Connection>,
}

pub(super) fn parse_time(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })
}

pub(super) fn opt_time(s: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_time).transpose()
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn client_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClientRecord> {
    Ok(ClientRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        secret_hash: r.get(2)?,
        scopes: split_scopes(&r.get::<_, String>(3)?),
        created: parse_time(&r.get::<_, String>(4)?)?,
        expires: opt_time(r.get(5)?)?,
        disabled: r.get::<_, i64>(6)? != 0,
        locked_until: opt_time(r.get(7)?)?,
        origin: r.get(8)?,
    })
}

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: r.get(0)?,
        alg: r.get(1)?,
        private_key: r.get(2)?,
        public_jwk: r.get(3)?,
        created: parse_time(&r.get::<_, String>(4)?)?,
        retired: opt_time(r.get(5)?)?,
    })
}

pub(super) fn found(changed: usize) -> StoreResult<()> {
    if changed == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

impl SqliteClientStore {
    /// Open (creating if needed) the database file and apply every migration.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(backend)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(backend)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .map_err(backend)?;
        super::migrate(&conn)?;
        Ok(SqliteClientStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> StoreResult<MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Backend("connection lock poisoned".into()))
    }
}

impl ClientStore for SqliteClientStore {
    fn create_client(&self, c: &ClientRecord) -> StoreResult<()> {
        self.conn()?
            .execute(
                &statements::sqlite().create_client,
                params![
                    c.id,
                    c.name,
                    c.secret_hash,
                    c.scopes.join(" "),
                    db_time(c.created),
                    c.expires.map(db_time),
                    i64::from(c.disabled),
                    c.locked_until.map(db_time),
                    c.origin
                ],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn get_client(&self, id: &str) -> StoreResult<Option<ClientRecord>> {
        self.conn()?
            .prepare_cached(&statements::sqlite().get_client)
            .and_then(|mut s| s.query_row([id], client_row).optional())
            .map_err(backend)
    }

    fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(&statements::sqlite().list_clients)
            .map_err(backend)?;
        let rows = stmt
            .query_map([], client_row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(backend)?;
        Ok(rows)
    }

    fn set_client_disabled(&self, id: &str, disabled: bool) -> StoreResult<()> {
        let n = self
            .conn()?
            .execute(
                &statements::sqlite().set_client_disabled,
                params![id, i64::from(disabled)],
            )
            .map_err(backend)?;
        found(n)
    }

    fn delete_client(&self, id: &str) -> StoreResult<()> {
        let n = self
            .conn()?
            .execute(&statements::sqlite().delete_client, [id])
            .map_err(backend)?;
        found(n)
    }

    fn rotate_secret(&self, id: &str, secret_hash: &str) -> StoreResult<()> {
        let n = self
            .conn()?
            .execute(
                &statements::sqlite().rotate_secret,
                params![id, secret_hash],
            )
            .map_err(backend)?;
        found(n)
    }

    fn redeem_ticket(&self, jti: &str, expires: DateTime<Utc>) -> StoreResult<bool> {
        let n = self
            .conn()?
            .execute(
                &statements::sqlite().redeem_ticket,
                params![jti, db_time(expires)],
            )
            .map_err(backend)?;
        Ok(n == 1)
    }

    fn delete_expired_dynamic_clients(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let conn = self.conn()?;
        conn.execute(&statements::sqlite().prune_redeemed_tickets, [db_time(now)])
            .map_err(backend)?;
        let n = conn
            .execute(
                &statements::sqlite().delete_expired_dynamic_clients,
                [db_time(now)],
            )
            .map_err(backend)?;
        Ok(n as u64)
    }

    fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(&statements::sqlite().signing_keys)
            .map_err(backend)?;
        let rows = stmt
            .query_map([], key_row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(backend)?;
        Ok(rows)
    }

    fn add_signing_key(&self, k: &SigningKeyRecord) -> StoreResult<()> {
        self.conn()?
            .execute(
                &statements::sqlite().add_signing_key,
                params![
                    k.kid,
                    k.alg,
                    k.private_key,
                    k.public_jwk,
                    db_time(k.created),
                    k.retired.map(db_time)
                ],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn retire_signing_keys_except(&self, keep_kid: &str, at: DateTime<Utc>) -> StoreResult<u64> {
        let n = self
            .conn()?
            .execute(
                &statements::sqlite().retire_signing_keys,
                params![keep_kid, db_time(at)],
            )
            .map_err(backend)?;
        Ok(n as u64)
    }

    fn delete_signing_key(&self, kid: &str) -> StoreResult<()> {
        self.conn()?
            .execute(&statements::sqlite().delete_signing_key, [kid])
            .map_err(backend)?;
        Ok(())
    }

    fn server_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        let conn = self.conn()?;
        conn.execute(
            &statements::sqlite().add_server_secret,
            params![name, candidate, db_time(Utc::now())],
        )
        .map_err(backend)?;
        conn.query_row(&statements::sqlite().server_secret, [name], |r| r.get(0))
            .map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .unwrap_or_default()
    }

    fn client(id: &str) -> ClientRecord {
        ClientRecord {
            id: id.into(),
            name: "n".into(),
            secret_hash: "h1".into(),
            scopes: vec!["a".into(), "b".into()],
            created: t(0),
            expires: Some(t(100)),
            disabled: false,
            locked_until: None,
            origin: "cli".into(),
        }
    }

    /// A database file removed when dropped.
    struct TempDb(std::path::PathBuf);

    impl Drop for TempDb {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = self.0.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }

    fn store() -> (TempDb, SqliteClientStore) {
        let path =
            std::env::temp_dir().join(format!("scim-clients-test-{}.db", uuid::Uuid::new_v4()));
        let s = SqliteClientStore::open(&path).expect("open");
        (TempDb(path), s)
    }

    #[test]
    fn client_lifecycle() {
        let (_d, s) = store();
        s.create_client(&client("c1")).expect("create");
        assert_eq!(s.create_client(&client("c1")), Err(StoreError::Uniqueness));
        assert_eq!(s.get_client("c1").expect("get"), Some(client("c1")));
        s.set_client_disabled("c1", true).expect("disable");
        assert!(s.get_client("c1").expect("get").is_some_and(|c| c.disabled));
        assert_eq!(s.set_client_disabled("zz", true), Err(StoreError::NotFound));
        s.rotate_secret("c1", "h2").expect("rotate");
        let c = s.get_client("c1").expect("get").expect("some");
        assert_eq!(c.secret_hash.as_str(), "h2");
        assert_eq!(s.list_clients().expect("list").len(), 1);
        s.delete_client("c1").expect("delete");
        assert_eq!(s.delete_client("c1"), Err(StoreError::NotFound));
        assert_eq!(s.get_client("c1").expect("get"), None);
    }

    #[test]
    fn expired_dynamic_clients_are_pruned() {
        let (_d, s) = store();
        let mut d = client("d");
        d.origin = "dynamic".into();
        s.create_client(&d).expect("create");
        s.create_client(&client("c")).expect("create");
        assert_eq!(s.delete_expired_dynamic_clients(t(50)).expect("prune"), 0);
        assert_eq!(s.delete_expired_dynamic_clients(t(200)).expect("prune"), 1);
        assert_eq!(s.list_clients().expect("list").len(), 1);
    }

    #[test]
    fn keys_and_secrets() {
        let (_d, s) = store();
        let key = |kid: &str, at: i64| SigningKeyRecord {
            kid: kid.into(),
            alg: "EdDSA".into(),
            private_key: vec![1, 2, 3],
            public_jwk: "{}".into(),
            created: t(at),
            retired: None,
        };
        s.add_signing_key(&key("k1", 0)).expect("add");
        s.add_signing_key(&key("k2", 10)).expect("add");
        assert_eq!(
            s.retire_signing_keys_except("k2", t(20)).expect("retire"),
            1
        );
        let keys = s.signing_keys().expect("keys");
        assert_eq!(keys[0].kid, "k2");
        assert_eq!(keys[1].retired, Some(t(20)));
        s.delete_signing_key("k1").expect("delete");
        assert_eq!(s.signing_keys().expect("keys").len(), 1);
        let a = s.server_secret("hmac", b"first").expect("secret");
        let b = s.server_secret("hmac", b"second").expect("secret");
        assert_eq!((a.as_slice(), b.as_slice()), (&b"first"[..], &b"first"[..]));
    }
}
