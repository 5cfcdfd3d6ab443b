//! CRUD and search on one endpoint.

use crate::client::{decode, Request};
use crate::resource::{to_body, Resource};
use crate::transport::Raw;
use crate::{Client, Error, Patch, Result};
use futures_core::Stream;
use reqwest::header::{ETAG, IF_MATCH, IF_NONE_MATCH};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::marker::PhantomData;

const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// The page size of [`Resources::search`] when neither the request nor the
/// server says.
const DEFAULT_PAGE: u32 = 100;

/// The resources of one endpoint, typed as `T`: from [`Client::users`],
/// [`Client::groups`], [`Client::resources`]...
pub struct Resources<T> {
    client: Client,
    endpoint: String,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Resources<T> {
    fn clone(&self) -> Self {
        Resources {
            client: self.client.clone(),
            endpoint: self.endpoint.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Resources<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resources")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Options of a GET by id.
#[derive(Debug, Default, Clone)]
pub struct GetOptions {
    /// Return only these attributes.
    pub attributes: Vec<String>,
    /// Return all but these attributes.
    pub excluded_attributes: Vec<String>,
    /// An ETag: the server answers 304 (here `None`) if the resource still has it.
    pub if_none_match: Option<String>,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// A to Z.
    Ascending,
    /// Z to A.
    Descending,
}

impl SortOrder {
    fn as_str(self) -> &'static str {
        match self {
            SortOrder::Ascending => "ascending",
            SortOrder::Descending => "descending",
        }
    }
}

/// A search (RFC 7644 §3.4.2 / §3.4.3).
#[derive(Debug, Default, Clone)]
pub struct SearchRequest {
    /// A filter, e.g. `userName eq "bjensen"`.
    pub filter: Option<String>,
    /// Attribute to sort by.
    pub sort_by: Option<String>,
    /// Sort direction.
    pub sort_order: Option<SortOrder>,
    /// Return only these attributes.
    pub attributes: Vec<String>,
    /// Return all but these attributes.
    pub excluded_attributes: Vec<String>,
    /// Page size.
    pub count: Option<u32>,
    /// 1-based index of the first result (index paging).
    pub start_index: Option<u32>,
    /// POST to `.search` instead of a GET with the query in the URL (keeps
    /// filters out of access logs, and has no URL length limit).
    pub use_post: bool,
}

impl SearchRequest {
    /// A search with this filter.
    pub fn filter(filter: impl Into<String>) -> Self {
        SearchRequest {
            filter: Some(filter.into()),
            ..SearchRequest::default()
        }
    }
}

/// One page of results.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "T: DeserializeOwned"))]
pub struct ListResponse<T> {
    /// Matches in all.
    #[serde(default)]
    pub total_results: u64,
    /// 1-based index of this page's first result (index paging).
    #[serde(default)]
    pub start_index: Option<u32>,
    /// Results on this page.
    #[serde(default)]
    pub items_per_page: Option<u32>,
    /// The results.
    #[serde(rename = "Resources", default = "Vec::new")]
    pub resources: Vec<T>,
    /// The cursor of the next page (RFC 9865), absent on the last.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// Where the next page starts.
enum Position {
    Index(u32),
    Cursor(String),
}

impl<T: Resource> Resources<T> {
    pub(crate) fn new(client: Client, endpoint: &str) -> Self {
        Resources {
            client,
            endpoint: endpoint.to_string(),
            _type: PhantomData,
        }
    }

    /// The same endpoint read as raw JSON.
    pub(crate) fn raw(&self) -> Resources<Value> {
        Resources::new(self.client.clone(), &self.endpoint)
    }

    /// The endpoint, e.g. `/Users`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn at(&self, id: &str) -> String {
        format!("{}/{}", self.endpoint, encode_segment(id))
    }

    /// Create (POST); the server's representation comes back.
    pub async fn create(&self, r: &T) -> Result<T> {
        let req = Request::new(Method::POST, self.endpoint.clone()).json(&to_body(r)?)?;
        typed(&self.client.execute(req).await?)
    }

    /// Read by id.
    pub async fn get(&self, id: &str) -> Result<T> {
        self.get_with(id, &GetOptions::default())
            .await?
            .ok_or_else(|| Error::Decode("304 to a GET without If-None-Match".into()))
    }

    /// Read by id with projection and `If-None-Match`; `None` when the server
    /// answers 304 Not Modified.
    pub async fn get_with(&self, id: &str, o: &GetOptions) -> Result<Option<T>> {
        let mut req = Request::new(Method::GET, self.at(id))
            .header(IF_NONE_MATCH, o.if_none_match.as_deref())?;
        if !o.attributes.is_empty() {
            req = req.query("attributes", o.attributes.join(","));
        }
        if !o.excluded_attributes.is_empty() {
            req = req.query("excludedAttributes", o.excluded_attributes.join(","));
        }
        let raw = self.client.execute(req).await?;
        if raw.status == 304 {
            return Ok(None);
        }
        typed(&raw).map(Some)
    }

    /// Replace (PUT), only if the resource still has ETag `if_match` when given
    /// (else 412).
    pub async fn replace(&self, id: &str, r: &T, if_match: Option<&str>) -> Result<T> {
        let req = Request::new(Method::PUT, self.at(id))
            .json(&to_body(r)?)?
            .header(IF_MATCH, if_match)?;
        typed(&self.client.execute(req).await?)
    }

    /// Modify (PATCH); `None` when the server answers 204 without a body.
    pub async fn patch(&self, id: &str, p: &Patch, if_match: Option<&str>) -> Result<Option<T>> {
        p.check()?;
        let req = Request::new(Method::PATCH, self.at(id))
            .json(&p.to_json())?
            .header(IF_MATCH, if_match)?;
        let raw = self.client.execute(req).await?;
        if raw.status == 204 || raw.body.is_empty() {
            return Ok(None);
        }
        typed(&raw).map(Some)
    }

    /// Delete, only if the resource still has ETag `if_match` when given.
    pub async fn delete(&self, id: &str, if_match: Option<&str>) -> Result<()> {
        let req = Request::new(Method::DELETE, self.at(id)).header(IF_MATCH, if_match)?;
        self.client.execute(req).await.map(|_| ())
    }

    /// One page, exactly as asked (index paging).
    pub async fn search_page(&self, q: &SearchRequest) -> Result<ListResponse<T>> {
        self.page(q, None).await
    }

    /// One page of RFC 9865 cursor paging: `cursor` is `""` for the first page,
    /// then the previous page's `next_cursor`.
    pub async fn search_cursor_page(
        &self,
        q: &SearchRequest,
        cursor: &str,
    ) -> Result<ListResponse<T>> {
        self.page(q, Some(cursor)).await
    }

    /// How many resources match (a `count=0` search).
    pub async fn count(&self, filter: Option<&str>) -> Result<u64> {
        let q = SearchRequest {
            filter: filter.map(str::to_string),
            count: Some(0),
            ..SearchRequest::default()
        };
        Ok(self.search_page(&q).await?.total_results)
    }

    /// Every result, page after page: cursor paging when the server advertises
    /// it (and `q.start_index` is not set), else index paging. The page size is
    /// `q.count`, else the server's `maxResults` (at most 100). Errors end the
    /// stream after being yielded. The stream owns what it needs (`'static`),
    /// so it can be moved into a task; pin it (`Box::pin`, `std::pin::pin!`)
    /// to call `StreamExt::next`, or use `TryStreamExt::try_collect` directly.
    pub fn search(&self, q: SearchRequest) -> impl Stream<Item = Result<T>> + Send {
        let state = Walk {
            res: self.clone(),
            q,
            next: None,
            buffer: VecDeque::new(),
            done: false,
        };
        futures_util::stream::unfold(state, |mut w| async move {
            let item = w.next_item().await?;
            Some((item, w))
        })
    }

    async fn page(&self, q: &SearchRequest, cursor: Option<&str>) -> Result<ListResponse<T>> {
        let req = if q.use_post {
            let path = format!("{}/.search", self.endpoint);
            Request::new(Method::POST, path).json(&search_body(q, cursor))?
        } else {
            search_query(Request::new(Method::GET, self.endpoint.clone()), q, cursor)
        };
        let raw = self.client.execute(req).await?;
        serde_json::from_slice(&raw.body).map_err(|e| Error::Decode(format!("ListResponse: {e}")))
    }
}

/// The state of a [`Resources::search`] stream.
struct Walk<T> {
    res: Resources<T>,
    q: SearchRequest,
    /// `None` before the first page.
    next: Option<Position>,
    buffer: VecDeque<T>,
    done: bool,
}

impl<T: Resource> Walk<T> {
    async fn next_item(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(r) = self.buffer.pop_front() {
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fetch().await {
                self.done = true;
                return Some(Err(e));
            }
        }
    }

    async fn fetch(&mut self) -> Result<()> {
        if self.next.is_none() {
            self.start().await;
        }
        let page = match &self.next {
            Some(Position::Cursor(c)) => self.res.page(&self.q, Some(c)).await?,
            _ => self.res.page(&self.q, None).await?,
        };
        let got = page.resources.len() as u32;
        self.next = match self.next.take() {
            Some(Position::Cursor(_)) => page.next_cursor.clone().map(Position::Cursor),
            Some(Position::Index(start)) => {
                let next = start.saturating_add(got);
                let more = got > 0 && u64::from(next) <= page.total_results;
                more.then_some(Position::Index(next))
            }
            None => None,
        };
        if let Some(Position::Index(start)) = self.next {
            self.q.start_index = Some(start);
        }
        self.done = got == 0 || self.next.is_none();
        self.buffer.extend(page.resources);
        Ok(())
    }

    /// Choose the paging from the server's capabilities (index when unknown).
    async fn start(&mut self) {
        let caps = self.res.client.discover().await.ok();
        if self.q.count.is_none() {
            let max = caps.as_ref().and_then(|c| c.filter_max_results);
            self.q.count = Some(max.map_or(DEFAULT_PAGE, |m| m.min(DEFAULT_PAGE)));
        }
        let cursor = caps.is_some_and(|c| c.cursor_paging) && self.q.start_index.is_none();
        self.next = Some(if cursor {
            Position::Cursor(String::new())
        } else {
            let start = self.q.start_index.unwrap_or(1);
            self.q.start_index = Some(start);
            Position::Index(start)
        });
    }
}

fn search_query(mut req: Request, q: &SearchRequest, cursor: Option<&str>) -> Request {
    if let Some(f) = &q.filter {
        req = req.query("filter", f);
    }
    if let Some(s) = &q.sort_by {
        req = req.query("sortBy", s);
    }
    if let Some(o) = q.sort_order {
        req = req.query("sortOrder", o.as_str());
    }
    if !q.attributes.is_empty() {
        req = req.query("attributes", q.attributes.join(","));
    }
    if !q.excluded_attributes.is_empty() {
        req = req.query("excludedAttributes", q.excluded_attributes.join(","));
    }
    if let Some(c) = q.count {
        req = req.query("count", c);
    }
    match cursor {
        Some(c) => req.query("cursor", c),
        None => match q.start_index {
            Some(s) => req.query("startIndex", s),
            None => req,
        },
    }
}

/// The SearchRequest body of a POST `.search`.
pub(crate) fn search_body(q: &SearchRequest, cursor: Option<&str>) -> Value {
    let mut o = Map::new();
    o.insert("schemas".into(), json!([SEARCH_REQUEST]));
    if let Some(f) = &q.filter {
        o.insert("filter".into(), f.as_str().into());
    }
    if let Some(s) = &q.sort_by {
        o.insert("sortBy".into(), s.as_str().into());
    }
    if let Some(s) = q.sort_order {
        o.insert("sortOrder".into(), s.as_str().into());
    }
    if !q.attributes.is_empty() {
        o.insert("attributes".into(), json!(q.attributes));
    }
    if !q.excluded_attributes.is_empty() {
        o.insert("excludedAttributes".into(), json!(q.excluded_attributes));
    }
    if let Some(c) = q.count {
        o.insert("count".into(), c.into());
    }
    match cursor {
        Some(c) => {
            o.insert("cursor".into(), c.into());
        }
        None => {
            if let Some(s) = q.start_index {
                o.insert("startIndex".into(), s.into());
            }
        }
    }
    Value::Object(o)
}

/// The body as `T`; the response's `ETag` header fills `meta.version` when
/// the body lacks it.
fn typed<T: Resource>(raw: &Raw) -> Result<T> {
    let mut v = decode(raw)?;
    if let (Some(etag), Some(obj)) = (raw.header(ETAG.as_str()), v.as_object_mut()) {
        let meta = obj.entry("meta").or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            m.entry("version").or_insert_with(|| etag.into());
        }
    }
    serde_json::from_value(v).map_err(|e| Error::Decode(e.to_string()))
}

/// Percent-encode an id for a path segment (ids are opaque to clients).
fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_bodies() {
        let q = SearchRequest {
            filter: Some("userName sw \"b\"".into()),
            sort_by: Some("userName".into()),
            sort_order: Some(SortOrder::Descending),
            attributes: vec!["userName".into(), "emails".into()],
            count: Some(10),
            start_index: Some(11),
            ..SearchRequest::default()
        };
        assert_eq!(
            search_body(&q, None),
            json!({"schemas": [SEARCH_REQUEST], "filter": "userName sw \"b\"", "sortBy": "userName",
                   "sortOrder": "descending", "attributes": ["userName", "emails"], "count": 10, "startIndex": 11})
        );
        assert_eq!(search_body(&q, Some("abc"))["cursor"], "abc");
        assert!(search_body(&q, Some("")).get("startIndex").is_none());
    }

    #[test]
    fn list_responses_decode_with_and_without_resources() {
        let l: ListResponse<Value> =
            serde_json::from_value(json!({"totalResults": 0, "schemas": []})).unwrap();
        assert!(l.resources.is_empty() && l.next_cursor.is_none());
        let l: ListResponse<crate::User> = serde_json::from_value(json!({
            "totalResults": 2, "itemsPerPage": 1, "nextCursor": "n",
            "Resources": [{"id": "1", "userName": "a"}]}))
        .unwrap();
        assert_eq!(
            (l.total_results, l.resources[0].user_name.as_str()),
            (2, "a")
        );
        assert_eq!(l.next_cursor.as_deref(), Some("n"));
    }

    #[test]
    fn ids_are_escaped_in_paths() {
        assert_eq!(encode_segment("2819c223-7f76"), "2819c223-7f76");
        assert_eq!(encode_segment("a/b c?"), "a%2Fb%20c%3F");
    }

    #[test]
    fn etag_header_fills_meta_version() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(ETAG, "W/\"7\"".parse().unwrap());
        let raw = Raw {
            status: 200,
            headers,
            body: br#"{"id":"1","userName":"a"}"#.to_vec(),
        };
        let u: crate::User = typed(&raw).unwrap();
        assert_eq!(u.meta.and_then(|m| m.version).as_deref(), Some("W/\"7\""));
    }
}
