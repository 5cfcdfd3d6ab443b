//! A loaded script: its API version, the methods it defines, and a pool of fully
//! initialised states (a call takes a free one, waiting if all are busy). When
//! the last reference goes (the set was replaced and no call runs on it any
//! more), `destroy` runs on every state.

use super::methods::Method;
use super::notify::Notification;
use super::state::{self, State, StateEnv};
use crate::{ScriptDef, ScriptError};
use mlua::Value as LuaValue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A call under this (on average) is as cheap as the point read it hooks into.
const QUICK_CALL_NS: u64 = 100_000;

/// The free states, and how many calls wait for one (so a call that puts its
/// state back wakes someone only when someone waits: no syscall otherwise).
struct Idle {
    states: Vec<State>,
    waiters: usize,
}

pub(crate) struct LoadedScript {
    pub(crate) def: ScriptDef,
    /// `getApiVersion`: 1 when absent, -1 when it failed.
    pub(crate) version: i64,
    /// Bit `m as u32` set when the script defines `m`.
    pub(crate) defined: u32,
    pub(crate) states: usize,
    pool: Mutex<Idle>,
    cv: Condvar,
    /// Moving average (1/8 weight per call) of the wall time of a call, waiting
    /// for a state included, in nanoseconds: `is_quick`.
    recent_ns: AtomicU64,
    admin_limit: Duration,
}

impl LoadedScript {
    /// Whether a call of `m` reaches the script (defined and allowed by its version).
    pub(crate) fn runs(&self, m: Method) -> bool {
        self.defined & (1 << (m as u32)) != 0 && self.version >= m.min_version()
    }

    pub(crate) fn name(&self) -> &str {
        &self.def.name
    }

    /// Whether this script's calls of late took well under a millisecond.
    pub(crate) fn is_quick(&self) -> bool {
        self.recent_ns.load(Ordering::Relaxed) < QUICK_CALL_NS
    }

    fn note_call(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let old = self.recent_ns.load(Ordering::Relaxed);
        // Racing updates may lose one sample: an estimate is all it needs.
        let new = old - old / 8 + ns / 8;
        self.recent_ns.store(new, Ordering::Relaxed);
    }

