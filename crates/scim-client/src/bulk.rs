//! Bulk (RFC 7644 §3.7): operations split into requests within the server's
//! limits, `bulkId` references kept working across requests.

use crate::discovery::BulkLimits;
use crate::transport::Raw;
use crate::{Client, Error, Result};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};

const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// The method of a bulk operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkMethod {
    /// Create.
    Post,
    /// Replace.
    Put,
    /// Modify.
    Patch,
    /// Delete.
    Delete,
}

impl BulkMethod {
    /// As written in a bulk request: `POST`, `PUT`, `PATCH`, `DELETE`.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkMethod::Post => "POST",
            BulkMethod::Put => "PUT",
            BulkMethod::Patch => "PATCH",
            BulkMethod::Delete => "DELETE",
        }
    }

    fn parse(s: &str) -> Option<BulkMethod> {
        [
            BulkMethod::Post,
            BulkMethod::Put,
            BulkMethod::Patch,
            BulkMethod::Delete,
        ]
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

/// One operation of a bulk request.
///
/// `bulk_id` names a POST so that later (or earlier) operations can refer to
/// the new resource as `bulkId:<id>` in their `path` or `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkOperation {
    /// What to do.
    pub method: BulkMethod,
    /// The client's name for a created resource.
    pub bulk_id: Option<String>,
    /// `/Users` for a POST, `/Users/{id}` (or `/Users/bulkId:x`) otherwise.
    pub path: String,
    /// An ETag the resource must still have (`If-Match`).
    pub version: Option<String>,
    /// The resource (POST, PUT) or PatchOp body (PATCH).
    pub data: Option<Value>,
}

impl BulkOperation {
    /// A POST of `data` to `endpoint` (e.g. `/Users`), named `bulk_id`.
    pub fn post(endpoint: &str, bulk_id: impl Into<String>, data: Value) -> Self {
        BulkOperation {
            method: BulkMethod::Post,
            bulk_id: Some(bulk_id.into()),
            path: endpoint.to_string(),
            version: None,
            data: Some(data),
        }
    }

    /// A PUT of `data` at `path`.
    pub fn put(path: &str, data: Value) -> Self {
        BulkOperation {
            method: BulkMethod::Put,
            bulk_id: None,
            path: path.to_string(),
            version: None,
            data: Some(data),
        }
    }

    /// A PATCH of `path`.
    pub fn patch(path: &str, patch: &crate::Patch) -> Self {
        BulkOperation {
            method: BulkMethod::Patch,
            bulk_id: None,
            path: path.to_string(),
            version: None,
            data: Some(patch.to_json()),
        }
    }

    /// A DELETE of `path`.
    pub fn delete(path: &str) -> Self {
        BulkOperation {
            method: BulkMethod::Delete,
            bulk_id: None,
            path: path.to_string(),
            version: None,
            data: None,
        }
    }

    /// As sent in the request's `Operations`.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("method".into(), self.method.as_str().into());
        if let Some(b) = &self.bulk_id {
            o.insert("bulkId".into(), b.as_str().into());
        }
        o.insert("path".into(), self.path.as_str().into());
        if let Some(v) = &self.version {
            o.insert("version".into(), v.as_str().into());
        }
        if let Some(d) = &self.data {
            o.insert("data".into(), d.clone());
        }
        Value::Object(o)
    }

    /// The bulkIds this operation refers to.
    fn references(&self) -> HashSet<String> {
        let mut out = HashSet::new();
        path_refs(&self.path, &mut out);
        if let Some(d) = &self.data {
            value_refs(d, &mut out);
        }
        out
    }
}

fn path_refs(path: &str, out: &mut HashSet<String>) {
    for (at, _) in path.match_indices("bulkId:") {
        let rest = &path[at + 7..];
        let id: String = rest
            .chars()
            .take_while(|c| *c != '/' && *c != '?')
            .collect();
        if !id.is_empty() {
            out.insert(id);
        }
    }
}

