use super::*;
use ExecRefusal as R;

fn rules(allow: &[&str], deny: &[&str]) -> ExecRules {
    ExecRules {
        allow: allow.iter().map(|s| s.to_string()).collect(),
        deny: deny.iter().map(|s| s.to_string()).collect(),
    }
}

fn table(r: &ExecRules, cases: &[(&str, Result<(), ExecRefusal>)]) {
    for (cmd, want) in cases {
        assert_eq!(&r.check(cmd.as_bytes()), want, "{cmd:?} against {r:?}");
        assert_eq!(r.permits(cmd.as_bytes()), want.is_ok(), "{cmd:?}");
    }
}

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
        ("*;*", "uptime; id", true),
        ("*;*", "uptime && id", false),
    ];
    for (p, t, want) in cases {
        assert_eq!(glob(p, t), want, "{p:?} vs {t:?}");
    }
    assert!(!glob(&"*a".repeat(50), &"a".repeat(49)));
    let long = "a".repeat(100_000);
    assert!(!glob("*b*b*b*b*b*b*b*b", &long));
}

#[test]
fn an_allow_list_admits_one_plain_simple_command() {
    let r = rules(&["echo *", "/bin/echo *"], &[]);
    table(
        &r,
        &[
            ("echo hi", Ok(())),
            ("echo", Ok(())),
            ("echo  hi\tthere", Ok(())),
            // Quote removal and escapes: the parsed program is echo.
            ("ec\\ho hi", Ok(())),
            ("'echo' hi", Ok(())),
            ("e\"ch\"o hi", Ok(())),
            // One word `hi;id`: a literal argument, harmless.
            ("echo hi\\;id", Ok(())),
            ("echo 'hi; id' \"a|b\"", Ok(())),
            ("echo '$(id)' \\$HOME '`id`'", Ok(())),
            ("echo {}", Ok(())),
            ("echo *.log", Ok(())),
            // One word "echo hi" is not the program echo.
            ("\"echo hi\"", Err(R::NotAllowed)),
            ("'echo hi; id'", Err(R::NotAllowed)),
            ("/usr/bin/echo hi", Err(R::NotAllowed)),
            ("echo hi; id -un", Err(R::Operator)),
            ("echo hi;id", Err(R::Operator)),
            ("echo hi && id", Err(R::Operator)),
            ("echo hi || id", Err(R::Operator)),
            ("echo hi | sh", Err(R::Operator)),
            ("echo hi |& sh", Err(R::Operator)),
            ("echo hi & id", Err(R::Operator)),
            ("(echo hi)", Err(R::Operator)),
            ("echo hi\nid", Err(R::Newline)),
            ("echo 'hi\nid'", Err(R::Newline)),
            ("echo hi \\\nid", Err(R::Newline)),
            ("echo hi\r", Err(R::Control)),
            ("echo hi\0; id", Err(R::Control)),
            ("echo \x1b[2J", Err(R::Control)),
            ("echo $(id)", Err(R::Expansion)),
            ("echo \"$(id)\"", Err(R::Expansion)),
            ("echo `id`", Err(R::Expansion)),
            ("echo \"`id`\"", Err(R::Expansion)),
            ("echo ${PATH}", Err(R::Expansion)),
            ("echo $HOME", Err(R::Expansion)),
            ("echo $((1+1))", Err(R::Expansion)),
            ("echo $'\\x3b id'", Err(R::Expansion)),
            ("echo <(id)", Err(R::Expansion)),
            ("echo hi > /tmp/x", Err(R::Redirection)),
            ("echo hi >> ~/.bashrc", Err(R::Redirection)),
            ("echo < /etc/shadow", Err(R::Redirection)),
            ("echo hi 2>&1", Err(R::Redirection)),
            ("{echo,hi}", Err(R::Brace)),
            ("echo {a,b}", Err(R::Brace)),
            ("echo x{1..3}", Err(R::Brace)),
            ("PATH=/tmp echo hi", Err(R::Assignment)),
            ("BASH_ENV=/tmp/x echo hi", Err(R::Assignment)),
            ("# echo hi", Err(R::Comment)),
            ("echo hi # x", Err(R::Comment)),
            ("/bin/ech? hi", Err(R::ProgramPattern)),
            ("/bin/ech* hi", Err(R::ProgramPattern)),
            ("/bin/[e]cho hi", Err(R::ProgramPattern)),
            (
                "echo 'hi",
                Err(R::Unparseable(shell::ShellError::UnterminatedSingleQuote)),
            ),
            (
                "echo hi\\",
                Err(R::Unparseable(shell::ShellError::TrailingBackslash)),
            ),
            ("", Err(R::Empty)),
            ("   ", Err(R::Empty)),
        ],
    );
    assert_eq!(r.check(b"echo \xff"), Err(R::NotUtf8));
}

#[test]
fn the_readme_example_means_what_it_says() {
    // README: --exec-allow "pg_isready*" --exec-allow "uptime" --exec-deny "*;*"
    let r = rules(&["pg_isready*", "uptime"], &["*;*"]);
    table(
        &r,
        &[
            ("pg_isready", Ok(())),
            ("uptime", Ok(())),
            ("pg_isready && sh", Err(R::Operator)),
            ("pg_isready || sh", Err(R::Operator)),
            ("pg_isready | sh", Err(R::Operator)),
            ("pg_isready & sh", Err(R::Operator)),
            ("pg_isready\nsh", Err(R::Newline)),
            ("pg_isready `sh`", Err(R::Expansion)),
            ("pg_isready $(sh)", Err(R::Expansion)),
            ("uptime; id", Err(R::Denied("*;*".into()))),
            // A pattern word covers one word: arguments need `pg_isready *`.
            ("pg_isready -h db", Err(R::NotAllowed)),
        ],
    );
    let r = rules(&["pg_isready *"], &[]);
    table(
        &r,
        &[
            ("pg_isready", Ok(())),
            ("pg_isready -h db -p 5432", Ok(())),
            ("pg_isready -h db && sh", Err(R::Operator)),
            ("pg_isready_evil", Err(R::NotAllowed)),
        ],
    );
}