    /// Run `f` on a free state (waiting for one).
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        let started = Instant::now();
        let st = self.take_state();
        let out = f(&st);
        self.note_call(started.elapsed());
        let wake = {
            let mut idle = self.lock_idle();
            idle.states.push(st);
            idle.waiters > 0
        };
        if wake {
            self.cv.notify_one();
        }
        out
    }

    fn take_state(&self) -> State {
        let mut idle = self.lock_idle();
        loop {
            if let Some(st) = idle.states.pop() {
                return st;
            }
            idle.waiters += 1;
            idle = match self.cv.wait(idle) {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            idle.waiters -= 1;
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Idle> {
        match self.pool.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// `destroy` on every state; returns the notifications it sent.
    fn destroy_all(&mut self) -> Vec<Notification> {
        let states = match self.pool.get_mut() {
            Ok(p) => std::mem::take(&mut p.states),
            Err(p) => std::mem::take(&mut p.into_inner().states),
        };
        let mut notes = Vec::new();
        for st in states {
            if let Some(Err(e)) = st.invoke(Method::Destroy, None, self.admin_limit, |st, f| {
                f.call::<LuaValue>(st.config.clone())
            }) {
                let (line, msg) = state::describe(&e, &self.def.name);
                tracing::warn!(target: "scim_script", script = %self.def.name, method = "destroy", line, "destroy failed: {msg}");
            }
            notes.append(&mut st.info.meta().notes);
        }
        notes
    }
}

/// Where the notifications of `init` and `destroy` go (the engine's queue).
pub(crate) type NoteSink = std::sync::Arc<dyn Fn(Vec<Notification>) + Send + Sync>;

pub(crate) struct Dropper {
    pub(crate) script: LoadedScript,
    pub(crate) sink: NoteSink,
}

impl Drop for Dropper {
    fn drop(&mut self) {
        let notes = self.script.destroy_all();
        if !notes.is_empty() {
            (self.sink)(notes);
        }
    }
}

impl std::ops::Deref for Dropper {
    type Target = LoadedScript;
    fn deref(&self) -> &LoadedScript {
        &self.script
    }
}

pub(crate) struct LoadLimits {
    pub(crate) states: usize,
    /// For the chunk itself, getApiVersion, init and destroy.
    pub(crate) admin_limit: Duration,
}

fn script_error(def: &ScriptDef, e: &mlua::Error) -> ScriptError {
    let (line, message) = state::describe(e, &def.name);
    ScriptError {
        script: def.name.clone(),
        line,
        message,
    }
}

/// One state: compiled, `getApiVersion` asked, `init` run.
fn ready_state(
    def: &ScriptDef,
    env: &StateEnv,
    limits: &LoadLimits,
) -> Result<(State, i64, Vec<Notification>), ScriptError> {
    let mut st =
        state::new_state(def, env, limits.admin_limit).map_err(|e| script_error(def, &e))?;
    let version = match st.invoke(Method::GetApiVersion, None, limits.admin_limit, |st, f| {
        f.call::<LuaValue>(st.config.clone())
    }) {
        None => 1,
        // `mlua::Integer` is i32 or i64 depending on the Luau build.
        #[allow(clippy::useless_conversion)]
        Some(Ok(LuaValue::Integer(i))) => i64::from(i),
        Some(Ok(LuaValue::Number(n))) if n.fract() == 0.0 && n.abs() < 1e15 => n as i64,
        Some(Ok(other)) => {
            tracing::warn!(target: "scim_script", script = %def.name, method = "getApiVersion", "getApiVersion returned {}; the version counts as -1", other.type_name());
            -1
        }
        Some(Err(e)) => {
            let (line, msg) = state::describe(&e, &def.name);
            tracing::warn!(target: "scim_script", script = %def.name, method = "getApiVersion", line, "getApiVersion failed ({msg}); the version counts as -1");
            -1
        }
    };
    match st.invoke(Method::Init, None, limits.admin_limit, |st, f| {
        f.call::<LuaValue>(st.config.clone())
    }) {
        None | Some(Ok(LuaValue::Boolean(true))) | Some(Ok(LuaValue::Nil)) => {}
        Some(Ok(LuaValue::Boolean(false))) => {
            return Err(ScriptError {
                script: def.name.clone(),
                line: None,
                message: "init returned false".into(),
            })
        }
        Some(Ok(other)) => {
            return Err(ScriptError {
                script: def.name.clone(),
                line: None,
                message: format!("init returned {}, expected a boolean", other.type_name()),
            })
        }
        Some(Err(e)) => return Err(script_error(def, &e)),
    }
    let notes = std::mem::take(&mut st.info.meta().notes);
    st.refresh_funcs().map_err(|e| script_error(def, &e))?;
    Ok((st, version, notes))
}

/// Compile + init in a throwaway state (and destroy it); nothing is kept.
pub(crate) fn check(
    def: &ScriptDef,
    env: &StateEnv,
    limits: &LoadLimits,
) -> Result<(), ScriptError> {
    let (st, _, _) = ready_state(def, env, limits)?;
    let _ = st.invoke(Method::Destroy, None, limits.admin_limit, |st, f| {
        f.call::<LuaValue>(st.config.clone())
    });
    Ok(())
}

pub(crate) fn load(
    def: &ScriptDef,
    env: &StateEnv,
    limits: &LoadLimits,
) -> Result<(LoadedScript, Vec<Notification>), ScriptError> {
    let n = limits.states.max(1);
    let mut states = Vec::with_capacity(n);
    let mut notes = Vec::new();
    let mut version = 1;
    let mut defined = 0;
    for i in 0..n {
        let (st, v, mut more) = ready_state(def, env, limits)?;
        if i == 0 {
            version = v;
            defined = st.defined();
        }
        notes.append(&mut more);
        states.push(st);
    }
    Ok((
        LoadedScript {
            def: def.clone(),
            version,
            defined,
            states: n,
            pool: Mutex::new(Idle { states, waiters: 0 }),
            cv: Condvar::new(),
            recent_ns: AtomicU64::new(0),
            admin_limit: limits.admin_limit,
        },
        notes,
    ))
}
