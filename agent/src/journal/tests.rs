// Amounts are written as roubles_kopecks (500_00 = 500,00 ₽) on purpose.
#![allow(clippy::inconsistent_digit_grouping)]

use kassa_protocol::basket::Basket;
use kassa_protocol::catalog::parse_csv;
use kassa_protocol::sale::{Tender, TenderKind};

use kassa_protocol::{Kopecks, Sku, StoreId};

use super::*;

const CSV: &str = "sku,gtin,name,category,price_kopecks,vat_percent,unit,plu
100001,4650001209603,Молоко,М,10690,10,pcs,
100002,4630015509388,Хлеб,Х,5000,20,pcs,
100477,,Яблоки,В,18900,10,kg,00001
";

fn journal() -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("j.sqlite"), StoreId(1)).unwrap();
    j.apply_catalog(1, &parse_csv(CSV).unwrap()).unwrap();
    j.add_user(&User { id: "anna".into(), name: "Анна".into(), role: Role::Cashier }, "1111", 0).unwrap();
    j.add_user(&User { id: "boss".into(), name: "Босс".into(), role: Role::Manager }, "9999", 0).unwrap();
    (dir, j)
}

fn basket(j: &Journal, items: &[(&str, i64)]) -> Basket {
    let mut b = Basket::default();
    for (sku, q) in items {
        b.add(&j.item_by_sku(&Sku(sku.to_string())).unwrap().unwrap(), *q).unwrap();
    }
    b
}

fn cash(k: i64) -> Vec<Tender> {
    vec![Tender { kind: TenderKind::Cash, amount: Kopecks(k) }]
}

#[test]
fn a_sale_needs_an_open_shift_and_writes_nothing_without_one() {
    let (_d, j) = journal();
    let b = basket(&j, &[("100001", 1)]);
    assert!(matches!(j.commit_sale(1, "anna", &b, &cash(20000), None, "k1", 1), Err(WriteError::NoShift)));
    assert_eq!(j.docs_count().unwrap(), (0, 0));
    assert_eq!(j.outbox_head().unwrap(), 0);
    assert!(j.verify().unwrap().ok());
}

#[test]
fn sales_returns_and_the_z_report_add_up() {
    let (_d, j) = journal();
    j.open_shift(1, "anna", Kopecks(500_00), "open", 1).unwrap();
    // Retried open: same answer, no second shift.
    let (_, replayed) = j.open_shift(1, "anna", Kopecks(500_00), "open", 1).unwrap();
    assert!(replayed);
    let b = basket(&j, &[("100001", 2), ("100002", 1), ("100477", 1500)]);
    let total = b.totals().unwrap().total; // 213,80 + 50,00 + 283,50
    assert_eq!(total, Kopecks(21380 + 5000 + 28350));
    let (sale, replayed) = j.commit_sale(1, "anna", &b, &cash(60000), None, "pay1", 2).unwrap();
    assert!(!replayed);
    assert_eq!(sale.receipt_no, "0001-01-000001");
    assert_eq!(sale.change, Kopecks(60000 - total.0));
    let (again, replayed) = j.commit_sale(1, "anna", &b, &cash(60000), None, "pay1", 3).unwrap();
    assert!(replayed);
    assert_eq!(again, sale);
    assert!(matches!(
        j.commit_return(1, "anna", &ReturnRequest::Cancel { sale_seq: 1, approved_by: "boss".into() }, None, "pay1", 3),
        Err(WriteError::KeyReuse)
    ));

    // Return one milk; over-return refused with nothing written.
    let req = ReturnRequest::WithReceipt { sale_seq: sale.id.seq, lines: vec![(0, 1)] };
    let (ret, _) = j.commit_return(1, "anna", &req, None, "ret1", 4).unwrap();
    assert_eq!(ret.total, Kopecks(10690));
    assert_eq!(ret.receipt_no, "0001-01-000002");
    let over = ReturnRequest::WithReceipt { sale_seq: sale.id.seq, lines: vec![(0, 2)] };
    assert!(matches!(j.commit_return(1, "anna", &over, None, "ret2", 5), Err(WriteError::Return(_))));
    assert_eq!(j.docs_count().unwrap(), (1, 1));
    assert_eq!(j.stock(&Sku("100001".into())).unwrap(), -1, "sold 2, returned 1 (no deliveries)");

    // Cancel the rest of the sale: a reversal, the original untouched.
    let cancel = ReturnRequest::Cancel { sale_seq: sale.id.seq, approved_by: "boss".into() };
    let (rev, _) = j.commit_return(1, "boss", &cancel, None, "cancel1", 6).unwrap();
    assert_eq!(rev.total.0 + ret.total.0, total.0);
    assert!(matches!(j.commit_return(1, "boss", &cancel, None, "cancel2", 7), Err(WriteError::AlreadyCancelled(_))));
    assert_eq!(j.stock(&Sku("100477".into())).unwrap(), 0);

    j.void_basket(1, "anna", &basket(&j, &[("100002", 3)]), 8).unwrap();
    j.cash_move(1, "anna", Kopecks(-100_00), "инкассация", None, "out1", 9).unwrap();
    assert!(matches!(
        j.cash_move(1, "anna", Kopecks(-10_000_00), "x", None, "out2", 9),
        Err(WriteError::DrawerShort { .. })
    ));
    let (z, _) = j.close_shift(1, "boss", Kopecks(400_00), "close", 10).unwrap();
    assert_eq!(z.sales_count, 1);
    assert_eq!(z.returns_count, 2);
    assert_eq!(z.returns_total, total, "everything came back");
    assert_eq!(z.voids_count, 1);
    assert_eq!(z.voids_total, Kopecks(15000));
    // 500 float + (600 − change = total) − total refunded in cash − 100 out = 400.
    assert_eq!(z.expected_cash, Kopecks(400_00));
    assert_eq!(z.difference, Some(Kopecks(0)));
    let vat_sales: i64 = z.vat.iter().map(|v| v.sales.0).sum();
    assert_eq!(vat_sales, total.0);
    assert!(j.x_report(1).unwrap().is_none(), "closed");
    let report = j.verify().unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.sales, report.returns), (1, 2));
}

