//! A store and HQ wired back to back through the in-memory connection of
//! [`super::harness`]. Within a connection the
//! stream is reliable and ordered (QUIC's promise), but messages take a random number
//! of steps to arrive and a connection may drop at any step, losing whatever was in
//! flight; the next connection resends. The outbox and HQ's tables are collections.

use std::collections::BTreeMap;

use super::*;
use crate::basket::BasketLine;
use crate::catalog::VatRate;
use crate::money::Kopecks;
use crate::sale::Sale;
use crate::Sku;

use super::harness::{through_hq_codec, through_store_codec, Pair, Wire};
use crate::seeded::SeededRng as Rng;
use crate::testing;

const STORE: StoreId = StoreId(1);
const ACTOR: ActorId = ActorId { store: STORE, epoch: 1 };

fn entry(seq: u64) -> OutboxEntry {
    let line = BasketLine { name: "Молоко".into(), vat: VatRate::Vat10, ..testing::line("100001", Kopecks(100)) };
    let sale = Sale { cashier: "cashier".into(), ..testing::sale(STORE, seq, vec![line]) };
    let counters = vec![CounterEntry { location: STORE, sku: Sku("100001".into()), actor: ACTOR, p: 0, n: seq as i64 }];
    OutboxEntry { seq, change: Change::Sale { sale, counters } }
}

/// HQ's durable state: the sales it holds and the store's acknowledged progress.
#[derive(Default)]
struct HqDb {
    sales: BTreeMap<u64, usize>,
    progress: u64,
}

/// Runs one connection after another (each "reconnect" loses all in-flight messages)
/// until HQ holds every sale; returns HQ's state. Each connection speaks a protocol
/// version of its own (a store upgraded, or rolled back, between two connections), and
/// every message goes through that version's codec.
fn run(seed: u64, sales: u64) -> HqDb {
    let mut rng = Rng::new(seed);
    let mut db = HqDb::default();
    let mut store_acked = 0;
    let start = Instant::now();
    let mut now = start;
    for _connection in 0..200 {
        let version = crate::wire::SUPPORTED_VERSIONS[rng.below(2) as usize];
        let mut store = StoreSync::speaking(version, "0.2.0", ACTOR, 0, sales);
        let mut hq = HqSync::speaking(STORE, version, "0.2.1");
        let mut wire = Wire::new(version);
        for _step in 0..200 {
            now += Duration::from_millis(500);
            store.handle_timeout(now);
            while let Some(ev) = store.poll_event() {
                match ev {
                    StoreEvent::ReadOutbox { after, max } => {
                        let entries = (after + 1..=sales).take(max).map(entry).collect();
                        store.handle_outbox(now, entries);
                    }
                    StoreEvent::Acked { upto } | StoreEvent::Connected { acked_seq: upto } => {
                        assert!(upto <= db.progress, "store told of an ack HQ never made durable");
                        store_acked = upto;
                    }
                    _ => {}
                }
            }
            wire.send_from_store(&mut store);
            let deliver = (rng.next_u64() % (wire.to_hq.len() as u64 + 1)) as usize;
            for m in wire.to_hq.drain(..deliver) {
                hq.handle_message(m).expect("the store speaks correctly");
                while let Some(ev) = hq.poll_event() {
                    match ev {
                        HqEvent::Hello { software_version, .. } => {
                            let expected = (version >= 3).then(|| "0.2.0".to_owned());
                            assert_eq!(software_version, expected, "protocol {version}");
                            hq.accept(db.progress);
                        }
                        HqEvent::RightsRequest { .. } => unreachable!("this test asks for no rights"),
                        HqEvent::PlaceOrder { .. } | HqEvent::FindSale { .. } | HqEvent::FindHistory { .. } => {
                            unreachable!("this test places no orders and looks up no sales or histories")
                        }
                        // This test checks sales only; digests agree or are repaired in sim.rs.
                        HqEvent::CompareDigests { .. } => hq.digests_compared(false),
                        HqEvent::MergeCounters { .. } => {}
                        HqEvent::Apply { entries, upto, .. } => {
                            assert_eq!(entries.first().map(|e| e.seq), Some(db.progress + 1), "a gap was applied");
                            for e in entries {
                                *db.sales.entry(e.seq).or_default() += 1;
                            }
                            db.progress = upto;
                            hq.handle_applied(upto);
                        }
                    }
                }
            }
            wire.send_from_hq(&mut hq);
            let deliver = (rng.next_u64() % (wire.to_store.len() as u64 + 1)) as usize;
            for m in wire.to_store.drain(..deliver) {
                store.handle_message(now, m).expect("HQ speaks correctly");
            }
            if store_acked == sales {
                return db;
            }
            if rng.chance(5) {
                break; // the connection drops with whatever was in flight
            }
        }
    }
    panic!("seed {seed}: did not converge; HQ holds up to {}", db.progress);
}

