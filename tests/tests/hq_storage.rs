//! HQ's storage on both backends (issue #17): every case runs on a SQLite file and on
//! PostgreSQL (a throwaway cluster, `kassa_tests::pg`; under `CI=true` a missing
//! PostgreSQL fails the test). Each case gets fresh databases from `open`.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use kassa_hq::db::{Applied, Batch, Db, NewAudit, PoolLimits};
use kassa_protocol::basket::BasketLine;
use kassa_protocol::catalog::VatRate;
use kassa_protocol::orders::{OrderPayment, TillPayment};
use kassa_protocol::sale::Sale;
use kassa_protocol::stock::CounterEntry;
use kassa_protocol::testing;
use kassa_protocol::wire::{Change, OutboxEntry};
use kassa_protocol::{ActorId, Kopecks, Sku, StoreId};

/// Opens a fresh, empty HQ database on the backend under test.
type Open<'a> = &'a dyn Fn() -> Db;

const STORE: StoreId = StoreId(1);
const ACTOR: ActorId = ActorId { store: STORE, epoch: 1 };

/// Every case, by name.
/// A case: what it is called, and the test.
type Case = (&'static str, fn(Open<'_>));

const CASES: &[Case] = &[
    (
        "batches_of_several_stores_in_one_transaction_equal_each_alone",
        batches_of_several_stores_in_one_transaction_equal_each_alone,
    ),
    (
        "a_batch_merges_each_counter_once_to_what_entry_by_entry_merging_gives",
        a_batch_merges_each_counter_once_to_what_entry_by_entry_merging_gives,
    ),
    (
        "a_till_order_waits_for_its_payment_before_it_goes_to_its_store",
        a_till_order_waits_for_its_payment_before_it_goes_to_its_store,
    ),
    (
        "every_stores_returns_of_a_sale_are_known_and_an_over_return_is_listed",
        every_stores_returns_of_a_sale_are_known_and_an_over_return_is_listed,
    ),
    (
        "return_claims_hold_lines_for_one_store_until_its_return_arrives",
        return_claims_hold_lines_for_one_store_until_its_return_arrives,
    ),
    (
        "a_neighbours_stock_is_reused_for_its_max_age_and_says_how_old_it_is",
        a_neighbours_stock_is_reused_for_its_max_age_and_says_how_old_it_is,
    ),
    (
        "neighbours_are_the_stores_listed_else_the_closest_numbers",
        neighbours_are_the_stores_listed_else_the_closest_numbers,
    ),
    (
        "store_keys_are_paged_in_number_order_and_new_ones_follow",
        store_keys_are_paged_in_number_order_and_new_ones_follow,
    ),
    (
        "operators_sessions_and_tokens_are_kept_and_refused_alike",
        operators_sessions_and_tokens_are_kept_and_refused_alike,
    ),
    ("publications_are_versioned_and_read_back_as_published", publications_are_versioned_and_read_back_as_published),
    ("deliveries_are_numbered_and_wait_for_their_store", deliveries_are_numbered_and_wait_for_their_store),
];

/// Runs every case (each caught, so one failure does not hide the others) and fails
/// naming those that failed.
fn run_all(backend: &str, open: Open<'_>) {
    let failed: Vec<&str> = CASES
        .iter()
        .filter(|(name, case)| {
            eprintln!("{backend}: {name}");
            std::panic::catch_unwind(AssertUnwindSafe(|| case(open))).is_err()
        })
        .map(|(name, _)| *name)
        .collect();
    assert!(failed.is_empty(), "on {backend}, failed: {failed:?}");
}

#[test]
fn hq_storage_on_sqlite() {
    let dirs = std::cell::RefCell::new(Vec::new());
    run_all("SQLite", &|| {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("hq.sqlite")).unwrap();
        dirs.borrow_mut().push(dir);
        db
    });
}