fn value_refs(v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:") {
                out.insert(id.to_string());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| value_refs(x, out)),
        Value::Object(o) => o.values().for_each(|x| value_refs(x, out)),
        _ => {}
    }
}

/// Replace `bulkId:x` by the id `x` got in an earlier request.
fn substitute(op: &mut BulkOperation, ids: &HashMap<String, String>) {
    if ids.is_empty() {
        return;
    }
    let mut refs = HashSet::new();
    path_refs(&op.path, &mut refs);
    for r in refs {
        if let Some(id) = ids.get(&r) {
            op.path = op.path.replace(&format!("bulkId:{r}"), id);
        }
    }
    if let Some(d) = op.data.as_mut() {
        substitute_value(d, ids);
    }
}

fn substitute_value(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:").and_then(|r| ids.get(r)) {
                *s = id.clone();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute_value(x, ids)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute_value(x, ids)),
        _ => {}
    }
}

/// Order the operations so that each comes after the operations defining the
/// bulkIds it refers to, otherwise keeping the caller's order. Operations in a
/// reference cycle (which no server can run) come last, in the caller's order.
fn order(ops: Vec<BulkOperation>) -> Vec<(usize, BulkOperation)> {
    let definer: HashMap<String, usize> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.bulk_id.clone().map(|b| (b, i)))
        .collect();
    let needs: Vec<HashSet<usize>> = ops
        .iter()
        .enumerate()
        .map(|(i, o)| {
            o.references()
                .iter()
                .filter_map(|r| definer.get(r).copied())
                .filter(|d| *d != i)
                .collect()
        })
        .collect();
    let mut placed = vec![false; ops.len()];
    let mut sequence = Vec::with_capacity(ops.len());
    // Repeatedly take the first operation whose definers are all placed; n is
    // the number of operations per request at most (1000s), so O(n²) is fine.
    while let Some(i) = (0..ops.len()).find(|&i| !placed[i] && needs[i].iter().all(|d| placed[*d]))
    {
        placed[i] = true;
        sequence.push(i);
    }
    sequence.extend((0..ops.len()).filter(|i| !placed[*i]));
    let mut slots: Vec<Option<BulkOperation>> = ops.into_iter().map(Some).collect();
    sequence
        .into_iter()
        .filter_map(|i| slots[i].take().map(|o| (i, o)))
        .collect()
}

/// The request body for these operations.
fn request_body(ops: &[(usize, BulkOperation)], fail_on_errors: Option<u32>) -> Value {
    let mut body = json!({
        "schemas": [BULK_REQUEST],
        "Operations": ops.iter().map(|(_, o)| o.to_json()).collect::<Vec<_>>(),
    });
    if let Some(n) = fail_on_errors {
        body["failOnErrors"] = n.into();
    }
    body
}

fn json_len(v: &Value) -> u64 {
    serde_json::to_vec(v).map_or(0, |b| b.len() as u64)
}

/// Take the next request's operations off the queue: as many as the limits
/// allow, with bulkIds of earlier requests replaced by their ids.
fn next_batch(
    queue: &mut VecDeque<(usize, BulkOperation)>,
    ids: &HashMap<String, String>,
    limits: BulkLimits,
) -> Result<Vec<(usize, BulkOperation)>> {
    // failOnErrors is written with up to 10 digits whatever its value.
    let mut size = json_len(&request_body(&[], Some(u32::MAX)));
    let mut batch = Vec::new();
    while let Some((i, mut op)) = queue.pop_front() {
        substitute(&mut op, ids);
        let len = json_len(&op.to_json()) + 1;
        let full = batch.len() as u64 >= u64::from(limits.max_operations)
            || size + len > limits.max_payload_size;
        if full {
            if batch.is_empty() {
                return Err(Error::Config(format!(
                    "bulk operation {i} ({len} bytes) alone exceeds the server's maxPayloadSize of {}",
                    limits.max_payload_size
                )));
            }
            queue.push_front((i, op));
            break;
        }
        size += len;
        batch.push((i, op));
    }
    Ok(batch)
}

