//! Human and machine output: aligned tables (bold headers on a terminal only),
//! pretty JSON, or one JSON document per line.

use crate::cli::OutputFormat;
use crate::paths::{get, AttrPath};
use serde_json::Value;
use std::io::{IsTerminal, Write};

/// What kind of resource a list holds, for its table columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    User,
    Group,
    Device,
}

fn columns(kind: Kind) -> &'static [(&'static str, &'static str)] {
    match kind {
        Kind::User => &[
            ("ID", "id"),
            ("USERNAME", "userName"),
            ("DISPLAY NAME", "displayName"),
            ("EMAIL", "emails.value"),
            ("ACTIVE", "active"),
        ],
        Kind::Group => &[
            ("ID", "id"),
            ("DISPLAY NAME", "displayName"),
            ("MEMBERS", "members"),
        ],
        Kind::Device => &[
            ("ID", "id"),
            ("USER ID", "userId"),
            ("DISPLAY NAME", "displayName"),
            ("STATUS", "status"),
            ("CREATED", "creationDate"),
        ],
    }
}

/// A value as one table cell: strings bare, arrays by their length.
pub(crate) fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a.len().to_string(),
        Some(other) => other.to_string(),
    }
}

fn row(kind: Kind, item: &Value) -> Vec<String> {
    columns(kind)
        .iter()
        .map(|(_, path)| match AttrPath::parse(path) {
            Ok(p) => cell(get(item, &p)),
            Err(_) => String::new(),
        })
        .collect()
}

/// Columns padded to their widest cell; the last column is not padded.
pub(crate) fn render_table(headers: &[&str], rows: &[Vec<String>], color: bool) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            s.push_str(c);
            if i < last {
                s.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        s.trim_end().to_string()
    };
    let head = line(headers.to_vec());
    let mut out = if color {
        format!("\x1b[1m{head}\x1b[0m\n")
    } else {
        format!("{head}\n")
    };
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// Every leaf of a resource as `path value` pairs, for showing one resource.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        Value::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        Value::Array(a) => out.push(vec![
            prefix.to_string(),
            a.iter()
                .map(|x| cell(Some(x)))
                .collect::<Vec<_>>()
                .join(", "),
        ]),
        other => out.push(vec![prefix.to_string(), cell(Some(other))]),
    }
}

pub(crate) fn color_wanted() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub(crate) fn format_list(kind: Kind, items: &[Value], fmt: OutputFormat, color: bool) -> String {
    match fmt {
        OutputFormat::Table => {
            let headers: Vec<&str> = columns(kind).iter().map(|(h, _)| *h).collect();
            let rows: Vec<Vec<String>> = items.iter().map(|i| row(kind, i)).collect();
            render_table(&headers, &rows, color)
        }
        OutputFormat::Json => pretty(&Value::Array(items.to_vec())),
        OutputFormat::Jsonl => items.iter().map(|i| format!("{i}\n")).collect(),
    }
}

pub(crate) fn format_one(item: &Value, fmt: OutputFormat, color: bool) -> String {
    match fmt {
        OutputFormat::Table => {
            let mut rows = Vec::new();
            flatten("", item, &mut rows);
            render_table(&["ATTRIBUTE", "VALUE"], &rows, color)
        }
        OutputFormat::Json => pretty(item),
        OutputFormat::Jsonl => format!("{item}\n"),
    }
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}

/// Write to stdout; a closed pipe (`scim users list | head`) is not an error.
pub(crate) fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_is_aligned_and_plain_without_color() {
        let users = vec![
            json!({"id": "1", "userName": "bjensen", "emails": [{"value": "b@x"}], "active": true}),
            json!({"id": "22222", "userName": "al", "displayName": "Al Z"}),
        ];
        let t = format_list(Kind::User, &users, OutputFormat::Table, false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "ID     USERNAME  DISPLAY NAME  EMAIL  ACTIVE");
        assert_eq!(lines[1], "1      bjensen                 b@x    true");
        assert_eq!(lines[2], "22222  al        Al Z");
        assert!(!t.contains('\x1b'));
        assert!(format_list(Kind::User, &users, OutputFormat::Table, true).starts_with("\x1b[1m"));
    }

    #[test]
    fn json_and_jsonl() {
        let items = vec![json!({"id": "1"}), json!({"id": "2"})];
        assert_eq!(
            format_list(Kind::Group, &items, OutputFormat::Jsonl, false),
            "{\"id\":\"1\"}\n{\"id\":\"2\"}\n"
        );
        let j: Value =
            serde_json::from_str(&format_list(Kind::Group, &items, OutputFormat::Json, false))
                .unwrap();
        assert_eq!(j, json!([{"id": "1"}, {"id": "2"}]));
    }

    #[test]
    fn one_resource_as_attribute_rows() {
        let g = json!({"id": "g", "members": [{"value": "u1"}], "schemas": ["s"]});
        let t = format_one(&g, OutputFormat::Table, false);
        assert!(t.contains("members[0].value  u1"), "{t}");
        assert!(t.contains("schemas           s"), "{t}");
        let groups = vec![g];
        let t = format_list(Kind::Group, &groups, OutputFormat::Table, false);
        assert!(t.lines().nth(1).unwrap().ends_with("1"), "{t}");
    }
}
