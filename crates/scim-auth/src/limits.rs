//! Rate limits (token buckets by key: a source IP, a client id) and the
//! throttle on failed client authentication, by (client id, source IP).
//!
//! The throttle replaces a lock-out per client id: a client id is not a secret,
//! so locking it out after N bad secrets let anyone who knew it keep a
//! provisioning job from getting tokens. Failures now slow down only the
//! address they come from, with growing delays, and the real caller elsewhere
//! keeps working. State is in memory, per process, bounded in size.

use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// The address a request comes from: the TCP peer, or, when the peer is a
/// trusted proxy, the nearest address before it in `X-Forwarded-For`. Put into
/// the request extensions by the edge layer; rate limits, the failure throttle
/// and the audit trail use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// A network of trusted proxies (`10.0.0.0/8`, `::1/128`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Network, String> {
        let bad = || format!("'{s}' is not an address or a network (ADDR/PREFIX)");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let base: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Network { base, prefix })
    }
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> (u128, u32) {
            match ip {
                IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        };
        let ((net, width), (addr, w2)) = (bits(self.base), bits(ip));
        if width != w2 {
            return false;
        }
        let shift = width - u32::from(self.prefix);
        shift >= width || (net >> shift) == (addr >> shift)
    }
}

/// The client's address: `peer`, unless it is a trusted proxy; then the
/// right-most address of `forwarded_for` (X-Forwarded-For, oldest first) that
/// is not a trusted proxy itself.
pub fn client_addr(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Network]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.unwrap_or("").rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            // Garbage in the header: stop at what is known.
            Err(_) => break,
        }
    }
    client
}

/// Most keys a limiter tracks; past it, keys whose bucket refilled are dropped.
const MAX_KEYS: usize = 100_000;

/// A sustained rate with a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once after a quiet spell.
    pub burst: f64,
}

impl Rate {
    /// `n` per second with a burst of `2n`; None for 0 (no limit).
    pub fn per_second(n: u32) -> Option<Rate> {
        (n > 0).then(|| Rate {
            per_second: f64::from(n),
            burst: f64::from(n) * 2.0,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

/// Token buckets, one per key.
#[derive(Debug)]
pub struct Limiter<K> {
    rate: Rate,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(rate: Rate) -> Self {
        Limiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token for `key` at `now`: Ok, or how long until one is there.
    pub fn take(&self, key: &K, now: DateTime<Utc>) -> Result<(), Duration> {
        let Ok(mut map) = self.buckets.lock() else {
            return Ok(());
        };
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let rate = self.rate;
            map.retain(|_, b| refilled(rate, b, now) < rate.burst);
        }
        let b = map.entry(key.clone()).or_insert(Bucket {
            tokens: self.rate.burst,
            at: now,
        });
        b.tokens = refilled(self.rate, b, now);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) / self.rate.per_second;
            Err(Duration::from_secs_f64(wait.max(0.001)))
        }
    }
}

fn refilled(rate: Rate, b: &Bucket, now: DateTime<Utc>) -> f64 {
    let secs = (now - b.at).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
    (b.tokens + secs * rate.per_second).min(rate.burst)
}

/// Failures from one address for one client id.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// No attempt is checked before then.
    until: DateTime<Utc>,
    last: DateTime<Utc>,
}

/// How failed client authentications slow an address down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures answered at once before delays start.
    pub free: u32,
    /// The first delay; each further failure doubles it.
    pub first_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// A pair with no failure for this long starts over.
    pub forget_after: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            free: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            forget_after: Duration::from_secs(900),
        }
    }
}

/// Growing delays for failed client authentication per (client id, address).
#[derive(Debug)]
pub struct FailureThrottle {
    policy: ThrottlePolicy,
    pairs: Mutex<HashMap<(String, Option<IpAddr>), Failures>>,
}

impl FailureThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        FailureThrottle {
            policy,
            pairs: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an attempt of `client` from `ip` may be checked at `now`; else
    /// how long it has to wait.
    pub fn check(
        &self,
        client: &str,
        ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), Duration> {
        let Ok(map) = self.pairs.lock() else {
            return Ok(());
        };
        match map.get(&(client.to_string(), ip)) {
            Some(f) if f.until > now => Err((f.until - now).to_std().unwrap_or_default()),
            _ => Ok(()),
        }
    }

    /// Record a failure; how many in a row this pair has made.
    pub fn failed(&self, client: &str, ip: Option<IpAddr>, now: DateTime<Utc>) -> u32 {
        let Ok(mut map) = self.pairs.lock() else {
            return 0;
        };
        let forget = delta(self.policy.forget_after);
        if map.len() >= MAX_KEYS {
            map.retain(|_, f| now - f.last < forget);
        }
        let f = map.entry((client.to_string(), ip)).or_insert(Failures {
            count: 0,
            until: now,
            last: now,
        });
        if now - f.last >= forget {
            f.count = 0;
        }
        f.count += 1;
        f.last = now;
        f.until = now + delta(self.delay(f.count));
        f.count
    }

