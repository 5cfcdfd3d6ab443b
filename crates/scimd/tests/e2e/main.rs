//! End-to-end tests: a real scimd process over loopback HTTP.

mod auth;
mod bulk;
mod concurrency;
mod crud;
mod custom;
mod devices;
mod discovery;
mod durability;
mod errors;
mod feed;
mod groups;
mod harness;
mod postgres;
mod search;
