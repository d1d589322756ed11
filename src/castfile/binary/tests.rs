use super::*;

/// What a segmenter made of a stream, adjacent text joined.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Text(String),
    Started,
    Ended(RunSummary),
}

fn segment(chunks: &[&[u8]]) -> Vec<Seen> {
    let mut s = Segmenter::new("output");
    let mut seen = Vec::new();
    let mut out = |p: Piece<'_>| -> Result<(), ()> {
        match p {
            Piece::Text(t) => match seen.last_mut() {
                Some(Seen::Text(prev)) => prev.push_str(t),
                _ => seen.push(Seen::Text(t.to_owned())),
            },
            Piece::Started(m) => {
                assert!(m.starts_with("binary output from here on"), "{m}");
                seen.push(Seen::Started);
            }
            Piece::Ended(r) => seen.push(Seen::Ended(r)),
        }
        Ok(())
    };
    for c in chunks {
        s.push(c, &mut out).expect("no error");
    }
    s.finish(&mut out).expect("no error");
    seen
}

fn in_chunks(data: &[u8], n: usize) -> Vec<Seen> {
    segment(&data.chunks(n).collect::<Vec<_>>())
}

fn blake3_of(b: &[u8]) -> String {
    let mut c = Checksum::default();
    c.update(b);
    c.finish()
}

/// Deterministic bytes that look like compressed data.
fn noise(n: usize, mut x: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

fn text(s: &str) -> Seen {
    Seen::Text(s.to_owned())
}

fn ended(seen: &Seen) -> &RunSummary {
    match seen {
        Seen::Ended(r) => r,
        other => panic!("not a run end: {other:?}"),
    }
}

#[test]
fn text_with_a_split_character_is_not_binary() {
    let plain = "plain \x1b[1mtext\x1b[0m\r\n";
    assert_eq!(segment(&[plain.as_bytes()]), [text(plain)]);
    let s = "é✓🦀 text";
    for cut in 0..=s.len() {
        let (a, b) = s.as_bytes().split_at(cut);
        assert_eq!(segment(&[a, b]), [text(s)], "cut at {cut}");
    }
}

#[test]
fn text_after_a_nul_is_recorded_again() {
    // `printf '\0'; cat /etc/secret` hid the secret behind the NUL.
    let line = "root:x:0:0:root:/root:/bin/bash\n";
    let first = "first line, long enough to be text\n";
    let seen = segment(&[first.as_bytes(), format!("\0{line}").as_bytes()]);
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[0], text(first));
    assert_eq!(seen[1], Seen::Started);
    assert_eq!(ended(&seen[2]).bytes, 1);
    assert_eq!(ended(&seen[2]).checksum, blake3_of(b"\0"));
    assert_eq!(seen[3], text(line));
}

