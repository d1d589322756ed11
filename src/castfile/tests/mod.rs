//! Writer → verifier round trips and every tampering the chain must catch.

mod golden;
mod recovery;
mod term;
mod writer;

use super::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(super) fn header(session: &str) -> Header {
    Header {
        width: 80,
        height: 24,
        timestamp: 1_767_225_600,
        env: BTreeMap::from([("TERM".to_owned(), "xterm-256color".to_owned())]),
        title: Some("alice as deploy on web01".to_owned()),
        portcullis: Some(SessionMeta {
            session: session.to_owned(),
            user: "alice".to_owned(),
            target: "web01".to_owned(),
            login: "deploy".to_owned(),
            channel: 0,
            kind: ChannelKind::Shell,
            command: None,
        }),
    }
}

pub(super) fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub(super) fn info(reason: &str) -> TrailerInfo {
    TrailerInfo {
        bytes_up: 123,
        bytes_down: 4567,
        end_reason: reason.to_owned(),
        ended_at_ms: 1_767_225_660_000,
    }
}

/// `count` events of every kind, a checkpoint after every fifth.
pub(super) fn write_events(w: &mut RecordingWriter, count: usize) -> Vec<Event> {
    let mut expected = Vec::new();
    for i in 0..count {
        let time = i as f64 * 0.25;
        let (kind, data) = match i % 4 {
            0 => (EventKind::Output, format!("line {i}\r\n")),
            1 => (EventKind::Input, format!("x{i}")),
            2 => (EventKind::Resize, format!("{}x24", 80 + i)),
            _ => (EventKind::Marker, format!("mark {i}")),
        };
        match kind {
            EventKind::Resize => w.resize(time, 80 + i as u32, 24),
            EventKind::Marker => w.marker(time, &data),
            _ => w.event(time, kind, data.as_bytes()),
        }
        .expect("event");
        expected.push(Event { time, kind, data });
        if (i + 1) % 5 == 0 {
            w.checkpoint(1_767_225_600_000 + i as i64)
                .expect("checkpoint");
        }
    }
    expected
}

pub(super) struct Rec {
    _dir: tempfile::TempDir,
    pub dir: PathBuf,
    pub cast: PathBuf,
    pub chain: PathBuf,
}

/// A finished recording of `count` events signed with `key(1)`.
pub(super) fn finished(count: usize) -> Rec {
    unfinished(count, |w| {
        w.finish(&info("client closed")).expect("finish");
    })
}

pub(super) fn unfinished(count: usize, end: impl FnOnce(RecordingWriter)) -> Rec {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = RecordingWriter::create(dir.path(), "s1", &header("s1"), &key(1)).expect("create");
    write_events(&mut w, count);
    end(w);
    Rec {
        dir: dir.path().to_owned(),
        cast: dir.path().join("s1.cast"),
        chain: dir.path().join("s1.chain"),
        _dir: dir,
    }
}

pub(super) fn check(rec: &Rec) -> VerifyReport {
    verify(&rec.cast, &rec.chain, &key(1).verifying_key()).expect("verify runs")
}

pub(super) fn problem(rec: &Rec) -> String {
    let report = check(rec);
    assert!(!report.ok, "tampering went unnoticed");
    report.problem.unwrap_or_default()
}

pub(super) fn lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read");
    text.split_inclusive('\n').map(str::to_owned).collect()
}

pub(super) fn put_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.concat()).expect("write");
}

#[test]
fn round_trip_verifies_and_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = RecordingWriter::create(dir.path(), "s1", &header("s1"), &key(1)).expect("create");
    let expected = write_events(&mut w, 20);
    let trailer = w.finish(&info("client closed")).expect("finish");
    assert_eq!((trailer.events, trailer.cut_short), (20, false));

    let cast = dir.path().join("s1.cast");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&cast).expect("meta").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let report =
        verify(&cast, &dir.path().join("s1.chain"), &key(1).verifying_key()).expect("verify");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events, 20);
    assert_eq!(report.checkpoints, 4);
    assert_eq!(report.session.as_deref(), Some("s1"));
    assert_eq!(report.end_reason.as_deref(), Some("client closed"));
    assert!(!report.cut_short);

    let reader = CastReader::open(&cast).expect("open");
    assert_eq!(reader.header(), &header("s1"));
    let events: Vec<Event> = reader.collect::<Result<_>>().expect("events");
    assert_eq!(events, expected);
    assert!(RecordingWriter::create(dir.path(), "s1", &header("s1"), &key(1)).is_err());
}

