//! Verify, replay, watch, search and prune session recordings.

use crate::audit::cli_actor;
use crate::castfile::{self, CastReader, EventKind};
use crate::config::Config;
use crate::store::Store;
use anyhow::{Context, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Session id, `<session>-<channel>` recording name, or a `.cast` file.
    pub what: String,
    /// Playback speed factor.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Longest pause between events, in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub idle_cap: f64,
    /// Start at this offset (seconds); what came before is drawn at once.
    #[arg(long, default_value_t = 0.0)]
    pub from: f64,
    /// Also show the keystrokes, interleaved and highlighted.
    #[arg(long)]
    pub input: bool,
    /// Pass every recorded byte to the terminal. By default sequences that
    /// could act on the auditor's terminal (window title, clipboard, DCS,
    /// queries whose answers become input) are dropped (`castfile::term`).
    #[arg(long)]
    pub raw: bool,
}

/// What reaches the auditor's terminal: filtered unless `--raw`.
struct Screen {
    filter: Option<castfile::term::TermFilter>,
    buf: String,
}

impl Screen {
    fn new(raw: bool) -> Screen {
        Screen {
            filter: (!raw).then(castfile::term::TermFilter::new),
            buf: String::new(),
        }
    }

    fn show(&mut self, out: &mut impl Write, text: &str) -> std::io::Result<()> {
        match &mut self.filter {
            None => out.write_all(text.as_bytes()),
            Some(f) => {
                self.buf.clear();
                f.push(text, &mut self.buf);
                out.write_all(self.buf.as_bytes())
            }
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Text typed or printed in the session.
    pub pattern: String,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub target: Option<String>,
    /// Only sessions started at or after this instant (RFC 3339, a date,
    /// Unix ms, or an age such as 24h).
    #[arg(long)]
    pub since: Option<String>,
    /// Only sessions started at or before this instant (same forms).
    #[arg(long)]
    pub until: Option<String>,
    /// Open every recording instead of those whose index holds the
    /// pattern's words (finds fragments of words too; slower).
    #[arg(long)]
    pub scan: bool,
}

/// Recording files for a session id, a recording name or a path. A
/// `.cast` path needs no database (a copy checked or replayed elsewhere).
async fn casts(config: &Config, what: &str) -> anyhow::Result<Vec<PathBuf>> {
    if what.ends_with(".cast") {
        return Ok(vec![PathBuf::from(what)]);
    }
    let dir = &config.recordings_dir;
    let named = dir.join(format!("{what}.cast"));
    if named.exists() {
        return Ok(vec![named]);
    }
    let rows = super::open_read(config).await?.recordings_of(what).await?;
    if rows.is_empty() {
        bail!("no recording for {what:?} (give a session id, a recording name or a .cast file)");
    }
    Ok(rows
        .iter()
        .map(|r| dir.join(format!("{}.cast", r.name)))
        .collect())
}

fn chain_of(cast: &Path) -> PathBuf {
    cast.with_extension("chain")
}

/// Each file is checked on its own (chain, checkpoint signatures, trailer)
/// and against its database row: the session it belongs to and the last
/// checkpoint or final digest stored there, so another session's signed
/// recording, an older copy or a rebuilt one does not pass. A `.cast` with
/// no row (a copy verified elsewhere) is checked against its files alone,
/// and the output says so.
pub async fn verify(config: &Config, what: &str, key: Option<&str>) -> anyhow::Result<()> {
    let key_text = match key {
        Some(k) => k.to_string(),
        None => {
            let path = castfile::sign::public_path(&config.audit_key_file);
            if !path.is_file() {
                return Err(super::missing("public key (no --key given)", &path));
            }
            path.display().to_string()
        }
    };
    let key = castfile::load_public(&key_text)?;
    if what.ends_with(".tar") {
        return verify_bundle(Path::new(what), &key);
    }
    let casts = casts(config, what).await?;
    let store = verify_store(config).await?;
    let mut bad = 0;
    for cast in casts {
        let row = match (&store, cast.file_stem().and_then(|s| s.to_str())) {
            (Some(store), Some(name)) => store.recording(name).await?,
            _ => None,
        };
        // Asked for a session: its rows name the files; they must be its own.
        let witness = row.as_ref().map(crate::recorder::witness_of);
        let report = castfile::verify_witnessed(&cast, &chain_of(&cast), &key, witness.as_ref())?;
        if report.ok {
            let cut = if report.cut_short {
                " (cut short: the bastion stopped during it)"
            } else {
                ""
            };
            // A file with no row: say whose it claims to be, since nothing
            // here confirms it (the signature proves only that the bastion made it).
            let alone = match (&row, &report.session) {
                (Some(_), _) => String::new(),
                (None, s) => format!(
                    " [no database row: checked against its files alone; header names session {}]",
                    castfile::term::visible(s.as_deref().unwrap_or("?"))
                ),
            };
            println!(
                "OK {}: {} events, signed ({} of {} checkpoints signed), ended: {}{cut}{alone}",
                cast.display(),
                report.events,
                report.signed_checkpoints,
                report.checkpoints,
                report.end_reason.unwrap_or_default()
            );
        } else {
            bad += 1;
            println!(
                "FAILED {}: {}",
                cast.display(),
                report.problem.unwrap_or_default()
            );
        }
    }
    if bad > 0 {
        bail!("{bad} recording(s) failed verification");
    }
    Ok(())
}

/// An evidence bundle (`GET /sessions/{id}/evidence`), read into memory and
/// checked there: nothing is written, no database or data directory needed.
fn verify_bundle(path: &Path, key: &castfile::VerifyingKey) -> anyhow::Result<()> {
    use crate::recorder::evidence;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let files = evidence::read(std::io::BufReader::new(file))?;
    let r = evidence::verify(&files, key)?;
    let shown = |s: &str| castfile::term::visible(s);
    for c in &r.recordings {
        if c.report.ok {
            println!(
                "OK {}: {} events, signed ({} of {} checkpoints signed), ended: {}",
                shown(&c.name),
                c.report.events,
                c.report.signed_checkpoints,
                c.report.checkpoints,
                shown(c.report.end_reason.as_deref().unwrap_or_default())
            );
        } else {
            println!(
                "FAILED {}: {}",
                shown(&c.name),
                shown(c.report.problem.as_deref().unwrap_or_default())
            );
        }
    }
    for p in &r.problems {
        println!("FAILED {}", shown(p));
    }
    if !r.same_key {
        println!("note: the bundle's audit-key.pub is not the key it was checked with");
    }
    println!(
        "{} audit event(s) of the session included (their chain is verified on the bastion with `audit verify`: its key never leaves it)",
        r.audit_events
    );
    if !r.ok() {
        bail!(
            "evidence bundle {} of session {} failed verification",
            path.display(),
            shown(&r.session)
        );
    }
    println!(
        "OK {}: session {}, {} recording(s) verified",
        path.display(),
        shown(&r.session),
        r.recordings.len()
    );
    Ok(())
}

/// The database `verify` checks files against, read-only; none where there
/// is no data directory or database (a copy checked elsewhere, against its
/// files alone, which the output says).
async fn verify_store(config: &Config) -> anyhow::Result<Option<Store>> {
    if config.database_url.starts_with("sqlite:")
        && !crate::store::sqlite_file(&config.database_url)?.is_file()
    {
        return Ok(None);
    }
    Ok(Some(super::open_read(config).await?))
}

pub async fn replay(config: &Config, a: ReplayArgs) -> anyhow::Result<()> {
    let files = casts(config, &a.what).await?;
    let keys = Keys::start();
    let result = play(&files, &a, &keys);
    keys.stop();
    result
}

/// Keyboard control while replaying in a terminal: space pauses, `n` jumps
/// to the next marker, `+`/`-` change speed, `q` quits.
struct Keys {
    rx: Option<std::sync::mpsc::Receiver<u8>>,
    saved: Option<String>,
}

impl Keys {
    fn start() -> Keys {
        use std::io::{IsTerminal, Read};
        if !std::io::stdin().is_terminal() {
            return Keys {
                rx: None,
                saved: None,
            };
        }
        let saved = stty(&["-g"]).map(|s| s.trim().to_string());
        let _ = stty(&["-icanon", "-echo", "min", "1"]);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut b = [0u8; 1];
            while std::io::stdin()
                .read(&mut b)
                .map(|n| n == 1)
                .unwrap_or(false)
            {
                if tx.send(b[0]).is_err() {
                    break;
                }
            }
        });
        eprintln!("[replay: space pause/resume, n next marker, + faster, - slower, q quit]");
        Keys {
            rx: Some(rx),
            saved,
        }
    }