#[test]
fn text_is_never_held_back() {
    // Its time in the recording matters (replay): short text is shown
    // at once, even when binary follows in a later chunk.
    let mut s = Segmenter::new("output");
    let mut texts = 0;
    s.push(b"ok\n", &mut |p| -> Result<(), ()> {
        assert_eq!(p, Piece::Text("ok\n"));
        texts += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(texts, 1);
    let seen = segment(&[b"ok\n", b"\0"]);
    assert_eq!(seen[0], text("ok\n"));
    assert_eq!(ended(&seen[2]).bytes, 1);
}

#[test]
fn a_binary_stream_is_one_run_from_its_first_byte() {
    // Its first bytes are not a text fragment: text must prove itself
    // before binary as after it (the strings are still summarised).
    let seen = segment(&[b"\x0b\x02PK\x03\x04zip\0"]);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(ended(&seen[1]).bytes, 10);
    let line = "a whole line of text, then binary\n";
    let seen = segment(&[format!("{line}\0").as_bytes()]);
    assert_eq!(seen[0], text(line));
}

#[test]
fn invalid_utf8_and_a_character_cut_by_binary_are_binary() {
    let long = "x".repeat(TEXT_RUN);
    let data = [long.as_bytes(), b"a\xe2", b"\x00", long.as_bytes()].concat();
    let seen = in_chunks(&data, 2);
    assert_eq!(seen[0], text(&format!("{long}a")));
    assert_eq!(ended(&seen[2]).bytes, 2);
    assert_eq!(seen[3], text(&long));
    let seen = segment(&[long.as_bytes(), b"ab\xff", long.as_bytes()]);
    assert_eq!(seen[0], text(&format!("{long}ab")));
    assert_eq!(ended(&seen[2]).bytes, 1);
}

#[test]
fn short_text_stays_in_the_run_and_its_strings_are_kept() {
    // Hysteresis: short lines between binary bytes do not flip the mode.
    let data = b"\0SECRET\n\x01\x02hunter2\0ab\0";
    let seen = in_chunks(data, 3);
    assert_eq!(seen.len(), 2, "{seen:?}");
    let run = ended(&seen[1]);
    assert_eq!(run.bytes, data.len() as u64);
    assert_eq!(run.strings, "SECRET | hunter2");
    assert!(run.line(true).ends_with("; strings: SECRET | hunter2"));
    assert!(!run.line(false).contains("SECRET"));
}

#[test]
fn random_and_zero_data_stay_one_run() {
    for data in [noise(1 << 20, 0x9e37_79b9_7f4a_7c15), vec![0u8; 1 << 20]] {
        let seen = in_chunks(&data, 32 * 1024);
        assert_eq!(seen.len(), 2, "{:?}", &seen[..seen.len().min(4)]);
        assert_eq!(seen[0], Seen::Started);
        let run = ended(&seen[1]);
        assert_eq!(run.bytes, data.len() as u64);
        assert_eq!(run.checksum, blake3_of(&data));
        assert!(run.strings.len() <= PREVIEW_BYTES + 3);
    }
}

#[test]
fn a_tar_like_stream_alternates_runs_and_text() {
    let file = "line one of a text file in the archive\nand a second line\n";
    let data = [&[0u8; 512][..], file.as_bytes(), &[0u8; 100]].concat();
    let seen = in_chunks(&data, 7);
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(ended(&seen[1]).bytes, 512);
    assert_eq!(seen[2], text(file));
    assert_eq!(ended(&seen[4]).bytes, 100);
}

#[test]
fn any_chunking_decides_the_same() {
    let mut data = Vec::new();
    // (Only a stream's first chunk may decide otherwise: see `fresh`.)
    data.extend_from_slice("sortie ✓ normale, assez longue\n".as_bytes());
    data.extend_from_slice(&noise(3000, 7));
    data.extend_from_slice("a line of text after the noise, long enough\n".as_bytes());
    data.extend_from_slice(b"\0\0short\0");
    data.extend_from_slice("é".repeat(40).as_bytes());
    data.extend_from_slice(&[0xe2, 0x9c]);
    let whole = in_chunks(&data, data.len());
    for n in [1, 2, 3, 5, 24, 63, 64, 65, 1000] {
        assert_eq!(in_chunks(&data, n), whole, "chunks of {n}");
    }
    let counted: u64 = whole
        .iter()
        .map(|s| match s {
            Seen::Text(t) => t.len() as u64,
            Seen::Ended(r) => r.bytes,
            Seen::Started => 0,
        })
        .sum();
    // Every byte is either text or in a run (the final cut character
    // is shown replaced: 3 bytes of U+FFFD for its 2).
    assert_eq!(counted, data.len() as u64 + 1);
}

#[test]
fn strings_are_found_across_chunks_and_capped() {
    let seen = segment(&[b"\0ab", b"cd\0wx", b"yz", b"\0"]);
    assert_eq!(ended(&seen[1]).strings, "abcd | wxyz");
    let many: Vec<u8> = b"word\0".repeat(2000);
    let seen = segment(&[b"\0", &many]);
    let run = ended(&seen[1]);
    assert!(run.strings_cut);
    assert!(
        run.strings.len() <= PREVIEW_BYTES + 3,
        "{}",
        run.strings.len()
    );
    assert!(run.line(true).ends_with(" | …"));
}

/// The plain definition [`text_start`] must agree with: the exact
/// check at every byte.
fn text_start_by_bytes(d: &[u8]) -> Found {
    for p in 0..d.len() {
        match good_prefix(&d[p..]) {
            Good::Enough => return Found::At(p),
            Good::ToEnd => return Found::Tail(p),
            Good::Ends(_) => {}
        }
    }
    Found::Tail(d.len())
}

#[test]
fn block_masks_find_what_a_byte_loop_finds() {
    let mut x = 1u64;
    let words = ["é", "✓", "\n", "\r\n", " ", "🦀", "\x1b[0m"];
    for round in 0..3000 {
        // From all text to all binary, with a line length that varies.
        let density = round % 11;
        let mut d = Vec::new();
        while d.len() < 300 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let [a, b, c, ..] = x.to_le_bytes();
            match a % 10 {
                n if usize::from(n) < density => d.push(b),
                0 | 1 => d.extend_from_slice(words[usize::from(c) % words.len()].as_bytes()),
                _ => d.push(b'a' + b % 26),
            }
        }
        assert_eq!(
            text_start(&d),
            text_start_by_bytes(&d),
            "round {round}: {d:?}"
        );
    }
    let mut block = [b'x'; 64];
    block[3] = 0;
    block[63] = 0xff;
    assert_eq!(mask(&block, not_text), (1 << 3) | (1 << 63));
    assert_eq!(runs_of(0b1111_0111, 4), 0b1_0000);
}

#[test]
fn summary_counts_and_hashes_every_chunk() {
    let seen = segment(&[b"\0b", b"c"]);
    assert_eq!(
        ended(&seen[1]).line(true),
        format!("binary output: 3 bytes {}", blake3_of(b"\0bc"))
    );
}
