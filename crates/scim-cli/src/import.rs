//! `scim import`: users, then groups, from JSON-lines or CSV files.
//!
//! Every record ends either created (its id goes to the state file
//! `<input>.import-state`) or in the failure report (line, status, scimType,
//! detail); nothing is dropped. `--resume` skips the lines the state file holds
//! and takes a user whose userName the server already has (409) or a group whose
//! displayName it already has as the same record, so an interrupted import
//! continues without duplicating anyone. Group members given by userName are
//! linked to the users' ids on this server.

use crate::cli::{FileFormat, ImportArgs};
use crate::commands::quote;
use crate::csvmap::{is_group_header, Columns, SchemaInfo, GROUP_SCHEMA};
use crate::error::{err, io_err, CliError, Result};
use crate::export::format_of;
use crate::progress;
use futures_util::StreamExt;
use indicatif::ProgressBar;
use scim_client::{BulkMethod, BulkOperation, Client, Error, SearchRequest};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    User,
    Group,
}

#[derive(Debug)]
struct Record {
    file: usize,
    line: u64,
    kind: Kind,
    /// The resource, or why the line could not be read.
    body: std::result::Result<Value, String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Failure {
    at: String,
    status: Option<u16>,
    scim_type: Option<String>,
    detail: String,
}

fn kind_of(v: &Value) -> Option<Kind> {
    let schemas = v.get("schemas").and_then(Value::as_array);
    let has_group_schema = schemas.into_iter().flatten().any(|s| {
        s.as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case(GROUP_SCHEMA))
    });
    if has_group_schema {
        Some(Kind::Group)
    } else if v.get("userName").is_some() {
        Some(Kind::User)
    } else if v.get("displayName").is_some() || v.get("members").is_some() {
        Some(Kind::Group)
    } else {
        None
    }
}

fn read_jsonl(file: usize, path: &Path) -> Result<Vec<Record>> {
    let f = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| io_err(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let body = serde_json::from_str::<Value>(&line).map_err(|e| format!("not JSON: {e}"));
        let (kind, body) = match body {
            Ok(v) => match kind_of(&v) {
                Some(k) => (k, Ok(v)),
                None => (
                    Kind::User,
                    Err("neither a user (userName) nor a group (displayName)".to_string()),
                ),
            },
            Err(e) => (Kind::User, Err(e)),
        };
        out.push(Record {
            file,
            line: i as u64 + 1,
            kind,
            body,
        });
    }
    Ok(out)
}

fn read_csv(file: usize, path: &Path, schema: &SchemaInfo) -> Result<Vec<Record>> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| err(format!("{}: {e}", path.display())))?;
    let headers: Vec<String> = r
        .headers()
        .map_err(|e| err(format!("{}: {e}", path.display())))?
        .iter()
        .map(str::to_string)
        .collect();
    let groups = is_group_header(&headers);
    let cols =
        Columns::new(&headers, groups).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let kind = if groups { Kind::Group } else { Kind::User };
    let mut out = Vec::new();
    for rec in r.records() {
        let (line, body) = match rec {
            Ok(rec) => {
                let line = rec.position().map(|p| p.line()).unwrap_or_default();
                let cells: Vec<String> = rec.iter().map(str::to_string).collect();
                (
                    line,
                    cols.to_resource(&cells, schema).map_err(|e| e.to_string()),
                )
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or_default();
                (line, Err(e.to_string()))
            }
        };
        out.push(Record {
            file,
            line,
            kind,
            body,
        });
    }
    Ok(out)
}

/// What a state file says is done: line → id.
fn state_path(input: &Path) -> PathBuf {
    let mut s = input.as_os_str().to_owned();
    s.push(".import-state");
    PathBuf::from(s)
}

const STATE_HEADER: &str = "# scim import state v1: line<TAB>id of each record created";

fn load_state(path: &Path) -> Result<HashMap<u64, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(io_err(path, e)),
    };
    // A line cut short by a crash is ignored: that record is simply done again.
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (line, id) = l.split_once('\t')?;
            (!id.is_empty()).then(|| Some((line.parse().ok()?, id.to_string())))?
        })
        .collect())
}

/// The state files of the inputs, appended to as records are created.
struct State {
    done: Vec<HashMap<u64, String>>,
    writers: Vec<(BufWriter<std::fs::File>, PathBuf)>,
}

