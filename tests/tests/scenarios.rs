//! Every scenario shipped in `simulator/scenarios/` runs here, each against a store of
//! its own (HQ, agent, virtual scanner and printer), exactly as `kassa-sim run` runs it.

use std::path::{Path, PathBuf};

use kassa_sim::scenario::{self, RunOptions};
use kassa_tests::init_logging;

fn shipped_scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../simulator/scenarios");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_scenarios_pass() {
    init_logging();
    let paths = shipped_scenarios();
    let names: Vec<String> = paths.iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    for required in ["normal_sale", "paper_out_mid_receipt", "scanner_unplugged"] {
        assert!(names.iter().any(|n| n == required), "{required}.toml ships");
    }
    let mut failed = Vec::new();
    for path in &paths {
        let s = scenario::load(path).unwrap();
        let report = scenario::run(&s, &RunOptions::default()).await.unwrap();
        // Shown on failure (the test harness captures it otherwise).
        println!("{}\n{report}\n", path.display());
        if !report.passed() {
            failed.push(report.to_string());
        }
    }
    assert!(failed.is_empty(), "failed scenarios:\n{}", failed.join("\n\n"));
}
