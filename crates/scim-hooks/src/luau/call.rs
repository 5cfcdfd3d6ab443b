//! The hooks: boolean chains over the scripts in order (v1–v4) and the v5
//! `manage*` calls on the first v5 script, with the request context.

use super::convert;
use super::lazy::Seen;
use super::methods::Method;
use super::pool::Dropper;
use super::state::{self, State};
use super::{Engine, Notification};
use crate::{HookContext, HookError, HookResponse, HookResult, Hooks, SearchGate, WriteOp};
use mlua::{Table, Value as LuaValue};
use scim_proto::schema::ResourceKind;
use serde_json::{json, Value};

/// How the resource handed to a script is dressed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    Plain,
    /// A user: `user.gluu` is the stored-name view.
    User,
    /// A ListResponse of users: each of `Resources` has `gluu`.
    UserList,
}

fn view_for(kind: ResourceKind, list: bool) -> View {
    match (kind, list) {
        (ResourceKind::User, false) => View::User,
        (ResourceKind::User, true) => View::UserList,
        _ => View::Plain,
    }
}

fn dress(st: &State, t: &Table, view: View) -> mlua::Result<()> {
    match view {
        View::Plain => Ok(()),
        View::User => t.set_metatable(Some(st.resource_mt.clone())),
        View::UserList => {
            if let LuaValue::Table(items) = t.raw_get::<LuaValue>("Resources")? {
                for item in items.sequence_values::<LuaValue>() {
                    if let LuaValue::Table(u) = item? {
                        u.set_metatable(Some(st.resource_mt.clone()))?;
                    }
                }
            }
            Ok(())
        }
    }
}

/// A boolean hook on an object: the script gets a lazily filled table (`lazy`).
fn call_lazy(
    st: &State,
    f: &mlua::Function,
    view: View,
    value: &mut Value,
) -> mlua::Result<Outcome<Option<Value>>> {
    let t = st
        .lazy
        .table(&st.lua, std::mem::take(value), view == View::User)?;
    let ret = f.call::<LuaValue>((t.clone(), st.config.clone()));
    let (given, seen) = st.finish_lazy(&t);
    *value = given;
    match ret? {
        LuaValue::Boolean(true) => match seen? {
            Seen::Untouched | Seen::Same => Ok(Outcome::Done(None)),
            Seen::Changed => {
                let back = st
                    .unmetered(|| convert::from_lua(&st.marks, &LuaValue::Table(t), Some(value)))?;
                Ok(Outcome::Done(Some(back)))
            }
        },
        LuaValue::Boolean(false) => Ok(Outcome::Refused),
        other => Err(bad_return(&other)),
    }
}

/// A boolean hook on anything else (a list of results, a non-object): converted
/// in whole, and compared with a snapshot afterwards.
fn call_eager(
    st: &State,
    f: &mlua::Function,
    view: View,
    value: &Value,
) -> mlua::Result<Outcome<Option<Value>>> {
    let arg = st.unmetered(|| convert::to_lua(&st.lua, &st.marks, value, false))?;
    let LuaValue::Table(t) = &arg else {
        let ret: LuaValue = f.call((arg.clone(), st.config.clone()))?;
        return match ret {
            LuaValue::Boolean(true) => Ok(Outcome::Done(None)),
            LuaValue::Boolean(false) => Ok(Outcome::Refused),
            other => Err(bad_return(&other)),
        };
    };
    dress(st, t, view)?;
    let before = st.unmetered(|| st.snapshot(t))?;
    let ret: LuaValue = f.call((arg.clone(), st.config.clone()))?;
    match ret {
        LuaValue::Boolean(true) => st.unmetered(|| {
            // Most hooks only look: then what they were given stands.
            if st.same(t, &before)? {
                return Ok(Outcome::Done(None));
            }
            let back = convert::from_lua(&st.marks, &arg, Some(value))?;
            Ok(Outcome::Done(Some(back)))
        }),
        LuaValue::Boolean(false) => Ok(Outcome::Refused),
        other => Err(bad_return(&other)),
    }
}

enum Outcome<T> {
    Done(T),
    Refused,
}

impl Engine {
    fn fail(&self, s: &Dropper, m: Method, ctx: &HookContext, e: &mlua::Error) -> HookError {
        let (line, message) = state::describe(e, s.name());
        self.record_error(
            s.name(),
            m.name(),
            line,
            &message,
            ctx.request_id.as_deref(),
        );
        HookError::Failed {
            script: s.name().to_string(),
            message: match line {
                Some(l) => format!("{}: line {l}: {message}", m.name()),
                None => format!("{}: {message}", m.name()),
            },
        }
    }

