//! Change feeds: scimd's lossless `/Changes` cursor feed and Gluu's
//! `UpdatedUsers` (what Gluu's client calls `usersChangedAfter`).

use crate::client::{decode, Request};
use crate::{Client, Error, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use futures_core::Stream;
use reqwest::Method;
use serde_json::Value;
use std::collections::VecDeque;

/// One entry of the `/Changes` feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `created`, `updated` or `deleted`.
    pub op: String,
    /// e.g. `User`.
    pub resource_type: String,
    /// The resource's id.
    pub id: String,
    /// Its ETag after the change.
    pub version: Option<String>,
    /// The resource after the change (absent for `deleted`).
    pub resource: Option<Value>,
    /// When it happened (RFC 3339).
    pub at: Option<String>,
    /// The entry as served.
    pub raw: Value,
}

impl Change {
    /// Read a feed entry.
    pub fn from_json(raw: Value) -> Result<Change> {
        let text = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(op), Some(id)) = (text("op"), text("id")) else {
            return Err(Error::Decode(format!("change without op or id: {raw}")));
        };
        Ok(Change {
            op,
            resource_type: text("resourceType").unwrap_or_default(),
            id,
            version: text("version"),
            resource: raw.get("resource").cloned(),
            at: text("at"),
            raw,
        })
    }

    /// Whether this change removed the resource.
    pub fn is_delete(&self) -> bool {
        self.op == "deleted"
    }
}

/// One page of the `/Changes` feed.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangesPage {
    /// The changes, oldest first.
    pub changes: Vec<Change>,
    /// Where to continue (keep it: passing it later gives what happened since).
    pub next_cursor: Option<String>,
    /// More changes are already waiting.
    pub more: bool,
}

/// A page of Gluu's UpdatedUsers feed.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdatedUsers {
    /// Users changed since the time asked, in all.
    pub total: u64,
    /// The latest change among them (pass it as the next `since`).
    pub latest_update_at: Option<String>,
    /// The users, under Gluu's stored attribute names (`uid`, `mail`...).
    pub users: Vec<Value>,
    /// The response as served.
    pub raw: Value,
}

impl Client {
    /// One page of `/Changes` after `cursor` (`None`: from the oldest kept).
    pub async fn changes_page(
        &self,
        cursor: Option<&str>,
        count: Option<u32>,
    ) -> Result<ChangesPage> {
        let mut req = Request::new(Method::GET, "/Changes");
        if let Some(c) = cursor {
            req = req.query("cursor", c);
        }
        if let Some(n) = count {
            req = req.query("count", n);
        }
        let mut v = decode(&self.execute(req).await?)?;
        let changes = match v.get_mut("changes").map(Value::take) {
            Some(Value::Array(a)) => a
                .into_iter()
                .map(Change::from_json)
                .collect::<Result<_>>()?,
            _ => return Err(Error::Decode("change feed page without changes".into())),
        };
        Ok(ChangesPage {
            changes,
            next_cursor: v
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_string),
            more: v.get("hasMore").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// The cursor of the feed's end (`cursor=latest`): [`Client::changes`] from
    /// it gives only what happens from now on.
    pub async fn changes_head(&self) -> Result<String> {
        Ok(self
            .changes_page(Some("latest"), None)
            .await?
            .next_cursor
            .unwrap_or_default())
    }

    /// Every change after `cursor`, up to the feed's current end. To follow the
    /// feed, remember the last page's cursor with [`Client::changes_page`].
    pub fn changes(&self, cursor: Option<String>) -> impl Stream<Item = Result<Change>> + Send {
        let state = Feed {
            client: self.clone(),
            cursor,
            buffer: VecDeque::new(),
            done: false,
        };
        futures_util::stream::unfold(state, |mut f| async move {
            let item = f.next_item().await?;
            Some((item, f))
        })
    }

    /// Gluu's `UpdatedUsers`: users created or modified after `since`, `page_size`
    /// from offset `start` (0-based, as in Gluu).
    pub async fn users_changed_after(
        &self,
        since: DateTime<Utc>,
        start: u32,
        page_size: u32,
    ) -> Result<UpdatedUsers> {
        let url = self.beside_base("/UpdatedUsers");
        let req = Request::new(Method::GET, url)
            .query(
                "timeStamp",
                since.to_rfc3339_opts(SecondsFormat::Millis, true),
            )
            .query("start", start)
            .query("pageSize", page_size);
        let raw = decode(&self.execute(req).await?)?;
        Ok(UpdatedUsers {
            total: raw.get("total").and_then(Value::as_u64).unwrap_or(0),
            latest_update_at: raw
                .get("latestUpdateAt")
                .and_then(Value::as_str)
                .map(str::to_string),
            users: raw
                .get("results")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            raw,
        })
    }
}

struct Feed {
    client: Client,
    cursor: Option<String>,
    buffer: VecDeque<Change>,
    done: bool,
}

impl Feed {
    async fn next_item(&mut self) -> Option<Result<Change>> {
        loop {
            if let Some(c) = self.buffer.pop_front() {
                return Some(Ok(c));
            }
            if self.done {
                return None;
            }
            match self.client.changes_page(self.cursor.as_deref(), None).await {
                Ok(page) => {
                    self.done = !page.more || page.changes.is_empty();
                    if page.next_cursor.is_some() {
                        self.cursor = page.next_cursor;
                    }
                    self.buffer.extend(page.changes);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_decode() {
        let c = Change::from_json(json!({"op": "deleted", "resourceType": "User", "id": "1",
            "version": "W/\"2\"", "at": "2026-01-01T00:00:00Z"}))
        .unwrap();
        assert!(c.is_delete() && c.resource.is_none());
        assert_eq!(c.version.as_deref(), Some("W/\"2\""));
        assert!(Change::from_json(json!({"op": "created"})).is_err());
    }
}
