//! Parser for SCIM filters (RFC 7644 §3.4.2.2), attribute paths and PATCH paths
//! (RFC 7644 §3.5.2), plus the `Display` impls that print an AST back in a form
//! this parser accepts.
//!
//! Accepted grammar (keywords are case-insensitive):
//!
//! ```text
//! filter    = orExp
//! orExp     = andExp *("or" andExp)              ; left-associative
//! andExp    = unary *("and" unary)               ; left-associative
//! unary     = "not" "(" filter ")" / "(" filter ")" / valuePath / attrExp
//! valuePath = attrPath "[" valFilter "]"         ; attrPath without ".sub"
//! valFilter = filter, but without nested valuePath
//! attrExp   = attrPath "pr" / attrPath compareOp compValue
//! compareOp = "eq" / "ne" / "co" / "sw" / "ew" / "gt" / "lt" / "ge" / "le"
//! compValue = JSON string / JSON number / "true" / "false" / "null"
//! attrPath  = [URN ":"] attrName ["." attrName]  ; URN starts with "urn:"
//! attrName  = ALPHA *(ALPHA / DIGIT / "-" / "_") / "$ref"
//! patchPath = attrPath ["[" valFilter "]" ["." attrName]]
//! ```
//!
//! Whitespace (space, tab, CR, LF) may appear in any amount between tokens. It is
//! only *required* where tokens would otherwise run together: keywords must not
//! be followed by a name character, so `userNameeq "x"` is one (bad) path and
//! `a pr andb pr` is trailing garbage.
//!
//! Nesting (parentheses, `not (…)`, value-path brackets) is limited to
//! [`MAX_FILTER_DEPTH`] and checked while descending, so hostile input cannot
//! exhaust the stack. `and`/`or` chains are parsed iteratively and do not count
//! toward the depth; they yield left-deep trees bounded only by
//! [`MAX_FILTER_LEN`].
//!
//! Errors carry the byte offset of the problem and what was expected there.
//! Filter errors are `invalidFilter`; path errors are `invalidPath`, except a
//! syntax error inside the brackets of a PATCH path, which RFC 7644 §3.12
//! (Table 9, "PATCH (Path Filter)") classifies as `invalidFilter`.
use super::ast::*;
use crate::error::{ScimError, ScimResult};
use serde_json::Number;
use std::borrow::Cow;
use std::fmt;
use winnow::ascii::Caseless;
use winnow::combinator::{alt, not, opt, terminated};
use winnow::error::{ErrMode, ParserError};
use winnow::token::{literal, one_of};
use winnow::Parser;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 8192;
/// Deepest nesting of and/or/not/parentheses/value paths accepted.
pub const MAX_FILTER_DEPTH: usize = 32;

/// Parse a full filter expression (RFC 7644 §3.4.2.2). Errors are `invalidFilter`.
pub fn parse_filter(input: &str) -> ScimResult<Filter> {
    if input.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_filter(format!(
            "invalid filter: longer than {MAX_FILTER_LEN} bytes"
        )));
    }
    let mut rest = input;
    filter_top(&mut rest).map_err(|e| ScimError::invalid_filter(describe("filter", input, e)))
}

/// Parse `[URN:]attr[.sub]` (sortBy, attributes, excludedAttributes). Errors are `invalidPath`.
pub fn parse_attr_path(input: &str) -> ScimResult<AttrPath> {
    if input.len() > MAX_FILTER_LEN {
        return Err(too_long_path());
    }
    let mut rest = input;
    let parsed = (|| -> PResult<AttrPath> {
        skip_ws(&mut rest);
        let path = attr_path(&mut rest, "expected attribute path")?;
        skip_ws(&mut rest);
        if !rest.is_empty() {
            return fail(rest, "expected end of path");
        }
        Ok(path)
    })();
    parsed.map_err(|e| ScimError::invalid_path(describe("path", input, e)))
}

