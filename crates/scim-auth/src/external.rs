//! Tokens of an external authorization server: JWTs checked against its JWKS
//! (cached, refreshed when an unknown kid shows up, at most once a second), and
//! opaque tokens through RFC 7662 introspection (results cached ~30 s, never past
//! the token's `exp`).

use crate::auth::{timestamp, Rejection};
use crate::token::{TokenInfo, TokenKind};
use crate::{AuthError, ExternalConfig};
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Header, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

const JWKS_MIN_REFRESH: Duration = Duration::from_secs(1);
const JWKS_MAX_AGE: Duration = Duration::from_secs(600);
const INTROSPECTION_TTL: Duration = Duration::from_secs(30);
const INTROSPECTION_CACHE_MAX: usize = 50_000;
/// Clock skew tolerated on external tokens' exp/nbf.
const LEEWAY_SECS: i64 = 30;
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Only asymmetric algorithms: a JWKS must never turn into a shared HMAC secret.
const ALLOWED_ALGS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

#[derive(Clone)]
struct JwksKey {
    key: DecodingKey,
    alg: Option<Algorithm>,
}

#[derive(Default)]
struct JwksCache {
    keys: HashMap<String, JwksKey>,
    fetched: Option<Instant>,
}

type Cached = (Result<TokenInfo, Rejection>, Instant);

pub struct External {
    cfg: ExternalConfig,
    audience: Option<String>,
    http: reqwest::Client,
    jwks: RwLock<JwksCache>,
    /// Serialises JWKS fetches so that a burst of unknown kids makes one request.
    fetch_lock: tokio::sync::Mutex<()>,
    introspected: Mutex<HashMap<[u8; 32], Cached>>,
}

fn invalid(msg: &str) -> Rejection {
    Rejection::Invalid(msg.to_string())
}

/// `aud` as a string or an array of strings.
fn audience_contains(aud: Option<&Value>, want: &str) -> bool {
    match aud {
        Some(Value::String(s)) => s == want,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(want)),
        _ => false,
    }
}

/// Scopes from `scope` (space-separated, or an array) or `scp`.
fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    let from = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    };
    claims
        .get("scope")
        .or_else(|| claims.get("scp"))
        .map(from)
        .unwrap_or_default()
}

fn string_claim(claims: &Map<String, Value>, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| claims.get(*n).and_then(Value::as_str))
        .map(str::to_string)
}

