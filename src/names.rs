//! The username grammar: `USER`, `USER+TARGET`, `USER+LOGIN+TARGET`.
//!
//! `+` survives `ssh`, `scp`, `sftp`, `rsync -e ssh`, ssh_config `User` lines
//! and Ansible unchanged. Each part uses the strict set `[A-Za-z0-9._-]` and is
//! length-capped; anything else is refused before any lookup, so a hostile
//! username never reaches the store, a log line unescaped, or a shell.

use std::fmt;

/// Longest accepted name part (POSIX login names are at most 32 bytes).
pub const MAX_PART: usize = 64;
/// Longest accepted username as sent over SSH.
pub const MAX_TOTAL: usize = 3 * MAX_PART + 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("username is empty")]
    Empty,
    #[error("username is longer than {MAX_TOTAL} bytes")]
    TooLong,
    #[error(
        "username has {0} parts separated by '+'; expected USER, USER+TARGET or USER+LOGIN+TARGET"
    )]
    TooManyParts(usize),
    #[error("a part of the username is empty")]
    EmptyPart,
    #[error("a part of the username is longer than {MAX_PART} bytes")]
    PartTooLong,
    #[error("username may contain only letters, digits, '.', '_', '-' and '+' separators")]
    BadCharacter,
    #[error("a name may not start with '-' or be '.' or '..'")]
    BadShape,
}

/// A validated name part (user, login or target).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    pub fn parse(s: &str) -> Result<Name, NameError> {
        if s.is_empty() {
            return Err(NameError::EmptyPart);
        }
        if s.len() > MAX_PART {
            return Err(NameError::PartTooLong);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(NameError::BadCharacter);
        }
        // A leading '-' would read as an option to any tool it is passed to.
        if s.starts_with('-') || s == "." || s == ".." {
            return Err(NameError::BadShape);
        }
        Ok(Name(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the client asked for in its SSH username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    pub user: Name,
    pub target: Option<TargetRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRequest {
    pub target: Name,
    /// `None`: the grant's default login.
    pub login: Option<Name>,
}

impl fmt::Display for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.user)?;
        if let Some(t) = &self.target {
            if let Some(l) = &t.login {
                write!(f, "+{l}")?;
            }
            write!(f, "+{}", t.target)?;
        }
        Ok(())
    }
}

/// Parses a username as sent by the client.
pub fn parse_login(s: &str) -> Result<LoginRequest, NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > MAX_TOTAL {
        return Err(NameError::TooLong);
    }
    let parts: Vec<&str> = s.split('+').collect();
    let names = parts
        .iter()
        .map(|p| Name::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut it = names.into_iter();
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(user), None, None, None) => Ok(LoginRequest { user, target: None }),
        (Some(user), Some(target), None, None) => Ok(LoginRequest {
            user,
            target: Some(TargetRequest {
                target,
                login: None,
            }),
        }),
        (Some(user), Some(login), Some(target), None) => Ok(LoginRequest {
            user,
            target: Some(TargetRequest {
                target,
                login: Some(login),
            }),
        }),
        _ => Err(NameError::TooManyParts(parts.len())),
    }
}

/// Renders untrusted text for a log line: printable ASCII kept, the rest escaped,
/// and capped so a hostile client cannot flood or forge log lines.
pub fn escape_for_log(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(128));
    for c in s.chars().take(128) {
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    if s.chars().count() > 128 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_table() {
        let ok = [
            ("alice", "alice", None, None),
            ("alice+web01", "alice", Some("web01"), None),
            ("alice+root+web01", "alice", Some("web01"), Some("root")),
            (
                "a.b_c-d+x.y+db-01.prod",
                "a.b_c-d",
                Some("db-01.prod"),
                Some("x.y"),
            ),
        ];
        for (input, user, target, login) in ok {
            let r = parse_login(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.user.as_str(), user);
            assert_eq!(r.target.as_ref().map(|t| t.target.as_str()), target);
            assert_eq!(
                r.target
                    .as_ref()
                    .and_then(|t| t.login.as_ref())
                    .map(|l| l.as_str()),
                login
            );
            assert_eq!(r.to_string(), input);
        }
        let bad = [
            ("", NameError::Empty),
            ("alice+", NameError::EmptyPart),
            ("+web01", NameError::EmptyPart),
            ("a+b+c+d", NameError::TooManyParts(4)),
            ("alice@web01", NameError::BadCharacter),
            ("alice:web01", NameError::BadCharacter),
            ("alice%web01", NameError::BadCharacter),
            ("alice web01", NameError::BadCharacter),
            ("alice\n+web01", NameError::BadCharacter),
            ("ålice", NameError::BadCharacter),
            ("alice+-oProxyCommand", NameError::BadShape),
            ("alice+..", NameError::BadShape),
        ];
        for (input, want) in bad {
            assert_eq!(parse_login(input), Err(want), "{input:?}");
        }
        assert_eq!(parse_login(&"a".repeat(65)), Err(NameError::PartTooLong));
        assert_eq!(
            parse_login(&"a".repeat(MAX_TOTAL + 1)),
            Err(NameError::TooLong)
        );
    }

    #[test]
    fn log_escaping_neutralises_control_characters() {
        assert_eq!(escape_for_log("a\nb\x1b[31m"), "a\\nb\\u{1b}[31m");
        assert!(escape_for_log(&"x".repeat(500)).len() < 140);
    }
}