/// A PostgreSQL database a newer HQ left is refused, and left as it was; one of this
/// version is opened again without migrating (as a second node does).
#[test]
fn a_postgres_database_newer_than_the_binary_is_refused_untouched() {
    let Some(pg) = kassa_tests::pg::PgCluster::start("a_postgres_database_newer_than_the_binary_is_refused") else {
        return;
    };
    let url = pg.database("newer");
    drop(Db::open_postgres(&url, PoolLimits::default()).unwrap());
    let current = kassa_hq::db::SCHEMA_VERSION;
    assert_eq!(pg.psql_on("newer", "SELECT version FROM schema_version"), current.to_string());
    drop(Db::open_postgres(&url, PoolLimits::default()).expect("opened again, nothing to migrate"));
    pg.psql_on("newer", &format!("UPDATE schema_version SET version = {}", current + 1));
    let tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'";
    let before = pg.psql_on("newer", tables);
    match Db::open_postgres(&url, PoolLimits::default()) {
        Err(kassa_hq::db::DbError::TooNew { found, known }) => assert_eq!((found, known), (current + 1, current)),
        other => panic!("{other:?}"),
    }
    assert_eq!(pg.psql_on("newer", "SELECT version FROM schema_version"), (current + 1).to_string());
    assert_eq!(pg.psql_on("newer", tables), before);
}

#[test]
fn hq_storage_on_postgres() {
    let Some(pg) = kassa_tests::pg::PgCluster::start("hq_storage_on_postgres") else { return };
    let made = std::cell::Cell::new(0);
    run_all("PostgreSQL", &|| {
        made.set(made.get() + 1);
        let url = pg.database(&format!("hq_{}", made.get()));
        Db::open_postgres(&url, PoolLimits::default()).unwrap()
    });
}

/// A sale of one piece of each SKU, with the store's running totals after it.
fn sale(seq: u64, skus: &[&str], sold: &mut HashMap<String, i64>) -> OutboxEntry {
    sale_of(ACTOR, seq, skus, sold)
}

/// [`sale`] at the store of `actor`.
fn sale_of(actor: ActorId, seq: u64, skus: &[&str], sold: &mut HashMap<String, i64>) -> OutboxEntry {
    let lines: Vec<BasketLine> = skus
        .iter()
        .map(|sku| BasketLine { name: "Хлеб".into(), vat: VatRate::Vat10, ..testing::line(sku, Kopecks(5_000)) })
        .collect();
    let counters = skus
        .iter()
        .map(|sku| {
            let n = sold.entry((*sku).into()).or_default();
            *n += 1;
            CounterEntry { location: actor.store, sku: Sku((*sku).into()), actor, p: 0, n: *n }
        })
        .collect();
    let sale = Sale { cashier: "k".into(), ..testing::sale(actor.store, seq, lines) };
    OutboxEntry { seq, change: Change::Sale { sale, counters } }
}

/// A node puts the batches of several stores that arrive together in one transaction
/// (`Db::apply_many`): the same rows as each applied alone, each store's progress, a
/// store's refused sale parked under that store; the same batches again change nothing.
fn batches_of_several_stores_in_one_transaction_equal_each_alone(open: Open<'_>) {
    let stores: Vec<ActorId> = (1..=3).map(|s| ActorId { store: StoreId(s), epoch: 1 }).collect();
    let mut entries: Vec<Vec<OutboxEntry>> = stores
        .iter()
        .map(|a| {
            let mut sold = HashMap::new();
            (1..=10).map(|seq| sale_of(*a, seq, &[["1", "2"][seq as usize % 2], "3"], &mut sold)).collect()
        })
        .collect();
    // Store 2's fifth sale says a total its lines do not make: refused.
    if let Change::Sale { sale, .. } = &mut entries[1][4].change {
        sale.total = Kopecks(sale.total.0 + 1);
    }
    let (together, alone) = (open(), open());
    for db in [&together, &alone] {
        for a in &stores {
            db.hello(*a, 10, 1, 0).unwrap();
        }
    }
    let batches: Vec<Batch<'_>> =
        stores.iter().zip(&entries).map(|(a, e)| Batch { actor: *a, entries: e, upto: 10, head: 10 }).collect();
    let applied = together.apply_many(&batches, 5).unwrap();
    assert_eq!(applied.iter().map(|a| (a.parked, a.deltas)).collect::<Vec<_>>(), vec![(0, 20), (1, 18), (0, 20)]);
    for (a, e) in stores.iter().zip(&entries) {
        alone.apply(*a, e, 10, 10, 5).unwrap();
    }
    let parked: Vec<(u32, u64)> = together.parked().unwrap().iter().map(|p| (p.store, p.seq)).collect();
    assert_eq!(parked, vec![(2, 5)]);
    assert_eq!(parked.len(), alone.parked().unwrap().len());
    let state = |db: &Db| {
        let per_store: Vec<_> = stores
            .iter()
            .map(|a| (db.counters_at(a.store).unwrap(), db.sales(a.store, 0, 100).unwrap().len()))
            .collect();
        let progress: Vec<_> = db.stores().unwrap().iter().map(|s| (s.store, s.acked_seq, s.sales)).collect();
        (per_store, progress)
    };
    assert_eq!(state(&together), state(&alone));
    assert_eq!(state(&together).1, vec![(1, 10, 10), (2, 10, 9), (3, 10, 10)]);
    let before = state(&together);
    together.apply_many(&batches, 6).unwrap();
    assert_eq!(state(&together), before, "the same batches again change nothing");
}