/// Parse a PATCH path: `attrPath` or `attrPath[valFilter][.subAttr]`. Errors are `invalidPath`.
pub fn parse_patch_path(input: &str) -> ScimResult<PatchPath> {
    if input.len() > MAX_FILTER_LEN {
        return Err(too_long_path());
    }
    let path_err = |e| ScimError::invalid_path(describe("path", input, e));
    let filter_err = |e| ScimError::invalid_filter(describe("path filter", input, e));

    let mut rest = input;
    skip_ws(&mut rest);
    let attr = attr_path(&mut rest, "expected attribute path").map_err(path_err)?;
    let mut filter = None;
    let mut sub_attr = None;
    if rest.starts_with('[') {
        if attr.sub_attr.is_some() {
            return Err(path_err(no_filter_after_sub(rest)));
        }
        let cx = Ctx::default().deeper(rest).map_err(filter_err)?.value_filter();
        rest = &rest[1..];
        let inner = or_expr(&mut rest, cx).map_err(filter_err)?;
        skip_ws(&mut rest);
        if !rest.starts_with(']') {
            return Err(filter_err(expected_close(rest, ']')));
        }
        rest = &rest[1..];
        if let Some(after_dot) = rest.strip_prefix('.') {
            let len = after_dot
                .find(|c: char| !is_name_char(c) && c != '$')
                .unwrap_or(after_dot.len());
            let name = &after_dot[..len];
            if let Err(off) = check_name(name) {
                return Err(path_err(err_at(
                    at(after_dot, off),
                    "expected sub-attribute name after '.'",
                )));
            }
            sub_attr = Some(name.to_string());
            rest = &after_dot[len..];
        }
        filter = Some(inner);
    }
    skip_ws(&mut rest);
    if !rest.is_empty() {
        let what = if filter.is_some() && sub_attr.is_none() {
            "expected '.' and a sub-attribute, or end of path"
        } else if filter.is_none() {
            "expected '[' or end of path"
        } else {
            "expected end of path"
        };
        return Err(path_err(err_at(rest, what)));
    }
    Ok(PatchPath {
        attr,
        filter,
        sub_attr,
    })
}

fn too_long_path() -> ScimError {
    ScimError::invalid_path(format!("invalid path: longer than {MAX_FILTER_LEN} bytes"))
}

// ---------------------------------------------------------------------------
// Errors

/// Where and why a parse stopped. With plain `&str` input the remaining length at
/// the failure point is enough to recover the byte offset in the original input.
#[derive(Debug, Clone)]
struct Failure {
    remaining: usize,
    what: Cow<'static, str>,
}

impl<'i> ParserError<&'i str> for Failure {
    type Inner = Self;

    fn from_input(input: &&'i str) -> Self {
        Failure {
            remaining: input.len(),
            what: Cow::Borrowed(""),
        }
    }

    fn into_inner(self) -> Result<Self::Inner, Self> {
        Ok(self)
    }
}

type PResult<T> = Result<T, ErrMode<Failure>>;

fn err_at(at: &str, what: impl Into<Cow<'static, str>>) -> ErrMode<Failure> {
    ErrMode::Cut(Failure {
        remaining: at.len(),
        what: what.into(),
    })
}

fn fail<T>(at: &str, what: impl Into<Cow<'static, str>>) -> PResult<T> {
    Err(err_at(at, what))
}

fn describe(kind: &str, input: &str, e: ErrMode<Failure>) -> String {
    let f = match e {
        ErrMode::Backtrack(f) | ErrMode::Cut(f) => f,
        // Only partial streams report Incomplete; `&str` is complete.
        ErrMode::Incomplete(_) => Failure {
            remaining: 0,
            what: Cow::Borrowed(""),
        },
    };
    let pos = input.len().saturating_sub(f.remaining);
    let what = if f.what.is_empty() {
        "syntax error"
    } else {
        f.what.as_ref()
    };
    format!("invalid {kind} at position {pos}: {what}")
}

/// `s[off..]`, or the empty tail if `off` is out of range or not a char boundary
/// (which would only shift a reported position, never panic).
fn at(s: &str, off: usize) -> &str {
    s.get(off..).unwrap_or_default()
}

fn expected_close(rest: &str, close: char) -> ErrMode<Failure> {
    let what = match close {
        ')' => "expected 'and', 'or' or ')'",
        _ => "expected 'and', 'or' or ']'",
    };
    err_at(rest, what)
}

