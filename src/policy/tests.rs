use super::*;

fn g(id: &str, target: &str, logins: &[&str]) -> Grant {
    Grant::standing(id, &format!("user alice ({id})"), target, logins)
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const NOW: &str = "2026-11-26T09:00:00Z"; // Thursday 10:00 in Berlin

fn decide_now(grants: &[Grant], target: &str, login: Option<&str>) -> Result<Allow, Deny> {
    decide(grants, target, login, ts(NOW), ts(NOW))
}

#[test]
fn decision_table() {
    let grants = [
        g("g1", "web01", &["deploy", "root"]),
        g("g2", "db01", &["postgres"]),
        g("g3", "web01", &["admin"]),
    ];
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Result<(&'a str, &'a str), &'a str>,
    );
    let cases: [Case; 6] = [
        ("web01", None, Ok(("g1", "deploy"))),
        ("web01", Some("root"), Ok(("g1", "root"))),
        ("web01", Some("admin"), Ok(("g3", "admin"))),
        ("db01", None, Ok(("g2", "postgres"))),
        (
            "web01",
            Some("postgres"),
            Err("do not include login postgres (allowed: admin, deploy, root)"),
        ),
        ("mail01", None, Err("no grant for target mail01")),
    ];
    for (target, login, want) in cases {
        match (decide_now(&grants, target, login), want) {
            (Ok(a), Ok((id, l))) => {
                assert_eq!((a.grant_id.as_str(), a.login.as_str()), (id, l));
                assert!(a.deadline.is_none());
            }
            (Err(d), Err(msg)) => assert!(d.to_string().contains(msg), "{d}"),
            (got, want) => panic!("{target} {login:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn grant_with_no_logins_grants_nothing() {
    assert!(decide_now(&[g("g1", "web01", &[])], "web01", None).is_err());
}

#[test]
fn validity_edges() {
    let mut a = g("a", "web01", &["x"]);
    a.valid_from = Some(ts("2026-11-26T09:00:00Z"));
    a.valid_until = Some(ts("2026-11-26T10:00:00Z"));
    let at = |t: &str| decide(std::slice::from_ref(&a), "web01", None, ts(t), ts(t));
    assert!(matches!(
        at("2026-11-26T08:59:59Z"),
        Err(Deny::NotYetValid { .. })
    ));
    let ok = at("2026-11-26T09:00:00Z").unwrap();
    assert_eq!(
        ok.deadline,
        Some((ts("2026-11-26T10:00:00Z"), EndCause::GrantExpires))
    );
    assert!(
        matches!(at("2026-11-26T10:00:00Z"), Err(Deny::Expired { .. })),
        "until is exclusive"
    );
}

#[test]
fn window_deadline_and_next_opening() {
    let mut a = g("a", "web01", &["x"]);
    a.schedule = Some(Schedule::parse("Europe/Berlin", "mon-fri 08:00-18:00").unwrap());
    let ok = decide_now(std::slice::from_ref(&a), "web01", None).unwrap();
    assert_eq!(
        ok.deadline,
        Some((ts("2026-11-26T17:00:00Z"), EndCause::WindowCloses))
    );
    let sat = ts("2026-11-28T12:00:00Z");
    let e = decide(std::slice::from_ref(&a), "web01", None, sat, sat).unwrap_err();
    assert_eq!(
        e.to_string(),
        "access to web01 is outside your time window; it opens next at 2026-11-30 08:00 CET (Europe/Berlin)"
    );
}

#[test]
fn max_session_length_counts_from_the_start() {
    let mut a = g("a", "web01", &["x"]);
    a.max_session = Some(Duration::from_secs(3600));
    let started = ts("2026-11-26T08:30:00Z");
    let ok = decide(std::slice::from_ref(&a), "web01", None, ts(NOW), started).unwrap();
    assert_eq!(
        ok.deadline,
        Some((ts("2026-11-26T09:30:00Z"), EndCause::MaxSessionLength))
    );
    assert!(
        decide(
            std::slice::from_ref(&a),
            "web01",
            None,
            ts("2026-11-26T09:30:00Z"),
            started
        )
        .is_err()
    );
}

#[test]
fn earliest_limit_wins_within_a_grant_and_latest_deadline_across_grants() {
    let mut short = g("short", "web01", &["x"]);
    short.valid_until = Some(ts("2026-11-26T09:10:00Z"));
    short.schedule = Some(Schedule::parse("UTC", "daily 00:00-24:00").unwrap());
    let mut long = g("long", "web01", &["x"]);
    long.schedule = Some(Schedule::parse("UTC", "thu 08:00-12:00").unwrap());
    let a = decide_now(&[short.clone(), long.clone()], "web01", None).unwrap();
    assert_eq!(
        (a.grant_id.as_str(), a.deadline),
        (
            "long",
            Some((ts("2026-11-26T12:00:00Z"), EndCause::WindowCloses))
        )
    );
    let a = decide_now(&[short], "web01", None).unwrap();
    assert_eq!(
        a.deadline,
        Some((ts("2026-11-26T09:10:00Z"), EndCause::GrantExpires))
    );
    let standing = g("standing", "web01", &["x"]);
    assert_eq!(
        decide_now(&[long, standing], "web01", None)
            .unwrap()
            .grant_id,
        "standing"
    );
}

#[test]
fn the_soonest_opening_explains_a_refusal() {
    let mut later = g("later", "web01", &["x"]);
    later.schedule = Some(Schedule::parse("UTC", "fri 08:00-09:00").unwrap());
    let mut sooner = g("sooner", "web01", &["x"]);
    sooner.schedule = Some(Schedule::parse("UTC", "thu 20:00-21:00").unwrap());
    let mut expired = g("expired", "web01", &["x"]);
    expired.valid_until = Some(ts("2026-11-01T00:00:00Z"));
    let e = decide_now(&[later, expired, sooner], "web01", None).unwrap_err();
    assert!(e.to_string().contains("2026-11-26 20:00 UTC"), "{e}");
}

#[test]
fn permissions_come_from_the_chosen_grant() {
    let mut ro = g("ro", "web01", &["x"]);
    ro.permissions = Permissions::parse("exec").unwrap();
    ro.permissions.exec_rules = ExecRules {
        allow: vec!["uptime".into()],
        deny: vec![],
    };
    let a = decide_now(&[ro], "web01", None).unwrap();
    assert!(!a.permissions.allows_request(&SessionRequest::Shell));
    assert!(
        a.permissions
            .allows_request(&SessionRequest::Exec(b"uptime"))
    );
    assert!(
        !a.permissions
            .allows_request(&SessionRequest::Exec(b"reboot"))
    );
    assert!(
        !a.permissions
            .allows_request(&SessionRequest::Subsystem("sftp"))
    );
}

#[test]
fn menu_merges_grants() {
    let m = reachable_targets(&[
        g("a", "web01", &["x"]),
        g("b", "db01", &["y"]),
        g("c", "web01", &["z", "x"]),
    ]);
    assert_eq!(
        m,
        vec![
            ("db01".into(), vec!["y".into()]),
            ("web01".into(), vec!["x".into(), "z".into()])
        ]
    );
}
