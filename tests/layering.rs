//! The layering rules of ARCHITECTURE.md ("Module map"), checked over the
//! source text so CI enforces them rather than a reminder:
//!
//! - russh only in `gateway/` and `upstream/`;
//! - SQL (`sqlx`) only in `store/`;
//! - HTTP crates only in `admin/`, the lock webhook client and the OIDC
//!   client (`sso/client.rs`, the only user of `openidconnect`);
//! - `policy/` and `castfile/` (the recording format) pure (no tokio, no
//!   sockets, no clock for `policy/`, no imports of the rest of the crate but their leaves);
//! - no cycle among the top-level modules of the library.
//!
//! Test code (`tests.rs`, `*_tests.rs`, `tests/` folders, `#[cfg(test)]`
//! items) is left out: it may reach anything. Comments and string literals
//! are blanked before anything is looked for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One production source file of the library (or `main.rs`).
struct Source {
    /// Relative to `src/`, with `/` separators.
    path: String,
    /// The top-level module it belongs to (`gateway` for `gateway/login.rs`).
    module: String,
    /// The code, comments and literals blanked, test items removed.
    code: String,
}

const HTTP_CRATES: &[&str] = &["axum", "axum_server", "hyper", "reqwest", "http", "tower"];
/// The one HTTP client outside `admin/`: the lockdown rules' webhook.
const WEBHOOK_CLIENT: &str = "lockdown/webhook.rs";
/// The OpenID Connect relying party's back channel to the IdPs.
const OIDC_CLIENT: &str = "sso/client.rs";

#[test]
fn russh_only_in_gateway_and_upstream() {
    let bad = users_of(&["russh", "russh_keys"], |s| {
        !in_any(s, &["gateway", "upstream"])
    });
    assert!(
        bad.is_empty(),
        "russh outside gateway/ and upstream/: {bad:#?}"
    );
}

#[test]
fn sql_only_in_store() {
    let bad = users_of(&["sqlx"], |s| !in_any(s, &["store"]));
    assert!(bad.is_empty(), "sqlx outside store/: {bad:#?}");
}

#[test]
fn http_only_in_admin_and_the_webhook_client() {
    let bad = users_of(HTTP_CRATES, |s| {
        !in_any(s, &["admin"]) && s.path != WEBHOOK_CLIENT && s.path != OIDC_CLIENT
    });
    assert!(
        bad.is_empty(),
        "HTTP crates outside admin/, {WEBHOOK_CLIENT} and {OIDC_CLIENT}: {bad:#?}"
    );
}

#[test]
fn openidconnect_only_in_the_oidc_client() {
    let bad = users_of(&["openidconnect"], |s| s.path != OIDC_CLIENT);
    assert!(
        bad.is_empty(),
        "openidconnect outside {OIDC_CLIENT}: {bad:#?}"
    );
    assert!(!users_of(&["openidconnect"], |_| true).is_empty());
}

#[test]
fn policy_is_pure() {
    let forbidden = [
        "tokio::",
        "std::fs",
        "std::process",
        "std::env",
        "TcpStream",
        "TcpListener",
        "UdpSocket",
        "SystemTime::now",
        "Instant::now",
        "Timestamp::now",
        "Zoned::now",
        "thread::spawn",
        "async ",
        ".await",
    ];
    let bad = impurities("policy", &forbidden, &["policy"]);
    assert!(bad.is_empty(), "policy/ is not pure: {bad:#?}");
}

#[test]
fn castfile_is_pure() {
    // Plain synchronous `std::io` over files it is handed: no runtime, no
    // network, no database; `secret_file` is a pure-`std` leaf.
    let forbidden = [
        "tokio::",
        "russh",
        "sqlx::",
        "std::process",
        "TcpStream",
        "TcpListener",
        "UdpSocket",
        "async ",
        ".await",
    ];
    let bad = impurities("castfile", &forbidden, &["castfile", "secret_file"]);
    assert!(bad.is_empty(), "castfile/ is not pure: {bad:#?}");
}

