//! portcullis: a privileged-access SSH/TCP jump host.
//!
//! See ARCHITECTURE.md for the data path and the module map.

#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod forward;
pub mod gateway;
pub mod grants;
pub mod jit;
pub mod lockdown;
pub mod metrics;
pub mod names;
pub mod ops;
pub mod policy;
pub mod read_ahead;
pub mod recorder;
pub mod recording;
pub mod registry;
pub mod secret_file;
pub mod session;
pub mod store;
pub mod upstream;
pub mod vault;
