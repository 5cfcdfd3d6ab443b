//! One sandboxed Luau state running one script: the standard library cut down to
//! what cannot reach outside, the `scim` helpers, the heap limit, the CPU-time
//! interrupt, and the script's functions looked up once.

use super::convert::{self, Marks};
use super::lazy::{Lazy, Seen};
use super::methods::Method;
use super::notify::{self, Notification};
use crate::{HookContext, ScriptDef};
use mlua::{Function, Lua, LuaOptions, StdLib, Table, Value as LuaValue, VmState};
use scim_proto::clock::Clock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Globals Luau (or mlua) provides that a script must not have.
const REMOVED_GLOBALS: &[&str] = &[
    "require",
    "loadstring",
    "load",
    "dofile",
    "loadfile",
    "getfenv",
    "setfenv",
    "os",
    "io",
    "debug",
    "package",
    "print",
];

/// Notifications one call may buffer; more are dropped with a log line.
const MAX_NOTES_PER_CALL: usize = 32;

/// What the engine hands every state.
#[derive(Clone)]
pub(crate) struct StateEnv {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) notify_allow: Arc<Vec<String>>,
    pub(crate) memory_limit: usize,
}

/// The call now running on a state (for the helpers and the log).
#[derive(Default)]
pub(crate) struct CallMeta {
    pub(crate) method: &'static str,
    pub(crate) request_id: Option<String>,
    pub(crate) notes: Vec<Notification>,
    pub(crate) filter_prepend: Option<String>,
    /// The request, for `scim.context()` (kept only by scripts that mention it).
    pub(crate) context: Option<HookContext>,
}

pub(crate) struct CallInfo {
    pub(crate) script: String,
    base: Instant,
    /// Nanoseconds after `base` when the running call must stop; 0: none running.
    deadline_ns: AtomicU64,
    hard_deadline_ns: AtomicU64,
    cpu_mark_ns: AtomicU64,
    cpu_limit_ns: AtomicU64,
    meta: Mutex<CallMeta>,
    /// The source mentions `scim.context`: keep each call's context for it.
    wants_context: bool,
}

impl CallInfo {
    pub(crate) fn meta(&self) -> MutexGuard<'_, CallMeta> {
        match self.meta.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Start the clock of a call that may use `limit` of time. Past `limit`
    /// of wall-clock time, the thread's CPU time is sampled, and the call stops
    /// once it has used another quarter of the limit in CPU time: a call that
    /// was only waiting for a core (other threads, other processes) finishes,
    /// a busy one stops at about 1.25 × the limit. Whatever happens it stops at
    /// `WALL_CAP_FACTOR` × the limit of wall-clock time.
    pub(crate) fn arm(&self, limit: Duration) {
        let limit_ns = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
        let now = self.now_ns();
        self.cpu_limit_ns.store(limit_ns, Ordering::Relaxed);
        self.cpu_mark_ns.store(0, Ordering::Relaxed);
        self.hard_deadline_ns.store(
            now.saturating_add(limit_ns.saturating_mul(WALL_CAP_FACTOR)),
            Ordering::Relaxed,
        );
        self.deadline_ns
            .store(now.saturating_add(limit_ns).max(1), Ordering::Relaxed);
    }

    pub(crate) fn disarm(&self) {
        self.deadline_ns.store(0, Ordering::Relaxed);
    }

    fn check_time(&self) -> Result<(), &'static str> {
        let d = self.deadline_ns.load(Ordering::Relaxed);
        if d == 0 {
            return Ok(());
        }
        let now = self.now_ns();
        if now <= d {
            return Ok(());
        }
        if now > self.hard_deadline_ns.load(Ordering::Relaxed) {
            return Err("CPU time limit exceeded (wall-clock cap)");
        }
        let mark = self.cpu_mark_ns.load(Ordering::Relaxed);
        let cpu = thread_cpu_ns();
        if mark == 0 {
            self.cpu_mark_ns.store(cpu.max(1), Ordering::Relaxed);
            return Ok(());
        }
        if cpu.saturating_sub(mark) > self.cpu_limit_ns.load(Ordering::Relaxed) / 4 {
            return Err("CPU time limit exceeded");
        }
        Ok(())
    }
}

