//! RFC 7643 §4 / §8.7.1 definitions of User, Group, EnterpriseUser and the common
//! attributes. OWNER: schema helper. STUB until implemented.
use super::model::*;

pub fn common_attributes() -> Vec<AttributeDef> {
    todo!()
}
pub fn user_schema() -> Schema {
    todo!()
}
pub fn group_schema() -> Schema {
    todo!()
}
pub fn enterprise_user_schema() -> Schema {
    todo!()
}
pub fn user_resource_type() -> ResourceTypeDef {
    todo!()
}
pub fn group_resource_type() -> ResourceTypeDef {
    todo!()
}
