//! What an exec request is, decided from its exact form.
//!
//! A command is a file transfer (legacy `scp -t/-f`, `rsync --server`) only
//! when its argv has exactly the shape those programs send: the program, known
//! flag tokens, and plain paths with no shell metacharacters or whitespace.
//! Anything else is a command under the `exec` permission and its lists; a
//! string that merely looks like a transfer is never one.
//!
//! The accepted language is small on purpose, so that every shell (sh, bash,
//! dash, ksh, zsh, fish, csh, even cmd.exe) splits it into the same words and
//! runs exactly one program: words are separated by ASCII spaces only, and
//! every character of every word is from a fixed set with no shell meaning
//! (plus quotes, `\~`, and `*` `?` in download paths, see below).
//!
//! # scp (legacy protocol, `scp -O`)
//!
//! OpenSSH's scp.c builds the remote command as
//! `"scp" [" -v"] [" -r"] [" -p"] [" -d"]` then `" -t "` or `" -f "`, then
//! `"-- "` if the path starts with `-`, then the path as the user typed it
//! (one path per command). PuTTY's pscp, libssh (`scp -t -r -d 'path'`) and
//! Python's `scp` module (`scp -r -p -f path`, quoting paths with single
//! quotes) send the same flags as separate tokens, in varying order.
//! Accepted: `scp`, then separate flag tokens from `-v -r -p -d -q` each at
//! most once and exactly one of `-t` (sink: the client uploads) or `-f`
//! (source: the client downloads), then optionally `--`, then exactly one
//! path. Clustered flags (`-prt`) are refused although scp's getopt would
//! take them: no client sends them.
//!
//! # rsync (`rsync --server`)
//!
//! rsync's `server_options()` (options.c) builds
//! `rsync --server [--sender] -<flags>[e<capabilities>] <long options> . <paths>`.
//! Accepted: `rsync --server`, optionally `--sender` right after it
//! (the client downloads; without it the client uploads), then option
//! tokens, then `.`, then exactly one path (receiver) or one or more paths
//! (sender). Option tokens:
//!
//! - a cluster `-` + letters from the set `server_options()` emits
//!   (`vqbunldKmOJyLkWHogDtUNpEAXrcCIRxSz`), optionally ending in `e` and
//!   the capability string `maybe_add_e_option()` writes (`e.iLsfxCIvu`,
//!   `e31.100iLsfxCIvu`). `s` (secluded/protect args) is refused: the real
//!   arguments would then arrive on stdin, past this check. Letters that
//!   take an argument (`T` temp dir, `f` filter, `M` remote option) or that
//!   rsync never sends are refused.
//! - `-B<n>`, `-@<n>`, and the long options `server_options()` sends, with
//!   their values checked: numbers for `--timeout`, `--bwlimit`,
//!   `--compress-level`, `--max-delete`, `--modify-window`,
//!   `--checksum-seed`; the four `--log-format` values it writes; plain
//!   words for `--suffix`, `--iconv`, `--min-size`... ; a following path
//!   word for `--backup-dir`, `--partial-dir`, `--temp-dir`,
//!   `--compare-dest`, `--copy-dest`, `--link-dest`, `--files-from`.
//!
//! Refused (a command, not a transfer): `--daemon`, `--config`, `--dparam`
//! (daemon mode reads an rsyncd.conf whose `pre-xfer exec` runs commands),
//! `--rsh`/`-e` as its own option, `--rsync-path`, `--log-file*`,
//! `--write-batch`, `--read-batch`, `--only-write-batch`, `--remote-option`,
//! filters, and every option not listed.
//!
//! # Paths
//!
//! A path word is non-empty and made of `[A-Za-z0-9._/+,:=@~-]`, non-ASCII
//! letters and digits, and single- or double-quoted runs of those (quotes
//! that produce a literal; libssh and Python's `scp` quote paths), plus
//! `\~` (rsync escapes a leading `~`). No whitespace, not even quoted: the
//! word must be one word in every shell. For a download source (`scp -f`,
//! `rsync --sender`), unquoted `*` and `?` are allowed too: the target's
//! shell expands them to file names, which runs nothing. A path must not
//! start with `-` unless scp's `--` precedes it.

