//! The replay filter: attacks on the auditor's terminal are dropped, what a
//! replay needs is kept, and chunking never changes the result.

use crate::castfile::term::{MAX_STRING, TermFilter, visible};

fn f(s: &str) -> String {
    TermFilter::new().filter(s)
}

#[test]
fn control_strings_are_dropped_with_either_terminator() {
    for attack in [
        "\x1b]0;pwned title\x07",
        "\x1b]2;pwned title\x1b\\",
        "\x1b]52;c;ZWNobyBwd25lZA==\x07",
        "\x1bP+q544e\x1b\\",
        "\x1bP1$r0m\x1b\\",
        "\x1b_Gf=100;AAAA\x1b\\",
        "\x1b^privacy\x1b\\",
        "\x1bXsos\x1b\\",
        "\u{9d}0;c1 title\u{9c}",
        "\u{90}c1 dcs\u{9c}",
        "\u{9f}apc\u{07}",
    ] {
        assert_eq!(f(&format!("a{attack}b")), "ab", "{attack:?}");
    }
}

#[test]
fn requests_that_answer_into_the_auditors_input_are_dropped() {
    for attack in [
        "\x1b[c",
        "\x1b[>c",
        "\x1b[=c",
        "\x1b[5n",
        "\x1b[6n",
        "\x1b[?6n",
        "\x1b[21t",
        "\x1b[14t",
        "\x1b[8;100;100t",
        "\x1bZ",
        "\x1b[?1000h",
        "\x1b[?1006h",
        "\x1b[?1004h",
        "\x1b[?2004h",
        "\x1b[?25;1000h",
        "\x1b[>4;2m",
        "\x1b[5i",
        "\x1b[$p",
        "\x1b[?1$p",
        "\x1bc",
        "\x1b%@",
        "\x1b F",
        "\x1b G",
        "\x1b#8",
        "\x05",
        "\x0e",
        "\x0f",
        "\x7f",
        "\u{9b}6n",
        "\u{85}",
        "\x1b[>0q",
        "\x1b[1\"p",
        "\x1b[20h",
    ] {
        assert_eq!(f(&format!("a{attack}b")), "ab", "{attack:?}");
    }
}

#[test]
fn what_a_replay_needs_is_kept() {
    for keep in [
        "\x1b[31mred\x1b[0m",
        "\x1b[38;5;208m\x1b[48;2;1;2;3m\x1b[1;4m",
        "\x1b[38:2::1:2:3m",
        "\x1b[H\x1b[2J\x1b[10;20H\x1b[K\x1b[A\x1b[3B\x1b[C\x1b[D\x1b[5G\x1b[2d",
        "\x1b[?1049h\x1b[?25l\x1b[?1h\x1b=\x1b[?1049l\x1b[?25h\x1b>",
        "\x1b[1;24r\x1b[3L\x1b[2M\x1b[4P\x1b[@\x1b[5X\x1b[S\x1b[T",
        "\x1b7\x1b8\x1bM\x1bD\x1bE\x1b[s\x1b[u",
        "\x1b(0lqk\x1b(B",
        "\x1b[2 q",
        "tab\there\r\nback\x08\x07",
        "héllo wörld ✓ 日本",
    ] {
        assert_eq!(f(keep), keep, "{keep:?}");
    }
}

#[test]
fn splitting_the_input_never_changes_the_output() {
    let text = "x\x1b]0;t\x07y\x1b[31mz\x1bP1\x1b\\w\u{9d}q\u{9c}\x1b[?1000h\x1b[?1049hé";
    let whole = f(text);
    let chars: Vec<char> = text.chars().collect();
    for cut in 0..=chars.len() {
        let (a, b): (String, String) =
            (chars[..cut].iter().collect(), chars[cut..].iter().collect());
        let mut t = TermFilter::new();
        let mut out = t.filter(&a);
        out.push_str(&t.filter(&b));
        assert_eq!(out, whole, "cut at {cut}");
    }
}

#[test]
fn an_unterminated_string_does_not_hide_the_rest_of_the_session() {
    let mut t = TermFilter::new();
    let mut out = t.filter("\x1b]0;");
    out.push_str(&t.filter(&"A".repeat(MAX_STRING + 10)));
    out.push_str(&t.filter("rm -rf /\r\n"));
    assert!(out.ends_with("rm -rf /\r\n"), "{out:?}");
    // A CSI cut off by an ESC, a CAN or a control: the sequence goes, the text stays.
    assert_eq!(f("\x1b[31\x1b[32mg"), "\x1b[32mg");
    assert_eq!(f("\x1b[31\x18g"), "g");
    assert_eq!(f("\x1b[31\ng"), "\ng");
    assert_eq!(f(&format!("\x1b[{}mg", "1;".repeat(100))), "g");
}

#[test]
fn markers_show_controls_instead_of_running_them() {
    assert_eq!(visible("ls\x1b]0;x\x07"), "ls^[]0;x^G");
    assert_eq!(visible("a\u{9b}b\x7f"), "a\\u{9b}b\\u{7f}");
}