#[test]
fn verify_names_the_first_edited_record() {
    let (dir, j) = journal();
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    for i in 0..3 {
        j.commit_sale(1, "anna", &basket(&j, &[("100001", 1)]), &cash(10690), None, &format!("k{i}"), 2).unwrap();
    }
    assert!(j.verify().unwrap().ok());
    drop(j);
    // Someone edits the body of the second sale's record directly in SQLite.
    let conn = rusqlite::Connection::open(dir.path().join("j.sqlite")).unwrap();
    let seq: i64 = conn.query_row("SELECT record_seq FROM docs WHERE receipt_number = 2", [], |r| r.get(0)).unwrap();
    conn.execute("UPDATE records SET at_ms = at_ms + 1 WHERE seq = ?1", [seq]).unwrap();
    drop(conn);
    let j = Journal::open(&dir.path().join("j.sqlite"), StoreId(1)).unwrap();
    let report = j.verify().unwrap();
    let broken = report.first_broken.expect("tampering must be found");
    assert!(broken.starts_with(&format!("record {seq} ")), "{broken}");
}

#[test]
fn pins_are_hashed_and_lock_one_source_with_backoff() {
    let (dir, j) = journal();
    let till = "127.0.0.1";
    let stranger = "10.0.0.66";
    assert_eq!(j.authenticate("anna", "1111", till, 0).unwrap().role, Role::Cashier);
    let lock_out = |at: i64| {
        for left in (1..PIN_ATTEMPTS_MAX).rev() {
            assert!(matches!(
                j.authenticate("anna", "0000", stranger, at),
                Err(AuthError::WrongPin { attempts_left }) if attempts_left == left
            ));
        }
        match j.authenticate("anna", "0000", stranger, at) {
            Err(AuthError::Locked { seconds_left }) => seconds_left,
            other => panic!("expected a lockout, got {other:?}"),
        }
    };
    assert_eq!(lock_out(0), LOCKOUT_MS / 1000);
    assert!(
        matches!(j.authenticate("anna", "1111", stranger, 1000), Err(AuthError::Locked { .. })),
        "even the right PIN"
    );
    // The stranger's guesses lock the stranger out, not anna at the till.
    assert!(j.authenticate("anna", "1111", till, 1000).is_ok());
    // The next lockout of the same source is twice as long, up to the cap.
    assert_eq!(lock_out(LOCKOUT_MS + 1), 2 * LOCKOUT_MS / 1000);
    assert_eq!(lockout_ms(30), LOCKOUT_MAX_MS);
    // Every lockout is recorded.
    let recorded = j.lockouts(10).unwrap();
    assert_eq!(recorded.len(), 2);
    assert!(recorded.iter().all(|(user, source, _, _)| user == "anna" && source == stranger));
    // A right PIN from the source ends its backoff.
    assert!(j.authenticate("anna", "1111", stranger, 10 * LOCKOUT_MAX_MS).is_ok());
    assert_eq!(lock_out(10 * LOCKOUT_MAX_MS), LOCKOUT_MS / 1000);
    assert!(matches!(j.authenticate("nobody", "1111", till, 0), Err(AuthError::NoSuchUser)));
    let conn = rusqlite::Connection::open(dir.path().join("j.sqlite")).unwrap();
    let hash: String = conn.query_row("SELECT pin_hash FROM users WHERE id = 'anna'", [], |r| r.get(0)).unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains("1111"));
}

#[test]
fn a_return_after_the_points_were_spent_keeps_their_value_back() {
    use kassa_protocol::loyalty::LoyaltyRules;
    let (_d, j) = journal();
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    let customer = j.issue_customer("+79123456789", None).unwrap();
    let offline = |rules: LoyaltyRules| LoyaltyUse { customer: customer.card.clone(), rules, online: false };
    let rules = LoyaltyRules::default(); // 1 point per 10 ₽, a point is worth 1 ₽
                                         // 10 milks, 1 069,00 ₽: 106 points, held by this store (offline: no hand-over).
    let b = basket(&j, &[("100001", 10)]);
    let (sale, _) = j.commit_sale(1, "anna", &b, &cash(106_900), Some(&offline(rules.clone())), "s1", 2).unwrap();
    assert_eq!(j.loyalty_account(&customer.card).unwrap().balance(), 106);
    // Spend 100 of them on another basket (up to 50 % of 1 069,00 ₽).
    let b = basket(&j, &[("100001", 10)]);
    let tenders = vec![
        Tender { kind: TenderKind::Points, amount: Kopecks(10_000) },
        Tender { kind: TenderKind::Cash, amount: Kopecks(96_900) },
    ];
    j.commit_sale(1, "anna", &b, &tenders, Some(&offline(rules.clone())), "s2", 3).unwrap();
    // Spending more than the store holds is refused, and says how many can be spent.
    // Held now: 106 − 100 + 96 (the second sale earned on its cash part) = 102.
    assert_eq!(j.loyalty_account(&customer.card).unwrap().rights(j.actor()), 102);
    let b3 = basket(&j, &[("100001", 3)]);
    let too_many = vec![
        Tender { kind: TenderKind::Points, amount: Kopecks(15_000) },
        Tender { kind: TenderKind::Cash, amount: Kopecks(32_070 - 15_000) },
    ];
    match j.commit_sale(1, "anna", &b3, &too_many, Some(&offline(rules.clone())), "s3", 4) {
        Err(WriteError::Points { spendable_now, message }) => {
            assert_eq!(spendable_now, 102, "{message}");
            assert!(message.contains("102 of 102"), "{message}");
        }
        other => panic!("overspent: {other:?}"),
    }
    // Return the first sale whole: its 106 points come back off the account; only 6 +
    // what the second sale earned are left, so the rest is kept back from the refund.
    let left = j.loyalty_account(&customer.card).unwrap().balance();
    let (ret, _) = j
        .commit_return(
            1,
            "anna",
            &ReturnRequest::WithReceipt { sale_seq: sale.id.seq, lines: vec![(0, 10)] },
            None,
            "r1",
            5,
        )
        .unwrap();
    let rl = ret.loyalty.clone().unwrap();
    assert_eq!(rl.take_back, 106);
    assert_eq!(rl.spend, left, "every point still held is taken back");
    assert_eq!(rl.shortfall, 106 - left);
    assert_eq!(rl.deducted, Kopecks((106 - left) * 100), "their value is kept back");
    assert_eq!(ret.refunds.iter().map(|t| t.amount.0).sum::<i64>(), 106_900 - rl.deducted.0);
    assert_eq!(j.loyalty_account(&customer.card).unwrap().balance(), 0, "never below zero");
    assert!(j.verify().unwrap().ok());
}

