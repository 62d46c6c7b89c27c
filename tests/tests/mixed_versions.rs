//! Mixed versions on the wire, over real QUIC with TLS on loopback.
//!
//! A chain upgrades over weeks: HQ first, then the stores one by one. So the current HQ
//! serves a store that still speaks the previous protocol (here the real agent, set to
//! speak protocol 2 as release 0.1.0 does), exactly once, and the store then upgrades
//! in place without anything sent twice. And a store newer than its HQ is refused at the
//! handshake, says so plainly, and keeps selling offline until HQ is upgraded.

use std::collections::BTreeMap;
use std::time::Duration;

use kassa_agent::journal::{ReturnRequest, Role, User};
use kassa_protocol::wire::PROTOCOL_VERSION;
use kassa_protocol::{Kopecks, Sku, StoreId};
use kassa_tests::{eventually, hq_store_row, init_logging, start_hq_speaking, start_store_speaking};
use tokio_util::sync::CancellationToken;

const STORE: u32 = 5;

/// What one store's stock should be at HQ and at the store (no deliveries here).
#[derive(Default)]
struct Moves {
    sold: BTreeMap<Sku, i64>,
    returned: BTreeMap<Sku, i64>,
}

impl Moves {
    fn expected(&self, sku: &Sku) -> i64 {
        self.returned.get(sku).unwrap_or(&0) - self.sold.get(sku).unwrap_or(&0)
    }
}

async fn sell(
    agent: &kassa_agent::RunningAgent,
    cashier: &User,
    sku: &Sku,
    quantity: i64,
    key: &str,
    moves: &mut Moves,
) -> u64 {
    agent.till.add_sku(sku.clone(), quantity, &format!("add-{key}")).await.unwrap();
    let sale = kassa_tests::pay_exact(&agent.till, cashier, format!("pay-{key}")).await;
    *moves.sold.entry(sku.clone()).or_default() += quantity;
    sale.id.seq
}

async fn until_acked(agent: &kassa_agent::RunningAgent) {
    let journal = agent.journal.clone();
    eventually(Duration::from_secs(20), "HQ to acknowledge the store's outbox", || async {
        let head = journal.outbox_head().unwrap();
        (head > 0 && journal.acked_seq().unwrap() == head).then_some(())
    })
    .await;
}

