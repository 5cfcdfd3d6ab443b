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
        let cx = Ctx::default()
            .deeper(rest)
            .map_err(filter_err)?
            .value_filter();
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
            return Err((
                colon,
                "unexpected ':' (a schema URN must start with 'urn:')",
            ));
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::error::ScimType;

    fn p(s: &str) -> Filter {
        parse_filter(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn err(s: &str) -> String {
        let e = parse_filter(s).expect_err(s);
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{s:?}: {e}");
        assert_eq!(e.status, 400);
        e.detail
    }

    fn path(s: &str) -> AttrPath {
        split_path(s).unwrap()
    }

    fn cmp(p: &str, op: CompareOp, value: Literal) -> Filter {
        Filter::Compare {
            path: path(p),
            op,
            value,
        }
    }

    fn s(v: &str) -> Literal {
        Literal::String(v.to_string())
    }

    fn n(v: i64) -> Literal {
        Literal::Number(Number::from(v))
    }

    fn pr(a: &str) -> Filter {
        Filter::Present(path(a))
    }

    fn and(a: Filter, b: Filter) -> Filter {
        Filter::And(Box::new(a), Box::new(b))
    }

    fn or(a: Filter, b: Filter) -> Filter {
        Filter::Or(Box::new(a), Box::new(b))
    }

    fn not(a: Filter) -> Filter {
        Filter::Not(Box::new(a))
    }

    fn lit(s: &str) -> Literal {
        match p(&format!("a eq {s}")) {
            Filter::Compare { value, .. } => value,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_comparison_operator_any_case() {
        let ops = [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("lt", CompareOp::Lt),
            ("ge", CompareOp::Ge),
            ("le", CompareOp::Le),
        ];
        for (kw, op) in ops {
            for spelled in [
                kw.to_string(),
                kw.to_uppercase(),
                format!("{}{}", &kw[..1].to_uppercase(), &kw[1..]),
            ] {
                assert_eq!(
                    p(&format!("userName {spelled} \"bjensen\"")),
                    cmp("userName", op, s("bjensen"))
                );
            }
        }
        assert_eq!(p("title pr"), pr("title"));
        assert_eq!(p("title PR"), pr("title"));
    }

    #[test]
    fn rfc_examples_parse() {
        let examples = [
            r#"userName Eq "john""#,
            r#"name.familyName co "O'Malley""#,
            r#"userName sw "J""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            "title pr",
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
            r#"title pr and userType eq "Employee""#,
            r#"title pr or userType eq "Intern""#,
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        ];
        for e in examples {
            p(e);
        }
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(
            p("a eq 1 or b eq 2 and c eq 3"),
            or(
                cmp("a", CompareOp::Eq, n(1)),
                and(cmp("b", CompareOp::Eq, n(2)), cmp("c", CompareOp::Eq, n(3)))
            )
        );
        assert_eq!(
            p("a pr and b pr or c pr"),
            or(and(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(p("a pr or b pr or c pr"), or(or(pr("a"), pr("b")), pr("c")));
        assert_eq!(
            p("a pr and b pr and c pr"),
            and(and(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            p("a pr and (b pr or c pr)"),
            and(pr("a"), or(pr("b"), pr("c")))
        );
        assert_eq!(
            p("(a pr or b pr) and c pr"),
            and(or(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(p("not (a pr) and b pr"), and(not(pr("a")), pr("b")));
        assert_eq!(
            p("a pr or not (b pr) and c pr"),
            or(pr("a"), and(not(pr("b")), pr("c")))
        );
        assert_eq!(p("NOT(a pr)"), not(pr("a")));
        assert_eq!(
            p("a pr AND b pr Or c pr"),
            or(and(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(p("((a pr))"), pr("a"));
        assert_eq!(p("not (not (a pr))"), not(not(pr("a"))));
    }

    #[test]
    fn value_paths() {
        let inner = and(
            cmp("type", CompareOp::Eq, s("work")),
            cmp("value", CompareOp::Co, s("@example.com")),
        );
        let vp = Filter::ValuePath {
            path: path("emails"),
            filter: Box::new(inner),
        };
        assert_eq!(
            p(r#"emails[type eq "work" and value co "@example.com"]"#),
            vp
        );
        assert_eq!(
            p(r#"userType eq "E" and emails[type eq "work" and value co "@example.com"]"#),
            and(cmp("userType", CompareOp::Eq, s("E")), vp.clone())
        );
        assert_eq!(
            p(r#"emails[ type eq "work" and value co "@example.com" ] or a pr"#),
            or(vp, pr("a"))
        );
        assert_eq!(
            p(
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq "x"]"#
            ),
            Filter::ValuePath {
                path: path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"),
                filter: Box::new(cmp("value", CompareOp::Eq, s("x"))),
            }
        );
        assert_eq!(
            p(r#"emails[not (type eq "work")]"#),
            Filter::ValuePath {
                path: path("emails"),
                filter: Box::new(not(cmp("type", CompareOp::Eq, s("work"))))
            }
        );
        assert!(err(r#"emails[type eq "work"].value eq "x""#).contains("only valid in PATCH paths"));
        assert!(err(r#"emails[type eq "work" and x[y pr]]"#).contains("cannot be nested"));
        assert!(err(r#"name.givenName[x pr]"#).contains("without sub-attribute"));
        assert!(err(r#"emails[type eq "work""#).contains("expected 'and', 'or' or ']'"));
        assert!(err(r#"emails[]"#).contains(EXPECTED_OPERAND));
    }

    #[test]
    fn attribute_paths() {
        assert_eq!(path("userName"), AttrPath::simple("userName"));
        assert_eq!(
            path("name.givenName"),
            AttrPath {
                urn: None,
                attr: "name".into(),
                sub_attr: Some("givenName".into())
            }
        );
        assert_eq!(
            path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"),
            AttrPath {
                urn: Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".into()),
                attr: "employeeNumber".into(),
                sub_attr: None
            }
        );
        assert_eq!(
            path("URN:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
            AttrPath {
                urn: Some("URN:ietf:params:scim:schemas:extension:enterprise:2.0:User".into()),
                attr: "manager".into(),
                sub_attr: Some("value".into())
            }
        );
        assert_eq!(
            path("members.$ref"),
            AttrPath {
                urn: None,
                attr: "members".into(),
                sub_attr: Some("$ref".into())
            }
        );
        assert_eq!(path("x-_9"), AttrPath::simple("x-_9"));
        assert_eq!(
            p(r#"members.$ref eq "x""#),
            cmp("members.$ref", CompareOp::Eq, s("x"))
        );
    }

    #[test]
    fn bad_attribute_paths() {
        for (input, pos) in [
            ("1abc pr", 0),
            ("a.b.c pr", 3),
            ("a. pr", 2),
            (".a pr", 0),
            ("foo:bar pr", 3),
            ("urn:x pr", 5),
            ("urn::x pr", 4),
            ("urn:a:b: pr", 8),
            ("a$b pr", 1),
            ("a.$refx pr", 2),
            ("urn:a:b:1x pr", 8),
        ] {
            let d = err(input);
            assert!(
                d.starts_with(&format!("invalid filter at position {pos}:")),
                "{input:?}: {d}"
            );
        }
    }

    #[test]
    fn string_literals_and_escapes() {
        assert_eq!(lit(r#""""#), s(""));
        assert_eq!(
            lit(r#""a\"b\\c\/d\be\ff\ng\rh\ti""#),
            s("a\"b\\c/d\u{8}e\u{c}f\ng\rh\ti")
        );
        assert_eq!(lit(r#""\u00e9\u00C9""#), s("éÉ"));
        assert_eq!(lit(r#""\ud83d\ude00""#), s("😀"));
        assert_eq!(lit(r#""\uD83D\uDE00x""#), s("😀x"));
        assert_eq!(lit("\"Ünïcødé 😀 日本\""), s("Ünïcødé 😀 日本"));
        assert_eq!(lit(r#""a and b or c) ( ] [""#), s("a and b or c) ( ] ["));
        assert_eq!(lit(r#""\u0000""#), s("\u{0}"));

        assert!(err(r#"a eq "\ud83d""#).contains("low surrogate"));
        assert!(err(r#"a eq "\ud83dx""#).contains("low surrogate"));
        assert!(err(r#"a eq "\ud83d\u0041""#).contains("low surrogate"));
        assert!(err(r#"a eq "\ude00""#).contains("unpaired low surrogate"));
        assert!(err(r#"a eq "\u12""#).contains("4 hex digits"));
        assert!(err(r#"a eq "\u+123""#).contains("4 hex digits"));
        assert!(err(r#"a eq "\x""#).contains("invalid escape"));
        assert!(err("a eq \"ab").contains("to close the string"));
        assert!(err("a eq \"a\u{1}b\"").contains("control characters"));
        assert!(err("a eq \"a\\").contains("invalid escape"));
        assert!(err(r#"a eq "é\u00""#).starts_with("invalid filter at position 8:"));
    }

    #[test]
    fn number_literals() {
        assert_eq!(lit("0"), n(0));
        assert_eq!(lit("42"), n(42));
        assert_eq!(lit("-17"), n(-17));
        assert_eq!(lit("-0"), n(0));
        assert_eq!(
            lit("18446744073709551615"),
            Literal::Number(Number::from(u64::MAX))
        );
        assert_eq!(
            lit("-9223372036854775808"),
            Literal::Number(Number::from(i64::MIN))
        );
        assert_eq!(
            lit("18446744073709551616"),
            Literal::Number(Number::from_f64(18446744073709551616.0).unwrap())
        );
        assert_eq!(lit("1.5"), Literal::Number(Number::from_f64(1.5).unwrap()));
        assert_eq!(lit("2.0"), Literal::Number(Number::from_f64(2.0).unwrap()));
        assert_eq!(
            lit("-1.25e2"),
            Literal::Number(Number::from_f64(-125.0).unwrap())
        );
        assert_eq!(
            lit("1E+2"),
            Literal::Number(Number::from_f64(100.0).unwrap())
        );
        assert_eq!(lit("5e-1"), Literal::Number(Number::from_f64(0.5).unwrap()));
        match lit("7") {
            Literal::Number(n) => assert!(n.is_u64()),
            other => panic!("{other:?}"),
        }

        assert!(err("a eq 01").contains("invalid number"));
        assert!(err("a eq 1.").contains("expected digit after '.'"));
        assert!(err("a eq 1.x").contains("expected digit after '.'"));
        assert!(err("a eq -").contains("expected digit"));
        assert!(err("a eq -x").contains("expected digit"));
        assert!(err("a eq 1e").contains("expected digit in exponent"));
        assert!(err("a eq 1e999").contains("out of range"));
        assert!(err("a eq 12abc").contains("invalid number"));
        assert!(err("a eq +1").contains(EXPECTED_VALUE));
        assert!(err("a eq .5").contains(EXPECTED_VALUE));
    }

    #[test]
    fn keyword_literals() {
        for (text, want) in [
            ("true", Literal::Bool(true)),
            ("TRUE", Literal::Bool(true)),
            ("False", Literal::Bool(false)),
            ("null", Literal::Null),
            ("NULL", Literal::Null),
        ] {
            assert_eq!(lit(text), want);
        }
        assert!(err("a eq truex").contains(EXPECTED_VALUE));
        assert!(err("a eq john").contains(EXPECTED_VALUE));
    }

    #[test]
    fn whitespace_is_lenient() {
        let want = and(cmp("a", CompareOp::Eq, n(1)), pr("b"));
        for input in [
            "a eq 1 and b pr",
            "  a   eq\t1 \t and\n b  pr  ",
            "(a eq 1)and(b pr)",
            "a eq 1 and(b pr)",
        ] {
            assert_eq!(p(input), want, "{input:?}");
        }
        assert_eq!(p(r#"a eq"x""#), cmp("a", CompareOp::Eq, s("x")));
        assert_eq!(p("not(a pr)"), not(pr("a")));
        assert_eq!(p("not  \t (a pr)"), not(pr("a")));
    }

    #[test]
    fn error_messages_point_at_the_problem() {
        assert_eq!(
            err(r#"userName eq "x" and emails zz "y""#).as_str(),
            "invalid filter at position 27: expected comparison operator (eq, ne, co, sw, ew, gt, lt, ge, le, pr)"
        );
        assert_eq!(
            err("emails.value xx 1"),
            "invalid filter at position 13: expected comparison operator (eq, ne, co, sw, ew, gt, lt, ge, le, pr)"
        );
        assert_eq!(
            err("userName eq").as_str(),
            format!("invalid filter at position 11: {EXPECTED_VALUE}")
        );
        assert_eq!(
            err("userName eq ").as_str(),
            format!("invalid filter at position 12: {EXPECTED_VALUE}")
        );
        assert_eq!(
            err(r#"userName pr "x""#),
            "invalid filter at position 12: 'pr' does not take a value"
        );
        assert!(err("userName pr true").contains("'pr' does not take a value"));
        assert!(err("userName pr 5").contains("'pr' does not take a value"));
        assert_eq!(
            err(""),
            format!("invalid filter at position 0: {EXPECTED_OPERAND}")
        );
        assert_eq!(
            err("   "),
            format!("invalid filter at position 3: {EXPECTED_OPERAND}")
        );
        assert_eq!(
            err("a pr and"),
            format!("invalid filter at position 8: {EXPECTED_OPERAND}")
        );
        assert_eq!(
            err("a pr )"),
            "invalid filter at position 5: expected 'and', 'or' or end of filter"
        );
        assert_eq!(
            err("a eq 1 x"),
            "invalid filter at position 7: expected 'and', 'or' or end of filter"
        );
        assert_eq!(
            err("a pr andb pr"),
            "invalid filter at position 5: expected 'and', 'or' or end of filter"
        );
        assert_eq!(
            err("(a pr"),
            "invalid filter at position 5: expected 'and', 'or' or ')'"
        );
        assert_eq!(
            err("not a pr"),
            "invalid filter at position 4: expected '(' after 'not'"
        );
        assert_eq!(
            err("a pr and not"),
            "invalid filter at position 12: expected '(' after 'not'"
        );
        assert_eq!(err("userNameeq \"x\""), "invalid filter at position 11: expected comparison operator (eq, ne, co, sw, ew, gt, lt, ge, le, pr)");
        assert_eq!(
            err("\"x\" eq a"),
            format!("invalid filter at position 0: {EXPECTED_OPERAND}")
        );
        assert_eq!(
            err("a eq )"),
            format!("invalid filter at position 5: {EXPECTED_VALUE}")
        );
        assert_eq!(
            err("() "),
            format!("invalid filter at position 1: {EXPECTED_OPERAND}")
        );
    }

    #[test]
    fn length_limit() {
        let ok = format!("a eq \"{}\"", "x".repeat(MAX_FILTER_LEN - 7));
        assert_eq!(ok.len(), MAX_FILTER_LEN);
        p(&ok);
        let long = format!("a eq \"{}\"", "x".repeat(MAX_FILTER_LEN - 6));
        assert!(err(&long).contains("longer than 8192 bytes"));
        let e = parse_attr_path(&"a".repeat(MAX_FILTER_LEN + 1)).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
        let e = parse_patch_path(&"a".repeat(MAX_FILTER_LEN + 1)).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
    }

    #[test]
    fn depth_limit() {
        let nest = |d: usize| format!("{}a pr{}", "(".repeat(d), ")".repeat(d));
        assert_eq!(p(&nest(MAX_FILTER_DEPTH)), pr("a"));
        assert_eq!(
            err(&nest(MAX_FILTER_DEPTH + 1)),
            format!("invalid filter at position {MAX_FILTER_DEPTH}: filter nesting exceeds the maximum depth of 32")
        );
        let nots = |d: usize| format!("{}a pr{}", "not (".repeat(d), ")".repeat(d));
        p(&nots(MAX_FILTER_DEPTH));
        assert!(err(&nots(MAX_FILTER_DEPTH + 1)).contains("maximum depth"));
        // A value path is one more level.
        let vp = |d: usize| format!("{}x[a pr]{}", "(".repeat(d), ")".repeat(d));
        p(&vp(MAX_FILTER_DEPTH - 1));
        assert!(err(&vp(MAX_FILTER_DEPTH)).contains("maximum depth"));
        // Hostile input is rejected without recursing 100k deep (and not by the length check).
        let parens = "(".repeat(MAX_FILTER_LEN);
        assert!(err(&parens).contains("maximum depth"));
        assert!(err(&"(".repeat(100_000)).contains("longer than"));
        // Long flat chains are not nesting.
        let chain = vec!["a pr"; 500].join(" or ");
        p(&chain);
    }

    #[test]
    fn attr_path_api() {
        assert_eq!(
            parse_attr_path("userName").unwrap(),
            AttrPath::simple("userName")
        );
        assert_eq!(
            parse_attr_path(" name.givenName ").unwrap(),
            path("name.givenName")
        );
        assert_eq!(
            parse_attr_path(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
            )
            .unwrap(),
            path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
        );
        for (bad, detail) in [
            ("", "invalid path at position 0: expected attribute path"),
            ("a.b.c", "invalid path at position 3: expected at most one sub-attribute ('attr.sub')"),
            ("emails[type eq \"work\"]", "invalid path at position 6: expected end of path"),
            ("a b", "invalid path at position 2: expected end of path"),
            ("9a", "invalid path at position 0: expected attribute name (a letter, then letters, digits, '-' or '_')"),
        ] {
            let e = parse_attr_path(bad).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{bad:?}");
            assert_eq!(e.detail, detail, "{bad:?}");
        }
    }

    #[test]
    fn patch_paths() {
        let pp = |s: &str| parse_patch_path(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        assert_eq!(
            pp(r#"emails[type eq "work"].value"#),
            PatchPath {
                attr: path("emails"),
                filter: Some(cmp("type", CompareOp::Eq, s("work"))),
                sub_attr: Some("value".into())
            }
        );
        assert_eq!(
            pp(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#),
            PatchPath {
                attr: path("members"),
                filter: Some(cmp(
                    "value",
                    CompareOp::Eq,
                    s("2819c223-7f76-453a-919d-413861904646")
                )),
                sub_attr: None
            }
        );
        for plain in [
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            "name.givenName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            "members",
        ] {
            assert_eq!(
                pp(plain),
                PatchPath {
                    attr: path(plain),
                    filter: None,
                    sub_attr: None
                }
            );
        }
        assert_eq!(
            pp(r#"members[value eq "a" or value eq "b"].$ref"#)
                .sub_attr
                .as_deref(),
            Some("$ref")
        );
        assert_eq!(
            pp(r#"addresses[type eq "work" and not (primary eq true)].streetAddress"#).filter,
            Some(and(
                cmp("type", CompareOp::Eq, s("work")),
                not(cmp("primary", CompareOp::Eq, Literal::Bool(true)))
            ))
        );
    }

    #[test]
    fn patch_path_errors() {
        for (bad, ty, detail) in [
            ("", ScimType::InvalidPath, "invalid path at position 0: expected attribute path"),
            ("emails[type eq \"work\"", ScimType::InvalidFilter, "invalid path filter at position 21: expected 'and', 'or' or ']'"),
            ("emails[type eq]", ScimType::InvalidFilter, "invalid path filter at position 14: expected comparison value (string, number, true, false or null)"),
            ("emails[type eq \"work\"].", ScimType::InvalidPath, "invalid path at position 23: expected sub-attribute name after '.'"),
            ("emails[type eq \"work\"].value.x", ScimType::InvalidPath, "invalid path at position 28: expected end of path"),
            ("emails[type eq \"work\"]x", ScimType::InvalidPath, "invalid path at position 22: expected '.' and a sub-attribute, or end of path"),
            ("emails.value[type eq \"work\"]", ScimType::InvalidPath, "invalid path at position 12: a value filter '[...]' must follow an attribute without sub-attribute"),
            ("emails x", ScimType::InvalidPath, "invalid path at position 7: expected '[' or end of path"),
            ("emails[x[y pr]]", ScimType::InvalidFilter, "invalid path filter at position 8: value filters cannot be nested"),
        ] {
            let e = parse_patch_path(bad).unwrap_err();
            assert_eq!(e.scim_type, Some(ty), "{bad:?}: {e}");
            assert_eq!(e.detail, detail, "{bad:?}");
        }
    }

    #[test]
    fn display_examples() {
        for (input, shown) in [
            ("a eq 1 or b eq 2 and c eq 3", "a eq 1 or b eq 2 and c eq 3"),
            ("(a pr or b pr) and c pr", "(a pr or b pr) and c pr"),
            ("a pr or (b pr or c pr)", "a pr or (b pr or c pr)"),
            ("a pr and (b pr and c pr)", "a pr and (b pr and c pr)"),
            ("NOT ( a PR )", "not (a pr)"),
            (
                "userName EQ \"a\\\"b\\u0001\"",
                "userName eq \"a\\\"b\\u0001\"",
            ),
            (
                "emails[type eq \"work\" and value co \"x\"]",
                "emails[type eq \"work\" and value co \"x\"]",
            ),
            (
                "x eq 1.5 or y eq TRUE or z ne Null",
                "x eq 1.5 or y eq true or z ne null",
            ),
        ] {
            assert_eq!(p(input).to_string(), shown);
        }
        let pp = parse_patch_path("emails[type eq \"work\"].value").unwrap();
        assert_eq!(pp.to_string(), "emails[type eq \"work\"].value");
        assert_eq!(path("urn:a:b:c.d").to_string(), "urn:a:b:c.d");
    }

    mod roundtrip {
        use super::*;
        use proptest::prelude::*;

        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                9 => "[a-zA-Z][a-zA-Z0-9_-]{0,7}".prop_filter("'not' is a keyword", |s| !s.eq_ignore_ascii_case("not")),
                1 => Just("$ref".to_string()),
            ]
        }

        fn attr_path() -> impl Strategy<Value = AttrPath> {
            (
                prop::option::of("urn:[a-zA-Z0-9]{1,5}(:[a-zA-Z0-9.$_-]{1,6}){0,4}"),
                name(),
                prop::option::of(name()),
            )
                .prop_map(|(urn, attr, sub_attr)| AttrPath {
                    urn,
                    attr,
                    sub_attr,
                })
        }

        fn literal() -> impl Strategy<Value = Literal> {
            prop_oneof![
                any::<String>().prop_map(Literal::String),
                any::<i64>().prop_map(|v| Literal::Number(Number::from(v))),
                any::<u64>().prop_map(|v| Literal::Number(Number::from(v))),
                any::<f64>()
                    .prop_filter_map("finite", |v| Number::from_f64(v).map(Literal::Number)),
                any::<bool>().prop_map(Literal::Bool),
                Just(Literal::Null),
            ]
        }

        fn op() -> impl Strategy<Value = CompareOp> {
            prop::sample::select(vec![
                CompareOp::Eq,
                CompareOp::Ne,
                CompareOp::Co,
                CompareOp::Sw,
                CompareOp::Ew,
                CompareOp::Gt,
                CompareOp::Lt,
                CompareOp::Ge,
                CompareOp::Le,
            ])
        }

        fn atom() -> impl Strategy<Value = Filter> {
            prop_oneof![
                (attr_path(), op(), literal()).prop_map(|(path, op, value)| Filter::Compare {
                    path,
                    op,
                    value
                }),
                attr_path().prop_map(Filter::Present),
            ]
        }

        fn tree(leaf: BoxedStrategy<Filter>) -> impl Strategy<Value = Filter> {
            leaf.prop_recursive(5, 24, 2, |inner| {
                prop_oneof![
                    (inner.clone(), inner.clone())
                        .prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
                    (inner.clone(), inner.clone())
                        .prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
                    inner.prop_map(|a| Filter::Not(Box::new(a))),
                ]
            })
        }

        fn filter() -> impl Strategy<Value = Filter> {
            let value_path = (attr_path(), tree(atom().boxed())).prop_map(|(mut path, f)| {
                path.sub_attr = None;
                Filter::ValuePath {
                    path,
                    filter: Box::new(f),
                }
            });
            tree(prop_oneof![3 => atom(), 1 => value_path].boxed())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn filter_display_parses_back(f in filter()) {
                let text = f.to_string();
                prop_assert_eq!(parse_filter(&text), Ok(f), "{}", text);
            }

            #[test]
            fn attr_path_display_parses_back(p in attr_path()) {
                prop_assert_eq!(parse_attr_path(&p.to_string()), Ok(p));
            }

            #[test]
            fn patch_path_display_parses_back(
                attr in attr_path(),
                f in prop::option::of(tree(atom().boxed())),
                sub in prop::option::of(name()),
            ) {
                let pp = match f {
                    Some(f) => PatchPath { attr: AttrPath { sub_attr: None, ..attr }, filter: Some(f), sub_attr: sub },
                    None => PatchPath { attr, filter: None, sub_attr: None },
                };
                prop_assert_eq!(parse_patch_path(&pp.to_string()), Ok(pp));
            }

            #[test]
            fn parser_never_panics(s in "\\PC{0,64}") {
                let _ = parse_filter(&s);
                let _ = parse_patch_path(&s);
                let _ = parse_attr_path(&s);
            }

            #[test]
            fn parser_never_panics_on_filter_like_input(s in "[a-z\\[\\]() \"\\\\.:$0-9eE+-]{0,48}") {
                let _ = parse_filter(&s);
                let _ = parse_patch_path(&s);
            }
        }
    }
}
