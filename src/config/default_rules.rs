//! Rules every bastion has unless `[lockdown] default_rules = false`: they
//! flag (audit and notify, nothing more) the two ways a user of a shared,
//! vaulted target account most easily keeps access after the grant ends —
//! keys planted in `.ssh/` and cron entries. They read typed lines and exec
//! commands, so they are detection, not prevention: see the README.

/// Programs and operators that write, create or replace files: `>`/`>>`,
/// copiers, editors, in-place edits.
const WRITES: &str = r"(?:>|\b(?:tee|cp|mv|install|ln|rsync|scp|dd|truncate|touch|chmod|chown|rm|mkdir|vi|vim|nvim|nano|emacs|ed|ssh-keygen|sed\s+-[a-zA-Z]*i|perl\s+-[a-zA-Z]*i)\b)";

/// A write whose words go on to name something under `.ssh/` or a key file.
fn ssh_keys() -> String {
    format!(r"{WRITES}[^\n]*(?:\.ssh(?:/|\s|$)|authorized_keys|authorized_principals)")
}

/// `crontab` run as a command (not a path like `/etc/crontab`) that
/// installs, edits or removes (`-l` only lists), or a write under the
/// system cron directories.
fn crontab() -> String {
    format!(
        r"(?:^|[\s;&|(`]|/bin/)crontab(?:\s+-u\s*\S+)?(?:\s*$|\s*[;&|<)]|\s+-(?:\s|$)|\s+-[a-km-tv-z]|\s+[^-\s])|{WRITES}[^\n]*(?:/etc/cron|/var/spool/cron|/etc/anacrontab)"
    )
}

/// (name, command regex) of each default rule; the action is `flag`.
pub fn all() -> Vec<(&'static str, String)> {
    vec![("flag-ssh-keys", ssh_keys()), ("flag-crontab", crontab())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn check(re: &str, hits: &[&str], misses: &[&str]) {
        let re = Regex::new(re).unwrap();
        for h in hits {
            assert!(re.is_match(h), "not flagged: {h}");
        }
        for m in misses {
            assert!(!re.is_match(m), "flagged: {m}");
        }
    }

    #[test]
    fn writes_under_ssh_are_flagged_reads_are_not() {
        check(
            &ssh_keys(),
            &[
                "echo ssh-ed25519 AAAA x >> ~/.ssh/authorized_keys",
                "cat key.pub | tee -a /root/.ssh/authorized_keys",
                "cp /tmp/k /home/deploy/.ssh/authorized_keys2",
                "vim .ssh/authorized_keys",
                "sed -i 's/a/b/' ~/.ssh/authorized_keys",
                "mkdir -p ~/.ssh",
                "printf %s k > authorized_keys",
                "ssh-keygen -f ~/.ssh/backdoor -N ''",
            ],
            &[
                "cat ~/.ssh/authorized_keys",
                "ls -la ~/.ssh/",
                "cat ~/.ssh/id_ed25519.pub > /tmp/pub",
                "ssh web02 uptime",
            ],
        );
    }

    #[test]
    fn crontab_edits_are_flagged_listing_is_not() {
        check(
            &crontab(),
            &[
                "crontab -e",
                "crontab -r",
                "crontab -u root -e",
                "echo '* * * * * id' | crontab -",
                "crontab /tmp/evil",
                "crontab",
                "echo '* * * * * root id' >> /etc/crontab",
                "tee /etc/cron.d/x < y",
                "cp x /var/spool/cron/crontabs/root",
                "env PATH=/x crontab -e",
                "/usr/bin/crontab -r",
                "true && crontab x",
            ],
            &[
                "crontab -l",
                "crontab -u root -l",
                "crontab -l | grep backup",
                "cat /etc/crontab",
                "ls /etc/cron.d",
            ],
        );
    }
}