fn no_filter_after_sub(rest: &str) -> ErrMode<Failure> {
    err_at(
        rest,
        "a value filter '[...]' must follow an attribute without sub-attribute",
    )
}

// ---------------------------------------------------------------------------
// Lexical helpers

fn skip_ws(i: &mut &str) {
    *i = i.trim_start_matches([' ', '\t', '\r', '\n']);
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Characters that may appear in a path token (`urn:…:2.0:User:name.givenName`,
/// `members.$ref`). The token is split into URN, name and sub-attribute afterwards.
fn is_path_char(c: char) -> bool {
    is_name_char(c) || matches!(c, ':' | '.' | '$')
}

/// A case-insensitive keyword that is not the prefix of a longer name.
fn keyword<'i>(kw: &'static str) -> impl Parser<&'i str, &'i str, ErrMode<Failure>> {
    terminated(literal(Caseless(kw)), not(one_of(is_path_char)))
}

fn eat_keyword(i: &mut &str, kw: &'static str) -> PResult<bool> {
    Ok(opt(keyword(kw)).parse_next(i)?.is_some())
}

// ---------------------------------------------------------------------------
// Filter grammar

#[derive(Debug, Clone, Copy, Default)]
struct Ctx {
    depth: usize,
    in_value_filter: bool,
}

impl Ctx {
    /// One more level of nesting, opened at `at`.
    fn deeper(self, at: &str) -> PResult<Ctx> {
        if self.depth >= MAX_FILTER_DEPTH {
            return fail(
                at,
                format!("filter nesting exceeds the maximum depth of {MAX_FILTER_DEPTH}"),
            );
        }
        Ok(Ctx {
            depth: self.depth + 1,
            ..self
        })
    }

    fn value_filter(self) -> Ctx {
        Ctx {
            in_value_filter: true,
            ..self
        }
    }
}

const EXPECTED_OPERAND: &str = "expected attribute path, '(' or 'not'";
const EXPECTED_OP: &str = "expected comparison operator (eq, ne, co, sw, ew, gt, lt, ge, le, pr)";
const EXPECTED_VALUE: &str = "expected comparison value (string, number, true, false or null)";

fn filter_top(i: &mut &str) -> PResult<Filter> {
    let f = or_expr(i, Ctx::default())?;
    skip_ws(i);
    if !i.is_empty() {
        return fail(i, "expected 'and', 'or' or end of filter");
    }
    Ok(f)
}

fn or_expr(i: &mut &str, cx: Ctx) -> PResult<Filter> {
    let mut left = and_expr(i, cx)?;
    loop {
        let before = *i;
        skip_ws(i);
        if !eat_keyword(i, "or")? {
            *i = before;
            return Ok(left);
        }
        let right = and_expr(i, cx)?;
        left = Filter::Or(Box::new(left), Box::new(right));
    }
}

fn and_expr(i: &mut &str, cx: Ctx) -> PResult<Filter> {
    let mut left = unary(i, cx)?;
    loop {
        let before = *i;
        skip_ws(i);
        if !eat_keyword(i, "and")? {
            *i = before;
            return Ok(left);
        }
        let right = unary(i, cx)?;
        left = Filter::And(Box::new(left), Box::new(right));
    }
}

fn unary(i: &mut &str, cx: Ctx) -> PResult<Filter> {
    skip_ws(i);
    if eat_keyword(i, "not")? {
        skip_ws(i);
        if !i.starts_with('(') {
            // RFC 7644 requires the operand of `not` to be parenthesised.
            return fail(i, "expected '(' after 'not'");
        }
        return Ok(Filter::Not(Box::new(group(i, cx)?)));
    }
    if i.starts_with('(') {
        return group(i, cx);
    }
    attr_exp(i, cx)
}

/// `"(" filter ")"`; the caller has checked that `i` starts with '('.
fn group(i: &mut &str, cx: Ctx) -> PResult<Filter> {
    let cx = cx.deeper(i)?;
    *i = &i[1..];
    let inner = or_expr(i, cx)?;
    skip_ws(i);
    if !i.starts_with(')') {
        return Err(expected_close(i, ')'));
    }
    *i = &i[1..];
    Ok(inner)
}

fn attr_exp(i: &mut &str, cx: Ctx) -> PResult<Filter> {
    let path = attr_path(i, EXPECTED_OPERAND)?;
    skip_ws(i);
    if i.starts_with('[') {
        let vp = value_path(i, cx, path)?;
        if i.starts_with('.') {
            return fail(
                i,
                "expected 'and', 'or' or end of filter ('.subAttr' after ']' is only valid in PATCH paths)",
            );
        }
        return Ok(vp);
    }
    let Some(op) = opt(compare_op).parse_next(i)? else {
        return fail(i, EXPECTED_OP);
    };
    match op {
        None => {
            let before = *i;
            skip_ws(i);
            if starts_value(i)? {
                return fail(i, "'pr' does not take a value");
            }
            *i = before;
            Ok(Filter::Present(path))
        }
        Some(op) => {
            skip_ws(i);
            let value = comp_value(i)?;
            Ok(Filter::Compare { path, op, value })
        }
    }
}

/// `attrPath "[" valFilter "]"`; the caller has checked that `i` starts with '['.
fn value_path(i: &mut &str, cx: Ctx, path: AttrPath) -> PResult<Filter> {
    if cx.in_value_filter {
        return fail(i, "value filters cannot be nested");
    }
    if path.sub_attr.is_some() {
        return Err(no_filter_after_sub(i));
    }
    let cx = cx.deeper(i)?.value_filter();
    *i = &i[1..];
    let inner = or_expr(i, cx)?;
    skip_ws(i);
    if !i.starts_with(']') {
        return Err(expected_close(i, ']'));
    }
    *i = &i[1..];
    Ok(Filter::ValuePath {
        path,
        filter: Box::new(inner),
    })
}

/// `Some(op)` for a comparison, `None` for `pr`.
fn compare_op(i: &mut &str) -> PResult<Option<CompareOp>> {
    alt((
        keyword("eq").value(Some(CompareOp::Eq)),
        keyword("ne").value(Some(CompareOp::Ne)),
        keyword("co").value(Some(CompareOp::Co)),
        keyword("sw").value(Some(CompareOp::Sw)),
        keyword("ew").value(Some(CompareOp::Ew)),
        keyword("gt").value(Some(CompareOp::Gt)),
        keyword("lt").value(Some(CompareOp::Lt)),
        keyword("ge").value(Some(CompareOp::Ge)),
        keyword("le").value(Some(CompareOp::Le)),
        keyword("pr").value(None),
    ))
    .parse_next(i)
}

/// Does a comparison value start here? Used to reject `attr pr "x"` clearly.
fn starts_value(i: &mut &str) -> PResult<bool> {
    if i.starts_with(|c: char| c == '"' || c == '-' || c.is_ascii_digit()) {
        return Ok(true);
    }
    let probe = opt(alt((keyword("true"), keyword("false"), keyword("null")))).parse_peek(*i);
    Ok(matches!(probe, Ok((_, Some(_)))))
}

fn comp_value(i: &mut &str) -> PResult<Literal> {
    if i.starts_with('"') {
        return json_string(i).map(Literal::String);
    }
    if i.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return json_number(i).map(Literal::Number);
    }
    let kw = opt(alt((
        keyword("true").value(Literal::Bool(true)),
        keyword("false").value(Literal::Bool(false)),
        keyword("null").value(Literal::Null),
    )))
    .parse_next(i)?;
    match kw {
        Some(lit) => Ok(lit),
        None => fail(i, EXPECTED_VALUE),
    }
}

