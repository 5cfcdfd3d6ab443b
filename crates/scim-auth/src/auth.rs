//! The authorization core shared by the endpoints and the protection middleware:
//! key ring, token issuance and validation, client authentication with a
//! throttle on failures, and the request rate limits.

use crate::external::External;
use crate::keys::{maintain_keys, KeySet};
use crate::limits::{FailureThrottle, Limiter};
use crate::scope::ScopePolicy;
use crate::secrets::SecretHasher;
use crate::token::{Claims, Permission, TokenInfo, TokenKind, USE_ACCESS, USE_RPT, USE_TICKET};
use crate::{to_chrono, AuthConfig, AuthError, Mode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, Header, Validation};
use scim_proto::clock::Clock;
use scim_store::clients::{ClientRecord, ClientStore};
use scim_store::StoreResult;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Why a token was not accepted. Details are for logs and error descriptions and
/// never contain the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Bad, expired, unknown or revoked token: 401 invalid_token.
    Invalid(String),
    /// The external authorization server could not be asked: 503.
    Unavailable(String),
}

/// A verified UMA permission ticket, not yet spent.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The scopes it asks permission for.
    pub scopes: Vec<String>,
    jti: String,
    expires: DateTime<Utc>,
}

/// Why client authentication at the token endpoint failed.
#[derive(Debug)]
pub enum ClientAuthFailure {
    /// Unknown client, wrong secret, disabled or expired: all look alike.
    Invalid,
    /// Too many failures of this client id from this address lately: try again
    /// after this long (the secret was not checked).
    Throttled(Duration),
    Internal(AuthError),
}

/// How often a process may reload keys because it saw an unknown kid.
const KEY_RELOAD_MIN_INTERVAL: Duration = Duration::from_secs(1);
const CLIENT_CACHE_MAX: usize = 10_000;
/// Verified JWTs are remembered (by SHA-256 of the token) this long at most, so a
/// token's signature is checked once, not on every request.
const VERIFIED_TTL: Duration = Duration::from_secs(60);
const VERIFIED_MAX: usize = 20_000;

pub struct Auth {
    config: AuthConfig,
    policy: ScopePolicy,
    store: Arc<dyn ClientStore>,
    hasher: SecretHasher,
    clock: Arc<dyn Clock>,
    keys: RwLock<Arc<KeySet>>,
    last_key_reload: Mutex<Option<Instant>>,
    clients: Mutex<HashMap<String, (bool, Instant)>>,
    verified: Mutex<HashMap<[u8; 32], (TokenInfo, Instant)>>,
    external: Option<External>,
    token_requests: Limiter<String>,
    token_requests_by_ip: Option<Limiter<IpAddr>>,
    api_requests: Option<Limiter<String>>,
    failures: FailureThrottle,
}

/// The `iss` claim of a JWT, read without verification (to pick the validator).
pub(crate) fn peek_claim(token: &str, name: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get(name)?.as_str().map(str::to_string)
}

pub(crate) fn timestamp(secs: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0).single()
}

