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
    let report = kassa_sim::bench_sync::sync(300, None).await.unwrap();
    assert_eq!(report.deltas, 1_500);
    assert!(report.wire_sent_bytes > 0 && report.raw > std::time::Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_bench_runs_and_converges_on_postgres() {
    let Some(pg) = kassa_tests::pg::PgCluster::start("sync_bench_runs_and_converges_on_postgres") else { return };
    let report = kassa_sim::bench_sync::sync(300, Some(pg.database("bench"))).await.unwrap();
    assert_eq!((report.deltas, report.backend), (1_500, "PostgreSQL"));
    // A database that already holds stores is refused: the figures would not be this run's.
    let again = kassa_sim::bench_sync::sync(10, Some(pg.url().replace("/postgres", "/bench"))).await.unwrap_err();
    assert!(again.to_string().contains("empty"), "{again}");
}

#[test]
fn promotions_bench_runs() {
    kassa_sim::bench_promotions::promotions_bench(500).unwrap();
}
