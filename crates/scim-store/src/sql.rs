//! Filter and sortBy compilation to SQL over the tables of `ddl.rs`, so a search
//! touches only the index entries it needs instead of loading every resource.
//!
//! The result of `compile_filter` must select exactly the resources for which the
//! in-memory evaluator (`scim_proto::filter::eval`) says true; the differential test
//! in `tests/sql_differential.rs` holds the two together. Semantics mirrored:
//! - a comparison on a multi-valued attribute matches if any value matches;
//! - `ne` is `not eq`, so a resource without the attribute matches `ne`;
//! - `eq null` is "not present", `ne null` is "present";
//! - caseExact=false compares `to_lowercase()` forms (the index stores them);
//! - dateTimes compare as instants (fixed-width UTC text on both sides);
//! - a complex attribute named without a sub-attribute compares its `value`;
//! - a value path needs all of its conditions to hold on one element.
//!
//! Shape of the SQL: each positive leaf is `r.id IN (SELECT res_id FROM attr_index
//! WHERE rtype = ? AND path = ? AND <test>)`. The subquery does not depend on `r`,
//! so SQLite runs it once as an index search on `attr_index_text`/`_num` and then
//! either drives primary-key lookups of `resources` from it or probes it as a set;
//! a correlated `EXISTS` would instead be re-run per resource row. `NOT` wraps the
//! positive form, which is never NULL, so two-valued logic holds. SQLite only
//! prefers the primary-key-driven plan once it has statistics (ANALYZE / `PRAGMA
//! optimize`); without them it assumes `r.rtype = ?` is selective.
//!
//! `id`, `meta.created`, `meta.lastModified` and `meta.resourceType` are columns of
//! `resources`; Group `members` and User `groups` are rows of `members`, whose ids
//! compare exactly.

use crate::dialect::Dialect;
use crate::index::{datetime_value, is_membership, path_of, text_value};
use chrono::Timelike;
use scim_proto::filter::eval::validate_filter;
use scim_proto::filter::{AttrPath, CompareOp, Filter, Literal};
use scim_proto::schema::{display_path, AttrType, AttributeDef, ResourceTypeDef, SchemaRegistry};
use scim_proto::{ScimError, ScimResult};

/// Needles of at least this many characters are looked up in the trigram index
/// (ddl.rs); shorter ones scan the attribute's values, within the search budget.
pub const TRIGRAM: usize = 3;

/// How many values of the trigram index hold a trigram, as far as a backend
/// knows (capped: only "few" or "many" matters). Lets a substring search ask
/// the index for the needle's rarest trigrams only: a trigram every value has
/// (`com`, `@ex` in one domain's emails) costs a walk over all of them and
/// selects nothing.
pub trait TrigramStats {
    fn frequency(&self, trigram: &str) -> u64;
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    Text(String),
    Num(f64),
    Bool(bool),
    Int(i64),
}

/// SQL text whose placeholders number from the `first_param_index` it was compiled
/// with; `params[k]` binds placeholder `first_param_index + k`.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFragment {
    pub sql: String,
    pub params: Vec<SqlParam>,
}

/// A boolean SQL expression over the resource row `r` selecting the resources that
/// match `filter`. The caller restricts `r.rtype`. Errors are 400 invalidFilter.
pub fn compile_filter(
    dialect: &dyn Dialect,
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    filter: &Filter,
    first_param_index: usize,
) -> ScimResult<SqlFragment> {
    compile_filter_with(dialect, registry, rt, filter, first_param_index, None)
}

/// `compile_filter`, with what the backend knows of its trigrams.
pub fn compile_filter_with(
    dialect: &dyn Dialect,
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    filter: &Filter,
    first_param_index: usize,
    stats: Option<&dyn TrigramStats>,
) -> ScimResult<SqlFragment> {
    validate_filter(filter, registry, rt)?;
    let mut c = Compiler::new(dialect, registry, rt, first_param_index);
    c.stats = stats;
    let sql = c.filter(filter)?;
    Ok(SqlFragment {
        sql,
        params: c.params,
    })
}

/// An expression over `r` to ORDER BY for `sortBy=path`; NULL for resources without
/// the attribute. A multi-valued attribute sorts by its primary element's value
/// (RFC 7644 §3.4.2.3), else by its first element's. Errors are 400 invalidValue.
pub fn compile_sort(
    dialect: &dyn Dialect,
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    path: &AttrPath,
    first_param_index: usize,
) -> ScimResult<SqlFragment> {
    let mut c = Compiler::new(dialect, registry, rt, first_param_index);
    let sql = c.sort(path)?;
    Ok(SqlFragment {
        sql,
        params: c.params,
    })
}

/// How values of an attribute are compared, and which index column holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text {
        case_exact: bool,
    },
    /// attr_index dateTimes: nanosecond fixed-width UTC text.
    DateTime,
    /// `created`/`modified` columns: microsecond fixed-width UTC text (`db_time`).
    ColumnTime,
    Num,
    Bool,
}

impl Kind {
    fn of(def: &AttributeDef) -> Option<Kind> {
        match def.ty {
            AttrType::String | AttrType::Reference => Some(Kind::Text {
                case_exact: def.case_exact,
            }),
            // The evaluator compares binary values exactly whatever caseExact says.
            AttrType::Binary => Some(Kind::Text { case_exact: true }),
            AttrType::DateTime => Some(Kind::DateTime),
            AttrType::Integer | AttrType::Decimal => Some(Kind::Num),
            AttrType::Boolean => Some(Kind::Bool),
            AttrType::Complex => None,
        }
    }

    fn index_column(self, alias: &str) -> String {
        match self {
            Kind::Text { .. } | Kind::DateTime | Kind::ColumnTime => format!("{alias}.v_text"),
            Kind::Num => format!("{alias}.v_num"),
            Kind::Bool => format!("{alias}.v_bool"),
        }
    }

    fn is_text(self) -> bool {
        matches!(self, Kind::Text { .. } | Kind::DateTime | Kind::ColumnTime)
    }
}

/// Which side of `members` a membership attribute is seen from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Group `members`: rows whose group_id is the resource.
    Group,
    /// User `groups`: rows whose member_id is the resource.
    User,
}

impl Side {
    fn own_column(self) -> &'static str {
        match self {
            Side::Group => "m.group_id",
            Side::User => "m.member_id",
        }
    }
}

