//! Admin commands. Secrets are read from stdin or a file and never echoed.

use crate::app::now_ms;
use crate::audit::{self, AuditEvent, cli_actor};
use crate::auth::hash_password;
use crate::config::Config;
use crate::gateway::keys::parse_user_key;
use crate::names::Name;
use crate::session::credential_row;
use crate::store::{CredentialKind, TargetRecord};
use crate::upstream::{self, keys as upkeys};
use anyhow::{Context, bail};
use clap::{ArgGroup, Subcommand};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;
use zeroize::Zeroizing;

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user with a password and/or public keys.
    Add {
        name: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// Ask for a password on the terminal (no echo).
        #[arg(long, conflicts_with = "password_stdin")]
        password: bool,
        /// OpenSSH public key file; may be repeated.
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// A service account: public key only, exempt from MFA, no password.
        #[arg(long, conflicts_with_all = ["password", "password_stdin"], requires = "keys")]
        service: bool,
    },
    Remove {
        name: String,
    },
    List,
    /// Set or clear a user's password.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long, conflicts_with = "password_stdin")]
        clear: bool,
    },
    #[command(subcommand)]
    Key(KeyCmd),
    /// TOTP second factor: enroll, reset, remove.
    #[command(subcommand)]
    Totp(super::mfa::TotpCmd),
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    Add { name: String, file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    Add {
        name: String,
    },
    #[command(subcommand)]
    Member(MemberCmd),
}

#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    Add { group: String, user: String },
}

