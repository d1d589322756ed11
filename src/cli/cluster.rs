//! `serve` as one node of several on one database (issue 19): the node's
//! identity and run, the check that every node holds the same shared keys,
//! and the heartbeat.

use crate::app::App;
use crate::clock::now_ms;
use crate::config::Config;
use crate::store::Store;
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;

/// The node's name (`cluster.node_name`, else the data directory's id) and
/// the data directory's id: a random id kept in `node-id` there, created
/// once. A second server on the directory is refused by its lock, so a
/// run with the same directory id is gone once this one holds the lock.
pub fn node_name(config: &Config) -> anyhow::Result<(String, String)> {
    let dir_id = dir_id(config)?;
    let name = config.cluster.node_name.clone().unwrap_or(dir_id.clone());
    Ok((name, dir_id))
}

fn dir_id(config: &Config) -> anyhow::Result<String> {
    let path = config.data_dir.join("node-id");
    let fresh = format!("node-{}", &crate::ids::new_id()[..12]);
    match crate::secret_file::write_new(&path, format!("{fresh}\n").as_bytes()) {
        Ok(()) => Ok(fresh),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let name = text.trim().to_string();
            anyhow::ensure!(
                !name.is_empty(),
                "{} is empty: delete it (a new node id is made) or set cluster.node_name",
                path.display()
            );
            Ok(name)
        }
        Err(e) => Err(anyhow::anyhow!("writing {}: {e}", path.display())),
    }
}

