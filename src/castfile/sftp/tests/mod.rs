//! What an auditor reads for each SFTP v3 request (draft-ietf-secsh-filexfer-02
//! and OpenSSH's PROTOCOL extensions), from packets built by hand here: the
//! type numbers are spelled out again on purpose, so a wrong constant in the
//! parser cannot agree with itself.

use super::{MAX_PACKET, MAX_RETAINED, SftpLog};

mod limits;

const INIT: u8 = 1;
const VERSION: u8 = 2;
const OPEN: u8 = 3;
const CLOSE: u8 = 4;
const READ: u8 = 5;
const WRITE: u8 = 6;
const LSTAT: u8 = 7;
const FSTAT: u8 = 8;
const SETSTAT: u8 = 9;
const FSETSTAT: u8 = 10;
const OPENDIR: u8 = 11;
const READDIR: u8 = 12;
const REMOVE: u8 = 13;
const MKDIR: u8 = 14;
const RMDIR: u8 = 15;
const REALPATH: u8 = 16;
const STAT: u8 = 17;
const RENAME: u8 = 18;
const READLINK: u8 = 19;
const SYMLINK: u8 = 20;
const STATUS: u8 = 101;
const HANDLE: u8 = 102;
const DATA: u8 = 103;
const NAME: u8 = 104;
const ATTRS: u8 = 105;
const EXTENDED: u8 = 200;
const EXTENDED_REPLY: u8 = 201;

const READ_F: u32 = 0x01;
const WRITE_F: u32 = 0x02;
const APPEND_F: u32 = 0x04;
const CREAT_F: u32 = 0x08;
const TRUNC_F: u32 = 0x10;
const EXCL_F: u32 = 0x20;

const A_SIZE: u32 = 0x01;
const A_UIDGID: u32 = 0x02;
const A_PERM: u32 = 0x04;
const A_TIME: u32 = 0x08;
const A_EXT: u32 = 0x8000_0000;

/// A packet: length, type, then (for every type but INIT/VERSION) the
/// request id, then the body.
fn pkt(kind: u8, id: u32, body: &[&[u8]]) -> Vec<u8> {
    let mut p = vec![kind];
    p.extend_from_slice(&id.to_be_bytes());
    for b in body {
        p.extend_from_slice(b);
    }
    let mut out = (p.len() as u32).to_be_bytes().to_vec();
    out.extend(p);
    out
}