/// Where the values a filter leaf names are found.
#[derive(Debug, Clone)]
enum Target {
    /// A NOT NULL column of the resource row (or of the `members` row in scope).
    Column { expr: &'static str, kind: Kind },
    /// Rows of attr_index under one path.
    Index { path: String, kind: Kind },
    /// A complex attribute as a whole: present when any sub-attribute has a row.
    IndexAny { paths: Vec<String> },
    /// Membership rows; `col` is the `members` column holding the compared value.
    Membership {
        side: Side,
        col: (&'static str, Kind),
    },
    /// Known without looking at the data (`meta pr`).
    Constant(bool),
}

/// What a top-level attribute path names.
enum Named<'a> {
    Id,
    Meta(Option<&'a AttributeDef>),
    Membership(Side, Option<&'a AttributeDef>),
    Index {
        urn: Option<&'a str>,
        attr: &'a AttributeDef,
        sub: Option<&'a AttributeDef>,
    },
}

/// The element a value-path filter's leaves are relative to.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// The resource row `r`.
    Top,
    /// One element of an indexed complex attribute; `alias` is an attr_index row of it.
    Element {
        urn: Option<&'a str>,
        attr: &'a AttributeDef,
        alias: &'static str,
    },
    /// One `members` row `m`.
    Member(Side),
    /// `meta[…]`: its sub-attributes are columns of `r`.
    Meta,
}

struct Compiler<'a> {
    d: &'a dyn Dialect,
    registry: &'a SchemaRegistry,
    rt: &'a ResourceTypeDef,
    first: usize,
    params: Vec<SqlParam>,
    stats: Option<&'a dyn TrigramStats>,
}

/// Whether `op value` on an indexed value of `kind` is a substring test with a
/// needle long enough for the trigram index.
fn substring_lookup(op: CompareOp, kind: Kind, value: &Literal) -> bool {
    matches!(op, CompareOp::Co | CompareOp::Ew)
        && matches!(kind, Kind::Text { .. })
        && matches!(value, Literal::String(s) if s.chars().count() >= TRIGRAM)
}

fn not_filterable(what: &str) -> ScimError {
    ScimError::invalid_filter(format!("attribute '{what}' is not filterable"))
}

fn bad_literal(path: &str, want: &str) -> ScimError {
    ScimError::invalid_filter(format!("'{path}' must be compared with {want}"))
}

/// The smallest string greater than every string that starts with `prefix`, in
/// code point order; `None` when no such string exists (prefix of only U+10FFFF).
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn flatten_and<'f>(f: &'f Filter, out: &mut Vec<&'f Filter>) {
    match f {
        Filter::And(a, b) => {
            flatten_and(a, out);
            flatten_and(b, out);
        }
        other => out.push(other),
    }
}

impl<'a> Compiler<'a> {
    fn new(
        d: &'a dyn Dialect,
        registry: &'a SchemaRegistry,
        rt: &'a ResourceTypeDef,
        first: usize,
    ) -> Self {
        Compiler {
            d,
            registry,
            rt,
            first,
            params: Vec::new(),
            stats: None,
        }
    }

    /// Placeholder for `p`, reusing the number of an equal parameter already bound.
    fn bind(&mut self, p: SqlParam) -> String {
        let i = match self.params.iter().position(|q| *q == p) {
            Some(i) => i,
            None => {
                self.params.push(p);
                self.params.len() - 1
            }
        };
        self.d.placeholder(self.first + i, &self.params[i])
    }

    fn text(&mut self, s: &str) -> String {
        self.bind(SqlParam::Text(s.to_string()))
    }

    fn rtype(&mut self) -> String {
        let rt = self.rt;
        self.text(&rt.name)
    }

    fn constant(&self, b: bool) -> String {
        self.d.bool_literal(b).to_string()
    }

    fn filter(&mut self, f: &Filter) -> ScimResult<String> {
        self.scoped(f, Scope::Top)
    }

    fn scoped(&mut self, f: &Filter, scope: Scope<'a>) -> ScimResult<String> {
        match f {
            Filter::And(a, b) => Ok(format!(
                "({} AND {})",
                self.scoped(a, scope)?,
                self.scoped(b, scope)?
            )),
            Filter::Or(a, b) => Ok(format!(
                "({} OR {})",
                self.scoped(a, scope)?,
                self.scoped(b, scope)?
            )),
            Filter::Not(inner) => Ok(format!("NOT ({})", self.scoped(inner, scope)?)),
            Filter::Present(path) => {
                let t = self.target(path, scope, true)?;
                self.present(&t, scope)
            }
            Filter::Compare { path, op, value } => self.compare(path, *op, value, scope),
            Filter::ValuePath { path, filter } => match scope {
                Scope::Top => self.value_path(path, filter),
                _ => Err(ScimError::invalid_filter(format!(
                    "value filter '{}' cannot be nested in another",
                    display_path(path)
                ))),
            },
        }
    }

    fn compare(
        &mut self,
        path: &AttrPath,
        op: CompareOp,
        value: &Literal,
        scope: Scope<'a>,
    ) -> ScimResult<String> {
        if *value == Literal::Null {
            let t = self.target(path, scope, true)?;
            let present = self.present(&t, scope)?;
            return match op {
                CompareOp::Eq => Ok(format!("NOT ({present})")),
                CompareOp::Ne => Ok(present),
                _ => Err(ScimError::invalid_filter(format!(
                    "null can only be compared with eq or ne ('{}')",
                    display_path(path)
                ))),
            };
        }
        let t = self.target(path, scope, false)?;
        let (positive_op, negate) = match op {
            CompareOp::Ne => (CompareOp::Eq, true),
            other => (other, false),
        };
        let shown = display_path(path);
        let sql = match t {
            Target::Constant(_) | Target::IndexAny { .. } => {
                return Err(ScimError::invalid_filter(format!(
                    "'{shown}' is complex; compare one of its sub-attributes"
                )))
            }
            Target::Column { expr, kind } => {
                self.test(expr, None, kind, positive_op, value, &shown)?
            }
            Target::Index { path: ipath, kind } => {
                // Bound first only so placeholders read in SQL order; `index_rows`
                // gets the same numbers back.
                if matches!(scope, Scope::Top) {
                    self.rtype();
                }
                self.text(&ipath);
                let col = kind.index_column("i");
                let by_trigrams =
                    matches!(scope, Scope::Top) && substring_lookup(positive_op, kind, value);
                let row = by_trigrams.then_some("i");
                let test = self.test(&col, row, kind, positive_op, value, &shown)?;
                self.index_rows(scope, &ipath, Some(&test), by_trigrams)?
            }
            Target::Membership {
                side,
                col: (col, kind),
            } => {
                let test = self.test(col, None, kind, positive_op, value, &shown)?;
                self.membership_rows(side, scope, Some(&test))
            }
        };
        Ok(if negate { format!("NOT ({sql})") } else { sql })
    }

    /// Rows of `path` in attr_index for the resource (top level) or for the element
    /// in scope, optionally restricted by `test` on alias `i`. `by_trigrams`: the
    /// test takes its rows from the trigram index, so the type and path must not
    /// be used to scan the value index instead.
    fn index_rows(
        &mut self,
        scope: Scope<'a>,
        path: &str,
        test: Option<&str>,
        by_trigrams: bool,
    ) -> ScimResult<String> {
        if matches!(scope, Scope::Top) {
            self.rtype();
        }
        let p = self.text(path);
        let test = test.map(|t| format!(" AND {t}")).unwrap_or_default();
        match scope {
            Scope::Top => {
                let rt = self.rtype();
                let (rtype, pathcol) = self.row_keys("i", by_trigrams);
                Ok(format!(
                    "r.id IN (SELECT i.res_id FROM attr_index i WHERE {rtype} = {rt} AND {pathcol} = {p}{test})"
                ))
            }
            Scope::Element { alias, .. } => Ok(format!(
                "EXISTS (SELECT 1 FROM attr_index i WHERE i.res_id = {alias}.res_id AND i.path = {p} AND i.elem = {alias}.elem{test})"
            )),
            Scope::Member(_) | Scope::Meta => Err(ScimError::internal(
                "indexed attribute inside a members or meta value filter",
            )),
        }
    }

    fn membership_rows(&mut self, side: Side, scope: Scope<'a>, test: Option<&str>) -> String {
        match scope {
            Scope::Member(_) => test.map_or_else(|| self.constant(true), |t| format!("({t})")),
            _ => {
                let own = side.own_column();
                let test = test.map(|t| format!(" WHERE {t}")).unwrap_or_default();
                format!("r.id IN (SELECT {own} FROM members m{test})")
            }
        }
    }

