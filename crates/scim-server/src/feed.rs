//! Change feeds: Gluu's IDM-sync endpoint (`UpdatedUsers`, offset paging over
//! modification times) and scimd's lossless cursor feed with tombstones.

use crate::service::{etag, stamp_meta, store_error, RequestCtx, Service};
use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, TimeZone, Utc};
use scim_proto::document::Document;
use scim_proto::filter::{AttrPath, CompareOp, Filter, Literal};
use scim_proto::{ScimError, ScimResult};
use scim_store::{Query, SortOrder, StoreError};
use serde_json::{json, Value};

/// The `cursor` that asks for the end of the feed.
pub const LATEST: &str = "latest";

/// Default and largest page of the cursor feed.
pub const FEED_DEFAULT_PAGE: usize = 100;
pub const FEED_MAX_PAGE: usize = 1000;

/// Largest `pageSize` of UpdatedUsers (its default is the search maximum).
pub const UPDATED_USERS_MAX_PAGE: u64 = 1000;

/// Parse Gluu's `timeStamp`: ISO 8601 with an offset, or without one in the
/// server's time zone.
pub fn parse_timestamp(s: &str) -> ScimResult<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::<FixedOffset>::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, fmt) {
            if let Some(t) = Local.from_local_datetime(&naive).earliest() {
                return Ok(t.with_timezone(&Utc));
            }
        }
    }
    Err(ScimError::bad_request(format!("Unparsable date: {s}")))
}

fn cursor_out(position: &str) -> String {
    crate::cursor::hex(position.as_bytes())
}

fn cursor_in(cursor: &str) -> ScimResult<String> {
    crate::cursor::unhex(cursor)
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|_| cursor.len() <= 256)
        .ok_or_else(|| {
            ScimError::invalid_value(format!("cursor '{cursor}' is not a cursor of this feed"))
        })
}

