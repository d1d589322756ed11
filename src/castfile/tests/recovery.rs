//! Crash recovery: `seal_cut_short` on what a killed recorder leaves behind.

use super::*;
use crate::castfile::chain::Format;
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
    let reason = report.end_reason.unwrap_or_default();
    assert!(reason.starts_with("recorder crashed"), "{reason}");
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
    edit_and_rechain_as(rec, strip, Format::CURRENT);
}

/// [`edit_and_rechain`], the chain recomputed in `format` (and the start
/// record saying so): a downgrade to an older chain must not help.
fn edit_and_rechain_as(rec: &Rec, strip: bool, format: Format) {
    use crate::castfile::chain::ChainState;
    use base64::Engine as _;
    let mut cast = lines(&rec.cast);
    assert!(cast[1].contains("line 0"), "{}", cast[1]);
    cast[1] = cast[1].replace("line 0", "LINE 0");
    put_lines(&rec.cast, &cast);
    let mut state = ChainState::start(format, cast[0].as_bytes());
    let mut after = Vec::new();
    for l in &cast[1..] {
        let tag = state.push(l.as_bytes());
        after.push((state.hex(), state.bytes, tag));
    }
    let mut chain = lines(&rec.chain);
    let mut prev = 0;
    for line in chain.iter_mut() {
        let mut v: serde_json::Value = serde_json::from_str(line).expect("json");
        if v["type"] == "start" {
            v["format"] = format.name().into();
            v["sha256"] = ChainState::start(format, cast[0].as_bytes()).hex().into();
            *line = format!("{}\n", serde_json::to_string(&v).expect("json"));
            continue;
        }
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
fn a_chain_rewritten_in_the_old_format_is_not_sealed_over() {
    // A downgrade: the edited recording re-chained as portcullis-cast-v1
    // (SHA-256), start record included. The signatures name the format.
    let rec = unfinished(12, drop);
    edit_and_rechain_as(&rec, false, Format::V1);
    let err = seal(&rec).expect_err("recovery signed over a downgraded chain");
    assert!(
        err.to_string().contains("is not signed by this key"),
        "{err}"
    );
}

#[test]
fn an_unknown_chain_format_is_refused() {
    let rec = finished(3);
    let mut chain = lines(&rec.chain);
    assert!(chain[0].contains(Format::CURRENT.name()), "{}", chain[0]);
    chain[0] = chain[0].replace(Format::CURRENT.name(), "portcullis-cast-v9");
    put_lines(&rec.chain, &chain);
    let p = problem(&rec);
    assert!(p.contains("is not one this bastion knows"), "{p}");
    assert!(seal(&rec).is_err());
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

fn witness_of(rec: &Rec, session: &str, sealed: bool) -> Witness {
    let t = std::fs::read_to_string(&rec.chain).expect("chain");
    let cp = t
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|v| v["type"] == "checkpoint")
        .expect("a checkpoint");
    Witness {
        session: session.to_owned(),
        events: cp["events"].as_u64().expect("events"),
        cast_bytes: cp["cast_bytes"].as_u64().expect("bytes"),
        sha256: cp["sha256"].as_str().expect("sha").to_owned(),
        sealed,
    }
}

fn seal_witnessed(rec: &Rec, w: &Witness) -> Result<Trailer> {
    seal_cut_short_witnessed(&rec.dir, "s1", &key(1), &info("recorder crashed"), Some(w))
}

#[test]
fn recovery_says_how_many_events_no_signature_covers() {
    // 12 events, signed checkpoints at 5 and 10: two are past the last one.
    let rec = unfinished(12, drop);
    let w = witness_of(&rec, "s1", false);
    let t = seal_witnessed(&rec, &w).expect("seal");
    assert_eq!((t.unsigned_events, t.chain_rebuilt), (2, false));
    let r = check(&rec);
    assert!(r.ok && r.unsigned_events == 2, "{r:?}");
    assert!(
        r.end_reason
            .unwrap_or_default()
            .contains("2 events after the last signed checkpoint")
    );
}

#[test]
fn recovery_of_a_deleted_chain_says_so_and_honours_the_database() {
    let rec = unfinished(12, drop);
    let w = witness_of(&rec, "s1", false);
    std::fs::remove_file(&rec.chain).expect("rm chain");
    let t = seal_witnessed(&rec, &w).expect("seal");
    assert_eq!((t.unsigned_events, t.chain_rebuilt), (12, true));
    let reason = check(&rec).end_reason.unwrap_or_default();
    assert!(
        reason.contains("12 events") && reason.contains(".chain file was missing"),
        "{reason}"
    );
}

#[test]
fn recovery_refuses_files_rolled_back_behind_the_database() {
    // Chain deleted and the cast cut to 3 events: alone it looks like a short
    // session; the database saw 10.
    let rec = unfinished(12, drop);
    let w = witness_of(&rec, "s1", false);
    std::fs::remove_file(&rec.chain).expect("rm chain");
    put_lines(&rec.cast, &lines(&rec.cast)[..4]);
    let err = seal_witnessed(&rec, &w).expect_err("sealed a rolled-back recording");
    assert!(err.to_string().contains("database"), "{err}");
    // An edit of an event the database's checkpoint covers, chain deleted.
    let rec = unfinished(12, drop);
    let w = witness_of(&rec, "s1", false);
    std::fs::remove_file(&rec.chain).expect("rm chain");
    let mut l = lines(&rec.cast);
    l[1] = l[1].replace("line 0", "LINE 0");
    put_lines(&rec.cast, &l);
    let err = seal_witnessed(&rec, &w).expect_err("sealed an edited recording");
    assert!(err.to_string().contains("database"), "{err}");
}

#[test]
fn verify_checks_the_database_digest_and_session() {
    let a = finished(12);
    let final_cp = witness_of(&a, "s1", true);
    let ok = verify_witnessed(&a.cast, &a.chain, &key(1).verifying_key(), Some(&final_cp))
        .expect("verify");
    assert!(ok.ok, "{ok:?}");
    // Asked for another session: these files are s1's.
    let other = Witness {
        session: "s2".into(),
        ..final_cp.clone()
    };
    let r =
        verify_witnessed(&a.cast, &a.chain, &key(1).verifying_key(), Some(&other)).expect("verify");
    assert!(!r.ok && r.problem.unwrap_or_default().contains("session"));
    // A signed recording of the same session but not the one the database sealed.
    let b = finished(7);
    let r = verify_witnessed(&b.cast, &b.chain, &key(1).verifying_key(), Some(&final_cp))
        .expect("verify");
    assert!(!r.ok, "{r:?}");
    let stored = Witness {
        sha256: "00".repeat(32),
        ..final_cp
    };
    let r = verify_witnessed(&a.cast, &a.chain, &key(1).verifying_key(), Some(&stored))
        .expect("verify");
    assert!(!r.ok, "{r:?}");
}