#[test]
fn utf8_split_across_output_chunks_is_reassembled_in_the_file() {
    let rec = unfinished(0, |mut w| {
        let bytes = "ok ✓ done".as_bytes();
        w.event(0.1, EventKind::Output, &bytes[..4])
            .expect("first half");
        w.event(0.2, EventKind::Output, &bytes[4..])
            .expect("second half");
        w.event(0.3, EventKind::Output, b"\xe2\x9c")
            .expect("dangling");
        w.finish(&info("eof")).expect("finish");
    });
    assert!(check(&rec).ok);
    let data: Vec<String> = CastReader::open(&rec.cast)
        .expect("open")
        .map(|e| e.expect("event").data)
        .collect();
    assert_eq!(data, ["ok ", "✓ done", "\u{fffd}"]);
}

#[test]
fn large_chunks_become_bounded_lines() {
    let big = "\u{1}".repeat(300 * 1024);
    let rec = unfinished(0, |mut w| {
        w.event(0.0, EventKind::Output, big.as_bytes())
            .expect("big");
        w.finish(&info("eof")).expect("finish");
    });
    assert!(check(&rec).ok);
    assert!(lines(&rec.cast).iter().all(|l| l.len() < MAX_LINE));
    let data: String = CastReader::open(&rec.cast)
        .expect("open")
        .map(|e| e.expect("event").data)
        .collect();
    assert_eq!(data, big);
}

#[test]
fn every_single_byte_change_fails() {
    let rec = finished(12);
    for path in [&rec.cast, &rec.chain] {
        let original = std::fs::read(path).expect("read");
        for i in 0..original.len() {
            let mut copy = original.clone();
            copy[i] ^= 0x01;
            std::fs::write(path, &copy).expect("write");
            let report = check(&rec);
            assert!(!report.ok, "{} byte {i} changed unnoticed", path.display());
        }
        std::fs::write(path, &original).expect("restore");
    }
    assert!(check(&rec).ok);
}

#[test]
fn a_modified_line_is_named() {
    let rec = finished(20);
    let mut l = lines(&rec.cast);
    l[10] = l[10].replace("x9", "x8");
    put_lines(&rec.cast, &l);
    let p = problem(&rec);
    assert!(
        p.starts_with("event line 10 (cast line 11) was modified"),
        "{p}"
    );
    assert!(p.contains("(checkpoint 2 mismatch)"), "{p}");
}

#[test]
fn reordered_lines_fail() {
    let rec = finished(20);
    let mut l = lines(&rec.cast);
    l.swap(7, 8);
    put_lines(&rec.cast, &l);
    assert!(problem(&rec).starts_with("event line 7 (cast line 8)"));
}

#[test]
fn a_deleted_line_fails() {
    let rec = finished(20);
    let mut l = lines(&rec.cast);
    l.remove(13);
    put_lines(&rec.cast, &l);
    assert!(problem(&rec).starts_with("event line 13 (cast line 14)"));
}

#[test]
fn an_appended_line_fails() {
    let rec = finished(20);
    let mut l = lines(&rec.cast);
    l.push("[9.0, \"o\", \"rm -rf /\"]\n".to_owned());
    put_lines(&rec.cast, &l);
    assert_eq!(
        problem(&rec),
        "extra data after the signed end: cast line 22"
    );
}

#[test]
fn truncation_fails() {
    let rec = finished(20);
    let l = lines(&rec.cast);
    put_lines(&rec.cast, &l[..19]);
    assert_eq!(
        problem(&rec),
        "recording truncated: 18 events present, trailer says 20"
    );
}

