//! `scim_proto::filter::parse_patch_path` (PATCH `path`, RFC 7644 §3.5.2) and
//! `parse_attr_path` (sortBy / attributes) on arbitrary input.
//!
//! Invariants: no panic; errors are 400 invalidPath (or invalidFilter for a
//! syntax error inside the brackets); a parsed path prints (Display) to a
//! string that parses back to an equal value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_proto::filter::parser::MAX_FILTER_LEN;
use scim_proto::filter::{parse_attr_path, parse_patch_path};
use scim_proto::ScimType;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match parse_patch_path(input) {
        Ok(path) => {
            let printed = path.to_string();
            if printed.len() <= MAX_FILTER_LEN {
                match parse_patch_path(&printed) {
                    Ok(again) => assert_eq!(again, path, "{input:?} printed as {printed:?}"),
                    Err(e) => panic!("{input:?} printed as {printed:?}, which does not parse: {e}"),
                }
            }
        }
        Err(e) => {
            assert_eq!(e.status, 400, "{input:?}: {e}");
            assert!(
                matches!(
                    e.scim_type,
                    Some(ScimType::InvalidPath | ScimType::InvalidFilter)
                ),
                "{input:?}: {e}"
            );
        }
    }
    match parse_attr_path(input) {
        Ok(path) => {
            let printed = path.to_string();
            if printed.len() <= MAX_FILTER_LEN {
                match parse_attr_path(&printed) {
                    Ok(again) => assert_eq!(again, path, "{input:?} printed as {printed:?}"),
                    Err(e) => panic!("{input:?} printed as {printed:?}, which does not parse: {e}"),
                }
            }
        }
        Err(e) => {
            assert_eq!(e.status, 400, "{input:?}: {e}");
            assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{input:?}: {e}");
        }
    }
});
