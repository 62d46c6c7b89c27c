//! `kassa-sim fleet` keeps working: a small fleet for a few seconds, run as the binary
//! (HQ is its child process). The release run is `kassa-sim fleet --stores 1000`.

use std::process::Command;

#[test]
fn a_small_fleet_sells_through_one_hq_and_reports() {
    runs_and_reports(&[]);
}

/// Two HQ nodes (processes) on one PostgreSQL database, the stores spread over both.
#[test]
fn a_small_fleet_sells_through_two_hq_nodes_on_postgres() {
    let Some(pg) = kassa_tests::pg::PgCluster::start("a_small_fleet_sells_through_two_hq_nodes_on_postgres") else {
        return;
    };
    let url = pg.database("fleet");
    runs_and_reports(&["--hq-nodes", "2", "--database", &url]);
    // The database holds the stores now: a second run on it is refused, not mixed in.
    let again = Command::new(env!("CARGO_BIN_EXE_kassa-sim"))
        .args(["fleet", "--stores", "2", "--seconds", "1", "--hq-nodes", "2", "--database", &url])
        .output()
        .expect("run kassa-sim");
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("empty"));
}

/// A fleet of 25 stores for three seconds, with `extra` arguments, and its report.
fn runs_and_reports(extra: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_kassa-sim"))
        .args(["fleet", "--stores", "25", "--seconds", "3", "--sales-per-minute", "60"])
        .args(extra)
        .output()
        .expect("run kassa-sim");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "fleet failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().expect("a summary line");
    // "fleet: 25 stores, <M> MiB HQ RSS, <L> ms p99 lag"
    let words: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(&words[..3], ["fleet:", "25", "stores,"], "{last}");
    let rss: u64 = words[3].parse().expect("RSS in MiB");
    assert!(rss > 0 && rss < 1024, "{last}");
    assert_eq!(&words[4..7], ["MiB", "HQ", "RSS,"], "{last}");
    let _lag: u64 = words[7].parse().expect("lag in ms");
    assert_eq!(&words[8..], ["ms", "p99", "lag"], "{last}");
    // Every store sold (a sale a second for three seconds each), and every sale was
    // acknowledged: the binary fails otherwise.
    let sales: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sales ").map(|v| v.trim().parse().expect("a count")))
        .expect("a sales row");
    assert!(sales >= 25 * 2, "{stdout}");
}
