//! JSON ↔ Lua tables. Objects become plain tables, arrays become tables marked
//! with the state's array metatable (so an empty array stays an array), JSON
//! `null` becomes `scim.null`. On the way back, object keys keep the order they
//! had in the input (new keys follow, sorted), a table whose keys are exactly
//! `1..n` is an array, and an empty unmarked table takes the shape the input had
//! at that place (an object when there was none).

use mlua::{Either, Function, Lua, LuaSerdeExt, Table, Value as LuaValue};
use serde_json::{Map, Number, Value};

/// Nesting deeper than this is refused both ways (also catches cyclic tables).
pub(crate) const MAX_DEPTH: usize = 64;

/// The per-state markers the conversion needs.
#[derive(Clone)]
pub(crate) struct Marks {
    pub(crate) array_mt: Table,
    /// The lazy-resource metatable and its fill function (`lazy`): a table still
    /// waiting for its resource is filled before it is read back.
    pub(crate) lazy: Option<(Table, Function)>,
}

pub(crate) fn to_lua(
    lua: &Lua,
    marks: &Marks,
    v: &Value,
    readonly: bool,
) -> mlua::Result<LuaValue> {
    to_lua_at(lua, marks, v, readonly, 0)
}

/// A value ready to push: strings go straight onto the Lua stack (no handle).
type Pushed<'a> = Either<&'a str, LuaValue>;

fn pushed<'a>(
    lua: &Lua,
    marks: &Marks,
    v: &'a Value,
    readonly: bool,
    depth: usize,
) -> mlua::Result<Pushed<'a>> {
    Ok(match v {
        Value::String(s) => Either::Left(s.as_str()),
        other => Either::Right(to_lua_at(lua, marks, other, readonly, depth)?),
    })
}