/// An SSH string.
fn s(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

fn n(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

fn n64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

/// ATTRS: the flags, then the fields the flags announce, in order.
fn attrs(flags: u32, fields: &[&[u8]]) -> Vec<u8> {
    let mut v = flags.to_be_bytes().to_vec();
    for f in fields {
        v.extend_from_slice(f);
    }
    v
}

fn no_attrs() -> Vec<u8> {
    attrs(0, &[])
}

fn status(id: u32, code: u32, msg: &str) -> Vec<u8> {
    pkt(STATUS, id, &[&n(code), &s(msg.as_bytes()), &s(b"en")])
}

fn ext(id: u32, name: &str, args: &[&[u8]]) -> Vec<u8> {
    let name = s(name.as_bytes());
    let mut body: Vec<&[u8]> = vec![&name];
    body.extend_from_slice(args);
    pkt(EXTENDED, id, &body)
}

/// Version 3 agreed with a server that announces OpenSSH's extensions.
fn openssh() -> SftpLog {
    let mut log = SftpLog::default();
    assert!(log.up(&pkt(INIT, 3, &[])).is_empty());
    let version = pkt(
        VERSION,
        3,
        &[
            &s(b"posix-rename@openssh.com"),
            &s(b"1"),
            &s(b"hardlink@openssh.com"),
            &s(b"1"),
            &s(b"copy-data"),
            &s(b"1"),
        ],
    );
    assert!(log.down(&version).is_empty());
    log
}

/// `log` after request `id` opened `path` (read and write) as handle `h`.
fn open_as(log: &mut SftpLog, id: u32, path: &[u8], h: &[u8]) {
    let m = log.up(&pkt(
        OPEN,
        id,
        &[&s(path), &n(READ_F | WRITE_F), &no_attrs()],
    ));
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(log.down(&pkt(HANDLE, id, &[&s(h)])), Vec::<String>::new());
}

fn one(m: Vec<String>) -> String {
    assert_eq!(m.len(), 1, "{m:?}");
    m.into_iter().next().unwrap_or_default()
}

#[test]
fn paths_are_kept_whole_and_escaped() {
    let mut log = openssh();
    let long = format!("/{}", "a".repeat(4095));
    assert_eq!(
        one(log.up(&pkt(REMOVE, 1, &[&s(long.as_bytes())]))),
        format!("sftp remove {long}")
    );
    assert_eq!(
        one(log.up(&pkt(MKDIR, 2, &[&s(b"my dir/a b"), &no_attrs()]))),
        r#"sftp mkdir "my dir/a b""#
    );
    // Newline, quote, backslash, a byte that is not UTF-8, ESC, DEL and a
    // right-to-left override: each shown, none acted on by a terminal.
    let nasty = b"x\n\"\\\xff\x1b\x7f\xe2\x80\xae";
    assert_eq!(
        one(log.up(&pkt(RMDIR, 3, &[&s(nasty)]))),
        r#"sftp rmdir "x\n\"\\\xff\u001b\u007f\u202e""#
    );
    assert_eq!(
        one(log.up(&pkt(REMOVE, 4, &[&s(b"")]))),
        r#"sftp remove """#
    );
    assert_eq!(
        one(log.up(&pkt(REMOVE, 5, &[&s("café".as_bytes())]))),
        "sftp remove café"
    );
    // A long path in a rename, both sides whole.
    let other = format!("/{}", "b".repeat(5000));
    assert_eq!(
        one(log.up(&pkt(
            RENAME,
            6,
            &[&s(long.as_bytes()), &s(other.as_bytes())]
        ))),
        format!("sftp rename {long} -> {other}")
    );
}

#[test]
fn symlink_names_the_link_and_its_target() {
    // OpenSSH sends (and its server reads) the target first, the new link
    // second: the reverse of the draft.
    let mut log = openssh();
    assert_eq!(
        one(log.up(&pkt(
            SYMLINK,
            1,
            &[&s(b"../data/target file"), &s(b"/home/u/link")]
        ))),
        r#"sftp symlink /home/u/link pointing to "../data/target file""#
    );
    // A server that announces no OpenSSH extension is read as the draft says.
    let mut draft = SftpLog::default();
    draft.up(&pkt(INIT, 3, &[]));
    draft.down(&pkt(VERSION, 3, &[]));
    assert_eq!(
        one(draft.up(&pkt(SYMLINK, 1, &[&s(b"/l"), &s(b"/t")]))),
        "sftp symlink /l pointing to /t (draft argument order: the server announced no OpenSSH extension)"
    );
}

#[test]
fn setstat_says_what_changes() {
    let mut log = openssh();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (attrs(A_PERM, &[&n(0o640)]), "sftp setstat f mode=0640"),
        (attrs(A_PERM, &[&n(0o104755)]), "sftp setstat f mode=104755"),
        (
            attrs(A_UIDGID, &[&n(4242), &n(100)]),
            "sftp setstat f uid=4242 gid=100",
        ),
        (attrs(A_SIZE, &[&n64(0)]), "sftp setstat f size=0"),
        (
            attrs(A_TIME, &[&n(0), &n(1_700_000_000)]),
            "sftp setstat f atime=1970-01-01T00:00:00Z mtime=2023-11-14T22:13:20Z",
        ),
        (
            attrs(
                A_SIZE | A_UIDGID | A_PERM | A_TIME | A_EXT,
                &[
                    &n64(7),
                    &n(1),
                    &n(2),
                    &n(0o600),
                    &n(0),
                    &n(0),
                    &n(1),
                    &s(b"user.note@x"),
                    &s(b"hi"),
                ],
            ),
            "sftp setstat f size=7 uid=1 gid=2 mode=0600 atime=1970-01-01T00:00:00Z \
             mtime=1970-01-01T00:00:00Z extended user.note@x (2 bytes)",
        ),
        (no_attrs(), "sftp setstat f (no attributes)"),
        (
            attrs(0x40, &[]),
            "sftp setstat f (attribute flags 0x00000040 not decoded)",
        ),
        (attrs(A_PERM, &[]), "sftp setstat f (malformed attributes)"),
    ];
    for (i, (a, want)) in cases.into_iter().enumerate() {
        let got = one(log.up(&pkt(SETSTAT, i as u32, &[&s(b"f"), &a])));
        assert_eq!(got, want);
    }
}

#[test]
fn fsetstat_and_lsetstat_name_the_file() {
    let mut log = openssh();
    open_as(&mut log, 1, b"/h/f", b"H");
    assert_eq!(
        one(log.up(&pkt(FSETSTAT, 2, &[&s(b"H"), &attrs(A_PERM, &[&n(0o600)])]))),
        "sftp fsetstat /h/f mode=0600"
    );
    assert_eq!(
        one(log.up(&pkt(
            FSETSTAT,
            3,
            &[&s(b"nope"), &attrs(A_PERM, &[&n(0o600)])]
        ))),
        "sftp fsetstat (untracked handle) mode=0600"
    );
    assert_eq!(
        one(log.up(&ext(
            4,
            "lsetstat@openssh.com",
            &[&s(b"/h/l"), &attrs(A_UIDGID, &[&n(0), &n(0)])]
        ))),
        "sftp lsetstat /h/l uid=0 gid=0"
    );
}

#[test]
fn every_extension_produces_a_marker() {
    let mut log = openssh();
    open_as(&mut log, 1, b"/h/src", b"H1");
    open_as(&mut log, 2, b"/h/dst file", b"H2");
    let ids = |uids: &[u32]| -> Vec<u8> { uids.iter().flat_map(|u| u.to_be_bytes()).collect() };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            ext(10, "posix-rename@openssh.com", &[&s(b"a"), &s(b"b")]),
            "sftp rename a -> b (posix-rename@openssh.com)",
        ),
        (
            ext(11, "hardlink@openssh.com", &[&s(b"old"), &s(b"new")]),
            "sftp hardlink new to existing old",
        ),
        (
            ext(12, "fsync@openssh.com", &[&s(b"H1")]),
            "sftp fsync /h/src",
        ),
        (
            ext(13, "statvfs@openssh.com", &[&s(b"/")]),
            "sftp statvfs /",
        ),
        (
            ext(14, "fstatvfs@openssh.com", &[&s(b"H2")]),
            r#"sftp fstatvfs "/h/dst file""#,
        ),
        (ext(15, "limits@openssh.com", &[]), "sftp limits"),
        (
            ext(16, "expand-path@openssh.com", &[&s(b"~/x")]),
            "sftp expand-path ~/x",
        ),
        (
            ext(17, "home-directory", &[&s(b"")]),
            r#"sftp home-directory "" (the current user)"#,
        ),
        (
            ext(18, "home-directory", &[&s(b"bob")]),
            "sftp home-directory bob",
        ),
        (
            ext(
                19,
                "users-groups-by-id@openssh.com",
                &[&s(&ids(&[0, 4242])), &s(&ids(&[4242]))],
            ),
            "sftp users-groups-by-id uids 0,4242 gids 4242",
        ),
        (
            ext(
                20,
                "users-groups-by-id@openssh.com",
                &[&s(&ids(&[])), &s(&ids(&[7]))],
            ),
            "sftp users-groups-by-id uids none gids 7",
        ),
        (
            ext(
                21,
                "copy-data",
                &[&s(b"H1"), &n64(0), &n64(0), &s(b"H2"), &n64(0)],
            ),
            r#"sftp copy-data from /h/src (offset 0, to end of file) to "/h/dst file" (offset 0)"#,
        ),
        (
            ext(
                22,
                "copy-data",
                &[&s(b"H1"), &n64(5), &n64(100), &s(b"zz"), &n64(9)],
            ),
            "sftp copy-data from /h/src (offset 5, 100 bytes) to (untracked handle) (offset 9)",
        ),
        (
            ext(23, "x-frob@example.com", &[b"abc"]),
            "sftp extension x-frob@example.com (arguments not decoded, 3 bytes)",
        ),
        (
            ext(24, "hardlink@openssh.com", &[&s(b"only-one")]),
            "sftp extension hardlink@openssh.com (malformed arguments)",
        ),
        (
            ext(25, "weird name\n", &[]),
            r#"sftp extension "weird name\n" (arguments not decoded, 0 bytes)"#,
        ),
    ];
    for (p, want) in cases {
        assert_eq!(one(log.up(&p)), want);
    }
}