impl External {
    pub fn new(cfg: ExternalConfig, audience: Option<String>) -> Result<Self, AuthError> {
        if cfg.jwks_url.is_some() && cfg.issuer.is_none() {
            return Err(AuthError::Config(
                "an external JWKS URL needs the external issuer it belongs to".into(),
            ));
        }
        if cfg.introspection_url.is_some()
            && (cfg.introspection_client_id.is_none() || cfg.introspection_client_secret.is_none())
        {
            return Err(AuthError::Config(
                "introspection needs a client id and secret".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| AuthError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(External {
            cfg,
            audience,
            http,
            jwks: RwLock::new(JwksCache::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
            introspected: Mutex::new(HashMap::new()),
        })
    }

    /// JWTs with this `iss` are checked against the external JWKS.
    pub fn validates_jwt_from(&self, iss: Option<&str>) -> bool {
        self.cfg.jwks_url.is_some() && iss.is_some() && iss == self.cfg.issuer.as_deref()
    }

    pub fn introspects(&self) -> bool {
        self.cfg.introspection_url.is_some()
    }

    fn cached_key(&self, kid: &str) -> Option<JwksKey> {
        let cache = self.jwks.read().ok()?;
        let fresh = cache.fetched.is_some_and(|t| t.elapsed() < JWKS_MAX_AGE);
        if !fresh {
            return None;
        }
        cache.keys.get(kid).cloned()
    }

    async fn key(&self, kid: &str) -> Result<JwksKey, Rejection> {
        if let Some(k) = self.cached_key(kid) {
            return Ok(k);
        }
        let _guard = self.fetch_lock.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(k) = self.cached_key(kid) {
            return Ok(k);
        }
        let (may_fetch, stale) = match self.jwks.read() {
            Ok(c) => (
                c.fetched.is_none_or(|t| t.elapsed() >= JWKS_MIN_REFRESH),
                c.fetched.is_none_or(|t| t.elapsed() >= JWKS_MAX_AGE),
            ),
            Err(_) => (false, true),
        };
        if may_fetch {
            match self.fetch_jwks().await {
                Ok(keys) => {
                    if let Ok(mut c) = self.jwks.write() {
                        c.keys = keys;
                        c.fetched = Some(Instant::now());
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fetch the external JWKS");
                    if stale {
                        return Err(Rejection::Unavailable(
                            "the external authorization server's keys are unavailable".into(),
                        ));
                    }
                }
            }
        }
        match self.jwks.read() {
            Ok(c) => c.keys.get(kid).cloned(),
            Err(_) => None,
        }
        .ok_or_else(|| invalid("token is signed by an unknown key"))
    }

    async fn fetch_jwks(&self) -> Result<HashMap<String, JwksKey>, String> {
        let url = self.cfg.jwks_url.as_deref().ok_or("no JWKS URL")?;
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        let body: Value = resp.json().await.map_err(|e| format!("bad JSON: {e}"))?;
        let mut out = HashMap::new();
        for raw in body
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("no keys array")?
        {
            if raw.get("use").and_then(Value::as_str) == Some("enc") {
                continue;
            }
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
                continue;
            };
            let alg = raw
                .get("alg")
                .and_then(Value::as_str)
                .and_then(|a| a.parse::<Algorithm>().ok());
            if alg.is_some_and(|a| !ALLOWED_ALGS.contains(&a)) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            out.insert(kid, JwksKey { key, alg });
        }
        tracing::info!(keys = out.len(), "fetched the external JWKS");
        Ok(out)
    }

    pub async fn validate_jwt(
        &self,
        token: &str,
        header: &Header,
        now: DateTime<Utc>,
    ) -> Result<TokenInfo, Rejection> {
        if !ALLOWED_ALGS.contains(&header.alg) {
            return Err(invalid("token algorithm is not accepted"));
        }
        let key = self.key(header.kid.as_deref().unwrap_or_default()).await?;
        if key.alg.is_some_and(|a| a != header.alg) {
            return Err(invalid("token algorithm does not match its key"));
        }
        let mut v = Validation::new(header.alg);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_aud = false;
        let claims = decode::<Map<String, Value>>(token, &key.key, &v)
            .map_err(|e| Rejection::Invalid(format!("token rejected: {e}")))?
            .claims;
        let iss = claims.get("iss").and_then(Value::as_str);
        if iss != self.cfg.issuer.as_deref() {
            return Err(invalid("token issuer is not trusted"));
        }
        if let Some(want) = &self.audience {
            if !audience_contains(claims.get("aud"), want) {
                return Err(invalid("token audience does not include this server"));
            }
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or_else(|| invalid("token has no expiry"))?;
        let t = now.timestamp();
        if exp + LEEWAY_SECS <= t {
            return Err(invalid("token has expired"));
        }
        if claims
            .get("nbf")
            .and_then(Value::as_i64)
            .is_some_and(|nbf| nbf - LEEWAY_SECS > t)
        {
            return Err(invalid("token is not valid yet"));
        }
        Ok(TokenInfo {
            kind: TokenKind::ExternalJwt,
            client_id: string_claim(&claims, &["client_id", "azp", "cid"]),
            subject: string_claim(&claims, &["sub"]),
            issuer: iss.map(str::to_string),
            scopes: scopes_of(&claims),
            expires_at: timestamp(exp),
            token_id: string_claim(&claims, &["jti"]),
        })
    }

    /// Ask the introspection endpoint (or the cache) about an opaque token.
    pub async fn introspect(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenInfo, Rejection> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Ok(cache) = self.introspected.lock() {
            if let Some((result, until)) = cache.get(&key) {
                if Instant::now() < *until {
                    let still_valid = match result {
                        Ok(info) => info.expires_at.is_none_or(|e| e > now),
                        Err(_) => true,
                    };
                    if still_valid {
                        return result.clone();
                    }
                }
            }
        }
        let result = self.ask(token, now).await;
        if matches!(result, Err(Rejection::Unavailable(_))) {
            return result;
        }
        let mut ttl = INTROSPECTION_TTL;
        if let Ok(info) = &result {
            if let Some(exp) = info.expires_at {
                let left = (exp - now).to_std().unwrap_or(Duration::ZERO);
                ttl = ttl.min(left);
            }
        }
        if let Ok(mut cache) = self.introspected.lock() {
            if cache.len() >= INTROSPECTION_CACHE_MAX {
                let n = Instant::now();
                cache.retain(|_, (_, until)| *until > n);
                if cache.len() >= INTROSPECTION_CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(key, (result.clone(), Instant::now() + ttl));
        }
        result
    }

    async fn ask(&self, token: &str, now: DateTime<Utc>) -> Result<TokenInfo, Rejection> {
        let url = self
            .cfg
            .introspection_url
            .as_deref()
            .ok_or_else(|| invalid("no introspection endpoint"))?;
        let unavailable = |e: String| {
            tracing::warn!(error = %e, "token introspection failed");
            Rejection::Unavailable("the external authorization server is unavailable".into())
        };
        let resp = self
            .http
            .post(url)
            .basic_auth(
                self.cfg
                    .introspection_client_id
                    .as_deref()
                    .unwrap_or_default(),
                self.cfg.introspection_client_secret.as_deref(),
            )
            .header("Accept", "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| unavailable(format!("request failed: {e}")))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("status {}", resp.status())));
        }
        let body: Map<String, Value> = resp
            .json()
            .await
            .map_err(|e| unavailable(format!("bad JSON: {e}")))?;
        if body.get("active").and_then(Value::as_bool) != Some(true) {
            return Err(invalid("token is not active"));
        }
        let exp = body.get("exp").and_then(Value::as_i64);
        if exp.is_some_and(|e| e <= now.timestamp()) {
            return Err(invalid("token has expired"));
        }
        let iss = body.get("iss").and_then(Value::as_str);
        if let (Some(want), Some(got)) = (self.cfg.issuer.as_deref(), iss) {
            if want != got {
                return Err(invalid("token issuer is not trusted"));
            }
        }
        if let Some(want) = &self.audience {
            if !audience_contains(body.get("aud"), want) {
                return Err(invalid("token audience does not include this server"));
            }
        }
        Ok(TokenInfo {
            kind: TokenKind::Introspected,
            client_id: string_claim(&body, &["client_id"]),
            subject: string_claim(&body, &["sub", "username"]),
            issuer: iss.map(str::to_string),
            scopes: scopes_of(&body),
            expires_at: exp.and_then(timestamp),
            token_id: string_claim(&body, &["jti"]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claim_helpers() {
        let m = json!({"scope": "a b", "aud": ["x", "y"], "azp": "c"});
        let m = m.as_object().cloned().unwrap_or_default();
        assert_eq!(scopes_of(&m), vec!["a", "b"]);
        assert!(audience_contains(m.get("aud"), "y"));
        assert!(!audience_contains(m.get("aud"), "z"));
        assert_eq!(string_claim(&m, &["client_id", "azp"]), Some("c".into()));
        let scp = json!({"scp": ["r", "w"]});
        assert_eq!(scopes_of(scp.as_object().expect("object")), vec!["r", "w"]);
    }
}