fn to_lua_at(
    lua: &Lua,
    marks: &Marks,
    v: &Value,
    readonly: bool,
    depth: usize,
) -> mlua::Result<LuaValue> {
    if depth > MAX_DEPTH {
        return Err(mlua::Error::runtime("value nested too deeply"));
    }
    Ok(match v {
        Value::Null => lua.null(),
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Number(n) => LuaValue::Number(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => LuaValue::String(lua.create_string(s)?),
        Value::Array(items) => {
            let vals = items
                .iter()
                .map(|item| pushed(lua, marks, item, readonly, depth + 1))
                .collect::<mlua::Result<Vec<_>>>()?;
            let t = lua.create_sequence_from(vals)?;
            t.set_metatable(Some(marks.array_mt.clone()))?;
            if readonly {
                t.set_readonly(true);
            }
            LuaValue::Table(t)
        }
        Value::Object(map) => {
            let vals = map
                .iter()
                .map(|(k, item)| Ok((k.as_str(), pushed(lua, marks, item, readonly, depth + 1)?)))
                .collect::<mlua::Result<Vec<_>>>()?;
            let t = lua.create_table_from(vals)?;
            if readonly {
                t.set_readonly(true);
            }
            LuaValue::Table(t)
        }
    })
}

/// Put `map`'s members into `t` (raw); with `keep`, members `t` already has stay.
pub(crate) fn fill_object(
    lua: &Lua,
    marks: &Marks,
    map: &Map<String, Value>,
    t: &Table,
    keep: bool,
) -> mlua::Result<()> {
    for (k, item) in map {
        if keep && !t.raw_get::<LuaValue>(k.as_str())?.is_nil() {
            continue;
        }
        t.raw_set(k.as_str(), pushed(lua, marks, item, false, 1)?)?;
    }
    Ok(())
}

/// `template` is what the value looked like before the script ran (for key order
/// and the shape of empty tables).
pub(crate) fn from_lua(
    marks: &Marks,
    v: &LuaValue,
    template: Option<&Value>,
) -> mlua::Result<Value> {
    from_lua_at(marks, v, template, 0)
}

/// Whether `t` is marked an array; fills it first when it is a lazy resource.
fn is_marked_array(marks: &Marks, t: &Table) -> mlua::Result<bool> {
    let Some(mt) = t.metatable() else {
        return Ok(false);
    };
    if let Some((lazy_mt, fill)) = &marks.lazy {
        if mt.to_pointer() == lazy_mt.to_pointer() {
            fill.call::<()>(t.clone())?;
            return Ok(false);
        }
    }
    Ok(mt.to_pointer() == marks.array_mt.to_pointer())
}

fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        Value::Number(Number::from(f as i64))
    } else {
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn key_string(k: &LuaValue) -> mlua::Result<String> {
    match k {
        LuaValue::String(s) => Ok(s.to_string_lossy()),
        LuaValue::Integer(i) => Ok(i.to_string()),
        LuaValue::Number(n) => match number(*n) {
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(mlua::Error::runtime("invalid table key")),
        },
        other => Err(mlua::Error::runtime(format!(
            "a table key of type {} cannot become JSON",
            other.type_name()
        ))),
    }
}

fn from_lua_at(
    marks: &Marks,
    v: &LuaValue,
    template: Option<&Value>,
    depth: usize,
) -> mlua::Result<Value> {
    if depth > MAX_DEPTH {
        return Err(mlua::Error::runtime(
            "value nested too deeply (or a table contains itself)",
        ));
    }
    Ok(match v {
        LuaValue::Nil => Value::Null,
        LuaValue::LightUserData(u) if u.0.is_null() => Value::Null,
        LuaValue::Boolean(b) => Value::Bool(*b),
        LuaValue::Integer(i) => Value::Number(Number::from(*i)),
        LuaValue::Number(n) => number(*n),
        LuaValue::String(s) => Value::String(s.to_string_lossy()),
        LuaValue::Table(t) => table_to_json(marks, t, template, depth)?,
        other => {
            return Err(mlua::Error::runtime(format!(
                "a value of type {} cannot become JSON",
                other.type_name()
            )))
        }
    })
}

fn table_to_json(
    marks: &Marks,
    t: &Table,
    template: Option<&Value>,
    depth: usize,
) -> mlua::Result<Value> {
    let marked = is_marked_array(marks, t)?;
    let len = t.raw_len();
    let tmpl_items = match template {
        Some(Value::Array(a)) => Some(a),
        _ => None,
    };
    if marked {
        // Exactly the sequence part, as `#t` gives it.
        let mut out = Vec::with_capacity(len);
        for i in 1..=len {
            let item: LuaValue = t.raw_get(i)?;
            let tmpl = tmpl_items.and_then(|a| a.get(i - 1));
            out.push(from_lua_at(marks, &item, tmpl, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    let entries: Vec<(String, LuaValue)> = if len == 0 {
        // Keys as Rust strings straight from the stack (numbers become text).
        let mut entries = Vec::new();
        t.for_each(|k: String, v: LuaValue| {
            entries.push((k, v));
            Ok(())
        })?;
        if entries.is_empty() && tmpl_items.is_some() {
            return Ok(Value::Array(Vec::new()));
        }
        entries
    } else {
        let mut pairs: Vec<(LuaValue, LuaValue)> = Vec::new();
        t.for_each(|k: LuaValue, v: LuaValue| {
            pairs.push((k, v));
            Ok(())
        })?;
        if pairs.len() == len {
            // Keys exactly 1..n: an array.
            let mut items: Vec<(usize, LuaValue)> = Vec::with_capacity(len);
            for (k, v) in pairs {
                let idx = match k {
                    LuaValue::Integer(i) => usize::try_from(i).ok(),
                    LuaValue::Number(n) if n.fract() == 0.0 && n >= 1.0 => Some(n as usize),
                    _ => None,
                };
                if let Some(i) = idx.filter(|i| (1..=len).contains(i)) {
                    items.push((i, v));
                }
            }
            items.sort_unstable_by_key(|(i, _)| *i);
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items {
                let tmpl = tmpl_items.and_then(|a| a.get(i - 1));
                out.push(from_lua_at(marks, &item, tmpl, depth + 1)?);
            }
            return Ok(Value::Array(out));
        }
        let mut entries = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            entries.push((key_string(&k)?, v));
        }
        entries
    };
    let mut entries = entries;
    let mut out = Map::new();
    if let Some(Value::Object(tm)) = template {
        // Keys the input had, in its order.
        for key in tm.keys() {
            if let Some(pos) = entries.iter().position(|(k, _)| k == key) {
                let (k, v) = entries.swap_remove(pos);
                let conv = from_lua_at(marks, &v, tm.get(&k), depth + 1)?;
                out.insert(k, conv);
            }
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in entries {
        let conv = from_lua_at(marks, &v, None, depth + 1)?;
        out.insert(k, conv);
    }
    Ok(Value::Object(out))
}

/// A rough upper bound of the JSON text size, stopping once past `limit`.
pub(crate) fn approx_size(v: &Value, limit: usize) -> usize {
    fn walk(v: &Value, acc: &mut usize, limit: usize) {
        if *acc > limit {
            return;
        }
        match v {
            Value::Null | Value::Bool(_) => *acc += 5,
            Value::Number(_) => *acc += 12,
            Value::String(s) => *acc += s.len() + 2,
            Value::Array(a) => {
                *acc += 2;
                for x in a {
                    *acc += 1;
                    walk(x, acc, limit);
                }
            }
            Value::Object(m) => {
                *acc += 2;
                for (k, x) in m {
                    *acc += k.len() + 4;
                    walk(x, acc, limit);
                }
            }
        }
    }
    let mut acc = 0;
    walk(v, &mut acc, limit);
    acc
}
