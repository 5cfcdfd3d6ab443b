//! The SQL differences between backends, kept out of the filter compiler.
//!
//! Every text comparison the compiler emits must order strings by Unicode code
//! point, because that is how the in-memory evaluator (Rust `str` ordering)
//! compares them. SQLite's default BINARY collation already does (memcmp on
//! UTF-8); PostgreSQL's database collation usually does not, hence
//! [`Dialect::text_order`].
//!
//! `LIKE` is used only where PostgreSQL's trigram index needs it (with the
//! needle's `%`, `_` and `\\` escaped): SQLite's `LIKE` folds ASCII case by
//! default, which would be wrong for caseExact attributes. Prefix and suffix tests
//! use ranges and `substr`/`right`; the exact substring test is `instr`/`strpos`.

use crate::sql::{SqlParam, TrigramStats};

/// Most trigrams of one needle asked of SQLite's index: each is one more posting
/// list to intersect, and the exact test beside them decides anyway.
const MAX_TRIGRAMS: usize = 6;

/// With statistics: the rarest trigrams asked for. The rarest alone usually
/// leaves a few candidates; a second one guards against a poor estimate.
const RAREST_TRIGRAMS: usize = 2;

/// SQL spelling that differs between backends. Object safe, so callers can hold a
/// `&dyn Dialect` chosen at run time.
pub trait Dialect {
    /// Placeholder for the `n`-th (1-based) bound parameter holding `param`.
    /// Placeholders are always numbered so that one parameter can be referenced
    /// several times and a fragment can be repeated (e.g. in ORDER BY) without
    /// binding its parameters again.
    fn placeholder(&self, n: usize, param: &SqlParam) -> String;

    /// The `n`-th bound parameter of a fixed statement (`crate::statements`);
    /// `cast` names its SQL type where the server cannot infer it (SQLite, typed
    /// dynamically, needs none).
    fn param(&self, n: usize, cast: Option<&str>) -> String;

    /// The column of `members` that keeps a group's members in the order they
    /// were added.
    fn member_order(&self) -> &'static str;

    /// A NULL text value in a select list (PostgreSQL must be told its type).
    fn null_text(&self) -> &'static str;

    /// A boolean constant usable as a whole condition.
    fn bool_literal(&self, b: bool) -> &'static str;

    /// `haystack` contains `needle` (both SQL expressions). An empty needle matches.
    fn contains(&self, haystack: &str, needle: &str) -> String;

    /// `text` ends with `suffix` (both SQL expressions). An empty suffix matches.
    fn ends_with(&self, text: &str, suffix: &str) -> String;

    /// A condition on the attr_index row `alias` (value column `col`) that holds
    /// for every row whose value contains (`ends_with`: ends with) the needle, and
    /// that the backend answers from its trigram index; `query` is the placeholder
    /// of [`Dialect::trigram_query`]'s value. Rows it keeps may still not match:
    /// the exact test goes beside it.
    fn trigram_candidates(&self, alias: &str, col: &str, query: &str) -> String;

    /// The parameter of [`Dialect::trigram_candidates`] for a needle of at least
    /// [`crate::sql::TRIGRAM`] characters; `stats` (when the backend keeps any)
    /// tell rare trigrams from common ones.
    fn trigram_query(
        &self,
        needle: &str,
        ends_with: bool,
        stats: Option<&dyn TrigramStats>,
    ) -> String;

    /// `expr` as an operand of `<`, `>=`, … or ORDER BY so that it orders by code point.
    fn text_order(&self, expr: &str) -> String;

    /// String concatenation of two SQL expressions.
    fn concat(&self, a: &str, b: &str) -> String {
        format!("({a} || {b})")
    }

    /// `column` in a condition that the planner should not answer from an index
    /// (because another condition is the selective one). Plain by default.
    fn unindexed(&self, column: &str) -> String {
        column.to_string()
    }

    /// How many resources of the type bound at `rtype` there are, from the
    /// counters the schema's triggers keep in each writing transaction (ddl.rs),
    /// so an unfiltered total never counts the table.
    fn type_total(&self, rtype: &str) -> String;
}

/// SQLite through rusqlite: `?NNN` placeholders, booleans stored as 0/1 integers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sqlite;

