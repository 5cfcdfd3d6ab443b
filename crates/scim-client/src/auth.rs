//! Credentials: static headers, OAuth 2.0 client_credentials tokens and UMA 2.0
//! RPTs, fetched lazily, renewed before they expire and once more on a 401.

use crate::transport::{Raw, Transport};
use crate::{Error, Result};
use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OnceCell};

const UMA_GRANT: &str = "urn:ietf:params:oauth:grant-type:uma-ticket";

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecretMethod {
    /// `client_secret_basic`: HTTP Basic with id and secret.
    #[default]
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    Post,
}

/// An OAuth client's credentials (for client_credentials or UMA).
#[derive(Clone, Default)]
pub struct ClientCredentials {
    /// The client id.
    pub client_id: String,
    /// The client secret (never logged, never in an error).
    pub client_secret: String,
    /// The token endpoint. `None`: read from `<server root>/.well-known/openid-configuration`
    /// (OAuth) or from the `as_uri` of the UMA challenge.
    pub token_url: Option<String>,
    /// Scopes to ask for (none: the client's registered scopes).
    pub scopes: Vec<String>,
    /// How to send the secret.
    pub method: SecretMethod,
}

impl ClientCredentials {
    /// Credentials with a discovered token endpoint, no scopes, `client_secret_basic`.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        ClientCredentials {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            ..ClientCredentials::default()
        }
    }

    /// Use this token endpoint instead of discovering it.
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// Ask for these scopes.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Send the secret this way.
    pub fn method(mut self, method: SecretMethod) -> Self {
        self.method = method;
        self
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("token_url", &self.token_url)
            .field("scopes", &self.scopes)
            .field("method", &self.method)
            .finish()
    }
}

/// A token and when to stop using it.
struct Token {
    header: HeaderValue,
    refresh_at: Instant,
}

impl Token {
    fn fresh(&self) -> bool {
        Instant::now() < self.refresh_at
    }
}

/// When to renew a token that the server says lives `expires_in` seconds.
/// `expires_in` is whole seconds and the server may have rounded its clock
/// down, so one second is taken off; then a fifth of the rest (at most a
/// minute) is kept in hand for the request to arrive in time.
pub(crate) fn usable_for(expires_in: u64) -> Duration {
    let secs = expires_in.saturating_sub(1) as f64;
    let margin = (secs / 5.0).min(60.0);
    Duration::from_secs_f64(secs - margin)
}

/// What the client sends as `Authorization`.
pub(crate) enum Auth {
    None,
    Static(HeaderValue),
    OAuth(OAuth),
    Uma(Uma),
}

impl Auth {
    pub(crate) fn bearer(token: &str) -> Result<Auth> {
        Ok(Auth::Static(bearer_header(token)?))
    }

    pub(crate) fn basic(user: &str, password: &str) -> Result<Auth> {
        use base64::Engine;
        let raw = format!("{user}:{password}");
        let enc = base64::engine::general_purpose::STANDARD.encode(raw);
        Ok(Auth::Static(sensitive(&format!("Basic {enc}"))?))
    }

    pub(crate) fn oauth(creds: ClientCredentials, root: String) -> Auth {
        Auth::OAuth(OAuth {
            creds,
            root,
            token_url: OnceCell::new(),
            current: Mutex::new(None),
        })
    }

    pub(crate) fn uma(creds: ClientCredentials) -> Auth {
        Auth::Uma(Uma {
            creds,
            rpts: Mutex::new(HashMap::new()),
            endpoints: Mutex::new(HashMap::new()),
        })
    }

    /// The `Authorization` value for a request whose scope key is `key`.
    pub(crate) async fn header(&self, t: &Transport, key: &str) -> Result<Option<HeaderValue>> {
        match self {
            Auth::None => Ok(None),
            Auth::Static(h) => Ok(Some(h.clone())),
            Auth::OAuth(o) => o.header(t).await.map(Some),
            Auth::Uma(u) => Ok(u.header(key).await),
        }
    }

    /// After a 401 to a request sent with `used`: renew what can be renewed.
    /// `true` when sending the request again may now succeed.
    pub(crate) async fn recover(
        &self,
        t: &Transport,
        key: &str,
        used: Option<&HeaderValue>,
        resp: &Raw,
    ) -> Result<bool> {
        match self {
            Auth::None | Auth::Static(_) => Ok(false),
            Auth::OAuth(o) => {
                o.reject(used).await;
                Ok(true)
            }
            Auth::Uma(u) => u.challenge(t, key, &resp.headers).await,
        }
    }
}