    /// Waits up to `d`, or returns the key pressed meanwhile.
    fn wait(&self, d: Duration) -> Option<u8> {
        match &self.rx {
            Some(rx) => rx.recv_timeout(d).ok(),
            None => {
                std::thread::sleep(d);
                None
            }
        }
    }

    fn stop(self) {
        if let Some(s) = self.saved {
            let _ = stty(&[&s]);
        }
    }
}

fn stty(args: &[&str]) -> Option<String> {
    let tty = std::fs::File::open("/dev/tty").ok()?;
    let out = std::process::Command::new("stty")
        .args(args)
        .stdin(tty)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

fn play(files: &[PathBuf], a: &ReplayArgs, keys: &Keys) -> anyhow::Result<()> {
    let mut speed = if a.speed > 0.0 { a.speed } else { 1.0 };
    let mut out = std::io::stdout().lock();
    let mut skipping = false;
    for cast in files {
        // A sequence left open at the end of one file does not swallow the next.
        let mut screen = Screen::new(a.raw);
        let mut last = a.from;
        for ev in CastReader::open(cast)? {
            let ev = ev?;
            if ev.kind == EventKind::Marker && skipping {
                skipping = false;
                last = ev.time;
                // Client-chosen text (command lines, paths): shown, never run.
                let data = if a.raw {
                    ev.data.clone()
                } else {
                    castfile::term::visible(&ev.data)
                };
                write!(out, "\x1b[7m[{:.1}s {data}]\x1b[27m\r\n", ev.time)?;
            }
            let show = ev.kind == EventKind::Output || (a.input && ev.kind == EventKind::Input);
            if !show {
                continue;
            }
            if ev.time > a.from && !skipping {
                out.flush()?;
                let mut wait = (ev.time - last).clamp(0.0, a.idle_cap) / speed;
                last = ev.time;
                while wait > 0.0 {
                    let started = std::time::Instant::now();
                    match keys.wait(Duration::from_secs_f64(wait)) {
                        None => break,
                        Some(b'q') => return Ok(()),
                        Some(b'n') => {
                            skipping = true;
                            break;
                        }
                        Some(b'+') => speed *= 2.0,
                        Some(b'-') => speed /= 2.0,
                        Some(b' ') => {
                            while !matches!(keys.wait(Duration::from_secs(3600)), Some(b' ' | b'q'))
                            {
                            }
                        }
                        Some(_) => {}
                    }
                    wait -= started.elapsed().as_secs_f64();
                }
            }
            match ev.kind {
                EventKind::Input => write!(out, "\x1b[7m{}\x1b[27m", ev.data.escape_debug())?,
                _ => screen.show(&mut out, &ev.data)?,
            }
        }
        out.flush()?;
    }
    Ok(())
}

/// Follows a live recording until its trailer is written, filtered as
/// `replay` is unless `raw` (`castfile::follow`, shared with the console's
/// live view).
pub async fn watch(config: &Config, what: &str, raw: bool) -> anyhow::Result<()> {
    let cast = casts(config, what).await?.pop().context("no recording")?;
    let mut follower = castfile::follow::Follower::open(&cast)
        .with_context(|| format!("opening {}", cast.display()))?;
    let mut out = std::io::stdout().lock();
    let mut screen = Screen::new(raw);
    let mut events = Vec::new();
    loop {
        events.clear();
        let status = follower.poll(&mut events, 1024)?;
        for ev in events.iter().filter(|e| e.kind == EventKind::Output) {
            screen.show(&mut out, &ev.data)?;
        }
        out.flush()?;
        match status {
            castfile::follow::Status::Sealed => return Ok(()),
            castfile::follow::Status::Idle => std::thread::sleep(Duration::from_millis(50)),
            castfile::follow::Status::More => {}
        }
    }
}

pub async fn search(config: &Config, a: SearchArgs) -> anyhow::Result<()> {
    let store = super::open_read(config).await?;
    let now = crate::clock::now_ms();
    let time = |s: &Option<String>| {
        s.as_deref()
            .map(|t| crate::audit::parse_time(t, now))
            .transpose()
    };
    let q = crate::recorder::search::SearchQuery {
        pattern: a.pattern,
        user: a.user,
        target: a.target,
        since_ms: time(&a.since)?,
        until_ms: time(&a.until)?,
        scan: a.scan,
        limit: None,
    };
    let r = crate::recorder::search::search(&store, &config.recordings_dir, &q).await?;
    for h in &r.hits {
        println!(
            "{}\t{}\t{}@{}\t{}\t+{:.1}s\t{}",
            h.session,
            h.user,
            h.login,
            h.target,
            h.recording,
            h.offset,
            h.kind.as_str()
        );
    }
    eprintln!(
        "{} match(es); {} recording(s) opened; {} ms",
        r.hits.len(),
        r.scanned,
        r.elapsed_ms
    );
    Ok(())
}

pub async fn prune(config: &Config, older_than: &str) -> anyhow::Result<()> {
    let (store, _) = super::open(config).await?;
    let secs = crate::grants::jit::parse_duration(older_than)?;
    let n = crate::recorder::prune(&store, &config.recordings_dir, secs, &cli_actor()).await?;
    println!("{n} recording(s) older than {older_than} deleted (audited)");
    Ok(())
}