#[derive(Debug, Subcommand)]
pub enum TargetCmd {
    /// Add a target and pin its host key.
    #[command(group(ArgGroup::new("pin").args(["host_key", "host_key_file", "yes"])))]
    Add {
        name: String,
        #[arg(long)]
        host: String,
        #[arg(long, default_value_t = 22)]
        port: u16,
        /// The key to pin, as one OpenSSH line (e.g. from ssh-keyscan).
        #[arg(long)]
        host_key: Option<String>,
        /// File holding the key to pin (e.g. /etc/ssh/ssh_host_ed25519_key.pub).
        #[arg(long)]
        host_key_file: Option<PathBuf>,
        /// Pin the key the target shows now without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Add a TCP target (a database, a web console) reached by ssh -L/-W/-D.
    AddTcp {
        name: String,
        /// HOST:PORT the bastion connects to ([v6]:port for IPv6).
        address: String,
        /// Keep the forwarded bytes both ways in a signed recording.
        #[arg(long)]
        capture: bool,
    },
    Remove {
        name: String,
    },
    List,
    /// Keep (on) or not (off, the default) the contents of files moved over SFTP beside the
    /// recording, and of port forwards through this target (-L/-W on its sessions, -R) as
    /// signed captures.
    Capture {
        name: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Record terminal contents (full, the default) or only the session's
    /// markers: command, exit status, resizes, signals (metadata).
    Recording {
        name: String,
        #[arg(value_parser = ["full", "metadata"])]
        mode: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CredentialCmd {
    /// Store the credential the bastion uses for LOGIN on TARGET.
    #[command(group(ArgGroup::new("source").required(true).args(["password_stdin", "key_file", "key_stdin"])))]
    Set {
        target: String,
        login: String,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        key_file: Option<PathBuf>,
        #[arg(long)]
        key_stdin: bool,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum SessionCmd {
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Find sessions where a text was typed or printed.
    Search(super::recordings::SearchArgs),
    /// End a live session (wherever it runs) and refuse its channels.
    Kill {
        id: String,
        #[arg(long, default_value = "ended by an administrator")]
        reason: String,
    },
}

pub(super) fn name(s: &str) -> anyhow::Result<String> {
    Name::parse(s)
        .map(|n| n.to_string())
        .with_context(|| format!("invalid name {s:?}"))
}

fn read_stdin_line() -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading stdin")?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    if trimmed.is_empty() {
        bail!("empty password on stdin");
    }
    Ok(trimmed)
}

fn prompt_password() -> anyhow::Result<Zeroizing<String>> {
    let a = Zeroizing::new(rpassword::prompt_password("Password: ")?);
    let b = Zeroizing::new(rpassword::prompt_password("Again: ")?);
    if a != b {
        bail!("passwords differ");
    }
    if a.is_empty() {
        bail!("empty password");
    }
    Ok(a)
}

pub async fn user(config: &Config, cmd: UserCmd) -> anyhow::Result<()> {
    let store = super::store(config, matches!(cmd, UserCmd::List)).await?;
    match cmd {
        UserCmd::Totp(c) => return super::mfa::totp_cmd(config, c).await,
        UserCmd::Add {
            name: n,
            password_stdin,
            password,
            keys,
            service,
        } => {
            let n = name(&n)?;
            let pw = if password_stdin {
                Some(read_stdin_line()?)
            } else if password {
                Some(prompt_password()?)
            } else {
                None
            };
            let parsed = keys
                .iter()
                .map(read_key)
                .collect::<anyhow::Result<Vec<_>>>()?;
            if pw.is_none() && parsed.is_empty() {
                bail!("give --password, --password-stdin or --key: a user needs a way to log in");
            }
            let hash = pw.map(|p| hash_password(&p)).transpose()?;
            store.add_user(&n, hash.as_deref(), now_ms()).await?;
            for (fp, line) in &parsed {
                store.add_user_key(&n, fp, line).await?;
                println!("key {fp} added");
            }
            let event = AuditEvent::UserAdded {
                user: n.clone(),
                actor: cli_actor(),
                password: hash.is_some(),
                keys: parsed.into_iter().map(|(fp, _)| fp).collect(),
                service,
            };
            audit::record(&store, event).await?;
            if service {
                store.set_mfa_exempt(&n, true).await?;
                let event = AuditEvent::MfaExemption {
                    user: n.clone(),
                    actor: cli_actor(),
                    exempt: true,
                };
                audit::record(&store, event).await?;
                println!("user {n} added as a service account (public key only, no MFA)");
            } else {
                println!(
                    "user {n} added; enroll a second factor with `portcullis user totp enroll {n}`"
                );
            }
        }
        UserCmd::Remove { name: n } => {
            store.remove_user(&n).await?;
            let event = AuditEvent::UserRemoved {
                user: n.clone(),
                actor: cli_actor(),
            };
            audit::record(&store, event).await?;
            println!("user {n} removed");
        }
        UserCmd::List => {
            for u in store.list_users().await? {
                println!(
                    "{}\tpassword={}\tkeys={}",
                    u.name,
                    if u.has_password { "yes" } else { "no" },
                    u.key_count
                );
            }
        }
        UserCmd::Passwd {
            name: n,
            password_stdin,
            clear,
        } => {
            let exempt = store.user(&n).await?.is_some_and(|u| u.mfa_exempt);
            if exempt && !clear {
                bail!("{n} is a service account and cannot have a password");
            }
            let hash = if clear {
                None
            } else {
                let pw = if password_stdin {
                    read_stdin_line()?
                } else {
                    prompt_password()?
                };
                Some(hash_password(&pw)?)
            };
            store.set_password(&n, hash.as_deref()).await?;
            let event = AuditEvent::UserPasswordChanged {
                user: n.clone(),
                actor: cli_actor(),
                cleared: clear,
            };
            audit::record(&store, event).await?;
            println!("password for {n} {}", if clear { "cleared" } else { "set" });
        }
        UserCmd::Key(KeyCmd::Add { name: n, file }) => {
            let (fp, line) = read_key(&file)?;
            store.add_user_key(&n, &fp, &line).await?;
            let event = AuditEvent::UserKeyAdded {
                user: n.clone(),
                actor: cli_actor(),
                fingerprint: fp.clone(),
            };
            audit::record(&store, event).await?;
            println!("key {fp} added to {n}");
        }
    }
    Ok(())
}

fn read_key(path: &PathBuf) -> anyhow::Result<(String, String)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_user_key(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub async fn group(config: &Config, cmd: GroupCmd) -> anyhow::Result<()> {
    let (store, _) = super::open(config).await?;
    match cmd {
        GroupCmd::Add { name: n } => {
            let n = name(&n)?;
            store.add_group(&n).await?;
            let event = AuditEvent::GroupAdded {
                group: n.clone(),
                actor: cli_actor(),
            };
            audit::record(&store, event).await?;
            println!("group {n} added");
        }
        GroupCmd::Member(MemberCmd::Add { group, user }) => {
            store.add_member(&group, &user).await?;
            let event = AuditEvent::GroupMemberAdded {
                group: group.clone(),
                user: user.clone(),
                actor: cli_actor(),
            };
            audit::record(&store, event).await?;
            println!("{user} added to {group}");
        }
    }
    Ok(())
}

pub async fn target(config: &Config, cmd: TargetCmd) -> anyhow::Result<()> {
    let store = super::store(config, matches!(cmd, TargetCmd::List)).await?;
    match cmd {
        TargetCmd::Add {
            name: n,
            host,
            port,
            host_key,
            host_key_file,
            yes,
        } => {
            let n = name(&n)?;
            let line = match (host_key, host_key_file) {
                (Some(k), _) => k,
                (None, Some(f)) => std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?,
                (None, None) => {
                    fetch_and_confirm(&host, port, yes, config.upstream_connect_timeout).await?
                }
            };
            let key = upkeys::parse_public(&line).map_err(|e| anyhow::anyhow!("host key: {e}"))?;
            let t = TargetRecord {
                name: n.clone(),
                host,
                port,
                host_key: upkeys::to_openssh(&key),
            };
            store.add_target(&t, now_ms()).await?;
            let event = AuditEvent::TargetAdded {
                target: n.clone(),
                actor: cli_actor(),
                host: t.host.clone(),
                port,
                host_key: upkeys::fingerprint(&key),
            };
            audit::record(&store, event).await?;
            println!(
                "target {n} added, host key pinned: {}",
                upkeys::fingerprint(&key)
            );
        }
        TargetCmd::AddTcp {
            name: n,
            address,
            capture,
        } => {
            let n = name(&n)?;
            let (host, port) = host_port(&address)?;
            store
                .add_tcp_target(&n, &host, port, capture, now_ms())
                .await?;
            println!(
                "tcp target {n} added: {host}:{port}{}",
                if capture { " (contents captured)" } else { "" }
            );
        }
        TargetCmd::Capture { name: n, state } => {
            store.set_capture_files(&n, state == "on").await?;
            let event = AuditEvent::TargetCaptureSet {
                target: n.clone(),
                actor: cli_actor(),
                capture: state == "on",
            };
            audit::record(&store, event).await?;
            println!(
                "file contents for {n}: {}",
                if state == "on" {
                    "kept beside recordings (SFTP files, forwarded bytes)"
                } else {
                    "not kept"
                }
            );
        }
        TargetCmd::Recording { name: n, mode } => {
            let content = mode == "full";
            store.set_record_content(&n, content).await?;
            let event = AuditEvent::TargetRecordingSet {
                target: n.clone(),
                actor: cli_actor(),
                content,
            };
            audit::record(&store, event).await?;
            println!("sessions on {n}: {mode} recording");
        }
        TargetCmd::Remove { name: n } => {
            store.remove_target(&n).await?;
            let event = AuditEvent::TargetRemoved {
                target: n.clone(),
                actor: cli_actor(),
            };
            audit::record(&store, event).await?;
            println!("target {n} removed");
        }
        TargetCmd::List => {
            for k in store.kinded_targets().await? {
                let t = &k.target;
                let what = match k.kind {
                    crate::store::TargetKind::Tcp => "tcp".to_string(),
                    crate::store::TargetKind::Ssh => upkeys::parse_public(&t.host_key)
                        .map(|k| upkeys::fingerprint(&k))
                        .unwrap_or_else(|_| "invalid".into()),
                };
                println!("{}\t{}:{}\t{what}", t.name, t.host, t.port);
            }
        }
    }
    Ok(())
}

/// `HOST:PORT` or `[V6]:PORT`.
fn host_port(s: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = s
        .rsplit_once(':')
        .with_context(|| format!("{s:?} is not HOST:PORT"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || (host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err()) {
        bail!("{s:?} is not HOST:PORT");
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .with_context(|| format!("{s:?}: the port must be 1-65535"))?;
    Ok((host.to_string(), port))
}

async fn fetch_and_confirm(
    host: &str,
    port: u16,
    yes: bool,
    timeout: Duration,
) -> anyhow::Result<String> {
    let line = upstream::fetch_host_key(host, port, timeout).await?;
    let key = upkeys::parse_public(&line).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{host}:{port} presents host key {} {}",
        key.algorithm(),
        upkeys::fingerprint(&key)
    );
    if yes {
        return Ok(line);
    }
    if !std::io::stdin().is_terminal() {
        bail!("not pinning without confirmation: pass --yes, --host-key or --host-key-file");
    }
    print!("Pin this key? Compare it with the target's own `ssh-keygen -lf` output. [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("not pinned; target not added");
    }
    Ok(line)
}

pub async fn credential(config: &Config, cmd: CredentialCmd) -> anyhow::Result<()> {
    if let CredentialCmd::List = cmd {
        // Names and kinds only: no key needed, nothing opened for writing.
        for (t, l, k) in super::open_read(config).await?.list_credentials().await? {
            println!("{t}\t{l}\t{}", k.as_str());
        }
        return Ok(());
    }
    let (store, vault) = super::open(config).await?;
    match cmd {
        CredentialCmd::Set {
            target,
            login,
            password_stdin,
            key_file,
            key_stdin,
        } => {
            let login = name(&login)?;
            let (kind, secret) = if password_stdin {
                (CredentialKind::Password, read_stdin_line()?)
            } else {
                let text = match key_file {
                    Some(f) => Zeroizing::new(
                        std::fs::read_to_string(&f)
                            .with_context(|| format!("reading {}", f.display()))?,
                    ),
                    None => {
                        let mut s = Zeroizing::new(String::new());
                        std::io::stdin()
                            .read_to_string(&mut s)
                            .context("reading stdin")?;
                        s
                    }
                };
                let _ = key_stdin;
                upkeys::validate_private(&text).map_err(|e| anyhow::anyhow!(e))?;
                (CredentialKind::PrivateKey, text)
            };
            let purpose = crate::session::credential_purpose(kind);
            let sealed = vault.seal(purpose, &credential_row(&target, &login), secret.as_bytes());
            store
                .set_credential(&target, &login, kind, &sealed, now_ms())
                .await?;
            let event = AuditEvent::CredentialSet {
                target: target.clone(),
                login: login.clone(),
                kind: kind.as_str().to_string(),
                actor: cli_actor(),
            };
            audit::record(&store, event).await?;
            println!(
                "{} stored for {login} on {target} (encrypted)",
                kind.as_str()
            );
        }
        // Answered above, before anything was opened for writing.
        CredentialCmd::List => {}
    }
    Ok(())
}

pub async fn session(config: &Config, cmd: SessionCmd) -> anyhow::Result<()> {
    let SessionCmd::List { limit } = cmd else {
        return Ok(());
    };
    let store = super::open_read(config).await?;
    for s in store.list_sessions(limit).await? {
        println!(
            "{}\t{}\t{}\t{}@{}\tstart={}\tend={}\t{}\tup={}\tdown={}",
            s.id,
            s.user,
            s.source,
            s.login,
            s.target,
            s.started_ms,
            s.ended_ms
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            s.end_reason.unwrap_or_else(|| "live".into()),
            s.bytes_up,
            s.bytes_down
        );
    }
    Ok(())
}
