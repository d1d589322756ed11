//! An exec request's command is any bytes the client chooses. The transfer
//! classifier and the exec allow/deny lists must never panic on it, must stay
//! fast on hostile input, and must agree: a command classified as a file
//! transfer is one plain simple command (an allow list naming only `scp` and
//! `rsync` admits it) built from characters with no shell meaning, and the
//! deny pattern `*;*` lets no `;` through.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::policy::{ExecKind, ExecRules, classify_exec};

fuzz_target!(|data: &[u8]| {
    if let ExecKind::Transfer(kind) = classify_exec(data) {
        assert!(
            data.iter().all(|b| !b.is_ascii()
                || b.is_ascii_alphanumeric()
                || b" ._/+,:=@%~-'\"\\*?".contains(b)),
            "{kind:?} with a shell metacharacter: {data:?}"
        );
        let programs = ExecRules {
            allow: vec!["scp *".into(), "rsync *".into()],
            deny: vec![],
        };
        assert!(
            programs.permits(data),
            "{kind:?} that is not one plain command: {data:?}"
        );
    }

    let allow = ExecRules {
        allow: vec!["echo *".into(), "systemctl status *".into()],
        deny: vec![],
    };
    if allow.permits(data) {
        assert!(
            data.iter().all(|b| *b == b'\t' || !b.is_ascii_control()),
            "allowed a control character: {data:?}"
        );
    }

    let deny = ExecRules {
        allow: vec![],
        deny: vec!["rm *".into(), "*;*".into()],
    };
    if deny.permits(data) {
        assert!(!data.contains(&b';'), "`*;*` let a `;` through: {data:?}");
    }

    // The input as a pattern: checking it, and using it, never panics.
    if let Ok(s) = std::str::from_utf8(data)
        && ExecRules::check_pattern(s).is_ok()
    {
        let rules = ExecRules {
            allow: vec![s.to_string()],
            deny: vec![s.to_string()],
        };
        let _ = rules.check(b"echo hi 'a b' \"c\" d\\ e");
    }
});
