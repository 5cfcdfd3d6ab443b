//! scimd's reconciliation runtime, on the pure planner of `scim-sync`.
//!
//! An [`engine::Engine`] holds the mappings and connectors of a sync directory,
//! scimd's own objects (an [`objects::ObjectSet`] the server implements over its
//! service layer) and the store's `SyncStore`. A run:
//!
//! 1. is created in the store (one open run per mapping, the database's rule),
//!    and leased by the process that executes it ([`engine::LEASE`]; renewed as
//!    it goes, taken over when its process dies);
//! 2. reads its source and target objects: all of them for a reconciliation;
//!    for a live sync only the sources changed since the mapping's last
//!    successful run ([`objects::Mark`]: scimd's change feed, or a remote's
//!    `meta.lastModified` with an overlap window) and the targets they reach;
//! 3. plans with [`scim_sync::plan::plan`] and carries the decisions out a few
//!    at a time, links recorded as each write succeeds, an audit entry per
//!    object. A 409 on create links the existing object; 403 stops the run;
//!    429/5xx are retried by scim-client; a dry run writes only its audit; a
//!    plan over `maxDeletes` does everything but its deletes and waits.
//!
//! Because a run plans from the objects and links as they are, a run resumed
//! after a crash finds what the earlier attempt did (linked, or by correlation)
//! and creates nothing twice.

pub mod connectors;
pub mod engine;
pub mod objects;
pub mod remote;
mod run;
pub mod view;

pub use connectors::{ConnectorDir, ConnectorError};
pub use engine::{Engine, EngineError, EngineParts};
pub use objects::{Changed, Listed, Mark, ObjectError, ObjectSet};
pub use run::DRY_RUN;
pub use view::{RunKind, RunState};