#[test]
fn every_sale_reaches_hq_exactly_once_through_a_lossy_network() {
    for seed in 1..=200 {
        let db = run(seed, 300);
        assert_eq!(db.progress, 300, "seed {seed}");
        assert_eq!(db.sales.len(), 300, "seed {seed}");
        assert!(db.sales.values().all(|&n| n == 1), "seed {seed}: a sale applied twice");
    }
}

fn hello(version: u32) -> StoreMessage {
    let software_version = Some("0.2.0".into());
    StoreMessage::Hello { version, actor: ACTOR, catalog_version: 0, promotions_version: 0, head: 0, software_version }
}

fn welcome(acked_seq: u64) -> HqMessage {
    let software_version = Some("0.2.1".into());
    HqMessage::Welcome { version: PROTOCOL_VERSION, store: STORE, acked_seq, software_version }
}

#[test]
fn each_side_holds_the_peer_to_the_connections_version_and_learns_its_software() {
    // HQ on a protocol-2 connection: a Hello saying 3 is refused, one saying 2 is served
    // and its Welcome says 2.
    let mut hq = HqSync::speaking(STORE, 2, "0.2.1");
    assert_eq!(hq.handle_message(hello(3)), Err(SyncError::Version { theirs: 3, ours: 2 }));
    let mut hq = HqSync::speaking(STORE, 2, "0.2.1");
    hq.handle_message(through_store_codec(2, &hello(2))).unwrap();
    assert_eq!(
        hq.poll_event(),
        Some(HqEvent::Hello { actor: ACTOR, catalog_version: 0, head: 0, software_version: None })
    );
    hq.accept(0);
    let w = hq.poll_transmit().unwrap();
    assert!(matches!(&w, HqMessage::Welcome { version: 2, .. }), "{w:?}");
    let mut store = StoreSync::speaking(2, "0.2.0", ACTOR, 0, 0);
    store.handle_message(Instant::now(), through_hq_codec(2, &w)).unwrap();
    assert_eq!(store.hq_software_version(), None, "protocol 2 does not say");

    // Protocols 3 and 4: both say their software version.
    for version in [3, 4] {
        let mut hq = HqSync::speaking(STORE, version, env!("CARGO_PKG_VERSION"));
        hq.handle_message(through_store_codec(version, &hello(version))).unwrap();
        assert!(matches!(hq.poll_event(), Some(HqEvent::Hello { software_version: Some(v), .. }) if v == "0.2.0"));
        hq.accept(0);
        let w = hq.poll_transmit().unwrap();
        let mut store = StoreSync::speaking(version, "0.2.0", ACTOR, 0, 0);
        store.handle_message(Instant::now(), through_hq_codec(version, &w)).unwrap();
        assert_eq!(store.hq_software_version(), Some(env!("CARGO_PKG_VERSION")));
    }
    let mut store = StoreSync::new(ACTOR, 0, 0);
    let old = HqMessage::Welcome { version: 2, store: STORE, acked_seq: 0, software_version: None };
    assert_eq!(
        store.handle_message(Instant::now(), old),
        Err(SyncError::Version { theirs: 2, ours: PROTOCOL_VERSION })
    );
}

