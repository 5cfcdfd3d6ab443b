//! Opaque cursors for RFC 9865 paging: where the walk stands (a sort key), which
//! way it goes, and a fingerprint of the search so a cursor cannot be replayed
//! against another one. Stateless: they never expire, and resources created or
//! deleted during a walk never shift its pages.

use scim_proto::{ScimError, ScimResult};
use scim_store::SortKey;
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq, Copy)]
pub enum Direction {
    Next,
    Previous,
}

/// FNV-1a over the parts of a search that fix its order and result set.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

pub fn encode(key: &SortKey, direction: Direction, fingerprint: &str) -> String {
    let d = if direction == Direction::Next {
        "n"
    } else {
        "p"
    };
    let v = json!({"v": key.value, "i": key.id, "d": d, "f": fingerprint}).to_string();
    hex(v.as_bytes())
}

pub fn decode(cursor: &str, fingerprint: &str) -> ScimResult<(SortKey, Direction)> {
    let bad = || ScimError::invalid_cursor(format!("'{cursor}' is not a cursor of this search"));
    let bytes = unhex(cursor).ok_or_else(bad)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if v["f"].as_str() != Some(fingerprint) {
        return Err(bad());
    }
    let key = SortKey {
        value: match &v["v"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => return Err(bad()),
        },
        id: v["i"].as_str().ok_or_else(bad)?.to_string(),
    };
    let direction = match v["d"].as_str() {
        Some("n") => Direction::Next,
        Some("p") => Direction::Previous,
        _ => return Err(bad()),
    };
    Ok((key, direction))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 4096 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_misuse() {
        let key = SortKey {
            value: Some("bjensen".into()),
            id: "42".into(),
        };
        let f = fingerprint(&["User", "userName pr", "userName", "ascending"]);
        let c = encode(&key, Direction::Next, &f);
        assert_eq!(decode(&c, &f).expect("decode"), (key, Direction::Next));
        let other = fingerprint(&["User", "", "userName", "ascending"]);
        assert_eq!(
            decode(&c, &other).expect_err("other search").scim_type,
            Some(scim_proto::ScimType::InvalidCursor)
        );
        assert!(decode("zz", &f).is_err());
        assert!(decode(&hex(b"{}"), &f).is_err());
    }
}
