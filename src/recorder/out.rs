//! Where a channel's events go: the recording writer, once the session
//! request created it, with the target's choice of recording contents or
//! metadata only applied in one place.

use super::RecorderError;
use crate::castfile::{EventKind, RecordingError, RecordingWriter};
use crate::clock::now_ms;

/// What the stream recorders write through (a test gives its own).
pub(crate) trait Out {
    /// Whether channel contents are recorded (false: the target records
    /// metadata only, and contents are dropped here).
    fn contents(&self) -> bool;
    /// Channel contents: output or input text.
    fn event(&mut self, at: f64, kind: EventKind, data: &[u8]) -> Result<(), RecorderError>;
    /// [`Out::event`] for text already validated as UTF-8 (the segmenter's).
    fn text(&mut self, at: f64, kind: EventKind, text: &str) -> Result<(), RecorderError>;
    /// The bastion's own note: sizes, checksums, requests. Always written.
    fn marker(&mut self, at: f64, text: &str) -> Result<(), RecorderError>;
}

/// One channel's recording.
pub(crate) struct Rec {
    pub(crate) name: String,
    /// `None` until the session request created the files.
    writer: Option<RecordingWriter>,
    content: bool,
    /// Events written since the last checkpoint.
    dirty: bool,
}

impl Rec {
    pub fn new(name: String) -> Self {
        Rec {
            name,
            writer: None,
            content: true,
            dirty: false,
        }
    }

    pub fn is_open(&self) -> bool {
        self.writer.is_some()
    }

    pub fn opened(&mut self, writer: RecordingWriter, content: bool) {
        self.writer = Some(writer);
        self.content = content;
    }

    pub fn take(&mut self) -> Option<RecordingWriter> {
        self.writer.take()
    }

    pub fn resize(&mut self, at: f64, cols: u32, rows: u32) -> Result<(), RecorderError> {
        self.write(|w| w.resize(at, cols, rows))
    }

    /// Before the files exist, nothing is written: the session request
    /// creates them and holds back the data that came earlier.
    fn write(
        &mut self,
        f: impl FnOnce(&mut RecordingWriter) -> Result<(), RecordingError>,
    ) -> Result<(), RecorderError> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        self.dirty = true;
        f(w).map_err(|source| RecorderError::Write {
            name: self.name.clone(),
            source,
        })
    }

    /// Written events reach the file (not durably) for live viewers.
    pub fn flush(&mut self) -> Result<(), RecorderError> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        w.flush().map_err(|source| RecorderError::Write {
            name: self.name.clone(),
            source,
        })
    }

    /// Makes the events so far durable (file and database). Idle
    /// recordings are not checkpointed again.
    pub async fn checkpoint(&mut self, store: &crate::store::Store) -> Result<(), RecorderError> {
        if !self.dirty {
            return Ok(());
        }
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        self.dirty = false;
        let cp = tokio::task::block_in_place(|| w.checkpoint(now_ms())).map_err(|source| {
            RecorderError::Checkpoint {
                name: self.name.clone(),
                source,
            }
        })?;
        store
            .recording_checkpoint(
                &self.name,
                cp.events as i64,
                cp.cast_bytes as i64,
                &cp.sha256,
                now_ms(),
                "open",
            )
            .await
            .map_err(|source| RecorderError::Store {
                what: "recording checkpoint",
                source,
            })
    }
}

impl Out for Rec {
    fn contents(&self) -> bool {
        self.content
    }

    fn event(&mut self, at: f64, kind: EventKind, data: &[u8]) -> Result<(), RecorderError> {
        if !self.content {
            return Ok(());
        }
        self.write(|w| w.event(at, kind, data))
    }

    fn text(&mut self, at: f64, kind: EventKind, text: &str) -> Result<(), RecorderError> {
        if !self.content {
            return Ok(());
        }
        self.write(|w| w.text(at, kind, text))
    }

    fn marker(&mut self, at: f64, text: &str) -> Result<(), RecorderError> {
        self.write(|w| w.marker(at, text))
    }
}

/// An [`Out`] that keeps what it was given, for tests.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Kept {
    pub metadata_only: bool,
    pub events: Vec<(EventKind, String)>,
}

#[cfg(test)]
impl Kept {
    /// Every event's text of `kind`, joined.
    pub fn joined(&self, kind: EventKind) -> String {
        self.events
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, t)| t.as_str())
            .collect()
    }

    pub fn markers(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|(k, _)| *k == EventKind::Marker)
            .map(|(_, t)| t.as_str())
            .collect()
    }
}

#[cfg(test)]
impl Out for Kept {
    fn contents(&self) -> bool {
        !self.metadata_only
    }

    fn event(&mut self, _at: f64, kind: EventKind, data: &[u8]) -> Result<(), RecorderError> {
        if self.metadata_only {
            return Ok(());
        }
        let text = String::from_utf8_lossy(data).into_owned();
        self.events.push((kind, text));
        Ok(())
    }

    fn text(&mut self, at: f64, kind: EventKind, text: &str) -> Result<(), RecorderError> {
        self.event(at, kind, text.as_bytes())
    }

    fn marker(&mut self, _at: f64, text: &str) -> Result<(), RecorderError> {
        self.events.push((EventKind::Marker, text.to_owned()));
        Ok(())
    }
}