#[test]
fn header_change_fails() {
    let rec = finished(5);
    let mut l = lines(&rec.cast);
    l[0] = l[0].replace("alice", "bob");
    put_lines(&rec.cast, &l);
    assert_eq!(
        problem(&rec),
        "header line was modified (chain start mismatch)"
    );
}

#[test]
fn a_changed_trailer_fails() {
    let rec = finished(5);
    let mut l = lines(&rec.chain);
    let last = l.len() - 1;
    l[last] = l[last].replace("client closed", "policy kill");
    put_lines(&rec.chain, &l);
    assert_eq!(
        problem(&rec),
        "trailer signature does not verify (forged or wrong key)"
    );
}

#[test]
fn forged_signatures_fail() {
    // Signed by another key altogether.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = RecordingWriter::create(dir.path(), "s1", &header("s1"), &key(2)).expect("create");
    write_events(&mut w, 5);
    w.finish(&info("eof")).expect("finish");
    let report = verify(
        &dir.path().join("s1.cast"),
        &dir.path().join("s1.chain"),
        &key(1).verifying_key(),
    );
    let report = report.expect("verify runs");
    // The first checkpoint already names it, before the trailer is reached.
    assert_eq!(
        report.problem.as_deref(),
        Some("chain line 2: checkpoint 1 is not signed by this key (edited, or another bastion's)")
    );

    // A genuine recording whose trailer an attacker re-signed.
    let rec = finished(5);
    let mut l = lines(&rec.chain);
    let last = l.len() - 1;
    let raw = l[last]
        .strip_prefix(chain::TRAILER_PREFIX)
        .and_then(|r| r.rsplit_once(chain::SIGNATURE_MARK))
        .map(|(raw, _)| raw.replace("client closed", "normal"))
        .expect("trailer layout");
    let trailer: Trailer = serde_json::from_str(&raw).expect("trailer");
    l[last] = chain::trailer_line(&trailer, &key(2)).expect("line");
    put_lines(&rec.chain, &l);
    assert_eq!(
        problem(&rec),
        "trailer signature does not verify (forged or wrong key)"
    );
}

#[test]
fn an_unclosed_recording_fails() {
    let rec = unfinished(7, drop);
    assert_eq!(
        problem(&rec),
        "no trailer: recording was not closed (run recovery)"
    );
}

#[test]
fn a_missing_checkpoint_is_noticed() {
    let rec = finished(20);
    let mut l = lines(&rec.chain);
    l.remove(2);
    put_lines(&rec.chain, &l);
    let p = problem(&rec);
    assert!(
        p.starts_with("chain file missing checkpoint before chain line 3"),
        "{p}"
    );
}

#[test]
fn without_line_tags_the_range_is_named() {
    let rec = finished(20);
    let untagged: Vec<String> = lines(&rec.chain)
        .into_iter()
        .map(|line| match line.find(",\"lines\":\"") {
            Some(at) => format!("{}}}\n", &line[..at]),
            None => line,
        })
        .collect();
    put_lines(&rec.chain, &untagged);
    let mut l = lines(&rec.cast);
    l[8] = l[8].replace("mark 7", "mark 6");
    put_lines(&rec.cast, &l);
    assert_eq!(
        problem(&rec),
        "event lines 6 to 10 (cast lines 7 to 11) were modified, reordered, inserted or removed \
         (checkpoint 2 mismatch: sha256 differs)"
    );
}

#[test]
fn idle_checkpoints_are_not_rewritten() {
    let rec = unfinished(5, |mut w| {
        let a = w.checkpoint(1).expect("cp");
        let b = w.checkpoint(2).expect("cp");
        assert_eq!((a.events, b.events, b.at_ms), (5, 5, 2));
        w.finish(&info("eof")).expect("finish");
    });
    assert_eq!(lines(&rec.chain).len(), 3);
    assert!(check(&rec).ok);
}
