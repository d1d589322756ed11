//! portcullis: a privileged-access SSH/TCP jump host.
//!
//! See ARCHITECTURE.md for the data path and the module map.

#![forbid(unsafe_code)]
// Outside tests (clippy.toml allows them there) a panic states its reason:
// `.expect("INVARIANT: …")` or a handled error, never a bare `unwrap()`.
#![deny(clippy::unwrap_used)]
// The library talks through `tracing` (and the CLI's own output); a stray
// print is how a secret reaches a terminal or a log unfiltered.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod boxed_queue;
pub mod bridge;
pub mod castfile;
#[allow(clippy::print_stdout, clippy::print_stderr)] // its output is the point
pub mod cli;
pub mod clock;
pub mod config;
pub mod disk;
pub mod forward;
pub mod gateway;
pub mod grants;
pub mod ids;
pub mod lock_state;
pub mod lockdown;
pub mod metrics;
pub mod names;
pub mod ops;
pub mod policy;
pub mod read_ahead;
pub mod recorder;
pub mod registry;
pub mod secret_file;
pub mod session;
pub mod sso;
pub mod store;
pub mod sync;
pub mod upstream;
pub mod vault;
