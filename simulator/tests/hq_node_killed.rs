//! Issue #17's "one node is killed mid-sync", as it happens to a real node: two HQ nodes,
//! each a process of its own (`kassa-sim hq-serve`, which serves exactly as `kassa-hq
//! serve` does), on one PostgreSQL (a throwaway cluster); two stores on node A that list
//! node B as their fallback. Node A is SIGKILLed while the stores sell and send; the
//! stores fail over to B, and every sale is at HQ exactly once, with HQ's stock per store
//! = delivered − sold. (`tests/tests/hq_nodes.rs` does the same with nodes in the test's
//! process, where it can also look inside them.)

use std::path::Path;
use std::time::Duration;

use kassa_hq::db::PoolLimits;
use kassa_protocol::{Sku, StoreId};
use kassa_sim::fleet::HqProcess;
use kassa_tests::eventually;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_sync_loses_and_doubles_nothing() {
    kassa_tests::init_logging();
    let Some(pg) = kassa_tests::pg::PgCluster::start("a_node_killed_mid_sync") else { return };
    let url = pg.database("chain");
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    // The chain's certificate authority, made before the nodes start; B gets a copy.
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let pki = kassa_hq::pki::Pki::open_or_create(&a_dir.join("pki")).unwrap();
    pki.copy_to(&b_dir.join("pki")).unwrap();
    // The catalog, and a delivery to each store, through the database.
    let db = kassa_hq::Db::open_postgres(&url, PoolLimits::default()).unwrap();
    let items = kassa_protocol::catalog::parse_csv(kassa_sim::stack::DEMO_CATALOG_CSV).unwrap();
    db.publish_catalog(&items).unwrap();
    let skus: Vec<Sku> = items.iter().take(3).map(|i| i.sku.clone()).collect();
    for store in [1, 2] {
        db.deliver(StoreId(store), &skus.iter().map(|k| (k.clone(), 100)).collect::<Vec<_>>()).unwrap();
    }
    let exe = Path::new(env!("CARGO_BIN_EXE_kassa-sim"));
    let mut a = HqProcess::spawn(exe, &a_dir, Some(&url)).unwrap();
    let mut b = HqProcess::spawn(exe, &b_dir, Some(&url)).unwrap();
    let mut stores = Vec::new();
    for id in [1, 2] {
        let store =
            kassa_tests::start_relayed_store_at(&pki, a.quic, dir.path(), id, 180, vec![b.quic], cancel.clone()).await;
        kassa_tests::online_with_catalog(&store).await;
        stores.push(store);
    }

    let mut made = [0usize; 2];
    let mut sold = [[0i64; 3]; 2];
    for round in 0..24 {
        if round == 8 {
            let acked: Vec<u64> = stores.iter().map(|s| s.agent.journal.acked_seq().unwrap()).collect();
            assert!(acked.iter().all(|n| *n > 0), "node A acknowledged sales before it died: {acked:?}");
            a.kill().unwrap();
        }
        for (i, s) in stores.iter().enumerate() {
            let k = (round + i) % skus.len();
            s.agent.till.add_sku(skus[k].clone(), 1, &format!("add-{round}")).await.unwrap();
            kassa_tests::pay_exact(&s.agent.till, &s.cashier, format!("pay-{round}")).await;
            sold[i][k] += 1;
            made[i] += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, s) in stores.iter().enumerate() {
        eventually(Duration::from_secs(60), "every sale at HQ through node B", || async {
            let at_hq = db.sales(s.id, 0, 1_000).unwrap().len();
            let status = s.agent.status.borrow().clone();
            (at_hq == made[i] && status.hq.online && status.hq.backlog == 0).then_some(())
        })
        .await;
        let seqs: std::collections::BTreeSet<u64> = db.sales(s.id, 0, 1_000).unwrap().iter().map(|x| x.seq).collect();
        assert_eq!(seqs.len(), made[i], "store {}: each sale once", s.id);
        for (k, sku) in skus.iter().enumerate() {
            let at = db.stock(sku).unwrap();
            let row = at.iter().find(|x| x.store == s.id.0).expect("the store's stock");
            assert_eq!(row.quantity, 100 - sold[i][k], "store {}, {}: delivered − sold", s.id, sku.as_str());
        }
    }
    b.stop().unwrap();
    cancel.cancel();
}
