//! Filters (RFC 7644 §3.4.2.2): AST, parser and in-memory evaluator.

mod ast;
pub mod eval;
pub mod parser;

pub use ast::*;
pub use eval::{matches, matches_element};
pub use parser::{parse_attr_path, parse_filter, parse_patch_path};
