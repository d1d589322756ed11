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

async fn alice(o: &Ops, service: bool) {
    let new = NewUser {
        name: "alice".into(),
        password: (!service).then(|| Zeroizing::new("pw".into())),
        keys: vec![KEY.into()],
        service,
    };
    add_user(o, new).await.unwrap();
}

/// MFA as an operation: refused for whom it cannot apply, stored only once
/// a current code confirms it (a wrong one changes and audits nothing),
/// and each change audited as the actor with its own kind.
#[tokio::test]
async fn totp_enrolment_reset_and_removal_are_operations() {
    let dir = tempfile::tempdir().unwrap();
    let o = ops(&dir).await;
    let vault = Vault::from_key([7; 32]);
    let e = begin_totp(&o, "nobody", false).await.unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    let svc = Ops::new(o.store.clone(), "test:actor");
    let new = NewUser {
        name: "svc".into(),
        password: None,
        keys: vec![KEY.into()],
        service: true,
    };
    add_user(&svc, new).await.unwrap();
    let e = begin_totp(&o, "svc", false).await.unwrap_err();
    assert!(e.to_string().contains("service account"), "{e}");
    alice(&o, false).await;
    let before = kinds(&o).await.len();

    // A wrong code: nothing stored, nothing audited.
    let en = begin_totp(&o, "alice", false).await.unwrap();
    let wrong = if en.code_now() == "000000" {
        "111111"
    } else {
        "000000"
    };
    let e = confirm_totp(&o, &vault, en, wrong).await.unwrap_err();
    assert!(matches!(e, OpsError::Invalid { field: "code", .. }), "{e}");
    assert!(o.store.totp("alice").await.unwrap().is_none());
    assert_eq!(kinds(&o).await.len(), before);

    let en = begin_totp(&o, "alice", false).await.unwrap();
    let code = en.code_now();
    confirm_totp(&o, &vault, en, &code).await.unwrap();
    assert!(o.store.totp("alice").await.unwrap().is_some());
    let e = begin_totp(&o, "alice", false).await.unwrap_err();
    assert!(e.to_string().contains("already enrolled"), "{e}");
    let en = begin_totp(&o, "alice", true).await.unwrap();
    let code = en.code_now();
    confirm_totp(&o, &vault, en, &code).await.unwrap();
    remove_totp(&o, "alice").await.unwrap();
    assert!(o.store.totp("alice").await.unwrap().is_none());

    let got = kinds(&o).await;
    let mfa: Vec<(&str, &str, &str)> = got[before..]
        .iter()
        .map(|(k, a, s)| (k.as_str(), a.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        mfa,
        [
            ("mfa.totp.enrolled", "test:actor", "alice"),
            ("mfa.totp.reset", "test:actor", "alice"),
            ("mfa.totp.removed", "test:actor", "alice"),
        ]
    );
}

/// API tokens as an operation: the secret shown once and never stored or
/// audited, creation and revocation audited as the actor, a bad name
/// refused before anything is written.
#[tokio::test]
async fn tokens_are_created_and_revoked_as_the_actor() {
    let dir = tempfile::tempdir().unwrap();
    let o = ops(&dir).await;
    let e = create_token(&o, "bad name", Scope::Auditor, None)
        .await
        .unwrap_err();
    assert!(matches!(e, OpsError::Invalid { field: "name", .. }), "{e}");
    assert!(kinds(&o).await.is_empty());
    let (info, text) = create_token(&o, "ci", Scope::Auditor, Some(60))
        .await
        .unwrap();
    assert_eq!(
        (info.scope.as_str(), info.created_by.as_str()),
        ("auditor", "test:actor")
    );
    assert!(info.expires_ms.is_some());
    revoke_token(&o, &info.id).await.unwrap();
    let listed = list_tokens(&o.store).await.unwrap();
    assert!(listed[0].revoked_ms.is_some());
    let again = revoke_token(&o, &info.id).await.unwrap_err();
    assert!(
        matches!(again, OpsError::Store(StoreError::Missing { .. })),
        "{again}"
    );
    let got = kinds(&o).await;
    let pairs: Vec<(&str, &str)> = got
        .iter()
        .map(|(k, a, _)| (k.as_str(), a.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("api.token.created", "test:actor"),
            ("api.token.revoked", "test:actor")
        ]
    );
    let (_, secret) = crate::ops::tokens::split(text.as_str()).unwrap();
    let rows = query(&o.store, &AuditQuery::default()).await.unwrap();
    assert!(
        !format!("{rows:?}").contains(secret),
        "the secret was audited"
    );
}
