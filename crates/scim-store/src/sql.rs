//! STUB (helper owns)
use scim_proto::filter::{AttrPath, Filter};
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry};
use scim_proto::ScimResult;
pub enum SqlParam { Text(String), Num(f64), Bool(bool), Int(i64) }
pub struct SqlFragment { pub sql: String, pub params: Vec<SqlParam> }
pub fn compile_filter(_d: &dyn crate::dialect::Dialect, _r: &SchemaRegistry, _rt: &ResourceTypeDef, _f: &Filter, _i: usize) -> ScimResult<SqlFragment> { todo!() }
pub fn compile_sort(_d: &dyn crate::dialect::Dialect, _r: &SchemaRegistry, _rt: &ResourceTypeDef, _f: &AttrPath, _i: usize) -> ScimResult<SqlFragment> { todo!() }
