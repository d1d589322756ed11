//! Reads of what the bastion keeps, each audited before the first byte
//! goes out: a session's output (live view, replay, cast download) and the
//! exports (the audit log, a session's evidence bundle).

type Parts = (&'static str, String, String, String, serde_json::Value);

/// Who read which recording of which session, and how.
#[derive(Debug, Clone)]
pub struct ReadEvent {
    pub how: ReadKind,
    pub actor: String,
    pub source: String,
    pub session: String,
    pub recording: String,
}

impl ReadEvent {
    /// (kind, actor, source, subject, detail) of the audit row.
    pub(super) fn fields(&self) -> Parts {
        (
            self.how.kind(),
            self.actor.clone(),
            self.source.clone(),
            self.session.clone(),
            serde_json::json!({ "recording": self.recording }),
        )
    }
}

/// How a session's recorded output was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    Live,
    Replay,
    Download,
}

impl ReadKind {
    pub fn kind(self) -> &'static str {
        match self {
            ReadKind::Live => "session.watched",
            ReadKind::Replay => "recording.replayed",
            ReadKind::Download => "recording.downloaded",
        }
    }
}

/// The row parts of an export: `evidence.exported` (a session's bundle) or
/// `audit.exported` (audit rows, with the filters used).
pub(super) fn exported(
    evidence: bool,
    actor: &str,
    source: &str,
    session: &str,
    filter: &serde_json::Value,
) -> Parts {
    (
        if evidence {
            "evidence.exported"
        } else {
            "audit.exported"
        },
        actor.to_string(),
        source.to_string(),
        session.to_string(),
        serde_json::json!({ "filter": filter }),
    )
}