fn a_batch_merges_each_counter_once_to_what_entry_by_entry_merging_gives(open: Open<'_>) {
    let mut sold = HashMap::new();
    let entries: Vec<_> = (1..=40)
        .map(|seq| sale(seq, &[["1", "2", "3"][seq as usize % 3], ["4", "5"][seq as usize % 2]], &mut sold))
        .collect();
    let batched = open();
    batched.hello(ACTOR, 40, 1, 0).unwrap();
    let applied = batched.apply(ACTOR, &entries, 40, 40, 0).unwrap();
    assert_eq!(applied, Applied { parked: 0, deltas: 80, inbound_for: Vec::new(), orders_paid: Vec::new() });
    let one_by_one = open();
    one_by_one.hello(ACTOR, 40, 1, 0).unwrap();
    for e in &entries {
        one_by_one.apply(ACTOR, std::slice::from_ref(e), e.seq, 40, 0).unwrap();
    }
    assert_eq!(batched.counters_at(STORE).unwrap(), one_by_one.counters_at(STORE).unwrap());
    let sold_1 = batched.counters_at(STORE).unwrap().into_iter().find(|c| c.sku.as_str() == "1").unwrap();
    assert_eq!(sold_1.n, sold["1"]);
    // Applying the batch again changes nothing.
    batched.apply(ACTOR, &entries, 40, 40, 0).unwrap();
    assert_eq!(batched.counters_at(STORE).unwrap(), one_by_one.counters_at(STORE).unwrap());
    assert_eq!(batched.stores().unwrap()[0].sales, 40);
}

/// An order store 1's till placed for pickup at store 2, to be paid at the till.
fn till_order(total: i64, at_ms: i64) -> kassa_protocol::orders::Order {
    use kassa_protocol::orders::{Order, OrderChannel, OrderId, Payment};
    Order {
        id: OrderId(0),
        store: StoreId(2),
        channel: OrderChannel::Store(STORE),
        customer: None,
        phone: None,
        note: String::new(),
        lines: vec![BasketLine { name: "Хлеб".into(), ..testing::line("7", Kopecks(total)) }],
        payment: Payment::Prepaid,
        created_at_ms: at_ms,
        expires_at_ms: at_ms + 86_400_000,
    }
}

fn word(seq: u64, order: kassa_protocol::orders::OrderId, outcome: TillPayment) -> OutboxEntry {
    let payment = OrderPayment { order, store: STORE, outcome, at_ms: 0 };
    OutboxEntry { seq, change: Change::OrderPayment { payment } }
}

