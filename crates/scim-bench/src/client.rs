//! A minimal HTTP/1.1 client over hyper: one `Conn` is one TCP connection (re-opened
//! when the server closes it), so a closed-loop benchmark with C workers holds
//! exactly C connections. Plain `http://` only (the load never leaves loopback).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

pub(crate) const SCIM_JSON: &str = "application/scim+json";

/// Where the SCIM API is: `http://host:port/prefix`.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `host:port` to connect to.
    pub authority: String,
    /// Path prefix without a trailing slash, e.g. `/scim/v2` (may be empty).
    pub prefix: String,
    /// Bearer token sent on every request.
    pub token: Option<String>,
    pub timeout: Duration,
}

impl Target {
    pub(crate) fn parse(
        base: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| format!("base URL must start with http:// (got {base})"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(format!("base URL has no host: {base}"));
        }
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Target {
            authority,
            prefix: path.trim_end_matches('/').to_string(),
            token,
            timeout,
        })
    }
}

/// One response, body fully read.
#[derive(Debug)]
pub(crate) struct Resp {
    pub status: u16,
    pub body: Bytes,
}

impl Resp {
    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub(crate) fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "HTTP {}: body is not JSON ({e}): {}",
                self.status,
                snippet(&self.body)
            )
        })
    }
    /// `HTTP 409: {...}` for error messages.
    pub(crate) fn describe(&self) -> String {
        format!("HTTP {}: {}", self.status, snippet(&self.body))
    }
}

pub(crate) fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    if s.chars().count() > 240 {
        format!("{}…", s.chars().take(240).collect::<String>())
    } else {
        s.to_string()
    }
}

/// One keep-alive connection.
pub(crate) struct Conn {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub(crate) fn new(target: Arc<Target>) -> Self {
        Conn {
            target,
            sender: None,
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = TcpStream::connect(&self.target.authority)
            .await
            .map_err(|e| format!("connect {}: {e}", self.target.authority))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// A ready sender; `true` when it is a reused connection.
    async fn ready(&mut self) -> Result<(SendRequest<Full<Bytes>>, bool), String> {
        if let Some(mut s) = self.sender.take() {
            if !s.is_closed() && s.ready().await.is_ok() {
                return Ok((s, true));
            }
        }
        Ok((self.connect().await?, false))
    }

    /// Send a request to `prefix + path` (path includes any query string).
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        let timeout = self.target.timeout;
        match tokio::time::timeout(timeout, self.send_inner(method, path, body, headers)).await {
            Ok(r) => r,
            Err(_) => {
                self.sender = None;
                Err(format!("timeout after {}s", timeout.as_secs_f64()))
            }
        }
    }

    async fn send_inner(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        let uri = format!("{}{}", self.target.prefix, path);
        for attempt in 0..2 {
            let (mut sender, reused) = self.ready().await?;
            let mut b = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .header(hyper::header::HOST, &self.target.authority)
                .header(hyper::header::ACCEPT, SCIM_JSON);
            if body.is_some() {
                b = b.header(hyper::header::CONTENT_TYPE, SCIM_JSON);
            }
            if let Some(t) = &self.target.token {
                b = b.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
            }
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            let req = b
                .body(Full::new(body.clone().unwrap_or_default()))
                .map_err(|e| format!("bad request {uri}: {e}"))?;
            match sender.send_request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| format!("reading body: {e}"))?
                        .to_bytes();
                    self.sender = Some(sender);
                    return Ok(Resp { status, body });
                }
                Err(e) => {
                    // A kept-alive connection the server closed meanwhile: the request
                    // never reached it, so one retry on a fresh connection is safe.
                    let stale =
                        reused && (e.is_canceled() || e.is_closed() || e.is_incomplete_message());
                    if attempt == 0 && stale {
                        continue;
                    }
                    return Err(format!("{method} {uri}: {e}"));
                }
            }
        }
        Err(format!("{method} {uri}: connection closed twice"))
    }

    pub(crate) async fn get(&mut self, path: &str) -> Result<Resp, String> {
        self.send(Method::GET, path, None, &[]).await
    }

    pub(crate) async fn post_json(
        &mut self,
        path: &str,
        v: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        self.send(Method::POST, path, Some(to_body(v)), headers)
            .await
    }

    pub(crate) async fn patch_json(
        &mut self,
        path: &str,
        v: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        self.send(Method::PATCH, path, Some(to_body(v)), headers)
            .await
    }
}

pub(crate) fn to_body(v: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// Percent-encode a query-string value (everything but RFC 3986 unreserved).
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base() {
        let t = Target::parse(
            "http://127.0.0.1:8080/scim/v2/",
            None,
            Duration::from_secs(1),
        )
        .expect("parse");
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.prefix, "/scim/v2");
        let t = Target::parse("http://localhost", None, Duration::from_secs(1)).expect("parse");
        assert_eq!(t.authority, "localhost:80");
        assert_eq!(t.prefix, "");
        assert!(Target::parse("https://x", None, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn encodes() {
        assert_eq!(enc("userName eq \"a b\""), "userName%20eq%20%22a%20b%22");
    }
}
