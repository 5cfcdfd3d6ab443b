//! The `scim` command-line client against a live scimd.