/// An order a till placed to be paid there reaches its pickup store only once paid;
/// one never paid is cancelled after HQ's wait, and a payment after that is kept as
/// money owed back; an abandoned one is cancelled; a wrong word is parked.
fn a_till_order_waits_for_its_payment_before_it_goes_to_its_store(open: Open<'_>) {
    use kassa_protocol::orders::{OrderState, TILL_PAYMENT_WAIT_MS};
    let db = open();
    db.deliver(StoreId(2), &[(Sku("7".into()), 10)]).unwrap();
    db.hello(ACTOR, 5, 1, 0).unwrap();
    let audit = NewAudit {
        at_ms: 0,
        actor_kind: "store",
        actor: "1".into(),
        action: "order.place",
        summary: serde_json::Value::Null,
    };
    let place = |total, at| db.place_order(till_order(total, at), None, &audit, at).unwrap().unwrap().0;
    let (paid, late, abandoned) = (place(50_000, 1_000), place(30_000, 2_000), place(10_000, 3_000));
    assert_eq!(db.available(StoreId(2), &Sku("7".into())).unwrap(), (10, 3), "reserved while awaiting");
    assert!(db.orders_to_offer(StoreId(2)).unwrap().0.is_empty(), "nothing goes to store 2 unpaid");
    let applied =
        db.apply(ACTOR, &[word(1, paid.id, TillPayment::Paid { amount: Kopecks(50_000) })], 1, 5, 4_000).unwrap();
    assert_eq!(applied.orders_paid, vec![(StoreId(2), paid.id)]);
    let offered: Vec<_> = db.orders_to_offer(StoreId(2)).unwrap().0.into_iter().map(|o| o.id).collect();
    assert_eq!(offered, vec![paid.id]);
    // HQ's wait: not a millisecond early.
    assert!(db.cancel_unpaid_orders(2_000 + TILL_PAYMENT_WAIT_MS - 1).unwrap().is_empty());
    assert_eq!(db.cancel_unpaid_orders(2_000 + TILL_PAYMENT_WAIT_MS).unwrap(), vec![late.id]);
    let applied =
        db.apply(ACTOR, &[word(2, late.id, TillPayment::Paid { amount: Kopecks(30_000) })], 2, 5, 9_000_000).unwrap();
    assert!(applied.orders_paid.is_empty(), "a cancelled order is not revived");
    let row = db.order(late.id).unwrap().unwrap();
    assert_eq!(
        (row.state, row.till_payment.unwrap().paid.map(|p| p.0)),
        (OrderState::Cancelled, Some(Kopecks(30_000)))
    );
    // Abandoned: cancelled; a wrong amount, a second word: parked, nothing changed.
    let entries = [
        word(3, abandoned.id, TillPayment::Paid { amount: Kopecks(1) }),
        word(4, abandoned.id, TillPayment::Abandoned),
        word(5, abandoned.id, TillPayment::Paid { amount: Kopecks(10_000) }),
    ];
    let applied = db.apply(ACTOR, &entries, 5, 5, 9_000_001).unwrap();
    assert_eq!((applied.parked, applied.orders_paid.len()), (2, 0));
    let row = db.order(abandoned.id).unwrap().unwrap();
    assert_eq!((row.state, row.till_payment.unwrap().code()), (OrderState::Cancelled, "abandoned"));
    assert_eq!(db.available(StoreId(2), &Sku("7".into())).unwrap(), (10, 1), "only the paid order holds stock");
}

/// A return at `store` of `quantity` of line 0 of sale `sale` (1 ₽ each).
/// Store `store`'s return `seq` of `quantity` of `sale`'s bread, at time `seq`.
fn ret(store: u32, seq: u64, sale: &Sale, quantity: i64) -> OutboxEntry {
    let id = kassa_protocol::SaleId { store: StoreId(store), seq };
    let ret = kassa_protocol::returns::Return { created_at_ms: seq as i64, ..testing::cash_return(sale, id, quantity) };
    OutboxEntry { seq, change: Change::Return { ret, counters: Vec::new() } }
}