/// A proven file transfer, named from the target's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// `scp -t PATH`: the client uploads.
    ScpSink,
    /// `scp -f PATH`: the client downloads.
    ScpSource,
    /// `rsync --server ...`: the client uploads.
    RsyncReceiver,
    /// `rsync --server --sender ...`: the client downloads.
    RsyncSender,
}

impl Transfer {
    pub fn name(self) -> &'static str {
        match self {
            Transfer::ScpSink => "scp upload",
            Transfer::ScpSource => "scp download",
            Transfer::RsyncReceiver => "rsync upload",
            Transfer::RsyncSender => "rsync download",
        }
    }
}

/// What an exec request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecKind {
    Transfer(Transfer),
    Command,
}

/// Classifies an exec command. The gate and the recorder both call this, so
/// what is allowed as a transfer and what is recorded as one cannot differ.
pub fn classify(command: &[u8]) -> ExecKind {
    let Ok(text) = std::str::from_utf8(command) else {
        return ExecKind::Command;
    };
    // Only ASCII spaces separate words; any other character (tab, newline,
    // NUL, an operator) stays inside a word and fails that word's check.
    let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    let transfer = match words.split_first() {
        Some((&"scp", args)) => scp(args),
        Some((&"rsync", args)) => rsync(args),
        _ => None,
    };
    transfer.map_or(ExecKind::Command, ExecKind::Transfer)
}

fn scp(args: &[&str]) -> Option<Transfer> {
    const FLAGS: [&str; 7] = ["-v", "-r", "-p", "-d", "-q", "-t", "-f"];
    let mut seen = [false; FLAGS.len()];
    let mut i = 0;
    while let Some(k) = args.get(i).and_then(|a| FLAGS.iter().position(|f| f == a)) {
        if std::mem::replace(&mut seen[k], true) {
            return None;
        }
        i += 1;
    }
    let mode = match (seen[5], seen[6]) {
        (true, false) => Transfer::ScpSink,
        (false, true) => Transfer::ScpSource,
        _ => return None,
    };
    let mut rest = &args[i..];
    let dashdash = rest.first() == Some(&"--");
    if dashdash {
        rest = &rest[1..];
    }
    let [path] = rest else {
        return None;
    };
    let literal = path_word(path, mode == Transfer::ScpSource)?;
    if literal.starts_with('-') && !dashdash {
        return None;
    }
    Some(mode)
}

fn rsync(args: &[&str]) -> Option<Transfer> {
    let rest = args.strip_prefix(&["--server"])?;
    let (mode, rest) = match rest.strip_prefix(&["--sender"]) {
        Some(r) => (Transfer::RsyncSender, r),
        None => (Transfer::RsyncReceiver, rest),
    };
    let dot = rest.iter().position(|a| *a == ".")?;
    let (options, paths) = (&rest[..dot], &rest[dot + 1..]);
    let mut i = 0;
    while let Some(opt) = options.get(i) {
        match rsync_option(opt)? {
            Arg::None => i += 1,
            Arg::Path => {
                plain_path(options.get(i + 1)?, false)?;
                i += 2;
            }
        }
    }
    let count_ok = match mode {
        Transfer::RsyncSender => !paths.is_empty(),
        _ => paths.len() == 1,
    };
    if !count_ok {
        return None;
    }
    for p in paths {
        plain_path(p, mode == Transfer::RsyncSender)?;
    }
    Some(mode)
}

/// What follows an accepted rsync option.
enum Arg {
    None,
    /// The next word is a path (`--backup-dir DIR`).
    Path,
}

/// Short letters `server_options()` puts in the cluster, none of which
/// takes an argument. Not `s` (args over stdin), `e` (handled last).
const RSYNC_SHORT: &str = "vqbunldKmOJyLkWHogDtUNpEAXrcCIRxSz";

