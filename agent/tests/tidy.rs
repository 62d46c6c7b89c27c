//! Tidy checks on the agent's sources, in the manner of rust-analyzer's: rules of the
//! architecture that a reviewer would otherwise have to remember.
//! - Blocking work leaves the executor in one place: `spawn_blocking` appears only in
//!   `src/blocking.rs` (the journal's handle and everything else go through it).
//! - The agent's top-level modules depend on each other in one direction: no import
//!   cycle (`till` uses the sync client's handle, never the reverse). A module that is a
//!   directory (`journal/`, `till/`) counts as one, whichever of its files names another.
//! - Inside the journal, its modules go one way (its `# Layout`); the till's parts
//!   (sessions, basket, scan, customer, payments, shifts) have no cycle either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a source file belongs to (`src/journal/sales.rs` → `journal`).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

#[test]
fn spawn_blocking_only_in_the_blocking_module() {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| !f.ends_with("blocking.rs"))
        .filter(|f| std::fs::read_to_string(f).unwrap().contains("spawn_blocking"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "spawn_blocking outside src/blocking.rs: {offenders:?}");
    assert!(files.iter().any(|f| f.ends_with("blocking.rs")), "the blocking module exists");
}

/// Every `crate::<module>` a module's files name, by module.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = module_of(f);
        if from == "lib" || from == "main" {
            continue; // the crate root wires everything together
        }
        // Code only: a doc comment may name any module.
        let text: String = std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let entry = deps.entry(from.clone()).or_default();
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            // `use crate::{a, b}` lists several.
            if name.is_empty() && rest.starts_with('{') {
                let list = &rest[1..rest.find('}').unwrap_or(1)];
                for item in list.split(',') {
                    let m: String =
                        item.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    if !m.is_empty() && m != from {
                        entry.insert(m);
                    }
                }
            } else if !name.is_empty() && name != from {
                entry.insert(name);
            }
        }
    }
    deps
}

fn cycle(deps: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut c = path[at..].to_vec();
            c.push(m.to_owned());
            return Some(c);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_owned());
        for d in deps.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, deps, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    deps.keys().find_map(|m| visit(m, deps, &mut Vec::new(), &mut done))
}

#[test]
fn the_agents_modules_have_no_import_cycle() {
    let deps = dependencies();
    assert!(deps["till"].contains("sync_client"), "the check reads what it should: {deps:?}");
    if let Some(c) = cycle(&deps) {
        panic!("import cycle between the agent's modules: {}", c.join(" → "));
    }
}

/// The check itself finds a cycle when there is one.
#[test]
fn a_planted_cycle_is_found() {
    let mut deps = dependencies();
    deps.entry("sync_client".into()).or_default().insert("till".into());
    let c = cycle(&deps).expect("the planted cycle");
    assert!(c.contains(&"till".to_owned()) && c.contains(&"sync_client".to_owned()), "{c:?}");
}

/// The journal's modules, and the modules of the journal each one names (`super::x`,
/// `use super::{x, …}`), from their code.
fn journal_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    submodule_dependencies("journal")
}

/// The submodules of the directory module `module` (not `mod.rs`, not `tests`), and the
/// siblings each one names (`super::x`, `use super::{x, …}`), from their code.
fn submodule_dependencies(module: &str) -> BTreeMap<String, BTreeSet<String>> {
    let dir = src().join(module);
    let mut files = Vec::new();
    sources(&dir, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|m| m != "mod" && m != "tests")
        .collect();
    let mut deps = BTreeMap::new();
    for f in &files {
        let from = f.file_stem().unwrap().to_string_lossy().into_owned();
        if !modules.contains(&from) {
            continue;
        }
        let text: String = std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut named = BTreeSet::new();
        for (at, _) in text.match_indices("super::") {
            let rest = &text[at + "super::".len()..];
            let list = if let Some(inner) = rest.strip_prefix('{') { &inner[..inner.find('}').unwrap()] } else { rest };
            for item in list.split(',') {
                let m: String = item.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if modules.contains(&m) && m != from {
                    named.insert(m);
                }
                if !rest.starts_with('{') {
                    break;
                }
            }
        }
        deps.insert(from, named);
    }
    deps
}

/// The journal's modules in one direction, as its `# Layout` states: types → format →
/// chain, outbox, print queue → users, loyalty, shifts → sales → stock → orders → aisle.
#[test]
fn the_journals_modules_go_one_way() {
    let deps = journal_dependencies();
    assert!(
        deps["sales"].contains("chain") && deps["chain"].contains("types"),
        "the check reads what it should: {deps:?}"
    );
    if let Some(c) = cycle(&deps) {
        panic!("import cycle between the journal's modules: {}", c.join(" → "));
    }
    let layer = |m: &str| match m {
        "types" | "handle" | "open_basket" => 0,
        "format" => 1,
        "chain" | "outbox" | "print_queue" => 2,
        "users" | "loyalty" | "shifts" | "return_terms" | "history" => 3,
        "sales" => 4,
        "stock" => 5,
        "orders" => 6,
        "aisle" => 7,
        other => panic!("journal module {other} has no place in the layout: add it to this test and the # Layout"),
    };
    for (m, named) in &deps {
        for d in named {
            assert!(layer(d) < layer(m), "journal::{m} uses journal::{d}, which is not below it in the layout");
        }
    }
}

/// The till's parts use the façade (`till/mod.rs`) and the basket, never each other in
/// a circle: each stays readable on its own.
#[test]
fn the_tills_parts_have_no_import_cycle() {
    let deps = submodule_dependencies("till");
    assert!(
        deps.contains_key("payments") && deps["scan"].contains("basket"),
        "the check reads what it should: {deps:?}"
    );
    if let Some(c) = cycle(&deps) {
        panic!("import cycle between the till's parts: {}", c.join(" → "));
    }
    // The top-level check still sees the till as one module, from all its files.
    assert!(dependencies()["till"].contains("journal"), "the till's parts count as the till");
}
