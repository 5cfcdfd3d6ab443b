//! The pure core of scimd's reconciliation engine: no I/O, no async, no clock.
//!
//! # The model (PingIDM / OpenIDM terms)
//!
//! A **connector** ([`config::Connector`], one `provisioner.openicf-*.json` file) says
//! how to reach a remote SCIM provider. A **mapping** ([`config::Mapping`], in
//! `sync.json`) moves objects of one kind (users or groups) from a *source* object
//! set to a *target* one: `managed/user`, `managed/group` (alias `managed/role`)
//! are scimd's own store, `system/<connector>/account|group` a remote.
//!
//! A run of a mapping has two phases. The **source phase** classifies every
//! source object into a [`situation::Situation`] from four facts: does it pass
//! the `sourceFilter`, does the link table give it a target, does that target
//! still exist, and (without a link) which targets the correlation queries find.
//! The **target phase** (`runTargetPhase`) then looks at the targets no source
//! reached: linked ones lost their source (SOURCE_MISSING), the others have no
//! link (UNASSIGNED). Each situation maps to an [`situation::Action`] through the
//! mapping's policies over the defaults of sync.md.
//!
//! **Links** ([`links::Link`]) pair immutable ids (remote `id` ↔ local `id`), so a
//! renamed object stays CONFIRMED and is updated, never deleted and re-created.
//! A reverse mapping (`"links": "<forward mapping>"`) shares its forward mapping's
//! table and reads it the other way round.
//!
//! **Property mappings** ([`mapping::map_source`]) copy source paths to target
//! paths, value paths included (`emails[type eq "work"].value` creates or updates
//! the matching element), with defaults and the lower/upper/trim transforms.
//! Updates are the smallest PATCH ([`mapping::attribute_ops`]): only mapped
//! attributes that differ. Group members are translated through the links of the
//! member objects' mapping and sent as PATCH add/remove of the changed members
//! only ([`mapping::member_diff`]).
//!
//! [`plan::plan`] puts this together: from in-memory sources, targets and links it
//! returns a [`plan::Plan`] with one [`plan::Decision`] per object — situation,
//! action, target id, the [`plan::Change`] to write and the [`plan::LinkChange`] to
//! record — plus the deletion count against `maxDeletes` (a plan over the limit
//! `needs_allow_deletes`) and the dry-run flag. The runtime (store tables for
//! links and runs, the HTTP endpoints, the CLI, the scheduler) reads the objects,
//! calls the planner and carries the decisions out; nothing here performs I/O.
//! Secrets are resolved through an injected [`secret::SecretLookup`] and never
//! shown by `Debug` or `Display`.
//!
//! Filters, value paths and element matching are scim-proto's: `sourceFilter` and
//! correlation use its evaluator, so they agree with scimd's own searches.

pub mod config;
pub mod cron;
pub mod error;
pub mod links;
pub mod mapping;
pub mod ops;
pub mod path;
pub mod plan;
pub mod secret;
pub mod situation;
