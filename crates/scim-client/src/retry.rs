//! When and how long to wait before sending a request again.

use chrono::{DateTime, Utc};
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How failed requests are retried.
///
/// Retried: 429, 502, 503, 504 and connection failures (timeouts and resets too,
/// for idempotent methods). Never retried: any other status, 4xx included.
/// A server's `Retry-After` is honoured; the delay otherwise grows exponentially
/// from `base_delay` up to `max_delay`, with jitter. No retry starts once
/// `budget` (wall clock, counted from the first attempt) would be exceeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: never retry).
    pub max_retries: u32,
    /// Wall-clock time a request may take, retries and waits included.
    pub budget: Duration,
    /// The first backoff step.
    pub base_delay: Duration,
    /// The largest backoff step (a server's `Retry-After` may ask for longer).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            budget: Duration::from_secs(60),
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// The wait before retry number `attempt` (0 for the first retry): a random
    /// value in `[cap/2, cap]`, `cap = min(max_delay, base_delay * 2^attempt)`.
    /// Half of it is fixed so that retries always back off; the other half is
    /// random so that many clients do not retry in step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        let cap = self
            .base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let half = cap / 2;
        let spread = (cap - half).as_nanos() as u64;
        let jitter = if spread == 0 {
            0
        } else {
            random() % (spread + 1)
        };
        half + Duration::from_nanos(jitter)
    }
}

/// The statuses worth retrying: the server is overloaded or a gateway failed.
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Parse a `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an
/// HTTP-date, taken relative to `now` (a date in the past means no wait).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// A random u64 from the standard library's per-instance random hash keys
/// (enough for jitter, no extra dependency).
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past: retry now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
    }

    #[test]
    fn backoff_stays_within_its_bounds() {
        let p = RetryPolicy {
            max_retries: 10,
            budget: Duration::from_secs(60),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        for attempt in 0..40 {
            let cap = Duration::from_millis(100)
                .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
                .min(Duration::from_secs(2));
            for _ in 0..50 {
                let d = p.backoff(attempt);
                assert!(
                    d >= cap / 2 && d <= cap,
                    "attempt {attempt}: {d:?} vs {cap:?}"
                );
            }
        }
        // Jitter really varies.
        let seen: std::collections::HashSet<Duration> = (0..50).map(|_| p.backoff(3)).collect();
        assert!(seen.len() > 10, "{seen:?}");
        let zero = RetryPolicy {
            base_delay: Duration::ZERO,
            ..p
        };
        assert_eq!(zero.backoff(5), Duration::ZERO);
    }

    #[test]
    fn only_overload_and_gateway_statuses_are_retried() {
        for s in [429, 502, 503, 504] {
            assert!(retryable_status(s));
        }
        for s in [200, 400, 401, 403, 404, 409, 412, 413, 500, 501] {
            assert!(!retryable_status(s), "{s}");
        }
    }
}
