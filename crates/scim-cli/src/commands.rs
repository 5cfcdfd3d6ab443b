//! The resource commands: users, groups, devices, discover.

use crate::cli::{
    CreateGroupArgs, CreateUserArgs, DeviceAction, GroupAction, ListArgs, MemberAction,
    OutputFormat, PatchArgs, SortOrderArg, UserAction,
};
use crate::csvmap::{GROUP_SCHEMA, USER_SCHEMA};
use crate::error::{err, io_err, Result};
use crate::output::{color_wanted, emit, format_list, format_one, render_table, Kind};
use futures_util::StreamExt;
use scim_client::{Client, Patch, Resources, SearchRequest, SortOrder};
use serde_json::{json, Map, Value};
use std::path::Path;

/// A string as a SCIM filter literal.
pub(crate) fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| err(format!("{}: not JSON: {e}", path.display())))
}

fn search_request(a: &ListArgs, extra_filter: Option<String>) -> SearchRequest {
    let filter = match (a.filter.clone(), extra_filter) {
        (Some(f), Some(x)) => Some(format!("({f}) and {x}")),
        (f, x) => f.or(x),
    };
    SearchRequest {
        filter,
        sort_by: a.sort_by.clone(),
        sort_order: a.sort_order.map(|o| match o {
            SortOrderArg::Ascending => SortOrder::Ascending,
            SortOrderArg::Descending => SortOrder::Descending,
        }),
        attributes: a.attributes.clone(),
        count: a.count,
        ..SearchRequest::default()
    }
}

async fn list(
    res: Resources<Value>,
    kind: Kind,
    q: SearchRequest,
    all: bool,
    out: OutputFormat,
) -> Result<()> {
    let color = color_wanted();
    if !all {
        let page = res.search_page(&q).await?;
        emit(&format_list(kind, &page.resources, out, color));
        let shown = page.resources.len() as u64;
        if out == OutputFormat::Table && shown < page.total_results {
            eprintln!(
                "{shown} of {} shown (--all for every page)",
                page.total_results
            );
        }
        return Ok(());
    }
    let mut stream = std::pin::pin!(res.search(q));
    if out == OutputFormat::Jsonl {
        // Line by line as pages arrive: nothing held in memory.
        while let Some(item) = stream.next().await {
            emit(&format_list(kind, &[item?], out, color));
        }
        return Ok(());
    }
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item?);
    }
    emit(&format_list(kind, &items, out, color));
    Ok(())
}

fn show(v: &Value, out: OutputFormat) {
    emit(&format_one(v, out, color_wanted()));
}

fn deleted(id: &str, out: OutputFormat) {
    if out == OutputFormat::Table {
        emit(&format!("deleted {id}\n"));
    }
}

/// VALUE of PATH=VALUE: JSON when it is clearly JSON (true, false, null, a
/// quoted string, an object, an array), else the text itself; numbers stay
/// text because most SCIM attributes that look numeric are strings.
pub(crate) fn patch_value(v: &str) -> Value {
    let t = v.trim();
    let json_like = matches!(t, "true" | "false" | "null")
        || t.starts_with('{')
        || t.starts_with('[')
        || t.starts_with('"');
    if json_like {
        if let Ok(j) = serde_json::from_str(t) {
            return j;
        }
    }
    Value::String(v.to_string())
}

fn split_assign(a: &str, flag: &str) -> Result<(String, Value)> {
    let (p, v) = a
        .split_once('=')
        .ok_or_else(|| err(format!("--{flag} \"{a}\": expected PATH=VALUE")))?;
    Ok((p.trim().to_string(), patch_value(v)))
}

