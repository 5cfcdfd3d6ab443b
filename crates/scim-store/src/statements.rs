//! The fixed statements both backends run, spelled once. In a template `{n}` is
//! the n-th bound parameter and `{n::type}` one whose type the server must be
//! told (PostgreSQL cannot infer it from `$n IS NULL`); `{member_order}` and
//! `{null_text}` are the dialect's words for those. Each dialect renders the set
//! once per process, so callers get `&'static str` for their statement caches.

use crate::dialect::Dialect;

/// Resource statements; parameters in the order the comment gives.
const GET: &str = "SELECT doc, version FROM resources WHERE id = {1} AND rtype = {2}";
const FIND_UNIQUE: &str =
    "SELECT id, doc, version FROM resources WHERE rtype = {1} AND unique_key = {2}";
/// Why a conditional write matched no row: is the resource there at all?
const VERSION_OF: &str = "SELECT version FROM resources WHERE id = {1} AND rtype = {2}";
/// Read-check-write in one statement: (id, rtype, doc, modified, unique_key,
/// display, set secret?, secret, if_version); no row when the resource is missing
/// or its version is not `if_version`. On PostgreSQL the row lock makes a second
/// writer re-check the version once the first commits.
const REPLACE: &str = "UPDATE resources SET doc = {3}, version = version + 1, modified = {4},
        unique_key = {5}, display = {6},
        secret = CASE WHEN {7} THEN {8} ELSE secret END
 WHERE id = {1} AND rtype = {2} AND ({9::bigint} IS NULL OR version = {9})
 RETURNING version";
/// (id, rtype, if_version), as `REPLACE`.
const DELETE: &str =
    "DELETE FROM resources WHERE id = {1} AND rtype = {2} AND ({3::bigint} IS NULL OR version = {3})
 RETURNING version";
const DELETE_INDEX: &str = "DELETE FROM attr_index WHERE res_id = {1}";
const DELETE_MEMBERSHIPS: &str = "DELETE FROM members WHERE group_id = {1} OR member_id = {1}";
/// A group's members in order, with what member lists show of each.
const MEMBERS_WITH_DISPLAY: &str = "SELECT m.member_id, m.member_type, r.display FROM members m
                     LEFT JOIN resources r ON r.id = m.member_id
                     WHERE m.group_id = {1} ORDER BY m.{member_order}";
/// A group's members in order, without the join.
const MEMBERS: &str = "SELECT m.member_id, m.member_type, {null_text} FROM members m
                     WHERE m.group_id = {1} ORDER BY m.{member_order}";
/// One page of a group's members by member id, with display: (group_id, limit,
/// offset). By id, not in the group's order: the primary key walks to the page
/// without sorting a large group's every member.
/// The offset is walked in the key alone; only the page's rows are joined.
const MEMBERS_PAGE: &str = "SELECT m.member_id, m.member_type, r.display FROM
                     (SELECT member_id, member_type FROM members WHERE group_id = {1}
                      ORDER BY member_id LIMIT {2} OFFSET {3}) m
                     LEFT JOIN resources r ON r.id = m.member_id ORDER BY m.member_id";
const COUNT_MEMBERS: &str = "SELECT count(*) FROM members WHERE group_id = {1}";
const PRUNED_THROUGH: &str = "SELECT value FROM feed_state WHERE name = 'pruned_through'";
const ADD_CUSTOM_ATTRIBUTE: &str =
    "INSERT INTO custom_attributes (name_key, definition) VALUES ({1}, {2})";
const REMOVE_CUSTOM_ATTRIBUTE: &str = "DELETE FROM custom_attributes WHERE name_key = {1}";
/// Interception scripts: the columns every read selects, in `ScriptRecord` order.
const LIST_SCRIPTS: &str =
    "SELECT name, ord, enabled, source, properties, created, updated, last_error, last_error_at
                 FROM scripts ORDER BY ord, name_key";
const GET_SCRIPT: &str =
    "SELECT name, ord, enabled, source, properties, created, updated, last_error, last_error_at
                 FROM scripts WHERE name_key = {1}";
/// (name_key, name, ord, enabled, source, properties, created, updated,
/// last_error, last_error_at).
const ADD_SCRIPT: &str = "INSERT INTO scripts (name_key, name, ord, enabled, source, properties, created, updated, last_error, last_error_at)
                 VALUES ({1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}, {10})";
/// (name_key, name, ord, enabled, source, properties, updated).
const REPLACE_SCRIPT: &str =
    "UPDATE scripts SET name = {2}, ord = {3}, enabled = {4}, source = {5},
                 properties = {6}, updated = {7}, last_error = NULL, last_error_at = NULL
                 WHERE name_key = {1}";