#[test]
fn no_cycle_among_top_level_modules() {
    let graph = module_graph(&sources());
    let cycles: Vec<Vec<String>> = strongly_connected(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect();
    let why: Vec<String> = cycles.iter().map(|c| explain(c, &graph)).collect();
    assert!(cycles.is_empty(), "module cycles:\n{}", why.join("\n"));
}

/// The modules the middle stands on import only what ARCHITECTURE.md lists
/// for them, so none can start a loop again (issue 16: the clock in `app`,
/// `[lockdown]` parsing importing `jit`, `audit` importing `forward`).
#[test]
fn the_lower_modules_import_only_what_they_may() {
    let may: &[(&str, &[&str])] = &[
        ("clock", &[]),
        ("ids", &[]),
        ("sync", &[]),
        ("boxed_queue", &[]),
        ("names", &[]),
        ("secret_file", &[]),
        ("config", &["names"]),
        ("lock_state", &["policy", "sync"]),
        ("registry", &["policy", "sync"]),
        ("store", &["policy", "sync"]),
        ("sso", &["config", "names", "sync"]),
        (
            "audit",
            &[
                "store",
                "config",
                "names",
                "clock",
                "ids",
                "secret_file",
                "sync",
            ],
        ),
    ];
    let graph = module_graph(&sources());
    let mut bad = Vec::new();
    for (module, allowed) in may {
        let Some(uses) = graph.get(*module) else {
            bad.push(format!("{module}: not found"));
            continue;
        };
        for u in uses.iter().filter(|u| !allowed.contains(&u.as_str())) {
            bad.push(format!("{module} imports {u}"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The rules would pass on an empty tree: make sure the reader finds what
/// the crate really has, in the shapes it is written.
#[test]
fn the_reader_sees_the_imports() {
    let graph = module_graph(&sources());
    let edges = |m: &str| graph.get(m).cloned().unwrap_or_default();
    assert!(edges("gateway").contains("session"), "{graph:#?}");
    assert!(edges("cli").contains("store"), "{graph:#?}");
    assert!(!users_of(&["russh"], |_| true).is_empty());
    assert!(!users_of(&["sqlx"], |_| true).is_empty());
    assert!(!users_of(&["reqwest"], |_| true).is_empty());
    // Grouped paths, `super::` from a top-level file, literals and comments.
    let s = source(
        "x/mod.rs",
        "use crate::{a::B, b};\nuse super::c::D;\n// crate::e\nlet s = \"crate::f\";\nlet c = '\"'; crate::g::h();\n#[cfg(test)]\nmod tests { use crate::i; }\n",
    );
    let seen: BTreeSet<String> = imports(&s).into_iter().collect();
    let want: BTreeSet<String> = ["a", "b", "c", "g"].iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, want);
}

// ---------------------------------------------------------------- rules

fn in_any(s: &Source, modules: &[&str]) -> bool {
    modules.contains(&s.module.as_str())
}

/// `file: crate` for each production file outside `allowed` naming one of
/// `crates` as a path root (`reqwest::Client`, `use sqlx;`).
fn users_of(crates: &[&str], outside: impl Fn(&Source) -> bool) -> Vec<String> {
    let mut bad = Vec::new();
    for s in sources().iter().filter(|s| outside(s)) {
        for c in crates {
            if names_crate(&s.code, c) {
                bad.push(format!("src/{}: {c}", s.path));
            }
        }
    }
    bad
}

fn names_crate(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = &code[at + name.len()..];
        let starts = !matches!(before, Some(c) if c.is_alphanumeric() || c == '_' || c == ':');
        starts && (after.starts_with("::") || after.trim_start().starts_with(';'))
    })
}

fn impurities(module: &str, forbidden: &[&str], may_import: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    // A renamed or misspelt module would otherwise pass with nothing checked.
    let files: Vec<Source> = sources()
        .into_iter()
        .filter(|s| s.module == module)
        .collect();
    assert!(!files.is_empty(), "no source files for module `{module}`");
    for s in &files {
        for f in forbidden {
            if s.code.contains(f) {
                bad.push(format!("src/{}: {f}", s.path));
            }
        }
        for m in imports(s) {
            if !may_import.contains(&m.as_str()) {
                bad.push(format!("src/{}: crate::{m}", s.path));
            }
        }
    }
    bad
}

// ---------------------------------------------------------------- graph

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Top-level module → the top-level modules it names through `crate::`.
/// `main.rs` (the binary, importing through `portcullis::`) is outside the
/// library and left out: nothing can import it back.
fn module_graph(sources: &[Source]) -> Graph {
    let mut g = Graph::new();
    for s in sources.iter().filter(|s| s.module != "main") {
        let out = g.entry(s.module.clone()).or_default();
        for m in imports(s) {
            if m != s.module {
                out.insert(m);
            }
        }
    }
    g
}

/// Top-level modules a file names: `crate::X`, `crate::{X, Y::Z}`, and
/// `super::X` where `super` is the crate root.
fn imports(s: &Source) -> Vec<String> {
    let mut found = Vec::new();
    let code = s.code.as_str();
    for (at, _) in code.match_indices("crate::") {
        if is_path_start(code, at) {
            roots_after(&code[at + "crate::".len()..], &mut found);
        }
    }
    let depth = module_depth(&s.path);
    for (at, _) in code.match_indices("super::") {
        if !is_path_start(code, at) {
            continue;
        }
        let mut rest = &code[at..];
        let mut up = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            up += 1;
            rest = r;
        }
        if up == depth {
            roots_after(rest, &mut found);
        }
    }
    found.retain(|m| !matches!(m.as_str(), "self" | "super" | "crate"));
    found
}

fn is_path_start(code: &str, at: usize) -> bool {
    !matches!(code[..at].chars().next_back(), Some(c) if c.is_alphanumeric() || c == '_' || c == ':')
}

/// The first path segment after `crate::`, or each one of a `{…}` group.
fn roots_after(rest: &str, found: &mut Vec<String>) {
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0usize;
        let mut item_start = true;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if item_start && (c.is_alphabetic() || c == '_') => {
                    found.push(ident(&group[i..]));
                    item_start = false;
                }
                c if item_start && !c.is_whitespace() => item_start = false,
                _ => {}
            }
        }
    } else {
        let name = ident(rest);
        if !name.is_empty() {
            found.push(name);
        }
    }
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// How many `super::` reach the crate root from this file.
fn module_depth(path: &str) -> usize {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.last() {
        Some(&"mod.rs") => parts.len() - 1,
        _ => parts.len(),
    }
}

