//! A SCIM 2.0 client (RFC 7643 / 7644) that works against any SCIM server.