/// Returns anywhere at HQ: a till of any store is told what every store already took
/// back of a sale; two stores that took back the same goods (offline) are listed.
fn every_stores_returns_of_a_sale_are_known_and_an_over_return_is_listed(open: Open<'_>) {
    use kassa_protocol::returns::SaleAnswer;
    let db = open();
    let two = ActorId { store: StoreId(2), epoch: 1 };
    db.hello(ACTOR, 1, 1, 0).unwrap();
    db.hello(two, 2, 1, 0).unwrap();
    let bread = BasketLine { name: "Хлеб".into(), ..testing::pieces("1", Kopecks(100), 3) };
    let sale = Sale { cashier: "k".into(), ..testing::sale(STORE, 1, vec![bread]) };
    db.apply(ACTOR, &[OutboxEntry { seq: 1, change: Change::Sale { sale: sale.clone(), counters: vec![] } }], 1, 1, 0)
        .unwrap();
    let by_id = kassa_protocol::returns::SaleRef::Id;
    let elsewhere = by_id(kassa_protocol::SaleId { store: StoreId(9), seq: 1 });
    assert_eq!(db.sale_for_return(&elsewhere).unwrap(), SaleAnswer::NotFound);
    db.apply(two, &[ret(2, 1, &sale, 2)], 1, 2, 10).unwrap();
    let by_no = kassa_protocol::returns::SaleRef::ReceiptNo(sale.receipt_no.clone());
    assert_eq!(db.sale_for_return(&by_no).unwrap(), db.sale_for_return(&by_id(sale.id)).unwrap());
    let SaleAnswer::Found { sale: found, returned, refunds, loyalty_owed } =
        db.sale_for_return(&by_id(sale.id)).unwrap()
    else {
        panic!("the sale")
    };
    assert_eq!((*found, returned, refunds.len()), (sale.clone(), vec![(2, Kopecks(200))], 1));
    assert_eq!(loyalty_owed, Kopecks::ZERO, "a sale without a card owes no points");
    assert!(db.over_returns().unwrap().is_empty());
    // Store 1, which could not see store 2's return, takes back two more: 4 of 3.
    db.apply(ACTOR, &[ret(1, 2, &sale, 2)], 2, 2, 20).unwrap();
    let over = db.over_returns().unwrap();
    assert_eq!(over.len(), 1, "{over:?}");
    assert_eq!((over[0].sold, over[0].returned, over[0].sku.as_str()), (3, 4, "1"));
    assert_eq!(over[0].returns.iter().map(|r| r.0).collect::<Vec<_>>(), vec![2, 1]);
    // The same batch again changes nothing.
    db.apply(two, &[ret(2, 1, &sale, 2)], 1, 2, 30).unwrap();
    assert_eq!(db.over_returns().unwrap()[0].returned, 4);
}

/// Return rights: a claim that fits is held for its store and counted as returned
/// for the others; one that does not is refused; a retry replaces its claim; the
/// store's return releases it; an old claim lapses.
fn return_claims_hold_lines_for_one_store_until_its_return_arrives(open: Open<'_>) {
    use kassa_protocol::returns::{ReturnClaim, SaleAnswer, SaleLookup, SaleRef, RETURN_CLAIM_TTL_MS};
    let db = open();
    let two = ActorId { store: StoreId(2), epoch: 1 };
    db.hello(ACTOR, 1, 1, 0).unwrap();
    db.hello(two, 2, 1, 0).unwrap();
    let sale = Sale { cashier: "k".into(), ..testing::sale(STORE, 1, vec![testing::pieces("1", Kopecks(100), 3)]) };
    let entry = OutboxEntry { seq: 1, change: Change::Sale { sale: sale.clone(), counters: vec![] } };
    db.apply(ACTOR, &[entry], 1, 1, 0).unwrap();
    let ask = |store: u32, key: &str, n: i64, now: i64| {
        let claim = (n > 0).then(|| ReturnClaim { key: key.into(), lines: vec![(0, n)] });
        let lookup = SaleLookup { request_id: 1, sale: SaleRef::Id(sale.id), claim };
        match db.sale_for_return_by(&lookup, StoreId(store), now).unwrap() {
            SaleAnswer::Found { returned, .. } => returned[0].0,
            SaleAnswer::NotFound => panic!("the sale"),
        }
    };
    assert_eq!(ask(2, "a", 2, 10), 0, "store 2 holds two; its own claim is not counted for it");
    assert_eq!(ask(1, "", 0, 11), 2, "store 1 sees them as returned");
    assert_eq!(ask(1, "b", 2, 12), 2, "two more do not fit: refused");
    assert_eq!(ask(2, "a", 2, 13), 0, "a retry replaces its claim, not adds to it");
    assert_eq!(ask(2, "c", 2, 14), 2, "a second claim of two does not fit: its own are counted");
    // Store 2's return arrives: the claim is released, the return counts.
    db.apply(two, &[ret(2, 1, &sale, 2)], 1, 2, 20).unwrap();
    assert_eq!(ask(1, "", 0, 21), 2);
    assert_eq!(ask(1, "d", 1, 22), 2, "the last one fits");
    // Store 1 never refunds it: after the claim's time it lapses.
    assert_eq!(ask(2, "", 0, 23), 3);
    assert_eq!(ask(2, "", 0, 22 + RETURN_CLAIM_TTL_MS + 1), 2);
    assert!(db.over_returns().unwrap().is_empty());
}

