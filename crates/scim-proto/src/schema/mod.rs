//! The schema registry: every schema and resource type the server publishes, and
//! resolution of attribute paths against them.

mod core;
pub mod custom;
mod model;
pub mod render;
pub mod validate;

pub use model::*;

use crate::error::{ScimError, ScimResult};
use crate::filter::AttrPath;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const FIDO_DEVICE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:FidoDevice";
pub const FIDO2_DEVICE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Fido2Device";

/// What a running server publishes beyond the RFC 7643 core.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Publish the FidoDevice and Fido2Device resource types.
    pub devices: bool,
    /// The custom-attribute user extension: its URN and attributes (published when
    /// it has at least one attribute).
    pub custom: Option<(String, Vec<custom::CustomAttribute>)>,
}

/// What an attribute path resolved to.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    /// URN of the schema holding the attribute; `None` for the common attributes
    /// (id, externalId, meta) of RFC 7643 §3.1.
    pub schema: Option<&'a str>,
    /// True when the attribute lives in an extension (stored under its URN key).
    pub extension: bool,
    pub attr: &'a AttributeDef,
    pub sub: Option<&'a AttributeDef>,
}

impl Resolved<'_> {
    /// The definition the path points at: the sub-attribute if any, else the attribute.
    pub fn target(&self) -> &AttributeDef {
        self.sub.unwrap_or(self.attr)
    }
}

#[derive(Debug, Clone)]
pub struct SchemaRegistry {
    schemas: Vec<Schema>,
    resource_types: Vec<ResourceTypeDef>,
    common: Vec<AttributeDef>,
}

impl SchemaRegistry {
    /// User (+ EnterpriseUser extension) and Group, as RFC 7643 defines them.
    pub fn standard() -> Self {
        Self::build(&RegistryOptions::default())
    }

    /// The standard registry plus the device types and the custom-attribute
    /// extension, as configured.
    pub fn build(options: &RegistryOptions) -> Self {
        let mut user = core::user_resource_type();
        let mut schemas = vec![
            core::user_schema(),
            core::group_schema(),
            core::enterprise_user_schema(),
        ];
        // Published even without attributes, as Gluu does: clients look it up
        // before the first custom attribute exists.
        if let Some((urn, attributes)) = options.custom.as_ref() {
            schemas.push(custom::custom_schema(urn, attributes));
            user.schema_extensions.push(SchemaExtensionRef {
                schema: urn.clone(),
                required: false,
            });
        }
        let mut resource_types = vec![user, core::group_resource_type()];
        if options.devices {
            schemas.push(core::fido_device_schema());
            schemas.push(core::fido2_device_schema());
            resource_types.push(core::fido_device_resource_type());
            resource_types.push(core::fido2_device_resource_type());
        }
        SchemaRegistry {
            schemas,
            resource_types,
            common: core::common_attributes(),
        }
    }

    pub fn schemas(&self) -> &[Schema] {
        &self.schemas
    }

    pub fn resource_types(&self) -> &[ResourceTypeDef] {
        &self.resource_types
    }

    pub fn common_attributes(&self) -> &[AttributeDef] {
        &self.common
    }

    pub fn schema(&self, urn: &str) -> Option<&Schema> {
        self.schemas.iter().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    pub fn resource_type(&self, name: &str) -> Option<&ResourceTypeDef> {
        self.resource_types
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }

    /// Look a resource type up by its endpoint segment ("Users" or "/Users").
    pub fn resource_type_by_endpoint(&self, endpoint: &str) -> Option<&ResourceTypeDef> {
        let want = endpoint.trim_start_matches('/');
        self.resource_types
            .iter()
            .find(|r| r.endpoint.trim_start_matches('/') == want)
    }

    /// The URNs a resource of this type may carry: core schema first, then extensions.
    pub fn schema_urns<'a>(&'a self, rt: &'a ResourceTypeDef) -> impl Iterator<Item = &'a str> {
        std::iter::once(rt.schema.as_str())
            .chain(rt.schema_extensions.iter().map(|e| e.schema.as_str()))
    }

    /// The extension schema of `rt` with this URN (case-insensitive), if any.
    pub fn extension_of<'a>(&'a self, rt: &ResourceTypeDef, urn: &str) -> Option<&'a Schema> {
        rt.schema_extensions
            .iter()
            .find(|e| e.schema.eq_ignore_ascii_case(urn))
            .and_then(|e| self.schema(&e.schema))
    }

    /// Resolve `[urn:]attr[.sub]` for resource type `rt`. Unqualified names are looked
    /// up in the core schema, then among the common attributes. A path naming an
    /// unknown attribute is an `invalidPath` error (callers map it to invalidFilter
    /// where a filter is being parsed).
    pub fn resolve<'a>(
        &'a self,
        rt: &'a ResourceTypeDef,
        path: &AttrPath,
    ) -> ScimResult<Resolved<'a>> {
        let unknown =
            || ScimError::invalid_path(format!("unknown attribute '{}'", display_path(path)));
        let (schema, extension, attr) = match &path.urn {
            Some(urn) if urn.eq_ignore_ascii_case(&rt.schema) => {
                let s = self.schema(&rt.schema).ok_or_else(unknown)?;
                (
                    Some(s.id.as_str()),
                    false,
                    s.attr(&path.attr).ok_or_else(unknown)?,
                )
            }
            Some(urn) => {
                let s = self.extension_of(rt, urn).ok_or_else(unknown)?;
                (
                    Some(s.id.as_str()),
                    true,
                    s.attr(&path.attr).ok_or_else(unknown)?,
                )
            }
            None => {
                let core = self.schema(&rt.schema).and_then(|s| s.attr(&path.attr));
                match core {
                    Some(a) => (Some(rt.schema.as_str()), false, a),
                    None => (
                        None,
                        false,
                        self.common
                            .iter()
                            .find(|a| a.name.eq_ignore_ascii_case(&path.attr))
                            .ok_or_else(unknown)?,
                    ),
                }
            }
        };
        let sub = match &path.sub_attr {
            Some(s) => Some(attr.sub(s).ok_or_else(unknown)?),
            None => None,
        };
        Ok(Resolved {
            schema,
            extension,
            attr,
            sub,
        })
    }
}

/// `urn:attr.sub` as the client would write it, for error details.
pub fn display_path(path: &AttrPath) -> String {
    let mut s = String::new();
    if let Some(u) = &path.urn {
        s.push_str(u);
        s.push(':');
    }
    s.push_str(&path.attr);
    if let Some(sub) = &path.sub_attr {
        s.push('.');
        s.push_str(sub);
    }
    s
}

/// The registry a running server uses, replaced as a whole when administrators
/// change custom attributes (readers keep the snapshot they started with).
#[derive(Debug)]
pub struct SharedRegistry {
    current: std::sync::RwLock<std::sync::Arc<SchemaRegistry>>,
}

impl SharedRegistry {
    pub fn new(registry: SchemaRegistry) -> Self {
        SharedRegistry {
            current: std::sync::RwLock::new(std::sync::Arc::new(registry)),
        }
    }

    /// The current registry.
    pub fn load(&self) -> std::sync::Arc<SchemaRegistry> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, registry: SchemaRegistry) {
        let next = std::sync::Arc::new(registry);
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}
