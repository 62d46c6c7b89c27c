//! The benchmarks keep working: a short run of each in the normal suite (figures from
//! a debug build mean nothing; the release run is `cargo run --release -- bench …`).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_bench_runs() {
    kassa_sim::bench::scan(50, 2_000).await.unwrap();
}

#[test]
fn journal_bench_runs() {
    kassa_sim::bench::journal(30).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loyalty_bench_runs() {
    kassa_sim::bench::loyalty(20).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_bench_runs_and_converges() {
    // The benchmark itself checks that every sale reached HQ once and the counters agree.
    let report = kassa_sim::bench_sync::sync(300).await.unwrap();
    assert_eq!(report.deltas, 1_500);
    assert!(report.wire_sent_bytes > 0 && report.raw > std::time::Duration::ZERO);
}

#[test]
fn promotions_bench_runs() {
    kassa_sim::bench_promotions::promotions_bench(500).unwrap();
}
