//! Typed SCIM resources (RFC 7643) and the trait that lets any of them be used
//! with [`Resources`](crate::Resources).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A SCIM resource type the client can create, read and search.
pub trait Resource: Serialize + DeserializeOwned + Send + Sync + Clone + 'static {
    /// Its endpoint under the SCIM base, e.g. `/Users` (empty for raw JSON,
    /// whose endpoint is given to [`Client::resources`](crate::Client::resources)).
    const ENDPOINT: &'static str;
    /// Its core schema URN (empty for raw JSON).
    const SCHEMA: &'static str;
    /// The server-assigned `id`, once it has one.
    fn id(&self) -> Option<&str>;
}

/// The core User schema URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema URN.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The Enterprise User extension URN (RFC 7643 §4.3).
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Gluu's user extension URN, where its custom attributes live.
pub const GLUU_USER_EXTENSION: &str = "urn:ietf:params:scim:schemas:extension:gluu:2.0:User";
/// Gluu's FIDO U2F device schema URN.
pub const FIDO_DEVICE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:FidoDevice";
/// Gluu's FIDO 2 device schema URN.
pub const FIDO2_DEVICE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Fido2Device";

/// `meta` (RFC 7643 §3.1): set by the server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// The resource type's name, e.g. `User`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// When it was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// When it last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// Its URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Its ETag, e.g. `W/"3"`: pass it as `if_match` to update safely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `name` of a User.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Name {
    /// The full name, formatted for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    /// Family name (last name in most Western languages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// Given name (first name in most Western languages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Middle name(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// Honorific prefix, e.g. `Ms.`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honorific_prefix: Option<String>,
    /// Honorific suffix, e.g. `III`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honorific_suffix: Option<String>,
}

/// One value of a multi-valued attribute (emails, phoneNumbers, addresses...).
/// Sub-attributes without a field here (an address's `locality`...) are kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MultiValued {
    /// The value, e.g. an e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The kind, e.g. `work`, `home`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Whether it is the preferred value (at most one is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    /// A label for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Every other sub-attribute, as sent by the server.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MultiValued {
    /// A value with a type, e.g. `MultiValued::new("bj@example.com", "work")`.
    pub fn new(value: impl Into<String>, type_: impl Into<String>) -> Self {
        MultiValued {
            value: Some(value.into()),
            type_: Some(type_.into()),
            ..MultiValued::default()
        }
    }
}

/// A Group member, or one of a User's groups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The member's (or group's) `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Its URL.
    #[serde(rename = "$ref", default, skip_serializing_if = "Option::is_none")]
    pub ref_: Option<String>,
    /// `User` or `Group` (for a User's groups: `direct` or `indirect`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Its display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Member {
    /// A member by id.
    pub fn new(id: impl Into<String>) -> Self {
        Member {
            value: Some(id.into()),
            ..Member::default()
        }
    }
}

/// Look up an attribute of `extra` by name, ignoring case as SCIM does.
fn lookup<'a>(extra: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    extra.get(name).or_else(|| {
        extra
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn put_extension(schemas: &mut Vec<String>, extra: &mut Map<String, Value>, urn: &str, v: Value) {
    extra.insert(urn.to_string(), v);
    if !schemas.iter().any(|s| s.eq_ignore_ascii_case(urn)) {
        schemas.push(urn.to_string());
    }
}

