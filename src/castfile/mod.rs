//! Session recordings: asciicast v2 (`.cast`) beside an integrity chain
//! (`.chain`) that ends in a trailer signed with the bastion's audit key.
//!
//! Pure, synchronous `std::io` code: the recorder runs it on a writer thread,
//! so nothing here may import tokio, russh or sqlx.
//!
//! - [`cast`]: the asciicast format, a bounded reader for untrusted files.
//! - [`chain`]: the integrity chain, checkpoints and the signed trailer;
//!   `writer` writes them with the events (re-exported as [`RecordingWriter`]).
//! - [`verify`]: the verifier and crash recovery (`seal_cut_short`).
//! - [`mask`]: keeps input typed at no-echo prompts out of the recording.
//! - [`sign`]: the audit key files.
//! - [`text`]: channel bytes to event text (UTF-8 carried across chunks).
//! - [`term`]: what replay lets through to the auditor's terminal.

pub mod binary;
pub mod cast;
pub mod chain;
mod chain_reader;
pub mod checksum;
mod escape;
pub mod follow;
pub mod mask;
mod scan;
pub mod sftp;
pub mod sign;
pub mod term;
pub mod text;
pub mod verify;
pub mod words;
mod writer;

#[cfg(test)]
mod tests;

pub use cast::{CastReader, ChannelKind, Event, EventKind, Header, SessionMeta};
pub use cast::{parse_header, parse_line};
pub use chain::{Checkpoint, RecordingWriter, Trailer, TrailerInfo};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use mask::InputMasker;
pub use sign::{load_or_create, load_public, public_base64};
pub use text::Utf8Carry;
pub use verify::{
    VerifyReport, Witness, seal_cut_short, seal_cut_short_witnessed, verify, verify_witnessed,
};

/// Longest line any reader here accepts: these files are untrusted input.
pub const MAX_LINE: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("recording file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// `line` is 1-based in the file; 0 when the text did not come from a file.
    #[error("line {line}: {reason}")]
    Format { line: u64, reason: String },
    #[error("signature does not verify")]
    Signature,
    #[error("audit key {path}: {reason}")]
    Key { path: String, reason: String },
    /// Recovery refuses to sign over a recording that fails its own chain.
    #[error("refusing to seal: {reason}")]
    Integrity { reason: String },
}

pub type Result<T> = std::result::Result<T, RecordingError>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RecordingError + '_ {
    move |source| RecordingError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(crate) fn format_err(line: u64, reason: impl Into<String>) -> RecordingError {
    RecordingError::Format {
        line,
        reason: reason.into(),
    }
}
