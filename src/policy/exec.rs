//! Allow and deny lists for exec commands, matched against the shell words
//! the target's shell would see.
//!
//! # Patterns
//!
//! A pattern is split into words like a command (whitespace separates,
//! quotes and backslashes group and escape). Each pattern word is a glob
//! over exactly one command word: an unquoted `*` matches any run of
//! characters (spaces and `/` included, within that one word), an unquoted
//! `?` exactly one character; everything else, and a quoted or escaped `*`
//! or `?`, matches itself. A final pattern word that is exactly `*` matches
//! zero or more remaining words. So `systemctl status *` allows
//! `systemctl status` and `systemctl status nginx sshd`; `pg_isready*`
//! allows only the one word `pg_isready` (or `pg_isready2`), and
//! `pg_isready *` allows it with any arguments.
//!
//! # Allow list
//!
//! With an allow list, a command must be one simple command the parser can
//! judge, or it is refused whatever the patterns say: no unquoted `;` `&`
//! `&&` `|` `||` `(` `)`, no redirection (`<` `>` `>>` `<(…)` ...), no
//! newline, CR, NUL or other control character, no `$` or backtick outside
//! single quotes (`$VAR`, `${…}`, `$(…)`, `$((…))`, `` `…` ``, `$'…'`, also
//! inside double quotes), no unquoted brace expansion (`{sh,-c,id}` runs
//! `sh -c id` in bash), no comment, no leading `NAME=value` (`PATH=/tmp x`
//! changes which program runs), no unquoted `*` `?` `[` in the program word
//! (`/bin/s?`), valid UTF-8, balanced quotes. Then its words must match a
//! pattern word for word. The program word matches literally: `uptime`
//! does not allow `/tmp/x/uptime`.
//!
//! # Deny list
//!
//! Deny wins, and a deny pattern matches more than the same allow pattern
//! would (matching too much is the safe side of a deny list). A command is
//! refused when a deny pattern matches the raw command string as a plain
//! glob (the old meaning, so `*;*` still refuses any `;`, quoted or not), or
//! when the pattern's words match a run of consecutive words anywhere in
//! any simple command (split at operators and newlines, redirections
//! removed), whatever follows the run; the run's first word also matches by
//! its last path component. So `rm` and `rm *` both refuse `rm -rf /x`,
//! `/bin/rm x`, `sudo rm x`, `X=1 rm x`, `ls; rm x` — and also `git rm x`
//! and `ls /tmp/rm`. With a deny list, a command the parser cannot see
//! through is refused: `$…` and backticks, unbalanced quotes, unquoted
//! brace expansion, a pattern in a program word, control characters.
//!
//! Empty lists allow every command (the exec permission alone decides).
//!
//! # What an allow list is not
//!
//! It decides which command line may *start*; it is not a sandbox. Many
//! programs run other programs: an allowed `less`, `more`, `man`, `vi`,
//! `find … -exec`, `awk`, `sed e`, `git -c core.pager=…`, `tar
//! --to-command`, `ssh`, `python`, `sudo`, `xargs` or any script the user
//! can edit hands out a shell. A `*` in a pattern word matches `/` and
//! `..` (`cat /var/log/*` also allows `cat /var/log/../../etc/shadow`), and
//! unquoted pathname patterns in arguments expand on the target (a file
//! named `--checkpoint-action=exec=sh x` turns `tar cf x.tar *` into a
//! command). Matching assumes a POSIX shell on the target (sh, bash, dash,
//! ksh, zsh); a login shell such as fish, csh or tcsh parses quotes,
//! backslashes and some operators differently. A deny list is a tripwire
//! for mistakes, not a barrier: `sh -c 'r''m x'`, `eval`, `xargs`, aliases,
//! functions and scripts hide what runs. To really restrict what a login
//! can do, restrict it on the target (a forced command in
//! `authorized_keys`, sudoers, a restricted shell), or give an exec-only
//! grant with a short list of fixed commands without `*`.

use super::shell::{self, Script, Word};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRules {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

/// A pattern that cannot be used as an exec allow or deny pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("an exec pattern must not be empty")]
    Empty,
    #[error("exec pattern {pattern:?} has an unterminated quote")]
    UnterminatedQuote { pattern: String },
    #[error("exec pattern {pattern:?} ends with a backslash")]
    TrailingBackslash { pattern: String },
    #[error("exec pattern {pattern:?} contains a control character (newline, CR, NUL...)")]
    ControlCharacter { pattern: String },
}