#[test]
fn search_finds_names_in_any_case_and_plus_by_number() {
    let (_d, j) = journal();
    let names = |q: &str| j.search(q).unwrap().into_iter().map(|i| i.name).collect::<Vec<_>>();
    assert_eq!(names("молоко"), vec!["Молоко"]);
    assert_eq!(names("ХЛЕБ"), vec!["Хлеб"]);
    assert_eq!(names("00001"), vec!["Яблоки"], "a PLU typed for a weighed item");
    assert_eq!(names("1"), vec!["Яблоки"]);
    assert!(names("99999").is_empty());
}

/// A catalog of `n` piece items, SKUs 200000.., 1,00 ₽ apart.
fn many_items(n: usize) -> Vec<kassa_protocol::catalog::CatalogItem> {
    let mut csv = String::from("sku,gtin,name,category,price_kopecks,vat_percent,unit,plu\n");
    for i in 0..n {
        csv.push_str(&format!("{},,Товар {i},Т,{},20,pcs,\n", 200_000 + i, 100 + 100 * i));
    }
    parse_csv(&csv).unwrap()
}

#[test]
fn counters_of_a_long_basket_and_of_repeated_skus_are_exact() {
    use kassa_protocol::wire::Change;
    let (_d, j) = journal();
    let items = many_items(20);
    j.apply_catalog(2, &items).unwrap();
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    // 20 lines: more than one multi-row statement's worth.
    let mut b = Basket::default();
    for (i, item) in items.iter().enumerate() {
        b.add(item, 1 + i as i64).unwrap();
    }
    let total = b.totals().unwrap().total;
    j.commit_sale(1, "anna", &b, &cash(total.0), None, "big", 2).unwrap();
    j.commit_sale(1, "anna", &b, &cash(total.0), None, "big2", 3).unwrap();
    for (i, item) in items.iter().enumerate() {
        assert_eq!(j.stock(&item.sku).unwrap(), -2 * (1 + i as i64), "{}", item.sku);
    }
    // A return without receipt may name a SKU twice: one counter entry, both lines in it.
    let sku = items[3].sku.clone();
    let req = ReturnRequest::WithoutReceipt {
        lines: vec![(sku.clone(), 2), (items[5].sku.clone(), 1), (sku.clone(), 3)],
        approved_by: "boss".into(),
        refund: kassa_protocol::sale::TenderKind::Cash,
    };
    let (ret, _) = j.commit_return(1, "boss", &req, None, "ret", 4).unwrap();
    assert_eq!(ret.lines.len(), 3);
    assert_eq!(j.stock(&sku).unwrap(), -8 + 5);
    let entries = j.outbox_after(0, 100).unwrap();
    let Some(Change::Return { counters, .. }) = entries.last().map(|e| &e.change) else { panic!("no return") };
    let ours: Vec<_> = counters.iter().map(|c| (c.sku.clone(), c.p, c.n)).collect();
    assert_eq!(ours, vec![(sku, 5, 8), (items[5].sku.clone(), 1, 12)], "one entry per SKU, by SKU, with totals");
    let Some(Change::Sale { counters, .. }) = entries.get(entries.len() - 2).map(|e| &e.change) else {
        panic!("no sale")
    };
    assert_eq!(counters.len(), 20);
    assert!(counters.windows(2).all(|w| w[0].sku < w[1].sku));
    assert!(counters.iter().zip(&items).all(|(c, i)| c.sku == i.sku && c.p == 0));
    assert_eq!(j.outbox_head().unwrap(), entries.last().unwrap().seq);
    let report = j.verify().unwrap();
    assert!(report.ok(), "{report:?}");
}

#[test]
fn a_key_stored_with_the_whole_sale_as_json_still_answers() {
    let (dir, j) = journal();
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    let b = basket(&j, &[("100001", 2)]);
    let (sale, _) = j.commit_sale(1, "anna", &b, &cash(30000), None, "pay", 2).unwrap();
    let ret_req = ReturnRequest::WithReceipt { sale_seq: sale.id.seq, lines: vec![(0, 1)] };
    let (ret, _) = j.commit_return(1, "anna", &ret_req, None, "ret", 3).unwrap();
    drop(j);
    // Journals written before kept the answer itself.
    let conn = rusqlite::Connection::open(dir.path().join("j.sqlite")).unwrap();
    let stored: String =
        conn.query_row("SELECT response FROM idempotency WHERE key = 'pay'", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, format!("{{\"doc\":{}}}", sale.id.seq));
    // As the first release wrote them: data format 1, whose lines have no category.
    let old_sale = serde_json::to_string(&kassa_protocol::format::v1::Sale::from(&sale)).unwrap();
    let old_ret = serde_json::to_string(&kassa_protocol::format::v1::Return::from(&ret)).unwrap();
    let mut sale = sale;
    sale.lines.iter_mut().for_each(|l| l.category.clear());
    for (key, json) in [("pay", old_sale), ("ret", old_ret)] {
        conn.execute("UPDATE idempotency SET response = ?2 WHERE key = ?1", params![key, json]).unwrap();
    }
    drop(conn);
    let j = Journal::open(&dir.path().join("j.sqlite"), StoreId(1)).unwrap();
    assert_eq!(j.commit_sale(1, "anna", &b, &cash(30000), None, "pay", 4).unwrap(), (sale, true));
    assert_eq!(j.commit_return(1, "anna", &ret_req, None, "ret", 5).unwrap(), (ret, true));
    assert_eq!(j.docs_count().unwrap(), (1, 1));
}

