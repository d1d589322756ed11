//! Single sign-on with the organisation's OpenID Providers (issue 18):
//! the relying party (`client`, through the `openidconnect` crate), the
//! sign-ins under way (`links`), and the identity a finished one yields —
//! the IdP's subject, the bastion username from the configured claim, and
//! the bastion groups its groups claim maps to.
//!
//! Two doors use it: the console (`admin::sso`: a button, the callback)
//! and SSH (`gateway::sso`: a one-time link to the bastion's own page in
//! the keyboard-interactive prompt). Neither writes anything here; they
//! audit and apply the group mapping through `ops`.
//!
//! The client secret is read from its file once, kept in the `Rp`, and
//! never formatted: no error of this module carries it.

pub mod client;
pub mod links;

use crate::config::SsoConfig;
use crate::sync::MutexExt;
use links::{Flow, LinkState, LinkView, Purpose, Table};
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("SSO configuration: {0}")]
    Config(String),
    #[error("no identity provider named {0:?}")]
    NoProvider(String),
    /// The IdP did not answer (or not sensibly): SSO fails closed.
    #[error(
        "the identity provider {0:?} cannot be reached; SSO sign-in is unavailable (local accounts still work)"
    )]
    Unreachable(String),
    #[error("{0}")]
    Refused(&'static str),
    /// The ID token failed a check (signature, issuer, audience, expiry, nonce).
    #[error("the identity provider's answer was refused: {0}")]
    Token(String),
    #[error("{0}")]
    Link(&'static str),
    #[error("this sign-in is unknown or expired; start again")]
    UnknownState,
    #[error("the identity provider's answer has no usable {0:?} claim")]
    Claim(String),
    #[error(
        "signed in at the identity provider as {signed_in:?}, but this sign-in is for {expected:?}"
    )]
    WrongUser { signed_in: String, expected: String },
}

/// A refused callback: what it was for, as far as known, and why.
#[derive(Debug)]
pub struct Refused {
    /// Empty when the sign-in itself is unknown.
    pub provider: String,
    pub purpose: &'static str,
    pub error: SsoError,
}

/// Who the IdP says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub provider: String,
    /// The IdP's `sub`.
    pub subject: String,
    /// The bastion username, from the configured claim.
    pub username: String,
    /// The bastion groups the IdP's groups map to.
    pub groups: Vec<String>,
    /// Every bastion group the provider's mapping manages.
    pub managed: Vec<String>,
}

/// A link handed to an SSH connection.
pub struct Issued {
    pub token: String,
    pub url: String,
    pub code: String,
    pub rx: watch::Receiver<LinkState>,
}

pub struct Sso {
    pub cfg: SsoConfig,
    rps: Vec<client::Rp>,
    table: Mutex<Table>,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex::encode(b)
}

/// A short code to compare by eye: 6 characters without look-alikes.
fn short_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    let c: String = b
        .iter()
        .map(|x| char::from(ALPHABET[usize::from(*x) % ALPHABET.len()]))
        .collect();
    format!("{}-{}", &c[..3], &c[3..])
}

/// Equal-length comparison whose time does not depend on where bytes differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn binding_hash(cookie: &str) -> String {
    hex::encode(Sha256::digest(cookie.as_bytes()))
}

impl Sso {
    /// Reads every provider's client secret file; a missing or empty one
    /// stops the start (the secret itself is never in the error).
    pub fn new(cfg: &SsoConfig) -> Result<Sso, SsoError> {
        let mut rps = Vec::new();
        for p in &cfg.providers {
            let secret = std::fs::read_to_string(&p.client_secret_file).map_err(|e| {
                SsoError::Config(format!(
                    "provider {:?}: client_secret_file {}: {e}",
                    p.name,
                    p.client_secret_file.display()
                ))
            })?;
            let secret = secret.trim().to_string();
            if secret.is_empty() {
                return Err(SsoError::Config(format!(
                    "provider {:?}: client_secret_file {} is empty",
                    p.name,
                    p.client_secret_file.display()
                )));
            }
            let redirect = format!("{}/sso/callback", cfg.public_url);
            rps.push(client::Rp::new(p.clone(), secret, &redirect)?);
        }
        Ok(Sso {
            cfg: cfg.clone(),
            rps,
            table: Mutex::new(Table::default()),
        })
    }

