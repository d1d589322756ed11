//! Crash recovery: `seal_cut_short` on what a killed recorder leaves behind.

use super::*;
use std::io::Write;

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(bytes).expect("append");
}

fn seal(rec: &Rec) -> Result<Trailer> {
    seal_cut_short(&rec.dir, "s1", &key(1), &info("recorder crashed"))
}

fn assert_sealed(rec: &Rec, events: u64) {
    let report = check(rec);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events, events);
    assert!(report.cut_short);
    assert_eq!(report.end_reason.as_deref(), Some("recorder crashed"));
}

#[test]
fn a_torn_line_is_dropped_and_the_rest_sealed() {
    // Dropping the writer flushes its buffer, as a process would have
    // written it out before being killed mid-line.
    let rec = unfinished(12, drop);
    append(&rec.cast, b"[3.000000, \"o\", \"hal");
    let trailer = seal(&rec).expect("seal");
    assert_eq!((trailer.events, trailer.cut_short), (12, true));
    assert_sealed(&rec, 12);
    let text = std::fs::read_to_string(&rec.cast).expect("read");
    assert!(text.ends_with("]\n") && !text.contains("hal"));
    assert_eq!(CastReader::open(&rec.cast).expect("open").count(), 12);
}

#[test]
fn events_never_flushed_are_lost_but_the_rest_seals() {
    // `forget` leaks the buffered tail like kill -9 does.
    let rec = unfinished(12, std::mem::forget);
    assert!(seal(&rec).is_ok());
    assert_sealed(&rec, 10);
}

#[test]
fn a_torn_chain_line_is_dropped() {
    let rec = unfinished(7, drop);
    append(&rec.chain, b"{\"type\":\"checkpoint\",\"ev");
    seal(&rec).expect("seal");
    assert_sealed(&rec, 7);
}

#[test]
fn a_crash_right_after_create_seals_an_empty_recording() {
    let rec = unfinished(0, std::mem::forget);
    std::fs::write(&rec.chain, b"{\"type\":\"st").expect("tear the start");
    seal(&rec).expect("seal");
    assert_sealed(&rec, 0);

    let rec = unfinished(0, std::mem::forget);
    std::fs::remove_file(&rec.chain).expect("remove chain");
    seal(&rec).expect("seal");
    assert_sealed(&rec, 0);
}

#[test]
fn recovery_refuses_an_edited_recording() {
    let rec = unfinished(12, drop);
    let mut l = lines(&rec.cast);
    l[3] = l[3].replace("82x24", "83x24");
    put_lines(&rec.cast, &l);
    match seal(&rec) {
        Err(RecordingError::Integrity { reason }) => {
            assert!(reason.starts_with("event line 3"), "{reason}")
        }
        other => panic!("sealed over an edit: {other:?}"),
    }
}

#[test]
fn recovery_refuses_a_cast_shorter_than_its_checkpoints() {
    let rec = unfinished(12, drop);
    let l = lines(&rec.cast);
    put_lines(&rec.cast, &l[..8]);
    assert!(matches!(seal(&rec), Err(RecordingError::Integrity { .. })));
}

#[test]
fn recovery_refuses_a_closed_recording() {
    let rec = finished(5);
    assert!(matches!(seal(&rec), Err(RecordingError::Integrity { .. })));
    assert!(check(&rec).ok);
}
