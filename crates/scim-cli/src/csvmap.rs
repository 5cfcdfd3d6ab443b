//! CSV rows to SCIM resources and back. The header row names an attribute path
//! per column; the server's /Schemas say which attributes are multi-valued and
//! which are booleans or numbers (with a built-in fallback for the core ones).
//! In a groups file the `members` column holds userNames separated by `;`.

use crate::error::{err, Result};
use crate::paths::{get, set, AttrPath};
use serde_json::{Map, Value};
use std::collections::HashMap;

pub(crate) const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(crate) const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Users' CSV columns when `--columns` is not given.
pub(crate) fn default_user_columns() -> Vec<String> {
    let mut c: Vec<String> = [
        "userName",
        "externalId",
        "name.givenName",
        "name.familyName",
        "name.middleName",
        "name.formatted",
        "displayName",
        "nickName",
        "title",
        "userType",
        "preferredLanguage",
        "locale",
        "timezone",
        "active",
        "emails[type eq \"work\"].value",
        "emails[type eq \"work\"].primary",
        "emails[type eq \"home\"].value",
        "phoneNumbers[type eq \"work\"].value",
        "phoneNumbers[type eq \"mobile\"].value",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for a in ["employeeNumber", "department", "organization"] {
        c.push(format!("{ENTERPRISE}:{a}"));
    }
    c
}

pub(crate) fn group_columns() -> Vec<String> {
    ["displayName", "externalId", "members"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[derive(Debug, Clone, Default)]
struct AttrInfo {
    multi: bool,
    ty: String,
    subs: HashMap<String, String>,
}

/// Types and multiplicity of attributes, by (schema URN, attribute), lower case.
#[derive(Debug, Default, Clone)]
pub(crate) struct SchemaInfo {
    attrs: HashMap<(String, String), AttrInfo>,
}

const FALLBACK_MULTI: [&str; 10] = [
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "groups",
    "entitlements",
    "roles",
    "x509Certificates",
    "members",
];

impl SchemaInfo {
    /// From the server's /Schemas resources.
    pub(crate) fn from_schemas(schemas: &[Value]) -> SchemaInfo {
        let mut attrs = HashMap::new();
        for s in schemas {
            let Some(id) = s.get("id").and_then(Value::as_str) else {
                continue;
            };
            for a in s
                .get("attributes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(name) = a.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let subs = a
                    .get("subAttributes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|sa| {
                        Some((
                            sa.get("name")?.as_str()?.to_ascii_lowercase(),
                            sa.get("type")?.as_str()?.to_string(),
                        ))
                    })
                    .collect();
                let info = AttrInfo {
                    multi: a
                        .get("multiValued")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    ty: a
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("string")
                        .to_string(),
                    subs,
                };
                attrs.insert((id.to_ascii_lowercase(), name.to_ascii_lowercase()), info);
            }
        }
        SchemaInfo { attrs }
    }

    fn info(&self, core: &str, p: &AttrPath) -> Option<&AttrInfo> {
        let urn = p.urn.as_deref().unwrap_or(core).to_ascii_lowercase();
        self.attrs.get(&(urn, p.attr.to_ascii_lowercase()))
    }

    pub(crate) fn is_multi(&self, core: &str, p: &AttrPath) -> bool {
        match self.info(core, p) {
            Some(i) => i.multi,
            None => {
                p.urn.is_none()
                    && FALLBACK_MULTI
                        .iter()
                        .any(|m| m.eq_ignore_ascii_case(&p.attr))
            }
        }
    }

    /// The SCIM type of the value a path names ("string" when unknown).
    fn type_of(&self, core: &str, p: &AttrPath) -> String {
        let leaf = p.sub.as_deref().unwrap_or(&p.attr);
        let known = self.info(core, p).and_then(|i| match &p.sub {
            Some(s) => i.subs.get(&s.to_ascii_lowercase()).cloned(),
            None => Some(i.ty.clone()),
        });
        known.unwrap_or_else(|| {
            if leaf.eq_ignore_ascii_case("active") || leaf.eq_ignore_ascii_case("primary") {
                "boolean".into()
            } else {
                "string".into()
            }
        })
    }
}

/// A CSV cell as the JSON value its attribute's type wants.
fn typed(cell: &str, ty: &str, header: &str) -> Result<Value> {
    let bad = |what: &str| err(format!("column \"{header}\": \"{cell}\" is not {what}"));
    match ty {
        "boolean" => match cell.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(bad("true or false")),
        },
        "integer" => cell
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| bad("an integer")),
        "decimal" => cell
            .parse::<f64>()
            .map(Value::from)
            .map_err(|_| bad("a number")),
        "complex" => serde_json::from_str(cell).map_err(|_| bad("JSON")),
        _ => Ok(Value::String(cell.to_string())),
    }
}

/// The columns of one CSV file and what they mean.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    pub(crate) headers: Vec<String>,
    paths: Vec<Option<AttrPath>>,
    /// The core schema of the resource type (User or Group).
    core: &'static str,
}

/// Whether a header row describes groups (a displayName or members column and
/// no userName) rather than users.
pub(crate) fn is_group_header(headers: &[String]) -> bool {
    let has = |n: &str| headers.iter().any(|h| h.trim().eq_ignore_ascii_case(n));
    !has("userName") && (has("members") || has("displayName"))
}

