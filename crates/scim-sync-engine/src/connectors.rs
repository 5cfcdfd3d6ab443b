//! The connectors of a sync directory: one JSON file each (every `*.json` but
//! `sync.json`), read at start and changed through the admin API. A change is
//! checked as the start checks a file, then written atomically (mode 0600: a
//! file may hold a literal secret) and used by the next run. Secrets never leave
//! through [`ConnectorDir::shown`]: a literal one reads `"***"`, and `"***"` in a
//! PUT keeps the secret the file has.

use scim_sync::config::Connector;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// The mappings file of a sync directory; every other `*.json` is a connector.
pub const SYNC_FILE: &str = "sync.json";

/// What a literal secret reads as, and what keeps it in a PUT.
pub const MASK: &str = "***";

/// The fields of `configurationProperties` that hold secrets.
const SECRET_FIELDS: [&str; 3] = ["clientSecret", "authToken", "password"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    #[error("{0}")]
    Invalid(String),
    #[error("no connector named '{0}'")]
    NotFound(String),
    #[error("{0}")]
    Io(String),
}

#[derive(Debug, Clone)]
struct Entry {
    connector: Connector,
    raw: Value,
    file: PathBuf,
}

#[derive(Debug)]
pub struct ConnectorDir {
    dir: PathBuf,
    entries: RwLock<Vec<Entry>>,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_connector_file(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == "json") && file_name(path) != SYNC_FILE
}

/// A connector name that is also a safe file name.
fn check_name(name: &str) -> Result<(), ConnectorError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::Invalid(format!(
            "'{name}' is not a connector name: letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit"
        )))
    }
}

/// The connector JSON with its literal secrets masked.
fn masked(raw: &Value) -> Value {
    let mut out = raw.clone();
    if let Some(props) = out
        .get_mut("configurationProperties")
        .and_then(Value::as_object_mut)
    {
        for field in SECRET_FIELDS {
            if let Some(v @ Value::String(_)) = props.get_mut(field) {
                *v = Value::String(MASK.into());
            }
        }
    }
    out
}

/// `body` with each `"***"` secret replaced by the one `old` holds.
fn unmasked(mut body: Value, old: Option<&Value>) -> Value {
    let old_props = old.and_then(|o| o.get("configurationProperties"));
    if let Some(props) = body
        .get_mut("configurationProperties")
        .and_then(Value::as_object_mut)
    {
        for field in SECRET_FIELDS {
            if props.get(field).and_then(Value::as_str) == Some(MASK) {
                match old_props.and_then(|p| p.get(field)) {
                    Some(v) => {
                        props.insert(field.to_string(), v.clone());
                    }
                    None => {
                        props.remove(field);
                    }
                }
            }
        }
    }
    body
}

