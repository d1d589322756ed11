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

/// What an editor without the audit key can do while the bastion is down:
/// change an event, then recompute the whole chain, every checkpoint's hash,
/// byte count and line tags. `strip` also drops the checkpoint signatures.
fn edit_and_rechain(rec: &Rec, strip: bool) {
    use crate::recording::chain::ChainState;
    use base64::Engine as _;
    let mut cast = lines(&rec.cast);
    assert!(cast[1].contains("line 0"), "{}", cast[1]);
    cast[1] = cast[1].replace("line 0", "LINE 0");
    put_lines(&rec.cast, &cast);
    let mut state = ChainState::start(cast[0].as_bytes());
    let mut after = Vec::new();
    for l in &cast[1..] {
        let tag = state.push(l.as_bytes());
        after.push((state.hex(), state.bytes, tag));
    }
    let mut chain = lines(&rec.chain);
    let mut prev = 0;
    for line in chain.iter_mut() {
        let mut v: serde_json::Value = serde_json::from_str(line).expect("json");
        if v["type"] != "checkpoint" {
            continue;
        }
        let n = v["events"].as_u64().expect("events") as usize;
        let (hex, bytes, _) = &after[n - 1];
        v["sha256"] = hex.clone().into();
        v["cast_bytes"] = (*bytes).into();
        let tags: Vec<u8> = after[prev..n].iter().flat_map(|a| a.2).collect();
        v["lines"] = base64::engine::general_purpose::STANDARD
            .encode(tags)
            .into();
        if strip {
            v.as_object_mut().expect("object").remove("sig");
        }
        *line = format!("{}\n", serde_json::to_string(&v).expect("json"));
        prev = n;
    }
    put_lines(&rec.chain, &chain);
}

#[test]
fn checkpoints_are_signed_and_verify_counts_them() {
    let rec = finished(12);
    let report = check(&rec);
    assert!(report.ok, "{report:?}");
    assert!(report.checkpoints >= 3, "{report:?}");
    assert_eq!(report.signed_checkpoints, report.checkpoints);
    // Another bastion's key: the checkpoints are named before the trailer.
    let other = verify(&rec.cast, &rec.chain, &key(2).verifying_key()).expect("verify");
    let p = other.problem.unwrap_or_default();
    assert!(p.contains("checkpoint 1 is not signed by this key"), "{p}");
}

#[test]
fn an_edit_made_while_the_bastion_was_down_is_not_sealed_over() {
    let rec = unfinished(12, drop);
    edit_and_rechain(&rec, false);
    let err = seal(&rec).expect_err("recovery signed over an edited recording");
    assert!(
        err.to_string().contains("is not signed by this key"),
        "{err}"
    );
    // Stripping the signatures instead: the chain is consistent again
    // (verify only misses the trailer), and recovery still refuses.
    let rec = unfinished(12, drop);
    edit_and_rechain(&rec, true);
    assert_eq!(
        problem(&rec),
        "no trailer: recording was not closed (run recovery)"
    );
    let err = seal(&rec).expect_err("recovery signed over stripped checkpoints");
    assert!(err.to_string().contains("is unsigned"), "{err}");
}