/// A PatchOp body (or its Operations array) into the library's builder.
pub(crate) fn patch_from_json(v: &Value) -> Result<Patch> {
    let ops = match v {
        Value::Array(a) => a,
        Value::Object(o) => o
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
            .and_then(|(_, v)| v.as_array())
            .ok_or_else(|| err("PATCH file: no Operations array"))?,
        _ => return Err(err("PATCH file: expected a PatchOp object")),
    };
    let mut p = Patch::new();
    for op in ops {
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let path = op.get("path").and_then(Value::as_str);
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        p = match (name.as_str(), path) {
            ("add", Some(path)) => p.add(path, value),
            ("add", None) => p.add_value(value),
            ("replace", Some(path)) => p.replace(path, value),
            ("replace", None) => p.replace_value(value),
            ("remove", Some(path)) => p.remove(path),
            _ => return Err(err(format!("PATCH file: unsupported operation {op}"))),
        };
    }
    Ok(p)
}

fn patch_from_args(a: &PatchArgs) -> Result<Patch> {
    if let Some(f) = &a.file {
        return patch_from_json(&read_json(f)?);
    }
    let mut p = Patch::new();
    for r in &a.replace {
        let (path, v) = split_assign(r, "replace")?;
        p = p.replace(&path, v);
    }
    for r in &a.add {
        let (path, v) = split_assign(r, "add")?;
        p = p.add(&path, v);
    }
    for r in &a.remove {
        p = p.remove(r.trim());
    }
    if p.is_empty() {
        return Err(err(
            "patch: give --file or at least one --replace, --add or --remove",
        ));
    }
    Ok(p)
}

async fn patch(res: &Resources<Value>, id: &str, a: &PatchArgs, out: OutputFormat) -> Result<()> {
    let p = patch_from_args(a)?;
    match res.patch(id, &p, None).await? {
        Some(v) => show(&v, out),
        None if out == OutputFormat::Table => emit(&format!("patched {id}\n")),
        None => {}
    }
    Ok(())
}

fn user_from_flags(a: &CreateUserArgs) -> Result<Value> {
    let mut u = Map::new();
    u.insert("schemas".into(), json!([USER_SCHEMA]));
    u.insert("userName".into(), json!(a.user_name));
    let mut name = Map::new();
    if let Some(g) = &a.given_name {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = &a.family_name {
        name.insert("familyName".into(), json!(f));
    }
    if !name.is_empty() {
        u.insert("name".into(), Value::Object(name));
    }
    if !a.email.is_empty() {
        let emails: Vec<Value> = a
            .email
            .iter()
            .enumerate()
            .map(|(i, e)| json!({"value": e, "type": "work", "primary": i == 0}))
            .collect();
        u.insert("emails".into(), Value::Array(emails));
    }
    if let Some(pf) = &a.password_file {
        let text = std::fs::read_to_string(pf).map_err(|e| io_err(pf, e))?;
        u.insert(
            "password".into(),
            json!(text.trim_end_matches(['\n', '\r'])),
        );
    }
    Ok(Value::Object(u))
}

pub(crate) async fn users(client: &Client, action: UserAction, out: OutputFormat) -> Result<()> {
    let res = client.resources("/Users");
    match action {
        UserAction::List(a) => list(res, Kind::User, search_request(&a, None), a.all, out).await,
        UserAction::Get { id } => {
            show(&res.get(&id).await?, out);
            Ok(())
        }
        UserAction::Create(a) => {
            let body = match &a.file {
                Some(f) => read_json(f)?,
                None => user_from_flags(&a)?,
            };
            show(&res.create(&body).await?, out);
            Ok(())
        }
        UserAction::Replace { id, file } => {
            show(&res.replace(&id, &read_json(&file)?, None).await?, out);
            Ok(())
        }
        UserAction::Patch { id, patch: p } => patch(&res, &id, &p, out).await,
        UserAction::Delete { id } => {
            res.delete(&id, None).await?;
            deleted(&id, out);
            Ok(())
        }
    }
}

/// The id of a resource named by its id or by a unique attribute value
/// (userName, displayName): the attribute is tried first.
async fn resolve(res: &Resources<Value>, attr: &str, key: &str) -> Result<String> {
    let q = SearchRequest {
        filter: Some(format!("{attr} eq {}", quote(key))),
        attributes: vec!["id".into()],
        count: Some(2),
        ..SearchRequest::default()
    };
    let page = res.search_page(&q).await?;
    match page.resources.as_slice() {
        [one] => one
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| err(format!("{attr} {}: the server gave no id", quote(key)))),
        [] => Ok(key.to_string()),
        _ => Err(err(format!(
            "{attr} {} names more than one resource; use its id",
            quote(key)
        ))),
    }
}

