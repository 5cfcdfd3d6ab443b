//! Links: which source object a target object mirrors, on immutable ids (remote
//! `id` ↔ local `id`), so a rename stays an update. A forward mapping and its
//! reverse share one link table; links are stored in the forward orientation.

use crate::config::Mapping;
use crate::path::get_ci;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// One link, in the forward mapping's orientation: `first` is an id of the
/// forward mapping's source, `second` of its target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Link {
    pub first: String,
    pub second: String,
}

impl Link {
    /// The stored link between a `source_id` and a `target_id` of a mapping that
    /// is `reverse` or not.
    pub fn between(reverse: bool, source_id: &str, target_id: &str) -> Link {
        let (first, second) = if reverse {
            (target_id, source_id)
        } else {
            (source_id, target_id)
        };
        Link {
            first: first.to_string(),
            second: second.to_string(),
        }
    }
}

/// A link table seen from one mapping: source id → target id and back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkIndex {
    to_target: HashMap<String, String>,
    to_source: HashMap<String, String>,
}

impl LinkIndex {
    pub fn new(links: &[Link], reverse: bool) -> LinkIndex {
        let mut index = LinkIndex::default();
        for l in links {
            let (source, target) = if reverse {
                (&l.second, &l.first)
            } else {
                (&l.first, &l.second)
            };
            index.to_target.insert(source.clone(), target.clone());
            index.to_source.insert(target.clone(), source.clone());
        }
        index
    }

    pub fn target_of(&self, source_id: &str) -> Option<&str> {
        self.to_target.get(source_id).map(String::as_str)
    }

    pub fn source_of(&self, target_id: &str) -> Option<&str> {
        self.to_source.get(target_id).map(String::as_str)
    }
}

/// An object's `meta.version` (its ETag), when it shows one.
pub fn version_of(doc: &Value) -> Option<&str> {
    get_ci(doc, "meta")
        .and_then(|m| get_ci(m, "version"))
        .and_then(Value::as_str)
}

/// What a linked pair was when a run of `m` left it in step: the mapping as
/// configured then and both objects' versions. While a listing shows the same
/// versions and the mapping is unchanged, the pair has nothing to do, so a
/// re-run reads only pairs whose stamp no longer holds. Versions only grow (or,
/// as content hashes, repeat only for the same content), so a stale stamp never
/// matches a changed pair.
pub fn stamp(m: &Mapping, source_version: &str, target_version: &str) -> String {
    // The source version's length keeps the text unambiguous whatever the
    // versions hold.
    let n = source_version.len();
    format!("{}|{n}|{source_version}|{target_version}", m.digest)
}

/// Whether `stored` is `stamp(m, source_version, target_version)`, without
/// building it (a re-run checks one per linked pair).
pub fn stamp_holds(stored: &str, m: &Mapping, source_version: &str, target_version: &str) -> bool {
    let mut digits = [0u8; 20];
    let n = decimal(source_version.len(), &mut digits);
    let parts = [
        m.digest.as_bytes(),
        b"|",
        n,
        b"|",
        source_version.as_bytes(),
        b"|",
        target_version.as_bytes(),
    ];
    let mut rest = stored.as_bytes();
    for p in parts {
        match rest.strip_prefix(p) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

/// `n` in decimal, written into the end of `buf`.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stamp_holds_only_for_the_same_mapping_and_versions() {
        let registry = scim_proto::schema::SchemaRegistry::standard();
        let text = r#"{"mappings": [{"name": "m", "source": "managed/user",
            "target": "system/scim/account",
            "properties": [{"source": "userName", "target": "userName"}]}]}"#;
        let m = crate::config::SyncConfig::parse("sync.json", text, &registry)
            .expect("config")
            .mappings
            .remove(0);
        let s = stamp(&m, "W/\"1\"", "a|b");
        assert!(stamp_holds(&s, &m, "W/\"1\"", "a|b"));
        assert!(!stamp_holds(&s, &m, "W/\"2\"", "a|b"));
        assert!(!stamp_holds(&s, &m, "W/\"1\"", "a|"));
        assert!(!stamp_holds(&s, &m, "W/\"1\"|a", "b"));
        assert!(!stamp_holds(&format!("{s}x"), &m, "W/\"1\"", "a|b"));
        assert!(!stamp_holds("", &m, "", ""));
        let long = "v".repeat(1234);
        assert!(stamp_holds(&stamp(&m, &long, "t"), &m, &long, "t"));
        assert!(stamp_holds(&stamp(&m, "", ""), &m, "", ""));
    }

    #[test]
    fn versions_are_read_from_meta_in_any_case() {
        assert_eq!(
            version_of(&json!({"meta": {"version": "W/\"3\""}})),
            Some("W/\"3\"")
        );
        assert_eq!(version_of(&json!({"Meta": {"Version": "7"}})), Some("7"));
        assert_eq!(version_of(&json!({"meta": {}})), None);
        assert_eq!(version_of(&json!({"id": "x"})), None);
    }

    #[test]
    fn a_reverse_mapping_reads_the_forward_links_the_other_way() {
        // Forward: remote account r1 ↔ local user l1.
        let links = vec![Link::between(false, "r1", "l1")];
        let forward = LinkIndex::new(&links, false);
        assert_eq!(forward.target_of("r1"), Some("l1"));
        assert_eq!(forward.source_of("l1"), Some("r1"));
        let reverse = LinkIndex::new(&links, true);
        assert_eq!(reverse.target_of("l1"), Some("r1"));
        assert_eq!(reverse.source_of("r1"), Some("l1"));
        assert_eq!(reverse.target_of("r1"), None);
        // A link made by the reverse mapping is stored the forward way.
        assert_eq!(Link::between(true, "l1", "r1"), links[0]);
    }
}