    fn present(&mut self, t: &Target, scope: Scope<'a>) -> ScimResult<String> {
        match t {
            Target::Column { .. } => Ok(self.constant(true)),
            Target::Constant(b) => Ok(self.constant(*b)),
            // `""` is not present for the evaluator, though it is indexed for `eq ""`.
            Target::Index { path, kind } if kind.is_text() => {
                let col = kind.index_column("i");
                self.index_rows(scope, path, Some(&format!("{col} <> ''")), false)
            }
            Target::Index { path, .. } => self.index_rows(scope, path, None, false),
            Target::IndexAny { paths } => {
                let rt = self.rtype();
                let list: Vec<String> = paths.iter().map(|p| self.text(p)).collect();
                Ok(format!(
                    "r.id IN (SELECT i.res_id FROM attr_index i WHERE i.rtype = {rt} AND i.path IN ({}))",
                    list.join(", ")
                ))
            }
            Target::Membership { side, .. } => Ok(self.membership_rows(*side, scope, None)),
        }
    }

    /// A condition on the SQL value `col` for `col <op> literal`, `op` not `ne`.
    /// `row` is the attr_index alias `col` belongs to when the test picks that
    /// table's rows itself (not per element of another row): substring tests then
    /// take their candidates from the trigram index.
    fn test(
        &mut self,
        col: &str,
        row: Option<&str>,
        kind: Kind,
        op: CompareOp,
        value: &Literal,
        shown: &str,
    ) -> ScimResult<String> {
        if kind == Kind::ColumnTime {
            return self.column_time_test(col, op, value, shown);
        }
        let param = match (kind, value) {
            (Kind::Text { case_exact }, Literal::String(s)) => {
                SqlParam::Text(text_value(s, case_exact))
            }
            (Kind::Text { .. }, _) => return Err(bad_literal(shown, "a string")),
            (Kind::DateTime, Literal::String(s)) => match datetime_value(s) {
                Some(t) => SqlParam::Text(t),
                None => return Err(bad_literal(shown, "an RFC 3339 dateTime")),
            },
            (Kind::DateTime, _) => return Err(bad_literal(shown, "a dateTime string")),
            (Kind::Num, Literal::Number(n)) => match n.as_f64() {
                Some(f) => SqlParam::Num(f),
                None => return Err(bad_literal(shown, "a number")),
            },
            (Kind::Num, _) => return Err(bad_literal(shown, "a number")),
            (Kind::Bool, Literal::Bool(b)) => SqlParam::Bool(*b),
            (Kind::Bool, _) => return Err(bad_literal(shown, "true or false")),
            (Kind::ColumnTime, _) => return Err(ScimError::internal("column time literal")),
        };
        let ordered = |d: &dyn Dialect| {
            if kind.is_text() {
                d.text_order(col)
            } else {
                col.to_string()
            }
        };
        let sql = match op {
            CompareOp::Eq | CompareOp::Ne => format!("{col} = {}", self.bind(param)),
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
                if kind == Kind::Bool {
                    return Err(ScimError::invalid_filter(format!(
                        "'{shown}' is boolean and cannot be ordered"
                    )));
                }
                let sym = match op {
                    CompareOp::Gt => ">",
                    CompareOp::Ge => ">=",
                    CompareOp::Lt => "<",
                    _ => "<=",
                };
                format!("{} {sym} {}", ordered(self.d), self.bind(param))
            }
            CompareOp::Sw | CompareOp::Co | CompareOp::Ew => {
                let SqlParam::Text(s) = param else {
                    return Err(ScimError::invalid_filter(format!(
                        "'{shown}' is not a string; co, sw and ew need one"
                    )));
                };
                match op {
                    // A range rather than a function call so the index can serve it.
                    CompareOp::Sw if s.is_empty() => format!("{col} IS NOT NULL"),
                    CompareOp::Sw => {
                        let lo = self.text(&s);
                        match prefix_successor(&s) {
                            Some(hi) => {
                                let hi = self.text(&hi);
                                let c = ordered(self.d);
                                format!("{c} >= {lo} AND {c} < {hi}")
                            }
                            None => format!("{} >= {lo}", ordered(self.d)),
                        }
                    }
                    _ => {
                        let ends_with = op == CompareOp::Ew;
                        let candidates = match row {
                            Some(alias) if s.chars().count() >= TRIGRAM => {
                                let q = self.d.trigram_query(&s, ends_with, self.stats);
                                let q = self.text(&q);
                                Some(self.d.trigram_candidates(alias, col, &q))
                            }
                            _ => None,
                        };
                        let p = self.text(&s);
                        let exact = if ends_with {
                            self.d.ends_with(col, &p)
                        } else {
                            self.d.contains(col, &p)
                        };
                        match candidates {
                            Some(c) => format!("{c} AND {exact}"),
                            None => exact,
                        }
                    }
                }
            }
        };
        Ok(sql)
    }

    /// A comparison with a microsecond column. A literal with a finer fraction lies
    /// strictly between two column values, so it equals none of them and the
    /// ordering tests round it to the microsecond below.
    fn column_time_test(
        &mut self,
        col: &str,
        op: CompareOp,
        value: &Literal,
        shown: &str,
    ) -> ScimResult<String> {
        let Literal::String(s) = value else {
            return Err(bad_literal(shown, "a dateTime string"));
        };
        let t = chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|_| bad_literal(shown, "an RFC 3339 dateTime"))?
            .with_timezone(&chrono::Utc);
        let exact = t.nanosecond() % 1000 == 0;
        if !exact && matches!(op, CompareOp::Eq | CompareOp::Ne) {
            return Ok(self.constant(false));
        }
        let p = self.text(&crate::db_time(t));
        let col = self.d.text_order(col);
        Ok(match (op, exact) {
            (CompareOp::Eq | CompareOp::Ne, _) => format!("{col} = {p}"),
            (CompareOp::Gt, true) => format!("{col} > {p}"),
            (CompareOp::Ge, true) => format!("{col} >= {p}"),
            (CompareOp::Gt | CompareOp::Ge, false) => format!("{col} > {p}"),
            (CompareOp::Lt, true) => format!("{col} < {p}"),
            (CompareOp::Le, true) | (CompareOp::Lt | CompareOp::Le, false) => {
                format!("{col} <= {p}")
            }
            (CompareOp::Co | CompareOp::Sw | CompareOp::Ew, _) => {
                return Err(ScimError::invalid_filter(format!(
                    "co, sw and ew are not defined for dateTime attribute '{shown}'"
                )))
            }
        })
    }

    fn value_path(&mut self, path: &AttrPath, inner: &Filter) -> ScimResult<String> {
        let shown = display_path(path);
        let scope = match self.name(path)? {
            Named::Membership(side, None) => Scope::Member(side),
            Named::Meta(None) => Scope::Meta,
            Named::Index {
                urn,
                attr,
                sub: None,
            } if attr.ty == AttrType::Complex => Scope::Element {
                urn,
                attr,
                alias: "e",
            },
            _ => {
                return Err(ScimError::invalid_filter(format!(
                    "value filter on '{shown}', which is not a complex attribute"
                )))
            }
        };
        match scope {
            Scope::Member(side) => {
                let test = self.scoped(inner, scope)?;
                Ok(self.membership_rows(side, Scope::Top, Some(&test)))
            }
            Scope::Meta => self.scoped(inner, scope),
            Scope::Element { urn, attr, .. } => self.element_filter(urn, attr, inner, scope),
            Scope::Top => Err(ScimError::internal("value path scope")),
        }
    }

    /// `attr[inner]` on an indexed complex attribute: some element (rows of `e`
    /// sharing res_id and elem) satisfies `inner`. When `inner` is a conjunction
    /// with a positive comparison, that comparison picks the rows of `e` directly,
    /// so the search starts from an index lookup rather than from every element.
    fn element_filter(
        &mut self,
        urn: Option<&'a str>,
        attr: &'a AttributeDef,
        inner: &Filter,
        scope: Scope<'a>,
    ) -> ScimResult<String> {
        let mut conjuncts = Vec::new();
        flatten_and(inner, &mut conjuncts);
        let rt = self.rtype();
        let mut driver = None;
        for (k, c) in conjuncts.iter().enumerate() {
            if let Some(found) = self.driving_test(c, scope)? {
                driver = Some((k, found));
                break;
            }
        }
        let by_trigrams = driver.as_ref().is_some_and(|(_, (_, t))| *t);
        let mut parts = Vec::new();
        match &driver {
            Some((_, (sql, _))) => parts.push(sql.clone()),
            None => {
                let list: Vec<String> = attr
                    .sub_attributes
                    .iter()
                    .map(|s| path_of(urn, &attr.name, Some(&s.name)))
                    .collect();
                let list: Vec<String> = list.iter().map(|p| self.text(p)).collect();
                parts.push(format!("e.path IN ({})", list.join(", ")));
            }
        }
        for (k, c) in conjuncts.iter().enumerate() {
            if driver.as_ref().is_some_and(|(d, _)| *d == k) {
                continue;
            }
            parts.push(self.scoped(c, scope)?);
        }
        let (rtype, _) = self.row_keys("e", by_trigrams);
        Ok(format!(
            "r.id IN (SELECT e.res_id FROM attr_index e WHERE {rtype} = {rt} AND {})",
            parts.join(" AND ")
        ))
    }

    /// The type and path columns of attr_index alias `alias`, kept from being index
    /// keys when the trigram index picks the rows.
    fn row_keys(&self, alias: &str, by_trigrams: bool) -> (String, String) {
        let (rtype, path) = (format!("{alias}.rtype"), format!("{alias}.path"));
        if by_trigrams {
            (self.d.unindexed(&rtype), self.d.unindexed(&path))
        } else {
            (rtype, path)
        }
    }

    /// For a positive leaf on a sub-attribute of the element in scope: the condition
    /// on `e` itself selecting the rows that satisfy it, and whether it takes them
    /// from the trigram index.
    fn driving_test(&mut self, f: &Filter, scope: Scope<'a>) -> ScimResult<Option<(String, bool)>> {
        let (path, op, value) = match f {
            Filter::Compare { path, op, value } => (path, Some(*op), value),
            Filter::Present(path) => (path, None, &Literal::Null),
            _ => return Ok(None),
        };
        if matches!(op, Some(CompareOp::Ne)) || (op.is_some() && *value == Literal::Null) {
            return Ok(None);
        }
        let Target::Index { path: ipath, kind } = self.target(path, scope, op.is_none())? else {
            return Ok(None);
        };
        let p = self.text(&ipath);
        Ok(Some(match op {
            None if kind.is_text() => (
                format!("e.path = {p} AND {} <> ''", kind.index_column("e")),
                false,
            ),
            None => (format!("e.path = {p}"), false),
            Some(op) => {
                let col = kind.index_column("e");
                let by_trigrams = substring_lookup(op, kind, value);
                let row = by_trigrams.then_some("e");
                let test = self.test(&col, row, kind, op, value, &display_path(path))?;
                let (_, pathcol) = self.row_keys("e", by_trigrams);
                (format!("{pathcol} = {p} AND {test}"), by_trigrams)
            }
        }))
    }

    /// Resolve a top-level path and say where it lives.
    fn name(&self, path: &AttrPath) -> ScimResult<Named<'a>> {
        let res = self
            .registry
            .resolve(self.rt, path)
            .map_err(|e| ScimError::invalid_filter(e.detail))?;
        Ok(match res.schema {
            None if res.attr.name.eq_ignore_ascii_case("id") => Named::Id,
            None if res.attr.name.eq_ignore_ascii_case("meta") => Named::Meta(res.sub),
            None => Named::Index {
                urn: None,
                attr: res.attr,
                sub: res.sub,
            },
            Some(schema) if is_membership(schema, res.attr) => {
                let side = if res.attr.name.eq_ignore_ascii_case("members") {
                    Side::Group
                } else {
                    Side::User
                };
                Named::Membership(side, res.sub)
            }
            Some(schema) => Named::Index {
                urn: res.extension.then_some(schema),
                attr: res.attr,
                sub: res.sub,
            },
        })
    }

    /// Where the values named by `path` (relative to `scope`) are. `presence`: the
    /// caller asks only whether there is a value, so a complex attribute stands for
    /// all its sub-attributes rather than for its `value`.
    fn target(&self, path: &AttrPath, scope: Scope<'a>, presence: bool) -> ScimResult<Target> {
        let shown = display_path(path);
        let relative = |parent: &'a AttributeDef| -> ScimResult<&'a AttributeDef> {
            if path.urn.is_some() || path.sub_attr.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "'{shown}' inside a value filter must name a sub-attribute of '{}'",
                    parent.name
                )));
            }
            parent.sub(&path.attr).ok_or_else(|| {
                ScimError::invalid_filter(format!(
                    "unknown attribute '{}.{}'",
                    parent.name, path.attr
                ))
            })
        };
        match scope {
            Scope::Top => {}
            Scope::Element { urn, attr, .. } => {
                let sub = relative(attr)?;
                return index_target(urn, attr, Some(sub), presence, &shown);
            }
            Scope::Member(side) => {
                let sub = relative(self.membership_def(side)?)?;
                return membership_target(side, Some(sub), &shown);
            }
            Scope::Meta => {
                let meta = self
                    .registry
                    .common_attributes()
                    .iter()
                    .find(|a| a.name == "meta")
                    .ok_or_else(|| ScimError::internal("meta is not defined"))?;
                return meta_target(Some(relative(meta)?), presence, &shown);
            }
        }
        match self.name(path)? {
            Named::Id => Ok(Target::Column {
                expr: "r.id",
                kind: Kind::Text { case_exact: true },
            }),
            Named::Meta(sub) => meta_target(sub, presence, &shown),
            Named::Membership(side, sub) => membership_target(side, sub, &shown),
            Named::Index { urn, attr, sub } => index_target(urn, attr, sub, presence, &shown),
        }
    }

    fn membership_def(&self, side: Side) -> ScimResult<&'a AttributeDef> {
        let name = match side {
            Side::Group => "members",
            Side::User => "groups",
        };
        self.registry
            .schema(&self.rt.schema)
            .and_then(|s| s.attr(name))
            .ok_or_else(|| ScimError::internal(format!("'{name}' is not defined")))
    }

    fn sort(&mut self, path: &AttrPath) -> ScimResult<String> {
        let shown = display_path(path);
        let not_sortable = || ScimError::invalid_value(format!("cannot sort by '{shown}'"));
        let named = self
            .name(path)
            .map_err(|_| ScimError::invalid_value(format!("unknown sortBy attribute '{shown}'")))?;
        let (urn, attr, sub) = match named {
            Named::Id => return Ok("r.id".to_string()),
            Named::Meta(sub) => {
                return match meta_target(sub, false, &shown) {
                    Ok(Target::Column { expr, .. }) => Ok(expr.to_string()),
                    _ => Err(not_sortable()),
                }
            }
            Named::Membership(..) => return Err(not_sortable()),
            Named::Index { urn, attr, sub } => (urn, attr, sub),
        };
        let sub = match sub {
            Some(s) => Some(s),
            None if attr.ty == AttrType::Complex && attr.multi_valued => {
                Some(attr.sub("value").ok_or_else(not_sortable)?)
            }
            None if attr.ty == AttrType::Complex => return Err(not_sortable()),
            None => None,
        };
        let def = sub.unwrap_or(attr);
        let kind = Kind::of(def).ok_or_else(not_sortable)?;
        let p = self.text(&path_of(urn, &attr.name, sub.map(|s| s.name.as_str())));
        let col = kind.index_column("i");
        let order = if !attr.multi_valued {
            String::new()
        } else {
            let primary = attr
                .sub("primary")
                .filter(|p| p.ty == AttrType::Boolean && attr.ty == AttrType::Complex);
            let first = match primary {
                Some(pd) => {
                    let pp = self.text(&path_of(urn, &attr.name, Some(&pd.name)));
                    format!(
                        "EXISTS (SELECT 1 FROM attr_index q WHERE q.res_id = i.res_id AND q.path = {pp} AND q.elem = i.elem AND q.v_bool = {}) DESC, ",
                        self.d.bool_literal(true)
                    )
                }
                None => String::new(),
            };
            format!(" ORDER BY {first}i.elem, {col}")
        };
        let sql = format!(
            "(SELECT {col} FROM attr_index i WHERE i.res_id = r.id AND i.path = {p}{order} LIMIT 1)"
        );
        Ok(if kind.is_text() {
            self.d.text_order(&sql)
        } else {
            sql
        })
    }
}

