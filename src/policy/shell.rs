//! A POSIX shell word parser: enough of `sh -c` to know what a command line
//! would run, and to say so when it cannot know.
//!
//! It splits a command line into simple commands (at unquoted `;`, `&`, `|`,
//! `(`, `)` and newlines) and those into words, with single quotes, double
//! quotes and backslash escapes resolved and redirections (`> file`,
//! `2>&1`, `<<EOF`) taken out. It expands nothing. Instead it reports each
//! construct whose result only a running shell knows (parameter expansion,
//! command, arithmetic and process substitution, backticks, unquoted brace
//! expansion and pathname patterns, comments, control characters), so the
//! caller can refuse what it cannot judge.
//!
//! Never recursive; one pass over the characters.

/// A command line this parser cannot split into words at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    #[error("unterminated single quote")]
    UnterminatedSingleQuote,
    #[error("unterminated double quote")]
    UnterminatedDoubleQuote,
    #[error("the command ends with a backslash")]
    TrailingBackslash,
}

/// One word after quote removal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    /// An unquoted `*`, `?` or `[`: the shell would replace the word with
    /// matching file names.
    pub glob: bool,
    /// An unquoted `{` with an unquoted `}` later in the word (other than an
    /// empty `{}`): bash, ksh and zsh may expand it into several words, and
    /// `{sh,-c,id}` runs `sh -c id`.
    pub brace: bool,
    /// Starts with an unquoted `NAME=`: in command position this is a
    /// variable assignment (`PATH=/tmp x`), not the program.
    pub assignment: bool,
}

/// A parsed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    /// Simple commands in order, each a list of words (redirections and
    /// their targets removed). Empty commands are dropped.
    pub commands: Vec<Vec<Word>>,
    /// An unquoted control operator: `;` `&` `&&` `|` `||` `(` `)`.
    pub operator: bool,
    /// An unquoted redirection: `<` `>` `>>` `<<` `>&` `&>` `<>` ...
    pub redirection: bool,
    /// A newline anywhere (also quoted, also a backslash-newline).
    pub newline: bool,
    /// `$` or a backtick outside single quotes (`$VAR`, `${…}`, `$(…)`,
    /// `$((…))`, `` `…` ``, `$'…'`), or a process substitution `<(…)`.
    pub expansion: bool,
    /// An unquoted `#` at the start of a word: the rest of the line is ignored.
    pub comment: bool,
    /// A control character other than tab and newline (CR, NUL, ESC, DEL...).
    pub control: bool,
}

impl Script {
    /// Every word of every simple command.
    pub fn words(&self) -> impl Iterator<Item = &Word> {
        self.commands.iter().flatten()
    }
}

#[derive(Default)]
struct Parser {
    script: Script,
    command: Vec<Word>,
    /// The word being read: characters with whether each was quoted.
    word: Vec<(char, bool)>,
    /// A word has started (`''` is an empty word, not no word).
    started: bool,
    /// The next word is a redirection target, not an argument.
    redirect_target: bool,
}

impl Parser {
    fn push(&mut self, c: char, quoted: bool) {
        self.word.push((c, quoted));
        self.started = true;
    }

    fn end_word(&mut self) {
        if !self.started {
            return;
        }
        let chars = std::mem::take(&mut self.word);
        self.started = false;
        let word = build_word(&chars);
        if std::mem::take(&mut self.redirect_target) {
            return;
        }
        self.command.push(word);
    }

    fn end_command(&mut self) {
        self.end_word();
        self.redirect_target = false;
        let command = std::mem::take(&mut self.command);
        if !command.is_empty() {
            self.script.commands.push(command);
        }
    }

    /// Before a redirection operator: a word of unquoted digits right
    /// before it is the file descriptor (`2>`), not an argument.
    fn end_word_before_redirect(&mut self) {
        if self.started
            && !self.word.is_empty()
            && self.word.iter().all(|(c, q)| !q && c.is_ascii_digit())
        {
            self.word.clear();
            self.started = false;
            return;
        }
        self.end_word();
    }
}

