//! `portcullis token create|list|revoke`: bearer tokens of the admin API.

use crate::audit::cli_actor;
use crate::config::Config;
use crate::grants::jit;
use crate::ops::{self, Ops, Scope};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token and print it once (only its hash is kept).
    Create {
        #[arg(long)]
        name: String,
        /// admin (everything), auditor (read-only), killswitch (locks, sessions) or scim (provisioning).
        #[arg(long, value_parser = ["admin", "auditor", "killswitch", "scim"])]
        scope: String,
        /// Lifetime (90s, 15m, 2h, 30d); none = until revoked.
        #[arg(long)]
        expires: Option<String>,
    },
    List,
    Revoke {
        id: String,
    },
}

pub async fn token(config: &Config, cmd: TokenCmd) -> anyhow::Result<()> {
    let store = super::store(config, matches!(cmd, TokenCmd::List)).await?;
    let ops = Ops::new(store, cli_actor());
    match cmd {
        TokenCmd::Create {
            name,
            scope,
            expires,
        } => {
            let scope = Scope::parse(&scope).ok_or_else(|| {
                anyhow::anyhow!("scope must be admin, auditor, killswitch or scim")
            })?;
            let expires = expires.as_deref().map(jit::parse_duration).transpose()?;
            let (info, text) = ops::create_token(&ops, &name, scope, expires).await?;
            eprintln!(
                "token {} ({}, scope {}) created; it is shown once:",
                info.id, info.name, info.scope
            );
            println!("{}", text.as_str());
        }
        TokenCmd::List => {
            for t in ops::list_tokens(&ops.store).await? {
                let state = if t.revoked_ms.is_some() {
                    "revoked".to_string()
                } else {
                    match t.expires_ms {
                        Some(e) => format!("expires_ms={e}"),
                        None => "no expiry".into(),
                    }
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    t.id, t.name, t.scope, t.created_by, state
                );
            }
        }
        TokenCmd::Revoke { id } => {
            ops::revoke_token(&ops, &id).await?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}