impl Dialect for Sqlite {
    fn placeholder(&self, n: usize, _param: &SqlParam) -> String {
        format!("?{n}")
    }

    fn param(&self, n: usize, _cast: Option<&str>) -> String {
        format!("?{n}")
    }

    fn member_order(&self) -> &'static str {
        // One writer: rowid order is insertion order.
        "rowid"
    }

    fn null_text(&self) -> &'static str {
        "NULL"
    }

    fn bool_literal(&self, b: bool) -> &'static str {
        if b {
            "1"
        } else {
            "0"
        }
    }

    fn contains(&self, haystack: &str, needle: &str) -> String {
        format!("instr({haystack}, {needle}) > 0")
    }

    fn ends_with(&self, text: &str, suffix: &str) -> String {
        // substr(x, -0) is the whole string in SQLite, so the empty suffix needs
        // its own arm; length() and negative substr() both count characters.
        format!("(length({suffix}) = 0 OR substr({text}, -length({suffix})) = {suffix})")
    }

    fn trigram_candidates(&self, alias: &str, _col: &str, query: &str) -> String {
        format!("{alias}.id IN (SELECT rowid FROM attr_trigrams WHERE attr_trigrams MATCH {query})")
    }

    fn trigram_query(
        &self,
        needle: &str,
        _ends_with: bool,
        stats: Option<&dyn TrigramStats>,
    ) -> String {
        // `detail=none` (ddl.rs) answers which rows hold every trigram, not where:
        // an AND of the needle's rarest distinct trigrams (with statistics), else
        // of a few spread over it.
        let chars: Vec<char> = needle.chars().collect();
        let mut seen = std::collections::HashSet::new();
        let grams: Vec<String> = chars
            .windows(crate::sql::TRIGRAM)
            .map(|w| w.iter().collect::<String>())
            .filter(|g| seen.insert(g.clone()))
            .collect();
        if let Some(stats) = stats {
            let mut ranked: Vec<(u64, &String)> =
                grams.iter().map(|g| (stats.frequency(g), g)).collect();
            ranked.sort_by_key(|(f, _)| *f);
            return ranked
                .iter()
                .take(RAREST_TRIGRAMS)
                .map(|(_, g)| fts_string(g))
                .collect::<Vec<_>>()
                .join(" AND ");
        }
        let step = grams.len().div_ceil(MAX_TRIGRAMS).max(1);
        let mut picked: Vec<&String> = grams.iter().step_by(step).collect();
        if let Some(last) = grams.last() {
            if picked.last() != Some(&last) {
                picked.push(last);
            }
        }
        picked
            .iter()
            .map(|g| fts_string(g))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn text_order(&self, expr: &str) -> String {
        expr.to_string()
    }

    fn unindexed(&self, column: &str) -> String {
        // Unary `+` is SQLite's way to keep a column from being an index key.
        format!("+{column}")
    }

    // One writer at a time: the counter rows never make writers wait.
    fn type_total(&self, rtype: &str) -> String {
        format!("SELECT coalesce((SELECT n FROM type_counts WHERE rtype = {rtype}), 0)")
    }
}

/// PostgreSQL: `$N` placeholders (cast, so the server never has to guess a type
/// from context such as `length($1)`), BOOLEAN and DOUBLE PRECISION columns.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postgres;

impl Dialect for Postgres {
    fn placeholder(&self, n: usize, param: &SqlParam) -> String {
        let ty = match param {
            SqlParam::Text(_) => "text",
            SqlParam::Num(_) => "double precision",
            SqlParam::Bool(_) => "boolean",
            SqlParam::Int(_) => "bigint",
        };
        format!("${n}::{ty}")
    }

    fn param(&self, n: usize, cast: Option<&str>) -> String {
        match cast {
            Some(ty) => format!("${n}::{ty}"),
            None => format!("${n}"),
        }
    }

