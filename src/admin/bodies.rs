//! Every JSON body the API accepts: typed, `deny_unknown_fields`, so a
//! misspelt or extra field is a 400 naming it. Secrets appear only in
//! request bodies and never derive `Debug`.

use super::tokens::Scope;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    #[serde(default)]
    pub password: Option<String>,
    /// OpenSSH one-line public keys.
    #[serde(default)]
    pub public_keys: Vec<String>,
    /// Public key only, no password, exempt from MFA.
    #[serde(default)]
    pub service: bool,
}

/// `null` clears the password (public-key login only).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    pub password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub public_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub user: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTarget {
    pub name: String,
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// The key to pin, one OpenSSH line (`ssh-ed25519 AAAA...`).
    pub host_key: String,
}

fn default_port() -> u16 {
    22
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKindBody {
    Password,
    PrivateKey,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetCredential {
    pub kind: CredentialKindBody,
    /// The password, or the OpenSSH private key text. Write-only.
    pub secret: String,
}

/// The same fields as `portcullis grant add`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    pub target: String,
    pub logins: Vec<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    #[serde(default)]
    pub window: Option<String>,
    #[serde(default)]
    pub tz: Option<String>,
    #[serde(default)]
    pub max_session: Option<String>,
    #[serde(default)]
    pub allow: Option<String>,
    #[serde(default)]
    pub exec_allow: Vec<String>,
    #[serde(default)]
    pub exec_deny: Vec<String>,
}

/// Approve or deny an access request: `{}`. The decider is the token that
/// calls; a name in the body (the old `approver`) is refused, not believed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    pub scope: Scope,
    /// A duration (90s, 15m, 2h, 30d); none = no expiry.
    #[serde(default)]
    pub expires: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terminate {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Parses `bytes` as the body of `kind` (the fuzz target's entry point):
/// never panics, whatever the input.
pub fn parse_any(kind: u8, bytes: &[u8]) -> Result<(), String> {
    use super::http::parse;
    match kind % 10 {
        0 => parse::<NewUser>(bytes).map(|_| ()),
        1 => parse::<SetPassword>(bytes).map(|_| ()),
        2 => parse::<NewKey>(bytes).map(|_| ()),
        3 => parse::<NewGroup>(bytes).map(|_| ()),
        4 => parse::<NewMember>(bytes).map(|_| ()),
        5 => parse::<NewTarget>(bytes).map(|_| ()),
        6 => parse::<SetCredential>(bytes).map(|_| ()),
        7 => parse::<NewGrant>(bytes).and_then(|g| {
            let spec = g.into_spec();
            crate::grants::build(&spec, 0)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
        8 => parse::<Decision>(bytes).map(|_| ()),
        _ => parse::<NewToken>(bytes).map(|_| ()),
    }
}

impl NewGrant {
    pub fn into_spec(self) -> crate::grants::GrantSpec {
        crate::grants::GrantSpec {
            user: self.user,
            group: self.group,
            target: self.target,
            logins: self.logins,
            from: self.from,
            until: self.until,
            for_: self.for_,
            window: self.window,
            tz: self.tz.unwrap_or_else(|| "UTC".into()),
            max_session: self.max_session,
            allow: self
                .allow
                .unwrap_or_else(|| crate::grants::DEFAULT_ALLOW.into()),
            exec_allow: self.exec_allow,
            exec_deny: self.exec_deny,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_bodies_are_errors_not_panics() {
        let deep = "[".repeat(10_000);
        let long = format!("{{\"name\":\"{}\"}}", "x".repeat(100_000));
        let inputs: Vec<&[u8]> = vec![
            b"",
            b"null",
            b"{}",
            b"{\"name\":1e999}",
            b"{\"name\":\"\\ud800\"}",
            b"{\"target\":\"t\",\"logins\":[\"a\"],\"window\":\"mon-sun 25:00-99:99\",\"tz\":\"\"}",
            b"{\"target\":\"t\",\"logins\":[\"a\"],\"for\":\"99999999999999999999d\",\"user\":\"u\"}",
            b"{\"target\":\"t\",\"logins\":[\"a\"],\"until\":\"9999-99-99\",\"user\":\"u\"}",
            b"{\"kind\":\"certificate\",\"secret\":\"s\"}",
            b"{\"name\":\"a\",\"scope\":\"root\"}",
            b"\xff\xfe",
            deep.as_bytes(),
            long.as_bytes(),
        ];
        for kind in 0..10u8 {
            for i in &inputs {
                if let Err(m) = parse_any(kind, i) {
                    assert!(m.chars().count() <= 300, "{m}");
                }
            }
        }
        assert!(
            parse_any(3, b"{\"name\":\"ops\",\"x\":1}")
                .unwrap_err()
                .contains("x")
        );
        assert!(
            parse_any(
                5,
                b"{\"name\":\"t\",\"host\":\"h\",\"port\":\"22\",\"host_key\":\"k\"}"
            )
            .is_err()
        );
    }
}