/// A call may take this many times its CPU limit in wall-clock time at most.
const WALL_CAP_FACTOR: u64 = 20;

fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}

pub(crate) struct State {
    pub(crate) lua: Lua,
    pub(crate) info: Arc<CallInfo>,
    pub(crate) marks: Marks,
    /// For user resources: `user.gluu`, and writes to `gluu` refused.
    pub(crate) resource_mt: Table,
    /// `context:setFilterPrepend(f)`.
    pub(crate) context_mt: Table,
    pub(crate) config: Table,
    funcs: Vec<Option<Function>>,
    memory_limit: usize,
    copy_fn: Function,
    same_fn: Function,
    /// The lazily filled resource of boolean hooks.
    pub(crate) lazy: Lazy,
}

/// The CPU-time check, called by Luau at function calls and loop back-edges of
/// script code. Installed whenever script code may run; lifted only while the
/// state runs scimd's own bounded code (`unmetered`).
fn install_interrupt(lua: &Lua, info: &Arc<CallInfo>) {
    let info = info.clone();
    lua.set_interrupt(move |lua| match info.check_time() {
        Ok(()) => Ok(VmState::Continue),
        Err(why) => {
            // Where the script was, in Luau's "name:line: message" form.
            let line =
                (0..4).find_map(|level| lua.inspect_stack(level, |d| d.current_line()).flatten());
            Err(mlua::Error::runtime(match line {
                Some(l) => format!("{}:{l}: {why}", info.script),
                None => why.to_string(),
            }))
        }
    });
}

/// Deep copy and deep comparison of resource tables, in Luau: walking a table
/// there costs a fraction of walking it through the embedding API, so "did the
/// script change what it was given?" is cheaper to answer this way than by
/// converting the table back. Arrays keep their mark (`array_mt`, whose
/// `__metatable` is "array"); comparisons are raw, so a resource's `gluu` view
/// is never built. `same` stops at the first difference, so it walks no more
/// than the copy holds whatever the script added.
const SNAPSHOT: &str = r#"
local array_mt = ...
local next, type, getmetatable, setmetatable, rawget = next, type, getmetatable, setmetatable, rawget
local function copy(t)
    local c = {}
    for k, v in next, t do
        if type(v) == "table" then
            v = copy(v)
        end
        c[k] = v
    end
    local mt = getmetatable(t)
    if mt == "array" then
        setmetatable(c, array_mt)
    elseif mt ~= nil then
        setmetatable(c, mt)
    end
    return c
end
local function same(a, b)
    if getmetatable(a) ~= getmetatable(b) then
        return false
    end
    for k, v in next, a do
        local w = rawget(b, k)
        if v ~= w and (type(v) ~= "table" or type(w) ~= "table" or not same(v, w)) then
            return false
        end
    end
    for k in next, b do
        if rawget(a, k) == nil then
            return false
        end
    end
    return true
end
return copy, same
"#;

/// A new sandboxed state with the script's chunk run (its functions defined);
/// `limit` bounds the chunk's run time. `getApiVersion` and `init` are the
/// caller's (`pool`).
/// A Luau state with the cut-down standard library (no loading of code, no
/// files, no environment access) and the array mark `convert` reads and writes:
/// what scripts and transform expressions (`expr`) start from.
pub(crate) fn bare_state() -> mlua::Result<(Lua, Marks)> {
    let lua = Lua::new_with(
        StdLib::COROUTINE
            | StdLib::TABLE
            | StdLib::STRING
            | StdLib::UTF8
            | StdLib::BIT
            | StdLib::MATH
            | StdLib::BUFFER,
        LuaOptions::default(),
    )?;
    let globals = lua.globals();
    for name in REMOVED_GLOBALS {
        globals.raw_set(*name, LuaValue::Nil)?;
    }
    let array_mt = lua.create_table()?;
    array_mt.raw_set("__metatable", "array")?;
    array_mt.set_readonly(true);
    let marks = Marks {
        array_mt,
        lazy: None,
    };
    Ok((lua, marks))
}