impl Service {
    /// `GET /scim/UpdatedUsers`: users created or modified at or after `since`,
    /// oldest first, offset-paged. `total` counts every match (Gluu counts only the
    /// page), and `latestUpdateAt` is present whenever there are results.
    pub fn updated_users(
        &self,
        since: DateTime<Utc>,
        start: u64,
        page_size: u64,
    ) -> ScimResult<Value> {
        let registry = self.registry();
        let rt = registry
            .resource_type("User")
            .ok_or_else(|| ScimError::internal("User resource type missing"))?;
        let last_modified = AttrPath {
            urn: None,
            attr: "meta".into(),
            sub_attr: Some("lastModified".into()),
        };
        let query = Query {
            filter: Some(Filter::Compare {
                path: last_modified.clone(),
                op: CompareOp::Ge,
                value: Literal::String(since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            }),
            sort_by: Some(last_modified),
            sort_order: SortOrder::Ascending,
            start_index: start + 1,
            count: page_size,
            ..Query::default()
        };
        let page = self.store.search(rt, &query).map_err(store_error)?;
        let mut latest: Option<String> = None;
        let mut results = Vec::with_capacity(page.resources.len());
        for r in &page.resources {
            let groups: Vec<String> = self
                .store
                .groups_of(&r.id)
                .map_err(store_error)?
                .into_iter()
                .filter(|g| g.direct)
                .map(|g| g.id)
                .collect();
            if let Some(m) = r.doc["meta"]["lastModified"].as_str() {
                if latest.as_deref().is_none_or(|l| m > l) {
                    latest = Some(m.to_string());
                }
            }
            results.push(Value::Object(scim_proto::gluu::stored_user(
                &r.doc, &groups,
            )));
        }
        let mut body = json!({ "total": page.total, "results": results });
        if let Some(l) = latest {
            body["latestUpdateAt"] = json!(l);
        }
        Ok(body)
    }

    /// The lossless feed: every committed create, update and delete of Users and
    /// Groups exactly once, in commit order, resumable from an opaque cursor.
    /// `cursor=latest` answers no changes and the cursor of the feed's end: where
    /// a follower starts that wants only what happens from now on.
    pub fn changes(
        &self,
        cursor: Option<&str>,
        count: Option<i64>,
        ctx: &RequestCtx,
    ) -> ScimResult<Value> {
        if cursor == Some(LATEST) {
            let head = self.store.feed_head().map_err(store_error)?;
            return Ok(json!({
                "schemas": ["urn:scimd:api:messages:1.0:ChangeFeed"],
                "changes": [],
                "nextCursor": cursor_out(head.as_deref().unwrap_or("")),
                "hasMore": false,
            }));
        }
        let limit = match count {
            None => FEED_DEFAULT_PAGE,
            Some(n) if n >= 1 && n as usize <= FEED_MAX_PAGE => n as usize,
            Some(n) => {
                return Err(ScimError::invalid_value(format!(
                    "count must be between 1 and {FEED_MAX_PAGE}, got {n}"
                )))
            }
        };
        let position = cursor
            .filter(|c| !c.is_empty())
            .map(cursor_in)
            .transpose()?;
        let page = self
            .store
            .changes(position.as_deref(), limit)
            .map_err(|e| match e {
                StoreError::BadCursor(d) => {
                    ScimError::gone(format!("cursor expired or invalid: {d}"))
                }
                other => store_error(other),
            })?;
        let changes: Vec<Value> = page
            .changes
            .into_iter()
            .map(|c| {
                let endpoint = self
                    .registry()
                    .resource_type(&c.rtype)
                    .map(|rt| rt.endpoint.clone())
                    .unwrap_or_default();
                let mut v = json!({
                    "op": c.op.as_str(),
                    "resourceType": c.rtype,
                    "id": c.id,
                    "version": etag(c.version),
                    "at": c.at,
                });
                if let Some(doc) = c.doc {
                    let mut doc = Document::from_value(doc)?;
                    let location = format!("{}{endpoint}/{}", ctx.base_url, c.id);
                    stamp_meta(&mut doc, c.version, location);
                    v["resource"] = doc.into_value();
                }
                Ok(v)
            })
            .collect::<ScimResult<_>>()?;
        Ok(json!({
            "schemas": ["urn:scimd:api:messages:1.0:ChangeFeed"],
            "changes": changes,
            "nextCursor": cursor_out(&page.next),
            "hasMore": page.more,
        }))
    }

    /// Drop feed entries older than the configured retention.
    pub fn prune_feed(&self) -> ScimResult<u64> {
        let before = self.clock.now() - self.config.change_retention;
        self.store.prune_changes(before).map_err(store_error)
    }
}

/// How often the stored scripts' revision is polled: a change made by another
/// scimd process or the CLI runs here within 3 s (poll, then load).
pub const SCRIPTS_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Background upkeep: prune the change feed hourly, and pick up custom attributes
/// and interception scripts changed by other scimd processes (or the CLI) within
/// seconds. `scripts_seen` is the scripts revision already running (the one
/// `Service::reload_scripts_if_changed` returned at start), `None` to load at once.
pub fn spawn_maintenance(svc: std::sync::Arc<Service>, scripts_seen: Option<i64>) {
    let scripts = svc.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SCRIPTS_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = scripts_seen;
        let mut recorded = std::collections::BTreeMap::new();
        loop {
            tick.tick().await;
            let s = scripts.clone();
            let mut r = std::mem::take(&mut recorded);
            let done = tokio::task::spawn_blocking(move || {
                let errors = s.record_runtime_errors(&mut r);
                (s.reload_scripts_if_changed(seen), errors, r)
            })
            .await;
            let Ok((reloaded, errors, r)) = done else {
                continue;
            };
            recorded = r;
            match reloaded {
                Ok(revision) => seen = Some(revision),
                Err(e) => tracing::warn!(error = %e, "reloading interception scripts failed"),
            }
            if let Err(e) = errors {
                tracing::warn!(error = %e, "recording script errors failed");
            }
        }
    });
    let reg = svc.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3));
        loop {
            tick.tick().await;
            let s = reg.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.reload_registry()).await {
                tracing::warn!(error = %e, "reloading custom attributes failed");
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let s = svc.clone();
            match tokio::task::spawn_blocking(move || s.prune_feed()).await {
                Ok(Ok(n)) if n > 0 => tracing::info!(pruned = n, "change feed pruned"),
                Ok(Err(e)) => tracing::warn!(error = %e, "change feed pruning failed"),
                _ => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_and_without_offset() {
        let t = parse_timestamp("2019-12-24T12:00:03-05:00").expect("offset");
        assert_eq!(t.to_rfc3339(), "2019-12-24T17:00:03+00:00");
        assert!(parse_timestamp("2019-12-24T12:00:03").is_ok());
        for bad in ["tomorrow", "2019-12-24", "", "2019-13-01T00:00:00Z"] {
            let e = parse_timestamp(bad).expect_err(bad);
            assert_eq!(e.status, 400);
            assert!(e.detail.starts_with("Unparsable date"));
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(cursor_in(&cursor_out("s:42")).expect("round trip"), "s:42");
        assert!(cursor_in("zz").is_err());
        assert!(cursor_in("abc").is_err());
    }
}
