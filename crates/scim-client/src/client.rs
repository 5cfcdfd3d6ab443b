//! The client, its builder, and the request path every call goes through:
//! headers, credentials, retries, error decoding.

use crate::auth::{Auth, ClientCredentials};
use crate::discovery::{list_entries, resource_type_info, Capabilities};
use crate::resource::{Fido2Device, FidoDevice, Group, Resource, User};
use crate::retry::RetryPolicy;
use crate::transport::{Raw, Transport};
use crate::{Error, Resources, Result};
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use reqwest::Method;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

const SCIM_JSON: &str = "application/scim+json";

/// A SCIM client. Cheap to clone (an `Arc` inside) and safe to share across
/// tasks: clones share one connection pool, one token cache and the
/// discovered capabilities.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// Headers of this handle (the builder's, plus [`Client::with_header`]'s).
    headers: Arc<HeaderMap>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values may hold credentials: names only.
        let names: Vec<&str> = self.headers.keys().map(|k| k.as_str()).collect();
        f.debug_struct("Client")
            .field("base_url", &self.inner.base)
            .field("headers", &names)
            .finish_non_exhaustive()
    }
}

struct Inner {
    transport: Transport,
    base: String,
    root: String,
    auth: Auth,
    caps: OnceCell<Arc<Capabilities>>,
}

enum AuthConfig {
    None,
    Bearer(String),
    Basic(String, String),
    OAuth(ClientCredentials),
    Uma(ClientCredentials),
}

/// Builds a [`Client`]; see [`Client::builder`].
pub struct ClientBuilder {
    base: String,
    auth: AuthConfig,
    headers: Vec<(String, String)>,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    insecure: bool,
}

impl ClientBuilder {
    /// Send this static bearer token.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.auth = AuthConfig::Bearer(token.into());
        self
    }

    /// Get tokens with the OAuth 2.0 client_credentials grant; fetched on first
    /// use, renewed before they expire and once more on a 401.
    pub fn client_credentials(mut self, c: ClientCredentials) -> Self {
        self.auth = AuthConfig::OAuth(c);
        self
    }

    /// UMA 2.0: on a 401 `WWW-Authenticate: UMA … ticket`, exchange the ticket
    /// for an RPT at the token endpoint of the challenge's `as_uri` (or at
    /// `c.token_url`) and send the request again with it.
    pub fn uma(mut self, c: ClientCredentials) -> Self {
        self.auth = AuthConfig::Uma(c);
        self
    }

    /// HTTP Basic authentication.
    pub fn basic(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = AuthConfig::Basic(user.into(), password.into());
        self
    }

    /// A header sent with every request (e.g. Gluu's `scim.extraHeaders`).
    /// Invalid names or values are reported by [`build`](Self::build).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The time one attempt of a request may take (default 30 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The time to connect (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How to retry (default [`RetryPolicy::default`]).
    pub fn retry(mut self, p: RetryPolicy) -> Self {
        self.retry = p;
        self
    }

    /// Accept any TLS certificate (test servers only).
    pub fn danger_accept_invalid_certs(mut self, yes: bool) -> Self {
        self.insecure = yes;
        self
    }

    /// Check the configuration and make the client (no request is sent yet).
    pub fn build(self) -> Result<Client> {
        let url = reqwest::Url::parse(&self.base)
            .map_err(|e| Error::Config(format!("base URL {:?}: {e}", self.base)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::Config(format!(
                "base URL {:?} is not an http(s) URL",
                self.base
            )));
        }
        let base = self.base.trim_end_matches('/').to_string();
        let root = url.origin().ascii_serialization();
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let (n, v) = header_pair(name, value)?;
            headers.append(n, v);
        }
        let auth = match self.auth {
            AuthConfig::None => Auth::None,
            AuthConfig::Bearer(t) => Auth::bearer(&t)?,
            AuthConfig::Basic(u, p) => Auth::basic(&u, &p)?,
            AuthConfig::OAuth(c) => {
                check_credentials(&c)?;
                Auth::oauth(c, root.clone())
            }
            AuthConfig::Uma(c) => {
                check_credentials(&c)?;
                Auth::uma(c)
            }
        };
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .danger_accept_invalid_certs(self.insecure)
            .user_agent(concat!("scim-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                transport: Transport {
                    http,
                    retry: self.retry,
                },
                base,
                root,
                auth,
                caps: OnceCell::new(),
            }),
            headers: Arc::new(headers),
        })
    }
}

fn check_credentials(c: &ClientCredentials) -> Result<()> {
    if c.client_id.is_empty() || c.client_secret.is_empty() {
        return Err(Error::Config("client id and secret are required".into()));
    }
    Ok(())
}

fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue)> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Error::Config(format!("bad header name {name:?}")))?;
    let v = HeaderValue::from_str(value)
        .map_err(|_| Error::Config(format!("bad value for header {name}")))?;
    Ok((n, v))
}

/// One request, before credentials and retries.
pub(crate) struct Request {
    method: Method,
    /// Under the SCIM base (`/Users/1`), or an absolute URL.
    path: String,
    query: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    headers: HeaderMap,
}