const REMOVE_SCRIPT: &str = "DELETE FROM scripts WHERE name_key = {1}";
const BUMP_SCRIPTS_REVISION: &str =
    "UPDATE script_revision SET revision = revision + 1 WHERE id = 1";
const SCRIPTS_REVISION: &str = "SELECT revision FROM script_revision WHERE id = 1";
/// (name_key, message, at).
const RECORD_SCRIPT_ERROR: &str =
    "UPDATE scripts SET last_error = {2}, last_error_at = {3} WHERE name_key = {1}";
const EXPORT_RESOURCES: &str =
    "SELECT id, rtype, doc, version, created, modified, unique_key, display, secret
                 FROM resources ORDER BY rtype, created, id";

/// The authorization server's statements.
const CREATE_CLIENT: &str = "INSERT INTO oauth_clients (id, name, secret_hash, scopes, created, expires, disabled, locked_until, origin)
                 VALUES ({1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9})";
const GET_CLIENT: &str =
    "SELECT id, name, secret_hash, scopes, created, expires, disabled, locked_until, origin
                 FROM oauth_clients WHERE id = {1}";
const LIST_CLIENTS: &str =
    "SELECT id, name, secret_hash, scopes, created, expires, disabled, locked_until, origin
                 FROM oauth_clients ORDER BY created, id";
const SET_CLIENT_DISABLED: &str = "UPDATE oauth_clients SET disabled = {2} WHERE id = {1}";
const DELETE_CLIENT: &str = "DELETE FROM oauth_clients WHERE id = {1}";
const ROTATE_SECRET: &str =
    "UPDATE oauth_clients SET secret_hash = {2}, locked_until = NULL WHERE id = {1}";
const REDEEM_TICKET: &str =
    "INSERT INTO redeemed_tickets (jti, expires) VALUES ({1}, {2}) ON CONFLICT (jti) DO NOTHING";
const PRUNE_REDEEMED_TICKETS: &str = "DELETE FROM redeemed_tickets WHERE expires < {1}";
const DELETE_EXPIRED_DYNAMIC_CLIENTS: &str =
    "DELETE FROM oauth_clients WHERE origin = 'dynamic' AND expires IS NOT NULL AND expires < {1}";
const SIGNING_KEYS: &str = "SELECT kid, alg, private_key, public_jwk, created, retired
                 FROM oauth_signing_keys ORDER BY created DESC, kid";
const ADD_SIGNING_KEY: &str =
    "INSERT INTO oauth_signing_keys (kid, alg, private_key, public_jwk, created, retired)
                 VALUES ({1}, {2}, {3}, {4}, {5}, {6})";
const RETIRE_SIGNING_KEYS: &str =
    "UPDATE oauth_signing_keys SET retired = {2} WHERE kid <> {1} AND retired IS NULL";
const DELETE_SIGNING_KEY: &str = "DELETE FROM oauth_signing_keys WHERE kid = {1}";
/// Concurrent first starts: one insert wins, every process reads it.
const ADD_SERVER_SECRET: &str =
    "INSERT INTO server_secrets (name, value, created) VALUES ({1}, {2}, {3})
                 ON CONFLICT (name) DO NOTHING";
const SERVER_SECRET: &str = "SELECT value FROM server_secrets WHERE name = {1}";

/// (rtype, limit) for the first page of `versions`, (rtype, after, limit) next.
/// `rtype || ''` keeps SQLite off the (rtype, …) indexes: through one of them
/// each page would sort every resource of the type; the primary key walks in
/// id order and stops at the limit.
const VERSIONS_FIRST_PAGE: &str =
    "SELECT id, version FROM resources WHERE rtype || '' = {1} ORDER BY id LIMIT {2}";
const VERSIONS_NEXT_PAGE: &str = "SELECT id, version FROM resources
                 WHERE rtype || '' = {1} AND id > {2} ORDER BY id LIMIT {3}";

/// The sync engine's statements (crate::sync). Links: (link_set, first_id,
/// second_id) unless the comment says otherwise.
const DROP_LINKS_OF: &str =
    "DELETE FROM sync_links WHERE link_set = {1} AND (first_id = {2} OR second_id = {3})";
/// (link_set, first_id, second_id, stamp).
const ADD_LINK: &str =
    "INSERT INTO sync_links (link_set, first_id, second_id, stamp) VALUES ({1}, {2}, {3}, {4})";
/// (link_set, first_id, stamp).
const STAMP_LINK: &str =
    "UPDATE sync_links SET stamp = {3} WHERE link_set = {1} AND first_id = {2}";