/// Why the lists refuse a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecRefusal {
    #[error("the command is not valid UTF-8")]
    NotUtf8,
    #[error("the command matches the deny pattern {0:?}")]
    Denied(String),
    #[error("the command cannot be parsed: {0}")]
    Unparseable(shell::ShellError),
    #[error("the command has a control character (newline, CR, NUL...)")]
    Control,
    #[error("the command uses an unquoted shell operator (; & | ( ))")]
    Operator,
    #[error("the command uses a redirection (< >)")]
    Redirection,
    #[error("the command has a newline")]
    Newline,
    #[error("the command uses $ or a backtick (expansion or substitution)")]
    Expansion,
    #[error("the command has a comment (#)")]
    Comment,
    #[error("the command uses brace expansion ({{…}})")]
    Brace,
    #[error("the command starts with a variable assignment")]
    Assignment,
    #[error("the program name is a pattern (* ? [)")]
    ProgramPattern,
    #[error("the command is empty")]
    Empty,
    #[error("the command matches no allow pattern")]
    NotAllowed,
}

impl ExecRules {
    pub fn permits(&self, command: &[u8]) -> bool {
        self.check(command).is_ok()
    }

    /// Decides a command, saying why it is refused.
    pub fn check(&self, command: &[u8]) -> Result<(), ExecRefusal> {
        if self.allow.is_empty() && self.deny.is_empty() {
            return Ok(());
        }
        let text = std::str::from_utf8(command).map_err(|_| ExecRefusal::NotUtf8)?;
        if let Some(p) = self.deny.iter().find(|p| glob(p, text)) {
            return Err(ExecRefusal::Denied(p.clone()));
        }
        let script = shell::parse(text).map_err(ExecRefusal::Unparseable)?;
        if !self.deny.is_empty() {
            opaque_to_deny(&script)?;
            for p in &self.deny {
                let Ok(pattern) = pattern_words(p) else {
                    continue; // the raw glob above is all it can mean
                };
                if script.commands.iter().any(|c| denied_wordwise(&pattern, c)) {
                    return Err(ExecRefusal::Denied(p.clone()));
                }
            }
        }
        if self.allow.is_empty() {
            return Ok(());
        }
        let words = judgeable(&script)?;
        let allowed = self
            .allow
            .iter()
            .filter_map(|p| pattern_words(p).ok())
            .any(|p| words_match(&p, &words, false));
        if allowed {
            Ok(())
        } else {
            Err(ExecRefusal::NotAllowed)
        }
    }

    /// Whether `pattern` can be used in an allow or deny list.
    pub fn check_pattern(pattern: &str) -> Result<(), PatternError> {
        pattern_words(pattern).map(|_| ())
    }
}

/// With a deny list: refuse what could hide a denied command from the
/// word-wise match.
fn opaque_to_deny(s: &Script) -> Result<(), ExecRefusal> {
    if s.control {
        return Err(ExecRefusal::Control);
    }
    if s.expansion {
        return Err(ExecRefusal::Expansion);
    }
    if s.words().any(|w| w.brace) {
        return Err(ExecRefusal::Brace);
    }
    if s.commands.iter().any(|c| c.first().is_some_and(|w| w.glob)) {
        return Err(ExecRefusal::ProgramPattern);
    }
    Ok(())
}

/// With an allow list: the words of the one simple command, or why the
/// command is not one the patterns can judge.
fn judgeable(s: &Script) -> Result<Vec<&str>, ExecRefusal> {
    let refusal = if s.control {
        Some(ExecRefusal::Control)
    } else if s.newline {
        Some(ExecRefusal::Newline)
    } else if s.expansion {
        Some(ExecRefusal::Expansion)
    } else if s.operator {
        Some(ExecRefusal::Operator)
    } else if s.redirection {
        Some(ExecRefusal::Redirection)
    } else if s.comment {
        Some(ExecRefusal::Comment)
    } else {
        None
    };
    if let Some(r) = refusal {
        return Err(r);
    }
    let [command] = s.commands.as_slice() else {
        return Err(ExecRefusal::Empty);
    };
    if command.iter().any(|w| w.brace) {
        return Err(ExecRefusal::Brace);
    }
    let Some(program) = command.first() else {
        return Err(ExecRefusal::Empty);
    };
    if program.assignment {
        return Err(ExecRefusal::Assignment);
    }
    if program.glob {
        return Err(ExecRefusal::ProgramPattern);
    }
    Ok(command.iter().map(|w: &Word| w.text.as_str()).collect())
}