#[test]
fn hq_refuses_another_stores_actor_and_writes_nothing() {
    let mut hq = HqSync::new(STORE);
    let foreign = StoreMessage::Hello {
        version: PROTOCOL_VERSION,
        actor: ActorId { store: StoreId(2), epoch: 1 },
        catalog_version: 0,
        promotions_version: 0,
        head: 0,
        software_version: Some("0.2.0".into()),
    };
    assert!(matches!(hq.handle_message(foreign), Err(SyncError::ForeignWrite { .. })));
    assert_eq!(hq.poll_event(), None);
    assert!(matches!(hq.poll_transmit(), Some(HqMessage::Refused { .. })));

    let mut hq = HqSync::new(STORE);
    hq.handle_message(hello(PROTOCOL_VERSION)).unwrap();
    assert!(matches!(hq.poll_event(), Some(HqEvent::Hello { .. })));
    hq.accept(0);
    let mut bad = entry(1);
    let Change::Sale { counters, .. } = &mut bad.change else { unreachable!() };
    counters[0].location = StoreId(2);
    assert!(matches!(
        hq.handle_message(StoreMessage::Batch { entries: vec![bad], head: 1 }),
        Err(SyncError::ForeignWrite { .. })
    ));
    assert_eq!(hq.poll_event(), None);
}

#[test]
fn store_applies_a_paged_catalog_once_complete() {
    let mut store = StoreSync::new(ACTOR, 0, 0);
    let now = Instant::now();
    let mut hq = HqSync::new(STORE);
    hq.handle_message(hello(PROTOCOL_VERSION)).unwrap();
    hq.accept(0);
    let item = crate::catalog::parse_csv(&format!("{}\n1,,Хлеб,c,100,10,pcs,\n", crate::catalog::CSV_HEADER)).unwrap();
    let items: Vec<_> = (0..2500).map(|i| CatalogItem { sku: Sku(i.to_string()), ..item[0].clone() }).collect();
    hq.offer_catalog(3, &items);
    hq.offer_catalog(3, &items); // already offered: nothing more
    let mut pages = 0;
    while let Some(m) = hq.poll_transmit() {
        if matches!(m, HqMessage::CatalogPage { .. }) {
            pages += 1;
        }
        store.handle_message(now, m).unwrap();
    }
    assert_eq!(pages, 3);
    let events: Vec<_> = std::iter::from_fn(|| store.poll_event()).collect();
    assert!(
        matches!(&events[..], [StoreEvent::Connected { .. }, StoreEvent::Catalog { version: 3, items }] if items.len() == 2500)
    );
}

#[test]
fn a_store_behind_hq_stops_instead_of_losing_sales() {
    // The store's journal was restored from a backup: HQ has 7 of its entries, it has 3.
    let mut store = StoreSync::new(ACTOR, 0, 3);
    let welcome = welcome(7);
    assert_eq!(store.handle_message(Instant::now(), welcome), Err(SyncError::AheadOfJournal { hq: 7, journal: 3 }));
    assert!(!store.request_rights(crate::loyalty::RightsRequest {
        request_id: 1,
        customer: crate::loyalty::CustomerId::parse("000010000000001").unwrap(),
        points: 1
    }));
}

#[test]
fn a_run_of_large_entries_goes_as_several_batches_each_within_the_frame_cap() {
    let mut store = StoreSync::new(ACTOR, 0, 0);
    let now = Instant::now();
    let welcome = welcome(0);
    store.handle_message(now, welcome).unwrap();
    store.handle_committed(6);
    while store.poll_transmit().is_some() {}
    let events: Vec<_> = std::iter::from_fn(|| store.poll_event()).collect();
    assert!(events.iter().any(|e| matches!(e, StoreEvent::ReadOutbox { after: 0, .. })), "{events:?}");
    // Six sales of 500 lines with long names and marking codes: ~300 KiB each.
    let big = |seq| {
        let mut e = entry(seq);
        if let Change::Sale { sale, .. } = &mut e.change {
            let mut line = sale.lines[0].clone();
            line.name = "Ж".repeat(crate::catalog::NAME_LEN_MAX_CHARS);
            line.marking = Some("0104650001209603215abcdefghijklm\u{1d}93dGVz".repeat(3));
            sale.lines = vec![line; crate::basket::BASKET_LINES_MAX];
        }
        e
    };
    store.handle_outbox(now, (1..=6).map(big).collect());
    let batches: Vec<_> = std::iter::from_fn(|| store.poll_transmit()).collect();
    assert!(batches.len() >= 3, "{} batches", batches.len());
    let mut seqs = Vec::new();
    for b in &batches {
        let StoreMessage::Batch { entries, .. } = b else { panic!("not a batch: {b:?}") };
        seqs.extend(entries.iter().map(|e| e.seq));
        for version in crate::wire::SUPPORTED_VERSIONS {
            let frame = crate::wire::encode_store(version, b).expect("each batch fits a frame");
            assert!(frame.len() <= crate::wire::FRAME_BYTES_MAX);
        }
    }
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
}