#[test]
fn open_says_how_the_file_is_opened() {
    let mut log = openssh();
    let cases: Vec<(u32, Vec<u8>, &str)> = vec![
        (READ_F, no_attrs(), "sftp open f (read)"),
        (
            WRITE_F | CREAT_F | TRUNC_F,
            attrs(A_PERM, &[&n(0o644)]),
            "sftp open f (write, create, truncate) mode=0644",
        ),
        (
            WRITE_F | APPEND_F | CREAT_F | EXCL_F,
            no_attrs(),
            "sftp open f (write, append, create, exclusive)",
        ),
        (0, no_attrs(), "sftp open f (no access flags)"),
        (
            READ_F | 0x100,
            no_attrs(),
            "sftp open f (read, flags 0x00000100)",
        ),
    ];
    for (i, (flags, a, want)) in cases.into_iter().enumerate() {
        let got = one(log.up(&pkt(OPEN, i as u32, &[&s(b"f"), &n(flags), &a])));
        assert_eq!(got, want);
    }
}

#[test]
fn the_servers_refusals_are_said() {
    let mut log = openssh();
    log.up(&pkt(REMOVE, 7, &[&s(b"/etc/passwd")]));
    assert_eq!(
        one(log.down(&status(7, 3, "Permission denied"))),
        "sftp remove /etc/passwd failed: permission denied"
    );
    log.up(&pkt(OPEN, 8, &[&s(b"gone"), &n(READ_F), &no_attrs()]));
    assert_eq!(
        one(log.down(&status(8, 2, "No such file"))),
        "sftp open gone (read) failed: no such file"
    );
    log.up(&pkt(MKDIR, 9, &[&s(b"d"), &attrs(A_PERM, &[&n(0o755)])]));
    assert_eq!(
        one(log.down(&status(9, 4, "quota exceeded"))),
        r#"sftp mkdir d mode=0755 failed: failure, the server says "quota exceeded""#
    );
    log.up(&ext(10, "hardlink@openssh.com", &[&s(b"a"), &s(b"b")]));
    assert_eq!(
        one(log.down(&status(10, 8, "Operation unsupported"))),
        "sftp hardlink b to existing a failed: operation unsupported"
    );
    // Success says nothing more; nor does a reply to nothing asked.
    log.up(&pkt(RMDIR, 11, &[&s(b"d")]));
    assert!(log.down(&status(11, 0, "Success")).is_empty());
    assert!(log.down(&status(12345, 3, "Permission denied")).is_empty());
}

