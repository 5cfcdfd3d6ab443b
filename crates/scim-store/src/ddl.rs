//! Table layout shared by every backend. Resources are JSON documents; values that
//! filters and sorts need are copied into `attr_index` (one row per simple value,
//! `elem` numbering the element of a multi-valued attribute so value-path filters
//! can require that several conditions hold on the same element); group membership
//! lives in `members`, never inside the group document.

/// SQLite schema, applied in order at start. Each entry is one migration step.
pub const SQLITE_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE IF NOT EXISTS resources (
    id          TEXT PRIMARY KEY,
    rtype       TEXT NOT NULL,
    doc         TEXT NOT NULL,
    version     INTEGER NOT NULL,
    created     TEXT NOT NULL,
    modified    TEXT NOT NULL,
    unique_key  TEXT,
    display     TEXT,
    secret      TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS resources_unique ON resources (rtype, unique_key);
CREATE INDEX IF NOT EXISTS resources_modified ON resources (rtype, modified);
CREATE INDEX IF NOT EXISTS resources_created ON resources (rtype, created);

CREATE TABLE IF NOT EXISTS attr_index (
    res_id  TEXT NOT NULL,
    rtype   TEXT NOT NULL,
    path    TEXT NOT NULL,
    elem    INTEGER NOT NULL,
    v_text  TEXT,
    v_num   REAL,
    v_bool  INTEGER
);
CREATE INDEX IF NOT EXISTS attr_index_text ON attr_index (rtype, path, v_text);
CREATE INDEX IF NOT EXISTS attr_index_num ON attr_index (rtype, path, v_num);
CREATE INDEX IF NOT EXISTS attr_index_res ON attr_index (res_id, path);

CREATE TABLE IF NOT EXISTS members (
    group_id     TEXT NOT NULL,
    member_id    TEXT NOT NULL,
    member_type  TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX IF NOT EXISTS members_member ON members (member_id);
"#,
    // Step 2: the built-in authorization server (scim-store/src/clients.rs).
    r#"
CREATE TABLE IF NOT EXISTS oauth_clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    created       TEXT NOT NULL,
    expires       TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0,
    locked_until  TEXT,
    origin        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_failures (
    client_id  TEXT NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth_failures_client ON oauth_failures (client_id, at);
CREATE TABLE IF NOT EXISTS oauth_signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    public_jwk   TEXT NOT NULL,
    created      TEXT NOT NULL,
    retired      TEXT
);
CREATE TABLE IF NOT EXISTS server_secrets (
    name     TEXT PRIMARY KEY,
    value    BLOB NOT NULL,
    created  TEXT NOT NULL
);
"#,
];