impl State {
    fn open(inputs: &[PathBuf], resume: bool) -> Result<State> {
        let mut done = Vec::new();
        let mut writers = Vec::new();
        for input in inputs {
            let path = state_path(input);
            let d = if resume {
                load_state(&path)?
            } else {
                HashMap::new()
            };
            let mut opts = std::fs::OpenOptions::new();
            opts.create(true);
            if resume {
                opts.append(true);
            } else {
                opts.write(true).truncate(true);
            }
            let f = opts.open(&path).map_err(|e| io_err(&path, e))?;
            let mut w = BufWriter::new(f);
            if d.is_empty() {
                writeln!(w, "{STATE_HEADER}").map_err(|e| io_err(&path, e))?;
            }
            done.push(d);
            writers.push((w, path));
        }
        Ok(State { done, writers })
    }

    fn is_done(&self, r: &Record) -> Option<&String> {
        self.done.get(r.file)?.get(&r.line)
    }

    fn record(&mut self, r: &Record, id: &str) -> Result<()> {
        if let Some((w, p)) = self.writers.get_mut(r.file) {
            writeln!(w, "{}\t{id}", r.line).map_err(|e| io_err(p, e))?;
        }
        Ok(())
    }

    /// Make what was recorded so far survive a kill.
    fn flush(&mut self) -> Result<()> {
        for (w, p) in &mut self.writers {
            w.flush().map_err(|e| io_err(p, e))?;
        }
        Ok(())
    }
}

fn failure(at: String, e: &Error) -> Failure {
    match e {
        Error::Scim {
            status,
            scim_type,
            detail,
        } => Failure {
            at,
            status: Some(*status),
            scim_type: scim_type.clone(),
            detail: detail.clone(),
        },
        other => Failure {
            at,
            status: other.status(),
            scim_type: other.scim_type().map(str::to_string),
            detail: other.to_string(),
        },
    }
}

fn local_failure(at: String, detail: impl Into<String>) -> Failure {
    Failure {
        at,
        status: None,
        scim_type: None,
        detail: detail.into(),
    }
}

/// Read-only and server-assigned attributes an export carries and a create refuses.
fn creatable(mut v: Value, kind: Kind) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("id");
        o.remove("meta");
        if kind == Kind::User {
            o.remove("groups");
        }
    }
    v
}

fn user_name_of(v: &Value) -> Option<String> {
    v.get("userName")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
}

/// The id of the one resource with `attr eq value`, if there is one.
async fn find_id(
    client: &Client,
    endpoint: &str,
    attr: &str,
    value: &str,
) -> std::result::Result<Option<String>, Error> {
    let q = SearchRequest {
        filter: Some(format!("{attr} eq {}", quote(value))),
        attributes: vec!["id".into()],
        count: Some(1),
        ..SearchRequest::default()
    };
    let page = client.resources(endpoint).search_page(&q).await?;
    Ok(page
        .resources
        .first()
        .and_then(|r| r.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string))
}

/// Everything an import run keeps as it goes.
struct Run<'a> {
    client: &'a Client,
    args: &'a ImportArgs,
    state: State,
    failures: Vec<Failure>,
    /// userName (lower case) → id on this server.
    user_ids: HashMap<String, String>,
    /// displayName → id on this server.
    group_ids: HashMap<String, String>,
    created: u64,
    existing: u64,
    pb: ProgressBar,
}

type Outcome = std::result::Result<String, Error>;

