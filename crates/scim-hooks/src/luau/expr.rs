//! Luau expressions for the sync engine's property transforms: `value` (the
//! source value) and `source` (the source object, read-only) in, a JSON value
//! out. Each expression is compiled once, at start, into its own sandboxed state
//! with the scripts' cut-down library, a memory limit and a time limit per
//! evaluation; a failure is an error for that object, never for the server.

use super::convert::{from_lua, to_lua, Marks};
use super::state::bare_state;
use mlua::{Function, Lua, Value as LuaValue, VmState};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Memory one expression's state may use.
const MEMORY_LIMIT: usize = 16 * 1024 * 1024;

/// How long one evaluation may run.
const TIME_LIMIT: Duration = Duration::from_millis(100);

struct Compiled {
    lua: Lua,
    marks: Marks,
    func: Function,
}

/// One compiled expression; evaluations take turns on its state.
pub struct Expression {
    text: String,
    state: Mutex<Compiled>,
    /// Nanoseconds after `base` when the running evaluation must stop (0: none).
    deadline_ns: Arc<AtomicU64>,
    base: Instant,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expression")
            .field("text", &self.text)
            .finish()
    }
}

/// The first line of a Luau error, without the chunk's own name noise.
fn one_line(e: &mlua::Error) -> String {
    let text = match e {
        mlua::Error::CallbackError { cause, .. } => cause.to_string(),
        other => other.to_string(),
    };
    text.lines().next().unwrap_or_default().trim().to_string()
}

impl Expression {
    /// Compile `text` as the expression of a function of `value` and `source`.
    pub fn compile(text: &str) -> Result<Expression, String> {
        let build = || -> mlua::Result<(Compiled, Arc<AtomicU64>, Instant)> {
            let (lua, marks) = bare_state()?;
            lua.sandbox(true)?;
            let deadline_ns = Arc::new(AtomicU64::new(0));
            let base = Instant::now();
            let watch = deadline_ns.clone();
            lua.set_interrupt(move |_| {
                let deadline = watch.load(Ordering::Relaxed);
                let now = base.elapsed().as_nanos() as u64;
                if deadline != 0 && now > deadline {
                    Err(mlua::Error::runtime("the transform took too long"))
                } else {
                    Ok(VmState::Continue)
                }
            });
            lua.set_memory_limit(MEMORY_LIMIT)?;
            let func: Function = lua
                .load(format!(
                    "return function(value, source)\nreturn ({text})\nend"
                ))
                .set_name("=transform")
                .set_mode(mlua::chunk::ChunkMode::Text)
                .eval()?;
            Ok((Compiled { lua, marks, func }, deadline_ns, base))
        };
        let (compiled, deadline_ns, base) =
            build().map_err(|e| format!("does not compile: {}", one_line(&e)))?;
        Ok(Expression {
            text: text.to_string(),
            state: Mutex::new(compiled),
            deadline_ns,
            base,
        })
    }

    /// Evaluate with `value` and `source`: the result as JSON, None for `nil`.
    pub fn eval(&self, value: &Value, source: &Value) -> Result<Option<Value>, String> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = self.base.elapsed() + TIME_LIMIT;
        self.deadline_ns
            .store(deadline.as_nanos() as u64, Ordering::Relaxed);
        let result = (|| -> mlua::Result<LuaValue> {
            let v = to_lua(&state.lua, &state.marks, value, true)?;
            let s = to_lua(&state.lua, &state.marks, source, true)?;
            state.func.call((v, s))
        })();
        self.deadline_ns.store(0, Ordering::Relaxed);
        let out = result.map_err(|e| one_line(&e))?;
        if out.is_nil() {
            return Ok(None);
        }
        from_lua(&state.marks, &out, None)
            .map(Some)
            .map_err(|e| one_line(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expressions_see_value_and_source() {
        let e = Expression::compile("string.upper(value) .. ' (' .. source.name.givenName .. ')'")
            .unwrap();
        let source = json!({"userName": "bjensen", "name": {"givenName": "Barbara"}});
        assert_eq!(
            e.eval(&json!("bjensen"), &source).unwrap(),
            Some(json!("BJENSEN (Barbara)"))
        );
        let e = Expression::compile("if value == 'x' then nil else #source.emails").unwrap();
        let source = json!({"emails": [{"value": "a"}, {"value": "b"}]});
        assert_eq!(e.eval(&json!("x"), &source).unwrap(), None);
        assert_eq!(e.eval(&json!("y"), &source).unwrap(), Some(json!(2)));
        let e = Expression::compile("{value, value}").unwrap();
        assert_eq!(
            e.eval(&json!("a"), &json!({})).unwrap(),
            Some(json!(["a", "a"]))
        );
    }

    #[test]
    fn bad_expressions_fail_to_compile_with_a_reason() {
        let e = Expression::compile("value ..").unwrap_err();
        assert!(e.starts_with("does not compile:"), "{e}");
        assert!(Expression::compile("value) end os.exit(1) do (").is_err());
    }

    #[test]
    fn runaway_and_hostile_expressions_fail_alone() {
        let e = Expression::compile("(function() while true do end end)()").unwrap();
        let err = e.eval(&json!(1), &json!({})).unwrap_err();
        assert!(err.contains("too long"), "{err}");
        // The state still works afterwards.
        let e2 = Expression::compile("value + 1").unwrap();
        assert_eq!(e2.eval(&json!(1), &json!({})).unwrap(), Some(json!(2)));
        let e = Expression::compile("string.rep('x', 100000000)").unwrap();
        assert!(e.eval(&json!(1), &json!({})).is_err());
        for hostile in [
            "loadstring('return 1')()",
            "require('x')",
            "getfenv(1)",
            "io.open('/etc/passwd')",
        ] {
            let e = Expression::compile(hostile).unwrap();
            assert!(e.eval(&json!(1), &json!({})).is_err(), "{hostile}");
        }
        // The source cannot be changed through the expression.
        let e = Expression::compile("(function() source.userName = 'x' return 1 end)()").unwrap();
        assert!(e.eval(&json!(1), &json!({"userName": "a"})).is_err());
    }
}
