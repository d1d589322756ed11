//! Grants (with time windows, validity, session length, permissions, exec
//! lists) and just-in-time access requests.

use crate::audit::cli_actor;
use crate::config::Config;
use crate::grants::jit;
use crate::grants::{self, GrantSpec};
use crate::policy::Permissions;
use anyhow::bail;
use clap::{ArgGroup, Subcommand};

// Parsed once per process; boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum GrantCmd {
    /// Let a user or group reach a target as the given logins (first = default).
    #[command(group(ArgGroup::new("subject").required(true).args(["user", "group"])))]
    Add {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        target: String,
        /// Upstream logins (first = default); required for SSH targets, not used for TCP targets.
        #[arg(long = "login")]
        logins: Vec<String>,
        /// Valid from this instant (RFC 3339, e.g. 2026-12-01T08:00:00Z).
        #[arg(long)]
        from: Option<String>,
        /// Valid until this instant (RFC 3339).
        #[arg(long, conflicts_with = "for_")]
        until: Option<String>,
        /// Valid for this long from now (90s, 15m, 2h, 1d).
        #[arg(long = "for", id = "for_")]
        for_: Option<String>,
        /// Time windows, e.g. "mon-fri 08:00-18:00; sat 10:00-12:00".
        #[arg(long)]
        window: Option<String>,
        /// IANA time zone of the windows.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Longest a session may last (90s, 15m, 2h, 1d).
        #[arg(long)]
        max_session: Option<String>,
        /// What sessions may do: pty,shell,exec,sftp,local-forward,remote-forward,agent,x11.
        /// Default: pty,shell,exec,sftp (SSH targets), local-forward (TCP targets).
        #[arg(long)]
        allow: Option<String>,
        /// Exec commands allowed (glob, `*` and `?`); may be repeated. None = all not denied.
        #[arg(long = "exec-allow")]
        exec_allow: Vec<String>,
        /// Exec commands refused (glob); may be repeated. Wins over --exec-allow.
        #[arg(long = "exec-deny")]
        exec_deny: Vec<String>,
    },
    Remove {
        id: String,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum RequestCmd {
    /// Ask for access on behalf of USER (users without the CLI: `ssh USER@bastion request ...`).
    New {
        target: String,
        #[arg(long)]
        login: String,
        #[arg(long = "for")]
        duration: String,
        #[arg(long)]
        reason: String,
        #[arg(long = "as")]
        user: String,
    },
    /// Approve as the OS account running this command (it holds the database).
    Approve { id: String },
    /// Deny as the OS account running this command.
    Deny { id: String },
    List {
        #[arg(long)]
        pending: bool,
    },
}

pub async fn grant(config: &Config, cmd: GrantCmd) -> anyhow::Result<()> {
    let store = super::store(config, matches!(cmd, GrantCmd::List)).await?;
    match cmd {
        GrantCmd::Add {
            user,
            group,
            target,
            logins,
            from,
            until,
            for_,
            window,
            tz,
            max_session,
            allow,
            exec_allow,
            exec_deny,
        } => {
            let (logins, allow) = tcp_defaults(&store, &target, logins, allow).await?;
            let spec = GrantSpec {
                user,
                group,
                target,
                logins,
                from,
                until,
                for_,
                window,
                tz,
                max_session,
                allow,
                exec_allow,
                exec_deny,
            };
            let g = grants::add(&store, &spec, &cli_actor()).await?;
            println!("grant {} added: {}", g.id, grants::describe(&g));
        }
        GrantCmd::Remove { id } => {
            grants::remove(&store, &id, &cli_actor()).await?;
            println!("grant {id} removed (live sessions it allowed end within seconds)");
        }
        GrantCmd::List => {
            for g in store.list_grants().await? {
                println!("{}\t{}", g.id, grants::describe(&g));
            }
        }
    }
    Ok(())
}

/// Logins and permissions by target kind: a TCP target has no login (a
/// placeholder keeps the grant well-formed) and needs `local-forward`.
async fn tcp_defaults(
    store: &crate::store::Store,
    target: &str,
    logins: Vec<String>,
    allow: Option<String>,
) -> anyhow::Result<(Vec<String>, String)> {
    let tcp = store.target_kind(target).await? == Some(crate::store::TargetKind::Tcp);
    if !tcp {
        if logins.is_empty() {
            bail!("give --login: {target} is an SSH target");
        }
        return Ok((
            logins,
            allow.unwrap_or_else(|| "pty,shell,exec,sftp".into()),
        ));
    }
    let allow = allow.unwrap_or_else(|| "local-forward".into());
    if !Permissions::parse(&allow)
        .map_err(|e| anyhow::anyhow!(e))?
        .local_forward
    {
        bail!("{target} is a TCP target: its grants need local-forward in --allow");
    }
    let logins = if logins.is_empty() {
        vec!["tcp".to_string()]
    } else {
        logins
    };
    Ok((logins, allow))
}

fn cli_approver<'a>(actor: &'a str, name: &'a str) -> jit::Approver<'a> {
    jit::Approver::Admin { actor, name }
}

pub async fn request(config: &Config, cmd: RequestCmd) -> anyhow::Result<()> {
    let store = super::store(config, matches!(cmd, RequestCmd::List { .. })).await?;
    let group = &config.access.approvers_group;
    let actor = crate::audit::cli_actor();
    let name = crate::audit::cli_account();
    match cmd {
        RequestCmd::New {
            target,
            login,
            duration,
            reason,
            user,
        } => {
            let secs = jit::parse_duration(&duration)?;
            let q = jit::request(
                &store,
                jit::Requester {
                    user: &user,
                    actor: &actor,
                },
                &target,
                &login,
                secs,
                config.access.max_request_secs,
                &reason,
            )
            .await?;
            println!(
                "request {} pending: {} -> {} as {} for {}s",
                q.id, q.user, q.target, q.login, q.duration_secs
            );
        }
        RequestCmd::Approve { id } => {
            let g = jit::decide(&store, &id, cli_approver(&actor, &name), group, true).await?;
            println!(
                "request {id} approved; grant {} added",
                g.map(|g| g.id).unwrap_or_default()
            );
        }
        RequestCmd::Deny { id } => {
            jit::decide(&store, &id, cli_approver(&actor, &name), group, false).await?;
            println!("request {id} denied");
        }
        RequestCmd::List { pending } => {
            for q in store.list_requests(pending.then_some("pending")).await? {
                println!(
                    "{}\t{}\t{} -> {} as {}\t{}s\t{}\t{}",
                    q.id,
                    q.state,
                    q.user,
                    q.target,
                    q.login,
                    q.duration_secs,
                    q.reason,
                    q.decided_by.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}
