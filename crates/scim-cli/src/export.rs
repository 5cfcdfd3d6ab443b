//! `scim export`: users and groups to JSON lines or CSV. Group members are
//! written by userName (and nested groups by displayName) so that an import
//! into another server can link them again; their ids mean nothing there.

use crate::cli::{ExportArgs, FileFormat, ResourceSel};
use crate::csvmap::{default_user_columns, group_columns, Columns};
use crate::error::{err, io_err, Result};
use crate::progress;
use futures_util::StreamExt;
use scim_client::{Client, SearchRequest};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The format a file name suggests: `.csv` is CSV, anything else JSON lines.
pub(crate) fn format_of(path: &Path, given: Option<FileFormat>) -> FileFormat {
    given.unwrap_or_else(|| {
        let csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if csv {
            FileFormat::Csv
        } else {
            FileFormat::Jsonl
        }
    })
}

/// Where the groups of a CSV export of everything go: `<stem>.groups.csv`.
pub(crate) fn groups_csv_path(users: &Path) -> PathBuf {
    let stem = users
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    users.with_file_name(format!("{stem}.groups.csv"))
}

/// One output file, JSON lines or CSV.
enum Sink {
    Jsonl(BufWriter<std::fs::File>, PathBuf),
    Csv(Box<csv::Writer<std::fs::File>>, Columns, PathBuf),
}

impl Sink {
    fn create(path: &Path, format: FileFormat, columns: Option<Columns>) -> Result<Sink> {
        let f = std::fs::File::create(path).map_err(|e| io_err(path, e))?;
        match (format, columns) {
            (FileFormat::Csv, Some(c)) => {
                let mut w = csv::Writer::from_writer(f);
                w.write_record(&c.headers)
                    .map_err(|e| err(format!("{}: {e}", path.display())))?;
                Ok(Sink::Csv(Box::new(w), c, path.to_path_buf()))
            }
            _ => Ok(Sink::Jsonl(
                BufWriter::with_capacity(1 << 20, f),
                path.to_path_buf(),
            )),
        }
    }

    fn write(&mut self, r: &Value) -> Result<()> {
        match self {
            Sink::Jsonl(w, p) => {
                serde_json::to_writer(&mut *w, r)
                    .map_err(|e| err(format!("{}: {e}", p.display())))?;
                w.write_all(b"\n").map_err(|e| io_err(p, e))
            }
            Sink::Csv(w, c, p) => w
                .write_record(c.to_row(r))
                .map_err(|e| err(format!("{}: {e}", p.display()))),
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::Jsonl(mut w, p) => w.flush().map_err(|e| io_err(&p, e)),
            Sink::Csv(mut w, _, p) => w.flush().map_err(|e| io_err(&p, e)),
        }
    }
}

/// The search of one resource type: the largest pages the server allows.
async fn query(client: &Client, args: &ExportArgs) -> Result<SearchRequest> {
    let count = match args.page_size {
        Some(n) => Some(n),
        None => client.discover().await?.filter_max_results,
    };
    Ok(SearchRequest {
        filter: args.filter.clone(),
        count,
        ..SearchRequest::default()
    })
}

fn id_of(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str)
}

/// Users to the sink; returns id → userName of those written.
async fn export_users(
    client: &Client,
    args: &ExportArgs,
    sink: &mut Sink,
) -> Result<HashMap<String, String>> {
    let res = client.resources("/Users");
    let total = res.count(args.filter.as_deref()).await?;
    let pb = progress::bar(total, "users");
    let mut names = HashMap::new();
    let q = query(client, args).await?;
    let ranges = res
        .partitions(args.filter.as_deref(), total, args.concurrency)
        .await;
    let searches = ranges
        .into_iter()
        .map(|filter| {
            res.search(SearchRequest {
                filter,
                ..q.clone()
            })
        })
        .collect();
    let mut users = prefetched(searches, q.count.unwrap_or(100) as usize);
    while let Some(u) = users.recv().await {
        let u = u?;
        sink.write(&u)?;
        if let (Some(id), Some(name)) = (id_of(&u), u.get("userName").and_then(Value::as_str)) {
            names.insert(id.to_string(), name.to_string());
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    println!("exported {} users", pb.position());
    Ok(names)
}

/// The items of a search, read ahead by a task of their own: the next page is
/// fetched while this one is written (the server, not the client, then sets
/// the pace).
fn prefetched<S>(
    streams: Vec<S>,
    page: usize,
) -> tokio::sync::mpsc::Receiver<scim_client::Result<Value>>
where
    S: futures_util::Stream<Item = scim_client::Result<Value>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(page.clamp(1, 10_000) * 2 * streams.len().max(1));
    for stream in streams {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        });
    }
    rx
}

/// The userName of a member the export did not write (another filter, or
/// only groups exported), asked of the server once.
async fn user_name(
    client: &Client,
    id: &str,
    names: &mut HashMap<String, String>,
) -> Option<String> {
    if let Some(n) = names.get(id) {
        return Some(n.clone());
    }
    let u = client.resources("/Users").get(id).await.ok()?;
    let n = u.get("userName")?.as_str()?.to_string();
    names.insert(id.to_string(), n.clone());
    Some(n)
}

