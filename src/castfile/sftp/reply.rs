//! Server → client: replies matched to their requests (refusals said,
//! handles opened, listings counted) and file contents summarised or kept.

use super::*;

impl SftpLog {
    pub(super) fn reply(&mut self, p: &[u8], out: &mut Vec<String>) {
        let Some((&kind, rest)) = p.split_first() else {
            return;
        };
        let mut r = Reader(rest);
        // VERSION's first field is the version, every other reply's the id.
        let Some(id) = r.u32() else { return };
        match kind {
            fxp::VERSION => self.version(id, &mut r, out),
            fxp::STATUS => {
                let code = r.u32();
                let message = r.bytes().unwrap_or_default();
                // Worded only for a refusal: most replies are a write's "ok".
                let why = || match code {
                    Some(code) => wire::status_text(code, message),
                    None => "(malformed status reply)".to_string(),
                };
                match self.answered(id) {
                    Some(_) if code == Some(0) => {}
                    Some(Pending::Said(marker)) => out.push(format!("{marker} failed: {}", why())),
                    Some(Pending::Open { path, how, .. }) => out.push(format!(
                        "{} failed: {}",
                        open_marker(&path, how.as_deref()),
                        why()
                    )),
                    Some(Pending::Write { handle }) => {
                        if let Some(f) = self.file(&handle) {
                            f.refused += 1;
                            // The name only: the server's message is not
                            // kept for the file's lifetime.
                            f.first_refusal.get_or_insert_with(|| {
                                code.map_or_else(|| "malformed status".into(), wire::status_name)
                            });
                        }
                    }
                    // A read or a listing that ends (EOF) or fails is
                    // simply not counted.
                    Some(Pending::Read { .. } | Pending::ReadDir { .. }) | None => {}
                }
            }
            fxp::HANDLE => {
                let handle = r.bytes();
                match (self.answered(id), handle) {
                    (Some(Pending::Open { path, how, base }), Some(handle)) => {
                        self.opened(handle, path, how.is_none(), &base, out);
                    }
                    (Some(Pending::Open { path, how, .. }), None) => out.push(format!(
                        "{}: malformed handle reply, its reads, writes and close are not summarised",
                        open_marker(&path, how.as_deref())
                    )),
                    (Some(_), _) => {}
                    (None, _) => out.push(
                        "sftp: a handle was returned for a request not followed; its reads, \
                         writes and close are not summarised"
                            .into(),
                    ),
                }
            }
            fxp::DATA => {
                let Some(Pending::Read { handle, offset }) = self.answered(id) else {
                    return;
                };
                let Some(data) = r.bytes() else { return };
                self.keep(&handle, offset, data);
                let Some(f) = self.file(&handle) else { return };
                if f.written == 0 {
                    f.sequential &= offset == f.read;
                    if f.sequential {
                        f.sum.update(data);
                    }
                }
                f.read += data.len() as u64;
            }
            fxp::NAME => {
                let Some(Pending::ReadDir { handle }) = self.answered(id) else {
                    return;
                };
                let Some(count) = r.u32() else { return };
                if let Some(Handle {
                    opened: Opened::Dir { entries, .. },
                    ..
                }) = self.handles.get_mut(&handle)
                {
                    *entries = entries.saturating_add(u64::from(count));
                }
            }
            // ATTRS, EXTENDED_REPLY and anything else: the request is answered.
            _ => {
                self.answered(id);
            }
        }
    }

    fn version(&mut self, version: u32, r: &mut Reader, out: &mut Vec<String>) {
        if version != 3 {
            // Later versions move fields (OPEN's flags, ATTRS, RENAME's
            // flags): decoding them as version 3 would write false markers.
            self.stop(
                out,
                format!(
                    "sftp: the server chose version {version}; only version 3 is decoded, \
                     file operations are not followed further"
                ),
            );
            return;
        }
        let mut openssh = false;
        while let (Some(name), Some(_)) = (r.bytes(), r.bytes()) {
            openssh |= name.ends_with(b"@openssh.com");
        }
        self.draft_symlink = !openssh;
    }

    /// The server returned `handle` for an open of `path`.
    fn opened(
        &mut self,
        handle: &[u8],
        path: String,
        dir: bool,
        base: &str,
        out: &mut Vec<String>,
    ) {
        let verb = if dir { "opendir" } else { "open" };
        let full = self.handles.len() >= MAX_HANDLES && !self.handles.contains_key(handle);
        let cost = entry_cost(handle, &path, dir);
        if full || self.retained + cost > MAX_RETAINED {
            out.push(format!(
                "sftp {verb} {path}: handle not tracked ({} open handles already followed); \
                 its reads, writes and close are not summarised",
                self.handles.len()
            ));
            return;
        }
        let opened = if dir {
            Opened::Dir {
                entries: 0,
                unfollowed: false,
            }
        } else {
            Opened::File(Box::new(File {
                copy: self.new_copy(base, &path),
                written: 0,
                read: 0,
                sum: Checksum::default(),
                sequential: true,
                refused: 0,
                first_refusal: None,
                copied_into: false,
                copied_from: false,
                unfollowed: false,
            }))
        };
        let h = Handle { path, opened };
        self.retained += handle_cost(handle, &h);
        if let Some(old) = self.handles.insert(handle.to_vec(), h) {
            // The server gave out a handle still open: the older file's
            // summary ends here.
            self.retained -= handle_cost(handle, &old);
            out.push(format!(
                "{} (cut short: the server gave its handle to another open)",
                close_marker(old)
            ));
        }
    }

    fn new_copy(&mut self, base: &str, path: &str) -> Option<(std::fs::File, String)> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.capture.clone()?;
        self.copies += 1;
        let name = format!(
            "{:04}-{}",
            self.copies,
            if base.is_empty() { "file" } else { base }
        );
        let made = std::fs::create_dir_all(&dir).and_then(|_| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dir.join(&name))
        });
        match made {
            Ok(f) => Some((f, name)),
            Err(e) => {
                self.capture_failed = Some(format!("cannot keep a copy of {path}: {e}"));
                None
            }
        }
    }

    pub(super) fn keep(&mut self, handle: &[u8], offset: u64, data: &[u8]) {
        use std::os::unix::fs::FileExt;
        let Some(h) = self.handles.get(handle) else {
            return;
        };
        let Opened::File(f) = &h.opened else { return };
        let Some((file, _)) = &f.copy else { return };
        if let Err(e) = file.write_all_at(data, offset) {
            self.capture_failed = Some(format!("cannot keep a copy of {}: {e}", h.path));
        }
    }
}
