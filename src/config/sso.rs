//! `[sso]`: the OpenID Connect providers the bastion signs users in with
//! (console and SSH), the group mapping, and which users sign in to SSH
//! with the IdP instead of a TOTP code.
//!
//! ```toml
//! [sso]
//! public_url = "https://bastion.example.com:8443"  # the admin listener as browsers reach it
//! link_ttl = "5m"
//!
//! [[sso.provider]]
//! name = "corp"
//! issuer = "https://idp.example.com"
//! client_id = "portcullis"
//! client_secret_file = "/etc/portcullis/oidc-secret"
//! scopes = ["openid", "profile", "groups"]
//! username_claim = "preferred_username"
//! groups_claim = "groups"
//! create_users = false
//! groups = { "eng-oncall" = "ops", "sec-team" = "auditors" }
//!
//! [[sso.ssh]]
//! provider = "corp"
//! mode = "second-factor"   # after a public key, instead of TOTP; or "only"
//! groups = ["ops"]
//! users = ["bob"]
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSso {
    public_url: Option<String>,
    link_ttl: Option<String>,
    #[serde(default)]
    provider: Vec<RawProvider>,
    #[serde(default)]
    ssh: Vec<RawSshRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: String,
    issuer: String,
    client_id: String,
    client_secret_file: PathBuf,
    scopes: Option<Vec<String>>,
    username_claim: Option<String>,
    groups_claim: Option<String>,
    create_users: Option<bool>,
    #[serde(default)]
    groups: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSshRule {
    provider: String,
    mode: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
}

/// The validated `[sso]` section; no provider means no SSO anywhere.
#[derive(Debug, Clone, Default)]
pub struct SsoConfig {
    /// `https://host:port` of the admin listener as a browser reaches it:
    /// the SSH links and the redirect URI (`{public_url}/sso/callback`).
    pub public_url: String,
    /// How long an SSH sign-in link (and a started sign-in) stays usable.
    pub link_ttl: Duration,
    pub providers: Vec<Provider>,
    pub ssh: Vec<SshRule>,
}

/// One OpenID Provider. The client secret is read from its file when the
/// bastion starts (`sso::Sso::new`), never kept in the configuration.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    /// Discovery at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret_file: PathBuf,
    pub scopes: Vec<String>,
    pub username_claim: String,
    pub groups_claim: String,
    /// Unknown users signing in are created as the IdP's (`provisioned_by
    /// = 'oidc'`); otherwise refused.
    pub create_users: bool,
    /// IdP group → bastion group. Only these bastion groups are managed by
    /// the sign-in: each one is joined or left to match the IdP's claim.
    pub groups: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshMode {
    /// After a public key, instead of a TOTP code.
    SecondFactor,
    /// The only interactive factor (keyboard-interactive alone).
    Only,
}

#[derive(Debug, Clone)]
pub struct SshRule {
    pub provider: String,
    pub mode: SshMode,
    pub groups: Vec<String>,
    pub users: Vec<String>,
}

impl SsoConfig {
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// The first `[[sso.ssh]]` rule naming this user or one of their groups.
    pub fn ssh_rule(&self, user: &str, groups: &[String]) -> Option<&SshRule> {
        self.ssh.iter().find(|r| {
            r.users.iter().any(|u| u == user) || r.groups.iter().any(|g| groups.contains(g))
        })
    }
}

fn valid_name(s: &str) -> bool {
    crate::names::Name::parse(s).is_ok()
}

impl RawSso {
    pub(super) fn check(self, problems: &mut Vec<String>) -> SsoConfig {
        let mut p = |s: String| problems.push(s);
        let link_ttl = match self.link_ttl.as_deref() {
            None => 300,
            Some(t) => match super::parse_duration(t) {
                Ok(s) if (5..=3600).contains(&s) => s,
                Ok(s) => {
                    p(format!("sso.link_ttl = {s}s: expected between 5s and 1h"));
                    300
                }
                Err(e) => {
                    p(format!("sso.link_ttl: {e}"));
                    300
                }
            },
        };
        let public_url = self
            .public_url
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        if !self.provider.is_empty() && !public_url.starts_with("https://") {
            p(format!(
                "sso.public_url = {public_url:?}: expected the admin listener's https:// address"
            ));
        }
        let mut providers: Vec<Provider> = Vec::new();
        for r in self.provider {
            let at = format!("sso.provider {:?}", r.name);
            if !valid_name(&r.name) {
                p(format!("{at}: name is not a valid name"));
            }
            if providers.iter().any(|x| x.name == r.name) {
                p(format!("{at}: named twice"));
            }
            let local = r.issuer.starts_with("http://127.0.0.1:")
                || r.issuer.starts_with("http://localhost:")
                || r.issuer.starts_with("http://[::1]:");
            if !(r.issuer.starts_with("https://") || local) {
                p(format!(
                    "{at}: issuer = {:?}: expected https:// (plain http only on loopback)",
                    r.issuer
                ));
            }
            if r.client_id.is_empty() {
                p(format!("{at}: client_id is empty"));
            }
            let scopes = r
                .scopes
                .unwrap_or_else(|| ["openid", "profile", "groups"].map(String::from).to_vec());
            if !scopes.iter().any(|s| s == "openid") {
                p(format!("{at}: scopes must include \"openid\""));
            }
            for (idp, ours) in &r.groups {
                if idp.is_empty() || !valid_name(ours) {
                    p(format!(
                        "{at}: groups {idp:?} = {ours:?}: not a valid mapping"
                    ));
                }
            }
            providers.push(Provider {
                name: r.name,
                issuer: r.issuer.trim_end_matches('/').to_string(),
                client_id: r.client_id,
                client_secret_file: r.client_secret_file,
                scopes,
                username_claim: r
                    .username_claim
                    .unwrap_or_else(|| "preferred_username".into()),
                groups_claim: r.groups_claim.unwrap_or_else(|| "groups".into()),
                create_users: r.create_users.unwrap_or(false),
                groups: r.groups,
            });
        }
        let mut ssh = Vec::new();
        for r in self.ssh {
            if !providers.iter().any(|x| x.name == r.provider) {
                p(format!(
                    "sso.ssh: provider {:?} is not configured",
                    r.provider
                ));
            }
            let mode = match r.mode.as_str() {
                "second-factor" => SshMode::SecondFactor,
                "only" => SshMode::Only,
                other => {
                    p(format!(
                        "sso.ssh: mode = {other:?}: expected \"second-factor\" or \"only\""
                    ));
                    SshMode::SecondFactor
                }
            };
            ssh.push(SshRule {
                provider: r.provider,
                mode,
                groups: r.groups,
                users: r.users,
            });
        }
        SsoConfig {
            public_url,
            link_ttl: Duration::from_secs(link_ttl),
            providers,
            ssh,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn a_provider_needs_https_and_openid_and_a_known_name() {
        let bad = r#"
[sso]
public_url = "http://bastion"
[[sso.provider]]
name = "corp"
issuer = "http://idp.example.com"
client_id = "x"
client_secret_file = "/s"
scopes = ["profile"]
[[sso.ssh]]
provider = "other"
mode = "sometimes"
"#;
        let e = Config::parse(bad, None).unwrap_err().join("\n");
        for want in [
            "public_url",
            "plain http only on loopback",
            "must include \"openid\"",
            "\"other\" is not configured",
            "\"sometimes\"",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        let good = r#"
[sso]
public_url = "https://127.0.0.1:8443/"
[[sso.provider]]
name = "corp"
issuer = "http://127.0.0.1:9000/"
client_id = "x"
client_secret_file = "/s"
groups = { "eng" = "ops" }
[[sso.ssh]]
provider = "corp"
mode = "second-factor"
groups = ["ops"]
"#;
        let c = Config::parse(good, None).unwrap().sso;
        assert_eq!(c.public_url, "https://127.0.0.1:8443");
        assert_eq!(c.providers[0].issuer, "http://127.0.0.1:9000");
        assert_eq!(c.providers[0].username_claim, "preferred_username");
        let g = vec!["ops".to_string()];
        assert!(c.ssh_rule("bob", &g).is_some());
        assert!(c.ssh_rule("bob", &[]).is_none());
    }
}
