//! Every code a refusal of the cashier API can carry has words on the page, in Russian
//! and in English: a tidy test that reads `web/app.js` (its `ERRORS` object) and
//! `src/api/mod.rs`, in the manner of rust-analyzer's tidy tests. The back room's page
//! (`web/stock.js`) has words for every code its routes (`/api/stock…`, login) can send.
//!
//! The codes come from the `Refusal` implementations (`api::refusal_codes`): each is one
//! list of `pattern => "code"` arms whose match has no catch-all, so a variant added
//! without a code does not compile, and a code added to a list is checked here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kassa_agent::api::refusal_codes;
use kassa_agent::journal::{AuthError, JournalError, Refusal, WriteError};
use kassa_agent::till::TillError;
use kassa_hardware::barcode::RejectReason;
use kassa_protocol::movements::MovementError;

/// Codes the page uses for refusals of its own (no answer from the server, an amount it
/// cannot read); they need words too, but the API never sends them.
const PAGE_CODES: &[&str] = &["network", "bad_amount", "bad_weight"];

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Codes the back room's page uses for refusals of its own (no answer from the server, a
/// quantity or a store number it cannot read).
const STOCK_PAGE_CODES: &[&str] = &["network", "bad_quantity", "bad_store"];

/// A page's `ERRORS` object (`file` is `app.js` or `stock.js`): language → code → words.
/// Only the shape the pages use is read (`lang: {`, `code: "words",`, comments, `},`);
/// anything else fails the test rather than being skipped.
fn page_errors(file: &str, js: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let start = js.find("\nconst ERRORS = {\n").unwrap_or_else(|| panic!("{file} declares `const ERRORS = {{`"));
    let mut langs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut lang: Option<String> = None;
    for (i, line) in js[start..].lines().enumerate().skip(2) {
        let at = || format!("{file} ERRORS, line {} of the object: {line:?}", i + 1);
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
        assert!(previous.is_none(), "`{key}` twice in {file} ERRORS.{lang}");
    }
    panic!("{file}: the ERRORS object does not end with `}};`");
}

fn cyrillic(s: &str) -> bool {
    s.chars().any(|c| ('\u{400}'..='\u{4ff}').contains(&c))
}

#[test]
fn the_page_has_words_for_every_code_in_both_languages() {
    let codes = refusal_codes();
    let errors = page_errors("app.js", &read("web/app.js"));
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

/// Every code the back room's routes can send: the movements' refusals, logging in and
/// approvals, the stock documents' own, and those any request can meet (the framework's,
/// the journal's, idempotency keys).
fn stock_route_codes() -> Vec<&'static str> {
    let mut codes = MovementError::codes();
    codes.extend(AuthError::codes());
    codes.extend(JournalError::codes());
    codes.extend([
        "not_logged_in",
        "needs_manager",
        "unknown_sku",
        "overflow",
        "no_such_inbound",
        "already_received",
        "no_such_count",
        "count_posted",
        "idempotency_key",
        "key_reuse",
        "not_found",
        "method_not_allowed",
        "content_type",
        "too_large",
        "bad_request",
    ]);
    codes.sort_unstable();
    codes.dedup();
    codes
}

/// The back room's page (`stock.js`, which does not load app.js) has its own words for
/// every code its routes can send, in both languages, and none for a code nobody sends.
#[test]
fn the_stock_page_has_words_for_every_stock_code_in_both_languages() {
    let all = refusal_codes();
    let stock = stock_route_codes();
    for code in &stock {
        assert!(all.contains(code), "`{code}` is in this test's list of stock codes but no refusal has it");
    }
    let errors = page_errors("stock.js", &read("web/stock.js"));
    assert_eq!(errors.keys().map(String::as_str).collect::<Vec<_>>(), ["en", "ru"], "ERRORS has ru and en");
    let mut missing = Vec::new();
    for code in stock.iter().chain(STOCK_PAGE_CODES) {
        for (lang, words) in &errors {
            match words.get(*code) {
                Some(w) if !w.trim().is_empty() => {}
                _ => missing.push(format!("{lang}.{code}")),
            }
        }
    }
    assert!(missing.is_empty(), "agent/web/stock.js ERRORS has no words for: {}", missing.join(", "));
    assert_eq!(
        errors["ru"].keys().collect::<Vec<_>>(),
        errors["en"].keys().collect::<Vec<_>>(),
        "stock.js ERRORS: the same codes in both languages"
    );
    for (code, words) in &errors["ru"] {
        assert!(cyrillic(words), "stock.js ERRORS.ru.{code} is not in Russian: {words}");
    }
    for (code, words) in &errors["en"] {
        assert!(!cyrillic(words), "stock.js ERRORS.en.{code} is not in English: {words}");
    }
    for (lang, words) in &errors {
        for code in words.keys() {
            assert!(
                all.contains(&code.as_str()) || STOCK_PAGE_CODES.contains(&code.as_str()),
                "stock.js ERRORS.{lang}.{code}: no refusal has that code (removed or misspelt?)"
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