impl Request {
    pub(crate) fn new(method: Method, path: impl Into<String>) -> Request {
        Request {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            headers: HeaderMap::new(),
        }
    }

    pub(crate) fn query(mut self, key: &str, value: impl ToString) -> Request {
        self.query.push((key.to_string(), value.to_string()));
        self
    }

    pub(crate) fn json(mut self, body: &Value) -> Result<Request> {
        self.body = Some(serde_json::to_vec(body).map_err(|e| Error::Config(e.to_string()))?);
        Ok(self)
    }

    pub(crate) fn header(mut self, name: HeaderName, value: Option<&str>) -> Result<Request> {
        if let Some(v) = value {
            let v = HeaderValue::from_str(v)
                .map_err(|_| Error::Config(format!("bad value for header {name}")))?;
            self.headers.insert(name, v);
        }
        Ok(self)
    }

    /// Reads (and `.search`) may be sent twice without harm; so may PUT and DELETE.
    fn idempotent(&self) -> bool {
        self.method == Method::GET
            || self.method == Method::PUT
            || self.method == Method::DELETE
            || self.method == Method::HEAD
            || (self.method == Method::POST && self.path.ends_with("/.search"))
    }
}

/// What an RPT is kept for: read or write, per endpoint (`read:Users`).
fn scope_key(method: &Method, path: &str) -> String {
    // Absolute URLs (UpdatedUsers, outside the base) are keyed by their last segment.
    let path = match path.split_once("://") {
        Some((_, rest)) => rest.rsplit('/').next().unwrap_or_default(),
        None => path,
    };
    let endpoint = path
        .trim_start_matches('/')
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    let read = *method == Method::GET || (*method == Method::POST && path.ends_with("/.search"));
    format!("{}:{endpoint}", if read { "read" } else { "write" })
}

impl Client {
    /// Start building a client for the SCIM base URL, e.g. `https://host/scim/v2`.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base: base_url.into(),
            auth: AuthConfig::None,
            headers: Vec::new(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            insecure: false,
        }
    }

    /// The SCIM base URL (without a trailing slash).
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// A cheap clone that adds this header to every request it makes (e.g.
    /// `Group-Overhead-Bypass: true` for one call); it replaces a header of the
    /// same name.
    pub fn with_header(&self, name: &str, value: &str) -> Result<Client> {
        let (n, v) = header_pair(name, value)?;
        let mut headers = (*self.headers).clone();
        headers.insert(n, v);
        Ok(Client {
            inner: self.inner.clone(),
            headers: Arc::new(headers),
        })
    }

    /// The server's ServiceProviderConfig, ResourceTypes and Schemas; read on
    /// the first call, then cached (for every clone).
    pub async fn discover(&self) -> Result<Arc<Capabilities>> {
        self.inner
            .caps
            .get_or_try_init(|| async { self.read_capabilities().await.map(Arc::new) })
            .await
            .cloned()
    }

    async fn read_capabilities(&self) -> Result<Capabilities> {
        let spc = self.get_json("/ServiceProviderConfig").await?;
        let mut caps = Capabilities::from_config(spc);
        caps.resource_types = self
            .optional_list("/ResourceTypes")
            .await?
            .iter()
            .filter_map(resource_type_info)
            .collect();
        caps.schemas = self.optional_list("/Schemas").await?;
        Ok(caps)
    }

    /// A discovery list that a server may not serve (404, 501: empty).
    async fn optional_list(&self, path: &str) -> Result<Vec<Value>> {
        match self.get_json(path).await {
            Ok(v) => Ok(list_entries(v)),
            Err(e) if matches!(e.status(), Some(404 | 501)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn get_json(&self, path: &str) -> Result<Value> {
        let raw = self.execute(Request::new(Method::GET, path)).await?;
        decode(&raw)
    }

    /// Users (`/Users`).
    pub fn users(&self) -> Resources<User> {
        Resources::new(self.clone(), User::ENDPOINT)
    }

    /// Groups (`/Groups`).
    pub fn groups(&self) -> Resources<Group> {
        Resources::new(self.clone(), Group::ENDPOINT)
    }

    /// Gluu's FIDO U2F devices (`/FidoDevices`).
    pub fn fido_devices(&self) -> Resources<FidoDevice> {
        Resources::new(self.clone(), FidoDevice::ENDPOINT)
    }

    /// Gluu's FIDO 2 devices (`/Fido2Devices`).
    pub fn fido2_devices(&self) -> Resources<Fido2Device> {
        Resources::new(self.clone(), Fido2Device::ENDPOINT)
    }

    /// Any resource type as raw JSON, by endpoint (e.g. `/Users`, `/Roles`).
    /// `""` or `"/"` is the server root: its searches (`use_post` for
    /// `POST /.search`) span every resource type.
    pub fn resources(&self, endpoint: &str) -> Resources<Value> {
        let trimmed = endpoint.trim_matches('/');
        let endpoint = if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        };
        Resources::new(self.clone(), &endpoint)
    }

    /// Absolute URL of a path under the base (absolute URLs pass through).
    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.inner.base, path)
        }
    }

    /// A URL outside the SCIM base: the base with its last segment (`/v2`) cut,
    /// then `path` (Gluu's `…/scim/UpdatedUsers` sits there).
    pub(crate) fn beside_base(&self, path: &str) -> String {
        let base = &self.inner.base;
        let parent = match base.rfind('/') {
            Some(at) if at > self.inner.root.len() => &base[..at],
            _ => base.as_str(),
        };
        format!("{parent}{path}")
    }

    /// Send a request: headers, credentials (renewed once on a 401), retries.
    /// A 2xx or 304 comes back; any other status becomes an [`Error`].
    pub(crate) async fn execute(&self, req: Request) -> Result<Raw> {
        let t = &self.inner.transport;
        let url = self.url(&req.path);
        let key = scope_key(&req.method, &req.path);
        let started = Instant::now();
        let mut renewed = false;
        loop {
            let auth = self.inner.auth.header(t, &key).await?;
            let make = || {
                let mut b = t
                    .http
                    .request(req.method.clone(), &url)
                    .header(ACCEPT, "application/scim+json, application/json")
                    .headers((*self.headers).clone())
                    .headers(req.headers.clone());
                if !req.query.is_empty() {
                    b = b.query(&req.query);
                }
                if let Some(a) = &auth {
                    b = b.header(AUTHORIZATION, a.clone());
                }
                if let Some(body) = &req.body {
                    b = b.header(CONTENT_TYPE, SCIM_JSON).body(body.clone());
                }
                b
            };
            let raw = t.send(make, req.idempotent(), started).await?;
            if raw.status == 401
                && !renewed
                && self
                    .inner
                    .auth
                    .recover(t, &key, auth.as_ref(), &raw)
                    .await?
            {
                renewed = true;
                continue;
            }
            return check(raw);
        }
    }
}

