//! Command line: `serve` and the admin commands, all against the same data
//! directory (or the database named in the config).

mod admin;
mod audit;
mod cluster;
mod grants;
mod handover;
mod kek;
mod locks;
mod mfa;
mod outage;
mod recordings;
mod serve;
mod tokens;

use crate::config::Config;
use crate::store::Store;
use crate::sync::MutexExt;
use crate::vault::Vault;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A privileged-access SSH jump host",
    after_help = WHO_WRITES
)]
pub struct Cli {
    /// TOML config file; without one, embedded defaults are used.
    #[arg(long, global = true, env = "PORTCULLIS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (database, host key, key-encryption key); overrides the config.
    #[arg(long, global = true, env = "PORTCULLIS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bastion.
    Serve,
    /// Check the config file and print the effective settings.
    CheckConfig,
    #[command(subcommand)]
    User(admin::UserCmd),
    #[command(subcommand)]
    Group(admin::GroupCmd),
    #[command(subcommand)]
    Target(admin::TargetCmd),
    #[command(subcommand)]
    Credential(admin::CredentialCmd),
    #[command(subcommand)]
    Grant(grants::GrantCmd),
    /// Just-in-time access requests.
    #[command(subcommand)]
    Request(grants::RequestCmd),
    #[command(subcommand, alias = "sessions")]
    Session(admin::SessionCmd),
    /// Check recordings' integrity chains and signatures (offline: only the public key is needed).
    Verify {
        /// Session id, recording name, a .cast file, or an evidence bundle (.tar).
        what: String,
        /// Public key (base64 text or a .pub file); default: the audit key's .pub.
        #[arg(long)]
        key: Option<String>,
    },
    /// Play a recording in the terminal.
    Replay(recordings::ReplayArgs),
    /// Follow a live session's output (read-only).
    Watch {
        what: String,
        /// Pass every byte to the terminal, title, clipboard and query
        /// sequences included (default: only what a replay needs).
        #[arg(long)]
        raw: bool,
    },
    #[command(subcommand)]
    Recordings(RecordingsCmd),
    #[command(subcommand)]
    Source(mfa::SourceCmd),
    /// The audit log: list, verify the hash chain, export JSON lines.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// The kill switch: lock users, targets, sources or everything.
    #[command(subcommand)]
    Lock(locks::LockCmd),
    /// Lock everything now: `portcullis lockdown --all --reason "..."`.
    Lockdown(locks::LockdownArgs),
    /// The host CA that certifies targets reached with `ssh -J` (ProxyJump).
    #[command(subcommand)]
    HostCa(HostCaCmd),
    /// Bearer tokens of the HTTPS admin API.
    #[command(subcommand)]
    Token(tokens::TokenCmd),
    /// The key-encryption key: make a new one, see which key seals what, re-wrap.
    #[command(subcommand)]
    Kek(kek::KekCmd),
}

#[derive(Debug, Subcommand)]
pub enum HostCaCmd {
    /// Print the known_hosts line that trusts every target reached through this bastion.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum RecordingsCmd {
    /// Delete recordings older than a duration (e.g. 90d); audited.
    Prune {
        #[arg(long)]
        older_than: String,
    },
}

#[derive(Debug, Args)]
pub struct NoArgs {}

/// Which commands may create or change files, for `--help`.
const WHO_WRITES: &str = "\
Files: only `serve` and the commands that change something (add, remove, set, passwd, \
enroll, reset, block, grant, request new|approve|deny, lock, lift, lockdown, kill, prune, \
token create|revoke, kek new|rewrap) create the data directory, its keys and the database \
when they are missing (and upgrade an older database); `host-ca show` creates the host CA \
key. Every other command only reads: `check-config`, the `list` commands, `session search`, \
`verify`, `replay`, `watch`, `audit list|verify|export` and `kek status` create nothing and \
fail, naming what is missing, when the data directory, the database or a key is not there.";

pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    match &cli.config {
        Some(path) => Ok(Config::load(path, cli.data_dir.as_deref())?),
        None => Ok(Config::embedded(cli.data_dir.as_deref())),
    }
}

/// Opens the data directory (creating it private), the vault and the store,
/// making the keys and the database when missing: for commands that write.
pub async fn open(config: &Config) -> anyhow::Result<(Store, Vault)> {
    create_private_dir(&config.data_dir)?;
    let vault = Vault::load(&config.kek_file, &config.accepted_kek_files)?;
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| format!("opening the database in {}", config.data_dir.display()))?;
    let store = crate::audit::open_chain(store, &config.audit_chain_key_file).await?;
    opened(&store, true);
    Ok((store, vault))
}

/// Opens the existing store for a command that only reads: creates no
/// directory, key or database, migrates nothing, writes no byte
/// (`Store::open_read_only`); says what is missing otherwise.
pub async fn open_read(config: &Config) -> anyhow::Result<Store> {
    if config.database_url.starts_with("sqlite:") {
        let file = crate::store::sqlite_file(&config.database_url)?;
        if !config.data_dir.is_dir() {
            return Err(missing("data directory", &config.data_dir));
        }
        if !file.is_file() {
            return Err(missing("database", &file));
        }
    }
    let store = Store::open_read_only(&config.database_url)
        .await
        .with_context(|| format!("opening the database in {}", config.data_dir.display()))?;
    opened(&store, false);
    Ok(store)
}