/// A JSON string literal (RFC 8259 §7); the caller has checked the opening quote.
fn json_string(i: &mut &str) -> PResult<String> {
    let mut rest = &i[1..];
    let mut out = String::new();
    loop {
        let Some(c) = rest.chars().next() else {
            return fail(rest, "expected '\"' to close the string");
        };
        match c {
            '"' => {
                *i = &rest[1..];
                return Ok(out);
            }
            '\\' => {
                let (ch, len) = escape(rest)?;
                out.push(ch);
                rest = at(rest, len);
            }
            c if u32::from(c) < 0x20 => {
                return fail(rest, "control characters in strings must be escaped");
            }
            c => {
                out.push(c);
                rest = at(rest, c.len_utf8());
            }
        }
    }
}

/// One escape sequence at the start of `s` (which starts with '\'): the character
/// and the number of bytes consumed.
fn escape(s: &str) -> PResult<(char, usize)> {
    let simple = match s.as_bytes().get(1) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => return unicode_escape(s),
        _ => {
            return fail(
                s,
                "invalid escape (expected \\\", \\\\, \\/, \\b, \\f, \\n, \\r, \\t or \\uXXXX)",
            )
        }
    };
    Ok((simple, 2))
}

fn hex4(s: &str) -> Option<u32> {
    let digits = s.get(2..6)?;
    if s.get(..2) != Some("\\u") || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// `\uXXXX`, combining a UTF-16 surrogate pair written as two escapes.
fn unicode_escape(s: &str) -> PResult<(char, usize)> {
    let Some(first) = hex4(s) else {
        return fail(s, "invalid \\u escape (expected 4 hex digits)");
    };
    match first {
        0xD800..=0xDBFF => {
            let second = at(s, 6);
            match hex4(second) {
                Some(low @ 0xDC00..=0xDFFF) => {
                    let code = 0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00);
                    match char::from_u32(code) {
                        Some(c) => Ok((c, 12)),
                        None => fail(s, "invalid \\u escape"),
                    }
                }
                _ => fail(
                    second,
                    "expected \\uDC00-\\uDFFF low surrogate after high surrogate escape",
                ),
            }
        }
        0xDC00..=0xDFFF => fail(s, "unpaired low surrogate in \\u escape"),
        code => match char::from_u32(code) {
            Some(c) => Ok((c, 6)),
            None => fail(s, "invalid \\u escape"),
        },
    }
}

