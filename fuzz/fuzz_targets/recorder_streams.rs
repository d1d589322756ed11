//! What a recorder reads from a session is chosen by the user and the
//! target: the SFTP stream both ways, and stdout/stderr/stdin of any exec.
//! Fed in client-chosen chunks, neither parser may panic; an SFTP marker
//! holds no control character (paths are quoted and escaped, so a name
//! cannot move the cursor of whoever replays it); the binary segmenter
//! only ever records whole UTF-8 text, and every byte is either recorded
//! as text or counted in a run's summary.
//! Input: a sequence of chunks, each a header byte (bit 7: direction, low
//! 7 bits: length) and that many bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::castfile::binary::{Piece, Segmenter};
use portcullis::castfile::sftp::SftpLog;

fuzz_target!(|data: &[u8]| {
    let mut sftp = SftpLog::default();
    let mut seg = Segmenter::new("output");
    let mut text_bytes = 0usize;
    let mut fed = 0usize;
    let mut check = |p: Piece<'_>| -> Result<(), ()> {
        if let Piece::Text(t) = p {
            assert!(std::str::from_utf8(t).is_ok(), "segmenter let through {t:?}");
            text_bytes += t.len();
        }
        Ok(())
    };
    let mut rest = data;
    while let Some((&head, tail)) = rest.split_first() {
        let n = usize::from(head & 0x7f).min(tail.len());
        let (chunk, after) = tail.split_at(n);
        rest = after;
        let markers = if head & 0x80 == 0 { sftp.up(chunk) } else { sftp.down(chunk) };
        for m in markers {
            assert!(!m.chars().any(char::is_control), "control character in {m:?}");
        }
        fed += chunk.len();
        let _ = seg.push(chunk, &mut check);
    }
    let _ = seg.finish(&mut check);
    // Text is never invented: at most what was fed (a split character at the
    // very end is shown replaced, which can add at most 2 bytes).
    assert!(text_bytes <= fed + 2, "{text_bytes} text bytes from {fed}");
});