/// The outcome of one bulk operation.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkResult {
    /// The operation's method.
    pub method: BulkMethod,
    /// The operation's bulkId.
    pub bulk_id: Option<String>,
    /// The resource's URL (successful POST, PUT, PATCH).
    pub location: Option<String>,
    /// The resource's version (ETag) after the operation, when the server says.
    pub version: Option<String>,
    /// The HTTP status of the operation.
    pub status: u16,
    /// The response body: the SCIM error on failure (and, with some servers,
    /// the resource on success).
    pub response: Option<Value>,
}

impl BulkResult {
    /// The operation's error, if it failed.
    pub fn error(&self) -> Option<Error> {
        if self.status < 400 {
            return None;
        }
        let body = self
            .response
            .as_ref()
            .and_then(|r| serde_json::to_vec(r).ok())
            .unwrap_or_default();
        Some(Error::from_response(self.status, &body))
    }

    /// The resource's id: the last segment of `location`.
    pub fn id(&self) -> Option<&str> {
        let loc = self.location.as_deref()?.trim_end_matches('/');
        loc.rsplit('/').next().filter(|s| !s.is_empty())
    }

    fn from_json(v: &Value, sent: &BulkOperation) -> BulkResult {
        let status = match v.get("status") {
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(Value::Number(n)) => n.as_u64().map(|n| n as u16),
            // An early draft nested it: {"status": {"code": 201}}.
            Some(Value::Object(o)) => o.get("code").and_then(Value::as_u64).map(|n| n as u16),
            _ => None,
        }
        .unwrap_or(0);
        BulkResult {
            method: v
                .get("method")
                .and_then(Value::as_str)
                .and_then(BulkMethod::parse)
                .unwrap_or(sent.method),
            bulk_id: v
                .get("bulkId")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| sent.bulk_id.clone()),
            location: v
                .get("location")
                .and_then(Value::as_str)
                .map(str::to_string),
            version: v.get("version").and_then(Value::as_str).map(str::to_string),
            status,
            response: v.get("response").cloned(),
        }
    }
}

impl Client {
    /// Run bulk operations, split into as many requests as the server's limits
    /// (`maxOperations`, `maxPayloadSize` from [`Client::discover`]) need.
    ///
    /// An operation referring to a `bulkId` is sent in the same request as the
    /// operation defining it or in a later one, where the reference is replaced
    /// by the id the server gave. `fail_on_errors` counts over all requests: no
    /// further request is sent once that many operations failed. Results come in
    /// the order of `ops`; operations the server did not run have none.
    pub async fn bulk(
        &self,
        ops: Vec<BulkOperation>,
        fail_on_errors: Option<u32>,
    ) -> Result<Vec<BulkResult>> {
        let caps = self.discover().await?;
        let limits = caps
            .bulk
            .ok_or_else(|| Error::Config("the server does not support Bulk".into()))?;
        let mut queue: VecDeque<_> = order(ops).into();
        let mut ids: HashMap<String, String> = HashMap::new();
        let mut results: Vec<(usize, BulkResult)> = Vec::new();
        let mut errors = 0u32;
        while !queue.is_empty() {
            let remaining = fail_on_errors.map(|n| n.saturating_sub(errors));
            if remaining == Some(0) {
                break;
            }
            let batch = next_batch(&mut queue, &ids, limits)?;
            let raw = self.send_bulk(&batch, remaining).await?;
            for (i, r) in decode_results(&raw, &batch)? {
                if r.status >= 400 {
                    errors += 1;
                }
                if let (Some(b), Some(id)) = (&r.bulk_id, r.id()) {
                    if r.method == BulkMethod::Post && r.status < 300 {
                        ids.insert(b.clone(), id.to_string());
                    }
                }
                results.push((i, r));
            }
        }
        results.sort_by_key(|(i, _)| *i);
        Ok(results.into_iter().map(|(_, r)| r).collect())
    }

