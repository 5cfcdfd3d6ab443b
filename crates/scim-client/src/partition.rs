//! Splitting a search into disjoint ranges of `meta.created`, so that several
//! searches can read one large result at once (exports, the sync engine).

use crate::resource::Resource;
use crate::resources::{Resources, SearchRequest, SortOrder};
use serde_json::Value;

/// `(filter) and extra`, or either alone.
fn and(filter: Option<&str>, extra: Option<String>) -> Option<String> {
    match (filter, extra) {
        (Some(f), Some(x)) => Some(format!("({f}) and {x}")),
        (f, x) => x.or(f.map(str::to_string)),
    }
}

impl<T: Resource> Resources<T> {
    /// Filters that split the `total` resources matching `filter` into `n`
    /// disjoint ranges of `meta.created`, about equal in size, so `n` searches
    /// can run at once (one [`Resources::search`] each). `lt` and `ge` of the
    /// same instant are complements: every resource is in exactly one range.
    /// One range (the filter itself) when the server cannot sort on
    /// `meta.created`, or `n` is 1.
    pub async fn partitions(
        &self,
        filter: Option<&str>,
        total: u64,
        n: u32,
    ) -> Vec<Option<String>> {
        partitions(&self.raw(), filter, total, n).await
    }
}

async fn partitions(
    res: &Resources<Value>,
    filter: Option<&str>,
    total: u64,
    n: u32,
) -> Vec<Option<String>> {
    let whole = vec![filter.map(str::to_string)];
    if n <= 1 || total < u64::from(n) {
        return whole;
    }
    let mut points: Vec<String> = Vec::new();
    for k in 1..u64::from(n) {
        let q = SearchRequest {
            filter: filter.map(str::to_string),
            sort_by: Some("meta.created".into()),
            sort_order: Some(SortOrder::Ascending),
            attributes: vec!["meta.created".into()],
            start_index: Some((k * total / u64::from(n) + 1) as u32),
            count: Some(1),
            ..SearchRequest::default()
        };
        let at = match res.search_page(&q).await {
            Ok(page) => page
                .resources
                .first()
                .and_then(|u| u.pointer("/meta/created"))
                .and_then(Value::as_str)
                .map(str::to_string),
            Err(_) => None,
        };
        // Ranges must follow each other, or two of them would overlap.
        match (at, points.last()) {
            (Some(t), Some(last)) if &t == last => {}
            (Some(t), Some(last)) if t.len() != last.len() || &t < last => return whole,
            (Some(t), _) => points.push(t),
            (None, _) => return whole,
        }
    }
    range_filters(filter, &points)
}

/// `lt p1`, `ge p1 and lt p2`, …, `ge pn`: each ANDed with the user's filter.
fn range_filters(filter: Option<&str>, points: &[String]) -> Vec<Option<String>> {
    let lit = |t: &str| serde_json::to_string(t).unwrap_or_else(|_| format!("\"{t}\""));
    let mut out = Vec::with_capacity(points.len() + 1);
    for (i, t) in points.iter().enumerate() {
        let upper = format!("meta.created lt {}", lit(t));
        let range = match i.checked_sub(1).and_then(|j| points.get(j)) {
            Some(lower) => format!("meta.created ge {} and {upper}", lit(lower)),
            None => upper,
        };
        out.push(and(filter, Some(range)));
    }
    match points.last() {
        Some(last) => out.push(and(filter, Some(format!("meta.created ge {}", lit(last))))),
        None => out.push(filter.map(str::to_string)),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_once() {
        let pts = vec![
            "2026-01-01T00:00:00Z".to_string(),
            "2026-02-01T00:00:00Z".to_string(),
        ];
        let f = range_filters(Some("active eq true"), &pts);
        assert_eq!(
            f,
            vec![
                Some("(active eq true) and meta.created lt \"2026-01-01T00:00:00Z\"".to_string()),
                Some("(active eq true) and meta.created ge \"2026-01-01T00:00:00Z\" and meta.created lt \"2026-02-01T00:00:00Z\"".to_string()),
                Some("(active eq true) and meta.created ge \"2026-02-01T00:00:00Z\"".to_string()),
            ]
        );
        assert_eq!(range_filters(None, &[]), vec![None]);
        assert_eq!(
            range_filters(None, &pts[..1])[1].as_deref(),
            Some("meta.created ge \"2026-01-01T00:00:00Z\"")
        );
    }
}