impl Auth {
    /// Set up from the store: loads the secret-hashing key and makes sure a
    /// signing key exists. Blocking (call before serving or on a blocking thread).
    pub fn new(
        mut config: AuthConfig,
        store: Arc<dyn ClientStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuthError> {
        config.issuer = config.issuer.trim_end_matches('/').to_string();
        if config.issuer.is_empty() {
            return Err(AuthError::Config("the issuer must not be empty".into()));
        }
        let hasher = SecretHasher::load(store.as_ref())?;
        let now = clock.now();
        let records = maintain_keys(
            store.as_ref(),
            now,
            to_chrono(config.key_rotation),
            to_chrono(Self::keep_retired(&config)),
        )?;
        let external = if config.external.is_configured() {
            Some(External::new(
                config.external.clone(),
                config.audience.clone(),
            )?)
        } else {
            None
        };
        Ok(Auth {
            store,
            hasher,
            clock,
            keys: RwLock::new(Arc::new(KeySet::from_records(&records))),
            last_key_reload: Mutex::new(None),
            clients: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
            external,
            token_requests: Limiter::new(config.token_rate_per_client),
            token_requests_by_ip: config.token_rate_per_ip.map(Limiter::new),
            api_requests: config.client_rate.map(Limiter::new),
            failures: FailureThrottle::new(config.throttle),
            policy: ScopePolicy::new(&config.scope_prefix),
            config,
        })
    }

    /// Retired keys are kept this long: every token they signed has expired by then
    /// (a process may sign with a retired key until its next reload).
    fn keep_retired(config: &AuthConfig) -> Duration {
        config.token_lifetime.max(config.ticket_lifetime) + Duration::from_secs(600)
    }

    pub fn mode(&self) -> Mode {
        self.config.mode
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    pub fn policy(&self) -> &ScopePolicy {
        &self.policy
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    pub fn store(&self) -> &Arc<dyn ClientStore> {
        &self.store
    }

    pub fn hasher(&self) -> &SecretHasher {
        &self.hasher
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// `aud` of built-in tokens.
    pub fn audience(&self) -> &str {
        self.config
            .audience
            .as_deref()
            .unwrap_or(&self.config.issuer)
    }

    pub fn keys(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn ClientStore) -> StoreResult<T> + Send + 'static,
    ) -> Result<T, AuthError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|_| AuthError::Config("store worker failed".into()))?
            .map_err(AuthError::Store)
    }

    /// Periodic upkeep: pick up keys made by other processes, rotate and prune
    /// keys, and delete expired dynamically registered clients.
    pub async fn maintain(&self) -> Result<(), AuthError> {
        let now = self.now();
        let rotate = to_chrono(self.config.key_rotation);
        let keep = to_chrono(Self::keep_retired(&self.config));
        let store = self.store.clone();
        let records = tokio::task::spawn_blocking(move || {
            let records = maintain_keys(store.as_ref(), now, rotate, keep)?;
            let pruned = store.delete_expired_dynamic_clients(now)?;
            if pruned > 0 {
                tracing::info!(pruned, "deleted expired dynamically registered clients");
            }
            Ok::<_, AuthError>(records)
        })
        .await
        .map_err(|_| AuthError::Config("maintenance worker failed".into()))??;
        self.install_keys(&records);
        Ok(())
    }

    fn install_keys(&self, records: &[scim_store::clients::SigningKeyRecord]) {
        let set = Arc::new(KeySet::from_records(records));
        match self.keys.write() {
            Ok(mut k) => *k = set,
            Err(p) => *p.into_inner() = set,
        }
    }

    /// Run [`Auth::maintain`] every 30 s for as long as the runtime lives.
    pub fn spawn_maintenance(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let auth = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = auth.maintain().await {
                    tracing::error!(error = %e, "authorization maintenance failed");
                }
            }
        })
    }

    /// Reload keys from the store after seeing an unknown kid, at most once a second.
    async fn reload_keys_rate_limited(&self) -> bool {
        {
            let Ok(mut last) = self.last_key_reload.lock() else {
                return false;
            };
            if last.is_some_and(|t| t.elapsed() < KEY_RELOAD_MIN_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match self.blocking(|s| s.signing_keys()).await {
            Ok(records) => {
                self.install_keys(&records);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload signing keys");
                false
            }
        }
    }

    fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        let keys = self.keys();
        let (kid, key) = keys
            .signer()
            .ok_or_else(|| AuthError::Crypto("no active signing key".into()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_string());
        header.typ = Some(
            if claims.token_use == USE_TICKET {
                "uma-ticket+jwt"
            } else {
                "at+jwt"
            }
            .into(),
        );
        encode(&header, claims, key).map_err(|e| AuthError::Crypto(format!("cannot sign: {e}")))
    }

    /// An access token (or RPT when `permissions` is given) for a client.
    /// Returns the token and its lifetime in seconds.
    pub fn issue_token(
        &self,
        client_id: &str,
        scopes: &[String],
        permissions: Option<Vec<Permission>>,
    ) -> Result<(String, u64), AuthError> {
        let now = self.now().timestamp();
        let lifetime = self.config.token_lifetime.as_secs();
        let claims = Claims {
            iss: self.config.issuer.clone(),
            sub: client_id.to_string(),
            aud: self.audience().to_string(),
            exp: now.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX)),
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            scope: scopes.join(" "),
            client_id: Some(client_id.to_string()),
            token_use: if permissions.is_some() {
                USE_RPT
            } else {
                USE_ACCESS
            }
            .into(),
            permissions,
        };
        Ok((self.sign(&claims)?, lifetime))
    }

    /// A UMA permission ticket naming the scopes a request needs: a short-lived
    /// signed JWT, so any process on the database can redeem it.
    pub fn issue_ticket(&self, scopes: &[String]) -> Result<String, AuthError> {
        let now = self.now().timestamp();
        let lifetime = i64::try_from(self.config.ticket_lifetime.as_secs()).unwrap_or(300);
        self.sign(&Claims {
            iss: self.config.issuer.clone(),
            sub: String::new(),
            aud: self.config.issuer.clone(),
            exp: now.saturating_add(lifetime),
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            scope: scopes.join(" "),
            client_id: None,
            token_use: USE_TICKET.into(),
            permissions: None,
        })
    }

    /// Verify a built-in JWT's signature, issuer, audience, expiry and use.
    fn verify_builtin(
        &self,
        token: &str,
        key: &DecodingKey,
        expected_aud: &str,
        uses: &[&str],
    ) -> Result<Claims, Rejection> {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_aud = false;
        let claims = decode::<Claims>(token, key, &v)
            .map_err(|e| Rejection::Invalid(format!("token rejected: {e}")))?
            .claims;
        if claims.iss != self.config.issuer {
            return Err(Rejection::Invalid("token issuer is not this server".into()));
        }
        if claims.aud != expected_aud {
            return Err(Rejection::Invalid(
                "token audience is not this server".into(),
            ));
        }
        if claims.exp <= self.now().timestamp() {
            return Err(Rejection::Invalid("token has expired".into()));
        }
        if !uses.contains(&claims.token_use.as_str()) {
            return Err(Rejection::Invalid("token is not an access token".into()));
        }
        Ok(claims)
    }

    /// Check a UMA permission ticket and return the scopes it names.
    pub async fn redeem_ticket(&self, ticket: &str) -> Result<Ticket, Rejection> {
        let header =
            decode_header(ticket).map_err(|_| Rejection::Invalid("ticket is malformed".into()))?;
        let kid = header
            .kid
            .ok_or_else(|| Rejection::Invalid("ticket has no key id".into()))?;
        let key = self.own_key(&kid).await?;
        let issuer = self.config.issuer.clone();
        let claims = self.verify_builtin(ticket, &key, &issuer, &[USE_TICKET])?;
        Ok(Ticket {
            scopes: claims.scopes(),
            jti: claims.jti.clone(),
            expires: timestamp(claims.exp).unwrap_or_else(|| self.now()),
        })
    }

    /// Spend a ticket, just before its RPT is issued: a ticket buys one RPT, in
    /// every process on the database (a second attempt is refused).
    pub async fn spend_ticket(&self, ticket: &Ticket) -> Result<(), Rejection> {
        let (jti, expires) = (ticket.jti.clone(), ticket.expires);
        let first = self
            .blocking(move |s| s.redeem_ticket(&jti, expires))
            .await
            .map_err(|e| Rejection::Unavailable(format!("cannot record the ticket: {e}")))?;
        if first {
            Ok(())
        } else {
            Err(Rejection::Invalid("the ticket was already used".into()))
        }
    }

    async fn own_key(&self, kid: &str) -> Result<DecodingKey, Rejection> {
        if let Some(k) = self.keys().verifier(kid) {
            return Ok(k.clone());
        }
        if self.reload_keys_rate_limited().await {
            if let Some(k) = self.keys().verifier(kid) {
                return Ok(k.clone());
            }
        }
        Err(Rejection::Invalid(
            "token is signed by an unknown key".into(),
        ))
    }

    /// Validate a bearer token from any trusted source. A JWT whose signature was
    /// verified recently is not verified again; its expiry and (for built-in
    /// tokens) its client's state are checked on every call.
    pub async fn validate(&self, token: &str) -> Result<TokenInfo, Rejection> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let hit = self.verified.lock().ok().and_then(|cache| {
            cache
                .get(&key)
                .filter(|(_, at)| at.elapsed() < VERIFIED_TTL)
                .map(|(info, _)| info.clone())
        });
        if let Some(info) = hit {
            if info.expires_at.is_some_and(|e| e > self.now()) {
                if matches!(info.kind, TokenKind::Access | TokenKind::Rpt) {
                    let client = info.client_id.as_deref().unwrap_or_default();
                    if !self.client_active(client).await? {
                        return Err(Rejection::Invalid(
                            "the client of this token is no longer active".into(),
                        ));
                    }
                }
                return Ok(info);
            }
        }
        let info = self.validate_uncached(token).await?;
        if info.kind != TokenKind::Introspected {
            if let Ok(mut cache) = self.verified.lock() {
                if cache.len() >= VERIFIED_MAX {
                    cache.retain(|_, (_, at)| at.elapsed() < VERIFIED_TTL);
                    if cache.len() >= VERIFIED_MAX {
                        cache.clear();
                    }
                }
                cache.insert(key, (info.clone(), Instant::now()));
            }
        }
        Ok(info)
    }

    async fn validate_uncached(&self, token: &str) -> Result<TokenInfo, Rejection> {
        if let Ok(header) = decode_header(token) {
            if let Some(key) = header.kid.as_deref().and_then(|k| {
                let keys = self.keys();
                keys.verifier(k).cloned()
            }) {
                return self.validate_builtin(token, &key).await;
            }
            let iss = peek_claim(token, "iss");
            if let Some(ext) = &self.external {
                if ext.validates_jwt_from(iss.as_deref()) {
                    return ext.validate_jwt(token, &header, self.now()).await;
                }
            }
            if iss.as_deref() == Some(self.config.issuer.as_str()) {
                let kid = header
                    .kid
                    .ok_or_else(|| Rejection::Invalid("token has no key id".into()))?;
                let key = self.own_key(&kid).await?;
                return self.validate_builtin(token, &key).await;
            }
        }
        if let Some(ext) = &self.external {
            if ext.introspects() {
                return ext.introspect(token, self.now()).await;
            }
        }
        Err(Rejection::Invalid(
            "token is not from a trusted issuer".into(),
        ))
    }

    async fn validate_builtin(
        &self,
        token: &str,
        key: &DecodingKey,
    ) -> Result<TokenInfo, Rejection> {
        let claims = self.verify_builtin(token, key, self.audience(), &[USE_ACCESS, USE_RPT])?;
        let client_id = claims
            .client_id
            .clone()
            .unwrap_or_else(|| claims.sub.clone());
        if !self.client_active(&client_id).await? {
            return Err(Rejection::Invalid(
                "the client of this token is no longer active".into(),
            ));
        }
        let (kind, scopes) = match &claims.permissions {
            Some(perms) => {
                let mut scopes: Vec<String> = Vec::new();
                for p in perms {
                    for s in &p.resource_scopes {
                        if !scopes.contains(s) {
                            scopes.push(s.clone());
                        }
                    }
                }
                (TokenKind::Rpt, scopes)
            }
            None => (TokenKind::Access, claims.scopes()),
        };
        Ok(TokenInfo {
            kind,
            client_id: Some(client_id),
            subject: Some(claims.sub),
            issuer: Some(claims.iss),
            scopes,
            expires_at: timestamp(claims.exp),
            token_id: Some(claims.jti),
        })
    }

    /// Is the client still registered, enabled and unexpired? Cached for a couple
    /// of seconds so that validation stays cheap.
    async fn client_active(&self, id: &str) -> Result<bool, Rejection> {
        let ttl = self.config.client_cache_ttl;
        if let Ok(cache) = self.clients.lock() {
            if let Some((active, at)) = cache.get(id) {
                if at.elapsed() < ttl {
                    return Ok(*active);
                }
            }
        }
        let owned = id.to_string();
        let record = self
            .blocking(move |s| s.get_client(&owned))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot read the client registry");
                Rejection::Unavailable("client registry unavailable".into())
            })?;
        let now = self.now();
        let active = record.is_some_and(|c| !c.disabled && c.expires.is_none_or(|e| e > now));
        if let Ok(mut cache) = self.clients.lock() {
            if cache.len() >= CLIENT_CACHE_MAX {
                cache.clear();
            }
            cache.insert(id.to_string(), (active, Instant::now()));
        }
        Ok(active)
    }

    /// Forget what this process cached about a client (after admin changes in it).
    pub fn forget_client(&self, id: &str) {
        if let Ok(mut cache) = self.clients.lock() {
            cache.remove(id);
        }
    }

    /// Fixed-window limit on token requests per client id in this process.
    /// Whether a token request of `client_id` from `ip` is within the token
    /// endpoint's limits; else how long to wait.
    pub fn allow_token_request(&self, client_id: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        let now = self.now();
        if let (Some(l), Some(ip)) = (&self.token_requests_by_ip, ip) {
            l.take(&ip, now)?;
        }
        self.token_requests.take(&client_id.to_string(), now)
    }

    /// Whether an API request of `client_id` is within its rate; else how long
    /// to wait.
    pub fn allow_api_request(&self, client_id: &str) -> Result<(), Duration> {
        match &self.api_requests {
            Some(l) => l.take(&client_id.to_string(), self.now()),
            None => Ok(()),
        }
    }

    /// Authenticate a client by id and secret, from `ip`. Repeated bad secrets
    /// from one address slow that address down (growing delays); they never
    /// lock the client out, so its real caller keeps getting tokens.
    pub async fn authenticate_client(
        &self,
        id: &str,
        secret: &str,
        ip: Option<IpAddr>,
    ) -> Result<ClientRecord, ClientAuthFailure> {
        let now = self.now();
        if let Err(wait) = self.failures.check(id, ip, now) {
            metrics::counter!("scimd_token_rejections_total", "reason" => "throttled").increment(1);
            tracing::warn!(client_id = %id, ip = ?ip, retry_after_ms = wait.as_millis() as u64, "client authentication throttled after repeated failures");
            return Err(ClientAuthFailure::Throttled(wait));
        }
        let owned = id.to_string();
        let record = self
            .blocking(move |s| s.get_client(&owned))
            .await
            .map_err(ClientAuthFailure::Internal)?;
        let verified = match &record {
            Some(client) => self.hasher.verify(secret, &client.secret_hash),
            None => {
                // Same work as for a real client, so timing does not tell ids apart.
                let _ = self.hasher.verify(secret, "");
                false
            }
        };
        let Some(client) = record.filter(|_| verified) else {
            let failures = self.failures.failed(id, ip, now);
            metrics::counter!("scimd_token_rejections_total", "reason" => "bad_secret")
                .increment(1);
            tracing::warn!(client_id = %id, ip = ?ip, failures, "client authentication failed");
            return Err(ClientAuthFailure::Invalid);
        };
        self.failures.succeeded(id, ip);
        if client.disabled {
            tracing::info!(client_id = %client.id, "token request from a disabled client refused");
            return Err(ClientAuthFailure::Invalid);
        }
        if client.expires.is_some_and(|e| e <= now) {
            tracing::info!(client_id = %client.id, "token request from an expired client refused");
            return Err(ClientAuthFailure::Invalid);
        }
        Ok(client)
    }
}
