//! Following a recording while it is written: the part shared by
//! `portcullis recording watch` and the console's live view. Pure `std::io`:
//! the caller decides how long to wait between polls (a thread sleeps, the
//! admin API's stream waits on its own timer).
//!
//! A recording is finished when its `.chain` holds the trailer. The writer
//! flushes the cast before it seals the chain, so once the trailer is seen
//! one more read of the cast returns everything.

use super::{Event, Header, MAX_LINE, Result, format_err, io_err, parse_header, parse_line};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// What one poll found.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Status {
    /// The limit of events was reached: poll again at once.
    More,
    /// Nothing more for now: wait, then poll again.
    Idle,
    /// The trailer is written and every event read: the recording is over.
    Sealed,
}

pub struct Follower {
    cast: BufReader<File>,
    cast_path: PathBuf,
    chain_path: PathBuf,
    /// How far the chain has been looked at for the trailer.
    chain_pos: u64,
    chain_tail: Vec<u8>,
    header: Option<Header>,
    line: String,
    sealed: bool,
}

const TRAILER: &[u8] = b"\"type\":\"trailer\"";

impl Follower {
    pub fn open(cast: &Path) -> Result<Follower> {
        let file = File::open(cast).map_err(io_err(cast))?;
        Ok(Follower {
            cast: BufReader::with_capacity(64 * 1024, file),
            cast_path: cast.to_path_buf(),
            chain_path: cast.with_extension("chain"),
            chain_pos: 0,
            chain_tail: Vec::new(),
            header: None,
            line: String::new(),
            sealed: false,
        })
    }

    /// The recording's header, read on the first poll that found it whole.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Skips to the first whole line at most `back` bytes before the
    /// current end (after the header): a live view of a long session starts
    /// near now. Reads the header first if it is there.
    pub fn skip_to_near_end(&mut self, back: u64) -> Result<()> {
        if self.header.is_none() {
            let Some(line) = self.next_line()? else {
                return Ok(());
            };
            self.header = Some(parse_header(line.trim_end())?);
        }
        let here = self
            .cast
            .stream_position()
            .map_err(io_err(&self.cast_path))?;
        let end = self
            .cast
            .get_ref()
            .metadata()
            .map_err(io_err(&self.cast_path))?
            .len();
        if end.saturating_sub(here) <= back {
            return Ok(());
        }
        self.cast
            .seek(SeekFrom::Start(end - back))
            .map_err(io_err(&self.cast_path))?;
        // Drop the partial line the seek landed in.
        let mut skip = Vec::new();
        self.cast
            .read_until(b'\n', &mut skip)
            .map_err(io_err(&self.cast_path))?;
        if !skip.ends_with(b"\n") {
            self.cast
                .seek_relative(-(skip.len() as i64))
                .map_err(io_err(&self.cast_path))?;
        }
        Ok(())
    }

    /// Appends up to `max` new events to `out`. Lines that are not events
    /// (a foreign or damaged file) are skipped: this is a view, `verify`
    /// is the check.
    pub fn poll(&mut self, out: &mut Vec<Event>, max: usize) -> Result<Status> {
        let mut read = 0;
        loop {
            if read >= max {
                return Ok(Status::More);
            }
            let Some(line) = self.next_line()? else {
                if self.sealed {
                    return Ok(Status::Sealed);
                }
                if self.trailer_written()? {
                    // The cast was flushed before the trailer: read it out.
                    self.sealed = true;
                    continue;
                }
                return Ok(Status::Idle);
            };
            if self.header.is_none() {
                self.header = Some(parse_header(line.trim_end())?);
                continue;
            }
            if let Ok(ev) = parse_line(line.trim_end()) {
                out.push(ev);
                read += 1;
            }
        }
    }