/// The tables as journals created before had them: rowid tables with key indexes, a
/// unique index of receipt numbers and a full one of docs by sale, an index of print
/// jobs by state, and the document and outbox heads in `meta`.
const OLD_LAYOUT: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
CREATE TABLE docs (
    seq INTEGER PRIMARY KEY, record_seq INTEGER NOT NULL UNIQUE REFERENCES records(seq),
    kind TEXT NOT NULL CHECK (kind IN ('sale', 'return')), receipt_no TEXT NOT NULL UNIQUE,
    terminal INTEGER NOT NULL, receipt_number INTEGER NOT NULL, shift_id INTEGER NOT NULL REFERENCES shifts(id),
    total_kopecks INTEGER NOT NULL, sale_seq INTEGER REFERENCES docs(seq), cancels INTEGER NOT NULL DEFAULT 0,
    UNIQUE (terminal, receipt_number)
) STRICT;
CREATE INDEX docs_by_sale ON docs (sale_seq);
CREATE TABLE doc_lines (
    seq INTEGER NOT NULL REFERENCES docs(seq), line_no INTEGER NOT NULL, sale_line INTEGER, sku TEXT NOT NULL,
    quantity INTEGER NOT NULL, amount_kopecks INTEGER NOT NULL, vat TEXT NOT NULL, PRIMARY KEY (seq, line_no)
) STRICT;
CREATE TABLE doc_tenders (
    seq INTEGER NOT NULL REFERENCES docs(seq), idx INTEGER NOT NULL, kind TEXT NOT NULL,
    amount_kopecks INTEGER NOT NULL, PRIMARY KEY (seq, idx)
) STRICT;
CREATE TABLE idempotency (key TEXT PRIMARY KEY, op TEXT NOT NULL, response TEXT NOT NULL) STRICT;
CREATE TABLE stock_counters (
    sku TEXT NOT NULL, actor_store INTEGER NOT NULL, actor_epoch INTEGER NOT NULL,
    p INTEGER NOT NULL CHECK (p >= 0), n INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (sku, actor_store, actor_epoch)
) STRICT;
CREATE TABLE print_jobs (
    id INTEGER PRIMARY KEY, doc BLOB NOT NULL, copy INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done')), created_at_ms INTEGER NOT NULL,
    printed_at_ms INTEGER
) STRICT;
CREATE INDEX print_jobs_pending ON print_jobs (state, id);
INSERT INTO meta (key, value) VALUES ('doc_seq', 0), ('outbox_head', 0);
";

#[test]
fn a_journal_with_the_old_table_layout_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite");
    rusqlite::Connection::open(&path).unwrap().execute_batch(OLD_LAYOUT).unwrap();
    let j = Journal::open(&path, StoreId(1)).unwrap();
    j.apply_catalog(1, &parse_csv(CSV).unwrap()).unwrap();
    j.add_user(&User { id: "anna".into(), name: "Анна".into(), role: Role::Cashier }, "1111", 0).unwrap();
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    let b = basket(&j, &[("100001", 2), ("100002", 1)]);
    let (sale, _) = j.commit_sale(1, "anna", &b, &cash(30000), None, "pay", 2).unwrap();
    assert_eq!(j.commit_sale(1, "anna", &b, &cash(30000), None, "pay", 3).unwrap(), (sale.clone(), true));
    let req = ReturnRequest::WithReceipt { sale_seq: sale.id.seq, lines: vec![(0, 1)] };
    let (ret, _) = j.commit_return(1, "anna", &req, None, "ret", 4).unwrap();
    assert_eq!(ret.receipt_no, "0001-01-000002");
    assert_eq!(j.find_doc("0001-01-000002").unwrap(), Some(ret.id.seq));
    assert_eq!(j.returnable(sale.id.seq).unwrap().unwrap().1, vec![1, 1]);
    assert_eq!(j.stock(&Sku("100001".into())).unwrap(), -1);
    assert_eq!(j.outbox_head().unwrap(), 2);
    assert_eq!(j.pending_print_jobs().unwrap(), 2);
    let job = j.next_print_job().unwrap().unwrap();
    j.print_job_done(job.id, 5).unwrap();
    assert_eq!(j.pending_print_jobs().unwrap(), 1);
    assert!(j.verify().unwrap().ok());
    drop(j);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let indexes: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name IN ('docs', 'print_jobs')
             AND sql IS NOT NULL",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(indexes, vec!["docs_returns_by_sale"], "the partial index replaces the full one; no state index");
}

#[test]
fn records_another_connection_appends_between_sales_are_linked_after() {
    // `kassa-agent users add` opens the journal beside the running agent.
    let (dir, j) = journal();
    let other = Journal::open(&dir.path().join("j.sqlite"), StoreId(1)).unwrap();
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    for i in 0..3 {
        j.commit_sale(1, "anna", &basket(&j, &[("100001", 1)]), &cash(10690), None, &format!("k{i}"), 2).unwrap();
        let id = format!("new{i}");
        other.add_user(&User { id: id.clone(), name: id, role: Role::Cashier }, "2222", 3).unwrap();
    }
    let report = j.verify().unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.records, report.sales), (2 + 1 + 3 + 3, 3));
}

#[test]
fn documents_are_found_by_their_exact_receipt_number_or_qr_code() {
    let (_d, j) = journal();
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    j.open_shift(2, "boss", Kopecks(0), "open2", 1).unwrap();
    let b = basket(&j, &[("100002", 1)]);
    let (s1, _) = j.commit_sale(1, "anna", &b, &cash(5000), None, "a", 2).unwrap();
    let (s2, _) = j.commit_sale(2, "boss", &b, &cash(5000), None, "b", 3).unwrap();
    assert_eq!((s1.receipt_no.as_str(), s2.receipt_no.as_str()), ("0001-01-000001", "0001-02-000001"));
    assert_eq!(j.find_doc("0001-01-000001").unwrap(), Some(s1.id.seq));
    assert_eq!(j.find_doc(" 0001-02-000001 ").unwrap(), Some(s2.id.seq));
    assert_eq!(j.find_doc(&format!("KASSA:1:{}", s2.id.seq)).unwrap(), Some(s2.id.seq));
    for other in ["0002-01-000001", "0001-01-1", "1-01-000001", "0001-01-000002", "0001-01", "", "0001-01-000001-1"] {
        assert_eq!(j.find_doc(other).unwrap(), None, "{other:?}");
    }
}