    async fn send_bulk(
        &self,
        batch: &[(usize, BulkOperation)],
        fail_on_errors: Option<u32>,
    ) -> Result<Raw> {
        let body = request_body(batch, fail_on_errors);
        self.execute(crate::client::Request::new(Method::POST, "/Bulk").json(&body)?)
            .await
    }
}

/// Pair each result with the operation it answers: by bulkId when the result
/// has one, else the first operation not yet answered (results come in order).
fn decode_results(raw: &Raw, batch: &[(usize, BulkOperation)]) -> Result<Vec<(usize, BulkResult)>> {
    let v: Value = serde_json::from_slice(&raw.body)
        .map_err(|e| Error::Decode(format!("bulk response: {e}")))?;
    let ops = v
        .get("Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Decode("bulk response without Operations".into()))?;
    let by_bulk_id: HashMap<&str, usize> = batch
        .iter()
        .enumerate()
        .filter_map(|(k, (_, o))| o.bulk_id.as_deref().map(|b| (b, k)))
        .collect();
    let mut answered = vec![false; batch.len()];
    let mut slots = vec![None; ops.len()];
    for (pos, r) in ops.iter().enumerate() {
        let named = r.get("bulkId").and_then(Value::as_str);
        if let Some(k) = named.and_then(|b| by_bulk_id.get(b).copied()) {
            answered[k] = true;
            slots[pos] = Some(k);
        }
    }
    let mut out = Vec::with_capacity(ops.len());
    for (pos, r) in ops.iter().enumerate() {
        let k = match slots[pos] {
            Some(k) => k,
            None => {
                let k = answered.iter().position(|a| !a).ok_or_else(|| {
                    Error::Decode("bulk response has more results than operations".into())
                })?;
                answered[k] = true;
                k
            }
        };
        let (i, sent) = &batch[k];
        out.push((*i, BulkResult::from_json(r, sent)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(bulk_id: &str) -> BulkOperation {
        BulkOperation::post("/Users", bulk_id, json!({"userName": bulk_id}))
    }

    fn group(bulk_id: &str, members: &[&str]) -> BulkOperation {
        let m: Vec<Value> = members
            .iter()
            .map(|b| json!({"value": format!("bulkId:{b}")}))
            .collect();
        BulkOperation::post(
            "/Groups",
            bulk_id,
            json!({"displayName": bulk_id, "members": m}),
        )
    }

    /// The original indexes of each request's operations.
    fn plan(ops: Vec<BulkOperation>, limits: BulkLimits) -> Vec<Vec<usize>> {
        let mut queue: VecDeque<_> = order(ops).into();
        let mut out = Vec::new();
        while !queue.is_empty() {
            let batch = next_batch(&mut queue, &HashMap::new(), limits).unwrap();
            out.push(batch.into_iter().map(|(i, _)| i).collect());
        }
        out
    }

    const WIDE: BulkLimits = BulkLimits {
        max_operations: 1000,
        max_payload_size: 1 << 20,
    };

    #[test]
    fn splits_by_operation_count_in_order() {
        let ops: Vec<_> = (0..7).map(|i| user(&format!("u{i}"))).collect();
        let limits = BulkLimits {
            max_operations: 3,
            ..WIDE
        };
        assert_eq!(
            plan(ops, limits),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
        );
    }

    #[test]
    fn splits_by_payload_size() {
        let ops: Vec<_> = (0..10).map(|i| user(&format!("u{i}"))).collect();
        let one = json_len(&ops[0].to_json()) + 1;
        let envelope = json_len(&request_body(&[], Some(u32::MAX)));
        let limits = BulkLimits {
            max_operations: 1000,
            max_payload_size: envelope + 4 * one,
        };
        let p = plan(ops.clone(), limits);
        assert_eq!(p.len(), 3);
        assert!(p.iter().all(|b| b.len() <= 4));
        for b in &p {
            let sent: Vec<_> = b.iter().map(|i| (*i, ops[*i].clone())).collect();
            assert!(json_len(&request_body(&sent, Some(u32::MAX))) <= limits.max_payload_size);
        }
        let tiny = BulkLimits {
            max_operations: 10,
            max_payload_size: envelope + 5,
        };
        let mut q: VecDeque<_> = order(ops).into();
        assert!(matches!(
            next_batch(&mut q, &HashMap::new(), tiny),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn references_never_precede_their_definitions() {
        // The group refers to users defined after it; a patch refers to the group by path.
        let ops = vec![
            group("g", &["u1", "u2"]),
            BulkOperation::patch(
                "/Groups/bulkId:g",
                &crate::Patch::new().replace("displayName", "G"),
            ),
            user("u1"),
            user("x"),
            user("u2"),
        ];
        let limits = BulkLimits {
            max_operations: 2,
            ..WIDE
        };
        let p = plan(ops, limits);
        let flat: Vec<usize> = p.iter().flatten().copied().collect();
        let pos = |i: usize| flat.iter().position(|x| *x == i).unwrap();
        let request = |i: usize| p.iter().position(|b| b.contains(&i)).unwrap();
        assert!(
            pos(2) < pos(0) && pos(4) < pos(0) && pos(0) < pos(1),
            "{p:?}"
        );
        assert!(request(2) <= request(0) && request(4) <= request(0) && request(0) <= request(1));
        // Otherwise the caller's order is kept.
        assert!(pos(2) < pos(3) && pos(3) < pos(4));
        assert_eq!(flat.len(), 5);
    }

    #[test]
    fn cycles_are_sent_last_and_unresolved() {
        let ops = vec![group("a", &["b"]), group("b", &["a"]), user("u")];
        let flat: Vec<usize> = order(ops).into_iter().map(|(i, _)| i).collect();
        assert_eq!(flat, vec![2, 0, 1]);
    }

    #[test]
    fn earlier_ids_replace_references() {
        let mut queue: VecDeque<_> = order(vec![
            group("g", &["u1", "u9"]),
            BulkOperation::delete("/Users/bulkId:u1"),
        ])
        .into();
        let ids = HashMap::from([("u1".to_string(), "id-1".to_string())]);
        let batch = next_batch(&mut queue, &ids, WIDE).unwrap();
        assert_eq!(
            batch[0].1.data.as_ref().unwrap()["members"],
            json!([{"value": "id-1"}, {"value": "bulkId:u9"}])
        );
        assert_eq!(batch[1].1.path, "/Users/id-1");
    }

    #[test]
    fn results_decode_and_errors_surface() {
        let sent = vec![(0, user("u1")), (1, BulkOperation::delete("/Users/nope"))];
        let raw = Raw {
            status: 200,
            headers: Default::default(),
            body: serde_json::to_vec(&json!({"Operations": [
                {"method": "DELETE", "status": "404", "response": {"status": "404", "detail": "no such user"}},
                {"method": "POST", "bulkId": "u1", "location": "http://h/scim/v2/Users/abc", "version": "W/\"1\"", "status": "201"}
            ]}))
            .unwrap(),
        };
        let got = decode_results(&raw, &sent).unwrap();
        let ok = got.iter().find(|(i, _)| *i == 0).unwrap();
        assert_eq!((ok.1.status, ok.1.id()), (201, Some("abc")));
        assert_eq!(ok.1.version.as_deref(), Some("W/\"1\""));
        assert!(ok.1.error().is_none());
        let bad = got.iter().find(|(i, _)| *i == 1).unwrap();
        assert_eq!(
            bad.1.error().map(|e| e.to_string()).as_deref(),
            Some("404: no such user")
        );
    }
}
