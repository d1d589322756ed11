//! Command line: `serve` and the admin commands, all against the same data
//! directory (or the database named in the config).

mod admin;
mod audit;
mod grants;
mod kek;
mod locks;
mod mfa;
mod recordings;
mod serve;
mod tokens;

use crate::config::Config;
use crate::store::Store;
use crate::vault::Vault;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A privileged-access SSH jump host"
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
        /// Session id, recording name, or a .cast file.
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

pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    match &cli.config {
        Some(path) => Ok(Config::load(path, cli.data_dir.as_deref())?),
        None => Ok(Config::embedded(cli.data_dir.as_deref())),
    }
}

/// Opens the data directory (creating it private), the vault and the store.
pub async fn open(config: &Config) -> anyhow::Result<(Store, Vault)> {
    create_private_dir(&config.data_dir)?;
    let vault = Vault::load(&config.kek_file, &config.accepted_kek_files)?;
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| format!("opening the database in {}", config.data_dir.display()))?;
    let store = crate::audit::open_chain(store, &config.audit_chain_key_file).await?;
    Ok((store, vault))
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
    match cli.command {
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
