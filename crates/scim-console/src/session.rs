//! Console sessions: a random token in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` under TLS), only its SHA-256 kept here; idle and absolute expiry on
//! the injected clock; one CSRF token per session, compared in constant time.

use chrono::{DateTime, Duration, Utc};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "scimd_console";

/// Who is logged in, as a page sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Admin {
    pub(crate) user_id: String,
    pub(crate) user_name: String,
    pub(crate) csrf: String,
}

#[derive(Debug, Clone)]
struct Entry {
    admin: Admin,
    created: DateTime<Utc>,
    seen: DateTime<Utc>,
}

/// How long a session lives: without a request (`idle`) and at most (`absolute`).
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub idle: Duration,
    pub absolute: Duration,
}

pub(crate) struct Sessions {
    lifetimes: Lifetimes,
    by_hash: Mutex<HashMap<[u8; 32], Entry>>,
}

/// 32 random bytes, hex.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
    pub(crate) fn new(lifetimes: Lifetimes) -> Sessions {
        Sessions {
            lifetimes,
            by_hash: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a session; the token for the cookie.
    pub(crate) fn start(&self, user_id: &str, user_name: &str, now: DateTime<Utc>) -> String {
        let token = random_token();
        let admin = Admin {
            user_id: user_id.to_string(),
            user_name: user_name.to_string(),
            csrf: random_token(),
        };
        let mut map = self.map();
        // Expired sessions go whenever one starts: the map stays as small as the
        // number of live sessions.
        let l = self.lifetimes;
        map.retain(|_, e| live(e, now, l));
        map.insert(
            digest(&token),
            Entry {
                admin,
                created: now,
                seen: now,
            },
        );
        token
    }

    /// The session of `token` if it is live (and now seen again).
    pub(crate) fn find(&self, token: &str, now: DateTime<Utc>) -> Option<Admin> {
        let key = digest(token);
        let mut map = self.map();
        let live_now = map.get(&key).is_some_and(|e| live(e, now, self.lifetimes));
        if !live_now {
            map.remove(&key);
            return None;
        }
        let e = map.get_mut(&key)?;
        e.seen = now;
        Some(e.admin.clone())
    }

    pub(crate) fn end(&self, token: &str) {
        self.map().remove(&digest(token));
    }

    /// End every session of a user (password set, removed from the admins).
    pub(crate) fn end_all_of(&self, user_id: &str) {
        self.map().retain(|_, e| e.admin.user_id != user_id);
    }
}

fn live(e: &Entry, now: DateTime<Utc>, l: Lifetimes) -> bool {
    now - e.seen < l.idle && now - e.created < l.absolute
}

/// The session cookie's value in a `Cookie` header.
pub(crate) fn cookie_value<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header
        .split(';')
        .map(str::trim)
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// `Set-Cookie` for a session token (empty and expired: the cookie removed).
pub(crate) fn set_cookie(name: &str, token: &str, secure: bool, max_age: Option<i64>) -> String {
    let mut c = format!("{name}={token}; Path=/ui; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(Lifetimes {
            idle: Duration::minutes(30),
            absolute: Duration::hours(8),
        })
    }

    #[test]
    fn a_session_expires_when_idle_and_at_its_absolute_limit() {
        let s = sessions();
        let t0 = Utc::now();
        let token = s.start("u1", "ann", t0);
        assert_eq!(
            s.find(&token, t0 + Duration::minutes(29))
                .map(|a| a.user_name),
            Some("ann".into())
        );
        // Seen at 29 minutes: alive until 59.
        assert!(s.find(&token, t0 + Duration::minutes(58)).is_some());
        assert!(s.find(&token, t0 + Duration::minutes(89)).is_none());
        // Gone for good once expired.
        assert!(s.find(&token, t0 + Duration::minutes(60)).is_none());

        let busy = s.start("u1", "ann", t0);
        let mut t = t0;
        while t < t0 + Duration::hours(8) - Duration::minutes(10) {
            t += Duration::minutes(10);
            assert!(s.find(&busy, t).is_some());
        }
        assert!(s.find(&busy, t0 + Duration::hours(8)).is_none());
    }

    #[test]
    fn sessions_end_alone_or_all_of_a_user() {
        let s = sessions();
        let now = Utc::now();
        let (a, b, c) = (
            s.start("u1", "ann", now),
            s.start("u1", "ann", now),
            s.start("u2", "bob", now),
        );
        assert_ne!(a, b);
        s.end(&a);
        assert!(s.find(&a, now).is_none());
        s.end_all_of("u1");
        assert!(s.find(&b, now).is_none());
        assert!(s.find(&c, now).is_some());
        assert!(s.find("not-a-token", now).is_none());
    }

    #[test]
    fn cookies_are_read_and_written_strictly() {
        assert_eq!(
            cookie_value("a=1; scimd_console=xyz; b=2", COOKIE),
            Some("xyz")
        );
        assert_eq!(cookie_value("scimd_consolex=1", COOKIE), None);
        assert_eq!(
            set_cookie(COOKIE, "t", true, None),
            "scimd_console=t; Path=/ui; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(set_cookie(COOKIE, "", false, Some(0)).ends_with("SameSite=Strict; Max-Age=0"));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
