//! Admin commands. Secrets are read from stdin or a file and never echoed.

use crate::audit::cli_actor;
use crate::config::Config;
use crate::gateway::keys::parse_user_key;
use crate::names::Name;
use crate::ops::{self, Ops};
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
    Add {
        group: String,
        user: String,
    },
    /// Takes the user out of the group: its grants stop reaching them, and
    /// a console role it gave ends at their next request.
    #[command(alias = "rm")]
    Remove {
        group: String,
        user: String,
    },
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

/// The CLI's door onto `crate::ops`: the change is made as the OS account.
pub(super) fn door(store: crate::store::Store) -> Ops {
    Ops::new(store, cli_actor())
}

pub async fn user(config: &Config, cmd: UserCmd) -> anyhow::Result<()> {
    let store = super::store(config, matches!(cmd, UserCmd::List)).await?;
    let ops = door(store.clone());
    match cmd {
        UserCmd::Totp(c) => return super::mfa::totp_cmd(config, c).await,
        UserCmd::Add {
            name: n,
            password_stdin,
            password,
            keys,
            service,
        } => {
            let password = if password_stdin {
                Some(read_stdin_line()?)
            } else if password {
                Some(prompt_password()?)
            } else {
                None
            };
            if password.is_none() && keys.is_empty() {
                bail!("give --password, --password-stdin or --key: a user needs a way to log in");
            }
            let keys = keys.iter().map(read_key).collect::<anyhow::Result<_>>()?;
            let new = ops::NewUser {
                name: n,
                password,
                keys,
                service,
            };
            let added = ops::add_user(&ops, new).await?;
            for fp in &added.fingerprints {
                println!("key {fp} added");
            }
            let n = added.name;
            if service {
                println!("user {n} added as a service account (public key only, no MFA)");
            } else {
                println!(
                    "user {n} added; enroll a second factor with `portcullis user totp enroll {n}`"
                );
            }
        }
        UserCmd::Remove { name: n } => {
            ops::remove_user(&ops, &n).await?;
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
            let password = match (clear, password_stdin) {
                (true, _) => None,
                (false, true) => Some(read_stdin_line()?),
                (false, false) => Some(prompt_password()?),
            };
            ops::set_password(&ops, &n, password).await?;
            println!("password for {n} {}", if clear { "cleared" } else { "set" });
        }
        UserCmd::Key(KeyCmd::Add { name: n, file }) => {
            let fp = ops::add_key(&ops, &n, &read_key(&file)?).await?;
            println!("key {fp} added to {n}");
        }
    }
    Ok(())
}

/// A public key file's text, checked here so a bad one is named by its path.
fn read_key(path: &PathBuf) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_user_key(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(text)
}

pub async fn group(config: &Config, cmd: GroupCmd) -> anyhow::Result<()> {
    let (store, _) = super::open(config).await?;
    let ops = door(store);
    match cmd {
        GroupCmd::Add { name: n } => {
            let n = ops::add_group(&ops, &n).await?;
            println!("group {n} added");
        }
        GroupCmd::Member(MemberCmd::Add { group, user }) => {
            ops::add_member(&ops, &group, &user).await?;
            println!("{user} added to {group}");
        }
        GroupCmd::Member(MemberCmd::Remove { group, user }) => {
            ops::remove_member(&ops, &group, &user).await?;
            println!("{user} removed from {group}");
        }
    }
    Ok(())
}

pub async fn target(config: &Config, cmd: TargetCmd) -> anyhow::Result<()> {
    let store = super::store(config, matches!(cmd, TargetCmd::List)).await?;
    let ops = door(store.clone());
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
            let host_key = match (host_key, host_key_file) {
                (Some(k), _) => k,
                (None, Some(f)) => std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?,
                (None, None) => {
                    fetch_and_confirm(&host, port, yes, config.upstream_connect_timeout).await?
                }
            };
            let new = ops::NewSshTarget {
                name: n.clone(),
                host,
                port,
                host_key,
            };
            let t = ops::add_ssh_target(&ops, new).await?;
            let fp = upkeys::parse_public(&t.host_key)
                .map(|k| upkeys::fingerprint(&k))
                .unwrap_or_default();
            println!("target {n} added, host key pinned: {fp}");
        }
        TargetCmd::AddTcp {
            name: n,
            address,
            capture,
        } => {
            let (host, port) = host_port(&address)?;
            let new = ops::NewTcpTarget {
                name: n.clone(),
                host: host.clone(),
                port,
                capture,
            };
            ops::add_tcp_target(&ops, new).await?;
            println!(
                "tcp target {n} added: {host}:{port}{}",
                if capture { " (contents captured)" } else { "" }
            );
        }
        TargetCmd::Capture { name: n, state } => {
            ops::set_capture(&ops, &n, state == "on").await?;
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
            ops::set_recording(&ops, &n, mode == "full").await?;
            println!("sessions on {n}: {mode} recording");
        }
        TargetCmd::Remove { name: n } => {
            ops::remove_target(&ops, &n).await?;
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
            key_stdin: _,
        } => {
            let secret = if password_stdin {
                ops::Secret::Password(read_stdin_line()?)
            } else {
                ops::Secret::PrivateKey(match key_file {
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
                })
            };
            let new = ops::NewCredential {
                target: target.clone(),
                login: login.clone(),
                secret,
            };
            let kind = ops::set_credential(&door(store), &vault, new).await?;
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
            "{}\t{}\t{}\t{}@{}\tstart={}\tend={}\t{}\tup={}\tdown={}\tkind={}",
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
            s.bytes_down,
            s.kind.as_str()
        );
    }
    Ok(())
}
