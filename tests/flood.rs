//! Nothing a client sends can flood the audit table, the recordings disk or
//! the bastion's memory: failed logins are summarised, per-user audit rows
//! for forwards are capped, channels per connection are capped, and new
//! sessions are refused when the recordings disk runs low.

mod common;
use common::*;

fn audit_lines(b: &Bastion, kind: &str) -> Vec<String> {
    text(&b.admin(&["audit", "list"]).stdout)
        .lines()
        .filter(|l| l.split('\t').any(|f| f == kind))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_password_spray_over_many_names_is_one_summary_row() {
    let sshd = Sshd::start();
    let mut b = Bastion::standard(&sshd);
    let ap = Askpass::new();
    ap.set_password("Winter2026!");
    let names: Vec<String> = (0..40).map(|i| format!("spray{i:02}")).collect();
    std::thread::scope(|s| {
        for chunk in names.chunks(5) {
            let (b, ap) = (&b, &ap);
            s.spawn(move || {
                for n in chunk {
                    let out = run(b.ssh_human(n, "password", None, ap).arg("true"));
                    assert!(!out.status.success());
                }
            });
        }
    });
    b.stop(); // graceful: the tally is flushed
    let rows = audit_lines(&b, "login.failures");
    assert_eq!(
        rows.len(),
        1,
        "one row for the network and factor: {rows:#?}"
    );
    assert!(rows[0].contains("\"usernames\":40"), "{}", rows[0]);
    assert!(rows[0].contains("127.0.0.0/24"), "{}", rows[0]);
    let users = audit_lines(&b, "login.failures.user");
    assert!(users.len() <= 16, "{users:#?}");
    assert_eq!(audit_lines(&b, "login.failures.omitted").len(), 1);
}
