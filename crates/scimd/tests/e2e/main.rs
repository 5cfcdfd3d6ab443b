//! End-to-end tests: a real scimd process over loopback HTTP.

// A test crate: a failed expectation should stop the test loudly.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod auth;
mod bulk;
mod cli;
mod client;
mod concurrency;
mod console;
mod console_browser;
mod crud;
mod custom;
mod devices;
mod discovery;
mod durability;
mod errors;
mod feed;
mod groups;
mod harness;
mod operations;
mod pg_outage;
mod postgres;
mod script_behaviour;
mod scripts;
mod search;
mod sync;
mod sync_runs;