fn a_neighbours_stock_is_reused_for_its_max_age_and_says_how_old_it_is(open: Open<'_>) {
    let db = open();
    db.set_neighbours(STORE, &[StoreId(2)]).unwrap();
    let delivery = |n| CounterEntry { location: StoreId(2), sku: Sku("7".into()), actor: ActorId::HQ, p: n, n: 0 };
    db.merge_counters(&[delivery(5)]).unwrap();
    let (as_of, view) = db.nearby_stock(STORE, 1_000, 500).unwrap();
    assert_eq!((as_of, view[0].quantity), (1_000, 5));
    db.merge_counters(&[delivery(9)]).unwrap();
    // Within the max age: the figures read at 1,000, and said to be from then.
    let (as_of, view) = db.nearby_stock(STORE, 1_400, 500).unwrap();
    assert_eq!((as_of, view[0].quantity), (1_000, 5));
    // Past it: read again.
    let (as_of, view) = db.nearby_stock(STORE, 1_600, 500).unwrap();
    assert_eq!((as_of, view[0].quantity), (1_600, 9));
}

fn neighbours_are_the_stores_listed_else_the_closest_numbers(open: Open<'_>) {
    let db = open();
    for store in [1, 2, 3, 5, 8, 9, 10, 11, 12, 13, 14, 20, 30] {
        db.hello(ActorId { store: StoreId(store), epoch: 1 }, 0, 0, 0).unwrap();
    }
    let numbers = |store| db.neighbours(StoreId(store)).unwrap().iter().map(|s| s.0).collect::<Vec<_>>();
    // By distance, the lower number first on a tie; never the store itself; at most eight.
    assert_eq!(numbers(9), [8, 10, 11, 12, 5, 13, 14, 3]);
    assert_eq!(numbers(1), [2, 3, 5, 8, 9, 10, 11, 12]);
    assert_eq!(numbers(30), [20, 14, 13, 12, 11, 10, 9, 8]);
    // A store HQ does not know yet (its first hello still to come) has neighbours too.
    assert_eq!(numbers(4), [3, 5, 2, 1, 8, 9, 10, 11]);
    db.set_neighbours(StoreId(9), &[StoreId(30), StoreId(1)]).unwrap();
    assert_eq!(numbers(9), [1, 30], "the stores listed, and only those");
    assert_eq!(numbers(8), [9, 10, 5, 11, 12, 3, 13, 2], "others keep their default");
}