fn build_word(chars: &[(char, bool)]) -> Word {
    let text: String = chars.iter().map(|(c, _)| *c).collect();
    let glob = chars
        .iter()
        .any(|(c, q)| !q && matches!(c, '*' | '?' | '['));
    let mut brace = false;
    let mut open: Option<usize> = None;
    for (i, (c, q)) in chars.iter().enumerate() {
        if *q {
            continue;
        }
        match (c, open) {
            ('{', None) => open = Some(i),
            ('}', Some(o)) if i > o + 1 => brace = true,
            _ => {}
        }
    }
    let mut assignment = false;
    for (i, (c, q)) in chars.iter().enumerate() {
        if *q {
            break;
        }
        let ok = if i == 0 {
            c.is_ascii_alphabetic() || *c == '_'
        } else {
            c.is_ascii_alphanumeric() || *c == '_'
        };
        if *c == '=' && i > 0 {
            assignment = true;
            break;
        }
        if !ok {
            break;
        }
    }
    Word {
        text,
        glob,
        brace,
        assignment,
    }
}

/// Splits `src` as `sh -c` would, without expanding anything.
pub fn parse(src: &str) -> Result<Script, ShellError> {
    let chars: Vec<char> = src.chars().collect();
    let mut p = Parser::default();
    let mut i = 0usize;
    while let Some(&c) = chars.get(i) {
        match c {
            ' ' | '\t' => {
                p.end_word();
                i += 1;
            }
            '\n' => {
                p.script.newline = true;
                p.end_command();
                i += 1;
            }
            '#' if !p.started => {
                p.script.comment = true;
                while chars.get(i).is_some_and(|c| *c != '\n') {
                    i += 1;
                }
            }
            '&' if chars.get(i + 1) == Some(&'>') => {
                // bash `&>file`: a redirection, not a background operator.
                p.script.redirection = true;
                p.end_word();
                i = redirection(&chars, i + 1, &mut p);
            }
            ';' | '&' | '|' | '(' | ')' => {
                p.script.operator = true;
                p.end_command();
                i += 1;
            }
            '<' | '>' => {
                p.script.redirection = true;
                p.end_word_before_redirect();
                i = redirection(&chars, i, &mut p);
            }
            '\\' => match chars.get(i + 1) {
                None => return Err(ShellError::TrailingBackslash),
                Some('\n') => {
                    // Line continuation: removed, the word goes on.
                    p.script.newline = true;
                    i += 2;
                }
                Some(&n) => {
                    note_control(n, &mut p.script);
                    p.push(n, true);
                    i += 2;
                }
            },
            '\'' => {
                p.started = true;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(ShellError::UnterminatedSingleQuote),
                        Some('\'') => break,
                        Some(&q) => {
                            note_control(q, &mut p.script);
                            p.push(q, true);
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '"' => {
                p.started = true;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(ShellError::UnterminatedDoubleQuote),
                        Some('"') => break,
                        Some('\\') => match chars.get(i + 1) {
                            Some('\n') => {
                                p.script.newline = true;
                                i += 1;
                            }
                            Some(&n @ ('$' | '`' | '"' | '\\')) => {
                                p.push(n, true);
                                i += 1;
                            }
                            _ => p.push('\\', true),
                        },
                        Some(&d) => {
                            if matches!(d, '$' | '`') {
                                p.script.expansion = true;
                            }
                            note_control(d, &mut p.script);
                            p.push(d, true);
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '$' | '`' => {
                p.script.expansion = true;
                p.push(c, false);
                i += 1;
            }
            _ => {
                note_control(c, &mut p.script);
                p.push(c, false);
                i += 1;
            }
        }
    }
    p.end_command();
    Ok(p.script)
}

fn note_control(c: char, script: &mut Script) {
    if c == '\n' {
        script.newline = true;
    } else if c != '\t' && c.is_control() {
        script.control = true;
    }
}

/// Reads a redirection operator starting at `chars[i]` (`<` or `>`) and
/// returns the index after it; the word that follows is its target.
fn redirection(chars: &[char], i: usize, p: &mut Parser) -> usize {
    let mut j = i + 1;
    if chars.get(j) == Some(&'(') {
        // `<(cmd)` / `>(cmd)`: process substitution runs a command.
        p.script.expansion = true;
        p.script.operator = true;
        p.end_command();
        return j + 1;
    }
    // `>>`, `<<`, `<<-`, `<>`, `>|`, `>&`, `<&` (and `>&-`).
    while chars
        .get(j)
        .is_some_and(|c| matches!(c, '<' | '>' | '&' | '|' | '-'))
    {
        j += 1;
    }
    p.redirect_target = true;
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<Vec<String>> {
        parse(s)
            .unwrap()
            .commands
            .into_iter()
            .map(|c| c.into_iter().map(|w| w.text).collect())
            .collect()
    }

    #[test]
    fn splits_words_and_commands() {
        let cases: [(&str, &[&[&str]]); 14] = [
            ("echo hi", &[&["echo", "hi"]]),
            ("  echo\t hi  ", &[&["echo", "hi"]]),
            ("'echo' hi", &[&["echo", "hi"]]),
            ("\"echo hi\"", &[&["echo hi"]]),
            ("ec\\ho hi", &[&["echo", "hi"]]),
            ("echo hi\\;id", &[&["echo", "hi;id"]]),
            ("echo ''", &[&["echo", ""]]),
            ("echo a'b'\"c\"\\d", &[&["echo", "abcd"]]),
            ("echo \"a\\$b\\\\c\\d\"", &[&["echo", "a$b\\c\\d"]]),
            ("echo hi; id", &[&["echo", "hi"], &["id"]]),
            ("a&&b||c|d&e", &[&["a"], &["b"], &["c"], &["d"], &["e"]]),
            ("echo hi > /tmp/x 2>&1", &[&["echo", "hi"]]),
            ("cat <<EOF\nrm x\n", &[&["cat"], &["rm", "x"]]),
            ("echo a#b # c\nid", &[&["echo", "a#b"], &["id"]]),
        ];
        for (src, want) in cases {
            let want: Vec<Vec<String>> = want
                .iter()
                .map(|c| c.iter().map(|w| w.to_string()).collect())
                .collect();
            assert_eq!(words(src), want, "{src:?}");
        }
    }

    #[test]
    fn flags() {
        let p = |s: &str| parse(s).unwrap();
        assert!(p("a; b").operator && !p("a; b").redirection);
        assert!(p("a > b").redirection && !p("a > b").operator);
        assert!(p("a &> b").redirection && !p("a &> b").operator);
        assert!(p("a\nb").newline);
        assert!(p("a 'x\ny'").newline);
        assert!(p("a \\\nb").newline);
        for e in [
            "echo $HOME",
            "echo ${HOME}",
            "echo $(id)",
            "echo $((1+1))",
            "echo `id`",
            "echo \"$(id)\"",
            "echo \"`id`\"",
            "echo $'\\x41'",
            "diff <(ls) x",
        ] {
            assert!(p(e).expansion, "{e}");
        }
        for not in [
            "echo '$HOME'",
            "echo \\$HOME",
            "echo \"\\$HOME\"",
            "echo '`id`'",
        ] {
            assert!(!p(not).expansion, "{not}");
        }
        assert!(p("# x").comment && p("# x").commands.is_empty());
        assert!(p("a\rb").control && p("a\0b").control && p("a'\x1b'").control);
        assert!(!p("a\tb").control);
        let w = |s: &str| p(s).commands[0][0].clone();
        assert!(w("{sh,-c,id}").brace && w("a{b,c}").brace && w("{1..3}").brace);
        assert!(!w("{}").brace && !w("'{a,b}'").brace && !w("\\{a,b\\}").brace);
        assert!(w("/bin/s?").glob && w("*").glob && w("[ab]").glob);
        assert!(!w("'*'").glob && !w("\\?").glob);
        assert!(w("PATH=/tmp").assignment && w("_x1=").assignment);
        assert!(!w("'PATH'=/tmp").assignment && !w("=x").assignment && !w("1A=x").assignment);
        assert_eq!(parse("echo 'x"), Err(ShellError::UnterminatedSingleQuote));
        assert_eq!(parse("echo \"x"), Err(ShellError::UnterminatedDoubleQuote));
        assert_eq!(parse("echo x\\"), Err(ShellError::TrailingBackslash));
    }

    #[test]
    fn long_hostile_input_is_linear() {
        let s = "'a".repeat(50_001);
        assert!(parse(&s).is_err());
        let s = "{".repeat(100_000) + &"}".repeat(100_000);
        assert!(parse(&s).unwrap().commands[0][0].brace);
    }
}