impl Run<'_> {
    fn at(&self, r: &Record) -> String {
        if self.args.input.len() > 1 {
            let name = self.args.input[r.file].display();
            format!("{name}:{}", r.line)
        } else {
            r.line.to_string()
        }
    }

    /// A user's create ended: record it, or take a 409 on resume as done.
    async fn user_done(&mut self, r: &Record, outcome: Outcome) -> Result<()> {
        let name = r.body.as_ref().ok().and_then(user_name_of);
        let mut existed = false;
        let outcome = match outcome {
            Err(e) if self.args.resume && e.status() == Some(409) => {
                let found = match &name {
                    Some(n) => find_id(self.client, "/Users", "userName", n).await,
                    None => Ok(None),
                };
                match found {
                    Ok(Some(id)) => {
                        existed = true;
                        Ok(id)
                    }
                    _ => Err(e),
                }
            }
            o => o,
        };
        match outcome {
            Ok(id) => {
                if existed {
                    self.existing += 1;
                } else {
                    self.created += 1;
                }
                self.state.record(r, &id)?;
                if let Some(n) = name {
                    self.user_ids.insert(n, id);
                }
            }
            Err(e) => self.failures.push(failure(self.at(r), &e)),
        }
        self.pb.inc(1);
        Ok(())
    }

    async fn users(&mut self, records: &[&Record]) -> Result<()> {
        if self.args.bulk {
            return self.users_bulk(records).await;
        }
        let client = self.client;
        let creates = records.iter().map(|r| async move {
            // Only readable records get here; unreadable ones are reported earlier.
            let body = r
                .body
                .clone()
                .map(|b| creatable(b, Kind::User))
                .unwrap_or_default();
            let outcome = client
                .resources("/Users")
                .create(&body)
                .await
                .and_then(|u| {
                    u.get("id")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| Error::Decode("created user without id".into()))
                });
            (*r, outcome)
        });
        let mut stream =
            futures_util::stream::iter(creates).buffer_unordered(self.args.concurrency.max(1));
        let mut since_flush = 0;
        while let Some((r, outcome)) = stream.next().await {
            self.user_done(r, outcome).await?;
            since_flush += 1;
            if since_flush >= 64 {
                self.state.flush()?;
                since_flush = 0;
            }
        }
        self.state.flush()
    }

    async fn users_bulk(&mut self, records: &[&Record]) -> Result<()> {
        let caps = self.client.discover().await?;
        let Some(limits) = caps.bulk.as_ref() else {
            return Err(err("--bulk: the server does not support Bulk"));
        };
        let chunk = (limits.max_operations as usize).clamp(1, 1000);
        let client = self.client;
        let sends = records.chunks(chunk).map(|part| async move {
            let ops: Vec<BulkOperation> = part
                .iter()
                .map(|r| BulkOperation {
                    method: BulkMethod::Post,
                    bulk_id: Some(format!("l{}", r.line)),
                    path: "/Users".into(),
                    version: None,
                    data: r.body.clone().ok().map(|b| creatable(b, Kind::User)),
                })
                .collect();
            (part, client.bulk(ops, None).await)
        });
        let mut stream =
            futures_util::stream::iter(sends).buffer_unordered(self.args.concurrency.max(1));
        while let Some((part, result)) = stream.next().await {
            match result {
                Ok(results) => {
                    let by_id: HashMap<String, &scim_client::BulkResult> = results
                        .iter()
                        .filter_map(|b| Some((b.bulk_id.clone()?, b)))
                        .collect();
                    for r in part {
                        let outcome = match by_id.get(&format!("l{}", r.line)) {
                            Some(b) => match b.error() {
                                Some(e) => Err(e),
                                None => b.id().map(str::to_string).ok_or_else(|| {
                                    Error::Decode("Bulk result without a location".into())
                                }),
                            },
                            None => Err(Error::Decode(
                                "the Bulk response left this operation out".into(),
                            )),
                        };
                        self.user_done(r, outcome).await?;
                    }
                }
                Err(e) => {
                    for r in part {
                        self.user_done(r, Err(clone_error(&e))).await?;
                    }
                }
            }
            self.state.flush()?;
        }
        Ok(())
    }

    /// A group's members on this server: user members by id; nested groups
    /// (named by displayName) come back apart, linked once every group exists.
    async fn link_members(&mut self, r: &Record, body: &mut Value) -> (Vec<String>, Vec<Failure>) {
        let mut nested = Vec::new();
        let mut problems = Vec::new();
        let Some(members) = body.get("members").and_then(Value::as_array).cloned() else {
            return (nested, problems);
        };
        let mut linked = Vec::new();
        for m in members {
            let group_name = m.get("displayName").and_then(Value::as_str);
            let is_group = m
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("Group"));
            if let (true, Some(n)) = (is_group, group_name) {
                nested.push(n.to_string());
                continue;
            }
            let Some(name) = m.get("userName").and_then(Value::as_str) else {
                // Given by id (or anything else): passed on as it is.
                linked.push(m);
                continue;
            };
            match self.user_id(name).await {
                Ok(Some(id)) => linked.push(json!({"value": id})),
                Ok(None) => problems.push(local_failure(
                    self.at(r),
                    format!("member {}: no such user", quote(name)),
                )),
                Err(e) => problems.push(failure(self.at(r), &e)),
            }
        }
        body["members"] = Value::Array(linked);
        (nested, problems)
    }

    async fn user_id(&mut self, name: &str) -> std::result::Result<Option<String>, Error> {
        let key = name.to_ascii_lowercase();
        if let Some(id) = self.user_ids.get(&key) {
            return Ok(Some(id.clone()));
        }
        let found = find_id(self.client, "/Users", "userName", name).await?;
        if let Some(id) = &found {
            self.user_ids.insert(key, id.clone());
        }
        Ok(found)
    }

    /// Create one group (on resume: replace the one of that displayName).
    async fn put_group(&self, body: &Value) -> Outcome {
        let res = self.client.resources("/Groups");
        let name = body.get("displayName").and_then(Value::as_str);
        let existing = match (self.args.resume, name) {
            (true, Some(n)) => find_id(self.client, "/Groups", "displayName", n).await?,
            _ => None,
        };
        let saved = match &existing {
            Some(id) => res.replace(id, body, None).await?,
            None => res.create(body).await?,
        };
        saved
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::Decode("saved group without id".into()))
    }

    async fn groups(&mut self, records: &[&Record]) -> Result<()> {
        let mut nested_of: Vec<(&Record, String, Vec<String>)> = Vec::new();
        for r in records {
            let Ok(body) = &r.body else { continue };
            let mut body = creatable(body.clone(), Kind::Group);
            let (nested, problems) = self.link_members(r, &mut body).await;
            let clean = problems.is_empty() && nested.is_empty();
            self.failures.extend(problems);
            match self.put_group(&body).await {
                Ok(id) => {
                    self.created += 1;
                    if let Some(n) = body.get("displayName").and_then(Value::as_str) {
                        self.group_ids.insert(n.to_string(), id.clone());
                    }
                    // A group is done only with all its members linked.
                    if clean {
                        self.state.record(r, &id)?;
                    } else if !nested.is_empty() {
                        nested_of.push((r, id, nested));
                    }
                }
                Err(e) => self.failures.push(failure(self.at(r), &e)),
            }
            self.pb.inc(1);
            self.state.flush()?;
        }
        self.nested(nested_of).await
    }

    /// Add the groups that are members of groups, by displayName.
    async fn nested(&mut self, todo: Vec<(&Record, String, Vec<String>)>) -> Result<()> {
        for (r, gid, names) in todo {
            let mut values = Vec::new();
            let mut ok = true;
            for n in &names {
                let id = match self.group_ids.get(n) {
                    Some(id) => Some(id.clone()),
                    None => find_id(self.client, "/Groups", "displayName", n)
                        .await
                        .ok()
                        .flatten(),
                };
                match id {
                    Some(id) => values.push(json!({"value": id, "type": "Group"})),
                    None => {
                        ok = false;
                        self.failures.push(local_failure(
                            self.at(r),
                            format!("member group {}: no such group", quote(n)),
                        ));
                    }
                }
            }
            let patch = scim_client::Patch::new().add("members", values);
            match self
                .client
                .resources("/Groups")
                .patch(&gid, &patch, None)
                .await
            {
                Ok(_) if ok => self.state.record(r, &gid)?,
                Ok(_) => {}
                Err(e) => self.failures.push(failure(self.at(r), &e)),
            }
        }
        self.state.flush()
    }
}