fn sensitive(value: &str) -> Result<HeaderValue> {
    let mut h = HeaderValue::from_str(value)
        .map_err(|_| Error::Config("credentials hold characters not allowed in a header".into()))?;
    h.set_sensitive(true);
    Ok(h)
}

fn bearer_header(token: &str) -> Result<HeaderValue> {
    sensitive(&format!("Bearer {token}"))
}

/// OAuth 2.0 client_credentials.
pub(crate) struct OAuth {
    creds: ClientCredentials,
    root: String,
    token_url: OnceCell<String>,
    /// Locked across a fetch, so concurrent tasks wait for one token request.
    current: Mutex<Option<Token>>,
}

impl OAuth {
    async fn header(&self, t: &Transport) -> Result<HeaderValue> {
        let mut current = self.current.lock().await;
        if let Some(tok) = current.as_ref().filter(|t| t.fresh()) {
            return Ok(tok.header.clone());
        }
        let url = self.token_url(t).await?;
        let mut form = vec![("grant_type".to_string(), "client_credentials".to_string())];
        if !self.creds.scopes.is_empty() {
            form.push(("scope".into(), self.creds.scopes.join(" ")));
        }
        let tok = request_token(t, url, &self.creds, form).await?;
        let header = tok.header.clone();
        *current = Some(tok);
        Ok(header)
    }

    /// The API refused `used`: forget it, unless another task already replaced it.
    async fn reject(&self, used: Option<&HeaderValue>) {
        let mut current = self.current.lock().await;
        if current.as_ref().map(|t| &t.header) == used {
            *current = None;
        }
    }

    async fn token_url(&self, t: &Transport) -> Result<&str> {
        self.token_url
            .get_or_try_init(|| async {
                match &self.creds.token_url {
                    Some(u) => Ok(u.clone()),
                    None => {
                        let meta = format!("{}/.well-known/openid-configuration", self.root);
                        token_endpoint_of(t, &meta).await
                    }
                }
            })
            .await
            .map(String::as_str)
    }
}

/// UMA 2.0 (as in Gluu and scimd's `--protection uma`): a request without a
/// suitable RPT gets 401 `WWW-Authenticate: UMA realm, as_uri, ticket`; the
/// ticket is exchanged at the authorization server's token endpoint for an RPT,
/// and the request is sent again with it. RPTs are kept per scope key (read or
/// write, per endpoint), since one covers only the scopes of its ticket.
pub(crate) struct Uma {
    creds: ClientCredentials,
    rpts: Mutex<HashMap<String, Token>>,
    /// Token endpoint per `as_uri`.
    endpoints: Mutex<HashMap<String, String>>,
}

impl Uma {
    async fn header(&self, key: &str) -> Option<HeaderValue> {
        let rpts = self.rpts.lock().await;
        rpts.get(key)
            .filter(|t| t.fresh())
            .map(|t| t.header.clone())
    }

    async fn challenge(&self, t: &Transport, key: &str, headers: &HeaderMap) -> Result<bool> {
        let Some(www) = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.len() >= 4 && v[..4].eq_ignore_ascii_case("UMA "))
        else {
            return Ok(false);
        };
        let (Some(as_uri), Some(ticket)) = (param(www, "as_uri"), param(www, "ticket")) else {
            return Err(Error::Auth {
                status: Some(401),
                detail: "UMA challenge without as_uri or ticket".into(),
            });
        };
        let url = self.endpoint(t, &as_uri).await?;
        let form = vec![
            ("grant_type".to_string(), UMA_GRANT.to_string()),
            ("ticket".to_string(), ticket),
        ];
        let rpt = request_token(t, &url, &self.creds, form).await?;
        self.rpts.lock().await.insert(key.to_string(), rpt);
        Ok(true)
    }

    async fn endpoint(&self, t: &Transport, as_uri: &str) -> Result<String> {
        if let Some(u) = &self.creds.token_url {
            return Ok(u.clone());
        }
        if let Some(u) = self.endpoints.lock().await.get(as_uri) {
            return Ok(u.clone());
        }
        let meta = format!(
            "{}/.well-known/uma2-configuration",
            as_uri.trim_end_matches('/')
        );
        let url = token_endpoint_of(t, &meta).await?;
        self.endpoints
            .lock()
            .await
            .insert(as_uri.to_string(), url.clone());
        Ok(url)
    }
}

/// Pull `key="value"` (or `key=token`) out of a challenge's parameters.
pub(crate) fn param(challenge: &str, key: &str) -> Option<String> {
    let rest = challenge.split_once(' ').map(|(_, r)| r)?;
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            return None;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        if name.trim().eq_ignore_ascii_case(key) {
            return Some(value.trim().to_string());
        }
    }
}

