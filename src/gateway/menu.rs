//! What a plain `USER` login (no target) gets: the list of reachable targets,
//! and just-in-time access commands for users without the admin CLI:
//!
//!   ssh alice@bastion request web01 root 2h INC-1234 disk full
//!   ssh bob@bastion requests            (pending ones, for approvers)
//!   ssh bob@bastion approve ID | deny ID

use super::channel::{ClientSink, ClientSource};
use crate::bridge::{Frame, FrameSink, FrameSource, Request};
use crate::grants::jit;
use crate::session::Session;
use bytes::Bytes;
use std::sync::Arc;

pub async fn serve(
    mut src: ClientSource,
    mut sink: ClientSink,
    session: Arc<Session>,
    targets: Vec<(String, Vec<String>)>,
) {
    let mut crlf = false;
    while let Some(frame) = src.recv().await {
        let (text, code) = match frame {
            Frame::Request(Request::Pty { .. }) => {
                crlf = true;
                continue;
            }
            Frame::Request(Request::Exec(cmd)) => {
                command(&session, &targets, &String::from_utf8_lossy(&cmd)).await
            }
            Frame::Request(Request::Shell | Request::Subsystem(_)) => {
                (render(&session.user, &targets), 1)
            }
            Frame::Close => break,
            _ => continue,
        };
        let text = if crlf {
            text.replace('\n', "\r\n")
        } else {
            text
        };
        let _ = sink.send(Frame::Data(Bytes::from(text))).await;
        let _ = sink.send(Frame::ExitStatus(code)).await;
        let _ = sink.send(Frame::Eof).await;
        let _ = sink.send(Frame::Close).await;
    }
}

async fn command(s: &Session, targets: &[(String, Vec<String>)], cmd: &str) -> (String, u32) {
    let app = s.app();
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let group = &app.config.access.approvers_group;
    let result = match words.as_slice() {
        ["request", ..] if !app.caps.requests.take(&s.user, std::time::Instant::now()) => {
            tracing::warn!(user = %s.user, "access request refused: too many requests");
            Err(jit::JitError::Invalid(
                "too many access requests from you lately; try again later".into(),
            ))
        }
        ["request", target, login, duration, reason @ ..] if !reason.is_empty() => {
            match jit::parse_duration(duration) {
                Ok(secs) => jit::request(
                    &app.store,
                    jit::Requester {
                        user: &s.user,
                        actor: &s.user,
                    },
                    target,
                    login,
                    secs,
                    app.config.access.max_request_secs,
                    &reason.join(" "),
                )
                .await
                .map(|q| {
                    format!(
                        "request {} pending: {} as {} for {}s; an approver must approve it\n",
                        q.id, q.target, q.login, q.duration_secs
                    )
                }),
                Err(e) => Err(e),
            }
        }
        ["approve", id] => jit::decide(&app.store, id, jit::Approver::Member(&s.user), group, true)
            .await
            .map(|_| format!("request {id} approved\n")),
        ["deny", id] => jit::decide(&app.store, id, jit::Approver::Member(&s.user), group, false)
            .await
            .map(|_| format!("request {id} denied\n")),
        ["requests"] => match jit::pending_for(&app.store, &s.user, group).await {
            Ok(list) => Ok(list
                .iter()
                .map(|q| {
                    format!(
                        "{}\t{} -> {} as {} for {}s\t{}\n",
                        q.id, q.user, q.target, q.login, q.duration_secs, q.reason
                    )
                })
                .collect()),
            Err(e) => Err(e),
        },
        _ => return (render(&s.user, targets), 1),
    };
    match result {
        Ok(text) => (text, 0),
        Err(e) => (format!("portcullis: {e}\n"), 1),
    }
}

fn render(user: &str, targets: &[(String, Vec<String>)]) -> String {
    let mut out = String::new();
    if targets.is_empty() {
        out.push_str(&format!(
            "portcullis: {user}, you have no targets yet; ask an administrator for a grant.\n"
        ));
    } else {
        out.push_str(&format!(
            "portcullis: {user}, you may reach these targets:\n\n"
        ));
        let width = targets.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
        for (t, logins) in targets {
            let mut l = logins.clone();
            if let Some(first) = l.first_mut() {
                first.push_str(" (default)");
            }
            out.push_str(&format!("  {t:width$}  as {}\n", l.join(", ")));
        }
        let (t, logins) = &targets[0];
        out.push_str(&format!(
            "\nConnect with: ssh {user}+{t}@<bastion>   or, for another login: ssh {user}+{}+{t}@<bastion>\n",
            logins.last().map(String::as_str).unwrap_or("LOGIN")
        ));
    }
    out.push_str(&format!(
        "Ask for temporary access: ssh {user}@<bastion> request TARGET LOGIN DURATION REASON\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn menu_lists_targets_with_default_login() {
        let t = vec![
            ("db01".to_string(), vec!["postgres".to_string()]),
            (
                "web01".to_string(),
                vec!["deploy".to_string(), "root".to_string()],
            ),
        ];
        let s = super::render("alice", &t);
        assert!(s.contains("web01  as deploy (default), root"), "{s}");
        assert!(s.contains("ssh alice+db01@<bastion>"), "{s}");
        assert!(super::render("bob", &[]).contains("no targets yet"));
    }
}