#[test]
fn lookups_are_marked() {
    let mut log = openssh();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (pkt(STAT, 1, &[&s(b"/etc/shadow")]), "sftp stat /etc/shadow"),
        (pkt(LSTAT, 2, &[&s(b"l")]), "sftp lstat l"),
        (pkt(REALPATH, 3, &[&s(b".")]), "sftp realpath ."),
        (pkt(READLINK, 4, &[&s(b"l")]), "sftp readlink l"),
        (pkt(OPENDIR, 5, &[&s(b"/root")]), "sftp opendir /root"),
    ];
    for (p, want) in cases {
        assert_eq!(one(log.up(&p)), want);
    }
}

#[test]
fn directory_listings_are_counted() {
    let mut log = openssh();
    log.up(&pkt(OPENDIR, 1, &[&s(b"/srv")]));
    log.down(&pkt(HANDLE, 1, &[&s(b"D")]));
    for (id, count) in [(2u32, 3u32), (3, 2)] {
        assert!(log.up(&pkt(READDIR, id, &[&s(b"D")])).is_empty());
        assert!(log.down(&pkt(NAME, id, &[&n(count)])).is_empty());
    }
    assert!(log.up(&pkt(READDIR, 4, &[&s(b"D")])).is_empty());
    assert!(log.down(&status(4, 1, "End of file")).is_empty());
    assert_eq!(
        one(log.up(&pkt(CLOSE, 5, &[&s(b"D")]))),
        "sftp list /srv: 5 entries"
    );
    // FSTAT on a handle already named says nothing new.
    open_as(&mut log, 6, b"f", b"H");
    assert!(log.up(&pkt(FSTAT, 7, &[&s(b"H")])).is_empty());
    assert!(log.down(&pkt(ATTRS, 7, &[&no_attrs()])).is_empty());
    assert_eq!(
        one(log.up(&pkt(CLOSE, 8, &[&s(b"H")]))),
        "sftp close f (no data read or written)"
    );
}

#[test]
fn refused_writes_are_said_with_the_upload() {
    let mut log = openssh();
    open_as(&mut log, 1, b"f", b"H");
    log.up(&pkt(WRITE, 2, &[&s(b"H"), &n64(0), &s(b"hello ")]));
    log.up(&pkt(WRITE, 3, &[&s(b"H"), &n64(6), &s(b"world")]));
    assert!(log.down(&status(2, 0, "")).is_empty());
    assert!(
        log.down(&status(3, 4, "No space left on device"))
            .is_empty()
    );
    assert_eq!(
        one(log.up(&pkt(CLOSE, 4, &[&s(b"H")]))),
        format!(
            "sftp upload f 11 bytes blake3 {}; 1 write refused by the server (failure)",
            blake3::hash(b"hello world").to_hex()
        )
    );
}

