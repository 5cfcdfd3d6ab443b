//! End-to-end tests: a real scimd process over loopback HTTP.

mod crud;
mod durability;
mod errors;
mod groups;
mod harness;
mod discovery;
