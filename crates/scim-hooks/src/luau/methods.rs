//! Gluu's method names and the API version each needs.

use crate::WriteOp;
use scim_proto::schema::ResourceKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    GetApiVersion,
    Init,
    Destroy,
    CreateUser,
    UpdateUser,
    DeleteUser,
    CreateGroup,
    UpdateGroup,
    DeleteGroup,
    PostCreateUser,
    PostUpdateUser,
    PostDeleteUser,
    PostCreateGroup,
    PostUpdateGroup,
    PostDeleteGroup,
    GetUser,
    GetGroup,
    PostSearchUsers,
    PostSearchGroups,
    ManageResourceOperation,
    ManageSearchOperation,
}

impl Method {
    pub(crate) const ALL: [Method; 21] = [
        Method::GetApiVersion,
        Method::Init,
        Method::Destroy,
        Method::CreateUser,
        Method::UpdateUser,
        Method::DeleteUser,
        Method::CreateGroup,
        Method::UpdateGroup,
        Method::DeleteGroup,
        Method::PostCreateUser,
        Method::PostUpdateUser,
        Method::PostDeleteUser,
        Method::PostCreateGroup,
        Method::PostUpdateGroup,
        Method::PostDeleteGroup,
        Method::GetUser,
        Method::GetGroup,
        Method::PostSearchUsers,
        Method::PostSearchGroups,
        Method::ManageResourceOperation,
        Method::ManageSearchOperation,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Method::GetApiVersion => "getApiVersion",
            Method::Init => "init",
            Method::Destroy => "destroy",
            Method::CreateUser => "createUser",
            Method::UpdateUser => "updateUser",
            Method::DeleteUser => "deleteUser",
            Method::CreateGroup => "createGroup",
            Method::UpdateGroup => "updateGroup",
            Method::DeleteGroup => "deleteGroup",
            Method::PostCreateUser => "postCreateUser",
            Method::PostUpdateUser => "postUpdateUser",
            Method::PostDeleteUser => "postDeleteUser",
            Method::PostCreateGroup => "postCreateGroup",
            Method::PostUpdateGroup => "postUpdateGroup",
            Method::PostDeleteGroup => "postDeleteGroup",
            Method::GetUser => "getUser",
            Method::GetGroup => "getGroup",
            Method::PostSearchUsers => "postSearchUsers",
            Method::PostSearchGroups => "postSearchGroups",
            Method::ManageResourceOperation => "manageResourceOperation",
            Method::ManageSearchOperation => "manageSearchOperation",
        }
    }

    /// The API version a script must declare for the method to be called; the v1
    /// hooks (and init/destroy) run whatever the version (also -1).
    pub(crate) fn min_version(self) -> i64 {
        match self {
            Method::PostCreateUser
            | Method::PostUpdateUser
            | Method::PostDeleteUser
            | Method::PostCreateGroup
            | Method::PostUpdateGroup
            | Method::PostDeleteGroup => 2,
            Method::GetUser | Method::GetGroup => 3,
            Method::PostSearchUsers | Method::PostSearchGroups => 4,
            Method::ManageResourceOperation | Method::ManageSearchOperation => 5,
            _ => i64::MIN,
        }
    }

    pub(crate) fn before(kind: ResourceKind, op: WriteOp) -> Option<Method> {
        Some(match (kind, op) {
            (ResourceKind::User, WriteOp::Create) => Method::CreateUser,
            (ResourceKind::User, WriteOp::Update) => Method::UpdateUser,
            (ResourceKind::User, WriteOp::Delete) => Method::DeleteUser,
            (ResourceKind::Group, WriteOp::Create) => Method::CreateGroup,
            (ResourceKind::Group, WriteOp::Update) => Method::UpdateGroup,
            (ResourceKind::Group, WriteOp::Delete) => Method::DeleteGroup,
            _ => return None,
        })
    }

    pub(crate) fn after(kind: ResourceKind, op: WriteOp) -> Option<Method> {
        Some(match (kind, op) {
            (ResourceKind::User, WriteOp::Create) => Method::PostCreateUser,
            (ResourceKind::User, WriteOp::Update) => Method::PostUpdateUser,
            (ResourceKind::User, WriteOp::Delete) => Method::PostDeleteUser,
            (ResourceKind::Group, WriteOp::Create) => Method::PostCreateGroup,
            (ResourceKind::Group, WriteOp::Update) => Method::PostUpdateGroup,
            (ResourceKind::Group, WriteOp::Delete) => Method::PostDeleteGroup,
            _ => return None,
        })
    }

    pub(crate) fn get(kind: ResourceKind) -> Option<Method> {
        match kind {
            ResourceKind::User => Some(Method::GetUser),
            ResourceKind::Group => Some(Method::GetGroup),
            _ => None,
        }
    }

    pub(crate) fn search(kind: ResourceKind) -> Option<Method> {
        match kind {
            ResourceKind::User => Some(Method::PostSearchUsers),
            ResourceKind::Group => Some(Method::PostSearchGroups),
            _ => None,
        }
    }
}
