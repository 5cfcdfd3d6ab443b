//! Searching: a SearchRequest becomes a `SearchQuery` once, at the edge (parsed,
//! validated, its cost class and paging decided); running it never parses again.

use super::hooks::{for_type, hook_error, scripted};
use super::{owner_filter, store_error, user_key, RequestCtx, Service};
use crate::cursor::{self, Direction};
use scim_hooks::SearchGate;
use scim_proto::filter::eval::validate_filter;
use scim_proto::filter::{parse_attr_path, parse_filter, AttrPath, CompareOp, Filter, Literal};
use scim_proto::messages::{list_response, SearchRequest, LIST_RESPONSE};
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry, USER_SCHEMA};
use scim_proto::{ScimError, ScimResult, ScimType};
use scim_store::{Query, SortOrder};
use serde_json::{json, Value};

/// How a search is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchCost {
    /// `userName eq` on a store whose point reads an async worker may run in place
    /// (see `ResourceStore::cheap_point_reads`): the lookup provisioning clients make
    /// before every create.
    PointRead,
    /// Equality lookups (`scim_store::Query::is_lookup`): a few rows whatever the
    /// directory's size.
    Lookup,
    /// Anything that may scan (`co`, ranges, presence, unfiltered or sorted pages).
    Scan,
}

/// How the pages of a search are addressed.
#[derive(Debug, Clone)]
enum Paging {
    /// `startIndex` / `count`.
    Index,
    /// RFC 9865 cursors; `fingerprint` ties a cursor to this search.
    Cursor {
        fingerprint: String,
        direction: Direction,
    },
}

/// A validated search of one resource type. Built only by `Service::prepare_search`,
/// so whoever holds one knows its filter parsed and names attributes of the type.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    rt: ResourceTypeDef,
    query: Query,
    paging: Paging,
    /// The lower-cased userName of a `userName eq` search from the first result on:
    /// answered from the uniqueness index.
    unique_key: Option<String>,
    cost: SearchCost,
}

impl SearchQuery {
    pub fn cost(&self) -> SearchCost {
        self.cost
    }
}

/// A validated root `/.search`: one query per resource type it can match.
#[derive(Debug, Clone)]
pub struct RootSearch {
    parts: Vec<(ResourceTypeDef, Query)>,
    start_index: u64,
    count: u64,
}

impl Service {
    /// Validate a search of `rt` and decide how it runs.
    pub fn prepare_search(
        &self,
        rt: &ResourceTypeDef,
        req: &SearchRequest,
        ctx: &RequestCtx,
    ) -> ScimResult<SearchQuery> {
        let gated;
        let req = match self.hooked(ctx, rt) {
            Some(h) => {
                gated = self.gate_search(h, rt, req)?;
                &gated
            }
            None => req,
        };
        let mut query = self.query(&ctx.registry, rt, req)?;
        // A listing of ids and versions parses nothing else of the documents.
        query.schemas_only = super::render::is_row_only(&ctx.projection);
        let paging = match req.cursor.as_deref().map(str::trim) {
            None => Paging::Index,
            Some(c) => {
                if req.start_index.is_some() {
                    return Err(ScimError::invalid_value(
                        "startIndex and cursor cannot be combined",
                    ));
                }
                let fingerprint = cursor::fingerprint(&[
                    &rt.name,
                    req.filter.as_deref().unwrap_or(""),
                    req.sort_by.as_deref().unwrap_or(""),
                    req.sort_order.as_deref().unwrap_or(""),
                    req.user_id.as_deref().unwrap_or(""),
                ]);
                let mut direction = Direction::Next;
                if !c.is_empty() {
                    let (key, d) = cursor::decode(c, &fingerprint)?;
                    match d {
                        Direction::Next => query.after = Some(key),
                        Direction::Previous => query.before = Some(key),
                    }
                    direction = d;
                }
                Paging::Cursor {
                    fingerprint,
                    direction,
                }
            }
        };
        let unique_key = match paging {
            Paging::Index if query.start_index <= 1 => {
                query.filter.as_ref().and_then(|f| unique_key_filter(rt, f))
            }
            _ => None,
        };
        let cost = match (&paging, &query.filter) {
            (Paging::Cursor { .. }, _) | (_, None) => SearchCost::Scan,
            _ if unique_key.is_some() && self.store.cheap_point_reads() => SearchCost::PointRead,
            (Paging::Index, Some(_)) if query.is_lookup() => SearchCost::Lookup,
            _ => SearchCost::Scan,
        };
        Ok(SearchQuery {
            rt: rt.clone(),
            query,
            paging,
            unique_key,
            cost,
        })
    }

