//! Profiles (`config.toml`) and how flags, profile and environment combine into
//! one connection.

use crate::cli::{ConnArgs, OutputFormat};
use crate::error::{err, io_err, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The config file: named profiles and, optionally, which one is the default.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ConfigFile {
    pub(crate) default: Option<String>,
    #[serde(default)]
    pub(crate) profiles: BTreeMap<String, Profile>,
}

/// One profile. Secrets are only referenced (a file or an environment
/// variable), never written in the file.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Profile {
    pub(crate) url: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret_file: Option<PathBuf>,
    pub(crate) client_secret_env: Option<String>,
    pub(crate) token_file: Option<PathBuf>,
    pub(crate) token_env: Option<String>,
    pub(crate) token_url: Option<String>,
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
    pub(crate) output: Option<OutputFormat>,
    #[serde(default)]
    pub(crate) headers: Vec<String>,
}

/// Where the config file is: $SCIM_CONFIG, else $XDG_CONFIG_HOME/scim/config.toml,
/// else ~/.config/scim/config.toml.
pub(crate) fn config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(p) = env("SCIM_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(x) = env("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        return Some(Path::new(&x).join("scim").join("config.toml"));
    }
    env("HOME").map(|h| {
        Path::new(&h)
            .join(".config")
            .join("scim")
            .join("config.toml")
    })
}

const CLEAR_SECRET_KEYS: [&str; 4] = ["client-secret", "token", "password", "secret"];

pub(crate) fn parse_config(text: &str, path: &Path) -> Result<ConfigFile> {
    // Name the rule rather than a bare "unknown field" when a secret is written in clear.
    if let Ok(raw) = text.parse::<toml::Table>() {
        if let Some(toml::Value::Table(profiles)) = raw.get("profiles") {
            for (name, p) in profiles {
                if let toml::Value::Table(p) = p {
                    if let Some(k) = CLEAR_SECRET_KEYS.iter().find(|k| p.contains_key(**k)) {
                        return Err(err(format!(
                            "{}: profile \"{name}\" holds `{k}` in clear; use client-secret-file / client-secret-env (or token-file / token-env)",
                            path.display()
                        )));
                    }
                }
            }
        }
    }
    toml::from_str(text).map_err(|e| err(format!("{}: {}", path.display(), e.message())))
}

/// The profile to use: the named one (which must exist), else the file's default,
/// else none.
pub(crate) fn load_profile(
    name: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Profile> {
    let path = config_path(env);
    let file = match &path {
        Some(p) if p.exists() => {
            let text = std::fs::read_to_string(p).map_err(|e| io_err(p, e))?;
            parse_config(&text, p)?
        }
        _ => ConfigFile::default(),
    };
    let wanted = name.map(str::to_string).or(file.default.clone());
    match wanted {
        None => Ok(Profile::default()),
        Some(n) => file.profiles.get(&n).cloned().ok_or_else(|| {
            let at = path.map(|p| p.display().to_string()).unwrap_or_default();
            err(format!("no profile \"{n}\" in {at}"))
        }),
    }
}

/// How to authenticate, after flags and profile are combined.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Auth {
    None,
    Bearer(String),
    ClientCredentials {
        client_id: String,
        secret: String,
        token_url: Option<String>,
        scopes: Vec<String>,
    },
}

/// Everything needed to build the client.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) url: String,
    pub(crate) auth: Auth,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) output: OutputFormat,
}

fn read_secret_file(p: &Path) -> Result<String> {
    let text = std::fs::read_to_string(p).map_err(|e| io_err(p, e))?;
    let s = text.trim_end_matches(['\n', '\r']).to_string();
    if s.is_empty() {
        return Err(err(format!("{}: the secret file is empty", p.display())));
    }
    Ok(s)
}

fn read_secret_env(var: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
        err(format!(
            "environment variable {var} (the secret) is not set"
        ))
    })
}

/// `Name: value` into its two parts.
pub(crate) fn parse_header(h: &str) -> Result<(String, String)> {
    let (k, v) = h
        .split_once(':')
        .ok_or_else(|| err(format!("--header \"{h}\": expected 'Name: value'")))?;
    let k = k.trim();
    if k.is_empty() {
        return Err(err(format!("--header \"{h}\": empty name")));
    }
    Ok((k.to_string(), v.trim().to_string()))
}

