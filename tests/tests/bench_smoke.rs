//! The benchmarks keep working: a short run of each in the normal suite (figures from
//! a debug build mean nothing; the release run is `cargo run --release -- bench …`).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_bench_runs() {
    kassa_sim::bench::scan(50).await.unwrap();
}

#[test]
fn journal_bench_runs() {
    kassa_sim::bench::journal(30).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loyalty_bench_runs() {
    kassa_sim::bench::loyalty(20).await.unwrap();
}