pub(crate) fn new_state(def: &ScriptDef, env: &StateEnv, limit: Duration) -> mlua::Result<State> {
    let (lua, mut marks) = bare_state()?;
    let info = Arc::new(CallInfo {
        script: def.name.clone(),
        base: Instant::now(),
        deadline_ns: AtomicU64::new(0),
        hard_deadline_ns: AtomicU64::new(0),
        cpu_mark_ns: AtomicU64::new(0),
        cpu_limit_ns: AtomicU64::new(0),
        meta: Mutex::new(CallMeta::default()),
        wants_context: def.source.contains("context"),
    });
    let globals = lua.globals();

    let resource_mt = resource_metatable(&lua, &marks)?;
    let (copy_fn, same_fn): (Function, Function) = lua
        .load(SNAPSHOT)
        .set_name("=scim-snapshot")
        .set_mode(mlua::chunk::ChunkMode::Text)
        .call(marks.array_mt.clone())?;
    let lazy = Lazy::new(
        &lua,
        &marks.array_mt,
        &resource_mt,
        &copy_fn,
        env.memory_limit,
    )?;
    marks.lazy = Some((lazy.mt.clone(), lazy.fill.clone()));
    let context_mt = context_metatable(&lua, &info)?;
    let scim = lua.create_table()?;
    {
        let info = info.clone();
        let mt = context_mt.clone();
        scim.raw_set(
            "context",
            lua.create_function(move |lua, ()| {
                let ctx = info.meta().context.clone();
                match ctx {
                    Some(ctx) => Ok(LuaValue::Table(context_table(lua, &ctx, &mt)?)),
                    None => Ok(LuaValue::Nil),
                }
            })?,
        )?;
    }
    scim.raw_set("null", mlua::LuaSerdeExt::null(&lua))?;
    scim.raw_set("array_mt", marks.array_mt.clone())?;
    {
        let info = info.clone();
        scim.raw_set(
            "log",
            lua.create_function(move |_, (level, msg): (String, LuaValue)| {
                let msg = match msg {
                    LuaValue::String(s) => s.to_string_lossy(),
                    other => format!("{other:?}"),
                };
                log_from_script(&info, &level, &msg);
                Ok(())
            })?,
        )?;
    }
    {
        let info = info.clone();
        let print = lua.create_function(move |_, args: mlua::Variadic<LuaValue>| {
            let text: Vec<String> = args
                .iter()
                .map(|v| match v {
                    LuaValue::String(s) => s.to_string_lossy(),
                    other => other.to_string().unwrap_or_else(|_| format!("{other:?}")),
                })
                .collect();
            log_from_script(&info, "info", &text.join("\t"));
            Ok(())
        })?;
        globals.raw_set("print", print)?;
    }
    {
        let clock = env.clock.clone();
        scim.raw_set(
            "now",
            lua.create_function(move |_, ()| {
                Ok(clock
                    .now()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            })?,
        )?;
    }
    {
        let info = info.clone();
        let allow = env.notify_allow.clone();
        let marks = marks.clone();
        scim.raw_set(
            "notify",
            lua.create_function(move |_, (url, body): (String, LuaValue)| {
                let body = convert::from_lua(&marks, &body, None)?;
                if let Err(why) = notify::allowed(&url, &allow) {
                    log_from_script(&info, "warn", &format!("notify refused: {why}"));
                    return Ok(false);
                }
                let mut meta = info.meta();
                if meta.notes.len() >= MAX_NOTES_PER_CALL {
                    let method = meta.method;
                    let rid = meta.request_id.clone();
                    drop(meta);
                    tracing::warn!(target: "scim_script", script = %info.script, method, request_id = rid.as_deref().unwrap_or(""), url = %url, "too many notifications in one call: dropped");
                    return Ok(false);
                }
                let request_id = meta.request_id.clone();
                meta.notes.push(Notification {
                    url,
                    body,
                    script: info.script.clone(),
                    request_id,
                });
                Ok(true)
            })?,
        )?;
    }
    globals.raw_set("scim", scim)?;

    // Freezes the globals and the libraries (and `scim`); the script's own
    // globals go to a per-thread table in front of them.
    lua.sandbox(true)?;

    let config = lua.create_table()?;
    for (k, v) in &def.properties {
        config.raw_set(k.as_str(), v.as_str())?;
    }
    config.set_readonly(true);

    install_interrupt(&lua, &info);
    lua.set_memory_limit(env.memory_limit)?;

    info.arm(limit);
    let loaded = lua
        .load(def.source.as_str())
        .set_name(format!("={}", def.name))
        .set_mode(mlua::chunk::ChunkMode::Text)
        .exec();
    info.disarm();
    loaded?;

    let globals = lua.globals();
    let mut funcs = Vec::with_capacity(Method::ALL.len());
    for m in Method::ALL {
        funcs.push(match globals.get::<LuaValue>(m.name())? {
            LuaValue::Function(f) => Some(f),
            _ => None,
        });
    }
    Ok(State {
        lua,
        info,
        marks,
        resource_mt,
        context_mt,
        config,
        funcs,
        memory_limit: env.memory_limit,
        copy_fn,
        same_fn,
        lazy,
    })
}

impl State {
    pub(crate) fn func(&self, m: Method) -> Option<&Function> {
        self.funcs.get(m as usize).and_then(Option::as_ref)
    }

    /// Look the functions up again (after `init`, which may define some).
    pub(crate) fn refresh_funcs(&mut self) -> mlua::Result<()> {
        let globals = self.lua.globals();
        for (i, m) in Method::ALL.iter().enumerate() {
            self.funcs[i] = match globals.get::<LuaValue>(m.name())? {
                LuaValue::Function(f) => Some(f),
                _ => None,
            };
        }
        Ok(())
    }

    /// Run scimd's own code on the state (conversions, snapshots) with the
    /// heap limit and the CPU-time check lifted: mlua then skips protecting every
    /// table operation against memory errors, and Luau calls no interrupt, which
    /// together make converting a resource several times faster. What it
    /// allocates and walks is bounded by `max_input_bytes` (input) or by what
    /// the script already built (output); both limits are back before any
    /// script code runs.
    pub(crate) fn unmetered<R>(&self, f: impl FnOnce() -> R) -> R {
        let _ = self.lua.set_memory_limit(0);
        self.lua.remove_interrupt();
        let out = f();
        install_interrupt(&self.lua, &self.info);
        let _ = self.lua.set_memory_limit(self.memory_limit);
        out
    }

    /// A deep copy of a resource table, to tell later whether a script changed
    /// it (`same`). Call inside `unmetered`.
    pub(crate) fn snapshot(&self, t: &Table) -> mlua::Result<Table> {
        self.copy_fn.call(t)
    }

    /// Whether `t` still equals its `snapshot`. Call inside `unmetered`.
    pub(crate) fn same(&self, t: &Table, snapshot: &Table) -> mlua::Result<bool> {
        self.same_fn.call((t, snapshot))
    }

    /// After a call that got `t` from `lazy.table`: the resource back and what
    /// the script did with it.
    pub(crate) fn finish_lazy(&self, t: &Table) -> (serde_json::Value, mlua::Result<Seen>) {
        if self.lazy.was_filled() {
            return self.unmetered(|| self.lazy.finish(t, &self.same_fn));
        }
        self.lazy.finish(t, &self.same_fn)
    }

    pub(crate) fn defined(&self) -> u32 {
        let mut mask = 0;
        for m in Method::ALL {
            if self.func(m).is_some() {
                mask |= 1 << (m as u32);
            }
        }
        mask
    }
}

/// The key checks are Lua functions (no call into Rust for the common reads
/// and writes of absent attributes); only `gluu` builds the view in Rust.
const RESOURCE_MT: &str = r#"
local view = ...
local function index(t, k)
    if k == "gluu" then
        return view(t)
    end
    return nil
end
local function newindex(t, k, v)
    if k == "gluu" then
        error("'gluu' is a read-only view", 2)
    end
    rawset(t, k, v)
end
return { __index = index, __newindex = newindex }
"#;

fn resource_metatable(lua: &Lua, marks: &Marks) -> mlua::Result<Table> {
    let array_mt = marks.array_mt.clone();
    let view = lua.create_function(move |lua, t: Table| {
        let marks = Marks {
            array_mt: array_mt.clone(),
            lazy: None,
        };
        let doc = convert::from_lua(&marks, &LuaValue::Table(t), None)?;
        let stored = scim_proto::gluu::stored_user(&doc, &[]);
        convert::to_lua(lua, &marks, &serde_json::Value::Object(stored), true)
    })?;
    let mt: Table = lua
        .load(RESOURCE_MT)
        .set_name("=scim-resource")
        .set_mode(mlua::chunk::ChunkMode::Text)
        .call(view)?;
    mt.set_readonly(true);
    Ok(mt)
}

fn context_metatable(lua: &Lua, info: &Arc<CallInfo>) -> mlua::Result<Table> {
    let methods = lua.create_table()?;
    {
        let info = info.clone();
        methods.raw_set(
            "setFilterPrepend",
            lua.create_function(move |_, (_this, f): (LuaValue, Option<String>)| {
                info.meta().filter_prepend = f.filter(|s| !s.trim().is_empty());
                Ok(())
            })?,
        )?;
    }
    {
        let info = info.clone();
        methods.raw_set(
            "getFilterPrepend",
            lua.create_function(move |_, _this: LuaValue| Ok(info.meta().filter_prepend.clone()))?,
        )?;
    }
    methods.set_readonly(true);
    let mt = lua.create_table()?;
    mt.raw_set("__index", methods)?;
    mt.set_readonly(true);
    Ok(mt)
}

/// `scim.log` and `print`: the script log (target `scim_script`).
pub(crate) fn log_from_script(info: &CallInfo, level: &str, msg: &str) {
    let (method, rid) = {
        let m = info.meta();
        (m.method, m.request_id.clone())
    };
    let script = info.script.as_str();
    let rid = rid.as_deref().unwrap_or("");
    match level.to_ascii_lowercase().as_str() {
        "error" | "severe" => {
            tracing::error!(target: "scim_script", script, method, request_id = rid, "{msg}")
        }
        "warn" | "warning" => {
            tracing::warn!(target: "scim_script", script, method, request_id = rid, "{msg}")
        }
        "debug" | "fine" => {
            tracing::debug!(target: "scim_script", script, method, request_id = rid, "{msg}")
        }
        "trace" | "finest" => {
            tracing::trace!(target: "scim_script", script, method, request_id = rid, "{msg}")
        }
        _ => tracing::info!(target: "scim_script", script, method, request_id = rid, "{msg}"),
    }
}

impl State {
    /// Run `f` with the script's function for `m` under the CPU limit; None when
    /// the script does not define it. The call's notifications and filter
    /// prepend stay in `info.meta()` until the next call.
    pub(crate) fn invoke<R>(
        &self,
        m: Method,
        ctx: Option<&HookContext>,
        limit: Duration,
        f: impl FnOnce(&State, &Function) -> mlua::Result<R>,
    ) -> Option<mlua::Result<R>> {
        let func = self.func(m)?;
        {
            let mut meta = self.info.meta();
            meta.method = m.name();
            meta.request_id = ctx.and_then(|c| c.request_id.clone());
            meta.context = if self.info.wants_context {
                ctx.cloned()
            } else {
                None
            };
            meta.notes.clear();
            meta.filter_prepend = None;
        }
        self.info.arm(limit);
        let out = f(self, func);
        self.info.disarm();
        metrics::counter!("scimd_script_calls_total", "hook" => m.name()).increment(1);
        if out.is_err() {
            metrics::counter!("scimd_script_errors_total", "hook" => m.name()).increment(1);
        }
        if self.info.wants_context {
            self.info.meta().context = None;
        }
        Some(out)
    }
}

/// `context` for the v5 methods and `scim.context()` (Gluu's OperationContext).
pub(crate) fn context_table(
    lua: &Lua,
    ctx: &HookContext,
    context_mt: &Table,
) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 8)?;
    t.raw_set("path", ctx.path.as_str())?;
    t.raw_set("baseUri", ctx.base_uri.as_str())?;
    t.raw_set("method", ctx.method.as_str())?;
    t.raw_set("resourceType", ctx.resource_type.as_str())?;
    let q = lua.create_table()?;
    for (k, v) in &ctx.query_params {
        q.raw_set(k.as_str(), v.as_str())?;
    }
    t.raw_set("queryParams", q)?;
    let h = lua.create_table()?;
    for (k, v) in &ctx.request_headers {
        h.raw_set(k.as_str(), v.as_str())?;
    }
    t.raw_set("requestHeaders", h)?;
    if let Some(tok) = &ctx.token {
        let d = lua.create_table()?;
        d.raw_set("clientId", tok.client_id.as_str())?;
        d.raw_set("scope", tok.scope.as_str())?;
        if let Some(exp) = tok.expiration {
            d.raw_set(
                "expirationDate",
                exp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )?;
        }
        d.raw_set("tokenType", tok.token_type.as_str())?;
        t.raw_set("tokenDetails", d)?;
    }
    if let Some(rid) = &ctx.request_id {
        t.raw_set("requestId", rid.as_str())?;
    }
    t.set_metatable(Some(context_mt.clone()))?;
    Ok(t)
}

