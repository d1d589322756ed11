//! What an exec request is, decided from its exact form.
//!
//! A command is a file transfer (legacy `scp -t/-f`, `rsync --server`) only
//! when its argv has exactly the shape those programs send: the program, known
//! flag tokens, and plain paths with no shell metacharacters or whitespace.
//! Anything else is a command under the `exec` permission and its lists; a
//! string that merely looks like a transfer is never one.

/// A proven file transfer, named from the target's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// `scp -t PATH`: the client uploads.
    ScpSink,
    /// `scp -f PATH`: the client downloads.
    ScpSource,
    /// `rsync --server ...`: the client uploads.
    RsyncReceiver,
    /// `rsync --server --sender ...`: the client downloads.
    RsyncSender,
}

impl Transfer {
    pub fn name(self) -> &'static str {
        match self {
            Transfer::ScpSink => "scp upload",
            Transfer::ScpSource => "scp download",
            Transfer::RsyncReceiver => "rsync upload",
            Transfer::RsyncSender => "rsync download",
        }
    }
}

/// What an exec request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecKind {
    Transfer(Transfer),
    Command,
}

/// Classifies an exec command. The gate and the recorder both call this, so
/// what is allowed as a transfer and what is recorded as one cannot differ.
pub fn classify(command: &[u8]) -> ExecKind {
    // Skeleton: nothing is a transfer until the exact-shape parser lands.
    let _ = command;
    ExecKind::Command
}
