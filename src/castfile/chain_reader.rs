//! Reads `.chain` files: bounded lines, parsed into records, the trailer
//! split into its exact signed bytes and its signature.

use super::cast::{LineEnd, read_line_bounded};
use super::chain::{Record, SIGNATURE_MARK, TRAILER_PREFIX, Trailer, trailer_tail};
use super::{Result, io_err};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

pub(super) struct SignedTrailer {
    pub trailer: Trailer,
    /// The exact signed bytes, as they stand in the file.
    pub raw: String,
    pub signature: String,
    pub public_key: String,
    pub line: u64,
}

pub(super) enum ChainItem {
    Record(u64, Record),
    Trailer(SignedTrailer),
    Eof,
    Torn(u64),
    Bad(u64, String),
}

pub(super) struct ChainReader {
    pub reader: Option<BufReader<File>>,
    pub path: PathBuf,
    line: u64,
    /// Bytes of complete lines read so far: where recovery cuts a torn tail.
    pub good_len: u64,
    /// Over the complete lines before the trailer, for its `chain_sha256`.
    pub hasher: Sha256,
    buf: Vec<u8>,
}

impl ChainReader {
    pub fn open(path: &Path) -> Result<Self> {
        let reader = match File::open(path) {
            Ok(f) => Some(BufReader::new(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(path)(e)),
        };
        Ok(ChainReader {
            reader,
            path: path.to_owned(),
            line: 0,
            good_len: 0,
            hasher: Sha256::new(),
            buf: Vec::new(),
        })
    }

    pub fn next(&mut self) -> Result<ChainItem> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(ChainItem::Eof);
        };
        let end = read_line_bounded(reader, &mut self.buf).map_err(io_err(&self.path))?;
        self.line += 1;
        let line = self.line;
        Ok(match end {
            LineEnd::Eof => ChainItem::Eof,
            LineEnd::Torn => ChainItem::Torn(line),
            LineEnd::TooLong => ChainItem::Bad(line, "longer than 1 MiB".to_owned()),
            LineEnd::Complete => {
                self.good_len += self.buf.len() as u64;
                let item = parse_chain_line(line, &self.buf);
                if !matches!(item, ChainItem::Trailer(_)) {
                    self.hasher.update(&self.buf);
                }
                item
            }
        })
    }
}

fn parse_chain_line(line: u64, bytes: &[u8]) -> ChainItem {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return ChainItem::Bad(line, "not UTF-8".to_owned());
    };
    let text = text.trim_end_matches('\n');
    if let Some(rest) = text.strip_prefix(TRAILER_PREFIX) {
        return parse_trailer(line, rest);
    }
    match serde_json::from_str::<Record>(text) {
        Ok(rec) => ChainItem::Record(line, rec),
        Err(e) => ChainItem::Bad(line, e.to_string()),
    }
}

/// The trailer line is `PREFIX + raw + SIGNATURE_MARK + ...`; base64 and the
/// escaped JSON strings inside `raw` cannot contain the mark, so the last
/// occurrence separates the signed bytes from the signature. The unsigned
/// tail must be byte for byte what the writer produces.
fn parse_trailer(line: u64, rest: &str) -> ChainItem {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sig {
        signature: String,
        public_key: String,
    }
    let Some(idx) = rest.rfind(SIGNATURE_MARK) else {
        return ChainItem::Bad(line, "trailer without a signature".to_owned());
    };
    let (raw, tail) = rest.split_at(idx);
    let sig: Sig = match serde_json::from_str(&format!("{{{}", &tail[1..])) {
        Ok(s) => s,
        Err(e) => return ChainItem::Bad(line, format!("trailer signature part: {e}")),
    };
    if tail != trailer_tail(&sig.signature, &sig.public_key) {
        return ChainItem::Bad(
            line,
            "trailer signature part is not in canonical form".to_owned(),
        );
    }
    match serde_json::from_str::<Trailer>(raw) {
        Ok(trailer) => ChainItem::Trailer(SignedTrailer {
            trailer,
            raw: raw.to_owned(),
            signature: sig.signature,
            public_key: sig.public_key,
            line,
        }),
        Err(e) => ChainItem::Bad(line, format!("trailer: {e}")),
    }
}
