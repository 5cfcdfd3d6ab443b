//! `scim`: the command-line SCIM 2.0 client.

fn main() {}
