//! The clock is shared with the rest of scimd (see `scim_proto::clock`).

pub use scim_proto::clock::{Clock, SystemClock};
