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
    // Change feed: one row per committed write, in commit order (SQLite has one
    // writer, so the rowid order is the commit order).
    r#"
CREATE TABLE IF NOT EXISTS changes (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    res_id   TEXT NOT NULL,
    rtype    TEXT NOT NULL,
    op       TEXT NOT NULL,
    version  INTEGER NOT NULL,
    at       TEXT NOT NULL,
    doc      TEXT
);
CREATE INDEX IF NOT EXISTS changes_at ON changes (at);
CREATE TABLE IF NOT EXISTS feed_state (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
"#,
    // Custom user attributes registered by administrators.
    r#"
CREATE TABLE IF NOT EXISTS custom_attributes (
    name_key    TEXT PRIMARY KEY,
    definition  TEXT NOT NULL
);
"#,
    // Index shape for scale (benchmarks at 1M users): the text index covers
    // res_id, so `co`/`ew` scans and sorted-page walks read the index alone; the
    // numeric index only holds rows that have a number (text rows were ~90% of it).
    r#"
DROP INDEX IF EXISTS attr_index_text;
CREATE INDEX IF NOT EXISTS attr_index_text ON attr_index (rtype, path, v_text, res_id);
DROP INDEX IF EXISTS attr_index_num;
CREATE INDEX IF NOT EXISTS attr_index_num ON attr_index (rtype, path, v_num) WHERE v_num IS NOT NULL;
"#,
    // Step 6: interception scripts (`ord`: `order` is a keyword), and the revision
    // that every change bumps, which running servers poll for hot reload.
    r#"
CREATE TABLE IF NOT EXISTS scripts (
    name_key       TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    ord            INTEGER NOT NULL,
    enabled        INTEGER NOT NULL,
    source         TEXT NOT NULL,
    properties     TEXT NOT NULL,
    created        TEXT NOT NULL,
    updated        TEXT NOT NULL,
    last_error     TEXT,
    last_error_at  TEXT
);
CREATE TABLE IF NOT EXISTS script_revision (
    id        INTEGER PRIMARY KEY,
    revision  INTEGER NOT NULL
);
INSERT INTO script_revision (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
"#,
    // Step 7: the sync engine (crate::sync). A link set holds each id at most once
    // per side (the two keys). `sync_runs_open` lets a mapping have one open run at
    // a time, whatever the number of processes: the database refuses the second.
    // `audit_count` numbers a run's audit entries without a sequence.
    r#"
CREATE TABLE IF NOT EXISTS sync_links (
    link_set   TEXT NOT NULL,
    first_id   TEXT NOT NULL,
    second_id  TEXT NOT NULL,
    PRIMARY KEY (link_set, first_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS sync_links_second ON sync_links (link_set, second_id);
CREATE TABLE IF NOT EXISTS sync_runs (
    id           TEXT PRIMARY KEY,
    mapping      TEXT NOT NULL,
    dry_run      INTEGER NOT NULL,
    state        TEXT NOT NULL,
    stage        TEXT NOT NULL,
    progress     TEXT NOT NULL,
    summaries    TEXT NOT NULL,
    cursor       TEXT,
    started      TEXT NOT NULL,
    ended        TEXT,
    audit_count  INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS sync_runs_open ON sync_runs (mapping)
    WHERE state IN ('ACTIVE', 'WAITING');
CREATE INDEX IF NOT EXISTS sync_runs_started ON sync_runs (mapping, started);
CREATE INDEX IF NOT EXISTS sync_runs_ended ON sync_runs (ended);
CREATE TABLE IF NOT EXISTS sync_audit (
    run_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    situation  TEXT NOT NULL,
    action     TEXT NOT NULL,
    status     TEXT NOT NULL,
    source_id  TEXT,
    target_id  TEXT,
    error      TEXT,
    PRIMARY KEY (run_id, seq)
);
"#,
    // The lease on a run: which process executes it, and until when. A process
    // renews its lease while it runs; an ACTIVE run whose lease ran out (its
    // process died) is taken over by the next process that claims it.
    r#"
ALTER TABLE sync_runs ADD COLUMN lease_owner TEXT;
ALTER TABLE sync_runs ADD COLUMN lease_until TEXT;
"#,
    // How many resources of each type there are, kept by triggers in the writing
    // transaction: an unfiltered list's totalResults (every page of a cursor
    // walk) reads one row instead of counting the table. One writer at a time
    // here, so the rows never make a writer wait; PostgreSQL has its own scheme
    // (its step 9).
    r#"
CREATE TABLE IF NOT EXISTS type_counts (
    rtype  TEXT PRIMARY KEY,
    n      INTEGER NOT NULL
);
INSERT INTO type_counts (rtype, n)
    SELECT rtype, count(*) FROM resources WHERE true GROUP BY rtype
    ON CONFLICT (rtype) DO UPDATE SET n = excluded.n;
CREATE TRIGGER IF NOT EXISTS resources_counted AFTER INSERT ON resources BEGIN
    INSERT INTO type_counts (rtype, n) VALUES (NEW.rtype, 1)
        ON CONFLICT (rtype) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS resources_uncounted AFTER DELETE ON resources BEGIN
    UPDATE type_counts SET n = n - 1 WHERE rtype = OLD.rtype;
END;
CREATE TRIGGER IF NOT EXISTS resources_recounted AFTER UPDATE OF rtype ON resources
    WHEN OLD.rtype <> NEW.rtype BEGIN
    UPDATE type_counts SET n = n - 1 WHERE rtype = OLD.rtype;
    INSERT INTO type_counts (rtype, n) VALUES (NEW.rtype, 1)
        ON CONFLICT (rtype) DO UPDATE SET n = n + 1;
END;
"#,
    // Step 10: substring search from an index. `co` and `ew` on any indexed string
    // read candidate rows from a trigram index instead of scanning every value of
    // the attribute (issue 17). `attr_trigrams` is an FTS5 table without content
    // of its own, keyed by the attr_index row's id: `detail=none` keeps only which
    // rows hold a trigram (no positions), so a search asks for rows holding all of
    // the needle's trigrams and checks the value itself (`sql.rs`). attr_index
    // gets an explicit INTEGER PRIMARY KEY first: VACUUM may renumber implicit
    // rowids, which would point the trigrams at other rows. Trigrams are of the
    // stored form (lower case for caseExact=false), so the index is case-sensitive.
    // `attr_index_res` loses its `path` (a resource has a dozen rows: its reads
    // take them all; 13 bytes less per row).
    // The writer queues the ids of the rows it adds and removes (`trigram_queue`,
    // sqlite/batch.rs) and moves them into the FTS table once per transaction,
    // outside the jobs' savepoints: FTS5 writes a new segment at every savepoint.
    // No triggers on attr_index: each would give every row insert a statement
    // journal, and a load of 100,000 users ran at 80 users/s with them. For the
    // same reason the writer keeps `type_counts` itself now (its triggers on
    // `resources` made a /Bulk load of 1,000-user requests 3× slower).
    // The change feed stops copying documents: a resource's latest change takes
    // its document from `resources` (same version), and only when a later write
    // supersedes it does the writer copy the document into the change row
    // (`changes_res` finds that row). At 80,000 users the copies were 1,050 of
    // 6,400 bytes per user.
    r#"
CREATE TABLE attr_index_v2 (
    id      INTEGER PRIMARY KEY,
    res_id  TEXT NOT NULL,
    rtype   TEXT NOT NULL,
    path    TEXT NOT NULL,
    elem    INTEGER NOT NULL,
    v_text  TEXT,
    v_num   REAL,
    v_bool  INTEGER
);
INSERT INTO attr_index_v2 (id, res_id, rtype, path, elem, v_text, v_num, v_bool)
    SELECT rowid, res_id, rtype, path, elem, v_text, v_num, v_bool FROM attr_index;
DROP TABLE attr_index;
ALTER TABLE attr_index_v2 RENAME TO attr_index;
CREATE INDEX attr_index_text ON attr_index (rtype, path, v_text, res_id);
CREATE INDEX attr_index_num ON attr_index (rtype, path, v_num) WHERE v_num IS NOT NULL;
CREATE INDEX attr_index_res ON attr_index (res_id);
CREATE VIRTUAL TABLE attr_trigrams USING fts5(
    v, content='', contentless_delete=1, detail=none,
    tokenize='trigram case_sensitive 1'
);
INSERT INTO attr_trigrams (rowid, v) SELECT id, v_text FROM attr_index WHERE length(v_text) >= 3;
CREATE INDEX IF NOT EXISTS changes_res ON changes (res_id, seq);
DROP TRIGGER IF EXISTS resources_counted;
DROP TRIGGER IF EXISTS resources_uncounted;
DROP TRIGGER IF EXISTS resources_recounted;
CREATE TABLE trigram_queue (
    seq    INTEGER PRIMARY KEY,
    id     INTEGER NOT NULL,
    added  INTEGER NOT NULL
);
"#,
    // Lock-outs are gone (failures are throttled in memory per client and
    // address); UMA permission tickets are single-use, across processes.
    r#"
DROP TABLE IF EXISTS oauth_failures;
CREATE TABLE IF NOT EXISTS redeemed_tickets (
    jti      TEXT PRIMARY KEY,
    expires  TEXT NOT NULL
);
"#,
    // The audit trail: who made each write, kept with its change row.
    r#"
ALTER TABLE changes ADD COLUMN principal TEXT;
ALTER TABLE changes ADD COLUMN request_id TEXT;
ALTER TABLE changes ADD COLUMN source_ip TEXT;
CREATE INDEX IF NOT EXISTS changes_principal ON changes (principal, seq) WHERE principal IS NOT NULL;
"#,
    // What a link's two objects were when a run last found them in step
    // (`LinkRow::stamp`): a re-run reads only the pairs whose stamp no longer holds.
    r#"
ALTER TABLE sync_links ADD COLUMN stamp TEXT;
"#,
];

/// PostgreSQL schema (also meant for CockroachDB / YugabyteDB), applied in order at
/// start; `schema_migrations` records the steps applied. Same tables as SQLite,
/// with these differences:
/// - text columns that are compared or sorted are `COLLATE "C"` (code point order,
///   as the evaluator compares; the compiler's `text_order` then matches the index);
/// - `members.pos` orders a group's members (SQLite uses its rowid): computed per
///   group while the group's row is locked, never from a sequence;
/// - `changes` is keyed by the writing transaction's id, so the feed can tell which
///   rows can no longer be overtaken by a transaction still in flight.
pub const POSTGRES_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE IF NOT EXISTS resources (
    id          TEXT COLLATE "C" PRIMARY KEY,
    rtype       TEXT COLLATE "C" NOT NULL,
    doc         TEXT NOT NULL,
    version     BIGINT NOT NULL,
    created     TEXT COLLATE "C" NOT NULL,
    modified    TEXT COLLATE "C" NOT NULL,
    unique_key  TEXT COLLATE "C",
    display     TEXT COLLATE "C",
    secret      TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS resources_unique ON resources (rtype, unique_key);
CREATE INDEX IF NOT EXISTS resources_modified ON resources (rtype, modified, id);
CREATE INDEX IF NOT EXISTS resources_created ON resources (rtype, created, id);

CREATE TABLE IF NOT EXISTS attr_index (
    res_id  TEXT COLLATE "C" NOT NULL,
    rtype   TEXT COLLATE "C" NOT NULL,
    path    TEXT COLLATE "C" NOT NULL,
    elem    BIGINT NOT NULL,
    v_text  TEXT COLLATE "C",
    v_num   DOUBLE PRECISION,
    v_bool  BOOLEAN
);
CREATE INDEX IF NOT EXISTS attr_index_text ON attr_index (rtype, path, v_text);
CREATE INDEX IF NOT EXISTS attr_index_num ON attr_index (rtype, path, v_num);
CREATE INDEX IF NOT EXISTS attr_index_res ON attr_index (res_id, path);

CREATE TABLE IF NOT EXISTS members (
    group_id     TEXT COLLATE "C" NOT NULL,
    member_id    TEXT COLLATE "C" NOT NULL,
    member_type  TEXT NOT NULL,
    pos          BIGINT NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX IF NOT EXISTS members_member ON members (member_id);
CREATE INDEX IF NOT EXISTS members_pos ON members (group_id, pos);

CREATE TABLE IF NOT EXISTS changes (
    tx       XID8 NOT NULL DEFAULT pg_current_xact_id(),
    id       TEXT COLLATE "C" NOT NULL,
    res_id   TEXT NOT NULL,
    rtype    TEXT NOT NULL,
    op       TEXT NOT NULL,
    version  BIGINT NOT NULL,
    at       TEXT COLLATE "C" NOT NULL,
    doc      TEXT,
    PRIMARY KEY (tx, id)
);
CREATE INDEX IF NOT EXISTS changes_at ON changes (at);
CREATE TABLE IF NOT EXISTS feed_state (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
"#,
    // Step 2: the built-in authorization server (scim-store/src/clients.rs).
    r#"
CREATE TABLE IF NOT EXISTS oauth_clients (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    created       TEXT COLLATE "C" NOT NULL,
    expires       TEXT COLLATE "C",
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    locked_until  TEXT COLLATE "C",
    origin        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_failures (
    client_id  TEXT COLLATE "C" NOT NULL,
    at         TEXT COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth_failures_client ON oauth_failures (client_id, at);
CREATE TABLE IF NOT EXISTS oauth_signing_keys (
    kid          TEXT COLLATE "C" PRIMARY KEY,
    alg          TEXT NOT NULL,
    private_key  BYTEA NOT NULL,
    public_jwk   TEXT NOT NULL,
    created      TEXT COLLATE "C" NOT NULL,
    retired      TEXT COLLATE "C"
);
CREATE TABLE IF NOT EXISTS server_secrets (
    name     TEXT PRIMARY KEY,
    value    BYTEA NOT NULL,
    created  TEXT NOT NULL
);
"#,
    // Step 3: custom user attributes registered by administrators.
    r#"
CREATE TABLE IF NOT EXISTS custom_attributes (
    name_key    TEXT COLLATE "C" PRIMARY KEY,
    definition  TEXT NOT NULL,
    created     TIMESTAMPTZ NOT NULL DEFAULT now()
);
"#,
    // Step 4: the same index shape as SQLite's step 5.
    r#"
DROP INDEX IF EXISTS attr_index_text;
CREATE INDEX IF NOT EXISTS attr_index_text ON attr_index (rtype, path, v_text, res_id);
DROP INDEX IF EXISTS attr_index_num;
CREATE INDEX IF NOT EXISTS attr_index_num ON attr_index (rtype, path, v_num) WHERE v_num IS NOT NULL;
"#,
    // Step 5: interception scripts, as SQLite's step 6. The revision is one row
    // updated in each script write's transaction (no sequence: CockroachDB and
    // YugabyteDB hand out sequence values out of commit order).
    r#"
CREATE TABLE IF NOT EXISTS scripts (
    name_key       TEXT COLLATE "C" PRIMARY KEY,
    name           TEXT NOT NULL,
    ord            BIGINT NOT NULL,
    enabled        BOOLEAN NOT NULL,
    source         TEXT NOT NULL,
    properties     TEXT NOT NULL,
    created        TEXT COLLATE "C" NOT NULL,
    updated        TEXT COLLATE "C" NOT NULL,
    last_error     TEXT,
    last_error_at  TEXT COLLATE "C"
);
CREATE TABLE IF NOT EXISTS script_revision (
    id        BIGINT PRIMARY KEY,
    revision  BIGINT NOT NULL
);
INSERT INTO script_revision (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
"#,
    // Step 6: the sync engine, as SQLite's step 7. A link set holds each id at most once
    // per side (the two keys). `sync_runs_open` lets a mapping have one open run at
    // a time, whatever the number of processes: the database refuses the second.
    // `audit_count` numbers a run's audit entries without a sequence.
    r#"
CREATE TABLE IF NOT EXISTS sync_links (
    link_set   TEXT COLLATE "C" NOT NULL,
    first_id   TEXT COLLATE "C" NOT NULL,
    second_id  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (link_set, first_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS sync_links_second ON sync_links (link_set, second_id);
CREATE TABLE IF NOT EXISTS sync_runs (
    id           TEXT PRIMARY KEY,
    mapping      TEXT NOT NULL,
    dry_run      BOOLEAN NOT NULL,
    state        TEXT NOT NULL,
    stage        TEXT NOT NULL,
    progress     TEXT NOT NULL,
    summaries    TEXT NOT NULL,
    cursor       TEXT,
    started      TEXT COLLATE "C" NOT NULL,
    ended        TEXT COLLATE "C",
    audit_count  BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS sync_runs_open ON sync_runs (mapping)
    WHERE state IN ('ACTIVE', 'WAITING');
CREATE INDEX IF NOT EXISTS sync_runs_started ON sync_runs (mapping, started);
CREATE INDEX IF NOT EXISTS sync_runs_ended ON sync_runs (ended);
CREATE TABLE IF NOT EXISTS sync_audit (
    run_id     TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    situation  TEXT NOT NULL,
    action     TEXT NOT NULL,
    status     TEXT NOT NULL,
    source_id  TEXT,
    target_id  TEXT,
    error      TEXT,
    PRIMARY KEY (run_id, seq)
);
"#,
    // The lease on a run (see the SQLite step).
    r#"
ALTER TABLE sync_runs ADD COLUMN IF NOT EXISTS lease_owner TEXT;
ALTER TABLE sync_runs ADD COLUMN IF NOT EXISTS lease_until TEXT COLLATE "C";
"#,
    // Step 8: substring search from an index (SQLite's step 10): a pg_trgm GIN
    // index on the values, which serves `LIKE '%needle%'` and `LIKE '%needle'`.
    // `{trgm}` is the schema that holds the extension (`migrate.rs` creates it
    // or finds it), so the operator class resolves whatever the search_path.
    r#"
CREATE INDEX IF NOT EXISTS attr_index_trigrams ON attr_index USING gin (v_text {trgm}.gin_trgm_ops);
ANALYZE attr_index;
"#,
    // Step 9: resources per type, so an unfiltered list's totalResults is not a
    // count of the table (SQLite's step 9). Concurrent writers must not update
    // one row per type (they would queue on it, and deadlock across types), so
    // each writing statement only inserts its delta; the store folds the deltas
    // into `type_counts` now and then, one process at a time
    // (`compact_type_counts`). Base plus deltas is exact in every snapshot. Only
    // an import over an existing id can change a resource's type (REPLACE keeps
    // `rtype`): that row trigger fires for statements that set the column alone.
    r#"
CREATE TABLE IF NOT EXISTS type_counts (
    rtype  TEXT COLLATE "C" PRIMARY KEY,
    n      BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS type_count_deltas (
    rtype  TEXT COLLATE "C" NOT NULL,
    d      BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS type_count_deltas_rtype ON type_count_deltas (rtype);
INSERT INTO type_counts (rtype, n) SELECT rtype, count(*) FROM resources GROUP BY rtype
    ON CONFLICT (rtype) DO UPDATE SET n = excluded.n;
CREATE OR REPLACE FUNCTION scimd_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO type_count_deltas (rtype, d) SELECT rtype, count(*) FROM new_rows GROUP BY rtype;
    ELSE
        INSERT INTO type_count_deltas (rtype, d) SELECT rtype, -count(*) FROM old_rows GROUP BY rtype;
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS resources_counted_insert ON resources;
CREATE TRIGGER resources_counted_insert AFTER INSERT ON resources
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION scimd_counted();
DROP TRIGGER IF EXISTS resources_counted_delete ON resources;
CREATE TRIGGER resources_counted_delete AFTER DELETE ON resources
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION scimd_counted();
CREATE OR REPLACE FUNCTION scimd_recounted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO type_count_deltas (rtype, d) VALUES (OLD.rtype, -1), (NEW.rtype, 1);
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS resources_recounted ON resources;
CREATE TRIGGER resources_recounted AFTER UPDATE OF rtype ON resources FOR EACH ROW
    WHEN (OLD.rtype IS DISTINCT FROM NEW.rtype) EXECUTE FUNCTION scimd_recounted();
"#,
    r#"
DROP TABLE IF EXISTS oauth_failures;
CREATE TABLE IF NOT EXISTS redeemed_tickets (
    jti      TEXT COLLATE "C" PRIMARY KEY,
    expires  TEXT COLLATE "C" NOT NULL
);
"#,
    r#"
ALTER TABLE changes ADD COLUMN IF NOT EXISTS principal TEXT COLLATE "C";
ALTER TABLE changes ADD COLUMN IF NOT EXISTS request_id TEXT;
ALTER TABLE changes ADD COLUMN IF NOT EXISTS source_ip TEXT;
CREATE INDEX IF NOT EXISTS changes_principal ON changes (principal, tx, id) WHERE principal IS NOT NULL;
CREATE INDEX IF NOT EXISTS changes_res ON changes (res_id, tx, id);
"#,
    r#"
ALTER TABLE sync_links ADD COLUMN IF NOT EXISTS stamp TEXT;
"#,
];