/// Write `text` to `path` so that a reader sees the old file or the new one.
fn write_atomically(path: &Path, text: &str) -> Result<(), ConnectorError> {
    use std::io::Write;
    let io =
        |e: std::io::Error| ConnectorError::Io(format!("cannot write {}: {e}", path.display()));
    let tmp = path.with_file_name(format!(".{}.tmp", file_name(path)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

impl ConnectorDir {
    /// Every connector file of `dir`; a bad file fails with its name and field.
    pub fn load(dir: &Path) -> Result<ConnectorDir, String> {
        let listing = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read the sync directory {}: {e}", dir.display()))?;
        let mut files: Vec<PathBuf> = listing
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_connector_file(p))
            .collect();
        files.sort();
        let mut entries: Vec<Entry> = Vec::with_capacity(files.len());
        for file in files {
            let label = file_name(&file);
            let text = read(&file)?;
            let connector = Connector::parse(&label, &text).map_err(|e| format!("sync: {e}"))?;
            if entries.iter().any(|e| e.connector.name == connector.name) {
                return Err(format!(
                    "sync: {label}: 'name': connector '{}' is defined twice",
                    connector.name
                ));
            }
            let raw = serde_json::from_str(&text).unwrap_or(Value::Null);
            entries.push(Entry {
                connector,
                raw,
                file,
            });
        }
        Ok(ConnectorDir {
            dir: dir.to_path_buf(),
            entries: RwLock::new(entries),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entries(&self) -> std::sync::RwLockReadGuard<'_, Vec<Entry>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, name: &str) -> Option<Connector> {
        self.entries()
            .iter()
            .find(|e| e.connector.name == name)
            .map(|e| e.connector.clone())
    }

    pub fn names(&self) -> Vec<String> {
        self.entries()
            .iter()
            .map(|e| e.connector.name.clone())
            .collect()
    }

    /// The connector as its file has it, literal secrets masked.
    pub fn shown(&self, name: &str) -> Option<Value> {
        self.entries()
            .iter()
            .find(|e| e.connector.name == name)
            .map(|e| masked(&e.raw))
    }

    /// Create or replace connector `name` from its JSON (`name` in the body may
    /// be left out). True when it is new.
    pub fn put(&self, name: &str, body: Value) -> Result<bool, ConnectorError> {
        check_name(name)?;
        let Value::Object(mut fields) = body else {
            return Err(ConnectorError::Invalid(
                "the connector must be a JSON object".into(),
            ));
        };
        match fields.get("name") {
            None => {
                fields.insert("name".into(), Value::String(name.to_string()));
            }
            Some(Value::String(n)) if n == name => {}
            Some(_) => {
                return Err(ConnectorError::Invalid(format!(
                    "'name' must be '{name}', the name in the path"
                )))
            }
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let at = entries.iter().position(|e| e.connector.name == name);
        let body = unmasked(Value::Object(fields), at.map(|i| &entries[i].raw));
        let text = serde_json::to_string_pretty(&body)
            .map_err(|e| ConnectorError::Invalid(e.to_string()))?;
        let file = match at {
            Some(i) => entries[i].file.clone(),
            None => self.dir.join(format!("{name}.json")),
        };
        let connector = Connector::parse(&file_name(&file), &text)
            .map_err(|e| ConnectorError::Invalid(e.to_string()))?;
        write_atomically(&file, &text)?;
        let entry = Entry {
            connector,
            raw: body,
            file,
        };
        match at {
            Some(i) => entries[i] = entry,
            None => entries.push(entry),
        }
        Ok(at.is_none())
    }

    /// Delete connector `name` and its file.
    pub fn remove(&self, name: &str) -> Result<(), ConnectorError> {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let at = entries
            .iter()
            .position(|e| e.connector.name == name)
            .ok_or_else(|| ConnectorError::NotFound(name.to_string()))?;
        let file = entries[at].file.clone();
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ConnectorError::Io(format!(
                    "cannot remove {}: {e}",
                    file.display()
                )))
            }
        }
        entries.remove(at);
        Ok(())
    }
}

/// The connectors as the API lists them, secrets masked.
pub fn listing(dir: &ConnectorDir) -> Vec<Value> {
    dir.names().iter().filter_map(|n| dir.shown(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn connector(secret: Value) -> Value {
        json!({"enabled": true, "configurationProperties": {
            "SCIMEndpoint": "https://example.com/scim/v2", "authenticationMethod": "OAUTH",
            "clientId": "c1", "clientSecret": secret,
            "tokenEndpoint": "https://example.com/token"}})
    }

    #[test]
    fn put_writes_a_file_that_loads_again_and_never_shows_the_secret() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ConnectorDir::load(tmp.path()).unwrap();
        assert!(dir.put("remote", connector(json!("s3cret"))).unwrap());
        let shown = dir.shown("remote").unwrap();
        assert_eq!(shown["configurationProperties"]["clientSecret"], MASK);
        assert_eq!(shown["name"], "remote");
        assert!(!listing(&dir)
            .iter()
            .any(|v| v.to_string().contains("s3cret")));
        // "***" keeps the secret; the file holds it, readable by its owner only.
        let mut again = shown.clone();
        again["configurationProperties"]["clientId"] = json!("c2");
        assert!(!dir.put("remote", again).unwrap());
        let text = std::fs::read_to_string(tmp.path().join("remote.json")).unwrap();
        assert!(text.contains("s3cret") && text.contains("c2"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(tmp.path().join("remote.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let reloaded = ConnectorDir::load(tmp.path()).unwrap();
        assert_eq!(reloaded.get("remote"), dir.get("remote"));
        dir.remove("remote").unwrap();
        assert!(dir.get("remote").is_none());
        assert!(!tmp.path().join("remote.json").exists());
        assert_eq!(
            dir.remove("remote"),
            Err(ConnectorError::NotFound("remote".into()))
        );
    }

    #[test]
    fn bad_connectors_and_names_change_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ConnectorDir::load(tmp.path()).unwrap();
        for name in ["../x", "", ".hidden", "a/b", &"n".repeat(65)] {
            assert!(
                matches!(
                    dir.put(name, connector(json!("s"))),
                    Err(ConnectorError::Invalid(_))
                ),
                "{name}"
            );
        }
        let mut wrong = connector(json!("s"));
        wrong["configurationProperties"]["authenticationMethod"] = json!("MAGIC");
        let e = dir.put("remote", wrong).unwrap_err();
        assert!(e.to_string().contains("authenticationMethod"), "{e}");
        let mut renamed = connector(json!("s"));
        renamed["name"] = json!("other");
        assert!(matches!(
            dir.put("remote", renamed),
            Err(ConnectorError::Invalid(_))
        ));
        assert!(dir.names().is_empty());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn env_and_file_secrets_are_shown_as_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ConnectorDir::load(tmp.path()).unwrap();
        dir.put("r", connector(json!({"$env": "SECRET_VAR"})))
            .unwrap();
        assert_eq!(
            dir.shown("r").unwrap()["configurationProperties"]["clientSecret"],
            json!({"$env": "SECRET_VAR"})
        );
    }
}
