//! The trigram index of substring searches (ddl.rs, step 10): moving the
//! writer's queued rows into it, and what is known of how common each trigram is.

use super::backend;
use crate::sql::TrigramStats;
use crate::StoreResult;
use rusqlite::{Connection, OptionalExtension};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Move the attr_index rows queued by the writer (batch.rs) into the
/// trigram index: removals first, so an id freed and taken again within the
/// transaction ends up with its new value; additions read the row as it is now,
/// so a row added and removed again adds nothing.
pub fn flush(tx: &Connection) -> StoreResult<()> {
    for sql in [
        "DELETE FROM attr_trigrams WHERE rowid IN (SELECT id FROM trigram_queue WHERE added = 0)",
        "INSERT INTO attr_trigrams (rowid, v) SELECT a.id, a.v_text FROM attr_index a
         WHERE a.id IN (SELECT id FROM trigram_queue WHERE added = 1)",
        "DELETE FROM trigram_queue",
    ] {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map_err(backend)?;
    }
    Ok(())
}

/// Counts above this are "common": a capped count costs at most this many rows.
const CAP: u64 = 1_000;

/// How long a trigram's count is trusted: directories change slowly.
const FRESH_FOR: Duration = Duration::from_secs(600);

/// Most trigrams remembered; past it the memory starts over (a bound against
/// a client searching for every possible string).
const REMEMBERED: usize = 100_000;

/// Capped trigram counts, shared by the reader threads.
#[derive(Default)]
pub(super) struct Frequencies {
    known: Mutex<HashMap<String, (u64, Instant)>>,
}

impl Frequencies {
    /// The statistics of one search, counting on `conn` what is not known yet.
    pub(super) fn on<'a>(&'a self, conn: &'a Connection) -> Counted<'a> {
        Counted { known: self, conn }
    }
}

pub(super) struct Counted<'a> {
    known: &'a Frequencies,
    conn: &'a Connection,
}

impl TrigramStats for Counted<'_> {
    fn frequency(&self, trigram: &str) -> u64 {
        let now = Instant::now();
        if let Ok(known) = self.known.known.lock() {
            if let Some((n, at)) = known.get(trigram) {
                if now.duration_since(*at) < FRESH_FOR {
                    return *n;
                }
            }
        }
        let counted = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM (SELECT 1 FROM attr_trigrams WHERE attr_trigrams MATCH ?1 LIMIT ?2)",
            )
            .and_then(|mut s| {
                s.query_row(rusqlite::params![crate::dialect::fts_string(trigram), CAP], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()
            });
        // Unknown counts as common: the other trigrams are asked first.
        let n = match counted {
            Ok(Some(n)) => u64::try_from(n).unwrap_or(CAP),
            _ => CAP,
        };
        if let Ok(mut known) = self.known.known.lock() {
            if known.len() >= REMEMBERED {
                known.clear();
            }
            known.insert(trigram.to_string(), (n, now));
        }
        n
    }
}
