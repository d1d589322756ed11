//! An interactive shell through a real pty: keystrokes, window change, Ctrl-C.

mod common;
use common::*;
use std::process::Command;

#[test]
fn interactive_shell_with_window_change_and_interrupt() {
    need("python3", "python3");
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let mut c = Command::new("python3");
    c.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pty_driver.py"))
        .arg("ssh")
        .args(b.ssh_opts())
        .args(["-p", &b.port.to_string()])
        .arg("alice+web02@127.0.0.1");
    let out = run(&mut c);
    assert!(
        out.status.success(),
        "{}\n{}\nbastion log:\n{}",
        text(&out.stdout),
        text(&out.stderr),
        b.log()
    );
}