fn count_digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// A JSON number (RFC 8259 §6). Integers stay integers (u64/i64); anything with a
/// fraction or exponent, or too large for 64 bits, becomes an f64.
fn json_number(i: &mut &str) -> PResult<Number> {
    let start = *i;
    let mut rest = start.strip_prefix('-').unwrap_or(start);
    let int_len = if rest.starts_with('0') {
        1
    } else {
        count_digits(rest)
    };
    if int_len == 0 {
        return fail(rest, "expected digit");
    }
    rest = at(rest, int_len);
    let mut integral = true;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = count_digits(frac);
        if n == 0 {
            return fail(frac, "expected digit after '.'");
        }
        rest = at(frac, n);
        integral = false;
    }
    if let Some(exp) = rest.strip_prefix(['e', 'E']) {
        let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        let n = count_digits(exp);
        if n == 0 {
            return fail(exp, "expected digit in exponent");
        }
        rest = at(exp, n);
        integral = false;
    }
    if rest.starts_with(is_path_char) {
        return fail(rest, "invalid number");
    }
    let text = &start[..start.len() - rest.len()];
    let number = if integral {
        integer(text).or_else(|| float(text))
    } else {
        float(text)
    };
    let Some(number) = number else {
        return fail(start, "number out of range");
    };
    *i = rest;
    Ok(number)
}

fn integer(text: &str) -> Option<Number> {
    if text.starts_with('-') {
        text.parse::<i64>().ok().map(Number::from)
    } else {
        text.parse::<u64>().ok().map(Number::from)
    }
}

