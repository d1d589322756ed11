//! `portcullis token create|list|revoke`: bearer tokens of the admin API.

use crate::admin::tokens::{self, Scope};
use crate::audit::cli_actor;
use crate::config::Config;
use crate::grants::jit;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token and print it once (only its hash is kept).
    Create {
        #[arg(long)]
        name: String,
        /// admin (everything), auditor (read-only) or killswitch (locks, sessions).
        #[arg(long, value_parser = ["admin", "auditor", "killswitch"])]
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
    match cmd {
        TokenCmd::Create {
            name,
            scope,
            expires,
        } => {
            let scope = Scope::parse(&scope)
                .ok_or_else(|| anyhow::anyhow!("scope must be admin, auditor or killswitch"))?;
            let expires = expires.as_deref().map(jit::parse_duration).transpose()?;
            let (info, text) = tokens::create(&store, &name, scope, expires, &cli_actor()).await?;
            eprintln!(
                "token {} ({}, scope {}) created; it is shown once:",
                info.id, info.name, info.scope
            );
            println!("{}", text.as_str());
        }
        TokenCmd::List => {
            for t in tokens::list(&store).await? {
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
            tokens::revoke(&store, &id, &cli_actor()).await?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}