async fn group_from_flags(client: &Client, a: &CreateGroupArgs) -> Result<Value> {
    let users = client.resources("/Users");
    let mut members = Vec::new();
    for m in &a.member {
        members.push(json!({"value": resolve(&users, "userName", m).await?}));
    }
    let mut g = json!({"schemas": [GROUP_SCHEMA], "displayName": a.display_name});
    if !members.is_empty() {
        g["members"] = Value::Array(members);
    }
    Ok(g)
}

async fn members(client: &Client, action: MemberAction, out: OutputFormat) -> Result<()> {
    let (group, users, add) = match action {
        MemberAction::Add { group, users } => (group, users, true),
        MemberAction::Remove { group, users } => (group, users, false),
    };
    let groups = client.resources("/Groups");
    let gid = resolve(&groups, "displayName", &group).await?;
    let user_res = client.resources("/Users");
    let mut ids = Vec::new();
    for u in &users {
        ids.push(resolve(&user_res, "userName", u).await?);
    }
    let p = if add {
        let values: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
        Patch::new().add("members", values)
    } else {
        ids.iter().fold(Patch::new(), |p, id| {
            p.remove(&format!("members[value eq {}]", quote(id)))
        })
    };
    match groups.patch(&gid, &p, None).await? {
        Some(v) => show(&v, out),
        None if out == OutputFormat::Table => emit(&format!("patched {gid}\n")),
        None => {}
    }
    Ok(())
}

pub(crate) async fn groups(client: &Client, action: GroupAction, out: OutputFormat) -> Result<()> {
    let res = client.resources("/Groups");
    match action {
        GroupAction::List(a) => list(res, Kind::Group, search_request(&a, None), a.all, out).await,
        GroupAction::Get { id } => {
            show(&res.get(&id).await?, out);
            Ok(())
        }
        GroupAction::Create(a) => {
            let body = match &a.file {
                Some(f) => read_json(f)?,
                None => group_from_flags(client, &a).await?,
            };
            show(&res.create(&body).await?, out);
            Ok(())
        }
        GroupAction::Replace { id, file } => {
            show(&res.replace(&id, &read_json(&file)?, None).await?, out);
            Ok(())
        }
        GroupAction::Patch { id, patch: p } => patch(&res, &id, &p, out).await,
        GroupAction::Delete { id } => {
            res.delete(&id, None).await?;
            deleted(&id, out);
            Ok(())
        }
        GroupAction::Members { action } => members(client, action, out).await,
    }
}

fn device_endpoint(fido2: bool) -> &'static str {
    if fido2 {
        "/Fido2Devices"
    } else {
        "/FidoDevices"
    }
}

pub(crate) async fn devices(
    client: &Client,
    action: DeviceAction,
    out: OutputFormat,
) -> Result<()> {
    match action {
        DeviceAction::List {
            list: a,
            user_id,
            fido2,
        } => {
            let res = client.resources(device_endpoint(fido2));
            let by_user = user_id.map(|u| format!("userId eq {}", quote(&u)));
            list(res, Kind::Device, search_request(&a, by_user), a.all, out).await
        }
        DeviceAction::Get { id, fido2 } => {
            show(
                &client.resources(device_endpoint(fido2)).get(&id).await?,
                out,
            );
            Ok(())
        }
        DeviceAction::Delete { id, fido2 } => {
            client
                .resources(device_endpoint(fido2))
                .delete(&id, None)
                .await?;
            deleted(&id, out);
            Ok(())
        }
    }
}