#[test]
fn print_jobs_come_out_oldest_first_until_done_across_restarts() {
    let (dir, j) = journal();
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    let b = basket(&j, &[("100002", 1)]);
    let mut sales = Vec::new();
    for i in 0..4 {
        sales.push(j.commit_sale(1, "anna", &b, &cash(5000), None, &format!("s{i}"), 2).unwrap().0);
    }
    let receipt = |job: &PrintJob| match &job.printable {
        Printable::Sale(s) => s.receipt_no.clone(),
        _ => panic!("not a sale"),
    };
    assert_eq!(j.pending_print_jobs().unwrap(), 4);
    let first = j.next_print_job().unwrap().unwrap();
    assert_eq!(receipt(&first), sales[0].receipt_no);
    // Cut short: printed again, whole, as a copy.
    j.print_job_cut_short(first.id).unwrap();
    let again = j.next_print_job().unwrap().unwrap();
    assert_eq!((again.id, again.copy), (first.id, true));
    // The second job is printed before the first one is done; the first stays next.
    let second_id = first.id + 1;
    j.print_job_done(second_id, 3).unwrap();
    assert_eq!(j.next_print_job().unwrap().unwrap().id, first.id);
    assert_eq!(j.pending_print_jobs().unwrap(), 3);
    j.print_job_done(first.id, 3).unwrap();
    let third = j.next_print_job().unwrap().unwrap();
    assert_eq!(receipt(&third), sales[2].receipt_no);
    drop(j);
    // A restart finds the same jobs pending.
    let j = Journal::open(&dir.path().join("j.sqlite"), StoreId(1)).unwrap();
    assert_eq!(j.pending_print_jobs().unwrap(), 2);
    assert_eq!(j.next_print_job().unwrap().unwrap().id, third.id);
    j.print_job_done(third.id, 4).unwrap();
    let fourth = j.next_print_job().unwrap().unwrap();
    j.print_job_done(fourth.id, 4).unwrap();
    assert!(j.next_print_job().unwrap().is_none());
    assert_eq!(j.pending_print_jobs().unwrap(), 0);
    // Jobs queued after everything was printed, a reprint among them.
    assert!(j.reprint(sales[1].id.seq, 5).unwrap());
    j.commit_sale(1, "anna", &b, &cash(5000), None, "s4", 6).unwrap();
    assert_eq!(j.pending_print_jobs().unwrap(), 2);
    let reprint = j.next_print_job().unwrap().unwrap();
    assert_eq!((receipt(&reprint), reprint.copy), (sales[1].receipt_no.clone(), true));
}

#[test]
fn a_key_names_one_request_and_follows_one_rule() {
    let (_dir, j) = journal();
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    let b = basket(&j, &[("100001", 1)]);
    let (sale, _) = j.commit_sale(1, "anna", &b, &cash(20000), None, "pay", 2).unwrap();
    // The same key and request: the same sale.
    assert_eq!(j.commit_sale(1, "anna", &b, &cash(20000), None, "pay", 3).unwrap(), (sale, true));
    // The same key with other tenders, or for another basket: refused, nothing written.
    assert!(matches!(j.commit_sale(1, "anna", &b, &cash(30000), None, "pay", 3), Err(WriteError::KeyReuse)));
    let mut other = basket(&j, &[("100002", 1)]);
    other.id = 2;
    assert!(matches!(j.commit_sale(1, "anna", &other, &cash(20000), None, "pay", 3), Err(WriteError::KeyReuse)));
    assert!(matches!(j.cash_move(1, "anna", Kopecks(100), "x", None, "pay", 3), Err(WriteError::KeyReuse)));
    assert_eq!(j.docs_count().unwrap(), (1, 0));
    // One rule for every key: 1 to 128 of letters, digits, - _ . :
    for bad in ["", " ", "a b", "ключ", &"k".repeat(IDEMPOTENCY_KEY_LEN_MAX + 1)] {
        assert!(matches!(j.commit_sale(1, "anna", &other, &cash(5000), None, bad, 3), Err(WriteError::IdempotencyKey)));
        assert!(matches!(j.open_shift(2, "anna", Kopecks(0), bad, 3), Err(WriteError::IdempotencyKey)));
    }
    check_key("0b6f9c3e-1d2a-4f5b-8c7d-9e0f1a2b3c4d").unwrap();
    check_key(&"k".repeat(IDEMPOTENCY_KEY_LEN_MAX)).unwrap();
}

#[test]
fn a_sale_records_its_basket_and_a_basket_that_changed_is_refused() {
    let (_dir, j) = journal();
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    assert_eq!(j.basket_ended(1).unwrap(), 0);
    let mut b = basket(&j, &[("100001", 1)]);
    b.id = 5;
    // The cashier saw basket 4: a basket that changed since is not paid.
    assert!(matches!(
        j.commit_payment(1, "anna", &b, Some(4), &cash(20000), None, "pay", 2),
        Err(WriteError::BasketChanged)
    ));
    j.commit_payment(1, "anna", &b, Some(5), &cash(20000), None, "pay", 2).unwrap();
    assert_eq!(j.basket_ended(1).unwrap(), 5);
    assert_eq!(j.basket_ended(2).unwrap(), 0, "per terminal");
    // A void ends its basket too, shift or not; a return ends none.
    let mut v = basket(&j, &[("100002", 1)]);
    v.id = 6;
    j.void_basket(1, "anna", &v, 3).unwrap();
    assert_eq!(j.basket_ended(1).unwrap(), 6);
    let req = ReturnRequest::WithReceipt { sale_seq: 1, lines: vec![(0, 1)] };
    j.commit_return(1, "anna", &req, None, "ret", 4).unwrap();
    assert_eq!(j.basket_ended(1).unwrap(), 6);
    v.id = 9;
    j.void_basket(2, "anna", &v, 5).unwrap();
    assert_eq!(j.basket_ended(2).unwrap(), 9);
}

#[test]
fn typed_amounts_are_bounded() {
    let (_dir, j) = journal();
    let too_much = Kopecks(limits::CASH_AMOUNT_MAX.0 + 1);
    assert!(matches!(j.open_shift(1, "anna", too_much, "open0", 1), Err(WriteError::AmountTooLarge { .. })));
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    let b = basket(&j, &[("100001", 1)]);
    // An absurd cash tender is a typing mistake, not a sale.
    let refused = j.commit_sale(1, "anna", &b, &cash(i64::MAX), None, "pay", 2);
    assert!(
        matches!(refused, Err(WriteError::Payment(kassa_protocol::sale::PaymentError::ChangeTooLarge { .. }))),
        "{refused:?}"
    );
    assert!(matches!(j.cash_move(1, "anna", too_much, "x", None, "in", 3), Err(WriteError::AmountTooLarge { .. })));
    assert!(matches!(
        j.cash_move(1, "anna", Kopecks(-limits::CASH_AMOUNT_MAX.0 - 1), "x", None, "out", 3),
        Err(WriteError::AmountTooLarge { .. })
    ));
    assert!(matches!(j.close_shift(1, "boss", too_much, "close", 4), Err(WriteError::AmountTooLarge { .. })));
    assert_eq!(j.docs_count().unwrap(), (0, 0));
    assert!(j.x_report(1).unwrap().is_some(), "the shift is still open");
}