/// Bulk failures of a whole request apply to each of its operations.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::Scim {
            status,
            scim_type,
            detail,
        } => Error::Scim {
            status: *status,
            scim_type: scim_type.clone(),
            detail: detail.clone(),
        },
        Error::Auth { status, detail } => Error::Auth {
            status: *status,
            detail: detail.clone(),
        },
        Error::Transport(s) => Error::Transport(s.clone()),
        Error::Decode(s) => Error::Decode(s.clone()),
        Error::Config(s) => Error::Config(s.clone()),
    }
}

fn report_path(args: &ImportArgs) -> PathBuf {
    args.report.clone().unwrap_or_else(|| {
        let mut s = args.input[0].as_os_str().to_owned();
        s.push(".failures.csv");
        PathBuf::from(s)
    })
}

fn write_report(path: &Path, failures: &[Failure]) -> Result<()> {
    let mut w =
        csv::Writer::from_path(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let werr = |e: csv::Error| err(format!("{}: {e}", path.display()));
    w.write_record(["line", "status", "scimType", "detail"])
        .map_err(werr)?;
    for f in failures {
        let status = f.status.map(|s| s.to_string()).unwrap_or_default();
        w.write_record([
            f.at.as_str(),
            &status,
            f.scim_type.as_deref().unwrap_or(""),
            &f.detail,
        ])
        .map_err(werr)?;
    }
    w.flush().map_err(|e| io_err(path, e))
}

fn read_all(client_schemas: &SchemaInfo, args: &ImportArgs) -> Result<Vec<Record>> {
    let mut all = Vec::new();
    for (i, path) in args.input.iter().enumerate() {
        match format_of(path, args.format) {
            FileFormat::Jsonl => all.extend(read_jsonl(i, path)?),
            FileFormat::Csv => all.extend(read_csv(i, path, client_schemas)?),
        }
    }
    Ok(all)
}

pub(crate) async fn run(client: &Client, args: &ImportArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let any_csv = args
        .input
        .iter()
        .any(|p| format_of(p, args.format) == FileFormat::Csv);
    let schema = if any_csv {
        SchemaInfo::from_schemas(&client.discover().await?.schemas)
    } else {
        SchemaInfo::default()
    };
    let records = read_all(&schema, args)?;
    let state = State::open(&args.input, args.resume)?;
    let mut run = Run {
        client,
        args,
        state,
        failures: Vec::new(),
        user_ids: HashMap::new(),
        group_ids: HashMap::new(),
        created: 0,
        existing: 0,
        pb: progress::bar(records.len() as u64, "import"),
    };
    let mut todo_users = Vec::new();
    let mut todo_groups = Vec::new();
    let mut skipped = 0u64;
    for r in &records {
        if let Err(why) = &r.body {
            run.failures.push(local_failure(run.at(r), why.clone()));
            run.pb.inc(1);
            continue;
        }
        if let Some(id) = run.state.is_done(r).cloned() {
            skipped += 1;
            run.pb.inc(1);
            if let Some(n) = r
                .body
                .as_ref()
                .ok()
                .and_then(user_name_of)
                .filter(|_| r.kind == Kind::User)
            {
                run.user_ids.insert(n, id);
            }
            continue;
        }
        match r.kind {
            Kind::User => todo_users.push(r),
            Kind::Group => todo_groups.push(r),
        }
    }
    run.users(&todo_users).await?;
    run.groups(&todo_groups).await?;
    run.pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "import: {} created, {} already there, {skipped} done before, {} failed, in {secs:.1} s",
        run.created,
        run.existing,
        run.failures.len()
    );
    let report = report_path(args);
    if run.failures.is_empty() {
        // No stale report of an earlier run left to mislead.
        let _ = std::fs::remove_file(&report);
        return Ok(());
    }
    write_report(&report, &run.failures)?;
    Err(CliError(format!(
        "{} of {} records failed; report: {}",
        run.failures.len(),
        records.len(),
        report.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_lines() {
        assert_eq!(kind_of(&json!({"userName": "a"})), Some(Kind::User));
        assert_eq!(
            kind_of(&json!({"schemas": [GROUP_SCHEMA], "displayName": "g"})),
            Some(Kind::Group)
        );
        assert_eq!(kind_of(&json!({"displayName": "g"})), Some(Kind::Group));
        assert_eq!(kind_of(&json!({"title": "x"})), None);
    }

    #[test]
    fn jsonl_records_keep_line_numbers_and_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.jsonl");
        std::fs::write(
            &p,
            "{\"userName\":\"a\"}\n\nnot json\n{\"title\":1}\n{\"displayName\":\"g\"}\n",
        )
        .unwrap();
        let r = read_jsonl(0, &p).unwrap();
        let lines: Vec<u64> = r.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![1, 3, 4, 5]);
        assert!(r[0].body.is_ok() && r[1].body.is_err() && r[2].body.is_err());
        assert_eq!(r[3].kind, Kind::Group);
    }

    #[test]
    fn csv_records_have_file_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(&p, "userName,active\na,true\nb,maybe\n\"c\nd\",false\ne\n").unwrap();
        let r = read_csv(0, &p, &SchemaInfo::default()).unwrap();
        let lines: Vec<u64> = r.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 6]);
        assert!(r[0].body.is_ok());
        assert!(r[1].body.as_ref().unwrap_err().contains("maybe"));
        assert_eq!(r[2].body.as_ref().unwrap()["userName"], "c\nd");
        assert!(r[3].body.is_err());
    }

    #[test]
    fn state_survives_a_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, format!("{STATE_HEADER}\n2\tid-2\n5\tid-5\n7\t")).unwrap();
        let s = load_state(&p).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.get(&5).map(String::as_str), Some("id-5"));
        assert!(load_state(&dir.path().join("missing")).unwrap().is_empty());
    }

    #[test]
    fn report_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        let f = failure(
            "3".into(),
            &Error::Scim {
                status: 409,
                scim_type: Some("uniqueness".into()),
                detail: "taken, really".into(),
            },
        );
        write_report(&p, &[f, local_failure("4".into(), "not JSON")]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "line,status,scimType,detail\n3,409,uniqueness,\"taken, really\"\n4,,,not JSON\n"
        );
    }

    #[test]
    fn creatable_strips_server_attributes() {
        let u = json!({"id": "1", "meta": {}, "groups": [], "userName": "a"});
        assert_eq!(creatable(u, Kind::User), json!({"userName": "a"}));
    }
}