    fn too_big(&self, s: &Dropper, m: Method, ctx: &HookContext, v: &Value) -> Option<HookError> {
        let limit = self.cfg.max_input_bytes;
        if convert::approx_size(v, limit) <= limit {
            return None;
        }
        let message = format!("input larger than {limit} bytes: not passed to the script");
        self.record_error(
            s.name(),
            m.name(),
            None,
            &message,
            ctx.request_id.as_deref(),
        );
        Some(HookError::Failed {
            script: s.name().to_string(),
            message: format!("{}: {message}", m.name()),
        })
    }

    /// A boolean hook on every script defining `m`, in order; each sees what
    /// the one before left. The first false or error stops.
    fn chain(&self, ctx: &HookContext, m: Method, view: View, value: &mut Value) -> HookResult<()> {
        if !self.is_active() {
            return Ok(());
        }
        let set = self.current();
        let mut notes: Vec<Notification> = Vec::new();
        for s in set.scripts.iter().filter(|s| s.runs(m)) {
            if let Some(e) = self.too_big(s, m, ctx, value) {
                return Err(e);
            }
            let outcome = s.with_state(|st| {
                let r = st.invoke(m, Some(ctx), self.cfg.cpu_limit, |st, f| {
                    if view != View::UserList && value.is_object() {
                        return call_lazy(st, f, view, value);
                    }
                    call_eager(st, f, view, value)
                });
                let more = std::mem::take(&mut st.info.meta().notes);
                (r, more)
            });
            match outcome {
                (None, _) => {}
                (Some(Ok(Outcome::Done(v))), mut more) => {
                    if let Some(v) = v {
                        *value = v;
                    }
                    notes.append(&mut more);
                }
                (Some(Ok(Outcome::Refused)), _) => {
                    tracing::warn!(target: "scim_script", script = %s.name(), method = m.name(), request_id = ctx.request_id.as_deref().unwrap_or(""), "returned false: operation refused");
                    return Err(HookError::Refused {
                        script: s.name().to_string(),
                    });
                }
                (Some(Err(e)), _) => return Err(self.fail(s, m, ctx, &e)),
            }
        }
        self.sent_by(ctx, notes);
        Ok(())
    }

    /// A v5 call on the first v5 script: `args` builds the arguments after the
    /// context; the result is the script's return value as JSON (None for nil)
    /// and the filter prepend it set.
    fn manage(
        &self,
        ctx: &HookContext,
        m: Method,
        inputs: &[Option<&Value>],
        view: View,
    ) -> HookResult<Option<(Option<HookResponse>, Option<String>)>> {
        if !self.is_active() {
            return Ok(None);
        }
        let set = self.current();
        let Some(s) = set.first_v5.and_then(|i| set.scripts.get(i)) else {
            return Ok(None);
        };
        if !s.runs(m) {
            return Ok(None);
        }
        for v in inputs.iter().flatten() {
            if let Some(e) = self.too_big(s, m, ctx, v) {
                return Err(e);
            }
        }
        let (r, notes, prepend) = s.with_state(|st| {
            let r = st.invoke(m, Some(ctx), self.cfg.cpu_limit, |st, f| {
                let mut args: Vec<LuaValue> = Vec::with_capacity(inputs.len() + 2);
                args.push(LuaValue::Table(st.unmetered(|| {
                    state::context_table(&st.lua, ctx, &st.context_mt)
                })?));
                for (i, v) in inputs.iter().enumerate() {
                    match v {
                        None => args.push(LuaValue::Nil),
                        Some(v) => {
                            let lv =
                                st.unmetered(|| convert::to_lua(&st.lua, &st.marks, v, false))?;
                            if let (0, LuaValue::Table(t)) = (i, &lv) {
                                dress(st, t, view)?;
                            }
                            args.push(lv);
                        }
                    }
                }
                args.push(LuaValue::Table(st.config.clone()));
                let ret: LuaValue = f.call(mlua::MultiValue::from_iter(args))?;
                match &ret {
                    LuaValue::Nil => Ok(None),
                    LuaValue::Table(_) => Ok(Some(
                        st.unmetered(|| convert::from_lua(&st.marks, &ret, None))?,
                    )),
                    other => Err(mlua::Error::runtime(format!(
                        "returned {}, expected nil or a response table",
                        other.type_name()
                    ))),
                }
            });
            let mut meta = st.info.meta();
            let notes = std::mem::take(&mut meta.notes);
            let prepend = meta.filter_prepend.take();
            (r, notes, prepend)
        });
        match r {
            None => Ok(None),
            Some(Err(e)) => Err(self.fail(s, m, ctx, &e)),
            Some(Ok(ret)) => {
                let resp = match ret {
                    None => None,
                    Some(v) => match response(v) {
                        Ok(r) => Some(r),
                        Err(msg) => {
                            let e = mlua::Error::runtime(msg);
                            return Err(self.fail(s, m, ctx, &e));
                        }
                    },
                };
                self.sent_by(ctx, notes);
                Ok(Some((resp, prepend)))
            }
        }
    }
}

