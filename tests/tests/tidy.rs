//! Tidy checks across the workspace, in the manner of rust-analyzer's: rules a reviewer
//! would otherwise have to remember, checked by reading the sources. (The agent's own
//! rules — module order, one way off the executor — are in `agent/tests/tidy.rs`.)
//!
//! - A function reads in one sitting: from `fn` to its closing brace, at most
//!   [`FN_LINES_MAX`] lines in the libraries' sources (`agent/src`, `hq/src`,
//!   `protocol/src`; not their tests). A longer one wants its steps named as functions
//!   of their own.

use std::path::{Path, PathBuf};

/// Lines of a function, from the line of its `fn` to its closing brace. Long enough for
/// a `match` over a protocol's messages that delegates each arm; short enough to read
/// without scrolling back.
const FN_LINES_MAX: usize = 100;

/// The source trees checked, from the workspace's root.
const TREES: [&str; 3] = ["agent/src", "hq/src", "protocol/src"];

/// Functions allowed to be longer, each with the reason: (file, function, why). Keep
/// this short; a split is almost always the better answer.
const LONG_FNS_ALLOWED: [(&str, &str, &str); 0] = [];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate is in the workspace").to_owned()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text with comments and the insides of string and character literals blanked
/// (newlines kept), so that braces and `fn` found in it are code.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !is_ident(chars.get(i.wrapping_sub(1))) {
            // A raw string: r"…", r#"…"#.
            let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let start = i + 2 + hashes;
            let rest: String = chars[start..].iter().collect();
            let len = rest.find(&close).map_or(rest.chars().count(), |at| rest[..at].chars().count());
            out.push('"');
            out.extend(chars[start..start + len].iter().map(|&c| blank(c)));
            out.push('"');
            i = start + len + close.chars().count();
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A character literal ('x', '\n', '\''), not a lifetime.
            out.push('\'');
            i += 1;
            if chars.get(i) == Some(&'\\') {
                i += 2;
            } else {
                i += 1;
            }
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            out.push('\'');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// The index of the brace closing the one at `open`.
fn closing(code: &[u8], open: usize) -> usize {
    let mut depth = 0;
    for (i, &b) in code.iter().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// `code` without the test modules (`#[cfg(test)] mod x { … }`), blanked.
fn without_test_modules(code: &str) -> String {
    let mut bytes = code.as_bytes().to_vec();
    let mut from = 0;
    while let Some(at) = code[from..].find("#[cfg(test)]").map(|a| a + from) {
        let after = code[at + "#[cfg(test)]".len()..].trim_start();
        from = at + 1;
        if !after.starts_with("mod ") {
            continue;
        }
        let Some(open) = code[at..].find(['{', ';']).map(|o| o + at) else { break };
        if bytes[open] == b'{' {
            let close = closing(code.as_bytes(), open);
            for b in &mut bytes[at..=close.min(code.len() - 1)] {
                if *b != b'\n' {
                    *b = b' ';
                }
            }
        }
    }
    String::from_utf8(bytes).expect("blanked ASCII only")
}

/// Every function in `text`: (name, line of its `fn`, lines from `fn` to closing brace).
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let code = without_test_modules(&code_only(text));
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    for (at, _) in code.match_indices("fn ") {
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let name: String = code[at + 3..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if name.is_empty() {
            continue; // `fn(…)`, a function pointer type
        }
        // The body opens at the first `{` after the signature; a `;` first means none.
        let Some(open) = code[at..].find(['{', ';']).map(|o| o + at) else { continue };
        if bytes[open] == b';' {
            continue;
        }
        let close = closing(bytes, open);
        let line = code[..at].matches('\n').count() + 1;
        let lines = code[at..close].matches('\n').count() + 1;
        found.push((name, line, lines));
    }
    found
}

fn is_test_file(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "tests.rs") || path.components().any(|c| c.as_os_str() == "tests")
}

#[test]
fn no_function_is_longer_than_the_limit() {
    let root = workspace();
    let mut files = Vec::new();
    for tree in TREES {
        sources(&root.join(tree), &mut files);
    }
    let mut long = Vec::new();
    let mut seen = 0;
    for f in files.iter().filter(|f| !is_test_file(f)) {
        let rel = f.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        for (name, line, lines) in functions(&std::fs::read_to_string(f).unwrap()) {
            seen += 1;
            let allowed = LONG_FNS_ALLOWED.iter().any(|(file, n, _)| *file == rel && *n == name);
            if lines > FN_LINES_MAX && !allowed {
                long.push(format!("{rel}:{line} `{name}`: {lines} lines"));
            }
        }
    }
    assert!(seen > 500, "the check reads what it should: {seen} functions");
    assert!(
        long.is_empty(),
        "functions longer than {FN_LINES_MAX} lines; name their steps as functions of their own:\n{}",
        long.join("\n")
    );
}

/// The reader finds what it should: bodies measured from `fn` to the closing brace,
/// braces in strings, characters and comments ignored, test modules skipped.
#[test]
fn the_reader_measures_functions() {
    let text = r##"
fn short() {
    let s = "{ not a brace";
    let c = '{';
    // }
    let r = r#"}"#;
}

pub(crate) async fn generic<'a, T: Fn() -> u8>(x: &'a T) -> Result<(), ()>
where
    T: Send,
{
    Ok(())
}

trait T { fn declared(&self); }

#[cfg(test)]
mod tests {
    fn in_a_test() {}
}
"##;
    let found = functions(text);
    let names: Vec<(&str, usize, usize)> = found.iter().map(|(n, l, s)| (n.as_str(), *l, *s)).collect();
    assert_eq!(names, [("short", 2, 6), ("generic", 9, 6)]);
}

#[test]
fn the_allow_list_names_functions_that_exist() {
    let root = workspace();
    for (file, name, why) in LONG_FNS_ALLOWED {
        assert!(!why.is_empty(), "{file} `{name}`: say why it may be long");
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let lines = functions(&text).into_iter().find(|(n, _, _)| n == name).map(|(_, _, l)| l);
        assert!(
            lines.is_some_and(|l| l > FN_LINES_MAX),
            "{file} `{name}` is allowed to be long but is not (or is gone): remove it from the list"
        );
    }
}
