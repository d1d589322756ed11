//! The web console's audit events (`console.*`): the signed-in user is the
//! actor, the address their browser came from the source.

use crate::names::escape_for_log;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub enum ConsoleEvent {
    /// A bastion user signed in (password + TOTP) with this role.
    SignedIn {
        user: String,
        source: String,
        role: String,
    },
    /// A console session ended: signed out, or idle past the timeout.
    SignedOut {
        user: String,
        source: String,
        why: String,
    },
    /// A sign-in refused after a verified password (wrong, used or unchecked
    /// code; no console role). Wrong passwords go to the failure summaries.
    SignInRefused {
        user: String,
        source: String,
        factor: String,
    },
    /// A state-changing console request, recorded before it is carried out.
    Action {
        user: String,
        source: String,
        method: String,
        path: String,
    },
}

impl ConsoleEvent {
    /// (kind, actor, source, subject, detail) of the audit row.
    pub(super) fn fields(&self) -> (&'static str, String, String, String, Value) {
        match self {
            ConsoleEvent::SignedIn { user, source, role } => (
                "console.signed_in",
                user.clone(),
                source.clone(),
                user.clone(),
                json!({ "role": role }),
            ),
            ConsoleEvent::SignedOut { user, source, why } => (
                "console.signed_out",
                user.clone(),
                source.clone(),
                user.clone(),
                json!({ "why": why }),
            ),
            ConsoleEvent::SignInRefused {
                user,
                source,
                factor,
            } => (
                "console.signin_refused",
                escape_for_log(user),
                source.clone(),
                escape_for_log(user),
                json!({ "factor": factor }),
            ),
            ConsoleEvent::Action {
                user,
                source,
                method,
                path,
            } => (
                "console.action",
                user.clone(),
                source.clone(),
                escape_for_log(path),
                json!({ "method": method }),
            ),
        }
    }
}
