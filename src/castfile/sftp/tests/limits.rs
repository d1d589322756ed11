//! The caps and hostile input: what is not followed is said, memory stays
//! within the caps, and no bytes make the parser panic or disagree with
//! itself when split differently.

use super::*;

#[test]
fn handles_past_the_cap_are_said() {
    let mut log = openssh();
    let mut said = Vec::new();
    for i in 0..5000u32 {
        log.up(&pkt(
            OPEN,
            i,
            &[&s(format!("f{i}").as_bytes()), &n(READ_F), &no_attrs()],
        ));
        said.extend(log.down(&pkt(HANDLE, i, &[&s(&i.to_be_bytes())])));
    }
    assert!(
        !said.is_empty(),
        "handles past the cap were dropped silently"
    );
    assert!(
        said.iter()
            .all(|m| m.contains(": handle not tracked") && m.starts_with("sftp open f")),
        "{:?}",
        &said[..3]
    );
    assert!(said.iter().any(|m| m.starts_with("sftp open f4999:")));
    // The last one's close is said too, though its byte counts are not known.
    assert_eq!(
        one(log.up(&pkt(CLOSE, 9999, &[&s(&4999u32.to_be_bytes())]))),
        "sftp close of an untracked handle"
    );
}

#[test]
fn requests_past_the_cap_say_their_outcome_is_not_followed() {
    let mut log = openssh();
    let mut last = String::new();
    for i in 0..5000u32 {
        last = one(log.up(&pkt(REMOVE, i, &[&s(format!("f{i}").as_bytes())])));
    }
    assert_eq!(
        last,
        "sftp remove f4999 (its reply is not followed: too many requests outstanding)"
    );
    // A handle returned for an open that was not followed is said.
    log.up(&pkt(OPEN, 6000, &[&s(b"x"), &n(READ_F), &no_attrs()]));
    assert_eq!(
        one(log.down(&pkt(HANDLE, 6000, &[&s(b"X")]))),
        "sftp: a handle was returned for a request not followed; its reads, writes and close are not summarised"
    );
}

#[test]
fn a_version_other_than_3_stops_the_decoding() {
    let mut log = SftpLog::default();
    log.up(&pkt(INIT, 6, &[]));
    assert_eq!(
        one(log.down(&pkt(VERSION, 6, &[]))),
        "sftp: the server chose version 6; only version 3 is decoded, file operations are not followed further"
    );
    assert!(log.up(&pkt(REMOVE, 1, &[&s(b"x")])).is_empty());
}

#[test]
fn malformed_and_unknown_requests_are_said() {
    let mut log = openssh();
    // The string claims 9 bytes, 2 follow.
    let bad = pkt(REMOVE, 1, &[&n(9), b"ab"]);
    assert_eq!(
        one(log.up(&bad)),
        "sftp: malformed remove request (11 bytes)"
    );
    assert_eq!(
        one(log.up(&pkt(99, 2, &[b"xyz"]))),
        "sftp: request type 99 not decoded (8 bytes)"
    );
    // A reply type the parser does not know ends nothing and says nothing.
    assert!(log.down(&pkt(EXTENDED_REPLY, 2, &[b"xyz"])).is_empty());
}

#[test]
fn a_packet_split_anywhere_gives_the_same_markers() {
    let mut stream = Vec::new();
    stream.extend(pkt(SYMLINK, 1, &[&s(b"t"), &s(b"l")]));
    stream.extend(pkt(
        SETSTAT,
        2,
        &[&s(b"my file"), &attrs(A_PERM, &[&n(0o600)])],
    ));
    stream.extend(ext(3, "hardlink@openssh.com", &[&s(b"a"), &s(b"b")]));
    let whole = openssh().up(&stream);
    assert_eq!(whole.len(), 3, "{whole:?}");
    for cut in 0..stream.len() {
        let mut log = openssh();
        let mut m = log.up(&stream[..cut]);
        m.extend(log.up(&stream[cut..]));
        assert_eq!(m, whole, "cut at {cut}");
    }
}