/// The line and the message of a Luau error, for a script named `script`.
pub(crate) fn describe(err: &mlua::Error, script: &str) -> (Option<u32>, String) {
    let full = err.to_string();
    let line = find_line(&full, script);
    let mut root = err;
    while let mlua::Error::CallbackError { cause, .. } = root {
        root = cause;
    }
    let text = match root {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::MemoryError(m) => format!("memory limit exceeded ({m})"),
        other => other.to_string(),
    };
    let first = text.lines().next().unwrap_or("").trim();
    let prefix = format!("{script}:");
    let msg = match first.strip_prefix(&prefix) {
        Some(rest) => {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            match rest[digits..].strip_prefix(':') {
                Some(m) if digits > 0 => m.trim().to_string(),
                _ => first.to_string(),
            }
        }
        None => first.to_string(),
    };
    (line, msg)
}

fn find_line(text: &str, script: &str) -> Option<u32> {
    let prefix = format!("{script}:");
    let mut rest = text;
    while let Some(pos) = rest.find(&prefix) {
        let after = &rest[pos + prefix.len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && after[digits.len()..].starts_with(':') {
            return digits.parse().ok();
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod timing {
    #[test]
    #[ignore]
    fn thread_cpu_clock_cost() {
        let n = 100_000u32;
        let start = std::time::Instant::now();
        let mut acc = 0u64;
        for _ in 0..n {
            acc = acc.wrapping_add(super::thread_cpu_ns());
        }
        println!("thread cpu clock: {:?} ({acc})", start.elapsed() / n);
        let start = std::time::Instant::now();
        for _ in 0..n {
            acc = acc.wrapping_add(start.elapsed().as_nanos() as u64);
        }
        println!("Instant::elapsed: {:?} ({acc})", start.elapsed() / n);
    }
}