/// Accessors shared by the typed resources: extensions and custom attributes by URN.
macro_rules! extensions {
    ($t:ty) => {
        impl $t {
            /// The extension object under this schema URN, e.g.
            /// `user.extension(ENTERPRISE_USER_SCHEMA)`.
            pub fn extension(&self, urn: &str) -> Option<&Value> {
                lookup(&self.extra, urn)
            }

            /// One attribute of an extension, e.g. a Gluu custom attribute:
            /// `user.extension_attribute(GLUU_USER_EXTENSION, "department")`.
            pub fn extension_attribute(&self, urn: &str, name: &str) -> Option<&Value> {
                self.extension(urn)
                    .and_then(Value::as_object)
                    .and_then(|o| lookup(o, name))
            }

            /// Set an extension object (and list its URN in `schemas`).
            pub fn set_extension(&mut self, urn: &str, value: Value) {
                put_extension(&mut self.schemas, &mut self.extra, urn, value);
            }

            /// Any attribute without a typed field, by name (case-insensitive).
            pub fn attribute(&self, name: &str) -> Option<&Value> {
                lookup(&self.extra, name)
            }
        }
    };
}

/// A User (RFC 7643 §4.1). Attributes without a field (extensions, custom
/// attributes, `ims`, `roles`...) are kept in `extra` and survive a round trip.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Schema URNs; filled in when sending if left empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// Server-assigned identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The provisioning client's identifier for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Unique login name (required by the schema; may be absent from projected reads).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_name: String,
    /// Name parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// Name for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Casual name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick_name: Option<String>,
    /// Profile page URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_url: Option<String>,
    /// Job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// e.g. `Employee`, `Contractor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// Preferred language, e.g. `en-US`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_language: Option<String>,
    /// Locale, e.g. `en-US`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Time zone, e.g. `America/Los_Angeles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Whether the account is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Write-only: never returned by servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// E-mail addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<MultiValued>,
    /// Phone numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_numbers: Vec<MultiValued>,
    /// Postal addresses (sub-attributes other than `type`/`primary` are in `extra`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<MultiValued>,
    /// Read-only: the groups the user belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Member>,
    /// Server-set metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Every other attribute, extensions by URN included.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl User {
    /// A new user with this `userName`.
    pub fn new(user_name: impl Into<String>) -> Self {
        User {
            schemas: vec![USER_SCHEMA.to_string()],
            user_name: user_name.into(),
            ..User::default()
        }
    }

    /// The primary e-mail, else the first one.
    pub fn primary_email(&self) -> Option<&str> {
        self.emails
            .iter()
            .find(|e| e.primary == Some(true))
            .or_else(|| self.emails.first())
            .and_then(|e| e.value.as_deref())
    }
}
extensions!(User);

impl Resource for User {
    const ENDPOINT: &'static str = "/Users";
    const SCHEMA: &'static str = USER_SCHEMA;
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

/// A Group (RFC 7643 §4.2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// Schema URNs; filled in when sending if left empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// Server-assigned identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The provisioning client's identifier for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Its name (required by the schema).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    /// Users and groups in it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
    /// Server-set metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Every other attribute, extensions by URN included.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Group {
    /// A new group with this `displayName`.
    pub fn new(display_name: impl Into<String>) -> Self {
        Group {
            schemas: vec![GROUP_SCHEMA.to_string()],
            display_name: display_name.into(),
            ..Group::default()
        }
    }
}
extensions!(Group);

