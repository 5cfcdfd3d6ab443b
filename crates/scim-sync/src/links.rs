//! Links: which source object a target object mirrors, on immutable ids (remote
//! `id` ↔ local `id`), so a rename stays an update. A forward mapping and its
//! reverse share one link table; links are stored in the forward orientation.

use serde::{Deserialize, Serialize};
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

#[cfg(test)]
mod tests {
    use super::*;

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
