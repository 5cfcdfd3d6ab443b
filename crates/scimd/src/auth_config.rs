//! Protection settings of `scimd serve`: flags (and SCIMD_* variables), then the
//! `[auth]` table of the config file, then defaults.

use clap::Args;
use scim_auth::{AuthConfig, ExternalConfig, Mode};
use serde::Deserialize;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A secret setting: never shown by Debug (settings may be logged).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Redacted(pub String);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Redacted {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Redacted(s.to_string()))
    }
}

#[derive(Args, Debug, Default, Clone)]
pub struct AuthArgs {
    /// Public base URL of this server: `iss` of its tokens and base of its OAuth
    /// endpoints [default: http://LISTEN]. Set it when several processes share a
    /// database or a proxy is in front.
    #[arg(long, env = "SCIMD_ISSUER")]
    issuer: Option<String>,
    /// Lifetime of access tokens and RPTs, in seconds [default: 300].
    #[arg(long, env = "SCIMD_TOKEN_LIFETIME", value_name = "SECONDS")]
    token_lifetime: Option<u64>,
    /// Prefix of the scope names [default: https://gluu.org/scim/].
    #[arg(long, env = "SCIMD_SCOPE_PREFIX")]
    scope_prefix: Option<String>,
    /// `aud` of issued tokens and the audience required of external tokens.
    #[arg(long, env = "SCIMD_AUDIENCE")]
    audience: Option<String>,
    /// Trust JWT access tokens of this external issuer (needs --external-jwks-url).
    #[arg(long, env = "SCIMD_EXTERNAL_ISSUER")]
    external_issuer: Option<String>,
    /// JWKS of the external issuer.
    #[arg(long, env = "SCIMD_EXTERNAL_JWKS_URL")]
    external_jwks_url: Option<String>,
    /// RFC 7662 introspection endpoint for opaque tokens of an external server.
    #[arg(long, env = "SCIMD_INTROSPECTION_URL")]
    introspection_url: Option<String>,
    /// Client id scimd authenticates with at the introspection endpoint.
    #[arg(long, env = "SCIMD_INTROSPECTION_CLIENT_ID")]
    introspection_client_id: Option<String>,
    /// Client secret for introspection (prefer the environment variable).
    #[arg(
        long,
        env = "SCIMD_INTROSPECTION_CLIENT_SECRET",
        hide_env_values = true
    )]
    introspection_client_secret: Option<Redacted>,
    /// Open RFC 7591 dynamic client registration at /oauth/register.
    #[arg(long, env = "SCIMD_DYNAMIC_REGISTRATION")]
    dynamic_registration: bool,
    /// Days a signing key signs before a new one replaces it [default: 30].
    #[arg(long, env = "SCIMD_SIGNING_KEY_ROTATION_DAYS", value_name = "DAYS")]
    signing_key_rotation_days: Option<u64>,
}

/// The `[auth]` table of the config file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuthFile {
    issuer: Option<String>,
    token_lifetime: Option<u64>,
    scope_prefix: Option<String>,
    audience: Option<String>,
    external_issuer: Option<String>,
    external_jwks_url: Option<String>,
    introspection_url: Option<String>,
    introspection_client_id: Option<String>,
    introspection_client_secret: Option<Redacted>,
    dynamic_registration: Option<bool>,
    signing_key_rotation_days: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    pub issuer: Option<String>,
    pub token_lifetime: u64,
    pub scope_prefix: String,
    pub audience: Option<String>,
    pub external_issuer: Option<String>,
    pub external_jwks_url: Option<String>,
    pub introspection_url: Option<String>,
    pub introspection_client_id: Option<String>,
    pub introspection_client_secret: Option<Redacted>,
    pub dynamic_registration: bool,
    pub signing_key_rotation_days: u64,
}

fn check_url(name: &str, url: &Option<String>) -> Result<(), String> {
    match url {
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => Err(format!(
            "{name} must be an http:// or https:// URL, got '{u}'"
        )),
        _ => Ok(()),
    }
}