fn store_keys_are_paged_in_number_order_and_new_ones_follow(open: Open<'_>) {
    use kassa_protocol::returns::STORE_KEYS_PER_MESSAGE_MAX as PAGE;
    let db = open();
    let key = |store: u32| {
        let mut k = vec![4u8; 65];
        k[1..5].copy_from_slice(&store.to_be_bytes());
        k
    };
    let total = PAGE as u32 * 2 + 17;
    let mut numbers = Vec::new();
    for store in 1..=total {
        numbers.push(db.record_store_key(StoreId(store), &key(store), 0).unwrap().expect("a new key"));
    }
    assert_eq!(db.record_store_key(StoreId(7), &key(7), 1).unwrap(), None, "a key HQ has is not new");
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "numbered in the order recorded");
    let head = db.store_keys_head().unwrap();
    assert_eq!(head, *numbers.last().unwrap());
    // A store pages through every key, each once, in number order.
    let (mut after, mut seen) = (0, Vec::new());
    loop {
        let terms = db.return_terms_as_of(after, 1, head).unwrap();
        assert!(terms.keys.len() <= PAGE);
        assert_eq!(terms.keys_after, after);
        if terms.keys.is_empty() {
            assert_eq!(terms.keys_upto, after);
            break;
        }
        seen.extend(terms.keys.iter().map(|k| (k.seq, k.store.0)));
        after = terms.keys_upto;
    }
    assert_eq!(seen, numbers.iter().zip(1..=total).map(|(n, s)| (*n, s)).collect::<Vec<_>>());
    // A key recorded later (as through another node) is read once the head says so.
    let newer = db.record_store_key(StoreId(total + 1), &key(total + 1), 2).unwrap().expect("new");
    assert!(db.return_terms_as_of(after, 1, head).unwrap().keys.is_empty(), "as of the old head: nothing newer");
    let terms = db.return_terms_as_of(after, 1, newer).unwrap();
    assert_eq!(terms.keys.iter().map(|k| (k.seq, k.store.0)).collect::<Vec<_>>(), [(newer, total + 1)]);
    assert_eq!(db.return_terms(after).unwrap().keys.len(), 1, "the uncached way agrees");
    // New limits are read once their version is asked for.
    let limits = kassa_protocol::returns::ReturnLimits { per_receipt: Kopecks(100), per_shift: Kopecks(900) };
    let version = db.set_return_limits(limits, None).unwrap();
    assert_eq!(db.return_terms_as_of(after, version, newer).unwrap().limits, limits);
    assert_eq!(db.return_terms_as_of(after, version, newer).unwrap().limits_version, version);
}

/// The console's access control on both backends: an operator added once, a wrong
/// password counted, a session live until it ends or expires, a token refused once
/// revoked or expired, each step audited.
fn operators_sessions_and_tokens_are_kept_and_refused_alike(open: Open<'_>) {
    use kassa_hq::auth::{self, Actor, LoginError, ManageError, Permission, Permissions, Role, TokenRefused};
    let db = open();
    let by = Actor::system("hq_storage");
    let password = "correct horse battery staple";
    auth::add_operator(&db, "anna", "Анна", Role::Merchandiser, password, &by, 1_000).unwrap();
    let again = auth::add_operator(&db, "anna", "Анна", Role::Support, password, &by, 1_001);
    assert!(matches!(again, Err(ManageError::Exists(_))), "{again:?}");
    let wrong = auth::login(&db, "anna", "not the password at all", "10.0.0.1", 2_000).unwrap();
    assert!(matches!(wrong, Err(LoginError::BadCredentials { .. })), "{wrong:?}");
    let session = auth::login(&db, "anna", password, "10.0.0.1", 3_000).unwrap().expect("logged in");
    let caller = auth::session_caller(&db, &session.id, 4_000).unwrap().expect("a live session");
    assert!(caller.permissions.contains(Permission::CatalogWrite));
    assert!(auth::session_caller(&db, &session.id, session.expires_at_ms).unwrap().is_none(), "expired");
    db.end_session(&auth::sha256_hex(&session.id)).unwrap();
    assert!(auth::session_caller(&db, &session.id, 4_001).unwrap().is_none(), "ended");

    let scopes = Permissions::of(&[Permission::StoresRead]);
    let issued = auth::issue_token(&db, "shop", scopes, Some(1), &by, 5_000).unwrap();
    let caller = auth::token_caller(&db, &issued.token, 6_000).unwrap().expect("a live token");
    assert!(
        caller.permissions.contains(Permission::StoresRead) && !caller.permissions.contains(Permission::CatalogWrite)
    );
    let day_later = 5_000 + 24 * 60 * 60 * 1000;
    assert_eq!(auth::token_caller(&db, &issued.token, day_later).unwrap().err(), Some(TokenRefused::Expired));
    auth::revoke_token(&db, issued.info.id, &by, 7_000).unwrap();
    assert_eq!(auth::token_caller(&db, &issued.token, 7_001).unwrap().err(), Some(TokenRefused::Revoked));
    let actions: Vec<String> = db.audit(None, 50).unwrap().into_iter().map(|a| a.action).collect();
    assert_eq!(actions, ["token.revoke", "token.issue", "operator.add"], "newest first");
}