fn definitions(n: u32, version: u64) -> Vec<crate::promotions::definition::Definition> {
    (1..=n)
        .map(|id| {
            serde_json::from_value(serde_json::json!({
                "id": id, "version": version, "name": format!("Акция {id}"),
                "kind": { "type": "percent_off", "skus": ["100001"], "percent": 5 },
                "from": "2026-01-01", "to": "2026-12-31", "stores": "all",
                "channels": ["store"], "audience": "everyone"
            }))
            .unwrap()
        })
        .collect()
}

/// A store and HQ past the handshake, in protocol `version`; the store holds promotions
/// of `held`.
fn connected(version: u32, held: u64) -> Pair {
    let store = StoreSync::speaking(version, "0.2.0", ACTOR, 0, 0).holding_promotions(held);
    Pair::connected(store, HqSync::speaking(STORE, version, "0.2.0"), version, 0)
}

#[test]
fn promotions_go_in_pages_to_a_store_that_holds_an_older_set_and_arrive_whole() {
    let mut p = connected(PROTOCOL_VERSION, 2);
    let set = definitions(1200, 3);
    assert!(!p.hq.needs_promotions(2), "the store said it holds version 2");
    p.hq.offer_promotions(2, &definitions(3, 2));
    assert!(p.hq.poll_transmit().is_none(), "nothing for a store that has it");
    assert!(p.hq.needs_promotions(3));
    p.hq.offer_promotions(3, &set);
    p.wire.send_from_hq(&mut p.hq);
    let pages: Vec<_> = p.wire.to_store.iter().cloned().collect();
    assert_eq!(pages.len(), 3, "{} pages of at most {}", pages.len(), crate::wire::PROMOTIONS_PAGE_MAX);
    p.deliver_to_store(Instant::now()).unwrap();
    let events: Vec<_> = std::iter::from_fn(|| p.store.poll_event()).collect();
    assert!(
        matches!(&events[..], [StoreEvent::Promotions { version: 3, definitions }] if *definitions == set),
        "{events:?}"
    );
    // The same pages again (resent after a digest): nothing more for the shell.
    p.wire.to_store.extend(pages);
    p.deliver_to_store(Instant::now()).unwrap();
    assert_eq!(p.store.poll_event(), None);
    p.store.handle_promotions_applied(3);
    assert!(!p.hq.needs_promotions(3));
}

#[test]
fn a_set_missing_a_page_is_dropped_and_sent_again_after_the_next_digest() {
    let mut p = connected(PROTOCOL_VERSION, 0);
    let set = definitions(1100, 1);
    p.hq.offer_promotions(1, &set);
    p.wire.send_from_hq(&mut p.hq);
    assert_eq!(p.wire.to_store.len(), 3);
    // The middle page is lost.
    p.wire.to_store.remove(1);
    p.deliver_to_store(Instant::now()).unwrap();
    assert_eq!(p.store.poll_event(), None, "never a set with a hole in it");
    assert!(!p.hq.needs_promotions(1), "HQ thinks it sent them");
    // The store's next digest says what it holds; HQ sends the set again.
    p.store.handle_digests(Vec::new());
    p.wire.send_from_store(&mut p.store);
    let digest = p.wire.to_hq.iter().find(|m| matches!(m, StoreMessage::Digest { .. })).unwrap();
    assert!(matches!(digest, StoreMessage::Digest { promotions_version: 0, .. }));
    p.wire.to_hq.retain(|m| matches!(m, StoreMessage::Digest { .. }));
    p.deliver_to_hq().unwrap();
    assert!(p.hq.needs_promotions(1));
    p.hq.offer_promotions(1, &set);
    p.wire.send_from_hq(&mut p.hq);
    p.wire.to_store.retain(|m| matches!(m, HqMessage::PromotionsPage { .. }));
    p.deliver_to_store(Instant::now()).unwrap();
    assert!(
        matches!(p.store.poll_event(), Some(StoreEvent::Promotions { version: 1, definitions }) if definitions.len() == 1100)
    );
}