    /// A success clears the pair's failures.
    pub fn succeeded(&self, client: &str, ip: Option<IpAddr>) {
        if let Ok(mut map) = self.pairs.lock() {
            map.remove(&(client.to_string(), ip));
        }
    }

    /// The wait after the `n`th failure in a row.
    fn delay(&self, n: u32) -> Duration {
        let p = &self.policy;
        if n <= p.free {
            return Duration::ZERO;
        }
        let doublings = (n - p.free - 1).min(20);
        p.first_delay
            .saturating_mul(1u32 << doublings)
            .min(p.max_delay)
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: f64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::microseconds((secs * 1e6) as i64)
    }

    #[test]
    fn buckets_allow_the_burst_then_the_rate() {
        let l = Limiter::new(Rate {
            per_second: 10.0,
            burst: 3.0,
        });
        for _ in 0..3 {
            assert_eq!(l.take(&"a", t(0.0)), Ok(()));
        }
        let wait = l.take(&"a", t(0.0)).expect_err("empty");
        assert!((wait.as_secs_f64() - 0.1).abs() < 0.01, "{wait:?}");
        // Another key has its own bucket.
        assert_eq!(l.take(&"b", t(0.0)), Ok(()));
        // A tenth of a second later one token is back.
        assert_eq!(l.take(&"a", t(0.1)), Ok(()));
        assert!(l.take(&"a", t(0.1)).is_err());
    }

    #[test]
    fn failures_slow_down_only_their_own_address() {
        let th = FailureThrottle::new(ThrottlePolicy::default());
        let attacker = Some(IpAddr::from([10, 0, 0, 1]));
        let caller = Some(IpAddr::from([10, 0, 0, 2]));
        for i in 1..=5 {
            assert_eq!(th.check("c", attacker, t(0.0)), Ok(()));
            assert_eq!(th.failed("c", attacker, t(0.0)), i);
        }
        // The fifth failure was free; the sixth starts the delays.
        assert_eq!(th.check("c", attacker, t(0.0)), Ok(()));
        th.failed("c", attacker, t(0.0));
        assert_eq!(
            th.check("c", attacker, t(0.5)),
            Err(Duration::from_millis(500))
        );
        assert_eq!(th.check("c", attacker, t(1.0)), Ok(()));
        th.failed("c", attacker, t(1.0));
        assert!(th.check("c", attacker, t(2.5)).is_err(), "doubled to 2 s");
        // Thirty failures later the delay is capped.
        for k in 0..30 {
            th.failed("c", attacker, t(3.0 + f64::from(k)));
        }
        let wait = th.check("c", attacker, t(40.0)).expect_err("throttled");
        assert!(wait <= Duration::from_secs(300), "{wait:?}");
        // The real caller elsewhere is never held up, and other clients neither.
        assert_eq!(th.check("c", caller, t(40.0)), Ok(()));
        assert_eq!(th.check("other", attacker, t(40.0)), Ok(()));
        // A success clears the pair.
        th.succeeded("c", attacker);
        assert_eq!(th.check("c", attacker, t(40.0)), Ok(()));
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let trusted: Vec<Network> = ["10.0.0.0/8", "::1"]
            .iter()
            .map(|n| n.parse().expect("network"))
            .collect();
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(trusted[0].contains(ip("10.1.2.3")));
        assert!(!trusted[0].contains(ip("11.0.0.1")));
        assert!(!trusted[0].contains(ip("::1")));
        assert!(trusted[1].contains(ip("::1")));
        // Not from a proxy: the header is ignored.
        assert_eq!(
            client_addr(ip("198.51.100.1"), Some("203.0.113.9"), &trusted),
            ip("198.51.100.1")
        );
        // Through two proxies: the first address before them.
        assert_eq!(
            client_addr(
                ip("10.0.0.1"),
                Some("1.2.3.4, 203.0.113.9, 10.0.0.2"),
                &trusted
            ),
            ip("203.0.113.9")
        );
        // A proxy without the header, or with garbage: the proxy itself.
        assert_eq!(client_addr(ip("10.0.0.1"), None, &trusted), ip("10.0.0.1"));
        assert_eq!(
            client_addr(ip("10.0.0.1"), Some("nonsense"), &trusted),
            ip("10.0.0.1")
        );
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("x".parse::<Network>().is_err());
        assert!("0.0.0.0/0"
            .parse::<Network>()
            .expect("all")
            .contains(ip("8.8.8.8")));
    }

    #[test]
    fn a_quiet_pair_starts_over() {
        let th = FailureThrottle::new(ThrottlePolicy::default());
        for _ in 0..8 {
            th.failed("c", None, t(0.0));
        }
        assert_eq!(th.failed("c", None, t(2000.0)), 1);
        assert_eq!(th.check("c", None, t(2000.0)), Ok(()));
    }
}
