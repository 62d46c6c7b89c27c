//! Return anywhere, end to end over QUIC with TLS, SQLite files and the till's HTTP API:
//! store 1 sells; store 2 finds the sale by its receipt number (HQ answers with what is
//! left) and takes part of it back, refunded to the card that paid; store 1 then sees
//! store 2's return (online, HQ's figures) and cannot take back more than is left. Two
//! stores that could not see each other's returns (store 1 cut off) take back the same
//! goods: HQ lists the line returned beyond what was sold, with both returns. Offline,
//! another store's receipt is taken back only if it proves itself (signed by its
//! store's key, which stores learn from HQ) and within HQ's limits per receipt and per
//! shift; forged or altered receipts are refused online and offline; a receipt without
//! a proof needs HQ; a receipt no store made is not found. A sale with a loyalty card
//! returned at another store, online or offline, takes its points back there, gives
//! points back as points, and never takes the balance below zero. Online orders are
//! returned at any store by their number, prepaid or paid at pickup.

use std::sync::atomic::Ordering;
use std::time::Duration;

use kassa_protocol::catalog::Unit;
use kassa_protocol::returns::{SaleAnswer, SaleRef};
use kassa_tests::{eventually, init_logging, AgentApi};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

/// Sells `quantity` of `sku` at the store behind `api`, paid by card; the sale's view.
async fn sell_by_card(api: &AgentApi, sku: &str, quantity: i64, key: &str) -> Value {
    let add = json!({ "sku": sku, "quantity": quantity, "idempotency_key": format!("{key}-add") });
    let (status, body) = api.post("/api/basket/items", add).await;
    assert_eq!(status, 200, "{body}");
    let (_, basket) = api.get("/api/basket").await;
    let total = basket["totals"]["total_kopecks"].as_i64().unwrap();
    let pay = json!({ "tenders": [{ "kind": "card", "amount_kopecks": total }], "basket_id": basket["basket"]["id"],
                      "idempotency_key": key });
    let (status, paid) = api.post("/api/pay", pay).await;
    assert_eq!(status, 200, "{paid}");
    paid["sale"].clone()
}

/// HQ and stores 1 and 2 behind cuttable relays, both online, a cashier logged in at
/// each; `item` is a piece item of the catalog.
struct Chain {
    dir: tempfile::TempDir,
    cancel: CancellationToken,
    hq: kassa_hq::RunningHq,
    item: kassa_protocol::catalog::CatalogItem,
    one: kassa_tests::RelayedStore,
    two: kassa_tests::RelayedStore,
    api1: AgentApi,
    api2: AgentApi,
}

async fn chain() -> Chain {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let hq = kassa_tests::start_hq(dir.path(), Duration::from_millis(300), cancel.clone()).await;
    let item = hq.shared.db.catalog().unwrap().into_iter().find(|i| i.unit == Unit::Piece).unwrap();
    let one = kassa_tests::start_relayed_store(&hq, dir.path(), 1, cancel.clone()).await;
    let two = kassa_tests::start_relayed_store(&hq, dir.path(), 2, cancel.clone()).await;
    let api1 = AgentApi::login(&one.agent, "kassir", "1111").await;
    let api2 = AgentApi::login(&two.agent, "kassir", "1111").await;
    eventually(WAIT, "both stores online", || async {
        (one.agent.status.borrow().hq.online && two.agent.status.borrow().hq.online).then_some(())
    })
    .await;
    Chain { dir, cancel, hq, item, one, two, api1, api2 }
}

async fn hq_has(hq: &kassa_hq::RunningHq, receipt: &str) {
    let by = SaleRef::ReceiptNo(receipt.to_owned());
    eventually(WAIT, &format!("HQ to hold sale {receipt}"), || async {
        matches!(hq.shared.db.sale_for_return(&by).unwrap(), SaleAnswer::Found { .. }).then_some(())
    })
    .await;
}