fn index_target(
    urn: Option<&str>,
    attr: &AttributeDef,
    sub: Option<&AttributeDef>,
    presence: bool,
    shown: &str,
) -> ScimResult<Target> {
    let leaf = match sub {
        Some(s) => Some(s),
        None if attr.ty != AttrType::Complex => None,
        None if presence => {
            return Ok(Target::IndexAny {
                paths: attr
                    .sub_attributes
                    .iter()
                    .map(|s| path_of(urn, &attr.name, Some(&s.name)))
                    .collect(),
            })
        }
        None => Some(attr.sub("value").ok_or_else(|| {
            ScimError::invalid_filter(format!(
                "'{shown}' is complex; compare one of its sub-attributes"
            ))
        })?),
    };
    let def = leaf.unwrap_or(attr);
    let kind = Kind::of(def).ok_or_else(|| not_filterable(shown))?;
    Ok(Target::Index {
        path: path_of(urn, &attr.name, leaf.map(|s| s.name.as_str())),
        kind,
    })
}

fn membership_target(side: Side, sub: Option<&AttributeDef>, shown: &str) -> ScimResult<Target> {
    // Member and group ids are compared exactly whatever the schema says: they are
    // server-assigned identifiers, like `id`.
    let id = Kind::Text { case_exact: true };
    let sub = sub.map(|s| s.name.to_ascii_lowercase());
    let col = match (side, sub.as_deref()) {
        (Side::Group, None | Some("value")) => ("m.member_id", id),
        (Side::Group, Some("type")) => ("lower(m.member_type)", Kind::Text { case_exact: false }),
        (Side::User, None | Some("value")) => ("m.group_id", id),
        _ => return Err(not_filterable(shown)),
    };
    Ok(Target::Membership { side, col })
}

