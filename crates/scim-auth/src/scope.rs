//! Which scope each SCIM operation needs (Gluu's scope names), and the policy
//! that turns short names into the full scope strings tokens carry.

use std::sync::Arc;

pub const USERS_READ: &str = "users.read";
pub const USERS_WRITE: &str = "users.write";
pub const GROUPS_READ: &str = "groups.read";
pub const GROUPS_WRITE: &str = "groups.write";
pub const FIDO_READ: &str = "fido.read";
pub const FIDO_WRITE: &str = "fido.write";
pub const FIDO2_READ: &str = "fido2.read";
pub const FIDO2_WRITE: &str = "fido2.write";
pub const BULK: &str = "bulk";
pub const ALL_RESOURCES_SEARCH: &str = "all-resources.search";
/// scimd's admin API (custom attributes, interception scripts); not one of
/// Gluu's scopes.
pub const ADMIN: &str = "admin";
/// `/metrics` on the main listener (Prometheus scrapes with a token).
pub const METRICS: &str = "metrics";

/// Every scope name the server knows, without prefix.
pub const SCOPE_NAMES: [&str; 12] = [
    USERS_READ,
    USERS_WRITE,
    GROUPS_READ,
    GROUPS_WRITE,
    FIDO_READ,
    FIDO_WRITE,
    FIDO2_READ,
    FIDO2_WRITE,
    BULK,
    ALL_RESOURCES_SEARCH,
    ADMIN,
    METRICS,
];

/// Gluu's prefix, the default.
pub const DEFAULT_SCOPE_PREFIX: &str = "https://gluu.org/scim/";

fn is_read(method: &str) -> bool {
    method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD")
}

/// The scope (short name) an operation on a resource endpoint needs, or None for
/// endpoints without a scope of their own. `resource_endpoint` is the endpoint as
/// in ResourceType (`/Users`, `Users`, `/Groups`, …). Bulk calls this for each
/// operation it carries.
pub fn required_scope(method: &str, resource_endpoint: &str) -> Option<&'static str> {
    let endpoint = resource_endpoint.trim_matches('/');
    let read = is_read(method);
    let pick = |r: &'static str, w: &'static str| Some(if read { r } else { w });
    if endpoint.eq_ignore_ascii_case("Users") {
        pick(USERS_READ, USERS_WRITE)
    } else if endpoint.eq_ignore_ascii_case("Groups") {
        pick(GROUPS_READ, GROUPS_WRITE)
    } else if endpoint.eq_ignore_ascii_case("FidoDevices") {
        pick(FIDO_READ, FIDO_WRITE)
    } else if endpoint.eq_ignore_ascii_case("Fido2Devices") {
        pick(FIDO2_READ, FIDO2_WRITE)
    } else if endpoint.eq_ignore_ascii_case("Bulk") {
        Some(BULK)
    } else if endpoint.eq_ignore_ascii_case(".search") {
        Some(ALL_RESOURCES_SEARCH)
    } else if endpoint.eq_ignore_ascii_case("UpdatedUsers") {
        Some(USERS_READ)
    } else {
        None
    }
}

/// What a request needs before it reaches a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Discovery documents: no token.
    Public,
    /// A valid token carrying this scope (short name).
    Scope(&'static str),
    /// A valid token carrying all of these scopes (short names).
    AllOf(&'static [&'static str]),
    /// A valid token; no particular scope (endpoints without a scope of their own).
    Authenticated,
}

impl Access {
    /// The short scope names this access needs.
    pub fn scope_names(&self) -> &[&'static str] {
        match self {
            Access::Scope(s) => std::slice::from_ref(s),
            Access::AllOf(all) => all,
            Access::Public | Access::Authenticated => &[],
        }
    }
}

/// The change feed carries users and groups alike.
const CHANGE_FEED_SCOPES: &[&str] = &[USERS_READ, GROUPS_READ];

/// Classify a request by method and its path relative to the SCIM base
/// (`/Users/123`, `/Groups/.search`, `/ServiceProviderConfig`, …). Gluu's
/// `…/scim/UpdatedUsers` (outside the SCIM base) is recognised by its last segment.
pub fn classify(method: &str, path: &str) -> Access {
    if path.trim_end_matches('/').ends_with("/UpdatedUsers") {
        return Access::Scope(USERS_READ);
    }
    // Admin API: device enrolment is a write of that device type; the rest
    // (custom attributes, interception scripts) needs the admin scope.
    if let Some(endpoint) = path.strip_prefix("/admin/devices/") {
        return match required_scope("POST", endpoint) {
            Some(s) => Access::Scope(s),
            None => Access::Scope(ADMIN),
        };
    }
    if path.starts_with("/admin/") || path.starts_with("/sync/") {
        return Access::Scope(ADMIN);
    }
    if path == "/metrics" {
        return Access::Scope(METRICS);
    }
    let mut segments = path.trim_matches('/').split('/');
    let first = segments.next().unwrap_or_default();
    let second = segments.next();
    let public = ["", "ServiceProviderConfig", "Schemas", "ResourceTypes"];
    if public.iter().any(|p| first.eq_ignore_ascii_case(p)) {
        return Access::Public;
    }
    // POST /Users/.search is a read.
    let method = if method.eq_ignore_ascii_case("POST") && second == Some(".search") {
        "GET"
    } else {
        method
    };
    if first.eq_ignore_ascii_case("Changes") {
        return Access::AllOf(CHANGE_FEED_SCOPES);
    }
    match required_scope(method, first) {
        Some(s) => Access::Scope(s),
        None => Access::Authenticated,
    }
}

