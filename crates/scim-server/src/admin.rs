//! Administration: custom user attributes (registered at run time, published at
//! once) and the registry refresh that lets every scimd process on one database
//! see them.

use crate::service::{store_error, Service};
use scim_proto::filter::{AttrPath, Filter};
use scim_proto::schema::custom::CustomAttribute;
use scim_proto::schema::{RegistryOptions, SchemaRegistry};
use scim_proto::{ScimError, ScimResult};
use scim_store::{Query, StoreError};
use serde_json::Value;

impl Service {
    /// Rebuild the registry from the configuration and the stored custom
    /// attributes; a no-op when nothing changed.
    pub fn reload_registry(&self) -> ScimResult<()> {
        let custom = self.store.custom_attributes().map_err(store_error)?;
        let options = RegistryOptions {
            devices: self.config.devices,
            custom: Some((self.config.custom_schema_urn.clone(), custom)),
        };
        let next = SchemaRegistry::build(&options);
        if next.schemas() != self.registry().schemas() {
            tracing::info!("schema registry updated (custom attributes changed)");
            self.registry.replace(next);
        }
        Ok(())
    }

    pub fn custom_attributes(&self) -> ScimResult<Vec<CustomAttribute>> {
        self.store.custom_attributes().map_err(store_error)
    }

    pub fn add_custom_attribute(&self, attr: &CustomAttribute) -> ScimResult<()> {
        CustomAttribute::check_name(&attr.name)?;
        self.store.add_custom_attribute(attr).map_err(|e| match e {
            StoreError::Uniqueness => {
                ScimError::uniqueness(format!("custom attribute '{}' already exists", attr.name))
            }
            other => store_error(other),
        })?;
        self.reload_registry()
    }

    /// Remove a custom attribute. If users hold values for it, `force` must be
    /// set; their values are then removed first (each user gets a new version and
    /// a change-feed entry).
    pub fn remove_custom_attribute(&self, name: &str, force: bool) -> ScimResult<u64> {
        let registry = self.registry();
        let user = registry
            .resource_type("User")
            .ok_or_else(|| ScimError::internal("User resource type missing"))?;
        let path = AttrPath {
            urn: Some(self.config.custom_schema_urn.clone()),
            attr: name.to_string(),
            sub_attr: None,
        };
        if registry.resolve(user, &path).is_err() {
            return Err(ScimError::not_found(format!(
                "no custom attribute '{name}'"
            )));
        }
        let holders = Query {
            filter: Some(Filter::Present(path.clone())),
            start_index: 1,
            count: 500,
            ..Query::default()
        };
        let held = self
            .store
            .search(
                user,
                &Query {
                    count: 0,
                    ..holders.clone()
                },
            )
            .map_err(store_error)?
            .total;
        if held > 0 && !force {
            return Err(ScimError::conflict(format!(
                "{held} users hold values of '{name}'; remove with force to delete those values too"
            )));
        }
        let mut cleared = 0;
        loop {
            let page = self.store.search(user, &holders).map_err(store_error)?;
            if page.resources.is_empty() {
                break;
            }
            for r in page.resources {
                self.clear_attribute(user, &r.id, &path)?;
                cleared += 1;
            }
        }
        match self.store.remove_custom_attribute(name) {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(store_error(e)),
        }
        self.reload_registry()?;
        Ok(cleared)
    }

    fn clear_attribute(
        &self,
        rt: &scim_proto::schema::ResourceTypeDef,
        id: &str,
        path: &AttrPath,
    ) -> ScimResult<()> {
        let patch = serde_json::json!({
            "schemas": [scim_proto::messages::PATCH_OP],
            "Operations": [{"op": "remove", "path": scim_proto::schema::display_path(path)}],
        });
        let ctx = self.local_ctx();
        match self.patch(rt, id, &patch, None, &ctx) {
            Ok(_) => Ok(()),
            Err(e) if e.status == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A custom attribute definition from an admin API body.
pub fn parse_custom_attribute(body: &Value) -> ScimResult<CustomAttribute> {
    serde_json::from_value(body.clone()).map_err(|e| {
        ScimError::invalid_value(format!(
            "a custom attribute needs name, type (string, numeric, boolean, date) and optional multiValued, description: {e}"
        ))
    })
}