fn meta_target(sub: Option<&AttributeDef>, presence: bool, shown: &str) -> ScimResult<Target> {
    let Some(sub) = sub else {
        return if presence {
            Ok(Target::Constant(true))
        } else {
            Err(ScimError::invalid_filter(format!(
                "'{shown}' is complex; compare one of its sub-attributes"
            )))
        };
    };
    let (expr, kind) = match sub.name.as_str() {
        "created" => ("r.created", Kind::ColumnTime),
        "lastModified" => ("r.modified", Kind::ColumnTime),
        "resourceType" => ("r.rtype", Kind::Text { case_exact: true }),
        _ => return Err(not_filterable(shown)),
    };
    Ok(Target::Column { expr, kind })
}

/// The statements of one search over `resources r`, shared by every backend: the
/// total, then (unless `count` is 0) one page.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSql {
    pub count_sql: String,
    pub page_sql: Option<String>,
    /// Parameters of `page_sql`; `count_sql` takes the first `count_params` of them.
    pub params: Vec<SqlParam>,
    pub count_params: usize,
    /// The page query walks backwards (cursor `before`): reverse its rows.
    pub reversed: bool,
}

/// Assemble a search (filter, sortBy, sortOrder, startIndex, count) from the
/// compiled filter and sort, in `d`'s spelling. The page query selects
/// `r.id, r.doc, r.version` and the row's sort key as text. Errors are the compiler's (400 invalidFilter /
/// invalidValue).
/// Whether a filter finds its rows by equality lookups in the value index — a few
/// rows whatever the size of the directory — rather than by scanning an
/// attribute's values (`co`, `ew`, ranges, `pr`, `ne`, `not`) or a boolean's half
/// of them. An `and` is as selective as its better side, an `or` as its worse.
/// Used to keep lookups off the connections that slow searches occupy.
pub fn is_lookup(f: &Filter) -> bool {
    match f {
        Filter::Compare {
            op: CompareOp::Eq,
            value,
            ..
        } => !matches!(value, Literal::Bool(_) | Literal::Null),
        Filter::And(a, b) => is_lookup(a) || is_lookup(b),
        Filter::Or(a, b) => is_lookup(a) && is_lookup(b),
        Filter::ValuePath { filter, .. } => is_lookup(filter),
        _ => false,
    }
}