    fn member_order(&self) -> &'static str {
        // Computed per group while the group's row is locked (see crate::ddl).
        "pos"
    }

    fn null_text(&self) -> &'static str {
        "NULL::text"
    }

    fn bool_literal(&self, b: bool) -> &'static str {
        if b {
            "TRUE"
        } else {
            "FALSE"
        }
    }

    fn contains(&self, haystack: &str, needle: &str) -> String {
        format!("strpos({haystack}, {needle}) > 0")
    }

    fn ends_with(&self, text: &str, suffix: &str) -> String {
        format!("right({text}, length({suffix})) = {suffix}")
    }

    fn trigram_candidates(&self, _alias: &str, col: &str, query: &str) -> String {
        format!("{col} LIKE {query}")
    }

    // pg_trgm's GIN scan weighs the trigrams itself.
    fn trigram_query(
        &self,
        needle: &str,
        ends_with: bool,
        _stats: Option<&dyn TrigramStats>,
    ) -> String {
        let mut pattern = String::with_capacity(needle.len() + 2);
        pattern.push('%');
        for c in needle.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        if !ends_with {
            pattern.push('%');
        }
        pattern
    }

    // Concurrent writers only ever insert deltas (updating one counter row
    // would queue them, and deadlock them across types); the deltas are folded
    // into `type_counts` now and then (`compact_type_counts`).
    fn type_total(&self, rtype: &str) -> String {
        format!(
            "SELECT coalesce((SELECT n FROM type_counts WHERE rtype = {rtype}), 0) \
             + coalesce((SELECT sum(d) FROM type_count_deltas WHERE rtype = {rtype}), 0)::bigint"
        )
    }

    fn text_order(&self, expr: &str) -> String {
        // The index on v_text must be declared COLLATE "C" for range scans to use it.
        format!("{expr} COLLATE \"C\"")
    }
}

/// An FTS5 string literal.
pub(crate) fn fts_string(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let t = SqlParam::Text("x".into());
        assert_eq!(Sqlite.placeholder(3, &t), "?3");
        assert_eq!(Postgres.placeholder(3, &t), "$3::text");
        assert_eq!(
            Postgres.placeholder(1, &SqlParam::Num(1.0)),
            "$1::double precision"
        );
        assert_eq!(
            Postgres.placeholder(2, &SqlParam::Bool(true)),
            "$2::boolean"
        );
    }

    #[test]
    fn string_functions() {
        assert_eq!(Sqlite.contains("a", "?1"), "instr(a, ?1) > 0");
        assert_eq!(Postgres.contains("a", "$1"), "strpos(a, $1) > 0");
        assert_eq!(Postgres.ends_with("a", "$1"), "right(a, length($1)) = $1");
        assert_eq!(Postgres.text_order("a"), "a COLLATE \"C\"");
        assert_eq!(Sqlite.text_order("a"), "a");
        assert_eq!(Sqlite.concat("a", "b"), "(a || b)");
    }

    #[test]
    fn trigram_queries() {
        assert_eq!(
            Sqlite.trigram_query("abcd", false, None),
            r#""abc" AND "bcd""#
        );
        assert_eq!(Sqlite.trigram_query("aaaa", false, None), r#""aaa""#);
        assert_eq!(
            Sqlite.trigram_query(r#"a"bc"#, true, None),
            r#""a""b" AND """bc""#
        );
        // A long needle asks for a few trigrams spread over it, the last included.
        let q = Sqlite.trigram_query("abcdefghijklmnopqrstuvwxyz", false, None);
        assert_eq!(q.matches(" AND ").count() + 1, 7);
        assert!(q.starts_with(r#""abc""#) && q.ends_with(r#""xyz""#), "{q}");
        assert_eq!(
            Postgres.trigram_query("a%b_c\\", false, None),
            r"%a\%b\_c\\%"
        );
        assert_eq!(Postgres.trigram_query("abc", true, None), "%abc");
        // With statistics, the two rarest trigrams only.
        struct Known;
        impl TrigramStats for Known {
            fn frequency(&self, g: &str) -> u64 {
                match g {
                    "123" => 10,
                    "23@" => 50,
                    _ => 10_000,
                }
            }
        }
        assert_eq!(
            Sqlite.trigram_query("123@exa", false, Some(&Known)),
            r#""123" AND "23@""#
        );
        assert_eq!(
            Sqlite.trigram_candidates("i", "i.v_text", "?3"),
            "i.id IN (SELECT rowid FROM attr_trigrams WHERE attr_trigrams MATCH ?3)"
        );
        assert_eq!(
            Postgres.trigram_candidates("i", "i.v_text", "$3"),
            "i.v_text LIKE $3"
        );
    }
}
