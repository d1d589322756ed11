//! Every operation stores, audits as its actor, and refuses bad input
//! before it writes anything.

use super::*;
use crate::audit::{AuditQuery, ChainKey, query};
use crate::vault::Vault;
use std::sync::Arc;
use zeroize::Zeroizing;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

async fn ops(dir: &tempfile::TempDir) -> Ops {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    let store = Store::connect(&url)
        .await
        .unwrap()
        .attach_audit(Arc::new(ChainKey::from_bytes([9; 32])))
        .await
        .unwrap();
    Ops::new(store, "test:actor")
}

async fn kinds(ops: &Ops) -> Vec<(String, String, String)> {
    let q = AuditQuery {
        limit: Some(1000),
        ..Default::default()
    };
    let mut rows = query(&ops.store, &q).await.unwrap();
    rows.sort_by_key(|e| e.seq);
    rows.into_iter()
        .map(|e| (e.kind, e.actor, e.subject))
        .collect()
}

#[tokio::test]
async fn each_change_is_audited_as_its_actor() {
    let dir = tempfile::tempdir().unwrap();
    let o = ops(&dir).await;
    let new = NewUser {
        name: "alice".into(),
        password: Some(Zeroizing::new("pw".into())),
        keys: vec![KEY.into()],
        service: false,
    };
    let added = add_user(&o, new).await.unwrap();
    assert_eq!(added.fingerprints.len(), 1);
    set_password(&o, "alice", None).await.unwrap();
    remove_key(&o, "alice", &added.fingerprints[0])
        .await
        .unwrap();
    add_key(&o, "alice", KEY).await.unwrap();
    add_group(&o, "ops").await.unwrap();
    add_member(&o, "ops", "alice").await.unwrap();
    remove_member(&o, "ops", "alice").await.unwrap();
    remove_group(&o, "ops").await.unwrap();
    let t = NewSshTarget {
        name: "web01".into(),
        host: "10.0.0.5".into(),
        port: 22,
        host_key: KEY.into(),
    };
    add_ssh_target(&o, t).await.unwrap();
    set_capture(&o, "web01", true).await.unwrap();
    set_recording(&o, "web01", false).await.unwrap();
    let c = NewCredential {
        target: "web01".into(),
        login: "root".into(),
        secret: Secret::Password(Zeroizing::new("s3cret-on-target".into())),
    };
    set_credential(&o, &Vault::from_key([7; 32]), c)
        .await
        .unwrap();
    let tcp = NewTcpTarget {
        name: "db01".into(),
        host: "10.0.0.6".into(),
        port: 5432,
        capture: false,
    };
    add_tcp_target(&o, tcp).await.unwrap();
    remove_target(&o, "web01").await.unwrap();
    remove_user(&o, "alice").await.unwrap();
    let got = kinds(&o).await;
    let want = [
        ("user.added", "alice"),
        ("user.password_changed", "alice"),
        ("user.key_removed", "alice"),
        ("user.key_added", "alice"),
        ("group.added", "ops"),
        ("group.member_added", "ops"),
        ("group.member_removed", "ops"),
        ("group.removed", "ops"),
        ("target.added", "web01"),
        ("target.capture_set", "web01"),
        ("target.recording_set", "web01"),
        ("credential.set", "web01"),
        ("target.tcp_added", "db01"),
        ("target.removed", "web01"),
        ("user.removed", "alice"),
    ];
    let got_pairs: Vec<(&str, &str)> = got
        .iter()
        .map(|(k, _, s)| (k.as_str(), s.as_str()))
        .collect();
    assert_eq!(got_pairs, want, "{got:#?}");
    assert!(got.iter().all(|(_, a, _)| a == "test:actor"), "{got:#?}");
    let all = format!("{got:?}");
    assert!(!all.contains("s3cret") && !all.contains("\"pw\""), "{all}");
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let o = ops(&dir).await;
    let user = |name: &str, password: Option<&str>, keys: Vec<String>, service| NewUser {
        name: name.into(),
        password: password.map(|p| Zeroizing::new(p.into())),
        keys,
        service,
    };
    let cases = [
        (user("bad name", Some("pw"), vec![], false), "name:"),
        (user("bob", None, vec![], false), "a way to log in"),
        (user("bob", Some("pw"), vec![KEY.into()], true), "service"),
        (
            user("bob", None, vec!["ssh-ed25519 AAAA".into()], false),
            "public_key:",
        ),
        (
            user("bob", Some(""), vec![], false),
            "password: may not be empty",
        ),
    ];
    for (new, needle) in cases {
        let e = add_user(&o, new).await.unwrap_err().to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    }
    let target = |host: &str, port: u16| NewSshTarget {
        name: "web01".into(),
        host: host.into(),
        port,
        host_key: KEY.into(),
    };
    for (t, needle) in [
        (target("-oProxyCommand=x", 22), "host:"),
        (target("a b", 22), "host:"),
        (target("10.0.0.5", 0), "port:"),
    ] {
        let e = add_ssh_target(&o, t).await.unwrap_err().to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    }
    let key = NewCredential {
        target: "web01".into(),
        login: "root".into(),
        secret: Secret::PrivateKey(Zeroizing::new("-----BEGIN nonsense".into())),
    };
    let e = set_credential(&o, &Vault::from_key([7; 32]), key)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("secret:") && !e.contains("nonsense"), "{e}");
    assert!(kinds(&o).await.is_empty(), "nothing may be audited");
    assert!(o.store.list_users().await.unwrap().is_empty());
    assert!(o.store.list_targets().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_service_account_cannot_be_given_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let o = ops(&dir).await;
    let new = NewUser {
        name: "svc".into(),
        password: None,
        keys: vec![KEY.into()],
        service: true,
    };
    add_user(&o, new).await.unwrap();
    let e = set_password(&o, "svc", Some(Zeroizing::new("pw".into())))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("service account"), "{e}");
    let e = set_password(&o, "nobody", None).await.unwrap_err();
    assert!(
        matches!(e, OpsError::Store(StoreError::Missing { .. })),
        "{e}"
    );
}
