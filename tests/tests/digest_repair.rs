//! Anti-entropy over real QUIC: HQ loses a store's counter rows (a bad restore, a
//! hand-edited table) while the store is offline. When the store is back, the digests
//! of its counters differ, HQ asks for them all, and the store's stock at HQ is whole
//! again — without a sale being resent.

use std::sync::atomic::Ordering;
use std::time::Duration;

use kassa_protocol::StoreId;
use kassa_tests::{eventually, init_logging};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hq_repairs_lost_counters_from_the_store_by_digest() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let hq = kassa_tests::start_hq(dir.path(), kassa_hq::sync_server::NEARBY_INTERVAL, cancel.clone()).await;
    let skus: Vec<_> = hq.shared.db.catalog().unwrap().into_iter().take(3).map(|i| i.sku).collect();
    let store = kassa_tests::start_relayed_store(&hq, dir.path(), 1, cancel.clone()).await;
    let mut status = store.agent.status.subscribe();
    tokio::time::timeout(Duration::from_secs(15), status.wait_for(|s| s.hq.online)).await.unwrap().unwrap();

    for (i, sku) in skus.iter().enumerate() {
        store.agent.till.add_sku(sku.clone(), 2, &format!("add-{i}")).await.unwrap();
        kassa_tests::pay_exact(&store.agent.till, &store.cashier, format!("pay-{i}")).await;
    }
    let journal = store.agent.journal.clone();
    eventually(Duration::from_secs(15), "HQ to acknowledge the sales", || async {
        let head = journal.outbox_head().unwrap();
        (head > 0 && journal.acked_seq().unwrap() == head).then_some(())
    })
    .await;
    let own = |mut v: Vec<kassa_protocol::stock::CounterEntry>| {
        v.retain(|c| c.actor == store.agent.journal.actor());
        v.sort_by(|a, b| a.sku.cmp(&b.sku));
        v
    };
    let at_store = own(store.agent.journal.counters().unwrap());
    assert_eq!(at_store.len(), 3);
    assert_eq!(own(hq.shared.db.counters_at(StoreId(1)).unwrap()), at_store);

    // Offline for longer than QUIC's idle timeout, so the store reconnects afterwards.
    store.relay.cut.store(true, Ordering::Relaxed);
    eventually(Duration::from_secs(30), "the store to notice HQ is gone", || async {
        (!store.agent.status.borrow().hq.online).then_some(())
    })
    .await;
    // Meanwhile HQ loses two of the store's three counter rows.
    let db = rusqlite::Connection::open(dir.path().join("hq").join("hq.sqlite")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let lost = db
        .execute(
            "DELETE FROM stock_counters WHERE location = 1 AND actor_store = 1 AND sku IN (?1, ?2)",
            [skus[0].as_str(), skus[1].as_str()],
        )
        .unwrap();
    assert_eq!(lost, 2);
    assert_eq!(own(hq.shared.db.counters_at(StoreId(1)).unwrap()).len(), 1);
    let sales_before = hq.shared.db.stores().unwrap()[0].sales;

    store.relay.cut.store(false, Ordering::Relaxed);
    eventually(Duration::from_secs(30), "HQ to get the store's counters back", || async {
        (own(hq.shared.db.counters_at(StoreId(1)).unwrap()) == at_store).then_some(())
    })
    .await;
    // Repaired from the counters alone: no sale was sent again or counted twice.
    assert_eq!(hq.shared.db.stores().unwrap()[0].sales, sales_before);
    assert_eq!(store.agent.journal.acked_seq().unwrap(), store.agent.journal.outbox_head().unwrap());
    cancel.cancel();
}