fn returned_at_hq(hq: &kassa_hq::RunningHq, receipt: &str) -> i64 {
    match hq.shared.db.sale_for_return(&SaleRef::ReceiptNo(receipt.to_owned())).unwrap() {
        SaleAnswer::Found { returned, .. } => returned.iter().map(|r| r.0).sum(),
        SaleAnswer::NotFound => panic!("HQ lost sale {receipt}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_is_returned_at_another_store_within_what_is_left() {
    let Chain { dir: _dir, cancel, hq, item, one, two, api1, api2 } = chain().await;

    let sale = sell_by_card(&api1, &item.sku.0, 3, "sale-1").await;
    let receipt = sale["receipt_no"].as_str().unwrap().to_owned();
    hq_has(&hq, &receipt).await;

    // Store 2 finds store 1's receipt: HQ says all three are left.
    let (status, found) = api2.get(&format!("/api/sales/lookup?code={receipt}")).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!((found["elsewhere"].as_bool(), found["returnable"].clone()), (Some(true), json!([3])));
    // One comes back at store 2, to the card that paid; a retry answers the same return.
    let back =
        |n: i64, key: &str| json!({ "code": receipt, "lines": [{ "line": 0, "quantity": n }], "idempotency_key": key });
    let (status, ret) = api2.post("/api/returns", back(1, "ret-2a")).await;
    assert_eq!(status, 200, "{ret}");
    assert_eq!(ret["return"]["refunds"], json!([{ "kind": "card", "amount_kopecks": item.price.0 }]), "{ret}");
    let (_, again) = api2.post("/api/returns", back(1, "ret-2a")).await;
    assert_eq!(
        (again["replayed"].as_bool(), &again["return"]["receipt_no"]),
        (Some(true), &ret["return"]["receipt_no"])
    );
    // More than is left is refused at store 2 (its own return counted before HQ heard).
    let (status, over) = api2.post("/api/returns", back(3, "ret-2b")).await;
    assert_eq!((status, over["error"].as_str()), (422, Some("over_return")), "{over}");
    eventually(WAIT, "HQ to hear store 2's return", || async { (returned_at_hq(&hq, &receipt) == 1).then_some(()) })
        .await;
    // Store 1, online, knows of store 2's return: three more are refused, two taken.
    let own =
        |n: i64, key: &str| json!({ "code": receipt, "lines": [{ "line": 0, "quantity": n }], "idempotency_key": key });
    let (status, over) = api1.post("/api/returns", own(3, "ret-1a")).await;
    assert_eq!((status, over["error"].as_str()), (422, Some("over_return")), "{over}");
    let (status, ret) = api1.post("/api/returns", own(2, "ret-1b")).await;
    assert_eq!(status, 200, "{ret}");
    eventually(WAIT, "HQ to hear store 1's return", || async { (returned_at_hq(&hq, &receipt) == 3).then_some(()) })
        .await;
    assert!(hq.shared.db.over_returns().unwrap().is_empty(), "online, never more than sold");

    // Store 1 is cut off: it cannot see store 2 take back the same milk it takes back.
    let sale = sell_by_card(&api1, &item.sku.0, 2, "sale-2").await;
    let receipt2 = sale["receipt_no"].as_str().unwrap().to_owned();
    hq_has(&hq, &receipt2).await;
    one.relay.cut.store(true, Ordering::Relaxed);
    eventually(WAIT, "store 1 to see HQ gone", || async { (!one.agent.status.borrow().hq.online).then_some(()) }).await;
    // A retry of store 1's earlier return, made online, is the same return offline.
    let (status, replay) = api1.post("/api/returns", own(2, "ret-1b")).await;
    assert_eq!((status, replay["replayed"].as_bool()), (200, Some(true)), "{replay}");
    let both = |key: &str| json!({ "code": receipt2, "lines": [{ "line": 0, "quantity": 2 }], "idempotency_key": key });
    let (status, ret) = api2.post("/api/returns", both("ret-2c")).await;
    assert_eq!(status, 200, "{ret}");
    let (status, ret) = api1.post("/api/returns", both("ret-1c")).await;
    assert_eq!(status, 200, "offline, store 1 goes by what it knows: {ret}");
    one.relay.cut.store(false, Ordering::Relaxed);
    let over = eventually(WAIT, "HQ to list the over-return", || async {
        let over = hq.shared.db.over_returns().unwrap();
        (!over.is_empty()).then_some(over)
    })
    .await;
    assert_eq!((over[0].receipt_no.as_str(), over[0].sold, over[0].returned), (receipt2.as_str(), 2, 4), "{over:?}");
    assert_eq!(over[0].returns.iter().map(|r| r.0).collect::<Vec<_>>().len(), 2, "{over:?}");

    // Offline, another store's receipt is refused plainly; a receipt no store made is
    // not found.
    let (status, missing) = api2.get("/api/sales/lookup?code=0001-01-999999").await;
    assert_eq!((status, missing["error"].as_str()), (404, Some("no_such_sale")), "{missing}");
    two.relay.cut.store(true, Ordering::Relaxed);
    eventually(WAIT, "store 2 to see HQ gone", || async { (!two.agent.status.borrow().hq.online).then_some(()) }).await;
    let (status, offline) = api2.post("/api/returns", back(1, "ret-2d")).await;
    assert_eq!((status, offline["error"].as_str()), (503, Some("return_needs_hq")), "{offline}");
    for store in [&one, &two] {
        let report = store.agent.journal.verify().unwrap();
        assert!(report.ok(), "store {}'s journal verifies: {report:?}", store.id);
    }
    cancel.cancel();
}

/// The code store `store`'s receipt of sale `seq` carries: signed with its key, as its
/// spooler prints it (`agent::devices`).
fn printed_code(dir: &std::path::Path, store: &kassa_tests::RelayedStore, seq: u64) -> String {
    let link = kassa_agent::config::HqLink {
        addr: "127.0.0.1:1".parse().unwrap(),
        server_name: kassa_hq::pki::HQ_SERVER_NAME.into(),
        pki_dir: dir.join(format!("store-{}/pki", store.id.0)),
        protocol_version: None,
        fallback_addrs: Vec::new(),
    };
    let signer = kassa_agent::sync_client::receipt_signer(&link).expect("an enrolled store signs its receipts");
    signer.code(&store.agent.journal.sale(seq).unwrap().expect("the sale"))
}

/// `code` with one bit of its signed proof flipped (still well-formed Base45).
fn altered(code: &str) -> String {
    use kassa_protocol::receipt_proof::base45;
    // `KASSA:<store>:<seq>:` then the proof (whose Base45 may hold `:` too).
    let head_len = code.match_indices(':').nth(2).unwrap().0 + 1;
    let (head, body) = code.split_at(head_len);
    let mut bytes = base45::decode(body.strip_suffix('.').unwrap()).unwrap();
    bytes[10] ^= 1; // inside the proof: a line's or the sale's figures
    format!("{head}{}.", base45::encode(&bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_receipt_is_returned_offline_within_hqs_limits_and_a_forged_one_is_refused() {
    let Chain { dir, cancel, hq, item, one, two, api1, api2 } = chain().await;
    let price = item.price.0;
    // HQ's limits: two pieces a receipt, three a shift.
    let limits = json!({ "per_receipt_kopecks": 2 * price, "per_shift_kopecks": 3 * price });
    let (status, set) =
        kassa_tests::HqApi::admin(&hq).await.send(reqwest::Method::PUT, "/api/returns/limits", Some(&limits)).await;
    assert_eq!(status, 200, "{set}");
    let bad = json!({ "per_receipt_kopecks": -1, "per_shift_kopecks": 0 });
    let (status, refused) =
        kassa_tests::HqApi::admin(&hq).await.send(reqwest::Method::PUT, "/api/returns/limits", Some(&bad)).await;
    assert_eq!((status, refused["error"].as_str()), (422, Some("return_limits")), "{refused}");
    // Store 2 learns store 1's key (HQ recorded it from store 1's certificate) and HQ's
    // limits, over sync.
    eventually(WAIT, "store 2 to hold store 1's key and HQ's limits", || async {
        let j = &two.agent.journal;
        let known = !j.store_keys(kassa_protocol::StoreId(1)).unwrap().is_empty();
        (known && j.return_limits().unwrap().per_receipt.0 == 2 * price).then_some(())
    })
    .await;

    let sale_a = sell_by_card(&api1, &item.sku.0, 3, "sale-a").await;
    let sale_b = sell_by_card(&api1, &item.sku.0, 2, "sale-b").await;
    let seq = |s: &Value| s["id"]["seq"].as_u64().unwrap();
    let (code_a, code_b) = (printed_code(dir.path(), &one, seq(&sale_a)), printed_code(dir.path(), &one, seq(&sale_b)));
    let url = |code: &str| format!("/api/sales/lookup?code={}", urlencode(code));

    // Store 2 is cut off from HQ: store 1's receipt proves itself.
    two.relay.cut.store(true, Ordering::Relaxed);
    eventually(WAIT, "store 2 to see HQ gone", || async { (!two.agent.status.borrow().hq.online).then_some(()) }).await;
    let (status, found) = api2.get(&url(&code_a)).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!((found["elsewhere"].as_bool(), found["returnable"].clone()), (Some(true), json!([3])), "{found}");
    assert_eq!(found["offline"], json!({ "receipt_left_kopecks": 2 * price, "shift_left_kopecks": 3 * price }));
    assert_eq!(found["sale"]["receipt_no"], sale_a["receipt_no"]);
    let back = |code: &str, n: i64, key: &str| json!({ "code": code, "lines": [{ "line": 0, "quantity": n }], "idempotency_key": key });
    // Three pieces are more than HQ allows a receipt offline; two are not.
    let (status, over) = api2.post("/api/returns", back(&code_a, 3, "off-1")).await;
    assert_eq!((status, over["error"].as_str()), (422, Some("offline_limit_receipt")), "{over}");
    let (status, ret) = api2.post("/api/returns", back(&code_a, 2, "off-2")).await;
    assert_eq!(status, 200, "{ret}");
    assert_eq!(ret["return"]["refunds"], json!([{ "kind": "card", "amount_kopecks": 2 * price }]), "{ret}");
    let (status, over) = api2.post("/api/returns", back(&code_a, 1, "off-3")).await;
    assert_eq!((status, over["error"].as_str()), (422, Some("offline_limit_receipt")), "{over}");
    // Another receipt: one piece within the shift's limit, the next beyond it.
    let (status, ret) = api2.post("/api/returns", back(&code_b, 1, "off-4")).await;
    assert_eq!(status, 200, "{ret}");
    let (status, over) = api2.post("/api/returns", back(&code_b, 1, "off-5")).await;
    assert_eq!((status, over["error"].as_str()), (422, Some("offline_limit_shift")), "{over}");
    // Forged or altered receipts are refused; a receipt printed before signatures (the
    // plain code, or its number) needs HQ.
    let stranger = kassa_protocol::receipt_proof::ReceiptSigner::generate();
    let forged = stranger.code(&one.agent.journal.sale(seq(&sale_a)).unwrap().unwrap());
    for code in [
        forged.clone(),
        altered(&code_a),
        code_b.replacen(&format!(":{}:", seq(&sale_b)), &format!(":{}:", seq(&sale_a)), 1),
    ] {
        let (status, refused) = api2.get(&url(&code)).await;
        assert_eq!((status, refused["error"].as_str()), (422, Some("receipt_forged")), "{code}: {refused}");
        let (status, refused) = api2.post("/api/returns", back(&code, 1, "off-forged")).await;
        assert_eq!(refused["error"].as_str(), Some("receipt_forged"), "{status} {refused}");
    }
    let plain = format!("KASSA:1:{}", seq(&sale_a));
    for code in [plain.as_str(), sale_a["receipt_no"].as_str().unwrap()] {
        let (status, refused) = api2.get(&url(code)).await;
        assert_eq!((status, refused["error"].as_str()), (503, Some("return_needs_hq")), "{refused}");
    }

    // Store 1, cut off too, takes back all of sale A itself: with store 2's two pieces
    // that is more than was sold, which HQ lists once both are back.
    one.relay.cut.store(true, Ordering::Relaxed);
    eventually(WAIT, "store 1 to see HQ gone", || async { (!one.agent.status.borrow().hq.online).then_some(()) }).await;
    let (status, ret) = api1.post("/api/returns", back(&code_a, 3, "own-1")).await;
    assert_eq!(status, 200, "{ret}");
    one.relay.cut.store(false, Ordering::Relaxed);
    two.relay.cut.store(false, Ordering::Relaxed);
    let receipt_a = sale_a["receipt_no"].as_str().unwrap().to_owned();
    let over = eventually(WAIT, "HQ to list sale A's over-return", || async {
        let over = hq.shared.db.over_returns().unwrap();
        over.into_iter().find(|o| o.receipt_no == receipt_a)
    })
    .await;
    assert_eq!((over.sold, over.returned, over.returns.len()), (3, 5, 2), "{over:?}");
    eventually(WAIT, "HQ to hold every return", || async {
        (returned_at_hq(&hq, sale_b["receipt_no"].as_str().unwrap()) == 1).then_some(())
    })
    .await;

    // Online again, store 2 goes by HQ's figures (no offline limits), and a forged code
    // is still refused.
    eventually(WAIT, "store 2 back online", || async { two.agent.status.borrow().hq.online.then_some(()) }).await;
    let (status, found) = api2.get(&url(&code_b)).await;
    assert_eq!((status, found["returnable"].clone(), found.get("offline")), (200, json!([1]), None), "{found}");
    let (status, refused) = api2.get(&url(&forged)).await;
    assert_eq!((status, refused["error"].as_str()), (422, Some("receipt_forged")), "{refused}");
    for store in [&one, &two] {
        let report = store.agent.journal.verify().unwrap();
        assert!(report.ok(), "store {}'s journal verifies: {report:?}", store.id);
    }
    cancel.cancel();
}

/// `s` for a URL's query (a signed code has spaces, `%`, `+`, `/` and `:`).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Return rights: store 2's till is about to take back two of three — HQ holds them for
/// it as it asks (the claim a till makes as it commits a return; the return itself is
/// then still on its way) — so store 1, online, cannot take back more than the one left;
/// store 2's return then goes through, and nothing was returned twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_online_cannot_both_refund_the_same_goods() {
    let Chain { dir: _dir, cancel, hq, item, one: _one, two, api1, api2 } = chain().await;
    let sale = sell_by_card(&api1, &item.sku.0, 3, "sale-1").await;
    let receipt = sale["receipt_no"].as_str().unwrap().to_owned();
    hq_has(&hq, &receipt).await;
    let back =
        |n: i64, key: &str| json!({ "code": receipt, "lines": [{ "line": 0, "quantity": n }], "idempotency_key": key });

    // Store 2's till claims two as it would commit its return of them.
    let claim = kassa_protocol::returns::ReturnClaim { key: "ret-2".into(), lines: vec![(0, 2)] };
    let found = two.agent.till.sale_elsewhere(&receipt, Some(claim)).await.unwrap();
    assert!(matches!(found, kassa_agent::till::ElsewhereSale::Online { .. }), "{found:?}");
    assert_eq!(returned_at_hq(&hq, &receipt), 0, "nothing returned yet, two held");
    // Store 1, online, sees one left: two are refused, one is taken.
    let (status, over) = api1.post("/api/returns", back(2, "ret-1a")).await;
    assert_eq!((status, over["error"].as_str()), (422, Some("over_return")), "{over}");
    let (status, ret) = api1.post("/api/returns", back(1, "ret-1b")).await;
    assert_eq!(status, 200, "{ret}");
    // Store 2's return of its two (the same key: its claim, not a second one).
    let (status, ret) = api2.post("/api/returns", back(2, "ret-2")).await;
    assert_eq!(status, 200, "{ret}");
    // A third store's worth more is refused now: all three are back or held.
    let (status, over) = api2.post("/api/returns", back(1, "ret-2b")).await;
    assert_eq!((status, over["error"].as_str()), (422, Some("over_return")), "{over}");
    eventually(WAIT, "HQ to hold both returns", || async { (returned_at_hq(&hq, &receipt) == 3).then_some(()) }).await;
    assert!(hq.shared.db.over_returns().unwrap().is_empty(), "online, never more than sold");
    cancel.cancel();
}

/// The customer's balance as HQ holds it, once it is `expected`.
async fn hq_balance(hq: &kassa_hq::RunningHq, card: &str, expected: i64) {
    let api = kassa_tests::HqApi::admin(hq).await;
    let path = format!("/api/loyalty/{card}");
    eventually(WAIT, &format!("HQ to hold a balance of {expected} points"), || {
        let (api, path) = (api.clone(), path.clone());
        async move { (api.get(&path).await.1["balance"] == expected).then_some(()) }
    })
    .await;
}

/// A sale with a loyalty card, returned at another store online: the points its lines
/// earned are taken back there (store 2 asks HQ for the rights, under the bounded
/// counter), points that paid go back as points and the money to the card. Once the
/// customer has spent their points, what cannot be taken back is kept from the refund:
/// the balance never goes below zero. Offline, the receipt's signed points let store 2
/// do the same with the rights it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loyalty_sale_returned_elsewhere_settles_its_points() {
    use kassa_protocol::sale::{Tender, TenderKind};
    use kassa_protocol::{Kopecks, Sku};
    let Chain { dir, cancel, hq, one, two, .. } = chain().await;
    let tender = |kind: TenderKind, kopecks: i64| Tender { kind, amount: Kopecks(kopecks) };
    let milk = || Sku("100001".into()); // 106,90 ₽, earns a point per 10 ₽
    let till1 = &one.agent.till;
    till1.new_customer("+7 (912) 345-67-89".into(), Some("Мария".into())).await.unwrap();
    let card = kassa_tests::customer_of(&till1.basket_event().await).card.clone();
    // Sale A: 50 milk by card, 534 points earned.
    till1.add_sku(milk(), 50, "a-add").await.unwrap();
    let (sale_a, _) =
        till1.pay(&one.cashier, vec![tender(TenderKind::Card, 534_500)], None, "a-pay".into()).await.unwrap();
    assert_eq!(sale_a.loyalty.as_ref().unwrap().earned_points(), 534);
    // Sale B: 10 milk, 300 points and the rest by card.
    till1.set_customer(&card).await.unwrap();
    till1.add_sku(milk(), 10, "b-add").await.unwrap();
    let tenders = vec![tender(TenderKind::Points, 30_000), tender(TenderKind::Card, 76_900)];
    let (sale_b, _) = till1.pay(&one.cashier, tenders, None, "b-pay".into()).await.unwrap();
    let earned_b = sale_b.loyalty.as_ref().unwrap().earned_points();
    for receipt in [&sale_a.receipt_no, &sale_b.receipt_no] {
        hq_has(&hq, receipt).await;
    }
    let mut balance = 534 - 300 + earned_b;
    hq_balance(&hq, &card, balance).await;

    // Store 2 takes back 10 of sale A: the 107 points they earned (⌈534 × 10 / 50⌉) come
    // off the balance, the money goes back to the card whole.
    let till2 = &two.agent.till;
    let (ret, _) =
        till2.return_elsewhere(&two.cashier, &sale_a.receipt_no, vec![(0, 10)], None, "r-1".into()).await.unwrap();
    assert_eq!(ret.refunds, vec![tender(TenderKind::Card, 106_900)], "{ret:?}");
    let points = ret.loyalty.clone().expect("the return settles the sale's points");
    assert_eq!((points.take_back, points.shortfall, points.deducted), (107, 0, Kopecks::ZERO), "{points:?}");
    balance -= 107;
    hq_balance(&hq, &card, balance).await;
    // All of sale B: its points go back as points, its card payment to the card.
    let (ret, _) =
        till2.return_elsewhere(&two.cashier, &sale_b.receipt_no, vec![(0, 10)], None, "r-2".into()).await.unwrap();
    assert_eq!(ret.refunds, vec![tender(TenderKind::Card, 76_900), tender(TenderKind::Points, 30_000)], "{ret:?}");
    let points = ret.loyalty.clone().unwrap();
    assert_eq!((points.take_back, points.give_back, points.shortfall), (earned_b, 300, 0), "{points:?}");
    balance += 300 - earned_b;
    hq_balance(&hq, &card, balance).await;

    // The customer spends what they have at store 1 (and earns a little on the rest).
    till1.set_customer(&card).await.unwrap();
    till1.add_sku(milk(), 10, "c-add").await.unwrap();
    let tenders = vec![tender(TenderKind::Points, balance * 100), tender(TenderKind::Card, 106_900 - balance * 100)];
    let (sale_c, _) = till1.pay(&one.cashier, tenders, None, "c-pay".into()).await.unwrap();
    let left = sale_c.loyalty.as_ref().unwrap().earned_points();
    hq_balance(&hq, &card, left).await;
    // The other 40 of sale A earned 427 points, more than the customer has: store 2
    // takes back what HQ grants it and keeps the rest's worth from the refund.
    let (ret, _) =
        till2.return_elsewhere(&two.cashier, &sale_a.receipt_no, vec![(0, 40)], None, "r-3".into()).await.unwrap();
    let points = ret.loyalty.clone().unwrap();
    assert_eq!(points.take_back, 427, "{points:?}");
    assert!(points.shortfall >= 427 - left && points.spend <= left, "{points:?}");
    assert_eq!(points.spend + points.shortfall, 427, "{points:?}");
    assert_eq!(points.deducted, Kopecks(points.shortfall * 100), "{points:?}");
    assert_eq!(ret.refunds, vec![tender(TenderKind::Card, 427_600 - points.shortfall * 100)], "{ret:?}");
    hq_balance(&hq, &card, left - points.spend).await;
    assert!(hq.shared.db.over_returns().unwrap().is_empty(), "online, never more than sold");

    // Offline, store 2 takes back sale C from its signed receipt, which carries the
    // sale's points: points that paid go back as points, what the lines earned comes off
    // (store 2 holds no rights: it gave them to HQ), as the selling store would do.
    eventually(WAIT, "store 2 to hold store 1's key", || async {
        (!two.agent.journal.store_keys(kassa_protocol::StoreId(1)).unwrap().is_empty()).then_some(())
    })
    .await;
    two.relay.cut.store(true, Ordering::Relaxed);
    eventually(WAIT, "store 2 to see HQ gone", || async { (!two.agent.status.borrow().hq.online).then_some(()) }).await;
    let code = printed_code(dir.path(), &one, sale_c.id.seq);
    let found = till2.sale_elsewhere(&code, None).await.unwrap();
    assert!(matches!(found, kassa_agent::till::ElsewhereSale::Offline { .. }), "{found:?}");
    let (ret, _) = till2.return_elsewhere(&two.cashier, &code, vec![(0, 10)], None, "r-4".into()).await.unwrap();
    let back = ret.loyalty.clone().unwrap();
    assert_eq!((back.take_back, back.give_back), (left, balance), "{back:?}");
    let by_points = balance * 100;
    let expected = vec![tender(TenderKind::Card, 106_900 - by_points), tender(TenderKind::Points, by_points)];
    assert_eq!(ret.refunds, expected, "{ret:?}");
    let before = left - points.spend;
    two.relay.cut.store(false, Ordering::Relaxed);
    hq_balance(&hq, &card, before + back.earn - back.spend).await;
    for store in [&one, &two] {
        let report = store.agent.journal.verify().unwrap();
        assert!(report.ok(), "store {}'s journal verifies: {report:?}", store.id);
    }
    cancel.cancel();
}

/// An online order returned at another store by its number: a prepaid one (paid to the
/// online shop: its purchase is the shop's sale of what was handed over) and one paid at
/// pickup (its store's sale), each refunded to the card, each within what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_order_is_returned_at_another_store_by_its_number() {
    use kassa_protocol::orders::OrderId;
    // The stores' relays live as long as their bindings.
    let Chain { dir: _dir, cancel, hq, item, one, two: _two, api1, api2 } = chain().await;
    let mut status = one.agent.status.subscribe();
    tokio::time::timeout(WAIT, status.wait_for(|x| x.hq.catalog_version > 0)).await.unwrap().unwrap();
    hq.shared.db.deliver(kassa_protocol::StoreId(1), &[(item.sku.clone(), 10)]).unwrap();
    hq.shared.counters.send_modify(|g| *g += 1);
    eventually(WAIT, "store 1 to hold its stock", || async {
        (api1.get(&format!("/api/stock/{}", item.sku.0)).await.1["quantity"] == 10).then_some(())
    })
    .await;
    let shop = kassa_tests::HqApi::admin(&hq).await;
    let price = item.price.0;
    let mut ids = Vec::new();
    for (payment, key) in [("prepaid", "o-1"), ("at_pickup", "o-2")] {
        let place = json!({ "store": 1, "payment": payment, "lines": [{ "sku": item.sku.0, "quantity": 3 }],
                            "idempotency_key": key });
        let (status, order) = shop.send(reqwest::Method::POST, "/api/orders", Some(&place)).await;
        assert_eq!(status, 200, "{order}");
        ids.push(order["id"].as_u64().unwrap());
    }
    // Store 1 hands both over: the prepaid one as it is, the other paid by card.
    let by_card = json!([{ "kind": "card", "amount_kopecks": 3 * price }]);
    for (id, body) in [
        (ids[0], json!({ "idempotency_key": "c-1" })),
        (ids[1], json!({ "tenders": by_card, "idempotency_key": "c-2" })),
    ] {
        eventually(WAIT, &format!("order {id} at store 1"), || async {
            let (_, listed) = api1.get("/api/orders").await;
            listed["orders"].as_array().and_then(|o| o.iter().any(|o| o["id"] == id).then_some(()))
        })
        .await;
        let (status, handed) = api1.post(&format!("/api/orders/{id}/collect"), body).await;
        assert_eq!((status, handed["state"].as_str()), (200, Some("collected")), "{handed}");
        eventually(WAIT, &format!("HQ to hear order {id} collected"), || async {
            (shop.get(&format!("/api/orders/{id}")).await.1["state"] == "collected").then_some(())
        })
        .await;
    }
    // Store 2 takes two of each back by the order's number, to the card.
    for (id, key) in [(ids[0], "r-1"), (ids[1], "r-2")] {
        let (status, found) = api2.get(&format!("/api/sales/lookup?code={id}")).await;
        assert_eq!(status, 200, "{found}");
        assert_eq!((found["elsewhere"].as_bool(), found["returnable"].clone()), (Some(true), json!([3])), "{found}");
        let back = json!({ "code": id.to_string(), "lines": [{ "line": 0, "quantity": 2 }], "idempotency_key": key });
        let (status, ret) = api2.post("/api/returns", back).await;
        assert_eq!(status, 200, "{ret}");
        assert_eq!(ret["return"]["refunds"], json!([{ "kind": "card", "amount_kopecks": 2 * price }]), "{ret}");
    }
    let (_, shop_sale) = api2.get(&format!("/api/sales/lookup?code={}", ids[0])).await;
    assert_eq!(shop_sale["sale"]["id"], json!({ "store": 0, "seq": ids[0] }), "the shop's sale: {shop_sale}");
    // One of each is left: two more are refused, at store 1 too (HQ's figures).
    for (api, key) in [(&api2, "r-3"), (&api1, "r-4")] {
        let back =
            json!({ "code": ids[0].to_string(), "lines": [{ "line": 0, "quantity": 2 }], "idempotency_key": key });
        let (status, over) = api.post("/api/returns", back).await;
        assert_eq!((status, over["error"].as_str()), (422, Some("over_return")), "{over}");
    }
    eventually(WAIT, "HQ to hold the prepaid order's return", || async {
        match hq.shared.db.sale_for_return(&SaleRef::Order(OrderId(ids[0]))).unwrap() {
            SaleAnswer::Found { returned, .. } => (returned[0].0 == 2).then_some(()),
            SaleAnswer::NotFound => None,
        }
    })
    .await;
    assert!(hq.shared.db.over_returns().unwrap().is_empty(), "online, never more than sold");
    // The shop sees what came back of each order at the stores, and what they refunded.
    for id in &ids {
        let order = eventually(WAIT, &format!("HQ to show order {id}'s return"), || async {
            let (_, o) = shop.get(&format!("/api/orders/{id}")).await;
            (o["returned"]["lines"][0]["returned"] == 2).then_some(o)
        })
        .await;
        assert_eq!(order["returned"]["refunded_kopecks"], 2 * price, "{order}");
        assert_eq!(order["returned"]["lines"][0]["taken"], 3, "{order}");
    }
    cancel.cancel();
}

/// This file's tests again with HQ on PostgreSQL (issue #17: the same behaviour on both
/// backends); under `CI=true` a missing PostgreSQL fails it.
#[test]
fn the_same_with_hq_on_postgres() {
    kassa_tests::pg::rerun_on_postgres("the_same_with_hq_on_postgres");
}