#[test]
fn a_store_of_protocol_3_is_never_sent_promotions() {
    let mut p = connected(3, 0);
    assert!(!p.hq.needs_promotions(5));
    p.hq.offer_promotions(5, &definitions(2, 5));
    assert!(p.hq.poll_transmit().is_none());
}

fn order_request(request_id: u64, quantity: i64) -> crate::orders::OrderRequest {
    crate::orders::OrderRequest {
        request_id,
        store: StoreId(2),
        lines: vec![(Sku("100001".into()), quantity)],
        payment: crate::orders::Payment::AtPickup,
        customer: None,
        phone: None,
        note: String::new(),
        pickup_hours: 72,
    }
}

/// A till's order goes to HQ only on a connection that carries orders (protocol 5) and
/// once welcomed; HQ hands a valid one to its shell and answers it by request id, and a
/// malformed one ends the connection before the shell sees it.
#[test]
fn a_tills_order_goes_only_where_orders_are_spoken_and_comes_back_by_its_id() {
    let mut before = StoreSync::speaking(5, "0.2.0", ACTOR, 0, 0);
    assert!(!before.place_order(order_request(1, 2)), "not before Welcome");
    let mut old = connected(4, 0);
    assert!(!old.store.place_order(order_request(1, 2)), "protocol 4 carries no orders");

    let mut p = connected(5, 0);
    assert!(p.store.place_order(order_request(7, 2)));
    p.deliver_to_hq().unwrap();
    let Some(HqEvent::PlaceOrder { actor, request }) = p.hq.poll_event() else { panic!("no order for the shell") };
    assert_eq!((actor, request.request_id), (ACTOR, 7));
    let answer = crate::orders::OrderAnswer::Refused { code: "not_available".into(), message: "none left".into() };
    p.hq.answer_order(7, answer.clone());
    p.deliver_to_store(Instant::now()).unwrap();
    assert_eq!(p.store.poll_event(), Some(StoreEvent::OrderPlaced { request_id: 7, answer }));

    // A request HQ's own rules refuse (a zero quantity) never reaches its shell.
    let bad = StoreMessage::PlaceOrder(order_request(8, 0));
    assert!(matches!(p.hq.handle_message(bad), Err(SyncError::Malformed(_))));
    assert!(p.hq.poll_event().is_none());
}

/// A till's question for another store's sale goes to HQ only on a protocol-5
/// connection once welcomed, and comes back by its id; an answer whose sale does not
/// add up ends the connection before the till sees it.
#[test]
fn a_sale_lookup_goes_only_where_it_is_spoken_and_a_bad_answer_is_refused() {
    let lookup = |request_id| crate::returns::SaleLookup {
        request_id,
        sale: crate::returns::SaleRef::Id(crate::SaleId { store: StoreId(2), seq: 9 }),
        claim: None,
    };
    let mut old = connected(4, 0);
    assert!(!old.store.find_sale(lookup(1)), "protocol 4 carries no lookups");
    let mut p = connected(5, 0);
    assert!(p.store.find_sale(lookup(3)));
    p.deliver_to_hq().unwrap();
    let Some(HqEvent::FindSale { actor, lookup: asked }) = p.hq.poll_event() else { panic!("no lookup for the shell") };
    assert_eq!((actor, asked), (ACTOR, lookup(3)));
    let sale = match entry(9).change {
        Change::Sale { sale, .. } => sale,
        _ => unreachable!(),
    };
    let answer = crate::returns::SaleAnswer::Found {
        sale: Box::new(sale.clone()),
        returned: vec![(1, sale.total)],
        refunds: vec![],
        loyalty_owed: Kopecks::ZERO,
    };
    p.hq.answer_sale(3, answer.clone());
    p.deliver_to_store(Instant::now()).unwrap();
    assert_eq!(p.store.poll_event(), Some(StoreEvent::SaleFound { request_id: 3, answer }));
    // Returns of more lines than the sale has: refused.
    let bad = crate::returns::SaleAnswer::Found {
        sale: Box::new(sale),
        returned: vec![(0, Kopecks::ZERO); 2],
        refunds: vec![],
        loyalty_owed: Kopecks::ZERO,
    };
    p.hq.answer_sale(4, bad);
    assert!(matches!(p.deliver_to_store(Instant::now()), Err(SyncError::Malformed(_))));
    assert_eq!(p.store.poll_event(), None);
    // A claim naming a line twice, or with no key, is refused at HQ.
    for claim in [
        crate::returns::ReturnClaim { key: "k".into(), lines: vec![(0, 1), (0, 1)] },
        crate::returns::ReturnClaim { key: String::new(), lines: vec![(0, 1)] },
    ] {
        let mut p = connected(5, 0);
        assert!(p.store.find_sale(crate::returns::SaleLookup { claim: Some(claim), ..lookup(5) }));
        assert!(matches!(p.deliver_to_hq(), Err(SyncError::Malformed(_))));
    }
}