    /// One whole line, or `None` (a torn last line is left for next time).
    fn next_line(&mut self) -> Result<Option<String>> {
        self.line.clear();
        let n = (&mut self.cast)
            .take(MAX_LINE as u64 + 2)
            .read_line(&mut self.line)
            .map_err(io_err(&self.cast_path))?;
        if n == 0 {
            return Ok(None);
        }
        if !self.line.ends_with('\n') {
            if n > MAX_LINE {
                return Err(format_err(0, "line longer than 1 MiB"));
            }
            self.cast
                .seek_relative(-(n as i64))
                .map_err(io_err(&self.cast_path))?;
            return Ok(None);
        }
        Ok(Some(std::mem::take(&mut self.line)))
    }

    /// Whether the chain ends in a trailer; reads only what was added to
    /// the chain since the last look.
    fn trailer_written(&mut self) -> Result<bool> {
        let mut f = match File::open(&self.chain_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(&self.chain_path)(e)),
        };
        f.seek(SeekFrom::Start(self.chain_pos))
            .map_err(io_err(&self.chain_path))?;
        let mut new = Vec::new();
        let n = f.read_to_end(&mut new).map_err(io_err(&self.chain_path))?;
        self.chain_pos += n as u64;
        self.chain_tail.extend_from_slice(&new);
        let found = self.chain_tail.windows(TRAILER.len()).any(|w| w == TRAILER);
        // Keep only what could be the start of the marker next time.
        let keep = self.chain_tail.len().saturating_sub(TRAILER.len());
        self.chain_tail.drain(..keep);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn follows_torn_lines_and_ends_at_the_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let cast = dir.path().join("r.cast");
        let chain = dir.path().join("r.chain");
        let mut w = File::create(&cast).unwrap();
        std::fs::write(&chain, "{\"type\":\"start\"}\n").unwrap();
        let mut f = Follower::open(&cast).unwrap();
        let mut out = Vec::new();
        assert_eq!(f.poll(&mut out, 10).unwrap(), Status::Idle);
        w.write_all(b"{\"version\":2,\"width\":90,\"height\":30}\n[0.5,\"o\",\"he")
            .unwrap();
        assert_eq!(f.poll(&mut out, 10).unwrap(), Status::Idle);
        assert_eq!(f.header().unwrap().width, 90);
        assert!(out.is_empty(), "a torn line is not an event");
        w.write_all(b"llo\"]\n[0.6,\"m\",\"mark\"]\n[0.7,\"o\",\"x\"]\n")
            .unwrap();
        assert_eq!(f.poll(&mut out, 2).unwrap(), Status::More);
        assert_eq!(out[0].data, "hello");
        assert_eq!(f.poll(&mut out, 10).unwrap(), Status::Idle);
        assert_eq!(out.len(), 3);
        // Flushed before the trailer, as the writer does.
        w.write_all(b"[0.8,\"o\",\"last\"]\n").unwrap();
        let mut c = std::fs::OpenOptions::new()
            .append(true)
            .open(&chain)
            .unwrap();
        c.write_all(b"{\"type\":\"trail").unwrap();
        assert_eq!(f.poll(&mut out, 10).unwrap(), Status::Idle);
        assert_eq!(out.len(), 4);
        c.write_all(b"er\",\"sig\":\"..\"}\n").unwrap();
        assert_eq!(f.poll(&mut out, 10).unwrap(), Status::Sealed);
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn starts_near_the_end_on_a_whole_line() {
        let dir = tempfile::tempdir().unwrap();
        let cast = dir.path().join("r.cast");
        let mut body = String::from("{\"version\":2,\"width\":80,\"height\":24}\n");
        for i in 0..1000 {
            body.push_str(&format!("[{i}.0,\"o\",\"line {i}\\r\\n\"]\n"));
        }
        std::fs::write(&cast, &body).unwrap();
        let mut f = Follower::open(&cast).unwrap();
        f.skip_to_near_end(100).unwrap();
        let mut out = Vec::new();
        f.poll(&mut out, 100).unwrap();
        assert!(!out.is_empty() && out.len() < 10, "{}", out.len());
        assert_eq!(out.last().unwrap().data, "line 999\r\n");
        assert_eq!(f.header().unwrap().height, 24);
    }
}