/// A deny pattern matches a run of words anywhere in a simple command.
fn denied_wordwise(pattern: &[PatWord], command: &[Word]) -> bool {
    let words: Vec<&str> = command.iter().map(|w| w.text.as_str()).collect();
    (0..words.len()).any(|k| words_match(pattern, &words[k..], true))
}

/// One character of a pattern word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pat {
    /// Unquoted `*`.
    Any,
    /// Unquoted `?`.
    One,
    Lit(char),
}

type PatWord = Vec<Pat>;

/// Splits a pattern into words of glob characters: whitespace separates,
/// single and double quotes and backslashes make characters literal. Shell
/// operators and `$` in a pattern are just characters (a pattern is never
/// run).
fn pattern_words(pattern: &str) -> Result<Vec<PatWord>, PatternError> {
    let err_quote = || PatternError::UnterminatedQuote {
        pattern: pattern.to_string(),
    };
    if pattern.chars().any(|c| c != '\t' && c.is_control()) {
        return Err(PatternError::ControlCharacter {
            pattern: pattern.to_string(),
        });
    }
    let mut out: Vec<PatWord> = Vec::new();
    let mut word: PatWord = Vec::new();
    let mut started = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
                continue;
            }
            '\\' => match chars.next() {
                Some(n) => word.push(Pat::Lit(n)),
                None => {
                    return Err(PatternError::TrailingBackslash {
                        pattern: pattern.to_string(),
                    });
                }
            },
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(q) => word.push(Pat::Lit(q)),
                    None => return Err(err_quote()),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(n @ ('$' | '`' | '"' | '\\')) => word.push(Pat::Lit(n)),
                        Some(n) => {
                            word.push(Pat::Lit('\\'));
                            word.push(Pat::Lit(n));
                        }
                        None => return Err(err_quote()),
                    },
                    Some(q) => word.push(Pat::Lit(q)),
                    None => return Err(err_quote()),
                }
            },
            '*' => word.push(Pat::Any),
            '?' => word.push(Pat::One),
            other => word.push(Pat::Lit(other)),
        }
        started = true;
    }
    if started {
        out.push(word);
    }
    if out.is_empty() {
        return Err(PatternError::Empty);
    }
    Ok(out)
}

/// Pattern words against command words. A final pattern word that is
/// exactly `*` matches zero or more remaining words. For a deny pattern
/// (`deny`), words after the pattern's are always allowed (the pattern
/// matches a prefix), and the first pattern word (if it has no `/`) also
/// matches the first command word's last path component (`rm` catches
/// `/bin/rm`).
fn words_match(pattern: &[PatWord], words: &[&str], deny: bool) -> bool {
    let (fixed, rest) = match pattern.split_last() {
        Some((last, init)) if last.as_slice() == [Pat::Any] => (init, true),
        _ => (pattern, false),
    };
    let basename = deny;
    let count_ok = if rest || deny {
        words.len() >= fixed.len()
    } else {
        words.len() == fixed.len()
    };
    if !count_ok {
        return false;
    }
    fixed.iter().zip(words).enumerate().all(|(i, (p, w))| {
        wildcard(p, w)
            || (basename
                && i == 0
                && !p.contains(&Pat::Lit('/'))
                && w.rsplit_once('/')
                    .is_some_and(|(_, base)| wildcard(p, base)))
    })
}

/// Iterative wildcard match of one pattern word against one text: never
/// recursive, at most |pattern| × |text| steps (the single `*` backtrack
/// point only moves forward), so a hostile command cannot blow the stack.
fn wildcard(p: &[Pat], text: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(Pat::Any) => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(Pat::One) => {
                pi += 1;
                ti += 1;
            }
            Some(Pat::Lit(c)) if *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == Pat::Any)
}

/// The legacy raw match of a whole command string: `*` matches any run of
/// characters (operators and newlines included), `?` exactly one, nothing
/// is quoted. Still used for deny patterns, where matching more is safe.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<Pat> = pattern
        .chars()
        .map(|c| match c {
            '*' => Pat::Any,
            '?' => Pat::One,
            c => Pat::Lit(c),
        })
        .collect();
    wildcard(&p, text)
}

#[cfg(test)]
mod tests;
