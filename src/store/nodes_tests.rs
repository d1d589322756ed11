//! The node queries on SQLite and PostgreSQL alike: rows carry their run,
//! a silent run is claimed by exactly one of several racing nodes, a live
//! one by none, and a session is closed once.

use super::*;

async fn exercise(url: &str) {
    let a = Store::connect(url).await.unwrap();
    let b = Store::connect(url).await.unwrap();
    a.set_node("alpha", "run-a");
    b.set_node("beta", "run-b");
    a.node_started("run-a", "alpha", "d1", 1_000).await.unwrap();
    b.node_started("run-b", "beta", "d2", 1_000).await.unwrap();
    b.session_started(&SessionStart {
        id: "s1".into(),
        user: "alice".into(),
        source: "127.0.0.1:1".into(),
        target: "web01".into(),
        login: "tuser".into(),
        started_ms: 1_000,
        kind: SessionKind::Target,
    })
    .await
    .unwrap();
    b.recording_started(&RecordingRow::open("s1-0", "s1", 0, "shell", 1_000))
        .await
        .unwrap();
    // Each run sees only what is its own.
    assert_eq!(b.live_sessions_of_run(Some("run-b")).await.unwrap(), ["s1"]);
    assert!(
        a.live_sessions_of_run(Some("run-a"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(a.live_sessions_of_run(None).await.unwrap().is_empty());
    assert_eq!(
        b.open_recordings_of_run(Some("run-b")).await.unwrap().len(),
        1
    );
    assert!(
        a.open_recordings_of_run(Some("run-a"))
            .await
            .unwrap()
            .is_empty()
    );

    // beta beats at 5 s: with a cutoff of 4 s it is alive, claimed by no one.
    assert!(b.node_heartbeat("run-b", 5_000).await.unwrap());
    assert!(
        !a.claim_node_run("run-b", "run-a", 6_000, 4_000, false)
            .await
            .unwrap()
    );
    // Later it is silent: eight claimers race, one wins.
    let mut racers = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        racers.push(tokio::spawn(async move {
            s.claim_node_run("run-b", &format!("claimer-{i}"), 60_000, 30_000, false)
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for r in racers {
        wins += usize::from(r.await.unwrap());
    }
    assert_eq!(wins, 1, "a silent run claimed {wins} times");
    // The claimed run's own heartbeat now tells it so.
    assert!(!b.node_heartbeat("run-b", 61_000).await.unwrap());

    let end = SessionEnd {
        ended_ms: 2_000,
        reason: "cut short".into(),
        bytes_up: 0,
        bytes_down: 0,
    };
    assert!(a.close_session_once("s1", &end).await.unwrap());
    assert!(!a.close_session_once("s1", &end).await.unwrap());
    // A clean stop with nothing open is `stopped`; beta's open recording
    // keeps it from stopping cleanly.
    assert!(a.node_stopped("run-a").await.unwrap());

    let (fp, by) = a
        .cluster_key("audit_key_file", "aa", "alpha", 1)
        .await
        .unwrap();
    assert_eq!((fp.as_str(), by.as_str()), ("aa", "alpha"));
    let (fp, by) = b
        .cluster_key("audit_key_file", "bb", "beta", 2)
        .await
        .unwrap();
    assert_eq!((fp.as_str(), by.as_str()), ("aa", "alpha"));
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn sqlite_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    exercise(&url).await;
}

#[tokio::test]
async fn postgres_nodes() {
    exercise(&crate::store::audit_tests::pg_schema("nd").await).await;
}
