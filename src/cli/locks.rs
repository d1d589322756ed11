//! `portcullis lock ...`, `lockdown --all`, `session kill`: the kill switch
//! from a shell. Locks are written to the store; a running bastion polls the
//! lock epoch and ends matching sessions within a fraction of a second.

use crate::app::App;
use crate::clock::now_ms;
use crate::config::Config;
use crate::lockdown::{self, LockError, LockSpec};
use crate::policy::LockScope;
use anyhow::bail;
use clap::{Args, Subcommand};
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum LockCmd {
    /// Lock a user out: live sessions end, new logins are refused.
    User {
        name: String,
        #[command(flatten)]
        opts: LockOpts,
    },
    /// Lock a target: its live sessions end, nobody reaches it.
    Target {
        name: String,
        #[command(flatten)]
        opts: LockOpts,
    },
    /// Lock a source address or network (e.g. 203.0.113.0/24).
    Source {
        cidr: String,
        #[command(flatten)]
        opts: LockOpts,
    },
    /// Lock everything (same as `lockdown --all`).
    All {
        #[command(flatten)]
        opts: LockOpts,
    },
    /// Locks in force (with --all: lifted and expired ones too).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Lift a lock by id.
    Lift { id: String },
}

#[derive(Debug, Args)]
pub struct LockOpts {
    /// Why (kept in the audit log and shown to the users it ends).
    #[arg(long)]
    pub reason: String,
    /// How long the lock lasts (90s, 15m, 2h, 1d); without it, until lifted.
    #[arg(long = "for")]
    pub duration: Option<String>,
}

#[derive(Debug, Args)]
pub struct LockdownArgs {
    /// Required: lock everything.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub opts: LockOpts,
}

/// What the CLI says when the database does not answer and a local node
/// took the request.
const HANDED: &str = "the database does not answer: handed to the portcullis serving this data \
     directory, which enforces it within a second and stores it when the database answers";

/// An `App` for the CLI: same store and vault as the server, no listener.
async fn cli_app(config: &Config) -> anyhow::Result<Arc<App>> {
    let (store, vault) = super::open(config).await?;
    let audit_key = crate::castfile::load_or_create(&config.audit_key_file)?;
    Ok(App::new(config.clone(), store, vault, audit_key))
}

pub async fn lock(config: &Config, cmd: LockCmd) -> anyhow::Result<()> {
    let (scope, opts) = match cmd {
        LockCmd::User { name, opts } => (LockScope::User(super::admin::name(&name)?), opts),
        LockCmd::Target { name, opts } => (LockScope::Target(super::admin::name(&name)?), opts),
        LockCmd::Source { cidr, opts } => {
            let net = crate::lockdown::parse_cidr(&cidr).map_err(anyhow::Error::msg)?;
            (LockScope::Source(net), opts)
        }
        LockCmd::All { opts } => (LockScope::All, opts),
        LockCmd::List { all } => return list(config, all).await,
        LockCmd::Lift { id } => return lift(config, &id).await,
    };
    create(config, scope, opts).await
}

pub async fn lockdown(config: &Config, args: LockdownArgs) -> anyhow::Result<()> {
    if !args.all {
        bail!(
            "`lockdown` locks everything: say --all to confirm (or use `lock user|target|source`)"
        );
    }
    create(config, LockScope::All, args.opts).await
}

async fn create(config: &Config, scope: LockScope, opts: LockOpts) -> anyhow::Result<()> {
    let expires_ms = match opts.duration.as_deref() {
        Some(d) => Some(now_ms() + 1000 * i64::try_from(crate::grants::jit::parse_duration(d)?)?),
        None => None,
    };
    let app = match cli_app(config).await {
        Ok(a) => a,
        Err(e) if super::handover::unreachable(&e) => {
            let what = super::handover::Handed::Lock {
                kind: scope.kind().to_string(),
                value: scope.value().to_string(),
                reason: opts.reason,
                expires_ms,
            };
            super::handover::hand_over(config, &what)?;
            println!("{HANDED}");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let spec = LockSpec {
        scope,
        reason: opts.reason,
        author: crate::audit::cli_actor(),
        expires_ms,
    };
    let o = match lockdown::create(&app, spec).await {
        Ok(o) => o,
        Err(LockError::NotPersisted(e, _)) => bail!("the lock was not stored: {e}"),
        Err(e) => return Err(e.into()),
    };
    println!("locked {} ({})", o.lock.scope, o.lock.id);
    println!("running bastions end matching sessions within a second and refuse new ones");
    Ok(())
}

async fn list(config: &Config, all: bool) -> anyhow::Result<()> {
    let store = super::open_read(config).await?;
    let now = now_ms();
    // The same rows as `lockdown::list`, which needs a whole App.
    for l in store.recent_locks(1000).await? {
        if !all && !l.in_force(now) {
            continue;
        }
        let state = match (l.lifted_ms, l.expires_ms) {
            (Some(_), _) => format!("lifted by {}", l.lifted_by.as_deref().unwrap_or("?")),
            (None, Some(e)) if e <= now => "expired".to_string(),
            (None, Some(e)) => format!(
                "until {}",
                jiff::Timestamp::from_millisecond(e)
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            ),
            (None, None) => "until lifted".to_string(),
        };
        println!(
            "{}\t{}\t{}\tby {}\t{}",
            l.id, l.scope, state, l.author, l.reason
        );
    }
    Ok(())
}

async fn lift(config: &Config, id: &str) -> anyhow::Result<()> {
    let app = cli_app(config).await?;
    let actor = crate::audit::cli_actor();
    // The CLI holds the database and its keys: it is an admin.
    let by = lockdown::Lifter {
        actor: &actor,
        admin: true,
    };
    if !lockdown::lift(&app, id, by).await? {
        bail!("no lock in force has id {id:?} (see `portcullis lock list`)");
    }
    println!("lifted {id}");
    Ok(())
}

/// `portcullis session kill ID`: ends one session wherever it runs.
pub async fn kill(config: &Config, id: &str, reason: &str) -> anyhow::Result<()> {
    let app = match cli_app(config).await {
        Ok(a) => a,
        Err(e) if super::handover::unreachable(&e) => {
            let what = super::handover::Handed::Kill {
                id: id.to_string(),
                reason: reason.to_string(),
            };
            super::handover::hand_over(config, &what)?;
            println!("{HANDED}");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let actor = crate::audit::cli_actor();
    match lockdown::terminate(&app, id, &actor, reason).await? {
        lockdown::Terminated::Session { user, target } if target.is_empty() => {
            println!("connection {id} ({user}) will end within a second")
        }
        lockdown::Terminated::Session { user, target } => {
            println!("session {id} ({user}@{target}) will end within a second")
        }
        lockdown::Terminated::Forward => println!("forward {id} will end within a second"),
    }
    Ok(())
}
