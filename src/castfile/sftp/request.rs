//! Client → server: each request decoded into its markers, and what must be
//! remembered to read its reply.

use super::*;

impl SftpLog {
    pub(super) fn request(&mut self, p: &[u8], out: &mut Vec<String>) {
        let Some((&kind, rest)) = p.split_first() else {
            return;
        };
        if kind == fxp::INIT {
            return;
        }
        let mut r = Reader(rest);
        let decoded = match r.u32() {
            Some(id) => self.decode(kind, id, &mut r, out),
            None => None,
        };
        if decoded.is_none() {
            out.push(match wire::request_name(kind) {
                Some(name) => format!("sftp: malformed {name} request ({} bytes)", p.len()),
                None => format!("sftp: request type {kind} not decoded ({} bytes)", p.len()),
            });
        }
    }

    /// One request's markers; `None` when its fields do not parse (every
    /// field is read before anything is remembered or said).
    fn decode(&mut self, kind: u8, id: u32, r: &mut Reader, out: &mut Vec<String>) -> Option<()> {
        let path_op = |verb: &str, r: &mut Reader| -> Option<String> {
            Some(format!("sftp {verb} {}", token(r.bytes()?)))
        };
        match kind {
            fxp::OPEN | fxp::OPENDIR => {
                let raw = r.bytes()?;
                let how = if kind == fxp::OPEN {
                    let pflags = r.u32()?;
                    let attrs = attr_words(r, false);
                    Some(format!("({}){attrs}", wire::open_flags(pflags)))
                } else {
                    None
                };
                let path = token(raw);
                let marker = open_marker(&path, how.as_deref());
                let base = basename(raw);
                if self.expect(id, Pending::Open { path, how, base }) {
                    out.push(marker);
                } else {
                    out.push(marker + NOT_FOLLOWED);
                }
            }
            fxp::CLOSE => {
                let handle = r.bytes()?;
                match self.handles.remove(handle) {
                    Some(h) => {
                        self.retained -= handle_cost(handle, &h);
                        // A refusal repeats the short form, not the summary.
                        let short = format!("sftp close {}", h.path);
                        let summary = close_marker(h);
                        if self.expect(id, Pending::Said(short)) {
                            out.push(summary);
                        } else {
                            out.push(summary + NOT_FOLLOWED);
                        }
                    }
                    None => self.said(id, "sftp close of an untracked handle".into(), out),
                }
            }
            fxp::READ => {
                let handle = r.bytes()?;
                let offset = r.u64()?;
                let _len = r.u32()?;
                if self.file(handle).is_some() {
                    let pending = Pending::Read {
                        handle: handle.to_vec(),
                        offset,
                    };
                    if !self.expect(id, pending)
                        && let Some(f) = self.file(handle)
                    {
                        // Its data will go by uncounted.
                        f.unfollowed = true;
                        f.sequential = false;
                    }
                }
            }
            fxp::WRITE => {
                let handle = r.bytes()?;
                let offset = r.u64()?;
                let data = r.bytes()?;
                self.keep(handle, offset, data);
                let Some(f) = self.file(handle) else {
                    return Some(());
                };
                f.sequential &= offset == f.written;
                if f.sequential {
                    f.sum.update(data);
                }
                f.written += data.len() as u64;
                let pending = Pending::Write {
                    handle: handle.to_vec(),
                };
                if !self.expect(id, pending)
                    && let Some(f) = self.file(handle)
                {
                    // A refusal of this write would go unseen.
                    f.unfollowed = true;
                }
            }
            fxp::READDIR => {
                let handle = r.bytes()?;
                if let Some(Handle {
                    opened: Opened::Dir { .. },
                    ..
                }) = self.handles.get(handle)
                {
                    let pending = Pending::ReadDir {
                        handle: handle.to_vec(),
                    };
                    if !self.expect(id, pending)
                        && let Some(Handle {
                            opened: Opened::Dir { unfollowed, .. },
                            ..
                        }) = self.handles.get_mut(handle)
                    {
                        *unfollowed = true;
                    }
                }
            }
            // The handle's path was named when it was opened; its
            // attributes are no news.
            fxp::FSTAT => {
                r.bytes()?;
            }
            fxp::LSTAT => self.said(id, path_op("lstat", r)?, out),
            fxp::STAT => self.said(id, path_op("stat", r)?, out),
            fxp::REALPATH => self.said(id, path_op("realpath", r)?, out),
            fxp::READLINK => self.said(id, path_op("readlink", r)?, out),
            fxp::REMOVE => self.said(id, path_op("remove", r)?, out),
            fxp::RMDIR => self.said(id, path_op("rmdir", r)?, out),
            fxp::MKDIR => {
                let path = token(r.bytes()?);
                let attrs = attr_words(r, false);
                self.said(id, format!("sftp mkdir {path}{attrs}"), out);
            }
            fxp::SETSTAT => {
                let path = token(r.bytes()?);
                let attrs = attr_words(r, true);
                self.said(id, format!("sftp setstat {path}{attrs}"), out);
            }
            fxp::FSETSTAT => {
                let path = self.handle_name(r.bytes()?);
                let attrs = attr_words(r, true);
                self.said(id, format!("sftp fsetstat {path}{attrs}"), out);
            }
            fxp::RENAME => {
                let from = token(r.bytes()?);
                let to = token(r.bytes()?);
                self.said(id, format!("sftp rename {from} -> {to}"), out);
            }
            fxp::SYMLINK => {
                let first = token(r.bytes()?);
                let second = token(r.bytes()?);
                // OpenSSH sends (and its server reads) targetpath, then
                // linkpath: the reverse of the draft's linkpath, targetpath
                // (PROTOCOL 4.1). Other servers follow the draft.
                let marker = if self.draft_symlink {
                    format!(
                        "sftp symlink {first} pointing to {second} (draft argument order: \
                         the server announced no OpenSSH extension)"
                    )
                } else {
                    format!("sftp symlink {second} pointing to {first}")
                };
                self.said(id, marker, out);
            }
            fxp::EXTENDED => {
                let name = r.bytes()?;
                let marker = self.extended(name, r).unwrap_or_else(|| {
                    format!("sftp extension {} (malformed arguments)", token(name))
                });
                self.said(id, marker, out);
            }
            _ => {
                // A type version 3 does not define: named, and its
                // refusal followed like any other's.
                let marker = format!(
                    "sftp: request type {kind} not decoded ({} bytes)",
                    r.remaining() + 5
                );
                self.said(id, marker, out);
            }
        }
        Some(())
    }