impl Columns {
    pub(crate) fn new(headers: &[String], groups: bool) -> Result<Columns> {
        let core = if groups { GROUP_SCHEMA } else { USER_SCHEMA };
        let paths = headers
            .iter()
            .map(|h| {
                if groups && h.trim().eq_ignore_ascii_case("members") {
                    Ok(None)
                } else {
                    AttrPath::parse(h).map(Some)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Columns {
            headers: headers.to_vec(),
            paths,
            core,
        })
    }

    /// One row into a resource. Empty cells are left out.
    pub(crate) fn to_resource(&self, cells: &[String], schema: &SchemaInfo) -> Result<Value> {
        if cells.len() != self.headers.len() {
            return Err(err(format!(
                "{} cells, the header has {}",
                cells.len(),
                self.headers.len()
            )));
        }
        let mut m = Map::new();
        let mut extensions: Vec<String> = Vec::new();
        for ((cell, path), header) in cells.iter().zip(&self.paths).zip(&self.headers) {
            if cell.is_empty() {
                continue;
            }
            let Some(p) = path else {
                m.insert("members".into(), members_by_user_name(cell));
                continue;
            };
            let v = typed(cell, &schema.type_of(self.core, p), header)?;
            set(&mut m, p, schema.is_multi(self.core, p), v);
            if let Some(u) = &p.urn {
                if !extensions.contains(u) {
                    extensions.push(u.clone());
                }
            }
        }
        let mut schemas = vec![Value::String(self.core.into())];
        schemas.extend(extensions.into_iter().map(Value::String));
        let mut out = Map::new();
        out.insert("schemas".into(), Value::Array(schemas));
        out.extend(m);
        Ok(Value::Object(out))
    }

    /// One resource into a row. `member_names` gives the userName of each
    /// member of a group (members without one are left out of the CSV).
    pub(crate) fn to_row(&self, r: &Value) -> Vec<String> {
        self.paths
            .iter()
            .map(|p| match p {
                Some(p) => cell_text(get(r, p)),
                None => member_names(r).join(";"),
            })
            .collect()
    }
}

/// The userNames of an exported group's members (see `export`): members
/// carry `userName` once resolved.
fn member_names(group: &Value) -> Vec<String> {
    group
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            m.get("userName")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

fn members_by_user_name(cell: &str) -> Value {
    Value::Array(
        cell.split(';')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| serde_json::json!({"type": "User", "userName": n}))
            .collect(),
    )
}

fn cell_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn user_row_round_trip_with_fallback_types() {
        let headers = strings(&[
            "userName",
            "name.givenName",
            "emails[type eq \"work\"].value",
            "active",
            &format!("{ENTERPRISE}:employeeNumber"),
        ]);
        let c = Columns::new(&headers, false).unwrap();
        let s = SchemaInfo::default();
        let u = c
            .to_resource(&strings(&["bjensen", "Barbara", "b@work", "TRUE", "7"]), &s)
            .unwrap();
        assert_eq!(
            u,
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "userName": "bjensen",
                "name": {"givenName": "Barbara"},
                "emails": [{"type": "work", "value": "b@work"}],
                "active": true,
                ENTERPRISE: {"employeeNumber": "7"}
            })
        );
        assert_eq!(
            c.to_row(&u),
            strings(&["bjensen", "Barbara", "b@work", "true", "7"])
        );
        let sparse = c
            .to_resource(&strings(&["al", "", "", "", ""]), &s)
            .unwrap();
        assert_eq!(sparse, json!({"schemas": [USER_SCHEMA], "userName": "al"}));
        assert_eq!(c.to_row(&sparse), strings(&["al", "", "", "", ""]));
    }

    #[test]
    fn bad_cells_and_widths_are_errors() {
        let c = Columns::new(&strings(&["userName", "active"]), false).unwrap();
        let s = SchemaInfo::default();
        let e = c
            .to_resource(&strings(&["a", "maybe"]), &s)
            .unwrap_err()
            .to_string();
        assert!(e.contains("active") && e.contains("maybe"), "{e}");
        assert!(c.to_resource(&strings(&["a"]), &s).is_err());
    }

    #[test]
    fn schema_types_drive_conversion() {
        let schemas = vec![json!({
            "id": USER_SCHEMA,
            "attributes": [
                {"name": "userName", "type": "string", "multiValued": false},
                {"name": "loginCount", "type": "integer", "multiValued": false},
                {"name": "tags", "type": "string", "multiValued": true},
                {"name": "emails", "type": "complex", "multiValued": true,
                 "subAttributes": [{"name": "value", "type": "string"}, {"name": "primary", "type": "boolean"}]}
            ]
        })];
        let s = SchemaInfo::from_schemas(&schemas);
        let c = Columns::new(
            &strings(&["userName", "loginCount", "tags", "emails.primary"]),
            false,
        )
        .unwrap();
        let u = c
            .to_resource(&strings(&["a", "12", "x", "true"]), &s)
            .unwrap();
        assert_eq!(u["loginCount"], json!(12));
        assert_eq!(u["tags"], json!(["x"]));
        assert_eq!(u["emails"], json!([{"primary": true}]));
    }

    #[test]
    fn group_members_by_user_name() {
        let headers = group_columns();
        assert!(is_group_header(&headers));
        assert!(!is_group_header(&strings(&["userName", "displayName"])));
        let c = Columns::new(&headers, true).unwrap();
        let g = c
            .to_resource(
                &strings(&["Admins", "", "bjensen; al"]),
                &SchemaInfo::default(),
            )
            .unwrap();
        assert_eq!(g["schemas"], json!([GROUP_SCHEMA]));
        assert_eq!(
            g["members"],
            json!([{"type": "User", "userName": "bjensen"}, {"type": "User", "userName": "al"}])
        );
        assert_eq!(c.to_row(&g), strings(&["Admins", "", "bjensen;al"]));
    }
}
