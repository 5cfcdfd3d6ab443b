//! The rows the sync engine keeps (`SyncStore`): links between the objects of two
//! systems, runs, and the audit entry of each object a run handled. Plain rows:
//! the engine's own types (crate `scim-sync`) map onto them, so the store does not
//! depend on the engine.

use chrono::{DateTime, Utc};

/// The run states in which a run holds its mapping: while a run of a mapping is in
/// one of them, no other run of that mapping may start. The partial unique index
/// `sync_runs_open` (`crate::ddl`) spells the same list.
pub const OPEN_RUN_STATES: [&str; 2] = ["ACTIVE", "WAITING"];

/// The state a run is created in.
pub const RUN_STARTED_STATE: &str = "ACTIVE";

/// One link of a link set: `first_id` is an id of the forward mapping's source,
/// `second_id` of its target (`scim_sync::links::Link`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRow {
    pub first_id: String,
    pub second_id: String,
    /// What the two objects were (the engine's text: mapping digest and both
    /// versions) when a run last left them in step; None: not known.
    pub stamp: Option<String>,
}

impl LinkRow {
    pub fn new(first_id: &str, second_id: &str, stamp: Option<String>) -> LinkRow {
        LinkRow {
            first_id: first_id.to_string(),
            second_id: second_id.to_string(),
            stamp,
        }
    }
}

/// Which id of a link a lookup or removal names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSide {
    First,
    Second,
}

/// A run as stored. `progress`, `summaries` and `cursor` are the engine's JSON
/// text, kept as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: String,
    pub mapping: String,
    pub dry_run: bool,
    pub state: String,
    pub stage: String,
    pub progress: String,
    /// Counts by situation and by status.
    pub summaries: String,
    /// Where an interrupted run resumes.
    pub cursor: Option<String>,
    pub started: DateTime<Utc>,
    pub ended: Option<DateTime<Utc>>,
}

/// What a running run reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunUpdate {
    pub state: String,
    pub stage: String,
    pub progress: String,
    pub summaries: String,
    pub cursor: Option<String>,
}

/// What `create_run` did: started the run, or found the mapping's open run
/// (an expected outcome the caller reports, not a storage failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStart {
    Started(RunRecord),
    AlreadyOpen(RunRecord),
}

/// What a run did with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub situation: String,
    pub action: String,
    pub status: String,
    pub source_id: Option<String>,
    pub target_id: Option<String>,
    pub error: Option<String>,
}

/// An audit entry as stored: `seq` numbers a run's entries from 1 in append order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub entry: AuditEntry,
}

/// A count or page size as SQL binds it.
pub(crate) fn as_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The open states are spelled in SQL twice (the index and the statement
    /// that reads a mapping's open run): both must say what the constant says.
    #[test]
    fn sql_spells_the_open_states() {
        let listed = OPEN_RUN_STATES
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let clause = format!("state IN ({listed})");
        let steps: Vec<&str> = [
            crate::ddl::SQLITE_MIGRATIONS,
            crate::ddl::POSTGRES_MIGRATIONS,
        ]
        .iter()
        .flat_map(|steps| steps.iter().copied())
        .filter(|step| step.contains("sync_runs_open"))
        .collect();
        assert_eq!(steps.len(), 2, "one step per backend creates the index");
        for step in steps {
            assert!(step.contains(&clause), "{step}");
        }
        assert!(crate::statements::OPEN_RUN_SQL.contains(&clause));
        assert!(OPEN_RUN_STATES.contains(&RUN_STARTED_STATE));
    }
}