    /// Validate a root `/.search` (RFC 7644 §3.4.3). A filter naming attributes a
    /// type does not have matches nothing of that type; it is an error only when
    /// no type has them.
    pub fn prepare_root_search(
        &self,
        req: &SearchRequest,
        ctx: &RequestCtx,
    ) -> ScimResult<RootSearch> {
        let mut first_error = None;
        let mut parts = Vec::new();
        for rt in ctx.registry.resource_types() {
            let gated;
            let req = match self.hooked(ctx, rt) {
                Some(h) => {
                    gated = self.gate_search(h, rt, req)?;
                    &gated
                }
                None => req,
            };
            match self.query(&ctx.registry, rt, req) {
                Ok(q) => parts.push((rt.clone(), q)),
                Err(e) if e.status == 400 && e.scim_type != Some(ScimType::TooMany) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        let Some((_, first)) = parts.first() else {
            return Err(first_error
                .unwrap_or_else(|| ScimError::invalid_filter("no resource type matches")));
        };
        Ok(RootSearch {
            start_index: first.start_index,
            count: first.count,
            parts,
        })
    }

    pub fn search(&self, q: &SearchQuery, ctx: &RequestCtx) -> ScimResult<Value> {
        let mut results = self.search_unhooked(q, ctx)?;
        if let Some(h) = self.hooked(ctx, &q.rt) {
            self.after_search(h, &q.rt, &mut results)?;
        }
        Ok(results)
    }

    /// v5 `manageSearchOperation`: a script's own answer, or the search with the
    /// script's filter put before the client's (`prepend and (original)`).
    fn gate_search(
        &self,
        h: &scim_hooks::HookContext,
        rt: &ResourceTypeDef,
        req: &SearchRequest,
    ) -> ScimResult<SearchRequest> {
        match self
            .hooks
            .manage_search(&for_type(h, rt), rt.kind, &req.to_json())
            .map_err(hook_error)?
        {
            SearchGate::Respond(answer) => Err(scripted(answer)),
            SearchGate::Continue {
                filter_prepend: None,
            } => Ok(req.clone()),
            SearchGate::Continue {
                filter_prepend: Some(prepend),
            } => Ok(SearchRequest {
                filter: Some(match req.filter.as_deref().map(str::trim) {
                    Some(f) if !f.is_empty() => format!("{prepend} and ({f})"),
                    _ => prepend,
                }),
                ..req.clone()
            }),
        }
    }

    fn search_unhooked(&self, q: &SearchQuery, ctx: &RequestCtx) -> ScimResult<Value> {
        if let Paging::Cursor {
            fingerprint,
            direction,
        } = &q.paging
        {
            return self.cursor_search(q, fingerprint, *direction, ctx);
        }
        if let Some(key) = &q.unique_key {
            return self.find_unique(q, key, ctx);
        }
        let page = self.store.search(&q.rt, &q.query).map_err(store_error)?;
        let resources = self.render_all(&q.rt, page.resources, ctx)?;
        Ok(list_response(
            page.total,
            Some(q.query.start_index),
            resources,
        ))
    }

    /// A `userName eq` search answered from the uniqueness index: at most one user
    /// (with its groups in the same store call when the response shows them).
    fn find_unique(&self, q: &SearchQuery, key: &str, ctx: &RequestCtx) -> ScimResult<Value> {
        let rt = &q.rt;
        let found = if self.wants(rt, ctx, "groups", None) {
            self.store
                .find_unique_with_groups(rt, key)
                .map(|f| f.map(|(r, g)| (r, Some(g))))
        } else {
            self.store
                .find_unique(rt, key)
                .map(|f| f.map(|r| (r, None)))
        }
        .map_err(store_error)?;
        let total = u64::from(found.is_some());
        let resources = match found {
            Some((stored, groups)) if q.query.count > 0 => {
                vec![self.render_with(rt, stored, ctx, groups)?.doc]
            }
            _ => vec![],
        };
        Ok(list_response(total, Some(q.query.start_index), resources))
    }

    /// RFC 9865 cursor paging: keyset pages over the search's order. One row
    /// more than asked is read to know whether a further page exists.
    fn cursor_search(
        &self,
        q: &SearchQuery,
        fingerprint: &str,
        direction: Direction,
        ctx: &RequestCtx,
    ) -> ScimResult<Value> {
        let count = q.query.count;
        let query = Query {
            count: count + 1,
            ..q.query.clone()
        };
        let started = query.after.is_some() || query.before.is_some();
        let mut page = self.store.search(&q.rt, &query).map_err(store_error)?;
        let more = page.resources.len() as u64 > count;
        if more {
            // The extra row is the farthest one in the walking direction.
            if direction == Direction::Previous {
                page.resources.remove(0);
                page.keys.remove(0);
            } else {
                page.resources.pop();
                page.keys.pop();
            }
        }
        let (has_next, has_previous) = match direction {
            Direction::Next => (more, started),
            Direction::Previous => (true, more),
        };
        let next = page
            .keys
            .last()
            .filter(|_| has_next)
            .map(|k| cursor::encode(k, Direction::Next, fingerprint));
        let previous = page
            .keys
            .first()
            .filter(|_| has_previous)
            .map(|k| cursor::encode(k, Direction::Previous, fingerprint));
        let mut body = json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": page.total,
            "itemsPerPage": page.resources.len(),
        });
        if let Some(c) = next {
            body["nextCursor"] = json!(c);
        }
        if let Some(c) = previous {
            body["previousCursor"] = json!(c);
        }
        body["Resources"] = Value::Array(self.render_all(&q.rt, page.resources, ctx)?);
        Ok(body)
    }