/// `token_endpoint` of an authorization server metadata document.
async fn token_endpoint_of(t: &Transport, meta_url: &str) -> Result<String> {
    let raw = t
        .send(|| t.http.get(meta_url), true, Instant::now())
        .await?;
    if !(200..300).contains(&raw.status) {
        return Err(Error::Auth {
            status: Some(raw.status),
            detail: format!("could not read {meta_url}"),
        });
    }
    let v: Value =
        serde_json::from_slice(&raw.body).map_err(|e| Error::Decode(format!("{meta_url}: {e}")))?;
    v.get("token_endpoint")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::Auth {
            status: None,
            detail: format!("no token_endpoint in {meta_url}"),
        })
}

/// POST a token request (RFC 6749 §4.4, or the UMA grant) and read the token.
async fn request_token(
    t: &Transport,
    url: &str,
    creds: &ClientCredentials,
    mut form: Vec<(String, String)>,
) -> Result<Token> {
    if creds.method == SecretMethod::Post {
        form.push(("client_id".into(), creds.client_id.clone()));
        form.push(("client_secret".into(), creds.client_secret.clone()));
    }
    let make = || {
        let req = t.http.post(url).form(&form);
        match creds.method {
            SecretMethod::Basic => req.basic_auth(&creds.client_id, Some(&creds.client_secret)),
            SecretMethod::Post => req,
        }
    };
    let raw = t.send(make, true, Instant::now()).await?;
    if !(200..300).contains(&raw.status) {
        return Err(Error::from_token_endpoint(raw.status, &raw.body));
    }
    parse_token(&raw.body)
}

fn parse_token(body: &[u8]) -> Result<Token> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| Error::Decode(format!("token response: {e}")))?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Decode("token response without access_token".into()))?;
    if let Some(kind) = v.get("token_type").and_then(Value::as_str) {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(Error::Auth {
                status: None,
                detail: format!("unsupported token_type {kind}"),
            });
        }
    }
    // A number, or a string holding one (some servers); absent: an hour, and a
    // 401 renews it earlier if need be.
    let expires_in = match v.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or(3600);
    Ok(Token {
        header: bearer_header(token)?,
        refresh_at: Instant::now() + usable_for(expires_in),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parameters() {
        let h = r#"UMA realm="scimd", as_uri="http://127.0.0.1:8080", ticket="a,b\"c""#;
        assert_eq!(param(h, "realm").as_deref(), Some("scimd"));
        assert_eq!(param(h, "as_uri").as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(param(h, "ticket").as_deref(), Some("a,b\"c"));
        assert_eq!(param(h, "missing"), None);
        let h = r#"Bearer error=invalid_token, error_description="expired""#;
        assert_eq!(param(h, "error").as_deref(), Some("invalid_token"));
        assert_eq!(param(h, "error_description").as_deref(), Some("expired"));
    }

    #[test]
    fn tokens_are_renewed_ahead_of_expiry() {
        assert_eq!(usable_for(0), Duration::ZERO);
        assert_eq!(usable_for(1), Duration::ZERO);
        assert_eq!(usable_for(2), Duration::from_millis(800));
        assert_eq!(usable_for(301), Duration::from_secs(240));
        assert_eq!(usable_for(3601), Duration::from_secs(3540));
    }

    #[test]
    fn token_responses() {
        let t = parse_token(br#"{"access_token":"abc","token_type":"Bearer","expires_in":"600"}"#)
            .unwrap();
        assert_eq!(t.header.to_str().unwrap(), "Bearer abc");
        assert!(t.header.is_sensitive());
        assert!(t.fresh());
        assert!(parse_token(br#"{"token_type":"Bearer"}"#).is_err());
        assert!(parse_token(br#"{"access_token":"x","token_type":"mac"}"#).is_err());
        let dead = parse_token(br#"{"access_token":"x","expires_in":1}"#).unwrap();
        assert!(!dead.fresh());
    }

    #[test]
    fn basic_credentials_header() {
        let Auth::Static(h) = Auth::basic("Aladdin", "open sesame").unwrap() else {
            panic!("not a static header");
        };
        assert_eq!(h.to_str().unwrap(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(h.is_sensitive());
        assert!(Auth::bearer("eyJ.abc-_~+/=").is_ok());
        assert!(matches!(Auth::bearer("bad\ntoken"), Err(Error::Config(_))));
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = ClientCredentials::new("id", "s3cr3t");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
