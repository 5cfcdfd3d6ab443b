//! API protection for scimd.