#[test]
fn pattern_words_are_globs_over_one_word() {
    let r = rules(
        &[
            "systemctl status *",
            "tail -n ? /var/log/*.log",
            "grep 'a b' *",
            "cat '*'",
        ],
        &[],
    );
    table(
        &r,
        &[
            ("systemctl status", Ok(())),
            ("systemctl status nginx sshd", Ok(())),
            ("systemctl restart nginx", Err(R::NotAllowed)),
            ("systemctl  status  nginx", Ok(())),
            ("tail -n 5 /var/log/app.log", Ok(())),
            ("tail -n 50 /var/log/app.log", Err(R::NotAllowed)),
            ("tail -n 5 /var/log/app.log /etc/shadow", Err(R::NotAllowed)),
            ("tail -n 5 '/var/log/a b.log'", Ok(())),
            ("grep \"a b\" x", Ok(())),
            ("grep a b x", Err(R::NotAllowed)),
            ("cat '*'", Ok(())),
            ("cat x", Err(R::NotAllowed)),
        ],
    );
    let r = rules(&["*"], &[]);
    table(
        &r,
        &[
            ("anything at all", Ok(())),
            ("anything; at all", Err(R::Operator)),
        ],
    );
}

#[test]
fn deny_wins_and_sees_through_quoting() {
    let r = rules(&[], &["rm *", "*;*", "reboot"]);
    let denied = |p: &str| Err(R::Denied(p.into()));
    table(
        &r,
        &[
            ("ls -l", Ok(())),
            ("ls && df -h", Ok(())),
            ("ls | grep x > /tmp/y", Ok(())),
            ("echo 'r''m'x", Ok(())),
            ("rm -rf /x", denied("rm *")),
            ("rm", denied("rm *")),
            ("/bin/rm x", denied("rm *")),
            ("sudo rm x", denied("rm *")),
            ("X=1 rm x", denied("rm *")),
            ("r''m x", denied("rm *")),
            ("\\rm x", denied("rm *")),
            ("\"rm\" x", denied("rm *")),
            ("ls && rm x", denied("rm *")),
            ("ls | rm x", denied("rm *")),
            ("ls\nrm x", denied("rm *")),
            ("ls # x\nrm x", denied("rm *")),
            ("{ rm x", denied("rm *")),
            ("reboot", denied("reboot")),
            ("sudo reboot now", denied("reboot")),
            ("ls; id", denied("*;*")),
            ("echo 'a;b'", denied("*;*")),
            ("$(echo rm) x", Err(R::Expansion)),
            ("`echo rm` x", Err(R::Expansion)),
            ("$X -rf /", Err(R::Expansion)),
            ("{rm,-rf,/}", Err(R::Brace)),
            ("/bin/r? x", Err(R::ProgramPattern)),
            (
                "echo 'rm x",
                Err(R::Unparseable(shell::ShellError::UnterminatedSingleQuote)),
            ),
            ("ls\r", Err(R::Control)),
        ],
    );
    assert_eq!(r.check(b"ls \xff"), Err(R::NotUtf8));
    let r = rules(&["systemctl status *", "uptime"], &["* --force*"]);
    table(
        &r,
        &[
            ("uptime", Ok(())),
            ("id", Err(R::NotAllowed)),
            (
                "systemctl status x --force",
                Err(R::Denied("* --force*".into())),
            ),
        ],
    );
    // Deny patterns are matched before the allow list is consulted.
    let r = rules(&["sudo *"], &["sudo rm *"]);
    table(
        &r,
        &[
            ("sudo ls", Ok(())),
            ("sudo rm x", Err(R::Denied("sudo rm *".into()))),
            ("sudo /bin/rm x", Ok(())),
        ],
    );
}

#[test]
fn empty_lists_allow_everything() {
    let r = ExecRules::default();
    for c in [&b"anything; id"[..], b"\xff\xfe", b"$(id)", b""] {
        assert!(r.permits(c));
    }
}

#[test]
fn patterns_are_checked() {
    for ok in [
        "uptime",
        "systemctl status *",
        "*;*",
        "grep 'a b' *",
        "echo \"x\\\"y\"",
        "a\\ b",
        "''",
    ] {
        assert_eq!(ExecRules::check_pattern(ok), Ok(()), "{ok:?}");
    }
    assert_eq!(ExecRules::check_pattern(""), Err(PatternError::Empty));
    assert_eq!(ExecRules::check_pattern(" \t "), Err(PatternError::Empty));
    assert!(matches!(
        ExecRules::check_pattern("echo 'x"),
        Err(PatternError::UnterminatedQuote { .. })
    ));
    assert!(matches!(
        ExecRules::check_pattern("echo \"x"),
        Err(PatternError::UnterminatedQuote { .. })
    ));
    assert!(matches!(
        ExecRules::check_pattern("echo x\\"),
        Err(PatternError::TrailingBackslash { .. })
    ));
    assert!(matches!(
        ExecRules::check_pattern("echo\nid"),
        Err(PatternError::ControlCharacter { .. })
    ));
    // An unusable allow pattern allows nothing; an unusable deny pattern
    // still works as a raw glob.
    let r = rules(&["echo 'x"], &[]);
    assert!(!r.permits(b"echo 'x"));
    let r = rules(&[], &["*'*"]);
    assert!(!r.permits(b"echo \"it's\""));
    assert!(r.permits(b"echo hi"));
}