/// (link_set, id) for these four.
const REMOVE_LINK_BY_FIRST: &str = "DELETE FROM sync_links WHERE link_set = {1} AND first_id = {2}";
const REMOVE_LINK_BY_SECOND: &str =
    "DELETE FROM sync_links WHERE link_set = {1} AND second_id = {2}";
const LINK_BY_FIRST: &str =
    "SELECT first_id, second_id, stamp FROM sync_links WHERE link_set = {1} AND first_id = {2}";
const LINK_BY_SECOND: &str =
    "SELECT first_id, second_id, stamp FROM sync_links WHERE link_set = {1} AND second_id = {2}";
/// Keyset pages: (link_set, limit) for the first, (link_set, after, limit) next.
const LINKS_FIRST_PAGE: &str =
    "SELECT first_id, second_id, stamp FROM sync_links WHERE link_set = {1}
                 ORDER BY first_id LIMIT {2}";
const LINKS_NEXT_PAGE: &str = "SELECT first_id, second_id, stamp FROM sync_links
                 WHERE link_set = {1} AND first_id > {2} ORDER BY first_id LIMIT {3}";
const COUNT_LINKS: &str = "SELECT count(*) FROM sync_links WHERE link_set = {1}";
/// (id, mapping, dry_run, state, started, empty summary: the progress and
/// summaries a new run starts with).
const CREATE_RUN: &str = "INSERT INTO sync_runs (id, mapping, dry_run, state, stage, progress, summaries, cursor, started, ended)
                 VALUES ({1}, {2}, {3}, {4}, '', {6}, {6}, NULL, {5}, NULL)";
/// Every run read selects these, in `RunRecord` order.
const GET_RUN: &str =
    "SELECT id, mapping, dry_run, state, stage, progress, summaries, cursor, started, ended
                 FROM sync_runs WHERE id = {1}";
/// The states are `crate::sync::OPEN_RUN_STATES`, as in the index `sync_runs_open`.
pub(crate) const OPEN_RUN_SQL: &str =
    "SELECT id, mapping, dry_run, state, stage, progress, summaries, cursor, started, ended
                 FROM sync_runs WHERE mapping = {1} AND state IN ('ACTIVE', 'WAITING')";
/// (limit).
const RECENT_RUNS: &str =
    "SELECT id, mapping, dry_run, state, stage, progress, summaries, cursor, started, ended
                 FROM sync_runs ORDER BY started DESC, id DESC LIMIT {1}";
/// (mapping, limit).
const RECENT_RUNS_OF: &str =
    "SELECT id, mapping, dry_run, state, stage, progress, summaries, cursor, started, ended
                 FROM sync_runs WHERE mapping = {1} ORDER BY started DESC, id DESC LIMIT {2}";
/// (id, state, stage, progress, summaries, cursor); finished runs do not change.
const UPDATE_RUN: &str =
    "UPDATE sync_runs SET state = {2}, stage = {3}, progress = {4}, summaries = {5}, cursor = {6}
                 WHERE id = {1} AND ended IS NULL";
/// (id, owner, now, until): take or renew the lease of an ACTIVE run, if it is
/// free, ours, or ran out.
const CLAIM_RUN: &str = "UPDATE sync_runs SET lease_owner = {2}, lease_until = {4}
                 WHERE id = {1} AND state = 'ACTIVE' AND ended IS NULL
                   AND (lease_owner IS NULL OR lease_owner = {2} OR lease_until < {3})";
/// (id, owner): give the lease up (the run waits, or a process stops).
const RELEASE_RUN: &str =
    "UPDATE sync_runs SET lease_owner = NULL, lease_until = NULL WHERE id = {1} AND lease_owner = {2}";
/// (id, state, ended).
const FINISH_RUN: &str =
    "UPDATE sync_runs SET state = {2}, ended = {3} WHERE id = {1} AND ended IS NULL";
/// (run_id, how many): reserves the next `seq` values and, on PostgreSQL, locks
/// the run's row so concurrent appends to one run number their entries in turn.
const RESERVE_AUDIT: &str =
    "UPDATE sync_runs SET audit_count = audit_count + {2} WHERE id = {1} RETURNING audit_count";
/// (run_id, seq, situation, action, status, source_id, target_id, error).
const ADD_AUDIT: &str =
    "INSERT INTO sync_audit (run_id, seq, situation, action, status, source_id, target_id, error)
                 VALUES ({1}, {2}, {3}, {4}, {5}, {6}, {7}, {8})";
/// (run_id, after_seq, limit).
const AUDIT_PAGE: &str =
    "SELECT seq, situation, action, status, source_id, target_id, error FROM sync_audit
                 WHERE run_id = {1} AND seq > {2} ORDER BY seq LIMIT {3}";