// std's float parsing is correctly rounded, so a printed f64 reads back unchanged.
fn float(text: &str) -> Option<Number> {
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

// ---------------------------------------------------------------------------
// Attribute paths

/// `[URN ":"] attrName ["." attrName]` at the start of `i`.
fn attr_path(i: &mut &str, expected: &'static str) -> PResult<AttrPath> {
    let len = i.find(|c: char| !is_path_char(c)).unwrap_or(i.len());
    if len == 0 {
        return fail(i, expected);
    }
    let token = &i[..len];
    match split_path(token) {
        Ok(path) => {
            *i = &i[len..];
            Ok(path)
        }
        Err((off, what)) => fail(at(i, off), what),
    }
}

const EXPECTED_NAME: &str = "expected attribute name (a letter, then letters, digits, '-' or '_')";

/// Split a path token. The URN is everything before the last ':' — URNs contain
/// ':' and '.' (`…:2.0:User`) but attribute names contain neither. Errors are
/// (byte offset in `token`, what was expected).
fn split_path(token: &str) -> Result<AttrPath, (usize, &'static str)> {
    let is_urn = token
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    let (urn, name_off) = if is_urn {
        match token.rfind(':') {
            Some(colon) if colon > 4 => (Some(&token[..colon]), colon + 1),
            Some(4) => return Err((4, "expected schema URN after 'urn:'")),
            _ => {
                return Err((
                    token.len(),
                    "expected ':' and an attribute name after the schema URN",
                ))
            }
        }
    } else {
        if let Some(colon) = token.find(':') {
            return Err((colon, "unexpected ':' (a schema URN must start with 'urn:')"));
        }
        (None, 0)
    };
    let names = &token[name_off..];
    let (attr, sub_attr) = match names.find('.') {
        Some(dot) => (&names[..dot], Some((dot + 1, &names[dot + 1..]))),
        None => (names, None),
    };
    check_name(attr).map_err(|off| (name_off + off, EXPECTED_NAME))?;
    if let Some((sub_off, sub)) = sub_attr {
        if let Some(dot) = sub.find('.') {
            return Err((
                name_off + sub_off + dot,
                "expected at most one sub-attribute ('attr.sub')",
            ));
        }
        check_name(sub).map_err(|off| (name_off + sub_off + off, EXPECTED_NAME))?;
    }
    Ok(AttrPath {
        urn: urn.map(str::to_string),
        attr: attr.to_string(),
        sub_attr: sub_attr.map(|(_, s)| s.to_string()),
    })
}

/// `ALPHA *(ALPHA / DIGIT / "-" / "_")` or `$ref`; `Err(offset)` of the first bad byte.
fn check_name(name: &str) -> Result<(), usize> {
    if name.eq_ignore_ascii_case("$ref") {
        return Ok(());
    }
    match name.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return Err(0),
    }
    match name.find(|c: char| !is_name_char(c)) {
        Some(off) => Err(off),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Display: prints the canonical spelling, which parses back to an equal AST.

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Lt => "lt",
            CompareOp::Ge => "ge",
            CompareOp::Le => "le",
        })
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => write_json_string(f, s),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

fn write_json_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_filter(f, self, Prec::Or)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    Or,
    And,
    Atom,
}

fn prec(filter: &Filter) -> Prec {
    match filter {
        Filter::Or(..) => Prec::Or,
        Filter::And(..) => Prec::And,
        _ => Prec::Atom,
    }
}

/// Prints `filter` where an operand binding at least as tightly as `min` is
/// required. Right operands ask for one level more than their operator, which
/// keeps right-nested trees distinct from the left-associative default.
fn write_filter(f: &mut fmt::Formatter<'_>, filter: &Filter, min: Prec) -> fmt::Result {
    if prec(filter) < min {
        f.write_str("(")?;
        write_filter(f, filter, Prec::Or)?;
        return f.write_str(")");
    }
    match filter {
        Filter::Or(l, r) => {
            write_filter(f, l, Prec::Or)?;
            f.write_str(" or ")?;
            write_filter(f, r, Prec::And)
        }
        Filter::And(l, r) => {
            write_filter(f, l, Prec::And)?;
            f.write_str(" and ")?;
            write_filter(f, r, Prec::Atom)
        }
        Filter::Not(inner) => {
            f.write_str("not (")?;
            write_filter(f, inner, Prec::Or)?;
            f.write_str(")")
        }
        Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
        Filter::Present(path) => write!(f, "{path} pr"),
        Filter::ValuePath { path, filter } => {
            write!(f, "{path}[")?;
            write_filter(f, filter, Prec::Or)?;
            f.write_str("]")
        }
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}
