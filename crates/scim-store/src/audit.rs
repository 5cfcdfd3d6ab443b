//! The audit trail's query, one for both backends: the change rows a
//! `WriteQuery` selects, newest first. Each filter present adds one condition
//! on an indexed column (`res_id`, `principal`, `at`); the values are bound, the
//! limit is a number.

use crate::{WriteQuery, MAX_AUDIT_ENTRIES};

/// The SQL and its text parameters. `order` is the change log's order column(s)
/// (`seq` on SQLite, `tx, id` on PostgreSQL); `placeholder(n)` writes the n-th
/// parameter (`?n` or `$n`).
pub(crate) fn writes_sql(
    q: &WriteQuery,
    order: &[&str],
    placeholder: fn(usize) -> String,
) -> (String, Vec<String>) {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    let mut bind = |column: &str, op: &str, value: String| {
        params.push(value);
        conditions.push(format!("{column} {op} {}", placeholder(params.len())));
    };
    if let Some(r) = &q.resource {
        bind("res_id", "=", r.clone());
    }
    if let Some(p) = &q.principal {
        bind("principal", "=", p.clone());
    }
    if let Some(t) = q.since {
        bind("at", ">=", crate::db_time(t));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let desc: Vec<String> = order.iter().map(|c| format!("{c} DESC")).collect();
    let limit = q.limit.clamp(1, MAX_AUDIT_ENTRIES);
    let sql = format!(
        "SELECT at, op, rtype, res_id, version, principal, request_id, source_ip FROM changes{filter} \
         ORDER BY {} LIMIT {limit}",
        desc.join(", ")
    );
    (sql, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_bind_values_and_cap_the_limit() {
        let q = WriteQuery {
            resource: Some("r1".into()),
            principal: Some("c'; DROP TABLE changes".into()),
            since: None,
            limit: 50_000,
        };
        let (sql, params) = writes_sql(&q, &["tx", "id"], |n| format!("${n}"));
        assert_eq!(
            sql,
            "SELECT at, op, rtype, res_id, version, principal, request_id, source_ip FROM changes \
             WHERE res_id = $1 AND principal = $2 ORDER BY tx DESC, id DESC LIMIT 1000"
        );
        assert_eq!(
            params,
            vec!["r1".to_string(), "c'; DROP TABLE changes".to_string()]
        );
        let (sql, params) = writes_sql(&WriteQuery::default(), &["seq"], |n| format!("?{n}"));
        assert!(
            sql.ends_with("FROM changes ORDER BY seq DESC LIMIT 1"),
            "{sql}"
        );
        assert!(params.is_empty());
    }
}