    /// Configured but without providers: every SSO sign-in fails closed.
    pub fn unavailable(cfg: &SsoConfig) -> Sso {
        Sso {
            cfg: cfg.clone(),
            rps: Vec::new(),
            table: Mutex::new(Table::default()),
        }
    }

    pub fn provider_names(&self) -> Vec<String> {
        self.rps.iter().map(|r| r.cfg.name.clone()).collect()
    }

    fn rp(&self, name: &str) -> Result<&client::Rp, SsoError> {
        self.rps
            .iter()
            .find(|r| r.cfg.name == name)
            .ok_or_else(|| SsoError::NoProvider(name.to_string()))
    }

    /// Starts a sign-in: the IdP URL to redirect to. `binding` is the
    /// value of the cookie the door sets on the same answer; the callback
    /// must present it (a sign-in finishes in the browser that began it).
    pub async fn begin(
        &self,
        provider: &str,
        purpose: Purpose,
        binding: &str,
    ) -> Result<String, SsoError> {
        let rp = self.rp(provider)?;
        let s = rp.start().await?;
        let flow = Flow {
            provider: provider.to_string(),
            nonce: s.nonce,
            pkce_verifier: s.pkce_verifier,
            purpose,
            binding: binding_hash(binding),
            created: Instant::now(),
        };
        self.table
            .lock_or_recover()
            .put_flow(s.state, flow, self.cfg.link_ttl, Instant::now());
        Ok(s.url)
    }

    /// The callback: the flow of `state` (once), from the browser that
    /// began it, the code exchanged and the ID token checked; for an SSH
    /// link, the IdP's user must be the link's user (else the link fails).
    pub async fn finish(
        &self,
        state: &str,
        code: &str,
        binding: Option<&str>,
    ) -> Result<(Purpose, Identity), Refused> {
        let flow = self
            .table
            .lock_or_recover()
            .take_flow(state, self.cfg.link_ttl, Instant::now())
            .ok_or(Refused {
                provider: String::new(),
                purpose: "",
                error: SsoError::UnknownState,
            })?;
        let refused = |error| Refused {
            provider: flow.provider.clone(),
            purpose: match flow.purpose {
                Purpose::Console => "console",
                Purpose::Ssh { .. } => "ssh",
            },
            error,
        };
        let same_browser =
            binding.is_some_and(|b| ct_eq(binding_hash(b).as_bytes(), flow.binding.as_bytes()));
        let result = if same_browser {
            self.identity(&flow, code).await
        } else {
            Err(SsoError::Refused(
                "this sign-in was started in another browser; start again",
            ))
        };
        if let Purpose::Ssh { link } = &flow.purpose {
            let checked = result.and_then(|id| {
                let expected = self.table.lock_or_recover().user_of(
                    link,
                    self.cfg.link_ttl,
                    Instant::now(),
                )?;
                if id.username == expected {
                    Ok(id)
                } else {
                    Err(SsoError::WrongUser {
                        signed_in: id.username,
                        expected,
                    })
                }
            });
            return match checked {
                Ok(id) => Ok((flow.purpose, id)),
                Err(e) => {
                    self.link_complete(link, LinkState::Failed(e.to_string()));
                    Err(refused(e))
                }
            };
        }
        match result {
            Ok(id) => Ok((flow.purpose, id)),
            Err(e) => Err(refused(e)),
        }
    }

    async fn identity(&self, flow: &Flow, code: &str) -> Result<Identity, SsoError> {
        let rp = self.rp(&flow.provider)?;
        let claims = rp.finish(code, &flow.nonce, &flow.pkce_verifier).await?;
        identity_from(&rp.cfg, &claims)
    }

