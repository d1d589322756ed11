//! The golden recordings in `proto-fixtures/recordings/`, one per chain
//! format (`golden` is portcullis-cast-v1, SHA-256, as every recording
//! before issue 20; `golden-v2` is BLAKE3): each verifies, our writer still
//! produces it byte for byte, and a tampered copy fails.
//! Regenerate (after a deliberate format change) with
//! `PORTCULLIS_WRITE_GOLDEN=1 cargo test --lib castfile::tests::golden::write_golden -- --ignored`.

use super::*;
use crate::castfile::chain::Format;

/// Each golden recording's name and chain format.
const GOLDEN: [(&str, Format); 2] = [("golden", Format::V1), ("golden-v2", Format::V2)];

/// The fixed test seed; never a real key.
const SEED: &[u8; 32] = b"portcullis-golden-test-seed-0001";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("proto-fixtures/recordings")
}

/// The recorder's two feeds: input through the masker, output to both.
struct Feed {
    w: RecordingWriter,
    m: InputMasker,
}

impl Feed {
    fn typed(&mut self, t: f64, bytes: &[u8]) {
        let released = self.m.input(t, bytes);
        self.inputs(released);
    }

    fn printed(&mut self, t: f64, bytes: &[u8]) {
        let released = self.m.output(bytes);
        self.inputs(released);
        self.w.event(t, EventKind::Output, bytes).expect("output");
    }

    fn inputs(&mut self, released: Vec<(f64, String)>) {
        for (t, text) in released {
            self.w
                .event(t, EventKind::Input, text.as_bytes())
                .expect("input");
        }
    }
}

/// A short shell session: an echoed command, a character split across two
/// packets, a resize, a sudo password (masked) and a marker.
fn make_golden(dir: &Path, name: &str, format: Format) -> Trailer {
    let key = SigningKey::from_bytes(SEED);
    let w = RecordingWriter::create_in(format, dir, name, &header("golden-0001"), &key)
        .expect("create");
    let mut f = Feed {
        w,
        m: InputMasker::new(),
    };
    f.printed(0.05, b"deploy@web01:~$ ");
    for (i, b) in b"ls".iter().enumerate() {
        f.typed(0.5 + i as f64 * 0.1, &[*b]);
        f.printed(0.52 + i as f64 * 0.1, &[*b]);
    }
    f.typed(0.8, b"\r");
    let listing = "\r\nnotes.txt  \u{2713} report.pdf\r\n".as_bytes();
    f.printed(0.82, &listing[..15]);
    f.printed(0.83, &listing[15..]);
    f.w.checkpoint(1_767_225_601_000).expect("checkpoint");
    f.w.resize(1.2, 100, 30).expect("resize");
    f.typed(2.0, b"sudo id\r");
    f.printed(2.05, b"sudo id\r\n[sudo] password for deploy: ");
    f.typed(3.5, b"hunter2\r");
    f.printed(3.6, b"\r\nuid=0(root) gid=0(root) groups=0(root)\r\n");
    f.w.marker(3.7, "sudo used").expect("marker");
    f.w.checkpoint(1_767_225_603_800).expect("checkpoint");
    f.typed(4.0, b"\x04");
    f.printed(4.1, b"logout\r\n");
    let rest = f.m.flush();
    f.inputs(rest);
    let info = TrailerInfo {
        bytes_up: 20,
        bytes_down: 180,
        end_reason: "client closed".to_owned(),
        ended_at_ms: 1_767_225_604_200,
    };
    f.w.finish(&info).expect("finish")
}

#[test]
fn golden_recording_verifies() {
    let dir = fixtures();
    let public = load_public(&dir.join("golden.pub").display().to_string()).expect("golden.pub");
    for (name, format) in GOLDEN {
        let (cast, chain) = (format!("{name}.cast"), format!("{name}.chain"));
        let report = verify(&dir.join(&cast), &dir.join(&chain), &public).expect("verify");
        assert!(report.ok, "{name}: {report:?}");
        assert_eq!(report.session.as_deref(), Some("golden-0001"));
        let text = std::fs::read_to_string(dir.join(&chain)).expect("read");
        assert!(text.contains(format.name()), "{name}: {text}");
        let cast = std::fs::read_to_string(dir.join(&cast)).expect("read");
        assert!(!cast.contains("hunter2"));
        assert!(cast.contains("[hidden input: 7 chars]\\r"));
        assert!(cast.contains("\u{2713} report.pdf"));
    }
    // The same events: only the chain differs between the formats.
    let v1 = std::fs::read(dir.join("golden.cast")).expect("v1");
    let v2 = std::fs::read(dir.join("golden-v2.cast")).expect("v2");
    assert_eq!(v1, v2);
}

#[test]
fn golden_recording_is_reproduced_byte_for_byte() {
    for (name, format) in GOLDEN {
        let tmp = tempfile::tempdir().expect("tempdir");
        make_golden(tmp.path(), name, format);
        for file in [format!("{name}.cast"), format!("{name}.chain")] {
            let made = std::fs::read(tmp.path().join(&file)).expect("made");
            let fixture = std::fs::read(fixtures().join(&file)).expect("fixture");
            assert!(
                made == fixture,
                "{file} differs from the fixture: the format changed"
            );
        }
    }
    let public = public_base64(&SigningKey::from_bytes(SEED).verifying_key());
    let fixture = std::fs::read_to_string(fixtures().join("golden.pub")).expect("pub");
    assert_eq!(fixture.trim(), public);
}

#[test]
fn a_tampered_golden_copy_fails() {
    for (name, _) in GOLDEN {
        let tmp = tempfile::tempdir().expect("tempdir");
        for file in [format!("{name}.cast"), format!("{name}.chain")] {
            std::fs::copy(fixtures().join(&file), tmp.path().join(&file)).expect("copy");
        }
        let cast = tmp.path().join(format!("{name}.cast"));
        let text = std::fs::read_to_string(&cast).expect("read");
        std::fs::write(&cast, text.replace("uid=0(root)", "uid=7(user)")).expect("write");
        let public =
            load_public(&fixtures().join("golden.pub").display().to_string()).expect("pub");
        let chain = tmp.path().join(format!("{name}.chain"));
        let report = verify(&cast, &chain, &public).expect("verify");
        let problem = report.problem.unwrap_or_default();
        assert!(
            !report.ok && problem.contains("was modified"),
            "{name}: {problem}"
        );
    }
}

#[test]
#[ignore = "writes proto-fixtures; run by hand after a deliberate format change"]
fn write_golden() {
    if std::env::var_os("PORTCULLIS_WRITE_GOLDEN").is_none() {
        return;
    }
    let dir = fixtures();
    for (name, format) in GOLDEN {
        for file in [format!("{name}.cast"), format!("{name}.chain")] {
            let _ = std::fs::remove_file(dir.join(file));
        }
        make_golden(&dir, name, format);
    }
    let public = public_base64(&SigningKey::from_bytes(SEED).verifying_key());
    std::fs::write(dir.join("golden.pub"), format!("{public}\n")).expect("pub");
}