    /// An EXTENDED request's marker; `None` when a known extension's
    /// arguments do not parse.
    fn extended(&mut self, name: &[u8], r: &mut Reader) -> Option<String> {
        Some(match name {
            b"posix-rename@openssh.com" => {
                let from = token(r.bytes()?);
                let to = token(r.bytes()?);
                format!("sftp rename {from} -> {to} (posix-rename@openssh.com)")
            }
            // link(oldpath, newpath): newpath is the new name.
            b"hardlink@openssh.com" => {
                let old = token(r.bytes()?);
                let new = token(r.bytes()?);
                format!("sftp hardlink {new} to existing {old}")
            }
            b"lsetstat@openssh.com" => {
                let path = token(r.bytes()?);
                format!("sftp lsetstat {path}{}", attr_words(r, true))
            }
            b"fsync@openssh.com" => format!("sftp fsync {}", self.handle_name(r.bytes()?)),
            b"fstatvfs@openssh.com" => {
                format!("sftp fstatvfs {}", self.handle_name(r.bytes()?))
            }
            b"statvfs@openssh.com" => format!("sftp statvfs {}", token(r.bytes()?)),
            b"expand-path@openssh.com" => {
                format!("sftp expand-path {}", token(r.bytes()?))
            }
            b"limits@openssh.com" => "sftp limits".into(),
            b"home-directory" => {
                let user = r.bytes()?;
                if user.is_empty() {
                    r#"sftp home-directory "" (the current user)"#.into()
                } else {
                    format!("sftp home-directory {}", token(user))
                }
            }
            b"users-groups-by-id@openssh.com" => {
                let uids = id_list(r.bytes()?)?;
                let gids = id_list(r.bytes()?)?;
                format!("sftp users-groups-by-id uids {uids} gids {gids}")
            }
            b"copy-data" => {
                let from = r.bytes()?;
                let from_offset = r.u64()?;
                let length = r.u64()?;
                let to = r.bytes()?;
                let to_offset = r.u64()?;
                let span = if length == 0 {
                    "to end of file".to_string()
                } else {
                    format!("{length} bytes")
                };
                if let Some(f) = self.file(from) {
                    f.copied_from = true;
                }
                if let Some(f) = self.file(to) {
                    f.copied_into = true;
                }
                format!(
                    "sftp copy-data from {} (offset {from_offset}, {span}) to {} (offset {to_offset})",
                    self.handle_name(from),
                    self.handle_name(to)
                )
            }
            _ => format!(
                "sftp extension {} (arguments not decoded, {} bytes)",
                token(name),
                r.remaining()
            ),
        })
    }
}