/// What used to be one `Invalid(String)`: each refusal its own variant and code, and
/// nothing written.
#[test]
fn each_refusal_of_a_write_has_its_own_variant_and_code() {
    use kassa_protocol::loyalty::{CustomerError, LoyaltyRules};
    let (_dir, j) = journal();
    let code = |e: WriteError| e.code();
    let user = |id: &str, name: &str| User { id: id.into(), name: name.into(), role: Role::Cashier };
    let e = j.add_user(&user("a b", "Ann"), "1234", 0).unwrap_err();
    assert!(matches!(e, WriteError::BadUserId), "{e:?}");
    assert_eq!(code(e), "bad_user_id");
    let e = j.add_user(&user("ann", " "), "1234", 0).unwrap_err();
    assert!(matches!(e, WriteError::BadUserName), "{e:?}");
    assert_eq!(code(e), "bad_user_name");
    let e = j.add_user(&user("ann", "Ann"), "12a4", 0).unwrap_err();
    assert!(matches!(e, WriteError::BadPin), "{e:?}");
    assert_eq!(code(e), "bad_pin_format");
    let e = j.add_user(&user("anna", "Anna"), "1234", 0).unwrap_err();
    assert!(matches!(&e, WriteError::UserExists(id) if id == "anna"), "{e:?}");
    assert_eq!(code(e), "user_exists");

    let e = j.open_shift(1, "anna", Kopecks(-1), "open0", 1).unwrap_err();
    assert!(matches!(e, WriteError::NegativeFloat), "{e:?}");
    assert_eq!(code(e), "negative_float");
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    let e = j.cash_move(1, "anna", Kopecks(0), "x", None, "zero", 2).unwrap_err();
    assert!(matches!(e, WriteError::ZeroCashAmount), "{e:?}");
    assert_eq!(code(e), "zero_cash_amount");
    let long = "x".repeat(shifts::REASON_LEN_MAX_CHARS + 1);
    for reason in [" ", long.as_str()] {
        let e = j.cash_move(1, "anna", Kopecks(100), reason, None, "reason", 2).unwrap_err();
        assert!(matches!(e, WriteError::CashReason), "{e:?}");
        assert_eq!(code(e), "bad_cash_reason");
    }
    let e = j.close_shift(1, "boss", Kopecks(-1), "close", 2).unwrap_err();
    assert!(matches!(e, WriteError::NegativeCounted), "{e:?}");
    assert_eq!(code(e), "negative_counted_cash");

    // Points without a customer, and in steps other than the point's value.
    let b = basket(&j, &[("100001", 1)]);
    let points = |k: i64| {
        vec![
            Tender { kind: TenderKind::Points, amount: Kopecks(k) },
            Tender { kind: TenderKind::Cash, amount: Kopecks(10_690 - k) },
        ]
    };
    let e = j.commit_sale(1, "anna", &b, &points(100), None, "p1", 3).unwrap_err();
    assert!(matches!(e, WriteError::PointsNeedCustomer), "{e:?}");
    assert_eq!(code(e), "points_need_customer");
    let customer = j.issue_customer("+79123456789", None).unwrap();
    let with = LoyaltyUse { customer: customer.card.clone(), rules: LoyaltyRules::default(), online: false };
    let e = j.commit_sale(1, "anna", &b, &points(150), Some(&with), "p2", 3).unwrap_err();
    assert!(matches!(e, WriteError::PointsStep { step: Kopecks(100) }), "{e:?}");
    assert_eq!(code(e), "points_step");

    // Cards: a phone that has one, and a phone that is not one.
    let e = j.issue_customer("+7 912 345-67-89", None).unwrap_err();
    assert!(matches!(&e, WriteError::PhoneTaken { card } if *card == customer.card.as_str()), "{e:?}");
    assert_eq!(code(e), "phone_has_card");
    let e = j.issue_customer("12", None).unwrap_err();
    assert!(matches!(e, WriteError::Customer(CustomerError::Phone)), "{e:?}");
    assert_eq!(code(e), "bad_phone");

    // A return without a receipt of a SKU the catalog does not have.
    let request = ReturnRequest::WithoutReceipt {
        lines: vec![(Sku("999999".into()), 1)],
        approved_by: "boss".into(),
        refund: kassa_protocol::sale::TenderKind::Cash,
    };
    let e = j.commit_return(1, "anna", &request, None, "r", 4).unwrap_err();
    assert!(matches!(&e, WriteError::UnknownSku(sku) if sku.as_str() == "999999"), "{e:?}");
    assert_eq!(code(e), "unknown_sku");
    assert_eq!(j.docs_count().unwrap(), (0, 0));
}

