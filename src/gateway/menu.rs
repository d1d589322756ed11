//! What a plain `USER` login (no target) gets: the list of reachable targets
//! and how to ask for one, then the channel closes.

use super::channel::{ClientSink, ClientSource};
use crate::bridge::{Frame, FrameSink, FrameSource, Request};
use bytes::Bytes;

pub async fn serve(
    mut src: ClientSource,
    mut sink: ClientSink,
    user: String,
    targets: Vec<(String, Vec<String>)>,
) {
    let mut crlf = false;
    while let Some(frame) = src.recv().await {
        match frame {
            Frame::Request(Request::Pty { .. }) => crlf = true,
            Frame::Request(Request::Shell | Request::Exec(_) | Request::Subsystem(_)) => {
                let text = render(&user, &targets, crlf);
                let _ = sink.send(Frame::Data(Bytes::from(text))).await;
                let _ = sink.send(Frame::ExitStatus(1)).await;
                let _ = sink.send(Frame::Eof).await;
                let _ = sink.send(Frame::Close).await;
            }
            Frame::Close => break,
            _ => {}
        }
    }
}

fn render(user: &str, targets: &[(String, Vec<String>)], crlf: bool) -> String {
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
    if crlf { out.replace('\n', "\r\n") } else { out }
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
        let s = super::render("alice", &t, false);
        assert!(s.contains("web01  as deploy (default), root"), "{s}");
        assert!(s.contains("ssh alice+db01@<bastion>"), "{s}");
        assert!(super::render("bob", &[], true).ends_with("grant.\r\n"));
    }
}
