//! Connector files (`provisioner.openicf-scim.json` shape): how to reach one remote
//! SCIM provider. Secrets stay unresolved [`SecretSource`]s until the runtime
//! resolves them with [`Connector::resolve_auth`].

use super::fields::Fields;
use crate::error::ConfigError;
use crate::secret::{Secret, SecretLookup, SecretSource};
use serde_json::Value;

/// How updates are sent: PATCH of the changed attributes, or PUT of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMethod {
    Patch,
    Put,
}

/// Provider-specific wire forms (see `ops::patch_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirks {
    Standard,
    /// Entra ID: capitalised op names, booleans as the strings "True"/"False".
    Entra,
}

/// Credentials as written in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// OAuth 2.0 client credentials grant at `token_endpoint`.
    OAuth {
        client_id: String,
        client_secret: SecretSource,
        token_endpoint: String,
    },
    /// A fixed bearer token.
    Token { token: SecretSource },
    /// HTTP Basic.
    Basic {
        user: String,
        password: SecretSource,
    },
}

/// Credentials with their secrets resolved, ready for the HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    OAuth {
        client_id: String,
        client_secret: Secret,
        token_endpoint: String,
    },
    Token(Secret),
    Basic {
        user: String,
        password: Secret,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connector {
    pub name: String,
    pub enabled: bool,
    /// Base URL of the provider's SCIM API (`…/scim/v2`).
    pub endpoint: String,
    pub scim_version: u8,
    pub auth: AuthConfig,
    pub page_size: u32,
    pub update_method: UpdateMethod,
    pub quirks: Quirks,
}

const DEFAULT_PAGE_SIZE: u32 = 100;

impl Connector {
    /// Parse one connector file; `file` is its name, for error messages.
    pub fn parse(file: &str, text: &str) -> Result<Connector, ConfigError> {
        let root: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::new(file, format!("not valid JSON: {e}")))?;
        let top = Fields::of(file, "", &root)?;
        let name = top.required_str("name")?;
        let enabled = top.bool_or("enabled", true)?;
        let props = top
            .get("configurationProperties")
            .ok_or_else(|| ConfigError::field(file, "configurationProperties", "is missing"))?;
        let props = Fields::of(file, "configurationProperties.", props)?;
        let endpoint = props.required_str("SCIMEndpoint")?;
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(props.error("SCIMEndpoint", "must be an http:// or https:// URL"));
        }
        Ok(Connector {
            name,
            enabled,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            scim_version: scim_version(&props)?,
            auth: auth_config(&props)?,
            page_size: page_size(&props)?,
            update_method: match props.optional_str("updateMethod")?.as_deref() {
                None | Some("PATCH") => UpdateMethod::Patch,
                Some("PUT") => UpdateMethod::Put,
                Some(_) => return Err(props.error("updateMethod", "must be PATCH or PUT")),
            },
            quirks: match props.optional_str("quirks")?.as_deref() {
                None | Some("standard") => Quirks::Standard,
                Some("entra") => Quirks::Entra,
                Some(_) => return Err(props.error("quirks", "must be standard or entra")),
            },
        })
    }

    /// The credentials with their secrets read from the environment or files.
    pub fn resolve_auth(&self, lookup: &dyn SecretLookup) -> Result<Auth, String> {
        Ok(match &self.auth {
            AuthConfig::OAuth {
                client_id,
                client_secret,
                token_endpoint,
            } => Auth::OAuth {
                client_id: client_id.clone(),
                client_secret: client_secret.resolve(lookup)?,
                token_endpoint: token_endpoint.clone(),
            },
            AuthConfig::Token { token } => Auth::Token(token.resolve(lookup)?),
            AuthConfig::Basic { user, password } => Auth::Basic {
                user: user.clone(),
                password: password.resolve(lookup)?,
            },
        })
    }
}

fn scim_version(props: &Fields<'_>) -> Result<u8, ConfigError> {
    match props.get("SCIMVersion") {
        None | Some(Value::Null) => Ok(2),
        Some(v) if v.as_u64() == Some(1) || v.as_str() == Some("1") => Ok(1),
        Some(v) if v.as_u64() == Some(2) || v.as_str() == Some("2") => Ok(2),
        Some(_) => Err(props.error("SCIMVersion", "must be 1 or 2")),
    }
}

fn page_size(props: &Fields<'_>) -> Result<u32, ConfigError> {
    match props.get("pageSize") {
        None | Some(Value::Null) => Ok(DEFAULT_PAGE_SIZE),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=10_000).contains(n))
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| props.error("pageSize", "must be a whole number from 1 to 10000")),
    }
}

