//! ProxyJump helpers: an ssh_config (`-F`) for `ssh -J` through the bastion,
//! because `-J` passes only `-F` (not `-o`/`-i`) to the jump connection.

use super::*;

/// How the client trusts the targets behind the bastion.
pub enum Trust {
    /// Only `portcullis host-ca show`'s `@cert-authority` line.
    HostCa,
    /// Nothing at all (a user without the CA line).
    Nothing,
}

/// How the outer connection to the bastion authenticates.
pub enum Outer<'a> {
    /// Public key only, batch mode (a service account).
    Key(&'a Path),
    /// Public key then the verification code through SSH_ASKPASS (a human).
    KeyAndTotp(&'a Path),
}

/// Writes an ssh_config with a `bastion` host and strict checking for
/// everything behind it; `extra` is prepended (e.g. a `Host web01` block).
pub fn jump_config(b: &Bastion, outer: Outer<'_>, trust: Trust, extra: &str) -> PathBuf {
    let dir = b.dir.path();
    let targets_kh = dir.join(format!("targets_known_hosts_{}", free_port()));
    let line = match trust {
        Trust::HostCa => text(&b.admin(&["host-ca", "show"]).stdout),
        Trust::Nothing => String::new(),
    };
    std::fs::write(&targets_kh, line).unwrap();
    let (key, auth, batch) = match outer {
        Outer::Key(k) => (k, "publickey", "yes"),
        Outer::KeyAndTotp(k) => (k, "publickey,keyboard-interactive", "no"),
    };
    let cfg = dir.join(format!("ssh_config_{}", free_port()));
    let text = format!(
        "{extra}\n\
         Host bastion\n  HostName 127.0.0.1\n  Port {port}\n  IdentityFile {key}\n  \
         UserKnownHostsFile {bastion_kh}\n  PreferredAuthentications {auth}\n  BatchMode {batch}\n  \
         NumberOfPasswordPrompts 1\n\
         Host *\n  StrictHostKeyChecking yes\n  UserKnownHostsFile {targets_kh}\n  \
         GlobalKnownHostsFile /dev/null\n  IdentitiesOnly yes\n  IdentityFile none\n  \
         BatchMode yes\n  ConnectTimeout 10\n",
        port = b.port,
        key = key.display(),
        bastion_kh = b.known_hosts().display(),
        targets_kh = targets_kh.display(),
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// `ssh -F cfg -J JUMP DEST` with stdin closed.
pub fn ssh_jump(cfg: &Path, jump: &str, dest: &str) -> Command {
    let mut c = Command::new("ssh");
    c.arg("-F")
        .arg(cfg)
        .args(["-J", jump, dest])
        .stdin(Stdio::null());
    c
}
