//! Sending one request with retries: the layer under authentication.

use crate::retry::{parse_retry_after, retryable_status, RetryPolicy};
use crate::{Error, Result};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::time::{Duration, Instant};

/// A response read in full.
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Raw {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The connection pool and the retry policy.
pub(crate) struct Transport {
    pub http: reqwest::Client,
    pub retry: RetryPolicy,
}

impl Transport {
    /// Send what `make` builds until it gets a response that is not worth
    /// retrying, or retries are used up (then the last response is returned, for
    /// the caller to turn into an error). `idempotent` allows retrying after a
    /// failure that may have reached the server (timeout, reset); a connection
    /// that could not be made is always retried.
    pub(crate) async fn send<F>(&self, make: F, idempotent: bool, started: Instant) -> Result<Raw>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        let mut attempt = 0;
        loop {
            let wait = match self.attempt(&make).await {
                Ok(raw) if !retryable_status(raw.status) => return Ok(raw),
                Ok(raw) => {
                    let wait = raw
                        .header(RETRY_AFTER.as_str())
                        .and_then(|v| parse_retry_after(v, chrono::Utc::now()))
                        .unwrap_or_else(|| self.retry.backoff(attempt));
                    if !self.may_retry(attempt, started, wait) {
                        return Ok(raw);
                    }
                    tracing::debug!(status = raw.status, ?wait, attempt, "retrying");
                    wait
                }
                Err(e) => {
                    let wait = self.retry.backoff(attempt);
                    let safe = e.is_connect() || idempotent;
                    if !safe || !self.may_retry(attempt, started, wait) {
                        let tries = if attempt == 0 {
                            String::new()
                        } else {
                            format!(" (after {attempt} retries)")
                        };
                        return Err(Error::Transport(format!("{}{tries}", describe(&e))));
                    }
                    tracing::debug!(error = %describe(&e), ?wait, attempt, "retrying");
                    wait
                }
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt<F>(&self, make: &F) -> std::result::Result<Raw, reqwest::Error>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        let resp = make().send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?.to_vec();
        Ok(Raw {
            status,
            headers,
            body,
        })
    }

    /// Whether one more try fits in the count and in the wall-clock budget.
    fn may_retry(&self, attempt: u32, started: Instant, wait: Duration) -> bool {
        attempt < self.retry.max_retries && started.elapsed() + wait <= self.retry.budget
    }
}

/// A reqwest error with its causes on one line (they name the URL and the
/// failure, never a header, so no credential leaks).
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
