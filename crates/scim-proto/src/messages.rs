//! SCIM API messages (RFC 7644): their URNs, the SearchRequest (query string or
//! body) and the ListResponse envelope.

use crate::{ScimError, ScimResult};
use serde_json::{json, Map, Value};

pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A search as the client sent it (RFC 7644 §3.4.2 query parameters or a §3.4.3
/// SearchRequest body), before any validation against a resource type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchRequest {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    /// 1-based, as sent (validated later).
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    /// Gluu's `userId`: narrows a device search to one owner.
    pub user_id: Option<String>,
    /// RFC 9865: present (possibly empty, for the first page) selects cursor paging.
    pub cursor: Option<String>,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

/// A query-string parameter, by case-insensitive name.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// An integer query-string parameter (400 invalidValue when it is not one).
pub fn int_param(params: &[(String, String)], name: &str) -> ScimResult<Option<i64>> {
    param(params, name)
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                ScimError::invalid_value(format!("{name} must be an integer, got '{v}'"))
            })
        })
        .transpose()
}

impl SearchRequest {
    /// The search of a `GET /{endpoint}` query string.
    pub fn from_query(params: &[(String, String)]) -> ScimResult<SearchRequest> {
        let text = |name: &str| param(params, name).map(str::to_string);
        Ok(SearchRequest {
            filter: text("filter"),
            sort_by: text("sortBy"),
            sort_order: text("sortOrder"),
            start_index: int_param(params, "startIndex")?,
            count: int_param(params, "count")?,
            user_id: text("userId"),
            cursor: text("cursor"),
            attributes: text("attributes"),
            excluded_attributes: text("excludedAttributes"),
        })
    }

    /// A SearchRequest body (`POST …/.search`). Member names are matched without
    /// regard to case; `attributes` may be a string or an array of strings.
    pub fn from_body(body: &Value) -> ScimResult<SearchRequest> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("SearchRequest must be a JSON object"))?;
        if let Some(schemas) = obj.get("schemas") {
            let ok = schemas
                .as_array()
                .is_some_and(|a| a.iter().any(|s| s.as_str() == Some(SEARCH_REQUEST)));
            if !ok {
                return Err(ScimError::invalid_syntax(format!(
                    "schemas must contain {SEARCH_REQUEST}"
                )));
            }
        }
        Ok(SearchRequest {
            filter: body_text(obj, "filter")?,
            sort_by: body_text(obj, "sortBy")?,
            sort_order: body_text(obj, "sortOrder")?,
            start_index: body_int(obj, "startIndex")?,
            count: body_int(obj, "count")?,
            user_id: body_text(obj, "userId")?,
            cursor: body_text(obj, "cursor")?,
            attributes: body_text(obj, "attributes")?,
            excluded_attributes: body_text(obj, "excludedAttributes")?,
        })
    }
}

impl SearchRequest {
    /// The request as a SearchRequest body (what a script sees); absent members
    /// are left out.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("schemas".into(), json!([SEARCH_REQUEST]));
        let texts = [
            ("filter", &self.filter),
            ("sortBy", &self.sort_by),
            ("sortOrder", &self.sort_order),
            ("userId", &self.user_id),
            ("cursor", &self.cursor),
            ("attributes", &self.attributes),
            ("excludedAttributes", &self.excluded_attributes),
        ];
        for (name, v) in texts {
            if let Some(v) = v {
                body.insert(name.into(), json!(v));
            }
        }
        for (name, v) in [("startIndex", self.start_index), ("count", self.count)] {
            if let Some(v) = v {
                body.insert(name.into(), json!(v));
            }
        }
        Value::Object(body)
    }
}

fn body_member<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn body_text(obj: &Map<String, Value>, name: &str) -> ScimResult<Option<String>> {
    match body_member(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(a)) => Ok(Some(
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
        )),
        Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
    }
}

fn body_int(obj: &Map<String, Value>, name: &str) -> ScimResult<Option<i64>> {
    match body_member(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| ScimError::invalid_value(format!("{name} must be an integer"))),
    }
}

/// A ListResponse (RFC 7644 §3.4.2); `start_index` is omitted for cursor pages.
pub fn list_response(total: u64, start_index: Option<u64>, resources: Vec<Value>) -> Value {
    let mut body = json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "itemsPerPage": resources.len(),
    });
    if let Some(i) = start_index {
        body["startIndex"] = json!(i);
    }
    body["Resources"] = Value::Array(resources);
    body
}

/// Whether a body names this message URN in its `schemas`.
pub fn declares(body: &Value, urn: &str) -> bool {
    body.get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|s| s.as_str() == Some(urn)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn query_string_names_are_case_insensitive() {
        let r = SearchRequest::from_query(&params(&[
            ("FILTER", "userName eq \"a\""),
            ("startindex", "3"),
            ("count", " 7 "),
            ("excludedAttributes", "emails"),
        ]))
        .expect("parses");
        assert_eq!(r.filter.as_deref(), Some("userName eq \"a\""));
        assert_eq!(r.start_index, Some(3));
        assert_eq!(r.count, Some(7));
        assert_eq!(r.excluded_attributes.as_deref(), Some("emails"));
        let e = SearchRequest::from_query(&params(&[("count", "ten")])).expect_err("bad count");
        assert_eq!(e.status, 400);
        assert_eq!(e.scim_type, Some(crate::ScimType::InvalidValue));
    }

    #[test]
    fn body_forms_and_errors() {
        let r = SearchRequest::from_body(&json!({
            "schemas": [SEARCH_REQUEST],
            "Filter": "active pr",
            "attributes": ["userName", "emails"],
            "count": 2,
            "cursor": ""
        }))
        .expect("parses");
        assert_eq!(r.filter.as_deref(), Some("active pr"));
        assert_eq!(r.attributes.as_deref(), Some("userName,emails"));
        assert_eq!(r.count, Some(2));
        assert_eq!(r.cursor.as_deref(), Some(""));
        assert_eq!(SearchRequest::from_body(&r.to_json()).expect("again"), r);
        for bad in [
            json!([1]),
            json!({"schemas": ["urn:x"]}),
            json!({"count": "2"}),
            json!({"filter": 3}),
        ] {
            let e = SearchRequest::from_body(&bad).expect_err("refused");
            assert_eq!(e.status, 400, "{bad}");
        }
    }

    #[test]
    fn list_response_shape() {
        let v = list_response(5, Some(2), vec![json!({"id": "a"})]);
        assert_eq!(v["schemas"][0], LIST_RESPONSE);
        assert_eq!(v["totalResults"], 5);
        assert_eq!(v["itemsPerPage"], 1);
        assert_eq!(v["startIndex"], 2);
        assert!(list_response(0, None, vec![]).get("startIndex").is_none());
        assert!(declares(&v, LIST_RESPONSE));
    }
}
