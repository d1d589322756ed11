//! `portcullis audit list | verify | export`.

use crate::audit::{self, AuditEntry, AuditQuery, ChainKey};
use crate::clock::now_ms;
use crate::config::Config;
use crate::store::AuditFilter;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Events, newest first (tab-separated: seq, time, kind, actor, source, subject, session, detail).
    List {
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        subject: Option<String>,
        #[arg(long)]
        session: Option<String>,
    },
    /// Check the hash chain; names every row edited, deleted, reordered or forged (exit 1).
    Verify,
    /// Events as JSON lines, oldest first, for Splunk, Elastic or a SIEM.
    Export {
        #[command(flatten)]
        filter: FilterArgs,
        /// Write here (created 0600) instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// RFC 3339 time, a date, Unix ms, or an age such as 24h or 7d.
    #[arg(long)]
    since: Option<String>,
    /// Same forms as --since; exclusive.
    #[arg(long)]
    until: Option<String>,
    /// A kind or a dotted prefix (`session` matches session.started, session.ended...).
    #[arg(long)]
    kind: Option<String>,
}

impl FilterArgs {
    fn query(&self) -> anyhow::Result<AuditQuery> {
        let now = now_ms();
        let time = |s: &Option<String>| s.as_deref().map(|t| audit::parse_time(t, now)).transpose();
        Ok(AuditQuery {
            since: time(&self.since)?,
            until: time(&self.until)?,
            kind: self.kind.clone(),
            ..AuditQuery::default()
        })
    }
}

pub async fn run(config: &Config, cmd: AuditCmd) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::List {
            limit,
            filter,
            actor,
            subject,
            session,
        } => {
            let q = filter.query()?;
            let f = AuditFilter {
                since_ms: q.since,
                until_ms: q.until,
                kind: q.kind,
                actor,
                subject,
                session,
                newest_first: true,
                limit,
                ..AuditFilter::default()
            };
            list(config, &f).await
        }
        AuditCmd::Verify => verify(config).await,
        AuditCmd::Export { filter, output } => export(config, &filter.query()?, output).await,
    }
}

async fn list(config: &Config, f: &AuditFilter) -> anyhow::Result<()> {
    let store = super::open_read(config).await?;
    for r in store.audit_rows(f).await? {
        let e = AuditEntry::from(r);
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            e.seq,
            e.time,
            e.kind,
            e.actor,
            e.source,
            e.subject,
            e.session.unwrap_or_default(),
            e.detail
        );
    }
    Ok(())
}

/// Reads the key without creating one: a missing key is an answer, not a fresh start.
async fn verify(config: &Config) -> anyhow::Result<()> {
    let store = super::open_read(config).await?;
    let key = ChainKey::load(&config.audit_chain_key_file)?;
    let r = audit::verify(&store, &key).await?;
    if r.ok() {
        println!(
            "OK: {} events, head seq {}, head hash {}",
            r.count, r.head_seq, r.head_hash
        );
        return Ok(());
    }
    for p in &r.problems {
        println!("{p}");
    }
    if r.unclassified > 0 {
        println!("... and {} more rows failing their hash", r.unclassified);
    }
    println!(
        "FAILED: {} problems in {} events (head seq {}, head hash {})",
        r.problems.len() as u64 + r.unclassified,
        r.count,
        r.head_seq,
        r.head_hash
    );
    bail!("the audit chain does not verify")
}

async fn export(config: &Config, q: &AuditQuery, output: Option<PathBuf>) -> anyhow::Result<()> {
    let store = super::open_read(config).await?;
    let n = match &output {
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut w = std::io::BufWriter::new(file);
            audit::export(&store, q, &mut w).await?
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout());
            audit::export(&store, q, &mut w).await?
        }
    };
    eprintln!("exported {n} events");
    Ok(())
}
