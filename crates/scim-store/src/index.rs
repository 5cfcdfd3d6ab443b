//! STUB (helper owns)
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry};
use serde_json::Value;
pub struct IndexRow { pub path: String, pub elem: i64, pub value: IndexValue }
pub enum IndexValue { Text(String), Num(f64), Bool(bool) }
pub fn index_rows(_r: &SchemaRegistry, _rt: &ResourceTypeDef, _d: &Value) -> Vec<IndexRow> { vec![] }
