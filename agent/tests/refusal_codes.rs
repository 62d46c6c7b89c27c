//! Every code a refusal of the cashier API can carry has words on the page, in Russian
//! and in English: a tidy test that reads `web/app.js` (its `ERRORS` object) and
//! `src/api/mod.rs`, in the manner of rust-analyzer's tidy tests.
//!
//! The codes come from the `Refusal` implementations (`api::refusal_codes`): each is one
//! list of `pattern => "code"` arms whose match has no catch-all, so a variant added
//! without a code does not compile, and a code added to a list is checked here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kassa_agent::api::refusal_codes;
use kassa_agent::journal::{Refusal, WriteError};
use kassa_agent::till::TillError;
use kassa_hardware::barcode::RejectReason;

/// Codes the page uses for refusals of its own (no answer from the server, an amount it
/// cannot read); they need words too, but the API never sends them.
const PAGE_CODES: &[&str] = &["network", "bad_amount", "bad_weight"];

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The page's `ERRORS` object: language → code → words. Only the shape the page uses
/// is read (`lang: {`, `code: "words",`, comments, `},`); anything else fails the test
/// rather than being skipped.
fn page_errors(js: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let start = js.find("\nconst ERRORS = {\n").expect("app.js declares `const ERRORS = {`");
    let mut langs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut lang: Option<String> = None;
    for (i, line) in js[start..].lines().enumerate().skip(2) {
        let at = || format!("app.js ERRORS, line {} of the object: {line:?}", i + 1);
        let t = line.trim();
        if t == "};" {
            return langs;
        }
        if t.is_empty() || t.starts_with("//") {
            continue;
        }
        if t == "}," {
            assert!(lang.take().is_some(), "{}", at());
            continue;
        }
        if let Some(name) = t.strip_suffix(": {") {
            assert!(lang.is_none(), "{}", at());
            lang = Some(name.to_owned());
            continue;
        }
        let (key, value) = t.split_once(": ").unwrap_or_else(|| panic!("{}", at()));
        let words = value.strip_prefix('"').and_then(|v| v.strip_suffix("\",")).unwrap_or_else(|| panic!("{}", at()));
        assert!(!words.contains('"'), "{}", at());
        let lang = lang.as_ref().unwrap_or_else(|| panic!("{}", at()));
        let previous = langs.entry(lang.clone()).or_default().insert(key.to_owned(), words.to_owned());
        assert!(previous.is_none(), "`{key}` twice in ERRORS.{lang}");
    }
    panic!("app.js: the ERRORS object does not end with `}};`");
}

fn cyrillic(s: &str) -> bool {
    s.chars().any(|c| ('\u{400}'..='\u{4ff}').contains(&c))
}

#[test]
fn the_page_has_words_for_every_code_in_both_languages() {
    let codes = refusal_codes();
    let errors = page_errors(&read("web/app.js"));
    assert_eq!(errors.keys().map(String::as_str).collect::<Vec<_>>(), ["en", "ru"], "ERRORS has ru and en");
    let mut missing = Vec::new();
    for code in &codes {
        assert!(
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "`{code}` is not a snake_case code"
        );
        for (lang, words) in &errors {
            match words.get(*code) {
                Some(w) if !w.trim().is_empty() => {}
                _ => missing.push(format!("{lang}.{code}")),
            }
        }
    }
    assert!(missing.is_empty(), "agent/web/app.js ERRORS has no words for: {}", missing.join(", "));

    // Russian words are Russian, English ones English: not a copy of the other.
    for (code, words) in &errors["ru"] {
        assert!(cyrillic(words), "ERRORS.ru.{code} is not in Russian: {words}");
    }
    for (code, words) in &errors["en"] {
        assert!(!cyrillic(words), "ERRORS.en.{code} is not in English: {words}");
    }
    // And nothing stale: a word for a code nobody sends any more is a code removed
    // without its words (or a misspelt one).
    for (lang, words) in &errors {
        for code in words.keys() {
            assert!(
                codes.contains(&code.as_str()) || PAGE_CODES.contains(&code.as_str()),
                "ERRORS.{lang}.{code}: no refusal has that code (removed or misspelt?)"
            );
        }
    }
}

/// A code written as a literal in the API (`ApiError::new(status, "code", …)`) is one
/// of the listed codes, so the page's check above covers it.
#[test]
fn codes_written_in_the_api_are_listed() {
    let src = read("src/api/mod.rs");
    let codes = refusal_codes();
    let mut literals = BTreeSet::new();
    for (at, _) in src.match_indices("ApiError::new(") {
        let args = &src[at + "ApiError::new(".len()..];
        // The arguments, split at the commas outside brackets and strings.
        let (mut depth, mut in_str, mut parts, mut part) = (0usize, false, Vec::new(), String::new());
        for c in args.chars() {
            match c {
                '"' => in_str = !in_str,
                '(' | '[' | '{' if !in_str => depth += 1,
                ')' | ']' | '}' if !in_str && depth == 0 => break,
                ')' | ']' | '}' if !in_str => depth -= 1,
                ',' if !in_str && depth == 0 => {
                    parts.push(std::mem::take(&mut part));
                    continue;
                }
                _ => {}
            }
            part.push(c);
        }
        parts.push(part);
        let code = parts.get(1).map(|p| p.trim()).unwrap_or_else(|| panic!("ApiError::new without a code at {at}"));
        if let Some(literal) = code.strip_prefix('"').and_then(|c| c.strip_suffix('"')) {
            literals.insert(literal.to_owned());
        }
    }
    for literal in &literals {
        assert!(codes.contains(&literal.as_str()), "api/mod.rs sends `{literal}`, which no Refusal lists");
    }
}

/// Each source of codes is in the API's list: the scanner's reasons, the journal's
/// refusals, the till's.
#[test]
fn every_source_of_codes_reaches_the_list() {
    let codes = refusal_codes();
    for code in RejectReason::ALL_CODES.iter().chain(&WriteError::codes()).chain(&TillError::codes()) {
        assert!(codes.contains(code), "{code}");
    }
    for code in ["unknown_barcode", "duplicate_marking", "scan_check_digit", "bad_user_id", "not_found", "disk_full"] {
        assert!(codes.contains(&code), "{code}");
    }
    assert!(!codes.contains(&"invalid") && !codes.contains(&"rejected_scan"), "codes that said nothing are gone");
}