/// Flags win over the profile, field by field.
pub(crate) fn resolve(
    args: &ConnArgs,
    profile: &Profile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Connection> {
    let url = args
        .url
        .clone()
        .or(profile.url.clone())
        .ok_or_else(|| err("no server: give --url (or a profile with url)"))?;
    let headers = profile
        .headers
        .iter()
        .chain(&args.headers)
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>>>()?;
    let output = args
        .output
        .or(profile.output)
        .unwrap_or(OutputFormat::Table);
    Ok(Connection {
        url,
        auth: resolve_auth(args, profile, env)?,
        headers,
        output,
    })
}

fn resolve_auth(
    args: &ConnArgs,
    profile: &Profile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Auth> {
    if let Some(t) = &args.token {
        return Ok(Auth::Bearer(t.clone()));
    }
    let flag_client = args.client_id.is_some();
    if !flag_client {
        if let Some(f) = &profile.token_file {
            return Ok(Auth::Bearer(read_secret_file(f)?));
        }
        if let Some(v) = &profile.token_env {
            return Ok(Auth::Bearer(read_secret_env(v, env)?));
        }
    }
    let Some(client_id) = args.client_id.clone().or(profile.client_id.clone()) else {
        if args.client_secret_file.is_some() || args.client_secret_env.is_some() {
            return Err(err("a client secret was given without --client-id"));
        }
        return Ok(Auth::None);
    };
    // The secret comes from the flags when any is given, else from the profile.
    let secret = if let Some(f) = &args.client_secret_file {
        read_secret_file(f)?
    } else if let Some(v) = &args.client_secret_env {
        read_secret_env(v, env)?
    } else if let Some(f) = &profile.client_secret_file {
        read_secret_file(&expand_home(f, env))?
    } else if let Some(v) = &profile.client_secret_env {
        read_secret_env(v, env)?
    } else {
        return Err(err(
            "--client-id needs --client-secret-file F or --client-secret-env VAR",
        ));
    };
    let scopes = if args.scopes.is_empty() {
        profile.scopes.clone()
    } else {
        args.scopes
            .iter()
            .flat_map(|s| s.split_whitespace())
            .map(str::to_string)
            .collect()
    };
    Ok(Auth::ClientCredentials {
        client_id,
        secret,
        token_url: args.token_url.clone().or(profile.token_url.clone()),
        scopes,
    })
}

/// `~/x` in a profile means under $HOME.
fn expand_home(p: &Path, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    match (p.strip_prefix("~"), env("HOME")) {
        (Ok(rest), Some(home)) => Path::new(&home).join(rest),
        _ => p.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn config_path_prefers_scim_config_then_xdg_then_home() {
        let e = env_of(&[
            ("SCIM_CONFIG", "/a.toml"),
            ("XDG_CONFIG_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(config_path(&e), Some(PathBuf::from("/a.toml")));
        let e = env_of(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(config_path(&e), Some(PathBuf::from("/x/scim/config.toml")));
        let e = env_of(&[("HOME", "/h")]);
        assert_eq!(
            config_path(&e),
            Some(PathBuf::from("/h/.config/scim/config.toml"))
        );
    }

    #[test]
    fn a_secret_in_clear_is_refused_by_name() {
        let text =
            "[profiles.prod]\nurl = \"http://x\"\nclient-id = \"a\"\nclient-secret = \"s3cret\"\n";
        let e = parse_config(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("client-secret"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let text = "[profiles.prod]\nurll = \"http://x\"\n";
        assert!(parse_config(text, Path::new("c.toml")).is_err());
    }

    #[test]
    fn profile_default_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(
            &p,
            "default = \"a\"\n[profiles.a]\nurl = \"http://a\"\n[profiles.b]\nurl = \"http://b\"\noutput = \"json\"\n",
        )
        .unwrap();
        let ps = p.to_str().unwrap().to_string();
        let e = env_of(&[("SCIM_CONFIG", &ps)]);
        assert_eq!(
            load_profile(None, &e).unwrap().url.as_deref(),
            Some("http://a")
        );
        let b = load_profile(Some("b"), &e).unwrap();
        assert_eq!(b.url.as_deref(), Some("http://b"));
        assert_eq!(b.output, Some(OutputFormat::Json));
        let missing = load_profile(Some("zz"), &e).unwrap_err().to_string();
        assert!(missing.contains("no profile \"zz\""), "{missing}");
    }

    #[test]
    fn flags_override_profile_and_secret_comes_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let sf = dir.path().join("secret");
        std::fs::write(&sf, "top-secret\n").unwrap();
        let profile = Profile {
            url: Some("http://profile".into()),
            client_id: Some("pid".into()),
            client_secret_file: Some(sf.clone()),
            scopes: vec!["s1".into()],
            ..Profile::default()
        };
        let args = ConnArgs {
            url: Some("http://flag".into()),
            scopes: vec!["a b".into()],
            ..ConnArgs::default()
        };
        let c = resolve(&args, &profile, &env_of(&[])).unwrap();
        assert_eq!(c.url, "http://flag");
        assert_eq!(
            c.auth,
            Auth::ClientCredentials {
                client_id: "pid".into(),
                secret: "top-secret".into(),
                token_url: None,
                scopes: vec!["a".into(), "b".into()],
            }
        );
        assert_eq!(c.output, OutputFormat::Table);
    }

    #[test]
    fn secret_from_env_and_missing_secret() {
        let args = ConnArgs {
            url: Some("http://x".into()),
            client_id: Some("id".into()),
            client_secret_env: Some("MY_SECRET".into()),
            ..ConnArgs::default()
        };
        let c = resolve(&args, &Profile::default(), &env_of(&[("MY_SECRET", "v")])).unwrap();
        assert!(matches!(c.auth, Auth::ClientCredentials { ref secret, .. } if secret == "v"));
        let e = resolve(&args, &Profile::default(), &env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("MY_SECRET"));
        let no_secret = ConnArgs {
            client_secret_env: None,
            ..args
        };
        assert!(resolve(&no_secret, &Profile::default(), &env_of(&[])).is_err());
    }

    #[test]
    fn no_credentials_means_no_auth_and_token_wins() {
        let args = ConnArgs {
            url: Some("http://x".into()),
            ..ConnArgs::default()
        };
        assert_eq!(
            resolve(&args, &Profile::default(), &env_of(&[]))
                .unwrap()
                .auth,
            Auth::None
        );
        let args = ConnArgs {
            token: Some("t".into()),
            client_id: Some("id".into()),
            ..args
        };
        assert_eq!(
            resolve(&args, &Profile::default(), &env_of(&[]))
                .unwrap()
                .auth,
            Auth::Bearer("t".into())
        );
    }

    #[test]
    fn headers_parse_and_missing_url_fails() {
        assert_eq!(
            parse_header("X-Trace:  abc ").unwrap(),
            ("X-Trace".to_string(), "abc".to_string())
        );
        assert!(parse_header("nocolon").is_err());
        let e = resolve(&ConnArgs::default(), &Profile::default(), &env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("--url"));
    }
}