/// HQ holds exactly records 1..=`records` of the store, `sales` of them sales, with the
/// stock they moved, equal to the store's own.
fn hq_holds_exactly(
    hq: &kassa_hq::RunningHq,
    agent: &kassa_agent::RunningAgent,
    records: u64,
    sales: u64,
    moves: &Moves,
    skus: &[Sku],
) {
    let at_hq = hq.shared.db.sales(StoreId(STORE), 0, 500).unwrap();
    assert_eq!(at_hq.iter().map(|s| s.seq).collect::<Vec<_>>(), (1..=records).collect::<Vec<_>>(), "each record once");
    let row = hq.shared.db.stores().unwrap().into_iter().find(|s| s.store == STORE).unwrap();
    assert_eq!((row.sales, row.acked_seq, row.backlog), (sales, records, 0));
    for sku in skus {
        let at_hq = hq.shared.db.stock(sku).unwrap().into_iter().find(|x| x.store == STORE).map_or(0, |x| x.quantity);
        assert_eq!(at_hq, moves.expected(sku), "HQ's stock of {sku}");
        assert_eq!(agent.journal.stock(sku).unwrap(), moves.expected(sku), "the store's stock of {sku}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_the_previous_protocol_syncs_exactly_once_then_upgrades_in_place() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let any = "127.0.0.1:0".parse().unwrap();
    let hq =
        start_hq_speaking(dir.path(), kassa_protocol::wire::SUPPORTED_VERSIONS.to_vec(), any, cancel.clone()).await;
    let skus: Vec<Sku> = hq.shared.db.catalog().unwrap().into_iter().take(3).map(|i| i.sku).collect();

    // The store as release 0.1.0 speaks: protocol 2.
    let old_cancel = cancel.child_token();
    let agent = start_store_speaking(&hq, dir.path(), STORE, Some(2), old_cancel.clone()).await;
    let cashier = User { id: "kassir".into(), name: "К".into(), role: Role::Cashier };
    agent.journal.add_user(&cashier, "1111", 0).unwrap();
    agent.journal.open_shift(1, "kassir", Kopecks(0), "shift", 0).unwrap();
    let mut status = agent.status.subscribe();
    tokio::time::timeout(Duration::from_secs(15), status.wait_for(|s| s.hq.online && s.hq.catalog_version > 0))
        .await
        .expect("the protocol-2 store connects and gets the catalog")
        .unwrap();
    {
        let s = agent.status.borrow();
        assert_eq!(s.hq.protocol_version, Some(2));
        assert_eq!(s.hq.hq_software_version, None, "HQ's protocol-2 Welcome does not say its version");
    }
    let row = hq_store_row(&hq, STORE).await.expect("HQ lists the store");
    assert_eq!(row["connected"], true);
    assert_eq!(row["protocol_version"], 2, "{row}");
    assert_eq!(row["software_version"], "unknown", "a protocol-2 store does not say: {row}");

    // Several sales and a return.
    let mut moves = Moves::default();
    let mut sale_seqs = Vec::new();
    for i in 0..4 {
        let seq = sell(&agent, &cashier, &skus[i % skus.len()], 1 + i as i64, &format!("v2-{i}"), &mut moves).await;
        sale_seqs.push(seq);
    }
    let request = ReturnRequest::WithReceipt { sale_seq: sale_seqs[1], lines: vec![(0, 1)] };
    agent.till.return_items(&cashier, request, None, "ret-v2".into()).await.unwrap();
    *moves.returned.entry(skus[1].clone()).or_default() += 1;
    until_acked(&agent).await;
    hq_holds_exactly(&hq, &agent, 5, 4, &moves, &skus);
    let applied = hq.shared.metrics.applied_entries.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(applied, 5, "HQ applied each record once");

    // The store is upgraded in place: stopped, and started again on the same data
    // directory speaking the current protocol.
    old_cancel.cancel();
    agent.wait().await;
    eventually(Duration::from_secs(10), "HQ to forget the old connection", || async {
        let row = hq_store_row(&hq, STORE).await.unwrap();
        (row["connected"] == false).then_some(row)
    })
    .await;
    let row = hq_store_row(&hq, STORE).await.unwrap();
    assert!(row["protocol_version"].is_null() && row["software_version"] == "unknown", "{row}");

    let agent = start_store_speaking(&hq, dir.path(), STORE, None, cancel.child_token()).await;
    let mut status = agent.status.subscribe();
    tokio::time::timeout(Duration::from_secs(15), status.wait_for(|s| s.hq.online))
        .await
        .expect("the upgraded store connects")
        .unwrap();
    {
        let s = agent.status.borrow();
        assert_eq!(s.hq.protocol_version, Some(PROTOCOL_VERSION));
        assert_eq!(s.hq.hq_software_version.as_deref(), Some(kassa_hq::sync_server::SOFTWARE_VERSION));
    }
    let row = hq_store_row(&hq, STORE).await.unwrap();
    assert_eq!(row["protocol_version"], PROTOCOL_VERSION, "{row}");
    assert_eq!(row["software_version"], kassa_agent::sync_client::SOFTWARE_VERSION, "{row}");
    // Nothing was sent twice: HQ's acknowledgement carried over, nothing applied again.
    assert_eq!(agent.journal.acked_seq().unwrap(), 5);
    assert_eq!(agent.journal.outbox_head().unwrap(), 5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hq.shared.metrics.applied_entries.load(std::sync::atomic::Ordering::Relaxed), applied);
    hq_holds_exactly(&hq, &agent, 5, 4, &moves, &skus);

    // New sales sync in the current protocol.
    for (i, sku) in skus.iter().take(2).enumerate() {
        sell(&agent, &cashier, sku, 2, &format!("v3-{i}"), &mut moves).await;
    }
    until_acked(&agent).await;
    hq_holds_exactly(&hq, &agent, 7, 6, &moves, &skus);
    assert_eq!(hq.shared.metrics.applied_entries.load(std::sync::atomic::Ordering::Relaxed), 7);
    assert!(agent.journal.verify().unwrap().ok());
    cancel.cancel();
    agent.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_newer_than_its_hq_says_so_and_sells_offline_until_hq_is_upgraded() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    // An HQ that speaks only protocol 2: as far as the wire goes, release 0.1.0.
    let old_hq_cancel = cancel.child_token();
    let any = "127.0.0.1:0".parse().unwrap();
    let hq = start_hq_speaking(dir.path(), vec![2], any, old_hq_cancel.clone()).await;
    let items = hq.shared.db.catalog().unwrap();
    let version = hq.shared.db.catalog_version().unwrap();

    let agent = start_store_speaking(&hq, dir.path(), STORE, None, cancel.child_token()).await;
    let cashier = User { id: "kassir".into(), name: "К".into(), role: Role::Cashier };
    agent.journal.add_user(&cashier, "1111", 0).unwrap();
    agent.journal.open_shift(1, "kassir", Kopecks(0), "shift", 0).unwrap();
    let mut status = agent.status.subscribe();
    let refused = tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.hq.error_code.is_some()))
        .await
        .expect("the store reports the refusal within seconds")
        .unwrap()
        .clone();
    assert_eq!(refused.hq.error_code, Some("hq_older"), "{:?}", refused.hq);
    assert_eq!(
        refused.hq.last_error.as_deref(),
        Some(
            format!(
                "HQ does not speak kassa-sync/{} (it is older than this store): upgrade HQ; selling offline",
                kassa_protocol::wire::PROTOCOL_VERSION
            )
            .as_str()
        )
    );
    assert!(!refused.hq.online);
    assert!(hq.shared.db.stores().unwrap().iter().all(|s| s.store != STORE), "HQ heard nothing of the store");

    // The store still sells (with the catalog it had before HQ was rolled back).
    agent.journal.apply_catalog(version, &items).unwrap();
    let mut moves = Moves::default();
    let sku = items[0].sku.clone();
    sell(&agent, &cashier, &sku, 3, "offline", &mut moves).await;
    assert_eq!((agent.journal.outbox_head().unwrap(), agent.journal.acked_seq().unwrap()), (1, 0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(agent.status.borrow().hq.error_code, Some("hq_older"), "still refused, still said");

    // HQ is upgraded (restarted where the store looks for it, offering both versions):
    // the store's backoff brings it back, and the sale reaches HQ.
    let addr = hq.quic_addr;
    old_hq_cancel.cancel();
    hq.wait().await;
    let hq =
        start_hq_speaking(dir.path(), kassa_protocol::wire::SUPPORTED_VERSIONS.to_vec(), addr, cancel.clone()).await;
    tokio::time::timeout(Duration::from_secs(45), status.wait_for(|s| s.hq.online))
        .await
        .expect("the store reconnects to the upgraded HQ")
        .unwrap();
    assert_eq!(agent.status.borrow().hq.error_code, None);
    until_acked(&agent).await;
    hq_holds_exactly(&hq, &agent, 1, 1, &moves, &[sku]);
    cancel.cancel();
    agent.wait().await;
}