/// The store for a command: opened read-only when it only `reads`, else
/// set up for writing ([`open`]).
pub async fn store(config: &Config, reads: bool) -> anyhow::Result<Store> {
    if reads {
        open_read(config).await
    } else {
        Ok(open(config).await?.0)
    }
}

/// The vault for a command that only reads: the key files must exist.
pub fn vault_read(config: &Config) -> anyhow::Result<Vault> {
    Ok(Vault::load_existing(
        &config.kek_file,
        &config.accepted_kek_files,
    )?)
}

/// What a command that only reads says when something it needs is not there.
pub(crate) fn missing(what: &str, path: &std::path::Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} {} does not exist. This command only reads, and creates nothing: \
         `portcullis serve` or a command that changes something (e.g. `user add`) sets \
         the data directory up; or point --data-dir / --config at an existing one",
        path.display()
    )
}

/// Stores this command opened, closed when it ends: SQLite then checkpoints
/// its WAL and removes the `-wal` and `-shm` files, which a process exiting
/// with connections open leaves behind (and a later read then has to use).
/// A CLI process runs one command, so a process-wide list is enough. The
/// flag says the store was opened for writing.
static OPENED: std::sync::Mutex<Vec<(Store, bool)>> = std::sync::Mutex::new(Vec::new());

fn opened(store: &Store, writes: bool) {
    OPENED.lock_or_recover().push((store.clone(), writes));
}

async fn close_opened(config: &Config) {
    let stores = std::mem::take(&mut *OPENED.lock_or_recover());
    let wrote = stores.iter().any(|(_, w)| *w);
    for (s, _) in stores {
        s.close().await;
    }
    // Only a command that wrote may touch the WAL's files.
    if wrote && let Err(e) = crate::store::settle_wal(&config.database_url).await {
        tracing::debug!("leaving the WAL files: {e}");
    }
}

/// The `@cert-authority` line for the configured domain patterns, else for
/// every SSH target's name and address: never `*`, since whoever holds the CA
/// key could then pose as any host the user ever connects to.
async fn host_ca_show(config: &Config) -> anyhow::Result<()> {
    create_private_dir(&config.data_dir)?;
    let ca = crate::gateway::hostca::HostCa::load_or_generate(&config.host_ca_file)?;
    let hosts = if config.jump.host_patterns.is_empty() {
        let (store, _) = open(config).await?;
        let targets: Vec<(String, String, u16)> = store
            .kinded_targets()
            .await?
            .into_iter()
            .filter(|t| t.kind == crate::store::TargetKind::Ssh)
            .map(|t| (t.target.name, t.target.host, t.target.port))
            .collect();
        crate::gateway::hostca::target_patterns(&targets)
    } else {
        config.jump.host_patterns.clone()
    };
    match ca.known_hosts_line(&hosts) {
        Some(line) => println!("{line}"),
        None => anyhow::bail!(
            "there are no SSH targets yet: add one (then run this again) or set jump.host_patterns"
        ),
    }
    Ok(())
}

pub(crate) fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
    }
    Ok(())
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(&cli)?;
    let result = dispatch(config.clone(), cli.command).await;
    close_opened(&config).await;
    result
}

async fn dispatch(config: Config, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve::run(config).await,
        Command::CheckConfig => {
            println!("{config:#?}");
            Ok(())
        }
        Command::User(c) => admin::user(&config, c).await,
        Command::Group(c) => admin::group(&config, c).await,
        Command::Target(c) => admin::target(&config, c).await,
        Command::Credential(c) => admin::credential(&config, c).await,
        Command::Grant(c) => grants::grant(&config, c).await,
        Command::Request(c) => grants::request(&config, c).await,
        Command::Session(admin::SessionCmd::Search(a)) => recordings::search(&config, a).await,
        Command::Session(admin::SessionCmd::Kill { id, reason }) => {
            locks::kill(&config, &id, &reason).await
        }
        Command::Session(c) => admin::session(&config, c).await,
        Command::Verify { what, key } => recordings::verify(&config, &what, key.as_deref()).await,
        Command::Replay(a) => recordings::replay(&config, a).await,
        Command::Watch { what, raw } => recordings::watch(&config, &what, raw).await,
        Command::Recordings(RecordingsCmd::Prune { older_than }) => {
            recordings::prune(&config, &older_than).await
        }
        Command::Source(c) => mfa::source(&config, c).await,
        Command::Audit(c) => audit::run(&config, c).await,
        Command::Lock(c) => locks::lock(&config, c).await,
        Command::Lockdown(a) => locks::lockdown(&config, a).await,
        Command::HostCa(HostCaCmd::Show) => host_ca_show(&config).await,
        Command::Token(c) => tokens::token(&config, c).await,
        Command::Kek(c) => kek::run(&config, c).await,
    }
}
