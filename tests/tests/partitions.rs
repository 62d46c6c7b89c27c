//! HQ and three stores over real QUIC, each store behind a UDP relay that can cut it
//! off. Stores sell and take returns and HQ delivers stock while links go down for
//! short blips (QUIC rides them out) and for longer than the idle timeout (the
//! connection dies and the store reconnects). After healing: every sale is at HQ
//! exactly once, HQ's stock per store = delivered − sold + returned, and the stores'
//! counters equal HQ's.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kassa_agent::journal::ReturnRequest;
use kassa_protocol::{Sku, StoreId};
use kassa_tests::{eventually, init_logging};
use tokio_util::sync::CancellationToken;

use kassa_protocol::seeded::SeededRng as Rng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_converge_with_hq_through_partitions() {
    init_logging();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("partition test seed {seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let hq = kassa_tests::start_hq(dir.path(), Duration::from_millis(500), cancel.clone()).await;
    let skus: Vec<Sku> = hq.shared.db.catalog().unwrap().into_iter().take(5).map(|i| i.sku).collect();

    let mut delivered: BTreeMap<(u32, Sku), i64> = BTreeMap::new();
    let mut stores = Vec::new();
    for id in 1..=3u32 {
        let store = kassa_tests::start_relayed_store(&hq, dir.path(), id, cancel.clone()).await;
        let deliveries: Vec<(Sku, i64)> = skus.iter().map(|s| (s.clone(), 50)).collect();
        for (sku, q) in &deliveries {
            *delivered.entry((id, sku.clone())).or_default() += q;
        }
        kassa_hq::deliver(&hq.shared, StoreId(id), deliveries).await.unwrap();
        stores.push(store);
    }
    for s in &stores {
        let status = s.agent.status.subscribe();
        let mut st = status;
        tokio::time::timeout(Duration::from_secs(15), st.wait_for(|x| x.hq.catalog_version > 0))
            .await
            .unwrap()
            .unwrap();
    }

    // One store stays cut off longer than QUIC's idle timeout (10 s): its connection
    // dies and it must reconnect; the others blink.
    let long = rng.below(3) as usize;
    stores[long].relay.cut.store(true, Ordering::Relaxed);
    let mut sold: BTreeMap<(u32, Sku), i64> = BTreeMap::new();
    let mut returned: BTreeMap<(u32, Sku), i64> = BTreeMap::new();
    let mut sales_made = [0u64; 3];
    for round in 0..60 {
        for (i, s) in stores.iter().enumerate() {
            if i != long {
                s.relay.cut.store(rng.below(3) == 0, Ordering::Relaxed);
            }
            // A sale of 1–2 lines.
            for _ in 0..1 + rng.below(2) {
                let sku = skus[rng.below(skus.len() as u64) as usize].clone();
                let q = 1 + rng.below(3) as i64;
                s.agent.till.add_sku(sku.clone(), q, &format!("add-{round}-{}", rng.next_u64())).await.unwrap();
                *sold.entry((s.id.0, sku)).or_default() += q;
            }
            let sale = kassa_tests::pay_exact(&s.agent.till, &s.cashier, format!("pay-{round}")).await;
            sales_made[i] += 1;
            // Now and then a return of the sale's first line.
            if rng.below(4) == 0 {
                let request = ReturnRequest::WithReceipt { sale_seq: sale.id.seq, lines: vec![(0, 1)] };
                s.agent.till.return_items(&s.cashier, request, None, format!("ret-{round}")).await.unwrap();
                *returned.entry((s.id.0, sale.lines[0].sku.clone())).or_default() += 1;
            }
        }
        // HQ delivers during the partitions too.
        if round % 10 == 5 {
            let i = rng.below(3) as u32 + 1;
            let sku = skus[rng.below(skus.len() as u64) as usize].clone();
            kassa_hq::deliver(&hq.shared, StoreId(i), vec![(sku.clone(), 7)]).await.unwrap();
            *delivered.entry((i, sku)).or_default() += 7;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The long partition has lasted ≥ 12 s by now; make sure the connection died.
    let cut_store = &stores[long];
    eventually(Duration::from_secs(20), "the cut-off store to notice HQ is gone", || async {
        (!cut_store.agent.status.borrow().hq.online).then_some(())
    })
    .await;
    assert!(cut_store.agent.status.borrow().hq.backlog > 0, "sales pile up while offline");

    // Heal everything.
    for s in &stores {
        s.relay.cut.store(false, Ordering::Relaxed);
    }
    for s in &stores {
        let journal = s.agent.journal.clone();
        eventually(Duration::from_secs(60), &format!("store {} to drain its outbox", s.id), || {
            let journal = journal.clone();
            async move { (journal.acked_seq().unwrap() == journal.outbox_head().unwrap()).then_some(()) }
        })
        .await;
    }
    // Every sale and return at HQ exactly once (HQ's table is keyed by (store, seq)).
    for (i, s) in stores.iter().enumerate() {
        let (sales, returns) = s.agent.journal.docs_count().unwrap();
        assert_eq!(sales, sales_made[i]);
        let at_hq = hq.shared.db.sales(s.id, 0, 500).unwrap();
        assert_eq!(at_hq.len() as u64, sales + returns, "store {}: HQ holds {} records", s.id, at_hq.len());
        let seqs: Vec<u64> = at_hq.iter().map(|x| x.seq).collect();
        assert_eq!(seqs, (1..=sales + returns).collect::<Vec<_>>());
    }
    // Stock: HQ = delivered − sold + returned, and the store sees the same once HQ's
    // deliveries have reached it.
    for s in &stores {
        for sku in &skus {
            let key = (s.id.0, sku.clone());
            let expected =
                delivered.get(&key).unwrap_or(&0) - sold.get(&key).unwrap_or(&0) + returned.get(&key).unwrap_or(&0);
            let at_hq =
                hq.shared.db.stock(sku).unwrap().into_iter().find(|x| x.store == s.id.0).map_or(0, |x| x.quantity);
            assert_eq!(at_hq, expected, "HQ stock of {sku} at store {}", s.id);
            let journal = s.agent.journal.clone();
            let sku2 = sku.clone();
            eventually(Duration::from_secs(20), "the store's counters to equal HQ's", || {
                let (journal, sku2) = (journal.clone(), sku2.clone());
                async move { (journal.stock(&sku2).unwrap() == expected).then_some(()) }
            })
            .await;
        }
        assert!(s.agent.journal.verify().unwrap().ok());
    }
    // "Where else is it in stock": each store sees the other two stores' stock as HQ
    // has it, with the age of that figure.
    for s in &stores {
        let sku = skus[0].clone();
        let hq_view: Vec<(u32, i64)> = hq
            .shared
            .db
            .stock(&sku)
            .unwrap()
            .into_iter()
            .filter(|x| x.store != s.id.0)
            .map(|x| (x.store, x.quantity))
            .collect();
        assert_eq!(hq_view.len(), 2);
        let journal = s.agent.journal.clone();
        eventually(Duration::from_secs(10), "the nearby stock view", || {
            let (journal, sku, hq_view) = (journal.clone(), sku.clone(), hq_view.clone());
            async move {
                let (view, as_of) = journal.nearby_stock(&sku).unwrap();
                (view == hq_view && as_of > 0).then_some(())
            }
        })
        .await;
    }
    let stores_api = hq.shared.db.stores().unwrap();
    assert!(stores_api.iter().all(|s| s.backlog == 0 && s.head > 0), "{stores_api:?}");
    assert!(hq.shared.db.parked().unwrap().is_empty());
    cancel.cancel();
    for s in stores {
        s.agent.wait().await;
    }
    hq.wait().await;
}
