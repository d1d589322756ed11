//! The writer's bulk paths (issue 20): output chunks joined into one
//! event line, and page-aligned writes. Neither may change what a
//! recording says or what verifies.

use super::*;
use crate::castfile::writer::MERGE_WINDOW;

fn events(cast: &Path) -> Vec<Event> {
    CastReader::open(cast)
        .expect("open")
        .map(|e| e.expect("event"))
        .collect()
}

#[test]
fn chunks_of_one_stream_share_a_line_and_nothing_else_does() {
    let w = MERGE_WINDOW;
    let rec = unfinished(0, |mut wr| {
        for (i, text) in ["a", "b", "c"].iter().enumerate() {
            // Within the window of the line's first chunk: one line.
            let at = 1.0 + i as f64 * w / 3.0;
            wr.event(at, EventKind::Output, text.as_bytes())
                .expect("out");
        }
        // Past the window of that line's first chunk: a new line.
        wr.event(1.0 + w * 1.5, EventKind::Output, b"d")
            .expect("out");
        // Another stream between two chunks keeps them apart; keystrokes
        // are never joined.
        wr.event(1.0 + w * 1.6, EventKind::Input, b"k").expect("in");
        wr.event(1.0 + w * 1.6, EventKind::Input, b"l").expect("in");
        wr.event(1.0 + w * 1.7, EventKind::Output, b"e")
            .expect("out");
        wr.marker(1.0 + w * 1.8, "m").expect("marker");
        wr.event(1.0 + w * 1.9, EventKind::Output, b"f")
            .expect("out");
        // A flush (the live view's) ends the line too.
        wr.flush().expect("flush");
        wr.event(1.0 + w * 1.95, EventKind::Output, b"g")
            .expect("out");
        wr.finish(&info("eof")).expect("finish");
    });
    let report = check(&rec);
    assert!(report.ok, "{report:?}");
    let got: Vec<(EventKind, String)> = events(&rec.cast)
        .into_iter()
        .map(|e| (e.kind, e.data))
        .collect();
    let want = [
        (EventKind::Output, "abc"),
        (EventKind::Output, "d"),
        (EventKind::Input, "k"),
        (EventKind::Input, "l"),
        (EventKind::Output, "e"),
        (EventKind::Marker, "m"),
        (EventKind::Output, "f"),
        (EventKind::Output, "g"),
    ]
    .map(|(k, s)| (k, s.to_owned()));
    assert_eq!(got, want);
    assert_eq!(report.events, 8);
    // A joined line carries its first chunk's time.
    assert!((events(&rec.cast)[0].time - 1.0).abs() < 1e-9);
}

#[test]
fn a_bulk_stream_is_joined_up_to_the_line_bound_and_kept_whole() {
    let chunk: String = "0123456789abcdef\r\n\"\\ é✓\u{1b}[0m".repeat(100);
    let mut sent = String::new();
    let rec = unfinished(0, |mut w| {
        for i in 0..400 {
            w.event(i as f64 * 1e-5, EventKind::Output, chunk.as_bytes())
                .expect("out");
            sent.push_str(&chunk);
        }
        w.finish(&info("eof")).expect("finish");
    });
    let report = check(&rec);
    assert!(report.ok, "{report:?}");
    let evs = events(&rec.cast);
    assert!(
        evs.iter()
            .all(|e| e.data.len() <= crate::castfile::cast::MAX_EVENT_TEXT)
    );
    // Joined: far fewer lines than chunks, and the text is all there.
    assert!(evs.len() < 60, "{} lines for 400 chunks", evs.len());
    assert_eq!(
        evs.iter().map(|e| e.data.as_str()).collect::<String>(),
        sent
    );
    // A changed byte inside a joined line is still caught, at its line.
    let mut l = lines(&rec.cast);
    l[3] = l[3].replacen("abc", "abd", 1);
    put_lines(&rec.cast, &l);
    let problem = problem(&rec);
    assert!(
        problem.starts_with("event line 3 (cast line 4) was modified"),
        "{problem}"
    );
}

#[test]
fn bulk_writes_end_on_page_boundaries_and_a_flush_writes_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = RecordingWriter::create(dir.path(), "s1", &header("s1"), &key(1)).expect("create");
    let cast = dir.path().join("s1.cast");
    let len = || std::fs::metadata(&cast).expect("meta").len();
    let header_len = len();
    let chunk = "x".repeat(3000) + "\n";
    for i in 0..400 {
        w.event(i as f64, EventKind::Output, chunk.as_bytes())
            .expect("out");
    }
    // Only whole pages went out so far; the rest waits in the buffer.
    assert!(len() > header_len + 512 * 1024, "{}", len());
    assert_eq!(len() % 4096, 0, "{}", len());
    w.flush().expect("flush");
    let all = len();
    assert!(all > header_len + 400 * 3000);
    // Every line is whole in the file after a flush.
    let text = std::fs::read_to_string(&cast).expect("read");
    assert!(text.ends_with("\"]\n"));
    assert_eq!(events(&cast).len(), 400);
    w.finish(&info("eof")).expect("finish");
    let report =
        verify(&cast, &dir.path().join("s1.chain"), &key(1).verifying_key()).expect("verify runs");
    assert!(report.ok, "{report:?}");
}

#[test]
fn a_writer_dropped_mid_burst_leaves_whole_lines_that_recovery_seals() {
    let rec = unfinished(0, |mut w| {
        let chunk = "y".repeat(4000);
        for i in 0..200 {
            w.event(i as f64 * 1e-4, EventKind::Output, chunk.as_bytes())
                .expect("out");
        }
        w.checkpoint(1_767_225_600_000).expect("checkpoint");
        for i in 0..100 {
            w.event(1.0 + i as f64 * 1e-4, EventKind::Output, chunk.as_bytes())
                .expect("out");
        }
        // Dropped without finish: a crash after the buffer reached the file.
        drop(w);
    });
    let text = std::fs::read_to_string(&rec.cast).expect("read");
    assert!(text.ends_with("\"]\n"), "the last line is whole");
    let sealed = seal_cut_short(&rec.dir, "s1", &key(1), &info("crash")).expect("seal");
    assert!(sealed.cut_short);
    assert!(check(&rec).ok);
    let data: usize = events(&rec.cast).iter().map(|e| e.data.len()).sum();
    assert_eq!(data, 300 * 4000);
}
