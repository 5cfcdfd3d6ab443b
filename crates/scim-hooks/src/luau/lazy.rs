//! The resource a boolean hook receives becomes a Lua table only when the script
//! first touches it. Most hooks look at a field or two, or at nothing (a v3
//! `getUser` that only logs): then converting the whole resource in, copying it
//! to tell later whether it changed, and comparing it afterwards is most of what
//! the call costs.
//!
//! The script gets an empty table whose metatable (`mt`) fills it on the first
//! read, write, `#`, generalised iteration or `pairs` (the sandbox's `pairs` and
//! `table.clone` fill their argument first; so does every conversion back to
//! JSON, e.g. `scim.notify(url, user)`). Filling puts the resource in, sets the
//! table's own metatable (the `gluu` view for users) and takes the snapshot the
//! change check compares against. A table never touched is known unchanged
//! without looking at it. What raw access (`rawset`, `setmetatable`) did before
//! any other access counts as a change.

use super::convert::{self, Marks};
use mlua::{Function, Lua, Table};
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard};

/// What a call did with its lazy resource.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not even looked at.
    Untouched,
    /// Looked at; equal to what was handed in.
    Same,
    Changed,
}

#[derive(Default)]
struct Slot {
    /// The table of the running call (its address): the only one `fill` fills.
    table: usize,
    /// The resource of the running call (moved in for the call, handed back by `finish`).
    value: Option<Value>,
    user_view: bool,
    filled: bool,
    /// Raw writes came before the fill: the table differs from the resource.
    dirty: bool,
    snapshot: Option<Table>,
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    match slot.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The metamethods: each fills the table (which replaces the metatable) and then
/// does what was asked on the filled table.
/// A table given this metatable by a script (not the call's own table) is not
/// filled: it just loses the metatable.
const LAZY_MT: &str = r#"
local fill = ...
local rawlen, next, getmetatable, setmetatable = rawlen, next, getmetatable, setmetatable
local mt = {}
local function filled(t)
    fill(t)
    if getmetatable(t) == mt then
        setmetatable(t, nil)
    end
end
mt.__index = function(t, k) filled(t); return t[k] end
mt.__newindex = function(t, k, v) filled(t); t[k] = v end
mt.__len = function(t) filled(t); return rawlen(t) end
mt.__iter = function(t) filled(t); return next, t end
return mt
"#;

/// `pairs` and `table.clone` read raw: they fill a lazy table first.
const WRAP_GLOBALS: &str = r#"
local lazy_mt, fill = ...
local pairs, clone, getmetatable = pairs, table.clone, getmetatable
local function filled(t)
    if getmetatable(t) == lazy_mt then
        fill(t)
    end
    return t
end
_G.pairs = function(t) return pairs(filled(t)) end
table.clone = function(t) return clone(filled(t)) end
"#;

pub(crate) struct Lazy {
    pub(crate) mt: Table,
    pub(crate) fill: Function,
    slot: Arc<Mutex<Slot>>,
}

impl Lazy {
    /// Built before the sandbox freezes the globals (it wraps `pairs`).
    /// `resource_mt` dresses filled users; `copy` takes snapshots.
    pub(crate) fn new(
        lua: &Lua,
        array_mt: &Table,
        resource_mt: &Table,
        copy: &Function,
        memory_limit: usize,
    ) -> mlua::Result<Lazy> {
        let slot = Arc::new(Mutex::new(Slot::default()));
        let fill = fill_function(lua, &slot, array_mt, resource_mt, copy, memory_limit)?;
        let mt: Table = lua
            .load(LAZY_MT)
            .set_name("=scim-lazy")
            .set_mode(mlua::chunk::ChunkMode::Text)
            .call(fill.clone())?;
        mt.set_readonly(true);
        lua.load(WRAP_GLOBALS)
            .set_name("=scim-lazy-globals")
            .set_mode(mlua::chunk::ChunkMode::Text)
            .call::<()>((mt.clone(), fill.clone()))?;
        Ok(Lazy { mt, fill, slot })
    }

    /// An empty table standing for `value` (an object) until the script touches
    /// it. `value` comes back from `finish`, which every call must reach.
    pub(crate) fn table(&self, lua: &Lua, value: Value, user_view: bool) -> mlua::Result<Table> {
        let keys = value.as_object().map_or(0, |m| m.len());
        let t = lua.create_table_with_capacity(0, keys)?;
        t.set_metatable(Some(self.mt.clone()))?;
        *lock(&self.slot) = Slot {
            table: t.to_pointer() as usize,
            value: Some(value),
            user_view,
            ..Slot::default()
        };
        Ok(t)
    }

    /// Whether `t` is a lazy table not yet filled.
    pub(crate) fn is_pending(&self, t: &Table) -> bool {
        t.metatable()
            .is_some_and(|mt| mt.to_pointer() == self.mt.to_pointer())
    }

    /// Whether the running call's table was filled (`finish` then compares it).
    pub(crate) fn was_filled(&self) -> bool {
        lock(&self.slot).filled
    }

    /// After the call: the resource handed back, and what the script did with
    /// `t`. Ends `t`'s laziness (a table the script kept must not fill itself
    /// from a later call's resource). `same` compares with the snapshot.
    pub(crate) fn finish(&self, t: &Table, same: &Function) -> (Value, mlua::Result<Seen>) {
        let seen = self.seen(t, same);
        if self.is_pending(t) {
            let _ = t.set_metatable(None);
        }
        let mut slot = lock(&self.slot);
        slot.table = 0;
        let value = slot.value.take().unwrap_or(Value::Null);
        (value, seen)
    }

    fn seen(&self, t: &Table, same: &Function) -> mlua::Result<Seen> {
        let (filled, dirty, snapshot) = {
            let s = lock(&self.slot);
            (s.filled, s.dirty, s.snapshot.clone())
        };
        if !filled {
            if self.is_pending(t) && t.is_empty() {
                return Ok(Seen::Untouched);
            }
            // Raw writes or a metatable of its own, and nothing read: merge the
            // resource under what the script wrote.
            self.fill.call::<()>(t.clone())?;
            return Ok(Seen::Changed);
        }
        match snapshot {
            Some(snap) if !dirty && same.call::<bool>((t, &snap))? => Ok(Seen::Same),
            _ => Ok(Seen::Changed),
        }
    }
}

fn fill_function(
    lua: &Lua,
    slot: &Arc<Mutex<Slot>>,
    array_mt: &Table,
    resource_mt: &Table,
    copy: &Function,
    memory_limit: usize,
) -> mlua::Result<Function> {
    let slot = slot.clone();
    let marks = Marks {
        array_mt: array_mt.clone(),
        lazy: None,
    };
    let resource_mt = resource_mt.clone();
    let copy = copy.clone();
    lua.create_function(move |lua, t: Table| {
        let mut s = lock(&slot);
        if s.filled || t.to_pointer() as usize != s.table {
            return Ok(());
        }
        s.filled = true;
        s.dirty = !t.is_empty();
        // scimd's own bounded work (the resource passed `max_input_bytes`): no
        // heap limit, which makes each table operation much cheaper.
        let _ = lua.set_memory_limit(0);
        let out = (|| {
            if let Some(Value::Object(map)) = &s.value {
                convert::fill_object(lua, &marks, map, &t, s.dirty)?;
            }
            let own = s.user_view.then(|| resource_mt.clone());
            t.set_metatable(own)?;
            s.snapshot = match s.dirty {
                true => None,
                false => Some(copy.call::<Table>(t.clone())?),
            };
            Ok(())
        })();
        let _ = lua.set_memory_limit(memory_limit);
        out
    })
}