fn is_group_member(m: &Value) -> bool {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let r = m.get("$ref").and_then(Value::as_str).unwrap_or_default();
    ty.eq_ignore_ascii_case("Group") || r.contains("/Groups/")
}

/// A group's members by userName (users) and displayName (groups).
async fn portable_members(
    client: &Client,
    group: &mut Value,
    names: &mut HashMap<String, String>,
    group_names: &HashMap<String, String>,
) -> Result<()> {
    let Some(members) = group.get("members").and_then(Value::as_array).cloned() else {
        return Ok(());
    };
    let mut out = Vec::with_capacity(members.len());
    for m in &members {
        let Some(id) = m.get("value").and_then(Value::as_str) else {
            continue;
        };
        let named = if is_group_member(m) {
            group_names
                .get(id)
                .map(|n| json!({"type": "Group", "displayName": n}))
        } else {
            user_name(client, id, names)
                .await
                .map(|n| json!({"type": "User", "userName": n}))
        };
        match named {
            Some(v) => out.push(v),
            None => {
                let g = group.get("displayName").cloned().unwrap_or(Value::Null);
                return Err(err(format!(
                    "group {g}: member {id} could not be named (no userName)"
                )));
            }
        }
    }
    group["members"] = Value::Array(out);
    Ok(())
}

async fn export_groups(
    client: &Client,
    args: &ExportArgs,
    sink: &mut Sink,
    mut names: HashMap<String, String>,
) -> Result<()> {
    let res = client.resources("/Groups");
    let total = res.count(args.filter.as_deref()).await?;
    let pb = progress::bar(total, "groups");
    // Groups are few next to users: hold them, so nested members can be named.
    let mut groups = Vec::new();
    let mut stream = std::pin::pin!(res.search(query(client, args).await?));
    while let Some(g) = stream.next().await {
        groups.push(g?);
    }
    let group_names: HashMap<String, String> = groups
        .iter()
        .filter_map(|g| {
            Some((
                id_of(g)?.to_string(),
                g.get("displayName")?.as_str()?.to_string(),
            ))
        })
        .collect();
    for mut g in groups {
        portable_members(client, &mut g, &mut names, &group_names).await?;
        sink.write(&g)?;
        pb.inc(1);
    }
    pb.finish_and_clear();
    println!("exported {} groups", pb.position());
    Ok(())
}

fn user_columns(args: &ExportArgs) -> Result<Columns> {
    let headers = match &args.columns {
        Some(row) => {
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(row.as_bytes());
            let rec = r
                .records()
                .next()
                .and_then(|r| r.ok())
                .ok_or_else(|| err("--columns: expected a CSV header row"))?;
            rec.iter().map(str::to_string).collect()
        }
        None => default_user_columns(),
    };
    Columns::new(&headers, false)
}

pub(crate) async fn run(client: &Client, args: &ExportArgs) -> Result<()> {
    let format = format_of(&args.out, args.format);
    let csv = format == FileFormat::Csv;
    let users = args.resource != ResourceSel::Groups;
    let groups = args.resource != ResourceSel::Users;
    let group_cols = || Columns::new(&group_columns(), true);
    let mut names = HashMap::new();
    if users {
        let mut sink = Sink::create(
            &args.out,
            format,
            csv.then(|| user_columns(args)).transpose()?,
        )?;
        names = export_users(client, args, &mut sink).await?;
        sink.finish()?;
    }
    if groups {
        let path = if users && csv {
            groups_csv_path(&args.out)
        } else {
            args.out.clone()
        };
        let mut sink = if users && !csv {
            // The same JSON-lines file, after the users.
            reopen_append(&args.out)?
        } else {
            Sink::create(&path, format, csv.then(group_cols).transpose()?)?
        };
        export_groups(client, args, &mut sink, names).await?;
        sink.finish()?;
        if users && csv {
            println!("groups written to {}", path.display());
        }
    }
    Ok(())
}

fn reopen_append(path: &Path) -> Result<Sink> {
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    Ok(Sink::Jsonl(
        BufWriter::with_capacity(1 << 20, f),
        path.to_path_buf(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_paths() {
        assert_eq!(format_of(Path::new("a.CSV"), None), FileFormat::Csv);
        assert_eq!(format_of(Path::new("a.jsonl"), None), FileFormat::Jsonl);
        assert_eq!(
            format_of(Path::new("a.csv"), Some(FileFormat::Jsonl)),
            FileFormat::Jsonl
        );
        assert_eq!(
            groups_csv_path(Path::new("/t/users.csv")),
            PathBuf::from("/t/users.groups.csv")
        );
    }

    #[test]
    fn member_kinds() {
        assert!(is_group_member(&json!({"type": "Group", "value": "1"})));
        assert!(is_group_member(
            &json!({"$ref": "http://h/scim/v2/Groups/1", "value": "1"})
        ));
        assert!(!is_group_member(&json!({"type": "User", "value": "1"})));
        assert!(!is_group_member(&json!({"value": "1"})));
    }
}