#[test]
fn hostile_bytes_never_panic() {
    // Valid packets, then the same bytes with single bytes flipped and
    // random garbage, split at random places: the parser must neither panic
    // nor grow without bound.
    let mut valid = Vec::new();
    valid.extend(pkt(OPEN, 1, &[&s(b"f"), &n(3), &attrs(A_PERM, &[&n(1)])]));
    valid.extend(pkt(SETSTAT, 2, &[&s(b"f"), &attrs(0x8000_000f, &[])]));
    valid.extend(ext(
        3,
        "copy-data",
        &[&s(b"H"), &n64(0), &n64(0), &s(b"H"), &n64(0)],
    ));
    valid.extend(ext(4, "users-groups-by-id@openssh.com", &[&s(b"abc")]));
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..3000 {
        let mut bytes = valid.clone();
        match round % 3 {
            0 => {
                let at = (rnd() as usize) % bytes.len();
                bytes[at] ^= 1 << (rnd() % 8);
            }
            1 => {
                let at = (rnd() as usize) % bytes.len();
                bytes[at] = rnd() as u8;
                bytes.truncate((rnd() as usize) % (bytes.len() + 1));
            }
            _ => bytes = (0..(rnd() % 300)).map(|_| rnd() as u8).collect(),
        }
        let mut log = openssh();
        let cut = (rnd() as usize) % (bytes.len() + 1);
        let (a, b) = bytes.split_at(cut);
        log.up(a);
        log.up(b);
        log.down(b);
        log.down(a);
    }
}

/// The memory the log holds stays within its caps, and its running count
/// of remembered bytes is the true one.
fn check_bounds(log: &SftpLog) {
    assert!(log.up.len() < MAX_PACKET + 4 && log.down.len() < MAX_PACKET + 4);
    assert!(log.retained <= MAX_RETAINED, "{}", log.retained);
    let pending: usize = log.pending.values().map(super::super::Pending::cost).sum();
    let handles: usize = log
        .handles
        .iter()
        .map(|(k, h)| super::super::handle_cost(k, h))
        .sum();
    assert_eq!(log.retained, pending + handles);
}

#[test]
fn hostile_bytes_keep_memory_within_the_caps() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut log = openssh();
    for round in 0..20_000u32 {
        let id = (rnd() % 64) as u32;
        let h = [(rnd() % 8) as u8];
        let p = match rnd() % 9 {
            0 => pkt(OPEN, id, &[&s(b"f"), &n(READ_F), &no_attrs()]),
            1 => pkt(OPENDIR, id, &[&s(b"d")]),
            2 => pkt(HANDLE, id, &[&s(&h)]),
            3 => pkt(READ, id, &[&s(&h), &n64(rnd() % 4), &n(4)]),
            4 => pkt(DATA, id, &[&s(b"abcd")]),
            5 => pkt(WRITE, id, &[&s(&h), &n64(rnd() % 4), &s(b"xy")]),
            6 => status(id, (rnd() % 3) as u32, ""),
            7 => pkt(CLOSE, id, &[&s(&h)]),
            _ => pkt(READDIR, id, &[&s(&h)]),
        };
        // Replies go down, requests up, as a confused or hostile pair might.
        if matches!(p[4], HANDLE | DATA | STATUS) {
            log.down(&p);
        } else {
            log.up(&p);
        }
        if round % 97 == 0 {
            check_bounds(&log);
        }
    }
    check_bounds(&log);
}

#[test]
fn packet_sized_names_are_kept_whole_until_the_byte_cap_then_said() {
    let mut log = openssh();
    let big = vec![b'n'; 400 * 1024];
    let mut markers = Vec::new();
    for i in 0..20u32 {
        let mut path = format!("/{i}/").into_bytes();
        path.extend_from_slice(&big);
        let m = one(log.up(&pkt(OPEN, i, &[&s(&path), &n(READ_F), &no_attrs()])));
        // Whole: the name is never cut to fit.
        assert!(m.len() > big.len(), "{}", m.len());
        markers.push(m);
        markers.extend(log.down(&pkt(HANDLE, i, &[&s(&i.to_be_bytes())])));
        check_bounds(&log);
    }
    assert!(
        markers.iter().any(|m| m.contains("handle not tracked")
            || m.contains("a handle was returned for a request not followed")),
        "the byte cap was never reached or never said"
    );
}

// What the log did before it named every request: transfers summarised at
// close, split frames, out-of-order replies, garbage.
