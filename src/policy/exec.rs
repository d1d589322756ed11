//! Allow and deny lists for exec commands. A pattern matches the whole
//! command string the target would run; `*` matches any run of characters
//! (including none), `?` exactly one. Deny wins over allow; an empty allow
//! list allows every command not denied.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRules {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl ExecRules {
    pub fn permits(&self, command: &[u8]) -> bool {
        let Ok(command) = std::str::from_utf8(command) else {
            return self.allow.is_empty() && self.deny.is_empty();
        };
        if self.deny.iter().any(|p| glob(p, command)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|p| glob(p, command))
    }
}

/// Iterative wildcard match, linear in practice and never recursive, so a
/// hostile command cannot blow the stack.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let cases = [
            ("systemctl status *", "systemctl status nginx", true),
            ("systemctl status *", "systemctl restart nginx", false),
            ("uptime", "uptime", true),
            ("uptime", "uptime; rm -rf /", false),
            ("*", "", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*.log", "tail /var/log/x.log", true),
            ("a*b*c", "a-b-x-c", true),
            ("a*b*c", "a-c-b", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob(p, t), want, "{p:?} vs {t:?}");
        }
        assert!(!glob(&"*a".repeat(50), &"a".repeat(49)));
    }

    #[test]
    fn deny_wins_and_empty_allow_allows() {
        let r = ExecRules {
            allow: vec![],
            deny: vec!["rm *".into()],
        };
        assert!(r.permits(b"ls"));
        assert!(!r.permits(b"rm -rf /tmp/x"));
        let r = ExecRules {
            allow: vec!["systemctl status *".into(), "uptime".into()],
            deny: vec!["* --force*".into()],
        };
        assert!(r.permits(b"uptime"));
        assert!(!r.permits(b"id"));
        assert!(!r.permits(b"systemctl status x --force"));
    }
}
