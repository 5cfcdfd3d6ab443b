//! What a run stores in its record's JSON columns, and how the API shows a run
//! and its audit.

use crate::objects::Mark;
use chrono::SecondsFormat;
use scim_store::sync::{AuditRecord, RunRecord};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A run's kind: a full reconciliation, or one of only what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunKind {
    #[default]
    Recon,
    LiveSync,
}

/// The run's own state, kept in its record's `cursor` column: what it was asked
/// to do, and what a resumed or a later run needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RunState {
    pub kind: RunKind,
    /// Deletes over the mapping's `maxDeletes` were allowed (`allowDeletes`).
    pub allow_deletes: bool,
    /// Where the next live sync of the mapping reads the source's changes from:
    /// taken just before this run read its sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<Mark>,
    /// Why the run failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunState {
    pub fn of(record: &RunRecord) -> RunState {
        record
            .cursor
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default()
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// Processed and total objects of one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub processed: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Progress {
    pub source: Count,
    pub target: Count,
    /// Linked pairs a recon found in step by their stamps, without reading
    /// them whole (counted in `source` too).
    #[serde(skip_serializing_if = "is_zero")]
    pub in_step: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Counts by situation and by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Summaries {
    pub situation_summary: BTreeMap<String, u64>,
    pub status_summary: BTreeMap<String, u64>,
}

/// A run as the API shows it.
pub fn run_json(r: &RunRecord) -> Value {
    let state = RunState::of(r);
    let progress: Progress = serde_json::from_str(&r.progress).unwrap_or_default();
    let summaries: Summaries = serde_json::from_str(&r.summaries).unwrap_or_default();
    let mut out = Map::new();
    out.insert("_id".into(), json!(r.id));
    out.insert("mapping".into(), json!(r.mapping));
    out.insert("kind".into(), json!(state.kind));
    out.insert("dryRun".into(), json!(r.dry_run));
    out.insert("state".into(), json!(r.state));
    out.insert("stage".into(), json!(r.stage));
    out.insert("started".into(), json!(time(r.started)));
    out.insert("ended".into(), json!(r.ended.map(time)));
    out.insert("progress".into(), json!(progress));
    out.insert(
        "situationSummary".into(),
        json!(summaries.situation_summary),
    );
    out.insert("statusSummary".into(), json!(summaries.status_summary));
    if let Some(e) = state.error {
        out.insert("error".into(), json!(e));
    }
    Value::Object(out)
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One page of a run's audit, and the `after` of the next page when there may
/// be one.
pub fn audit_json(entries: &[AuditRecord], count: usize) -> Value {
    let list: Vec<Value> = entries
        .iter()
        .map(|r| {
            let e = &r.entry;
            let mut o = Map::new();
            o.insert("seq".into(), json!(r.seq));
            o.insert("situation".into(), json!(e.situation));
            o.insert("action".into(), json!(e.action));
            o.insert("status".into(), json!(e.status));
            o.insert("sourceId".into(), json!(e.source_id));
            o.insert("targetId".into(), json!(e.target_id));
            if let Some(err) = &e.error {
                o.insert("error".into(), json!(err));
            }
            Value::Object(o)
        })
        .collect();
    let mut out = json!({ "entries": list });
    if entries.len() == count {
        if let Some(last) = entries.last() {
            out["next"] = json!(last.seq);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn record() -> RunRecord {
        RunRecord {
            id: "r1".into(),
            mapping: "m".into(),
            dry_run: false,
            state: "FAILED".into(),
            stage: "done".into(),
            progress: r#"{"source":{"processed":2,"total":3}}"#.into(),
            summaries: r#"{"situationSummary":{"ABSENT":3},"statusSummary":{"SUCCESS":2}}"#.into(),
            cursor: Some(
                RunState {
                    error: Some("403: forbidden".into()),
                    ..RunState::default()
                }
                .to_text(),
            ),
            started: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            ended: None,
        }
    }

    #[test]
    fn a_run_shows_its_counts_and_error() {
        let v = run_json(&record());
        assert_eq!(v["_id"], "r1");
        assert_eq!(v["kind"], "recon");
        assert_eq!(v["progress"]["source"]["processed"], 2);
        assert_eq!(v["progress"]["target"]["total"], 0);
        assert_eq!(v["situationSummary"]["ABSENT"], 3);
        assert_eq!(v["statusSummary"]["SUCCESS"], 2);
        assert_eq!(v["started"], "2026-01-02T03:04:05.000Z");
        assert_eq!(v["ended"], Value::Null);
        assert_eq!(v["error"], "403: forbidden");
    }

    #[test]
    fn an_unreadable_cursor_is_the_default_state() {
        let mut r = record();
        r.cursor = Some("not json".into());
        assert_eq!(RunState::of(&r), RunState::default());
    }
}