/// (older_than) for both: the audit of the runs the second deletes.
const PRUNE_AUDIT: &str = "DELETE FROM sync_audit WHERE run_id IN
                 (SELECT id FROM sync_runs WHERE ended IS NOT NULL AND ended < {1})";
const PRUNE_RUNS: &str = "DELETE FROM sync_runs WHERE ended IS NOT NULL AND ended < {1}";

/// The statements in one dialect's spelling.
pub(crate) struct Statements {
    pub get: String,
    pub find_unique: String,
    pub version_of: String,
    pub replace: String,
    pub delete: String,
    pub delete_index: String,
    pub delete_memberships: String,
    pub members_with_display: String,
    pub members_page: String,
    pub count_members: String,
    pub members: String,
    pub pruned_through: String,
    pub add_custom_attribute: String,
    pub remove_custom_attribute: String,
    pub list_scripts: String,
    pub get_script: String,
    pub add_script: String,
    pub replace_script: String,
    pub remove_script: String,
    pub bump_scripts_revision: String,
    pub scripts_revision: String,
    pub record_script_error: String,
    pub export_resources: String,
    pub create_client: String,
    pub get_client: String,
    pub list_clients: String,
    pub set_client_disabled: String,
    pub delete_client: String,
    pub rotate_secret: String,
    pub redeem_ticket: String,
    pub prune_redeemed_tickets: String,
    pub delete_expired_dynamic_clients: String,
    pub signing_keys: String,
    pub add_signing_key: String,
    pub retire_signing_keys: String,
    pub delete_signing_key: String,
    pub add_server_secret: String,
    pub server_secret: String,
    pub versions_first_page: String,
    pub versions_next_page: String,
    pub drop_links_of: String,
    pub add_link: String,
    pub stamp_link: String,
    pub remove_link_by_first: String,
    pub remove_link_by_second: String,
    pub link_by_first: String,
    pub link_by_second: String,
    pub links_first_page: String,
    pub links_next_page: String,
    pub count_links: String,
    pub create_run: String,
    pub get_run: String,
    pub open_run: String,
    pub recent_runs: String,
    pub recent_runs_of: String,
    pub update_run: String,
    pub finish_run: String,
    pub claim_run: String,
    pub release_run: String,
    pub reserve_audit: String,
    pub add_audit: String,
    pub audit_page: String,
    pub prune_audit: String,
    pub prune_runs: String,
}

impl Statements {
    fn new(d: &dyn Dialect) -> Statements {
        let r = |t: &str| render(d, t);
        Statements {
            get: r(GET),
            find_unique: r(FIND_UNIQUE),
            version_of: r(VERSION_OF),
            replace: r(REPLACE),
            delete: r(DELETE),
            delete_index: r(DELETE_INDEX),
            delete_memberships: r(DELETE_MEMBERSHIPS),
            members_with_display: r(MEMBERS_WITH_DISPLAY),
            members_page: r(MEMBERS_PAGE),
            count_members: r(COUNT_MEMBERS),
            members: r(MEMBERS),
            pruned_through: r(PRUNED_THROUGH),
            add_custom_attribute: r(ADD_CUSTOM_ATTRIBUTE),
            remove_custom_attribute: r(REMOVE_CUSTOM_ATTRIBUTE),
            list_scripts: r(LIST_SCRIPTS),
            get_script: r(GET_SCRIPT),
            add_script: r(ADD_SCRIPT),
            replace_script: r(REPLACE_SCRIPT),
            remove_script: r(REMOVE_SCRIPT),
            bump_scripts_revision: r(BUMP_SCRIPTS_REVISION),
            scripts_revision: r(SCRIPTS_REVISION),
            record_script_error: r(RECORD_SCRIPT_ERROR),
            export_resources: r(EXPORT_RESOURCES),
            create_client: r(CREATE_CLIENT),
            get_client: r(GET_CLIENT),
            list_clients: r(LIST_CLIENTS),
            set_client_disabled: r(SET_CLIENT_DISABLED),
            delete_client: r(DELETE_CLIENT),
            rotate_secret: r(ROTATE_SECRET),
            redeem_ticket: r(REDEEM_TICKET),
            prune_redeemed_tickets: r(PRUNE_REDEEMED_TICKETS),
            delete_expired_dynamic_clients: r(DELETE_EXPIRED_DYNAMIC_CLIENTS),
            signing_keys: r(SIGNING_KEYS),
            add_signing_key: r(ADD_SIGNING_KEY),
            retire_signing_keys: r(RETIRE_SIGNING_KEYS),
            delete_signing_key: r(DELETE_SIGNING_KEY),
            add_server_secret: r(ADD_SERVER_SECRET),
            server_secret: r(SERVER_SECRET),
            versions_first_page: r(VERSIONS_FIRST_PAGE),
            versions_next_page: r(VERSIONS_NEXT_PAGE),
            drop_links_of: r(DROP_LINKS_OF),
            add_link: r(ADD_LINK),
            stamp_link: r(STAMP_LINK),
            remove_link_by_first: r(REMOVE_LINK_BY_FIRST),
            remove_link_by_second: r(REMOVE_LINK_BY_SECOND),
            link_by_first: r(LINK_BY_FIRST),
            link_by_second: r(LINK_BY_SECOND),
            links_first_page: r(LINKS_FIRST_PAGE),
            links_next_page: r(LINKS_NEXT_PAGE),
            count_links: r(COUNT_LINKS),
            create_run: r(CREATE_RUN),
            get_run: r(GET_RUN),
            open_run: r(OPEN_RUN_SQL),
            recent_runs: r(RECENT_RUNS),
            recent_runs_of: r(RECENT_RUNS_OF),
            update_run: r(UPDATE_RUN),
            finish_run: r(FINISH_RUN),
            claim_run: r(CLAIM_RUN),
            release_run: r(RELEASE_RUN),
            reserve_audit: r(RESERVE_AUDIT),
            add_audit: r(ADD_AUDIT),
            audit_page: r(AUDIT_PAGE),
            prune_audit: r(PRUNE_AUDIT),
            prune_runs: r(PRUNE_RUNS),
        }
    }
}