impl AuthSettings {
    pub fn resolve(args: AuthArgs, file: AuthFile) -> AuthSettings {
        AuthSettings {
            issuer: args.issuer.or(file.issuer),
            token_lifetime: args.token_lifetime.or(file.token_lifetime).unwrap_or(300),
            scope_prefix: args
                .scope_prefix
                .or(file.scope_prefix)
                .unwrap_or_else(|| scim_auth::scope::DEFAULT_SCOPE_PREFIX.into()),
            audience: args.audience.or(file.audience),
            external_issuer: args.external_issuer.or(file.external_issuer),
            external_jwks_url: args.external_jwks_url.or(file.external_jwks_url),
            introspection_url: args.introspection_url.or(file.introspection_url),
            introspection_client_id: args
                .introspection_client_id
                .or(file.introspection_client_id),
            introspection_client_secret: args
                .introspection_client_secret
                .or(file.introspection_client_secret),
            dynamic_registration: args.dynamic_registration
                || file.dynamic_registration.unwrap_or(false),
            signing_key_rotation_days: args
                .signing_key_rotation_days
                .or(file.signing_key_rotation_days)
                .unwrap_or(30),
        }
    }

    /// The issuer: configured, else `http://LISTEN`.
    pub fn issuer(&self, listen: &str) -> String {
        self.issuer
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_string()
    }

    pub fn to_config(&self, mode: Mode, listen: &str) -> Result<AuthConfig, String> {
        if self.token_lifetime == 0 {
            return Err("--token-lifetime must be at least 1 second".into());
        }
        if self.signing_key_rotation_days == 0 {
            return Err("--signing-key-rotation-days must be at least 1".into());
        }
        let issuer = self.issuer(listen);
        check_url("--issuer", &Some(issuer.clone()))?;
        check_url("--external-jwks-url", &self.external_jwks_url)?;
        check_url("--introspection-url", &self.introspection_url)?;
        if self.external_jwks_url.is_some() && self.external_issuer.is_none() {
            return Err("--external-jwks-url needs --external-issuer".into());
        }
        if self.introspection_url.is_some()
            && (self.introspection_client_id.is_none()
                || self.introspection_client_secret.is_none())
        {
            return Err(
                "--introspection-url needs --introspection-client-id and --introspection-client-secret"
                    .into(),
            );
        }
        Ok(AuthConfig {
            mode,
            issuer,
            audience: self.audience.clone(),
            token_lifetime: Duration::from_secs(self.token_lifetime),
            scope_prefix: self.scope_prefix.clone(),
            dynamic_registration: self.dynamic_registration,
            external: ExternalConfig {
                issuer: self.external_issuer.clone(),
                jwks_url: self.external_jwks_url.clone(),
                introspection_url: self.introspection_url.clone(),
                introspection_client_id: self.introspection_client_id.clone(),
                introspection_client_secret: self
                    .introspection_client_secret
                    .as_ref()
                    .map(|s| s.0.clone()),
            },
            key_rotation: Duration::from_secs(self.signing_key_rotation_days * 86_400),
            ..AuthConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_secrets_stay_hidden() {
        let args = AuthArgs {
            token_lifetime: Some(60),
            introspection_client_secret: Some(Redacted("s3cret".into())),
            ..AuthArgs::default()
        };
        let file: AuthFile =
            toml::from_str("token-lifetime = 900\ndynamic-registration = true\nissuer = \"https://scim.example/\"\n")
                .expect("toml");
        let s = AuthSettings::resolve(args, file);
        assert_eq!(s.token_lifetime, 60);
        assert!(s.dynamic_registration);
        assert_eq!(s.issuer("x:1"), "https://scim.example");
        assert!(!format!("{s:?}").contains("s3cret"));
        let cfg = s.to_config(Mode::Oauth, "127.0.0.1:1").expect("config");
        assert_eq!(cfg.token_lifetime, Duration::from_secs(60));
        assert!(toml::from_str::<AuthFile>("nope = 1").is_err());
    }

    #[test]
    fn inconsistent_external_settings_are_errors() {
        let s = AuthSettings::resolve(
            AuthArgs {
                external_jwks_url: Some("http://x/jwks".into()),
                ..AuthArgs::default()
            },
            AuthFile::default(),
        );
        assert!(s.to_config(Mode::Oauth, "l:1").is_err());
        let s = AuthSettings::resolve(
            AuthArgs {
                introspection_url: Some("http://x/introspect".into()),
                ..AuthArgs::default()
            },
            AuthFile::default(),
        );
        assert!(s.to_config(Mode::Oauth, "l:1").is_err());
    }
}