/// Full scope strings: prefix + short name.
#[derive(Debug, Clone)]
pub struct ScopePolicy {
    prefix: Arc<str>,
}

impl Default for ScopePolicy {
    fn default() -> Self {
        ScopePolicy::new(DEFAULT_SCOPE_PREFIX)
    }
}

impl ScopePolicy {
    pub fn new(prefix: &str) -> Self {
        ScopePolicy {
            prefix: Arc::from(prefix),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn full(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Every scope the server knows, in full.
    pub fn all(&self) -> Vec<String> {
        SCOPE_NAMES.iter().map(|n| self.full(n)).collect()
    }

    pub fn is_known(&self, scope: &str) -> bool {
        scope
            .strip_prefix(&*self.prefix)
            .is_some_and(|n| SCOPE_NAMES.contains(&n))
    }

    /// Does this set of granted (full) scopes include the short name?
    pub fn grants(&self, granted: &[String], name: &str) -> bool {
        granted
            .iter()
            .any(|g| g.strip_prefix(&*self.prefix) == Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_map_to_gluu_scopes() {
        let table = [
            ("GET", "/Users", Access::Scope(USERS_READ)),
            ("GET", "/Users/1", Access::Scope(USERS_READ)),
            ("HEAD", "/Users/1", Access::Scope(USERS_READ)),
            ("POST", "/Users/.search", Access::Scope(USERS_READ)),
            ("POST", "/Users", Access::Scope(USERS_WRITE)),
            ("PUT", "/Users/1", Access::Scope(USERS_WRITE)),
            ("PATCH", "/Users/1", Access::Scope(USERS_WRITE)),
            ("DELETE", "/Users/1", Access::Scope(USERS_WRITE)),
            ("GET", "/Groups", Access::Scope(GROUPS_READ)),
            ("POST", "/Groups/.search", Access::Scope(GROUPS_READ)),
            ("PATCH", "/Groups/9", Access::Scope(GROUPS_WRITE)),
            ("GET", "/FidoDevices/1", Access::Scope(FIDO_READ)),
            ("DELETE", "/FidoDevices/1", Access::Scope(FIDO_WRITE)),
            ("GET", "/Fido2Devices", Access::Scope(FIDO2_READ)),
            ("PUT", "/Fido2Devices/1", Access::Scope(FIDO2_WRITE)),
            ("POST", "/Bulk", Access::Scope(BULK)),
            ("POST", "/.search", Access::Scope(ALL_RESOURCES_SEARCH)),
            ("GET", "/UpdatedUsers", Access::Scope(USERS_READ)),
            (
                "GET",
                "/identity/restv1/scim/UpdatedUsers",
                Access::Scope(USERS_READ),
            ),
            ("GET", "/Changes", Access::AllOf(&[USERS_READ, GROUPS_READ])),
            (
                "POST",
                "/admin/devices/FidoDevices",
                Access::Scope(FIDO_WRITE),
            ),
            (
                "POST",
                "/admin/devices/Fido2Devices",
                Access::Scope(FIDO2_WRITE),
            ),
            ("GET", "/admin/attributes", Access::Scope(ADMIN)),
            ("GET", "/metrics", Access::Scope(METRICS)),
            ("POST", "/sync/system/scim", Access::Scope(ADMIN)),
            ("DELETE", "/admin/attributes/x", Access::Scope(ADMIN)),
            ("GET", "/admin/scripts", Access::Scope(ADMIN)),
            ("POST", "/admin/scripts", Access::Scope(ADMIN)),
            ("PUT", "/admin/scripts/notify", Access::Scope(ADMIN)),
            ("DELETE", "/admin/scripts/notify", Access::Scope(ADMIN)),
            ("GET", "/ServiceProviderConfig", Access::Public),
            ("GET", "/Schemas/urn:x", Access::Public),
            ("GET", "/ResourceTypes", Access::Public),
            ("POST", "/Schemas", Access::Public),
            ("GET", "/", Access::Public),
            ("GET", "/Nope", Access::Authenticated),
        ];
        for (m, p, want) in table {
            assert_eq!(classify(m, p), want, "{m} {p}");
        }
        assert_eq!(required_scope("POST", "/Users"), Some(USERS_WRITE));
        assert_eq!(required_scope("DELETE", "Groups"), Some(GROUPS_WRITE));
        assert_eq!(required_scope("GET", "/Other"), None);
    }

    #[test]
    fn policy_prefixes_and_matches_exactly() {
        let p = ScopePolicy::default();
        assert_eq!(p.full(BULK), "https://gluu.org/scim/bulk");
        assert_eq!(p.all().len(), SCOPE_NAMES.len());
        let granted = vec![p.full(USERS_READ)];
        assert!(p.grants(&granted, USERS_READ));
        assert!(!p.grants(&granted, USERS_WRITE));
        assert!(!p.grants(&["users.read".to_string()], USERS_READ));
        assert!(p.is_known("https://gluu.org/scim/groups.write"));
        assert!(!p.is_known("https://gluu.org/scim/nope"));
        let custom = ScopePolicy::new("scim:");
        assert!(custom.grants(&["scim:bulk".into()], BULK));
    }
}