#[test]
fn cash_leaves_the_drawer_only_as_far_as_it_holds_or_a_manager_overrides() {
    let (_dir, j) = journal();
    j.open_shift(1, "anna", Kopecks(10_00), "open", 1).unwrap();
    // A return without receipt of 3 apples (1 kg each) at 189 ₽/kg: 567 ₽ from a 10 ₽ drawer.
    let lines = vec![(Sku("100477".into()), 3000)];
    let request = ReturnRequest::WithoutReceipt {
        lines,
        approved_by: "boss".into(),
        refund: kassa_protocol::sale::TenderKind::Cash,
    };
    match j.commit_return(1, "anna", &request, None, "r1", 2) {
        Err(WriteError::DrawerShort { in_drawer, needed }) => {
            assert_eq!((in_drawer, needed), (Kopecks(10_00), Kopecks(567_00)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(j.docs_count().unwrap(), (0, 0));
    assert!(matches!(
        j.cash_move(1, "anna", Kopecks(-11_00), "x", None, "out", 2),
        Err(WriteError::DrawerShort { .. })
    ));
    // The manager's override lets it go, and is recorded right after the return.
    let (ret, _) = j.commit_return(1, "anna", &request, Some("boss"), "r2", 3).unwrap();
    assert_eq!(ret.total, Kopecks(567_00));
    let conn = j.conn();
    let kinds: Vec<String> = conn
        .prepare("SELECT kind FROM records ORDER BY seq DESC LIMIT 2")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(kinds, vec!["drawer_override", "return"]);
    let last: i64 = conn.query_row("SELECT MAX(seq) FROM records", [], |r| r.get(0)).unwrap();
    assert_eq!(
        chain::record(&conn, last).unwrap(),
        Record::DrawerOverride { shift: 1, manager: "boss".into(), in_drawer: Kopecks(10_00), amount: Kopecks(567_00) }
    );
    drop(conn);
    assert_eq!(j.x_report(1).unwrap().unwrap().expected_cash, Kopecks(10_00 - 567_00));
    assert!(j.verify().unwrap().ok());
}

#[test]
fn a_journal_holding_an_extreme_record_still_reports_and_closes() {
    let (_dir, j) = journal();
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    let b = basket(&j, &[("100001", 1)]);
    let (first, _) = j.commit_sale(1, "anna", &b, &cash(10690), None, "pay1", 2).unwrap();
    let (second, _) = j.commit_sale(1, "anna", &b, &cash(10690), None, "pay2", 3).unwrap();
    // As an older release wrote them: cash tenders of i64::MAX (their sum overflows).
    {
        let conn = j.conn();
        for seq in [first.id.seq, second.id.seq] {
            conn.execute("UPDATE doc_tenders SET amount_kopecks = ?2 WHERE seq = ?1", params![seq as i64, i64::MAX])
                .unwrap();
        }
    }
    // Their sum is beyond i64 (SQLite's SUM fails on it); the report still adds up: the
    // change given back leaves the drawer with what the sales cost.
    let x = j.x_report(1).unwrap().unwrap();
    assert_eq!(x.sales_total, Kopecks(2 * 10690));
    assert_eq!(x.expected_cash, Kopecks(2 * 10690));
    assert_eq!(x.tenders[0].sales, Kopecks(2 * 10690));
    j.cash_move(1, "anna", Kopecks(100_00), "размен", None, "in", 4).unwrap();
    let (z, _) = j.close_shift(1, "boss", Kopecks(0), "close", 5).unwrap();
    assert_eq!(z.difference, Some(Kopecks(-(2 * 10690 + 100_00))));
    assert!(j.x_report(1).unwrap().is_none(), "closed");
}

#[test]
fn a_full_disk_is_reported_as_such_and_writes_nothing() {
    let (_dir, j) = journal();
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    // The file may not grow: exactly what a full disk does to SQLite.
    {
        let conn = j.conn();
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        conn.pragma_update(None, "max_page_count", pages).unwrap();
    }
    let b = basket(&j, &[("100001", 1), ("100002", 2), ("100477", 1500)]);
    let mut err = None;
    // Fill what room is left, then the next sale meets the full disk.
    for i in 0..10_000 {
        match j.commit_sale(1, "anna", &b, &cash(50_000), None, &format!("p{i}"), 2) {
            Ok(_) => continue,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("the disk fills up");
    assert!(matches!(err, WriteError::Journal(JournalError::DiskFull(_))), "{err:?}");
    assert!(err.to_string().contains("disk is full"), "{err}");
    assert!(j.verify().unwrap().ok(), "nothing half-written");
}

#[test]
fn every_stored_blob_says_its_format_and_the_format_is_in_the_chain() {
    let (dir, j) = journal();
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    let (sale, _) = j.commit_sale(1, "anna", &basket(&j, &[("100001", 1)]), &cash(20000), None, "pay", 2).unwrap();
    drop(j);
    let conn = rusqlite::Connection::open(dir.path().join("j.sqlite")).unwrap();
    for (table, current) in [
        ("records", format::RECORD_FORMAT),
        ("outbox", format::OUTBOX_FORMAT),
        ("print_jobs", format::PRINT_JOB_FORMAT),
    ] {
        let other: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {table} WHERE format IS NOT ?1"), [current], |r| r.get(0))
            .unwrap();
        assert_eq!(other, 0, "{table}: every new row is written in format {current}");
    }
    // Rows written before formats were versioned (format NULL, hashed without it) are
    // format 1: such a row, appended the old way, verifies and decodes.
    let (prev_seq, prev_hash): (i64, Vec<u8>) = conn
        .query_row("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    let record = Record::CashMove { shift: 1, amount: Kopecks(500), reason: "размен".into() };
    let body = kassa_protocol::format::v1::encode(&format::v1::Record::from(&record));
    let seq = prev_seq + 1;
    let hash = {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(&prev_hash);
        h.update(seq.to_be_bytes());
        for field in ["cash_move".as_bytes(), "anna".as_bytes(), &body] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field);
        }
        h.update(1u16.to_be_bytes());
        h.update(3i64.to_be_bytes());
        h.finalize().to_vec()
    };
    conn.execute(
        "INSERT INTO records (seq, kind, terminal, user_id, at_ms, body, prev_hash, hash) VALUES (?1,'cash_move',1,'anna',3,?2,?3,?4)",
        params![seq, body, prev_hash, hash],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO cash_moves (record_seq, shift_id, amount_kopecks, reason) VALUES (?1, 1, 500, 'размен')",
        [seq],
    )
    .unwrap();
    drop(conn);
    let j = Journal::open(&dir.path().join("j.sqlite"), StoreId(1)).unwrap();
    assert!(j.verify().unwrap().ok(), "{:?}", j.verify().unwrap());
    assert_eq!(chain::record(&j.conn(), seq).unwrap(), record);
    assert_eq!(j.sale(sale.id.seq).unwrap().unwrap(), sale);

    // The format is part of the hash: changing it breaks the chain.
    j.conn().execute("UPDATE records SET format = 1 WHERE seq = 1", []).unwrap();
    let report = j.verify().unwrap();
    assert!(report.first_broken.unwrap().starts_with("record 1 "), "the edit is found");
    // A format this program does not know is named as such, not misread.
    j.conn().execute("UPDATE outbox SET format = 9", []).unwrap();
    let err = j.outbox_after(0, 10).unwrap_err().to_string();
    assert!(err.contains("format 9") && err.contains("does not know"), "{err}");
}

#[test]
fn a_sale_keeps_its_promotions_in_the_journal_and_the_outbox() {
    let (_dir, j) = journal();
    j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
    let mut b = basket(&j, &[("100001", 3)]);
    let def: kassa_protocol::promotions::definition::Definition = serde_json::from_value(serde_json::json!({
        "id": 12, "version": 3, "name": "3 по цене 2",
        "kind": { "type": "n_for_m", "skus": ["100001"], "n": 3, "m": 2 },
        "from": "2020-01-01", "to": "2100-12-31", "stores": "all", "channels": ["store"], "audience": "everyone"
    }))
    .unwrap();
    let active = crate::promotions::build(1, std::slice::from_ref(&def)).unwrap();
    let none = std::collections::BTreeSet::new();
    let cx = kassa_protocol::promotions::Context {
        store: StoreId(1),
        channel: kassa_protocol::promotions::Channel::Store,
        at: kassa_protocol::promotions::LocalTime::from_unix_ms(1_790_000_000_000, 180),
        customer: None,
        coupons: &[],
        used_coupons: &none,
    };
    b.apply_promotions(&active.set, &cx);
    let free = b.lines[0].price;
    assert_eq!(b.promotions_saved(), free);
    let (sale, _) = j.commit_sale(1, "anna", &b, &cash(50_000), None, "pay", 2).unwrap();
    assert_eq!(sale.lines[0].promotions[0].name, "3 по цене 2");
    assert_eq!(j.sale(sale.id.seq).unwrap().unwrap(), sale, "the record keeps the promotions");
    let entries = j.outbox_after(0, 10).unwrap();
    use kassa_protocol::wire::Change;
    let Some(Change::Sale { sale: sent, .. }) =
        entries.iter().map(|e| &e.change).find(|c| matches!(c, Change::Sale { .. }))
    else {
        panic!("no sale in the outbox")
    };
    assert_eq!(sent, &sale, "the outbox keeps them for HQ");
    assert!(j.verify().unwrap().ok());
    // Promotions are kept whole and only if newer.
    assert!(j.set_promotions(3, std::slice::from_ref(&def)).unwrap());
    assert!(!j.set_promotions(2, &[]).unwrap(), "an older set is not kept");
    assert_eq!(j.promotions().unwrap(), (3, vec![def]));
}

/// The promotions a customer has had are a grow-only set: the SQL union of what each
/// store saw and what HQ relayed equals the `crdts` crate's `GSet` merged the same way,
/// in any order, any number of times.
#[test]
fn promotions_used_merge_like_a_grow_only_set() {
    use crdts::{CmRDT, CvRDT, GSet};
    use kassa_protocol::loyalty::CustomerId;
    let card = CustomerId::parse("000010000000001").unwrap();
    let (_d1, one) = journal();
    let (_d2, two) = journal();
    let mut rng = kassa_protocol::seeded::SeededRng::new(7);
    let (mut ref_one, mut ref_two) = (GSet::<u32>::new(), GSet::<u32>::new());
    for _ in 0..50 {
        let p = rng.below(12) as u32;
        let (j, r) = if rng.below(2) == 0 { (&one, &mut ref_one) } else { (&two, &mut ref_two) };
        j.merge_promotions_used(&card, &[p]).unwrap();
        r.apply(p);
        if rng.below(5) == 0 {
            // Gossip one way, as HQ relays a lookup's answer; again, harmlessly.
            let seen: Vec<u32> = one.promotions_used(&card).unwrap().into_iter().collect();
            two.merge_promotions_used(&card, &seen).unwrap();
            two.merge_promotions_used(&card, &seen).unwrap();
            ref_two.merge(ref_one.clone());
        }
        assert_eq!(one.promotions_used(&card).unwrap(), ref_one.read());
        assert_eq!(two.promotions_used(&card).unwrap(), ref_two.read());
    }
    let all: Vec<u32> = two.promotions_used(&card).unwrap().into_iter().collect();
    one.merge_promotions_used(&card, &all).unwrap();
    ref_one.merge(ref_two.clone());
    assert_eq!(one.promotions_used(&card).unwrap(), ref_one.read());
}

mod count_property {
    use super::*;
    use crate::journal::{CountScope, MovementRequest};
    use proptest::prelude::*;

    /// What happens to the milk at the store while a count runs.
    #[derive(Debug, Clone)]
    enum Op {
        Sell(i64),
        Receive(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![(1i64..4).prop_map(Op::Sell), (1i64..6).prop_map(Op::Receive)]
    }

    fn milk() -> Sku {
        Sku("100001".into())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// A count's adjustment is what was counted minus the book quantity when the SKU
        /// was first counted, whatever sales and receipts interleave before and after;
        /// the stock after posting is that count plus everything that moved since.
        #[test]
        fn a_counts_adjustment_is_counted_minus_the_book_when_counted(
            initial in 0i64..20,
            before in proptest::collection::vec(op(), 0..6),
            after in proptest::collection::vec(op(), 0..6),
            counted in 0i64..30,
        ) {
            let (_d, j) = journal();
            j.open_shift(1, "anna", Kopecks(0), "open", 1).unwrap();
            let mut n = 0u64;
            let mut apply = |j: &Journal, op: &Op| {
                n += 1;
                match op {
                    Op::Sell(q) => {
                        let mut b = Basket::new(n);
                        b.add(&j.item_by_sku(&milk()).unwrap().unwrap(), *q).unwrap();
                        let total = b.totals().unwrap().total.0;
                        j.commit_sale(1, "anna", &b, &cash(total), None, &format!("sale-{n}"), 10).unwrap();
                    }
                    Op::Receive(q) => {
                        let r = MovementRequest::Receive { source: None, lines: vec![(milk(), *q)] };
                        j.record_movement(1, "anna", &r, Some("boss"), "", &format!("rcv-{n}"), 10).unwrap();
                    }
                }
            };
            if initial > 0 {
                apply(&j, &Op::Receive(initial));
            }
            let (report, _) = j.start_count("anna", CountScope::Everything, "count", 11).unwrap();
            for o in &before {
                apply(&j, o);
            }
            let book_when_counted = j.stock(&milk()).unwrap();
            if counted > 0 {
                j.count_scan(report.id, "anna", &milk(), counted, "scan", 12).unwrap();
            }
            let moved_after: i64 = after.iter().map(|o| match o { Op::Sell(q) => -q, Op::Receive(q) => *q }).sum();
            for o in &after {
                apply(&j, o);
            }
            let (posted, _) = j.post_count(1, report.id, "boss", "post", 13).unwrap();
            let movement = j.movements(0, i64::MAX).unwrap().into_iter().find(|m| Some(m.id.seq) == posted.posted).unwrap();
            let adjustment: i64 = movement.lines.iter().filter(|l| l.sku == milk()).map(|l| l.quantity).sum();
            if counted > 0 {
                prop_assert_eq!(adjustment, counted - book_when_counted);
                prop_assert_eq!(j.stock(&milk()).unwrap(), counted + moved_after);
            } else {
                // Nobody counted the milk: a full count takes it as none, against the
                // book when posted.
                prop_assert_eq!(j.stock(&milk()).unwrap(), 0);
            }
            prop_assert!(j.verify().unwrap().ok());
        }
    }
}
