//! The `scim-client` library against a live scimd (and the reference server).