/// 2xx and 304 pass; a 401 is an auth error; anything else a SCIM error.
fn check(raw: Raw) -> Result<Raw> {
    match raw.status {
        200..=299 | 304 => Ok(raw),
        401 => {
            let www = raw.header(WWW_AUTHENTICATE.as_str()).unwrap_or_default();
            let detail = match Error::from_response(401, &raw.body) {
                Error::Scim { detail, .. } if !raw.body.is_empty() => detail,
                _ => crate::auth::param(www, "error_description")
                    .or_else(|| crate::auth::param(www, "error"))
                    .unwrap_or_else(|| "unauthorized".into()),
            };
            Err(Error::Auth {
                status: Some(401),
                detail,
            })
        }
        status => Err(Error::from_response(status, &raw.body)),
    }
}

/// The body as JSON.
pub(crate) fn decode(raw: &Raw) -> Result<Value> {
    serde_json::from_slice(&raw.body).map_err(|e| Error::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_keys_split_reads_from_writes_per_endpoint() {
        assert_eq!(scope_key(&Method::GET, "/Users/1"), "read:Users");
        assert_eq!(scope_key(&Method::POST, "/Users/.search"), "read:Users");
        assert_eq!(scope_key(&Method::POST, "/Users"), "write:Users");
        assert_eq!(scope_key(&Method::PATCH, "/Groups/x"), "write:Groups");
        assert_eq!(scope_key(&Method::POST, "/Bulk"), "write:Bulk");
        assert_eq!(
            scope_key(&Method::GET, "http://h/scim/UpdatedUsers"),
            "read:UpdatedUsers"
        );
    }

    #[test]
    fn builder_checks_its_input() {
        assert!(matches!(
            Client::builder("not a url").build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::builder("ftp://h/x").build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::builder("http://h/scim/v2")
                .header("bad name", "x")
                .build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::builder("http://h/scim/v2")
                .client_credentials(ClientCredentials::new("id", ""))
                .build(),
            Err(Error::Config(_))
        ));
        let c = Client::builder("http://h:8080/identity/restv1/scim/v2/")
            .build()
            .unwrap();
        assert_eq!(c.base_url(), "http://h:8080/identity/restv1/scim/v2");
        assert_eq!(
            c.beside_base("/UpdatedUsers"),
            "http://h:8080/identity/restv1/scim/UpdatedUsers"
        );
        assert_eq!(
            c.url("/Users"),
            "http://h:8080/identity/restv1/scim/v2/Users"
        );
        let h = c.with_header("Group-Overhead-Bypass", "true").unwrap();
        assert_eq!(h.headers.len(), 1);
        assert!(c.headers.is_empty(), "the original handle is unchanged");
    }

    #[test]
    fn unauthorized_responses_become_auth_errors() {
        let mut headers = HeaderMap::new();
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer error=\"invalid_token\", error_description=\"token expired\"",
            ),
        );
        let e = check(Raw {
            status: 401,
            headers,
            body: Vec::new(),
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "authentication failed (401): token expired");
        let e = check(Raw {
            status: 403,
            headers: HeaderMap::new(),
            body: b"{\"detail\":\"no\"}".to_vec(),
        })
        .unwrap_err();
        assert_eq!(e.status(), Some(403));
    }
}