/// Long options `server_options()` sends without a value.
const RSYNC_BARE: &[&str] = &[
    "--list-only",
    "--no-r",
    "--no-specials",
    "--specials",
    "--msgs2stderr",
    "--no-msgs2stderr",
    "--new-compress",
    "--old-compress",
    "--delete",
    "--delete-before",
    "--delete-delay",
    "--delete-during",
    "--delete-after",
    "--delete-excluded",
    "--force",
    "--super",
    "--size-only",
    "--stats",
    "--delete-missing-args",
    "--ignore-missing-args",
    "--delay-updates",
    "--partial",
    "--ignore-errors",
    "--copy-unsafe-links",
    "--safe-links",
    "--numeric-ids",
    "--use-qsort",
    "--ignore-existing",
    "--existing",
    "--fsync",
    "--append",
    "--inplace",
    "--no-W",
    "--files-from=-",
    "--from0",
    "--no-relative",
    "--no-implied-dirs",
    "--write-devices",
    "--remove-source-files",
    "--remove-sent-files",
    "--copy-devices",
    "--preallocate",
    "--open-noatime",
    "--mkpath",
];

/// Long options sent as `--name=<integer>`.
const RSYNC_NUMBER: &[&str] = &[
    "--compress-level",
    "--timeout",
    "--bwlimit",
    "--max-delete",
    "--modify-window",
    "--checksum-seed",
];

/// Long options sent as `--name=<word>` (through `safe_arg`, which
/// backslash-escapes anything special: such a value is refused here).
const RSYNC_WORD: &[&str] = &[
    "--iconv",
    "--suffix",
    "--checksum-choice",
    "--compress-choice",
    "--min-size",
    "--max-size",
    "--skip-compress",
    "--max-alloc",
    "--usermap",
    "--groupmap",
    "--info",
];

/// Long options sent as `--name <path>` (two words).
const RSYNC_PATH: &[&str] = &[
    "--backup-dir",
    "--partial-dir",
    "--temp-dir",
    "--compare-dest",
    "--copy-dest",
    "--link-dest",
    "--files-from",
];

fn rsync_option(opt: &str) -> Option<Arg> {
    if RSYNC_BARE.contains(&opt) {
        return Some(Arg::None);
    }
    if RSYNC_PATH.contains(&opt) {
        return Some(Arg::Path);
    }
    if let Some((name, value)) = opt.split_once('=') {
        let ok = match name {
            "--log-format" => matches!(value, "X" | "%i" | "%i%I" | "%o"),
            _ if RSYNC_NUMBER.contains(&name) => integer(value),
            _ if RSYNC_WORD.contains(&name) => !value.is_empty() && value.chars().all(plain_char),
            _ => false,
        };
        return ok.then_some(Arg::None);
    }
    if let Some(n) = opt.strip_prefix("-B") {
        return (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(Arg::None);
    }
    if let Some(n) = opt.strip_prefix("-@") {
        return integer(n).then_some(Arg::None);
    }
    let cluster = opt.strip_prefix('-')?;
    let (letters, caps) = match cluster.split_once('e') {
        Some((l, c)) => (l, Some(c)),
        None => (cluster, None),
    };
    let letters_ok = letters.chars().all(|c| RSYNC_SHORT.contains(c));
    // `e` then "." or "<protocol>.<subprotocol>", then capability letters.
    let caps_ok = caps.is_none_or(|c| {
        c.starts_with(|c: char| c == '.' || c.is_ascii_digit())
            && c.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
    });
    (!cluster.is_empty() && letters_ok && caps_ok).then_some(Arg::None)
}

fn integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.len() <= 19 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A path word (see the module docs) that does not start with `-`.
fn plain_path(raw: &str, glob_ok: bool) -> Option<String> {
    path_word(raw, glob_ok).filter(|p| !p.starts_with('-'))
}

/// A character with no meaning to any shell we know of. Not `%`: cmd.exe
/// (a Windows target's default shell) expands `%VAR%` before it parses
/// `&`, and the client may set `LC_*` variables.
fn plain_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '.' | '_' | '/' | '+' | ',' | ':' | '=' | '@' | '~' | '-')
        || (!c.is_ascii() && c.is_alphanumeric())
}