/// What HQ publishes to every store, on both backends: the catalog (an import that
/// removes items waits for confirmation; one that changes nothing publishes nothing),
/// the price schedule and loyalty rules, each under its own growing version.
fn publications_are_versioned_and_read_back_as_published(open: Open<'_>) {
    use kassa_hq::db::CatalogImport;
    use kassa_protocol::price_schedule::ScheduledPrice;
    let db = open();
    let audit = kassa_tests::fixture_audit(0, "catalog.import");
    let items = kassa_protocol::catalog::parse_csv(kassa_sim::stack::DEMO_CATALOG_CSV).unwrap();
    let first = match db.import_catalog(&items, false, false, &audit).unwrap() {
        CatalogImport::Published { version, .. } => version,
        other => panic!("{other:?}"),
    };
    assert!(matches!(db.import_catalog(&items, false, false, &audit).unwrap(), CatalogImport::Unchanged { .. }));
    let fewer = &items[1..];
    match db.import_catalog(fewer, false, false, &audit).unwrap() {
        CatalogImport::RemovalsUnconfirmed { version, diff } => {
            assert_eq!((version, diff.removed.len()), (first, 1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(db.catalog().unwrap().len(), items.len(), "nothing published unconfirmed");
    let second = match db.import_catalog(fewer, true, false, &audit).unwrap() {
        CatalogImport::Published { version, .. } => version,
        other => panic!("{other:?}"),
    };
    assert_eq!((second, db.catalog_version().unwrap()), (first + 1, first + 1));
    assert_eq!(db.catalog().unwrap(), fewer);
    assert_eq!(db.catalog_newer_than(first).unwrap().map(|(v, i)| (v, i.len())), Some((second, fewer.len())));
    assert!(db.catalog_newer_than(second).unwrap().is_none());

    let at = kassa_protocol::promotions::LocalTime { day: 20_600, minute: 9 * 60 };
    let changes = vec![ScheduledPrice { sku: items[1].sku.clone(), at, price: Kopecks(12_345) }];
    let version = db.publish_price_schedule(&changes, &kassa_tests::fixture_audit(1, "schedule.publish")).unwrap();
    assert_eq!(db.price_schedule().unwrap(), (version, changes));
    let rules = kassa_protocol::loyalty::LoyaltyRules::new(5_000, Vec::new(), 30, 100).unwrap();
    let v1 = db.publish_rules(&rules).unwrap();
    let v2 = db.publish_rules(&rules).unwrap();
    assert_eq!((v2, db.rules().unwrap()), (v1 + 1, (v2, rules)));
}

/// Deliveries HQ announces, on both backends: numbered in order, waiting for their store
/// (and only theirs), an unknown SKU refused with nothing written.
fn deliveries_are_numbered_and_wait_for_their_store(open: Open<'_>) {
    let db = open();
    let items = kassa_protocol::catalog::parse_csv(kassa_sim::stack::DEMO_CATALOG_CSV).unwrap();
    db.publish_catalog(&items).unwrap();
    let audit = kassa_tests::fixture_audit(0, "delivery.create");
    let lines = |n: i64| vec![(items[0].sku.clone(), n), (items[1].sku.clone(), 2 * n)];
    let one = db.create_delivery(StoreId(1), &lines(5), &audit, 10).unwrap();
    let two = db.create_delivery(StoreId(1), &lines(7), &audit, 20).unwrap();
    db.create_delivery(StoreId(2), &lines(1), &audit, 30).unwrap();
    let refused = db.create_delivery(StoreId(1), &[(Sku("no-such".into()), 1)], &audit, 40);
    assert!(refused.is_err());
    let open1 = db.open_inbound(StoreId(1)).unwrap();
    assert_eq!(open1, vec![one.clone(), two.clone()], "oldest first, only store 1's");
    assert_eq!(open1[1].lines[1].quantity, 14);
    assert_ne!(one.source, two.source, "numbered apart");
    assert_eq!(db.inbound_rows(None, true).unwrap().len(), 3);
    assert_eq!(db.inbound_rows(Some(StoreId(2)), true).unwrap().len(), 1);
}