    /// Root `/.search` across every resource type. Results are ordered by resource
    /// type (as listed in /ResourceTypes), then as a per-type search orders them;
    /// paging runs over that concatenation.
    pub fn search_all(&self, q: &RootSearch, ctx: &RequestCtx) -> ScimResult<Value> {
        let mut wanted = q.count;
        let mut skip = q.start_index - 1;
        let mut total = 0u64;
        let mut resources = Vec::new();
        for (rt, query) in &q.parts {
            let counted = self
                .store
                .search(
                    rt,
                    &Query {
                        count: 0,
                        ..query.clone()
                    },
                )
                .map_err(store_error)?
                .total;
            total += counted;
            if skip >= counted {
                skip -= counted;
                continue;
            }
            if wanted > 0 {
                let page = self
                    .store
                    .search(
                        rt,
                        &Query {
                            start_index: skip + 1,
                            count: wanted,
                            ..query.clone()
                        },
                    )
                    .map_err(store_error)?;
                skip = 0;
                wanted -= page.resources.len() as u64;
                for r in page.resources {
                    resources.push(self.render(rt, r, ctx)?.doc);
                }
            }
        }
        let mut results = list_response(total, Some(q.start_index), resources);
        // Gluu runs both v4 hooks on a root search's results.
        for (rt, _) in &q.parts {
            if rt.kind.is_user() || rt.kind.is_group() {
                if let Some(h) = self.hooked(ctx, rt) {
                    self.after_search(&for_type(h, rt), rt, &mut results)?;
                }
            }
        }
        Ok(results)
    }

    /// The store query of a search of `rt`: filter parsed and checked against the
    /// type's schema, sort attribute resolved, page size bounded.
    fn query(
        &self,
        registry: &SchemaRegistry,
        rt: &ResourceTypeDef,
        p: &SearchRequest,
    ) -> ScimResult<Query> {
        let filter = match p.filter.as_deref().map(str::trim) {
            Some(f) if !f.is_empty() => {
                let f = parse_filter(f)?;
                validate_filter(&f, registry, rt)?;
                Some(f)
            }
            _ => None,
        };
        // Gluu's `userId` parameter narrows a device search to one user's devices.
        let filter = match (&p.user_id, rt.kind.is_device()) {
            (Some(u), true) => Some(match filter {
                Some(f) => Filter::And(Box::new(owner_filter(u)), Box::new(f)),
                None => owner_filter(u),
            }),
            _ => filter,
        };
        let sort_by = match p.sort_by.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => Some(sort_path(registry, rt, s)?),
            _ => None,
        };
        let count = p.count.unwrap_or(self.config.max_results as i64).max(0) as u64;
        if count > self.config.max_results {
            return Err(ScimError::too_many(format!(
                "count {count} is above the maximum of {}",
                self.config.max_results
            )));
        }
        Ok(Query {
            filter,
            sort_by,
            sort_order: sort_order(p.sort_order.as_deref())?,
            start_index: p.start_index.unwrap_or(1).max(1) as u64,
            count,
            ..Query::default()
        })
    }
}

fn sort_path(registry: &SchemaRegistry, rt: &ResourceTypeDef, s: &str) -> ScimResult<AttrPath> {
    let path = parse_attr_path(s)
        .map_err(|_| ScimError::invalid_value(format!("sortBy '{s}' is not an attribute path")))?;
    registry.resolve(rt, &path).map_err(|_| {
        ScimError::invalid_value(format!("sortBy '{s}' is not an attribute of {}", rt.name))
    })?;
    Ok(path)
}

fn sort_order(s: Option<&str>) -> ScimResult<SortOrder> {
    match s.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("ascending") => Ok(SortOrder::Ascending),
        Some("descending") => Ok(SortOrder::Descending),
        Some(other) => Err(ScimError::invalid_value(format!(
            "sortOrder '{other}' is not 'ascending' or 'descending'"
        ))),
    }
}

/// `userName eq "x"` on Users (userName is unique and not case-exact) as the key
/// stored by `unique_key`.
fn unique_key_filter(rt: &ResourceTypeDef, f: &Filter) -> Option<String> {
    match f {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Literal::String(v),
        } if rt.kind.is_user()
            && path.sub_attr.is_none()
            && path.attr.eq_ignore_ascii_case("userName")
            && path
                .urn
                .as_deref()
                .is_none_or(|u| u.eq_ignore_ascii_case(USER_SCHEMA)) =>
        {
            Some(user_key(v))
        }
        _ => None,
    }
}