/// SQLite's spelling, rendered on first use.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite() -> &'static Statements {
    static STATEMENTS: std::sync::LazyLock<Statements> =
        std::sync::LazyLock::new(|| Statements::new(&crate::dialect::Sqlite));
    &STATEMENTS
}

/// PostgreSQL's spelling, rendered on first use.
#[cfg(feature = "postgres")]
pub(crate) fn postgres() -> &'static Statements {
    static STATEMENTS: std::sync::LazyLock<Statements> =
        std::sync::LazyLock::new(|| Statements::new(&crate::dialect::Postgres));
    &STATEMENTS
}

/// `template` with each `{n}` / `{n::type}` replaced by the dialect's parameter.
fn render(d: &dyn Dialect, template: &str) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let token = &after[..close];
        let (n, ty) = match token.split_once("::") {
            Some((n, ty)) => (n, Some(ty)),
            None => (token, None),
        };
        match (token, n.parse::<usize>()) {
            ("member_order", _) => out.push_str(d.member_order()),
            ("null_text", _) => out.push_str(d.null_text()),
            (_, Ok(n)) => out.push_str(&d.param(n, ty)),
            (_, Err(_)) => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{Postgres, Sqlite};

    #[test]
    fn templates_render_per_dialect() {
        assert_eq!(
            render(&Sqlite, DELETE_MEMBERSHIPS),
            "DELETE FROM members WHERE group_id = ?1 OR member_id = ?1"
        );
        assert_eq!(
            render(&Postgres, DELETE),
            "DELETE FROM resources WHERE id = $1 AND rtype = $2 AND ($3::bigint IS NULL OR version = $3)
 RETURNING version"
        );
        assert_eq!(
            render(&Sqlite, DELETE),
            "DELETE FROM resources WHERE id = ?1 AND rtype = ?2 AND (?3 IS NULL OR version = ?3)
 RETURNING version"
        );
        assert_eq!(render(&Sqlite, PRUNED_THROUGH), PRUNED_THROUGH);
        assert_eq!(
            render(&Postgres, MEMBERS),
            "SELECT m.member_id, m.member_type, NULL::text FROM members m
                     WHERE m.group_id = $1 ORDER BY m.pos"
        );
        assert!(render(&Sqlite, MEMBERS_WITH_DISPLAY)
            .ends_with("WHERE m.group_id = ?1 ORDER BY m.rowid"));
    }

    #[test]
    fn every_statement_renders_without_braces() {
        for s in [Statements::new(&Sqlite), Statements::new(&Postgres)] {
            for sql in [
                &s.replace,
                &s.members,
                &s.members_with_display,
                &s.create_client,
                &s.add_signing_key,
                &s.add_server_secret,
                &s.add_script,
                &s.replace_script,
                &s.record_script_error,
                &s.create_run,
                &s.update_run,
                &s.add_audit,
            ] {
                assert!(!sql.contains('{') && !sql.contains('}'), "{sql}");
            }
        }
    }
}
