//! The filter AST of RFC 7644 §3.4.2.2, shared by the parser, the in-memory
//! evaluator, PATCH value paths and the SQL compiler.

use serde_json::Number;

/// `[URN ":"] attrName ["." subAttr]`. `urn` is the schema URN when the path was
/// fully qualified (e.g. the enterprise extension); names keep the case the client
/// used — resolution against the schema registry is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub attr: String,
    pub sub_attr: Option<String>,
}

impl AttrPath {
    pub fn simple(attr: &str) -> Self {
        AttrPath {
            urn: None,
            attr: attr.to_string(),
            sub_attr: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Lt,
    Ge,
    Le,
}

/// `compValue` of the grammar. dateTime literals arrive as strings; whether a
/// string is compared as a dateTime is decided by the attribute's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Number(Number),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Literal,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attrPath "[" valFilter "]"`: the inner filter's paths are relative to one
    /// element of the (multi-valued complex) attribute `path` (whose `sub_attr` is None).
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

/// A PATCH `path` (RFC 7644 §3.5.2): `attrPath` or `valuePath ["." subAttr]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    /// The value filter between brackets, relative to one element of `attr`.
    pub filter: Option<Filter>,
    /// Sub-attribute after the brackets: `emails[type eq "work"].value`.
    pub sub_attr: Option<String>,
}