pub fn search_sql(
    d: &dyn Dialect,
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    q: &crate::Query,
    stats: Option<&dyn TrigramStats>,
) -> ScimResult<SearchSql> {
    let mut params = vec![SqlParam::Text(rt.name.clone())];
    let rtype = d.placeholder(1, &params[0]);
    let where_sql = match &q.filter {
        None => format!("r.rtype = {rtype}"),
        Some(f) => {
            let frag = compile_filter_with(d, registry, rt, f, params.len() + 1, stats)?;
            params.extend(frag.params);
            // The filter's index lookups are the selective part, not the type —
            // unless the filter is on the timestamps, whose (rtype, created|modified)
            // indexes need the type as their first key.
            let rtype_col = if on_timestamps(f) {
                "r.rtype".to_string()
            } else {
                d.unindexed("r.rtype")
            };
            format!("{rtype_col} = {rtype} AND ({})", frag.sql)
        }
    };
    // Unfiltered: the per-type count the triggers keep (`type_counts`, ddl.rs).
    let count_sql = match &q.filter {
        None => d.type_total(&rtype),
        _ => format!("SELECT count(*) FROM resources r WHERE {where_sql}"),
    };
    let count_params = params.len();
    if q.count == 0 {
        return Ok(SearchSql {
            count_sql,
            page_sql: None,
            params,
            count_params,
            reversed: false,
        });
    }
    let mut from = "resources r".to_string();
    let mut page_where = where_sql;
    // Set when the page is read from the sort attribute's index: its column.
    let mut driven: Option<&'static str> = None;
    let (terms, key_expr) = match index_sort(registry, rt, q) {
        Some((path, kind)) => {
            // Walk the (rtype, path, value) index in order: a page costs its offset
            // plus its size, not a sort of every resource of the type.
            let p = SqlParam::Text(path);
            let ph = d.placeholder(params.len() + 1, &p);
            params.push(p);
            // Every resource of the type has exactly one row for a required
            // attribute, so the index alone picks the page (skipped rows never
            // touch the documents); see `page_sql` below.
            from = "attr_index s".to_string();
            page_where = format!("s.rtype = {rtype} AND s.path = {ph}");
            let column = if kind == KeyKind::Num {
                "s.v_num"
            } else {
                "s.v_text"
            };
            driven = Some(column);
            let desc = q.sort_order == crate::SortOrder::Descending;
            let terms = vec![
                Term {
                    expr: column.to_string(),
                    desc,
                    kind,
                },
                Term {
                    expr: "s.res_id".to_string(),
                    desc,
                    kind: KeyKind::Text,
                },
            ];
            (terms, format!("CAST({column} AS TEXT)"))
        }
        None => {
            let terms = order_terms(d, registry, rt, q, &mut params)?;
            let key_expr = match &q.sort_by {
                // The value term is the one before the id.
                Some(_) => format!("CAST({} AS TEXT)", terms[terms.len() - 2].expr),
                None => "r.created".to_string(),
            };
            (terms, key_expr)
        }
    };
    let backwards = q.before.is_some();
    if let Some(key) = q.after.as_ref().or(q.before.as_ref()) {
        let cond = keyset_condition(d, &terms, key, backwards, &mut params)?;
        page_where = format!("{page_where} AND ({cond})");
    }
    let order = terms
        .iter()
        .map(|t| {
            let desc = t.desc != backwards;
            format!("{} {}", t.ordered(d), if desc { "DESC" } else { "ASC" })
        })
        .collect::<Vec<_>>()
        .join(", ");
    let limit = SqlParam::Int(i64::try_from(q.count).unwrap_or(i64::MAX));
    let offset = if q.after.is_some() || backwards {
        0
    } else {
        q.start_index.saturating_sub(1)
    };
    let offset = SqlParam::Int(i64::try_from(offset).unwrap_or(i64::MAX));
    let limit_ph = d.placeholder(params.len() + 1, &limit);
    let offset_ph = d.placeholder(params.len() + 2, &offset);
    params.push(limit);
    params.push(offset);
    let page_sql = match driven {
        // Sort the matches' keys only, then read the documents of the page: a sort
        // of every match with its document (a `co` search at 1M users) held tens
        // of MB per query, which the allocator then kept.
        None => {
            let columns = terms
                .iter()
                .enumerate()
                .map(|(i, t)| format!("{} AS o{i}", t.expr))
                .collect::<Vec<_>>()
                .join(", ");
            let outer_order = terms
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let picked = Term {
                        expr: format!("p.o{i}"),
                        desc: t.desc,
                        kind: t.kind,
                    };
                    let desc = t.desc != backwards;
                    format!(
                        "{} {}",
                        picked.ordered(d),
                        if desc { "DESC" } else { "ASC" }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            // A filtered index-paged search counts its matches while it finds
            // them (`count(*) OVER ()`, the rows' fifth column), so the count
            // query, which would find them all again, runs only for a page past
            // the last match (`model::page_total`). A keyset page sees only the
            // rows past its key; an unfiltered total is the type's counter.
            let (counted, total) = if q.filter.is_some() && q.after.is_none() && !backwards {
                (", count(*) OVER () AS n", "p.n")
            } else {
                ("", "CAST(NULL AS BIGINT)")
            };
            format!(
                "SELECT r.id, r.doc, r.version, p.k, {total} FROM \
                 (SELECT r.id AS pid, {key_expr} AS k, {columns}{counted} FROM {from} WHERE {page_where} \
                  ORDER BY {order} LIMIT {limit_ph} OFFSET {offset_ph}) p \
                 CROSS JOIN resources r WHERE r.id = p.pid ORDER BY {outer_order}"
            )
        }
        Some(column) => {
            let outer_order = order.replace(column, "p.v").replace("s.res_id", "p.res_id");
            format!(
                "SELECT r.id, r.doc, r.version, CAST(p.v AS TEXT), CAST(NULL AS BIGINT) FROM \
                 (SELECT s.res_id AS res_id, {column} AS v FROM {from} WHERE {page_where} \
                  ORDER BY {order} LIMIT {limit_ph} OFFSET {offset_ph}) p \
                 CROSS JOIN resources r WHERE r.id = p.res_id ORDER BY {outer_order}"
            )
        }
    };
    Ok(SearchSql {
        count_sql,
        page_sql: Some(page_sql),
        params,
        count_params,
        reversed: backwards,
    })
}

/// Does the top-level `and` chain compare `meta.created` / `meta.lastModified`?
fn on_timestamps(f: &Filter) -> bool {
    match f {
        Filter::And(a, b) => on_timestamps(a) || on_timestamps(b),
        Filter::Compare { path, op, .. } => {
            *op != CompareOp::Ne
                && path.urn.is_none()
                && path.attr.eq_ignore_ascii_case("meta")
                && path.sub_attr.as_deref().is_some_and(|s| {
                    s.eq_ignore_ascii_case("created") || s.eq_ignore_ascii_case("lastModified")
                })
        }
        _ => false,
    }
}

/// Sorting by a required, single-valued, simple attribute kept in attr_index
/// (userName, Group displayName): every resource has exactly one row for it, so
/// an unfiltered search can be driven by that index. Returns its index path and kind.
fn index_sort(
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    q: &crate::Query,
) -> Option<(String, KeyKind)> {
    // With a filter, its index lookups are usually the selective part: matches
    // are found first and sorted, as for any other sort.
    if q.filter.is_some() {
        return None;
    }
    let path = q.sort_by.as_ref()?;
    let res = registry.resolve(rt, path).ok()?;
    let def = res.target();
    let singular = !res.attr.multi_valued && !def.multi_valued;
    // Common attributes (id, meta) live in columns, not in attr_index.
    if res.schema.is_none() || !def.required || !singular {
        return None;
    }
    let kind = match def.ty {
        AttrType::String | AttrType::Reference | AttrType::DateTime => KeyKind::Text,
        AttrType::Integer | AttrType::Decimal => KeyKind::Num,
        _ => return None,
    };
    let urn = if res.extension { res.schema } else { None };
    Some((
        path_of(urn, &res.attr.name, res.sub.map(|s| s.name.as_str())),
        kind,
    ))
}

/// How a sort value is bound back from its text form in a cursor.
#[derive(Debug, Clone, Copy, PartialEq)]
enum KeyKind {
    Text,
    Num,
    Bool,
    /// 0 for rows that have the sort attribute, 1 for rows that do not.
    Flag,
}

/// One ORDER BY term.
struct Term {
    expr: String,
    desc: bool,
    kind: KeyKind,
}

impl Term {
    fn ordered(&self, d: &dyn Dialect) -> String {
        if self.kind == KeyKind::Text {
            d.text_order(&self.expr)
        } else {
            self.expr.clone()
        }
    }
}

/// The ORDER BY of a search: (has-no-value, value, id) when sorted — resources
/// without the attribute last (RFC 7644 §3.4.2.3) — else (created, id).
fn order_terms(
    d: &dyn Dialect,
    registry: &SchemaRegistry,
    rt: &ResourceTypeDef,
    q: &crate::Query,
    params: &mut Vec<SqlParam>,
) -> ScimResult<Vec<Term>> {
    let id = Term {
        expr: "r.id".into(),
        desc: false,
        kind: KeyKind::Text,
    };
    let Some(path) = &q.sort_by else {
        let created = Term {
            expr: "r.created".into(),
            desc: false,
            kind: KeyKind::Text,
        };
        return Ok(vec![created, id]);
    };
    let frag = compile_sort(d, registry, rt, path, params.len() + 1)?;
    params.extend(frag.params);
    let target = registry.resolve(rt, path)?;
    let def = target.target();
    let ty = match def.sub("value") {
        Some(v) if def.ty == AttrType::Complex => v.ty,
        _ => def.ty,
    };
    let kind = match ty {
        AttrType::Integer | AttrType::Decimal => KeyKind::Num,
        AttrType::Boolean => KeyKind::Bool,
        _ => KeyKind::Text,
    };
    let value = Term {
        expr: format!("({})", frag.sql),
        desc: q.sort_order == crate::SortOrder::Descending,
        kind,
    };
    // The resource's own columns are never null: no "missing last" term, so their
    // (rtype, created|modified) indexes can give the order.
    if matches!(frag.sql.as_str(), "r.id" | "r.created" | "r.modified") {
        return Ok(vec![
            Term {
                expr: frag.sql.clone(),
                ..value
            },
            id,
        ]);
    }
    Ok(vec![
        Term {
            expr: format!("(CASE WHEN ({}) IS NULL THEN 1 ELSE 0 END)", frag.sql),
            desc: false,
            kind: KeyKind::Flag,
        },
        value,
        id,
    ])
}

fn key_param(kind: KeyKind, text: &str) -> ScimResult<SqlParam> {
    let bad = || ScimError::invalid_value("the cursor does not belong to this search");
    Ok(match kind {
        KeyKind::Text => SqlParam::Text(text.to_string()),
        KeyKind::Num => SqlParam::Num(text.parse().map_err(|_| bad())?),
        KeyKind::Bool => SqlParam::Bool(matches!(text, "1" | "true")),
        KeyKind::Flag => SqlParam::Int(text.parse().map_err(|_| bad())?),
    })
}

/// Rows strictly after (or, backwards, before) `key` in the order of `terms`:
/// the lexicographic comparison `(t1, t2, …) > (k1, k2, …)` spelled out, since the
/// terms mix directions. A key without a value skips the value term: every row
/// without one compares equal there.
fn keyset_condition(
    d: &dyn Dialect,
    terms: &[Term],
    key: &crate::SortKey,
    backwards: bool,
    params: &mut Vec<SqlParam>,
) -> ScimResult<String> {
    let mut bound: Vec<(&Term, String)> = Vec::new();
    let last = terms.len().saturating_sub(1);
    for (i, t) in terms.iter().enumerate() {
        let text = match t.kind {
            KeyKind::Flag => Some(if key.value.is_none() { "1" } else { "0" }.to_string()),
            // The last term is always the id.
            _ if i == last => Some(key.id.clone()),
            _ => key.value.clone(),
        };
        let Some(text) = text else { continue };
        let p = key_param(t.kind, &text)?;
        let ph = d.placeholder(params.len() + 1, &p);
        params.push(p);
        bound.push((t, ph));
    }
    let mut alternatives = Vec::new();
    for i in 0..bound.len() {
        let mut parts: Vec<String> = bound[..i]
            .iter()
            .map(|(t, ph)| format!("{} = {ph}", t.ordered(d)))
            .collect();
        let (t, ph) = &bound[i];
        let beyond = if t.desc != backwards { "<" } else { ">" };
        parts.push(format!("{} {beyond} {ph}", t.ordered(d)));
        alternatives.push(format!("({})", parts.join(" AND ")));
    }
    Ok(alternatives.join(" OR "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{Postgres, Sqlite};
    use scim_proto::filter::{parse_attr_path, parse_filter};
    use scim_proto::ScimType;

    fn compile(d: &dyn Dialect, rt: &str, filter: &str, first: usize) -> ScimResult<SqlFragment> {
        let reg = SchemaRegistry::standard();
        let rt = reg
            .resource_type(rt)
            .ok_or_else(|| ScimError::internal("no such resource type"))?;
        compile_filter(d, &reg, rt, &parse_filter(filter)?, first)
    }

    fn sql(d: &dyn Dialect, rt: &str, filter: &str) -> (String, Vec<SqlParam>) {
        match compile(d, rt, filter, 2) {
            Ok(f) => (f.sql, f.params),
            Err(e) => panic!("{filter}: {e}"),
        }
    }

    fn sort(d: &dyn Dialect, rt: &str, path: &str) -> ScimResult<SqlFragment> {
        let reg = SchemaRegistry::standard();
        let rt = reg
            .resource_type(rt)
            .ok_or_else(|| ScimError::internal("no such resource type"))?;
        compile_sort(d, &reg, rt, &parse_attr_path(path)?, 1)
    }

    fn t(s: &str) -> SqlParam {
        SqlParam::Text(s.to_string())
    }

    #[test]
    fn eq_is_an_index_lookup_in_both_dialects() {
        let (s, p) = sql(&Sqlite, "User", r#"userName eq "BJensen""#);
        assert_eq!(
            s,
            "r.id IN (SELECT i.res_id FROM attr_index i WHERE i.rtype = ?2 AND i.path = ?3 AND i.v_text = ?4)"
        );
        assert_eq!(p, vec![t("User"), t("username"), t("bjensen")]);
        let (s, _) = sql(&Postgres, "User", r#"userName eq "BJensen""#);
        assert_eq!(
            s,
            "r.id IN (SELECT i.res_id FROM attr_index i WHERE i.rtype = $2::text AND i.path = $3::text AND i.v_text = $4::text)"
        );
    }

    #[test]
    fn placeholders_start_at_the_given_index_and_are_shared() {
        let f = compile(
            &Sqlite,
            "User",
            r#"userName eq "a" or displayName eq "a""#,
            7,
        )
        .expect("test input");
        assert_eq!(
            f.sql,
            "(r.id IN (SELECT i.res_id FROM attr_index i WHERE i.rtype = ?7 AND i.path = ?8 AND i.v_text = ?9) \
             OR r.id IN (SELECT i.res_id FROM attr_index i WHERE i.rtype = ?7 AND i.path = ?10 AND i.v_text = ?9))"
        );
        assert_eq!(
            f.params,
            vec![t("User"), t("username"), t("a"), t("displayname")]
        );
    }

    #[test]
    fn sw_is_a_range_and_ne_negates() {
        let (s, p) = sql(&Sqlite, "User", r#"userName sw "AB" and emails ne "x@Y""#);
        assert_eq!(
            s,
            "(r.id IN (SELECT i.res_id FROM attr_index i WHERE i.rtype = ?2 AND i.path = ?3 AND i.v_text >= ?4 AND i.v_text < ?5) \
             AND NOT (r.id IN (SELECT i.res_id FROM attr_index i WHERE i.rtype = ?2 AND i.path = ?6 AND i.v_text = ?7)))"
        );
        assert_eq!(
            p,
            vec![
                t("User"),
                t("username"),
                t("ab"),
                t("ac"),
                t("emails.value"),
                t("x@y")
            ]
        );
        let (s, _) = sql(&Postgres, "User", r#"userName sw "ab""#);
        assert!(
            s.ends_with(r#"i.v_text COLLATE "C" >= $4::text AND i.v_text COLLATE "C" < $5::text)"#),
            "{s}"
        );
    }

    #[test]
    fn co_and_ew_use_dialect_functions() {
        let (s, _) = sql(&Sqlite, "User", r#"title co "Vp" or title ew "p""#);
        assert!(s.contains("instr(i.v_text, ?4) > 0"), "{s}");
        assert!(
            s.contains("(length(?5) = 0 OR substr(i.v_text, -length(?5)) = ?5)"),
            "{s}"
        );
        let (s, _) = sql(&Postgres, "User", r#"title co "Vp" or title ew "p""#);
        assert!(s.contains("strpos(i.v_text, $4::text) > 0"), "{s}");
        assert!(
            s.contains("right(i.v_text, length($5::text)) = $5::text"),
            "{s}"
        );
    }

    #[test]
    fn value_path_drives_from_a_positive_condition() {
        let (s, p) = sql(
            &Sqlite,
            "User",
            r#"emails[type eq "work" and not (value co "x")]"#,
        );
        assert_eq!(
            s,
            "r.id IN (SELECT e.res_id FROM attr_index e WHERE e.rtype = ?2 AND e.path = ?3 AND e.v_text = ?4 \
             AND NOT (EXISTS (SELECT 1 FROM attr_index i WHERE i.res_id = e.res_id AND i.path = ?5 AND i.elem = e.elem AND instr(i.v_text, ?6) > 0)))"
        );
        assert_eq!(
            p,
            vec![
                t("User"),
                t("emails.type"),
                t("work"),
                t("emails.value"),
                t("x")
            ]
        );
        // Nothing positive to start from: every element is a candidate.
        let (s, _) = sql(&Postgres, "User", r#"emails[type ne "work"]"#);
        assert!(
            s.starts_with(
                "r.id IN (SELECT e.res_id FROM attr_index e WHERE e.rtype = $2::text AND e.path IN ($3::text, $4::text, $5::text, $6::text) AND NOT ("
            ),
            "{s}"
        );
    }

    #[test]
    fn presence_and_null() {
        let (s, _) = sql(&Sqlite, "User", r#"nickName pr and active eq null"#);
        assert_eq!(
            s,
            "(r.id IN (SELECT i.res_id FROM attr_index i WHERE i.rtype = ?2 AND i.path = ?3 AND i.v_text <> '') \
             AND NOT (r.id IN (SELECT i.res_id FROM attr_index i WHERE i.rtype = ?2 AND i.path = ?4)))"
        );
        let (s, p) = sql(
            &Sqlite,
            "User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager pr",
        );
        assert!(s.contains("i.path IN (?3, ?4, ?5)"), "{s}");
        assert_eq!(
            p[1],
            t("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager.value")
        );
    }

    #[test]
    fn columns_and_membership() {
        let (s, p) = sql(
            &Sqlite,
            "User",
            r#"id eq "AbC" and meta.lastModified ge "2024-01-01T01:00:00+01:00""#,
        );
        assert_eq!(s, "(r.id = ?2 AND r.modified >= ?3)");
        assert_eq!(p, vec![t("AbC"), t("2024-01-01T00:00:00.000000Z")]);
        // Between two microseconds: never equal, and `ge` rounds down with `>`.
        let (s, _) = sql(
            &Postgres,
            "User",
            r#"meta.created eq "2024-01-01T00:00:00.0000001Z" or meta.created ge "2024-01-01T00:00:00.0000001Z""#,
        );
        assert_eq!(s, r#"(FALSE OR r.created COLLATE "C" > $2::text)"#);
        let (s, p) = sql(
            &Sqlite,
            "Group",
            r#"members[value eq "u1" and type eq "User"] or members.value ne "u2""#,
        );
        assert_eq!(
            s,
            "(r.id IN (SELECT m.group_id FROM members m WHERE ((m.member_id = ?2) AND (lower(m.member_type) = ?3))) \
             OR NOT (r.id IN (SELECT m.group_id FROM members m WHERE m.member_id = ?4)))"
        );
        assert_eq!(p, vec![t("u1"), t("user"), t("u2")]);
        let (s, _) = sql(&Postgres, "User", r#"groups.value eq "g1""#);
        assert_eq!(
            s,
            "r.id IN (SELECT m.member_id FROM members m WHERE m.group_id = $2::text)"
        );
        let (s, _) = sql(&Sqlite, "User", r#"meta.resourceType eq "User""#);
        assert_eq!(s, "r.rtype = ?2");
    }

    #[test]
    fn unsupported_paths_are_invalid_filters() {
        for (rt, f) in [
            ("User", r#"meta.version eq "x""#),
            ("Group", r#"members.display eq "x""#),
            ("User", r#"groups.display eq "x""#),
            ("User", r#"title gt 3"#),
            (
                "User",
                r#"emails[value eq "x"] and emails[type[value eq "y"]]"#,
            ),
        ] {
            let e = compile(&Sqlite, rt, f, 1).err();
            assert_eq!(
                e.as_ref().map(|e| (e.status, e.scim_type)),
                Some((400, Some(ScimType::InvalidFilter))),
                "{f}: {e:?}"
            );
        }
    }

    #[test]
    fn sort_expressions() {
        assert_eq!(sort(&Sqlite, "User", "id").expect("test input").sql, "r.id");
        assert_eq!(
            sort(&Sqlite, "User", "meta.created")
                .expect("test input")
                .sql,
            "r.created"
        );
        let f = sort(&Sqlite, "User", "userName").expect("test input");
        assert_eq!(
            f.sql,
            "(SELECT i.v_text FROM attr_index i WHERE i.res_id = r.id AND i.path = ?1 LIMIT 1)"
        );
        let f = sort(&Sqlite, "User", "emails").expect("test input");
        assert_eq!(
            f.sql,
            "(SELECT i.v_text FROM attr_index i WHERE i.res_id = r.id AND i.path = ?1 ORDER BY \
             EXISTS (SELECT 1 FROM attr_index q WHERE q.res_id = i.res_id AND q.path = ?2 AND q.elem = i.elem AND q.v_bool = 1) DESC, \
             i.elem, i.v_text LIMIT 1)"
        );
        assert_eq!(f.params, vec![t("emails.value"), t("emails.primary")]);
        let f = sort(&Postgres, "User", "active").expect("test input");
        assert_eq!(
            f.sql,
            "(SELECT i.v_bool FROM attr_index i WHERE i.res_id = r.id AND i.path = $1::text LIMIT 1)"
        );
        let f = sort(&Postgres, "User", "name.familyName").expect("test input");
        assert!(f.sql.ends_with(r#"LIMIT 1) COLLATE "C""#), "{}", f.sql);
        for (rt, p) in [
            ("User", "nope"),
            ("User", "name"),
            ("Group", "members"),
            ("User", "meta.version"),
        ] {
            let e = sort(&Sqlite, rt, p).err();
            assert_eq!(
                e.as_ref().map(|e| (e.status, e.scim_type)),
                Some((400, Some(ScimType::InvalidValue))),
                "{p}: {e:?}"
            );
        }
    }

    #[test]
    fn lookups_are_equality_filters() {
        let lookup = |f: &str| is_lookup(&scim_proto::filter::parse_filter(f).expect("filter"));
        assert!(lookup(r#"userName eq "bjensen""#));
        assert!(lookup(r#"emails[type eq "work" and value eq "a@b.c"]"#));
        assert!(lookup(r#"userName eq "a" or externalId eq "b""#));
        assert!(lookup(r#"userName eq "a" and title co "x""#));
        assert!(!lookup(r#"userName eq "a" or title co "x""#));
        assert!(!lookup(r#"title co "x""#));
        assert!(!lookup("active eq true"));
        assert!(!lookup("title pr"));
        assert!(!lookup(r#"not (userName eq "a")"#));
        assert!(!lookup(r#"meta.lastModified gt "2026-01-01T00:00:00Z""#));
    }

    #[test]
    fn prefix_successors() {
        assert_eq!(prefix_successor("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        assert_eq!(prefix_successor(""), None);
    }
}
