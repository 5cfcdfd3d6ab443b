//! STUB (helper owns)
pub trait Dialect {}
pub struct Sqlite;
impl Dialect for Sqlite {}
