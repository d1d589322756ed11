//! Faults a stock OpenSSH client will not produce, from an in-process russh client.

mod common;
use common::*;
use russh::client::{self, AuthResult, KeyboardInteractiveAuthResponse as Kbd};
use russh::keys::PublicKeyOrCertificate;
use std::sync::Arc;

struct AnyHost;
impl client::Handler for AnyHost {
    type Error = russh::Error;
    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

async fn connect(port: u16) -> client::Handle<AnyHost> {
    client::connect(
        Arc::new(client::Config::default()),
        ("127.0.0.1", port),
        AnyHost,
    )
    .await
    .unwrap()
}

/// A password (a partial success), then keyboard-interactive as `second_user`.
async fn password_then_prompt(
    port: u16,
    user: &str,
    pw: &str,
    second_user: &str,
) -> (client::Handle<AnyHost>, Kbd) {
    let mut h = connect(port).await;
    assert!(partial(h.authenticate_password(user, pw).await.unwrap()));
    let r = h
        .authenticate_keyboard_interactive_start(second_user, None)
        .await
        .unwrap();
    (h, r)
}

fn partial(r: AuthResult) -> bool {
    matches!(
        r,
        AuthResult::Failure {
            partial_success: true,
            ..
        }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_interactive_rules() {
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let _ = b.add_human("kim", "kim-pw");
    let kim = enroll_totp(&b, "kim");
    let _ = b.add_human("lee", "lee-pw");
    let lee = enroll_totp(&b, "lee");

    // Keyboard-interactive alone is never a first factor, even with a valid code.
    let mut h = connect(b.port).await;
    let r = h
        .authenticate_keyboard_interactive_start("kim+web01", None)
        .await
        .unwrap();
    assert!(
        matches!(
            r,
            Kbd::Failure {
                partial_success: false,
                ..
            }
        ),
        "{r:?}"
    );

    // A huge claimed number of answers: refused, no allocation sized by it.
    let (mut h, r) = password_then_prompt(b.port, "kim+web01", "kim-pw", "kim+web01").await;
    assert!(matches!(r, Kbd::InfoRequest { .. }), "{r:?}");
    let answers = vec![next_code(&kim); 20_000];
    let r = h
        .authenticate_keyboard_interactive_respond(answers)
        .await
        .unwrap();
    assert!(matches!(r, Kbd::Failure { .. }), "{r:?}");

    // A username change between factors starts over: lee's code does not
    // complete kim's password.
    let (mut h, r) = password_then_prompt(b.port, "kim+web01", "kim-pw", "lee+web01").await;
    if let Kbd::InfoRequest { .. } = r {
        let r = h
            .authenticate_keyboard_interactive_respond(vec![next_code(&lee)])
            .await
            .unwrap();
        assert!(
            !matches!(r, Kbd::Success),
            "factors of two users were combined"
        );
    }

    // The honest flow still works on a fresh connection.
    let (mut h, r) = password_then_prompt(b.port, "kim+web01", "kim-pw", "kim+web01").await;
    let Kbd::InfoRequest { prompts, .. } = r else {
        panic!("{r:?}")
    };
    assert_eq!(prompts.len(), 1);
    assert_eq!(prompts[0].prompt, "Verification code: ");
    assert!(!prompts[0].echo);
    let r = h
        .authenticate_keyboard_interactive_respond(vec![next_code(&kim)])
        .await
        .unwrap();
    assert!(matches!(r, Kbd::Success), "{r:?}\n{}", b.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_success_is_answered_without_the_rejection_delay() {
    use russh::keys::PrivateKeyWithHashAlg;
    let sshd = Sshd::start();
    let b = Bastion::standard(&sshd);
    let key = b.add_human("max", "max-pw");
    let _ = enroll_totp(&b, "max");
    let key = Arc::new(russh::keys::load_secret_key(&key, None).unwrap());
    // A public key costs no hashing, so its partial success should come back
    // well inside the 500 ms every rejection is padded to.
    let mut h = connect(b.port).await;
    let start = std::time::Instant::now();
    let r = h
        .authenticate_publickey("max+web01", PrivateKeyWithHashAlg::new(key, None))
        .await
        .unwrap();
    let partial_took = start.elapsed();
    assert!(partial(r));
    let mut h = connect(b.port).await;
    let start = std::time::Instant::now();
    assert!(!partial(
        h.authenticate_password("max+web01", "wrong").await.unwrap()
    ));
    let reject_took = start.elapsed();
    assert!(
        reject_took >= std::time::Duration::from_millis(450),
        "{reject_took:?}"
    );
    assert!(
        partial_took < std::time::Duration::from_millis(300),
        "partial success took {partial_took:?}"
    );
}