    /// A link for an SSH connection past its public key.
    pub fn issue_link(&self, provider: &str, user: &str, source: &str) -> Issued {
        let token = random_hex(32);
        let code = short_code();
        let view = LinkView {
            user: user.to_string(),
            source: source.to_string(),
            code: code.clone(),
            provider: provider.to_string(),
        };
        let rx = self.table.lock_or_recover().issue(
            token.clone(),
            view,
            self.cfg.link_ttl,
            Instant::now(),
        );
        Issued {
            url: format!("{}/sso/ssh/{token}", self.cfg.public_url),
            token,
            code,
            rx,
        }
    }

    pub fn link_view(&self, token: &str) -> Result<LinkView, SsoError> {
        self.table
            .lock_or_recover()
            .view(token, self.cfg.link_ttl, Instant::now())
    }

    /// Opens the link (once) and starts its sign-in at the IdP.
    pub async fn link_begin(&self, token: &str, binding: &str) -> Result<String, SsoError> {
        let view = self
            .table
            .lock_or_recover()
            .open(token, self.cfg.link_ttl, Instant::now())?;
        let r = self
            .begin(
                &view.provider,
                Purpose::Ssh {
                    link: token.to_string(),
                },
                binding,
            )
            .await;
        if let Err(e) = &r {
            self.link_complete(token, LinkState::Failed(e.to_string()));
        }
        r
    }

    pub fn link_complete(&self, token: &str, state: LinkState) {
        self.table.lock_or_recover().complete(token, state);
    }

    pub fn link_forget(&self, token: &str) {
        self.table.lock_or_recover().forget(token);
    }
}

/// The identity in verified claims, by the provider's configured claims.
pub fn identity_from(
    p: &crate::config::sso::Provider,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<Identity, SsoError> {
    let subject = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SsoError::Claim("sub".into()))?;
    let username = claims
        .get(&p.username_claim)
        .and_then(|v| v.as_str())
        .filter(|u| crate::names::Name::parse(u).is_ok())
        .ok_or_else(|| SsoError::Claim(p.username_claim.clone()))?;
    let idp_groups: Vec<&str> = match claims.get(&p.groups_claim) {
        None => Vec::new(),
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
        Some(serde_json::Value::String(s)) => vec![s.as_str()],
        Some(_) => return Err(SsoError::Claim(p.groups_claim.clone())),
    };
    let mut groups: Vec<String> = p
        .groups
        .iter()
        .filter(|(idp, _)| idp_groups.contains(&idp.as_str()))
        .map(|(_, ours)| ours.clone())
        .collect();
    groups.sort();
    groups.dedup();
    let mut managed: Vec<String> = p.groups.values().cloned().collect();
    managed.sort();
    managed.dedup();
    Ok(Identity {
        provider: p.name.clone(),
        subject: subject.to_string(),
        username: username.to_string(),
        groups,
        managed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_map_to_an_identity_and_bad_ones_are_refused() {
        let cfg = crate::config::Config::parse(
            r#"
[sso]
public_url = "https://127.0.0.1:1"
[[sso.provider]]
name = "corp"
issuer = "http://127.0.0.1:2"
client_id = "c"
client_secret_file = "/s"
groups = { "eng" = "ops", "sec" = "auditors" }
"#,
            None,
        )
        .unwrap()
        .sso;
        let p = &cfg.providers[0];
        let c = |v: serde_json::Value| v.as_object().unwrap().clone();
        let id = identity_from(
            p,
            &c(serde_json::json!({"sub": "s1", "preferred_username": "bob", "groups": ["eng", "x"]})),
        )
        .unwrap();
        assert_eq!(id.groups, vec!["ops"]);
        assert_eq!(id.managed, vec!["auditors", "ops"]);
        for bad in [
            serde_json::json!({"preferred_username": "bob"}),
            serde_json::json!({"sub": "s1"}),
            serde_json::json!({"sub": "s1", "preferred_username": "bad name;"}),
            serde_json::json!({"sub": "s1", "preferred_username": "bob", "groups": 3}),
        ] {
            assert!(identity_from(p, &c(bad)).is_err());
        }
        let code = short_code();
        assert_eq!(code.len(), 7);
    }
}