/// The literal a path word stands for, if it is one (see the module docs).
fn path_word(raw: &str, glob_ok: bool) -> Option<String> {
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => loop {
                match chars.next()? {
                    q if q == c => break,
                    q if plain_char(q) || matches!(q, '*' | '?') => out.push(q),
                    _ => return None,
                }
            },
            '\\' => match chars.next()? {
                '~' => out.push('~'),
                _ => return None,
            },
            '*' | '?' if glob_ok => out.push(c),
            c if plain_char(c) => out.push(c),
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExecKind::Command;
    use Transfer::*;

    fn t(kind: Transfer) -> ExecKind {
        ExecKind::Transfer(kind)
    }

    #[test]
    fn scp_shapes() {
        let cases: &[(&str, ExecKind)] = &[
            // What OpenSSH 9.x `scp -O` sends (scp.c: toremote/tolocal).
            ("scp -t .", t(ScpSink)),
            ("scp -t /tmp", t(ScpSink)),
            ("scp -f x", t(ScpSource)),
            ("scp -v -r -p -d -t dest/", t(ScpSink)),
            ("scp -r -p -f src/dir", t(ScpSource)),
            ("scp -d -t ~/up", t(ScpSink)),
            ("scp -t -- -dir", t(ScpSink)),
            ("scp -f -- -file", t(ScpSource)),
            ("scp -f *.log", t(ScpSource)),
            ("scp -f /var/log/app?.log", t(ScpSource)),
            ("scp -t user@host:file,v2+x=1~", t(ScpSink)),
            // cmd.exe expands %VAR% before it looks for `&`, and the client
            // can set LC_* variables.
            ("scp -t %LC_X%", Command),
            ("scp -t 日本/ファイル", t(ScpSink)),
            // libssh: flags after -t, double spaces, single-quoted path.
            ("scp -t -r -d '/tmp/x'", t(ScpSink)),
            ("scp -f   'x'", t(ScpSource)),
            // Python scp: quoted paths, -q from other clients.
            ("scp -r -p -f '世界'", t(ScpSource)),
            ("scp -q -t \"x\"", t(ScpSink)),
            ("scp -t '*'", t(ScpSink)),
            // Anything else is a command.
            ("scp -t . ; id", Command),
            ("scp -t .;id", Command),
            ("scp -t . </dev/null >/dev/null 2>&1; id", Command),
            ("scp -f x; echo SECRET", Command),
            ("scp -f x && id", Command),
            ("scp -f x | sh", Command),
            ("scp -t x&id", Command),
            ("scp -t $(id)", Command),
            ("scp -t `id`", Command),
            ("scp -t $HOME", Command),
            ("scp -t ${HOME}", Command),
            ("scp -t 'a;b'", Command),
            ("scp -t \"$(id)\"", Command),
            ("scp -t 'a b'", Command),
            ("scp -t a\\ b", Command),
            ("scp -t a b", Command),
            ("scp -t .\nid", Command),
            ("scp -t .\rid", Command),
            ("scp -t .\0; id", Command),
            ("scp\t-t .", Command),
            ("scp -t\t.", Command),
            ("scp -t {a,b}", Command),
            ("scp -t *", Command),
            ("scp -t 'x", Command),
            ("scp -t ''", Command),
            ("scp -t", Command),
            ("scp -t -dir", Command),
            ("scp -t -- ", Command),
            ("scp -t -- a b", Command),
            ("scp -t -f x", Command),
            ("scp -t -t x", Command),
            ("scp -r x", Command),
            ("scp -prt x", Command),
            ("scp -t -o ProxyCommand=id x", Command),
            ("scp -S id -t x", Command),
            ("scp x host:y", Command),
            ("/usr/bin/scp -t .", Command),
            ("'scp' -t .", Command),
            ("PATH=/tmp scp -t .", Command),
            ("scpx -t .", Command),
            ("sh -c 'scp -t .'", Command),
            ("scp -t a\\;id", Command),
            ("scp -t a#b", Command),
            ("scp -t a!b", Command),
            ("scp -t a>b", Command),
        ];
        for (cmd, want) in cases {
            assert_eq!(classify(cmd.as_bytes()), *want, "{cmd:?}");
        }
        assert_eq!(classify(b"scp -t \xff"), Command);
        // Leading and trailing spaces change nothing a shell would do.
        assert_eq!(classify(b"  scp -t .  "), t(ScpSink));
    }

    #[test]
    fn rsync_shapes() {
        let cases: &[(&str, ExecKind)] = &[
            // What rsync 3.2.x / 3.4 sends for `rsync -av` up and down.
            (
                "rsync --server -logDtpre.iLsfxCIvu . dest/",
                t(RsyncReceiver),
            ),
            (
                "rsync --server --sender -logDtpre.iLsfxCIvu . src/",
                t(RsyncSender),
            ),
            (
                "rsync --server -vlogDtpre.iLsfxCIvu . dest/",
                t(RsyncReceiver),
            ),
            (
                "rsync --server --sender -vlogDtprze.iLsfxCIvu . a b c",
                t(RsyncSender),
            ),
            ("rsync --server -e.iLsfxCIvu . x", t(RsyncReceiver)),
            ("rsync --server -e31.100iLsfxCIvu . x", t(RsyncReceiver)),
            ("rsync --server -logDtpr . x", t(RsyncReceiver)),
            (
                "rsync --server -logDtpre.iLsfxCIvu --delete-after --partial --inplace \
                 --compress-level=9 --timeout=30 --max-delete=-1 --bwlimit=100 \
                 --log-format=%i --size-only -B1024 -@-1 --info=FLIST2,NAME . dest/",
                t(RsyncReceiver),
            ),
            (
                "rsync --server --sender -logDtpre.iLsfxCIvu --log-format=X . src/*.log",
                t(RsyncSender),
            ),
            (
                "rsync --server -logDtpre.iLsfxCIvu --backup-dir old --suffix=.bak . dest",
                t(RsyncReceiver),
            ),
            ("rsync --server --sender -r . \\~/x", t(RsyncSender)),
            // Anything else is a command.
            ("rsync --server x; sh", Command),
            ("rsync --server -logDtpre.iLsfxCIvu . dest/; sh", Command),
            ("rsync --server -logDtpre.iLsfxCIvu . dest/ && sh", Command),
            ("rsync --server -logDtpre.iLsfxCIvu . $(id)", Command),
            ("rsync --server --daemon .", Command),
            ("rsync --server --daemon --config=/tmp/x .", Command),
            ("rsync --server --config=/tmp/x . x", Command),
            ("rsync --server --dparam=x . x", Command),
            ("rsync --server --rsh=sh . x", Command),
            ("rsync --server -e sh . x", Command),
            ("rsync --server -e . x", Command),
            ("rsync --server -re . x", Command),
            ("rsync --server --rsync-path=sh . x", Command),
            ("rsync --server --log-file=/tmp/x . x", Command),
            ("rsync --server --log-file-format=%f . x", Command),
            ("rsync --server --write-batch=x . x", Command),
            ("rsync --server --read-batch=x . x", Command),
            ("rsync --server --only-write-batch=X . x", Command),
            ("rsync --server -M--daemon . x", Command),
            ("rsync --server --remote-option=x . x", Command),
            ("rsync --server --filter=x . x", Command),
            ("rsync --server -slogDtpre.iLsfxCIvu . x", Command),
            (
                "rsync --server -logDtpre.iLsfxCIvu --log-format=%f . x",
                Command,
            ),
            ("rsync --server -Tx . x", Command),
            ("rsync --server -fx . x", Command),
            ("rsync --server --timeout=x . x", Command),
            ("rsync --server --suffix=\\* . x", Command),
            ("rsync --server --backup-dir . x", Command),
            ("rsync --server --backup-dir -x . x", Command),
            ("rsync --server -r . a b", Command),
            ("rsync --server -r .", Command),
            ("rsync --server --sender -r .", Command),
            ("rsync --server -r . -x", Command),
            ("rsync --server -r . ./x;id", Command),
            ("rsync --server -r . '*'", t(RsyncReceiver)),
            ("rsync --server -r . *", Command),
            ("rsync --server -r . my\\ file", Command),
            ("rsync --server -r x", Command),
            ("rsync --server -r . x --daemon", Command),
            ("rsync --sender --server -r . x", Command),
            ("rsync -r --server . x", Command),
            ("rsync --server --server . x", Command),
            ("rsync x host:y", Command),
            ("/usr/bin/rsync --server -r . x", Command),
        ];
        for (cmd, want) in cases {
            assert_eq!(classify(cmd.as_bytes()), *want, "{cmd:?}");
        }
    }

    #[test]
    fn others_are_commands() {
        for c in [&b""[..], b" ", b"uptime", b"sftp-server", b"\xff", b"scp"] {
            assert_eq!(classify(c), Command, "{c:?}");
        }
    }
}