impl Resource for Group {
    const ENDPOINT: &'static str = "/Groups";
    const SCHEMA: &'static str = GROUP_SCHEMA;
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

/// Gluu's FIDO U2F device. Devices are enrolled by the server, not created by
/// SCIM clients: search, get, replace, patch and delete them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FidoDevice {
    /// Schema URNs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// Server-assigned identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The owner's user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// When it was enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
    /// The application (app id) it was registered for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Signature counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<i64>,
    /// Hash code of the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_hash_code: Option<String>,
    /// Key handle of the credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_key_handle: Option<String>,
    /// Last use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_access_time: Option<String>,
    /// `active` or `compromised`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Name for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The user's nickname for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// Server-set metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Every other attribute (`deviceData`, `deviceRegistrationConf`...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
extensions!(FidoDevice);

impl Resource for FidoDevice {
    const ENDPOINT: &'static str = "/FidoDevices";
    const SCHEMA: &'static str = FIDO_DEVICE_SCHEMA;
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

/// Gluu's FIDO 2 (WebAuthn) device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fido2Device {
    /// Schema URNs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// Server-assigned identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The owner's user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// When it was registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
    /// Signature counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<i64>,
    /// `registered` or `pending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Name for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Server-set metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Every other attribute.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
extensions!(Fido2Device);

impl Resource for Fido2Device {
    const ENDPOINT: &'static str = "/Fido2Devices";
    const SCHEMA: &'static str = FIDO2_DEVICE_SCHEMA;
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

/// Raw JSON: any resource type, through [`Client::resources`](crate::Client::resources).
impl Resource for Value {
    const ENDPOINT: &'static str = "";
    const SCHEMA: &'static str = "";
    fn id(&self) -> Option<&str> {
        self.get("id").and_then(Value::as_str)
    }
}

/// The JSON body to send for a resource: `meta` (server-managed) dropped, and
/// `schemas` holding the core schema and every extension URN used.
pub(crate) fn to_body<T: Resource>(r: &T) -> crate::Result<Value> {
    let mut v = serde_json::to_value(r).map_err(|e| crate::Error::Config(e.to_string()))?;
    let Some(obj) = v.as_object_mut() else {
        return Err(crate::Error::Config(
            "a resource must be a JSON object".into(),
        ));
    };
    obj.remove("meta");
    if T::SCHEMA.is_empty() {
        return Ok(v);
    }
    let mut schemas: Vec<String> = obj
        .get("schemas")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if !schemas.iter().any(|s| s.eq_ignore_ascii_case(T::SCHEMA)) {
        schemas.insert(0, T::SCHEMA.to_string());
    }
    let extensions: Vec<String> = obj
        .keys()
        .filter(|k| k.starts_with("urn:"))
        .filter(|k| !schemas.iter().any(|s| s.eq_ignore_ascii_case(k)))
        .cloned()
        .collect();
    schemas.extend(extensions);
    obj.insert("schemas".into(), Value::from(schemas));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn users_keep_extensions_and_unknown_attributes() {
        let doc = json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "id": "2819c223", "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "bj@example.com", "type": "work", "primary": true}],
            "addresses": [{"type": "work", "locality": "Hollywood"}],
            "roles": [{"value": "admin"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984"},
            "meta": {"resourceType": "User", "version": "W/\"3\""}
        });
        let u: User = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(u.user_name, "bjensen");
        assert_eq!(u.primary_email(), Some("bj@example.com"));
        assert_eq!(u.addresses[0].extra["locality"], "Hollywood");
        assert_eq!(
            u.extension_attribute(ENTERPRISE_USER_SCHEMA, "EMPLOYEENUMBER"),
            Some(&json!("701984"))
        );
        assert_eq!(u.attribute("roles"), Some(&json!([{"value": "admin"}])));
        assert_eq!(
            u.meta.as_ref().and_then(|m| m.version.as_deref()),
            Some("W/\"3\"")
        );
        assert_eq!(serde_json::to_value(&u).unwrap(), doc, "round trip");
    }

    #[test]
    fn bodies_name_their_schemas_and_drop_meta() {
        let mut u = User::new("bjensen");
        u.schemas.clear();
        u.set_extension(GLUU_USER_EXTENSION, json!({"department": "R&D"}));
        u.meta = Some(Meta::default());
        let body = to_body(&u).unwrap();
        assert_eq!(body["schemas"], json!([USER_SCHEMA, GLUU_USER_EXTENSION]));
        assert!(body.get("meta").is_none());
        let mut g = Group::new("admins");
        g.extra.insert("urn:example:ext".into(), json!({"x": 1}));
        let body = to_body(&g).unwrap();
        assert_eq!(body["schemas"], json!([GROUP_SCHEMA, "urn:example:ext"]));
        assert_eq!(
            to_body(&json!({"userName": "raw"})).unwrap(),
            json!({"userName": "raw"})
        );
    }
}