fn auth_config(props: &Fields<'_>) -> Result<AuthConfig, ConfigError> {
    let method = props.optional_str("authenticationMethod")?;
    match method.as_deref() {
        None | Some("OAUTH") => Ok(AuthConfig::OAuth {
            client_id: props.required_str("clientId")?,
            client_secret: props.required_secret("clientSecret")?,
            token_endpoint: props.required_str("tokenEndpoint")?,
        }),
        Some("TOKEN") => Ok(AuthConfig::Token {
            token: props.required_secret("authToken")?,
        }),
        Some("BASIC") => Ok(AuthConfig::Basic {
            user: props.required_str("user")?,
            password: props.required_secret("password")?,
        }),
        Some(_) => Err(props.error("authenticationMethod", "must be OAUTH, TOKEN or BASIC")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Connector, ConfigError> {
        Connector::parse("provisioner.openicf-scim.json", &v.to_string())
    }

    fn oauth() -> Value {
        json!({"name": "scim", "enabled": true, "configurationProperties": {
            "SCIMEndpoint": "https://idp.example.com/scim/v2/", "SCIMVersion": 2,
            "authenticationMethod": "OAUTH", "clientId": "c1",
            "clientSecret": {"$env": "SCIM_SECRET"},
            "tokenEndpoint": "https://idp.example.com/token",
            "user": null, "password": null, "pageSize": 50,
            "updateMethod": "PUT", "quirks": "entra"}})
    }

    #[test]
    fn an_oauth_connector_parses_with_all_fields() {
        let c = parse(oauth()).unwrap();
        assert_eq!(c.name, "scim");
        assert!(c.enabled);
        assert_eq!(c.endpoint, "https://idp.example.com/scim/v2");
        assert_eq!(c.page_size, 50);
        assert_eq!(c.update_method, UpdateMethod::Put);
        assert_eq!(c.quirks, Quirks::Entra);
        assert_eq!(
            c.auth,
            AuthConfig::OAuth {
                client_id: "c1".into(),
                client_secret: SecretSource::Env("SCIM_SECRET".into()),
                token_endpoint: "https://idp.example.com/token".into(),
            }
        );
    }

    #[test]
    fn defaults_apply_to_omitted_fields() {
        let c = parse(json!({"name": "r", "configurationProperties": {
            "SCIMEndpoint": "http://127.0.0.1:8080/scim/v2",
            "authenticationMethod": "TOKEN", "authToken": "t"}}))
        .unwrap();
        assert!(c.enabled);
        assert_eq!(c.scim_version, 2);
        assert_eq!(c.page_size, DEFAULT_PAGE_SIZE);
        assert_eq!(c.update_method, UpdateMethod::Patch);
        assert_eq!(c.quirks, Quirks::Standard);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("SCIMEndpoint", json!("ftp://x")),
            ("authenticationMethod", json!("KERBEROS")),
            ("pageSize", json!(0)),
            ("SCIMVersion", json!(3)),
            ("updateMethod", json!("POST")),
            ("clientSecret", json!(5)),
            ("tokenEndpoint", Value::Null),
        ];
        for (field, bad) in cases {
            let mut v = oauth();
            v["configurationProperties"][field] = bad;
            let e = parse(v).unwrap_err();
            assert_eq!(
                e.field.as_deref(),
                Some(format!("configurationProperties.{field}").as_str()),
                "{e}"
            );
            assert_eq!(e.file, "provisioner.openicf-scim.json");
        }
    }

    #[test]
    fn basic_needs_user_and_password() {
        let e = parse(json!({"name": "b", "configurationProperties": {
            "SCIMEndpoint": "https://x", "authenticationMethod": "BASIC", "user": "u"}}))
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("configurationProperties.password"));
    }

    #[test]
    fn resolving_auth_reads_the_secret_and_hides_it_in_debug() {
        struct Env;
        impl SecretLookup for Env {
            fn env(&self, _: &str) -> Option<String> {
                Some("s3cret".into())
            }
            fn file(&self, _: &str) -> Result<String, String> {
                Err("unused".into())
            }
        }
        let auth = parse(oauth()).unwrap().resolve_auth(&Env).unwrap();
        let Auth::OAuth { client_secret, .. } = &auth else {
            panic!("not oauth: {auth:?}")
        };
        assert_eq!(client_secret.expose(), "s3cret");
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