/// Starts this run: first makes sure no live node has this node's name.
/// An earlier run of the name that still has a fresh heartbeat is watched:
/// if its heartbeat moves, another node is using the name (a configured
/// `node_name` twice, or a copied data directory and its `node-id`) and
/// this one refuses to start. One from another data directory is waited
/// out until it expires; one from this data directory (its lock says it is
/// gone, unless the directory was copied) for two heartbeats at most, and
/// not at all on SQLite (a database no other host shares). Then writes the
/// run's row and gives the store the run id for new rows.
pub async fn start_run(
    config: &Config,
    store: &Store,
    node: &str,
    dir_id: &str,
) -> anyhow::Result<String> {
    let run = crate::ids::new_id();
    let expiry = i64::try_from(config.cluster.node_expiry.as_millis()).unwrap_or(i64::MAX);
    let local = config.database_url.starts_with("sqlite:");
    let patience = heartbeat_every(config) * 2 + Duration::from_secs(1);
    let began = std::time::Instant::now();
    let mut seen: std::collections::HashMap<String, i64> = Default::default();
    loop {
        let beating: Vec<_> = store
            .node_runs_up(&run)
            .await?
            .into_iter()
            .filter(|r| r.node == node && r.heartbeat_ms >= now_ms() - expiry)
            .filter(|r| !(local && r.dir_id == dir_id))
            .collect();
        if let Some(r) = beating
            .iter()
            .find(|r| seen.get(&r.run_id).is_some_and(|s| r.heartbeat_ms > *s))
        {
            if r.dir_id == dir_id {
                anyhow::bail!(
                    "another running node has this data directory's node id {node:?} (its \
                     heartbeat goes on): was the data directory copied? Delete node-id in one \
                     of them (a new id is made) and start again"
                );
            }
            anyhow::bail!(
                "another running node is named {node:?} (its heartbeat goes on): every node \
                 needs its own cluster.node_name"
            );
        }
        let waiting = beating
            .iter()
            .any(|r| r.dir_id != dir_id || began.elapsed() < patience);
        if !waiting {
            break;
        }
        if seen.is_empty() {
            tracing::warn!(
                node,
                "an earlier run of this node still has a fresh heartbeat; watching it before starting"
            );
        }
        for r in &beating {
            seen.insert(r.run_id.clone(), r.heartbeat_ms);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    store.node_started(&run, node, dir_id, now_ms()).await?;
    store.set_node(node, &run);
    tracing::info!(node, run = %run, "node started");
    Ok(run)
}

/// Every node must hold the same KEK, audit key, audit chain key and host
/// CA. The database keeps a public fingerprint of each (a MAC made with the
/// key for the symmetric ones, never the key); the first node records them,
/// and a node whose key differs does not start.
pub async fn check_shared_keys(
    config: &Config,
    store: &Store,
    node: &str,
    dir_id: &str,
    vault: &crate::vault::Vault,
    audit_key: &crate::castfile::SigningKey,
    host_ca: &crate::gateway::hostca::HostCa,
) -> anyhow::Result<()> {
    use sha2::Digest;
    let chain = crate::audit::ChainKey::load(&config.audit_chain_key_file)?;
    let audit_pub = hex::encode(&sha2::Sha256::digest(audit_key.verifying_key().as_bytes())[..16]);
    let checks = [
        ("audit_key_file", &config.audit_key_file, audit_pub),
        (
            "audit_chain_key_file",
            &config.audit_chain_key_file,
            chain.check_value(),
        ),
    ];
    let now = now_ms();
    for (name, path, mine) in checks {
        let (recorded, by) = store.cluster_key(name, &mine, node, now).await?;
        if recorded != mine {
            anyhow::bail!(
                "{name} {} is not the key this cluster's database was first used with \
                 (recorded by node {by:?}): every node on one database must share the same \
                 {name}; copy that node's file here (or point {name} at the shared copy) \
                 and start again",
                path.display()
            );
        }
    }
    // Nothing in the database is sealed with the host CA: a new one (the
    // README's answer to a leak: remove the file, restart every node) is
    // refused only while a node with the old one is alive.
    let ca = crate::gateway::keys::fingerprint(host_ca.public_key());
    let (recorded, by) = store.cluster_key("host_ca_file", &ca, node, now).await?;
    if recorded != ca {
        let expiry = i64::try_from(config.cluster.node_expiry.as_millis()).unwrap_or(i64::MAX);
        let alive: Vec<String> = store
            .node_runs_up("")
            .await?
            .into_iter()
            .filter(|r| r.dir_id != dir_id && r.heartbeat_ms >= now - expiry)
            .map(|r| r.node)
            .collect();
        if !alive.is_empty() {
            anyhow::bail!(
                "host_ca_file {} is not the host CA of the running nodes ({}; recorded by node \
                 {by:?}): every node on one database must share the same host_ca_file; copy \
                 it from a running node (to change the CA, stop every node, replace the file on \
                 each, then start them)",
                config.host_ca_file.display(),
                alive.join(", ")
            );
        }
        tracing::warn!(fingerprint = %ca, "a new host CA: users must replace their @cert-authority line");
        store
            .set_cluster_key("host_ca_file", &ca, node, now)
            .await?;
    }
    // The KEK may move on by rotation: a node whose accepted keys include
    // the recorded one moves the record to its KEK.
    let (recorded, by) = store.cluster_key("kek_file", vault.id(), node, now).await?;
    if recorded != vault.id() {
        if vault.knows(&recorded) {
            tracing::warn!(from = %recorded, to = %vault.id(), "the cluster's KEK moves on (rotation)");
            store
                .set_cluster_key("kek_file", vault.id(), node, now)
                .await?;
        } else {
            anyhow::bail!(
                "kek_file {} (key id {}) is not the key-encryption key this cluster's database \
                 uses (key id {recorded}, recorded by node {by:?}): every node on one database \
                 must share the same kek_file; copy it from that node (during a rotation, list \
                 the other key in accepted_kek_files) and start again",
                config.kek_file.display(),
                vault.id()
            );
        }
    }
    Ok(())
}

/// How often this node writes its heartbeat (and looks for silent nodes).
pub fn heartbeat_every(config: &Config) -> Duration {
    (config.cluster.node_expiry / 3).min(Duration::from_secs(5))
}

/// Beats until `shutdown`; cancels `fatal` when this run was declared dead.
pub async fn heartbeats(
    app: Arc<App>,
    shutdown: tokio_util::sync::CancellationToken,
    fatal: tokio_util::sync::CancellationToken,
) {
    let mut every = tokio::time::interval(heartbeat_every(&app.config));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => if !beat(&app).await {
                fatal.cancel();
            },
            _ = shutdown.cancelled() => break,
        }
    }
}

/// One heartbeat: refreshed, then silent nodes claimed and closed. `false`
/// when another node declared this run dead (closed its sessions and
/// sealed its recordings): the caller stops serving (fail closed).
pub async fn beat(app: &Arc<App>) -> bool {
    let Some(me) = &app.node else { return true };
    match app.store.node_heartbeat(&me.run, now_ms()).await {
        Ok(true) => app.db.beat(),
        Ok(false) => {
            tracing::error!(node = %me.node, run = %me.run, "another node declared this node dead and closed its sessions; stopping");
            return false;
        }
        // A database hiccup: the next beat tries again.
        Err(e) => tracing::warn!(error = %e, "heartbeat not written"),
    }
    crate::recorder::reap(app, false).await;
    true
}
