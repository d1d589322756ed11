//! `portcullis kek new|status|rewrap`: rotating the key-encryption key.
//!
//! Without downtime, across nodes sharing a database:
//! 1. `kek new FILE`, copy FILE to every node, list it in
//!    `accepted_kek_files` and restart the nodes one by one: every node can
//!    now open secrets under either key.
//! 2. Make FILE the `kek_file` and the old key the accepted one, node by
//!    node: new secrets are sealed under FILE.
//! 3. `kek rewrap`: every stored data key is re-sealed under FILE.
//! 4. `kek status` shows nothing left under the old key; drop it.

use crate::audit::{self, AuditEvent, cli_actor};
use crate::config::Config;
use crate::store::{Sealed, SealedRow, Store};
use crate::vault::{self, Purpose, Vault};
use clap::Subcommand;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum KekCmd {
    /// Write a new random key (mode 0600) to FILE; never overwrites.
    New { file: PathBuf },
    /// How many stored secrets each key seals, and which keys are loaded.
    Status,
    /// Re-seal every stored secret's data key under the current kek_file.
    Rewrap,
}

pub async fn run(config: &Config, cmd: KekCmd) -> anyhow::Result<()> {
    match cmd {
        KekCmd::New { file } => {
            let id = vault::create_key_file(&file)?;
            println!("{id}");
            eprintln!(
                "wrote key {id} to {}: list it in accepted_kek_files on every node first, then make it kek_file",
                file.display()
            );
            Ok(())
        }
        KekCmd::Status => {
            let store = super::open_read(config).await?;
            let vault = super::vault_read(config)?;
            status(&vault, &store.sealed_secrets().await?);
            Ok(())
        }
        KekCmd::Rewrap => {
            let (store, vault) = super::open(config).await?;
            let secrets = store.sealed_secrets().await?;
            rewrap(&store, &vault, &secrets).await
        }
    }
}

fn status(vault: &Vault, secrets: &[Sealed]) {
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    for s in secrets {
        let id = vault::kek_id_of(&s.sealed).unwrap_or_else(|| "malformed".into());
        *by_key.entry(id).or_default() += 1;
    }
    by_key.entry(vault.id().to_string()).or_default();
    for (id, n) in by_key {
        let state = if id == vault.id() {
            "current (seals)"
        } else if vault.knows(&id) {
            "accepted (opens)"
        } else {
            "NOT LOADED: these secrets cannot be opened"
        };
        println!("{id}\t{n}\t{state}");
    }
}

async fn rewrap(store: &Store, vault: &Vault, secrets: &[Sealed]) -> anyhow::Result<()> {
    // Nothing is changed unless every key needed is at hand.
    let missing: Vec<String> = secrets
        .iter()
        .filter_map(|s| vault::kek_id_of(&s.sealed))
        .filter(|id| !vault.knows(id))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "secrets are sealed under key(s) {} that are not loaded: list their files in accepted_kek_files; nothing was changed",
            dedup(missing).join(", ")
        );
    }
    let (mut done, mut current, mut failed) = (0usize, 0usize, Vec::new());
    for s in secrets {
        let (purpose, row) = purpose_and_row(&s.row);
        match vault.rewrap(purpose, &row, &s.sealed) {
            Ok(None) => current += 1,
            Ok(Some(new)) => {
                if store.replace_sealed(&s.row, &s.sealed, &new).await? {
                    done += 1;
                } else {
                    // Set anew meanwhile, so sealed under the current key.
                    current += 1;
                }
            }
            Err(e) => failed.push(format!("{}: {e}", describe(&s.row))),
        }
    }
    audit::record(
        store,
        AuditEvent::KekRewrapped {
            actor: cli_actor(),
            kek_id: vault.id().to_string(),
            count: done,
        },
    )
    .await?;
    println!("re-wrapped {done}; already under {}: {current}", vault.id());
    if failed.is_empty() {
        // Every secret is under this key now, so it is the cluster's KEK: a
        // node started with only this file is no stranger (one still on the
        // old file is told to fetch this one).
        store
            .set_cluster_key("kek_file", vault.id(), &cli_actor(), crate::clock::now_ms())
            .await?;
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} secret(s) do not open and were left as they are (tampered, or moved between rows):\n{}",
            failed.len(),
            failed.join("\n")
        );
    }
    Ok(())
}

fn purpose_and_row(row: &SealedRow) -> (Purpose, String) {
    match row {
        SealedRow::Credential {
            target,
            login,
            kind,
        } => (
            crate::session::credential_purpose(*kind),
            crate::session::credential_row(target, login),
        ),
        SealedRow::Totp { user } => (Purpose::TotpSecret, crate::auth::totp::row(user)),
    }
}

fn describe(row: &SealedRow) -> String {
    match row {
        SealedRow::Credential { target, login, .. } => format!("credential {login}@{target}"),
        SealedRow::Totp { user } => format!("TOTP secret of {user}"),
    }
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}