pub(crate) async fn discover(client: &Client, out: OutputFormat) -> Result<()> {
    let caps = client.discover().await?;
    let types: Vec<Value> = caps
        .resource_types
        .iter()
        .map(|t| json!({"name": t.name, "endpoint": t.endpoint, "schema": t.schema, "extensions": t.extensions}))
        .collect();
    if out != OutputFormat::Table {
        let v = json!({"serviceProviderConfig": caps.raw_config, "resourceTypes": types});
        show(&v, out);
        return Ok(());
    }
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    let bulk = match &caps.bulk {
        Some(b) => format!(
            "yes (maxOperations {}, maxPayloadSize {})",
            b.max_operations, b.max_payload_size
        ),
        None => "no".into(),
    };
    let max_results = caps
        .filter_max_results
        .map(|n| n.to_string())
        .unwrap_or_else(|| "-".into());
    let rows = vec![
        vec!["base URL".to_string(), client.base_url().to_string()],
        vec!["patch".into(), yes(caps.patch)],
        vec!["bulk".into(), bulk],
        vec!["filter maxResults".into(), max_results],
        vec!["sort".into(), yes(caps.sort)],
        vec!["etag".into(), yes(caps.etag)],
        vec!["cursor paging".into(), yes(caps.cursor_paging)],
    ];
    let color = color_wanted();
    let mut text = render_table(&["CAPABILITY", "VALUE"], &rows, color);
    text.push('\n');
    let rows: Vec<Vec<String>> = caps
        .resource_types
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.endpoint.clone(),
                t.schema.clone(),
                t.extensions.join(", "),
            ]
        })
        .collect();
    text.push_str(&render_table(
        &["RESOURCE TYPE", "ENDPOINT", "SCHEMA", "EXTENSIONS"],
        &rows,
        color,
    ));
    emit(&text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_values() {
        assert_eq!(patch_value("true"), json!(true));
        assert_eq!(patch_value("Joey"), json!("Joey"));
        assert_eq!(patch_value("42"), json!("42"));
        assert_eq!(patch_value("\"42\""), json!("42"));
        assert_eq!(patch_value("[{\"value\":\"a\"}]"), json!([{"value": "a"}]));
        assert_eq!(patch_value("{not json"), json!("{not json"));
    }

    #[test]
    fn patch_from_flags_and_file() {
        let a = PatchArgs {
            replace: vec!["name.givenName=Joey".into()],
            add: vec!["title=Boss".into()],
            remove: vec!["emails[type eq \"work\"]".into()],
            ..PatchArgs::default()
        };
        let ops = patch_from_args(&a).unwrap().to_json();
        let ops = ops["Operations"].as_array().unwrap().clone();
        assert_eq!(ops.len(), 3);
        assert!(patch_from_args(&PatchArgs::default()).is_err());
        let bad = PatchArgs {
            replace: vec!["novalue".into()],
            ..PatchArgs::default()
        };
        assert!(patch_from_args(&bad).is_err());
        let file = json!({"Operations": [
            {"op": "Replace", "path": "active", "value": false},
            {"op": "replace", "value": {"title": "x", "nickName": "y"}},
            {"op": "add", "value": {"title": "x"}},
            {"op": "remove", "path": "title"}
        ]});
        let p = patch_from_json(&file).unwrap().to_json();
        assert_eq!(p["Operations"].as_array().unwrap().len(), 4);
        assert!(patch_from_json(&json!({"Operations": [{"op": "move"}]})).is_err());
    }

    #[test]
    fn filter_literals_are_quoted() {
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        let a = ListArgs {
            filter: Some("active eq true".into()),
            ..ListArgs::default()
        };
        let q = search_request(&a, Some("userId eq \"u\"".into()));
        assert_eq!(
            q.filter.as_deref(),
            Some("(active eq true) and userId eq \"u\"")
        );
    }
}