/// Tarjan's strongly connected components.
fn strongly_connected(g: &Graph) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on_stack.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if t.on_stack.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            comp.sort();
            t.out.push(comp);
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// A cycle and the imports inside it, with the files that make each one.
fn explain(cycle: &[String], g: &Graph) -> String {
    let all = sources();
    let mut lines = vec![format!("cycle: {}", cycle.join(" ↔ "))];
    for from in cycle {
        for to in g
            .get(from)
            .into_iter()
            .flatten()
            .filter(|t| cycle.contains(t))
        {
            let files: Vec<String> = all
                .iter()
                .filter(|s| &s.module == from && imports(s).contains(to))
                .map(|s| format!("src/{}", s.path))
                .collect();
            lines.push(format!("  {from} → {to} ({})", files.join(", ")));
        }
    }
    lines.join("\n")
}

// ---------------------------------------------------------------- reading

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut out = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(&root)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "lib.rs" || is_test_file(&rel) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read a source file");
        out.push(source(&rel, &text));
    }
    assert!(out.len() > 50, "found only {} source files", out.len());
    out
}

fn source(rel: &str, text: &str) -> Source {
    let first = rel.split('/').next().unwrap_or(rel);
    Source {
        path: rel.to_string(),
        module: first.trim_end_matches(".rs").to_string(),
        code: drop_test_items(&blank_comments_and_literals(text)),
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_test_file(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    let name = parts.last().copied().unwrap_or("");
    name == "tests.rs" || name.ends_with("_tests.rs") || parts.contains(&"tests")
}

/// Comments become nothing, string and char literals become `""`/`' '`, so
/// a message naming `crate::x` or `russh::` is not taken for code.
fn blank_comments_and_literals(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += block_comment_len(rest);
        } else if let Some(len) = raw_string_len(rest) {
            out.push_str("\"\"");
            i += len;
        } else if rest.starts_with('"') || rest.starts_with("b\"") {
            let open = if rest.starts_with('b') { 2 } else { 1 };
            let mut j = open;
            while j < rest.len() && b[i + j] != b'"' {
                j += if b[i + j] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i += (j + 1).min(rest.len());
        } else if rest.starts_with('\'') {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let len = char_literal_len(rest);
            out.push_str(if len > 0 { "' '" } else { "'" });
            i += len.max(1);
        } else {
            let c = rest.chars().next().expect("not at the end");
            // An identifier ending in r or b must not start a literal.
            if c.is_alphanumeric() || c == '_' {
                let w = ident(rest);
                out.push_str(&w);
                i += w.len().max(c.len_utf8());
            } else {
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

fn block_comment_len(rest: &str) -> usize {
    let mut depth = 0;
    let b = rest.as_bytes();
    let mut j = 0;
    while j + 1 < b.len() {
        if &b[j..j + 2] == b"/*" {
            depth += 1;
            j += 2;
        } else if &b[j..j + 2] == b"*/" {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    rest.len()
}

fn raw_string_len(rest: &str) -> Option<usize> {
    let body = rest.strip_prefix("br").or_else(|| rest.strip_prefix('r'))?;
    let hashes = body.len() - body.trim_start_matches('#').len();
    let after = body[hashes..].strip_prefix('"')?;
    let close = format!("\"{}", "#".repeat(hashes));
    let end = after.find(&close)? + close.len();
    Some(rest.len() - after.len() + end)
}

fn char_literal_len(rest: &str) -> usize {
    let mut chars = rest.char_indices().skip(1);
    match chars.next() {
        Some((_, '\\')) => rest[2..].find('\'').map_or(0, |k| k + 3),
        Some((_, c)) => {
            let end = 1 + c.len_utf8();
            if rest[end..].starts_with('\'') {
                end + 1
            } else {
                0
            }
        }
        None => 0,
    }
}

/// Removes every item marked `#[cfg(test)]` (a `mod tests { … }`, a `use`,
/// a helper function): test code may import anything.
fn drop_test_items(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        rest = &rest[at + "#[cfg(test)]".len()..];
        rest = &rest[item_len(rest)..];
    }
    out.push_str(rest);
    out
}

/// The length of the item that starts here: up to a `;` before any brace,
/// or to the brace that closes the first one.
fn item_len(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            ';' if depth == 0 => return i + 1,
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    s.len()
}