/// A till's question for a customer's history goes to HQ only on a protocol-5
/// connection, and comes back by its id; an answer beyond its bounds is refused as it
/// is read, before the till sees it.
#[test]
fn a_history_lookup_goes_only_where_it_is_spoken_and_a_bad_answer_is_refused() {
    use crate::history::{CustomerHistory, DocKind, HistoryRequest, Purchase, HISTORY_ENTRIES_MAX};
    let card = crate::loyalty::CustomerId::parse("0000100000000015").unwrap();
    let request = |request_id| HistoryRequest { request_id, customer: card.clone() };
    let mut old = connected(4, 0);
    assert!(!old.store.find_history(request(1)), "protocol 4 carries no histories");
    let mut p = connected(5, 0);
    assert!(p.store.find_history(request(3)));
    p.deliver_to_hq().unwrap();
    let Some(HqEvent::FindHistory { actor, request: asked }) = p.hq.poll_event() else {
        panic!("no lookup for the shell")
    };
    assert_eq!((actor, asked), (ACTOR, request(3)));
    let purchase = |seq| Purchase {
        doc: crate::SaleId { store: StoreId(2), seq },
        kind: DocKind::Sale,
        receipt_no: format!("0002-01-{seq:06}"),
        created_at_ms: seq as i64,
        total: Kopecks(100),
    };
    let history = CustomerHistory { purchases: vec![purchase(1)], orders: vec![] };
    p.hq.answer_history(3, Some(history.clone()));
    p.deliver_to_store(Instant::now()).unwrap();
    assert_eq!(p.store.poll_event(), Some(StoreEvent::History { request_id: 3, history: Some(history) }));
    let too_long =
        CustomerHistory { purchases: (0..=HISTORY_ENTRIES_MAX as u64).map(purchase).collect(), orders: vec![] };
    let mut d = crate::wire::FrameDecoder::default();
    let frame = crate::wire::encode_hq(5, &HqMessage::History { request_id: 4, history: Some(too_long) }).unwrap();
    d.push(&frame);
    assert!(d.next_hq(5).is_err(), "a history beyond its bounds is refused as it is read");
    assert_eq!(p.store.poll_event(), None);
}

/// Stores that connected together do not compare digests in step: each wait is the
/// interval ± a quarter, different from store to store and from round to round, and
/// they average out to the interval.
#[test]
fn digest_waits_are_spread_by_store_and_round() {
    let (low, high) = (DIGEST_INTERVAL * 3 / 4, DIGEST_INTERVAL * 5 / 4);
    let mut first_waits = std::collections::BTreeSet::new();
    let mut total = Duration::ZERO;
    let rounds = 20u32;
    for store in 1..=1_000 {
        let mut sync = StoreSync::new(ActorId { store: StoreId(store), epoch: 1 }, 0, 0);
        for round in 0..rounds {
            let wait = sync.digest_wait();
            assert!((low..=high).contains(&wait), "store {store}: {wait:?}");
            if round == 0 {
                first_waits.insert(wait.as_millis());
            }
            total += wait;
        }
    }
    assert!(first_waits.len() > 400, "1,000 stores' first waits take {} values", first_waits.len());
    let mean = total / (1_000 * rounds);
    let off = mean.abs_diff(DIGEST_INTERVAL);
    assert!(off < DIGEST_INTERVAL / 50, "mean wait {mean:?}");
}
