//! TOTP enrollment (the operations are `ops::mfa`; this shows the secret
//! and reads the code) and source blocks; every change is audited.

use crate::audit::{self, AuditEvent, cli_actor};
use crate::auth::totp;
use crate::clock::now_ms;
use crate::config::Config;
use crate::lockdown::parse_cidr;
use crate::ops::{self, Ops, OpsError};
use crate::store::SourceBlock;
use anyhow::{Context, bail};
use clap::Subcommand;
use std::io::{BufRead, Write};
use zeroize::Zeroizing;

#[derive(Debug, Subcommand)]
pub enum TotpCmd {
    /// Create a secret, show it (URI and QR code), and activate it once a current code confirms it.
    Enroll { name: String },
    /// Replace an existing enrollment (lost phone); the old secret stops working.
    Reset { name: String },
    /// Remove the enrollment; the user cannot log in until enrolled again.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum SourceCmd {
    /// Refuse connections from an address or network (e.g. 203.0.113.0/24).
    Block {
        cidr: String,
        #[arg(long, default_value = "blocked by an administrator")]
        reason: String,
        /// Lift the block after this many minutes (default: never).
        #[arg(long)]
        minutes: Option<u32>,
    },
    Unblock {
        cidr: String,
    },
    List,
}

pub async fn totp_cmd(config: &Config, cmd: TotpCmd) -> anyhow::Result<()> {
    let (store, vault) = super::open(config).await?;
    let ops = Ops::new(store, cli_actor());
    let (name, replace) = match cmd {
        TotpCmd::Remove { name } => {
            ops::remove_totp(&ops, &name).await?;
            println!("TOTP removed for {name}; they cannot log in until enrolled again");
            return Ok(());
        }
        TotpCmd::Enroll { name } => (name, false),
        TotpCmd::Reset { name } => (name, true),
    };
    let enrolment = match ops::begin_totp(&ops, &name, replace).await {
        Err(OpsError::Invalid { why, .. }) if !replace && why.contains("already enrolled") => {
            bail!("{name} is already enrolled; use `user totp reset {name}` to replace the secret")
        }
        other => other?,
    };
    let uri = enrolment.uri();
    println!("Scan this QR code with an authenticator app (or enter the secret by hand):\n");
    println!("{}", totp::qr(&uri));
    println!(
        "{}\nsecret: {}\n",
        uri.as_str(),
        enrolment.base32().as_str()
    );
    print!("Enter the current 6-digit code to confirm: ");
    std::io::stdout().flush()?;
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the code")?;
    match ops::confirm_totp(&ops, &vault, enrolment, &line).await {
        Err(OpsError::Invalid { field: "code", .. }) => bail!(
            "that code does not match; nothing was changed (check the device clock and run this again)"
        ),
        other => other?,
    }
    println!("TOTP active for {name}");
    // The confirmation claimed this code's time step: a login with it is
    // refused as a replay, which a new user would not expect.
    println!(
        "The code just typed is used up: wait for the next code (up to 30 s) before logging in."
    );
    Ok(())
}

pub async fn source(config: &Config, cmd: SourceCmd) -> anyhow::Result<()> {
    let store = super::store(config, matches!(cmd, SourceCmd::List)).await?;
    let actor = cli_actor();
    match cmd {
        SourceCmd::Block {
            cidr,
            reason,
            minutes,
        } => {
            let net = parse_cidr(&cidr)
                .map_err(|e| anyhow::anyhow!(e))?
                .to_string();
            let now = now_ms();
            let expires_ms = minutes.map(|m| now + i64::from(m) * 60_000);
            store
                .add_source_block(&SourceBlock {
                    cidr: net.clone(),
                    reason: reason.clone(),
                    created_ms: now,
                    expires_ms,
                })
                .await?;
            audit::record(
                &store,
                AuditEvent::SourceBlocked {
                    cidr: net.clone(),
                    actor,
                    reason,
                },
            )
            .await?;
            println!("{net} blocked (a running bastion applies it within 2 s)");
        }
        SourceCmd::Unblock { cidr } => {
            let net = parse_cidr(&cidr)
                .map_err(|e| anyhow::anyhow!(e))?
                .to_string();
            store.remove_source_block(&net).await?;
            audit::record(
                &store,
                AuditEvent::SourceUnblocked {
                    cidr: net.clone(),
                    actor,
                },
            )
            .await?;
            println!("{net} unblocked");
        }
        SourceCmd::List => {
            for b in store.source_blocks().await? {
                let exp = b
                    .expires_ms
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "never".into());
                println!("{}\texpires={exp}\t{}", b.cidr, b.reason);
            }
        }
    }
    Ok(())
}
