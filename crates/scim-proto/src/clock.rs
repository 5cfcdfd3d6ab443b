//! The injected time source: timestamps, versions, token expiry, lock-outs and key
//! rotation all read the clock through this trait, so tests can fix time.

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