fn bad_return(v: &LuaValue) -> mlua::Error {
    mlua::Error::runtime(format!("returned {}, expected a boolean", v.type_name()))
}

/// A script's response table as the service sends it.
fn response(v: Value) -> Result<HookResponse, String> {
    let Value::Object(mut map) = v else {
        return Err("a response must be a table".into());
    };
    let status = match map.get("status") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .and_then(|s| u16::try_from(s).ok())
    .filter(|s| (100..=599).contains(s))
    .ok_or("a response needs a status between 100 and 599")?;
    let mut headers = Vec::new();
    match map.remove("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (k, v) in h {
                let v = match v {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return Err(format!("header '{k}' must be a string")),
                };
                headers.push((k, v));
            }
        }
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(_) => return Err("headers must be a table of name = value".into()),
    }
    let mut body = match map.remove("body") {
        None | Some(Value::Null) => None,
        Some(b) => Some(b),
    };
    if status >= 400 {
        let b = body.get_or_insert_with(|| json!({}));
        if let Value::Object(o) = b {
            if !o.contains_key("schemas") {
                o.insert("schemas".into(), json!([scim_proto::messages::ERROR]));
            }
            if !o.contains_key("status") {
                o.insert("status".into(), Value::String(status.to_string()));
            }
        }
    }
    Ok(HookResponse {
        status,
        body,
        headers,
    })
}

impl Hooks for Engine {
    fn active(&self) -> bool {
        self.is_active()
    }

    fn commit(&self, request_id: &str) {
        self.commit_pending(request_id);
    }

    fn discard(&self, request_id: &str) {
        self.discard_pending(request_id);
    }

    fn calls_are_quick(&self) -> bool {
        !self.is_active() || self.current().scripts.iter().all(|s| s.is_quick())
    }

    fn gates_resources(&self) -> bool {
        if !self.is_active() {
            return false;
        }
        let set = self.current();
        set.first_v5
            .and_then(|i| set.scripts.get(i))
            .is_some_and(|s| s.runs(Method::ManageResourceOperation))
    }

    fn manage_resource(
        &self,
        ctx: &HookContext,
        kind: ResourceKind,
        resource: &Value,
        payload: Option<&Value>,
    ) -> HookResult<Option<HookResponse>> {
        Ok(self
            .manage(
                ctx,
                Method::ManageResourceOperation,
                &[Some(resource), payload],
                view_for(kind, false),
            )?
            .and_then(|(resp, _)| resp))
    }

    fn manage_search(
        &self,
        ctx: &HookContext,
        _kind: ResourceKind,
        search: &Value,
    ) -> HookResult<SearchGate> {
        Ok(
            match self.manage(
                ctx,
                Method::ManageSearchOperation,
                &[Some(search)],
                View::Plain,
            )? {
                None => SearchGate::Continue {
                    filter_prepend: None,
                },
                Some((Some(resp), _)) => SearchGate::Respond(resp),
                Some((None, filter_prepend)) => SearchGate::Continue { filter_prepend },
            },
        )
    }

    fn before_write(
        &self,
        ctx: &HookContext,
        kind: ResourceKind,
        op: WriteOp,
        resource: &mut Value,
    ) -> HookResult<()> {
        match Method::before(kind, op) {
            Some(m) => self.chain(ctx, m, view_for(kind, false), resource),
            None => Ok(()),
        }
    }

    fn after_write(
        &self,
        ctx: &HookContext,
        kind: ResourceKind,
        op: WriteOp,
        resource: &mut Value,
    ) -> HookResult<()> {
        match Method::after(kind, op) {
            Some(m) => self.chain(ctx, m, view_for(kind, false), resource),
            None => Ok(()),
        }
    }

    fn on_get(
        &self,
        ctx: &HookContext,
        kind: ResourceKind,
        resource: &mut Value,
    ) -> HookResult<()> {
        match Method::get(kind) {
            Some(m) => self.chain(ctx, m, view_for(kind, false), resource),
            None => Ok(()),
        }
    }

    fn after_search(
        &self,
        ctx: &HookContext,
        kind: ResourceKind,
        results: &mut Value,
    ) -> HookResult<()> {
        match Method::search(kind) {
            Some(m) => self.chain(ctx, m, view_for(kind, true), results),
            None => Ok(()),
        }
    }
}