#[test]
fn copy_through_copy_data_is_followed() {
    // What `sftp cp a b` sends: open both, copy-data, close both.
    let mut log = openssh();
    let m = log.up(&pkt(OPEN, 1, &[&s(b"/h/a"), &n(READ_F), &no_attrs()]));
    assert_eq!(m, vec!["sftp open /h/a (read)".to_string()]);
    log.down(&pkt(HANDLE, 1, &[&s(b"R")]));
    log.up(&pkt(
        OPEN,
        2,
        &[
            &s(b"/h/b"),
            &n(WRITE_F | CREAT_F | TRUNC_F),
            &attrs(A_PERM, &[&n(0o644)]),
        ],
    ));
    log.down(&pkt(HANDLE, 2, &[&s(b"W")]));
    assert_eq!(
        one(log.up(&ext(
            3,
            "copy-data",
            &[&s(b"R"), &n64(0), &n64(0), &s(b"W"), &n64(0)]
        ))),
        "sftp copy-data from /h/a (offset 0, to end of file) to /h/b (offset 0)"
    );
    assert!(log.down(&status(3, 0, "")).is_empty());
    assert_eq!(
        one(log.up(&pkt(CLOSE, 4, &[&s(b"W")]))),
        "sftp close /h/b (written by copy-data on the server, no data through the bastion)"
    );
    assert_eq!(
        one(log.up(&pkt(CLOSE, 5, &[&s(b"R")]))),
        "sftp close /h/a (read by copy-data on the server, no data through the bastion)"
    );
}

#[test]
fn an_upload_is_logged_with_size_and_checksum_across_split_frames() {
    let mut log = SftpLog::default();
    let open = pkt(OPEN, 1, &[&s(b"/home/u/up.bin"), &n(0x1a), &n(0)]);
    assert_eq!(
        log.up(&open),
        vec!["sftp open /home/u/up.bin (write, create, truncate)".to_string()]
    );
    assert!(log.down(&pkt(HANDLE, 1, &[&s(b"H1")])).is_empty());
    let mut stream = pkt(WRITE, 2, &[&s(b"H1"), &n64(0), &s(b"hello ")]);
    stream.extend(pkt(WRITE, 3, &[&s(b"H1"), &n64(6), &s(b"world")]));
    stream.extend(pkt(CLOSE, 4, &[&s(b"H1")]));
    let (a, b) = stream.split_at(7);
    let mut markers = log.up(a);
    markers.extend(log.up(b));
    let want = format!(
        "sftp upload /home/u/up.bin 11 bytes blake3 {}",
        blake3::hash(b"hello world").to_hex()
    );
    assert_eq!(markers, vec![want]);
}

/// A log that saw `f` opened for reading (request 1) as handle `H`.
fn opened_for_reading() -> SftpLog {
    let mut log = SftpLog::default();
    log.up(&pkt(OPEN, 1, &[&s(b"f"), &n(READ_F), &n(0)]));
    log.down(&pkt(HANDLE, 1, &[&s(b"H")]));
    log
}

#[test]
fn downloads_renames_and_garbage() {
    let mut log = opened_for_reading();
    log.up(&pkt(READ, 2, &[&s(b"H"), &n64(0), &n(32768)]));
    log.down(&pkt(DATA, 2, &[&s(b"abc")]));
    let m = log.up(&pkt(CLOSE, 3, &[&s(b"H")]));
    assert!(
        m[0].starts_with("sftp download f 3 bytes blake3 6437b3ac"),
        "{m:?}"
    );
    let m = log.up(&pkt(RENAME, 4, &[&s(b"a"), &s(b"b")]));
    assert_eq!(m, vec!["sftp rename a -> b".to_string()]);
    let m = log.up(&[0xff, 0xff, 0xff, 0xff, 1]);
    assert!(m[0].contains("not followed"));
    assert!(
        log.up(&pkt(REMOVE, 5, &[&s(b"x")])).is_empty(),
        "stays quiet once broken"
    );
}

#[test]
fn a_download_answered_out_of_order_has_no_checksum() {
    let mut log = opened_for_reading();
    for (id, offset) in [(2u32, 0u64), (3, 3)] {
        log.up(&pkt(READ, id, &[&s(b"H"), &n64(offset), &n(3)]));
    }
    // The second block arrives first: hashing in arrival order would
    // name a file that never existed.
    log.down(&pkt(DATA, 3, &[&s(b"def")]));
    log.down(&pkt(DATA, 2, &[&s(b"abc")]));
    let m = log.up(&pkt(CLOSE, 4, &[&s(b"H")]));
    assert_eq!(
        m,
        vec!["sftp download f 6 bytes checksum n/a (not sequential)".to_string()]
    );
}
