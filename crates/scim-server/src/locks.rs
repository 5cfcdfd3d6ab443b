//! One lock per resource id, for read-modify-writes within this process.
//!
//! Updates are optimistic across processes (the store checks the version read),
//! but writers in one process that hammer one resource — 32 clients adding members
//! to one group — mostly lost the race and retried, and after the bounded retries
//! some got 409. Holding the resource's lock around the read and the write makes
//! them queue instead; only writers in other processes can still race.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

#[derive(Default)]
pub struct KeyedLocks {
    busy: Mutex<HashSet<String>>,
    freed: Condvar,
}

/// Holds one key's lock until dropped.
pub struct KeyGuard<'a> {
    locks: &'a KeyedLocks,
    key: String,
}

impl KeyedLocks {
    /// Wait until nobody holds `key`, then hold it until the guard drops.
    pub fn lock(&self, key: &str) -> KeyGuard<'_> {
        let mut busy = self.busy();
        while busy.contains(key) {
            busy = self
                .freed
                .wait(busy)
                .unwrap_or_else(PoisonError::into_inner);
        }
        busy.insert(key.to_string());
        KeyGuard {
            locks: self,
            key: key.to_string(),
        }
    }

    fn busy(&self) -> MutexGuard<'_, HashSet<String>> {
        // Every change to the set is a single insert or remove, so a panic
        // elsewhere cannot leave it inconsistent: a poisoned lock is still usable.
        self.busy.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self.locks.busy().remove(&self.key);
        self.locks.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn one_holder_per_key_and_keys_are_independent() {
        let locks = Arc::new(KeyedLocks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let _g = locks.lock("group-1");
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "two holders of one key at once"
        );
        // Another key is free while one is held; a released key can be taken again.
        let a = locks.lock("a");
        let b = locks.lock("b");
        drop(a);
        let _a = locks.lock("a");
        drop(b);
        assert_eq!(locks.busy().len(), 1);
    }
}
