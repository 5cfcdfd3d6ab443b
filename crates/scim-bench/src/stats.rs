//! Latency histograms, error breakdowns, a small PRNG and the server's memory.

use crate::client::Resp;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::time::Duration;

/// Latencies in microseconds, 1 µs .. 10 min, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| {
        // The bounds above are valid; this arm only keeps clippy's unwrap lint quiet.
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid"))
    })
}

/// What one worker (or a whole run, after merging) saw.
pub(crate) struct Recorder {
    pub hist: Histogram<u64>,
    pub ok: u64,
    pub errors: u64,
    /// Error kind → (count, first example).
    pub breakdown: BTreeMap<String, (u64, String)>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            hist: histogram(),
            ok: 0,
            errors: 0,
            breakdown: BTreeMap::new(),
        }
    }
}

impl Recorder {
    pub(crate) fn record(&mut self, latency: Duration, result: &Result<Resp, String>) {
        let us = (latency.as_micros() as u64).max(1);
        let _ = self.hist.record(us.min(600_000_000));
        match result {
            Ok(r) if r.ok() => self.ok += 1,
            Ok(r) => self.error(format!("HTTP {}", r.status), r.describe()),
            Err(e) => {
                self.error(format!("transport ({})", transport_kind(e)), e.clone());
            }
        }
    }

    pub(crate) fn error(&mut self, kind: String, example: String) {
        self.errors += 1;
        let e = self.breakdown.entry(kind).or_insert((0, example));
        e.0 += 1;
    }

    pub(crate) fn merge(&mut self, other: &Recorder) {
        let _ = self.hist.add(&other.hist);
        self.ok += other.ok;
        self.errors += other.errors;
        for (k, (n, ex)) in &other.breakdown {
            let e = self.breakdown.entry(k.clone()).or_insert((0, ex.clone()));
            e.0 += n;
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.ok + self.errors
    }

    pub(crate) fn p(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    pub(crate) fn max_ms(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }

    pub(crate) fn mean_ms(&self) -> f64 {
        self.hist.mean() / 1000.0
    }

    /// Print up to `n` error kinds with an example each.
    pub(crate) fn print_errors(&self, indent: &str, n: usize) {
        for (k, (count, ex)) in self.breakdown.iter().take(n) {
            println!("{indent}{count:>8} × {k}: {ex}");
        }
        if self.breakdown.len() > n {
            println!("{indent}… and {} more kinds", self.breakdown.len() - n);
        }
    }
}

/// A short, stable class of a transport error (its example keeps the details).
fn transport_kind(e: &str) -> String {
    for k in ["timeout", "connect", "handshake", "reading body"] {
        if e.starts_with(k) {
            return k.to_string();
        }
    }
    // "METHOD /path: hyper message" → the hyper message.
    let msg = e.split_once(": ").map_or(e, |(_, m)| m);
    msg.chars().take(60).collect()
}

/// xorshift64*: fast, good enough to pick random users.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
        if s == 0 {
            s = 1;
        }
        let mut r = Rng(s);
        for _ in 0..4 {
            r.next_u64();
        }
        r
    }
    pub(crate) fn seeded(worker: u64) -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(42);
        Rng::new(t.wrapping_add(worker.wrapping_mul(0x2545_F491_4F6C_DD1D)))
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// `(VmHWM, VmRSS)` of a process in MiB, from /proc/PID/status.
pub(crate) fn memory_mib(pid: u32) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = s.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Reset the peak RSS (VmHWM) of a process (Linux ≥ 4.0; needs the same user or
/// root). Returns whether it worked.
pub(crate) fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_in_range() {
        let mut r = Rng::new(7);
        for _ in 0..1000 {
            assert!(r.below(10) < 10);
        }
    }

    #[test]
    fn recorder_counts() {
        let mut r = Recorder::default();
        r.record(
            Duration::from_millis(2),
            &Ok(Resp {
                status: 200,
                body: Default::default(),
            }),
        );
        r.record(
            Duration::from_millis(4),
            &Ok(Resp {
                status: 409,
                body: "dup".into(),
            }),
        );
        r.record(Duration::from_millis(1), &Err("connect x: refused".into()));
        assert_eq!(r.ok, 1);
        assert_eq!(r.errors, 2);
        assert_eq!(r.breakdown.len(), 2);
        assert!(r.p(0.5) >= 1.9 && r.p(0.5) <= 2.1);
    }
}
