//! Crash test: a real `kassa-agent` process is killed with SIGKILL at random moments
//! while a driver sells through its HTTP API. After every restart:
//! - the open basket holds nothing that was paid (a paid basket never comes back as the
//!   next customer's);
//! - every payment whose answer was lost is retried with its key: it answers the sale
//!   it made, or pays the basket that was restored; every acknowledged key maps to
//!   exactly one sale, and a retried key never changes the sale it named;
//! - the journal holds exactly the acknowledged sales, its hash chain verifies, and the
//!   stock counters equal what the acknowledged sales (as the API answered them) took.
//!
//! Each check is a function returning what it found wrong; `checks_catch_planted_bugs`
//! shows each one failing on the bug it is there to catch.
//!
//! `KASSA_CRASH_KILLS=N` sets the number of kills (200 by default);
//! `KASSA_CRASH_SEED=S` replays a run.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kassa_agent::journal::{Role, User};
use kassa_agent::Journal;
use kassa_protocol::{Sku, StoreId};
use serde_json::{json, Value};

const CATALOG: &str = include_str!("../../data/catalog.csv");

use kassa_protocol::seeded::SeededRng as Rng;

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    let toml = format!(
        "store = 1\nterminal = 1\ndata_dir = \"{}\"\nhttp_listen = \"127.0.0.1:0\"\n\n[hq]\naddr = \"127.0.0.1:9\"\npki_dir = \"{}\"\n",
        dir.join("data").display(),
        dir.join("no-pki").display()
    );
    std::fs::write(&path, toml).unwrap();
    path
}

/// Starts the agent and returns it with its HTTP address (read from its stdout).
fn start(config: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kassa-agent"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("kassa-agent: cashier page on ") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(20)).expect("agent did not start within 20 s");
    (child, addr)
}

/// A sale as the API acknowledged it.
#[derive(Debug, Clone, PartialEq)]
struct Acked {
    receipt: String,
    total: i64,
    /// The basket it paid.
    basket_id: u64,
    /// (SKU, quantity) of its lines.
    lines: Vec<(String, i64)>,
}

/// A payment sent whose answer never came (the agent died).
#[derive(Debug, Clone)]
struct InDoubt {
    key: String,
    basket_id: u64,
    tendered: i64,
}

#[derive(Default)]
struct Ledger {
    /// Acknowledged sales by idempotency key.
    acked: BTreeMap<String, Acked>,
    in_doubt: Vec<InDoubt>,
}

impl Ledger {
    /// Records an acknowledgement; a key acknowledged before must name the same sale.
    fn acknowledge(&mut self, key: String, sale: Acked) -> Result<(), String> {
        match self.acked.get(&key) {
            Some(earlier) if *earlier != sale => {
                Err(format!("key {key} acknowledged {earlier:?} and then {sale:?}: one key, two sales"))
            }
            Some(_) => Ok(()),
            None => {
                self.acked.insert(key, sale);
                Ok(())
            }
        }
    }
}

fn acked_from(body: &Value) -> Acked {
    let sale = &body["sale"];
    let lines = sale["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["sku"].as_str().unwrap().to_owned(), l["quantity"].as_i64().unwrap()))
        .collect();
    Acked {
        receipt: sale["receipt_no"].as_str().unwrap().to_owned(),
        total: sale["total_kopecks"].as_i64().unwrap(),
        basket_id: 0, // filled in by the caller, who knows which basket it paid
        lines,
    }
}

async fn post(client: &reqwest::Client, url: String, token: &str, body: Value) -> Result<(u16, Value), reqwest::Error> {
    let resp = client.post(url).bearer_auth(token).json(&body).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

async fn get(client: &reqwest::Client, url: String, token: &str) -> Result<(u16, Value), reqwest::Error> {
    let resp = client.get(url).bearer_auth(token).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// Sells until a request fails (the agent was killed): scans one to three items, then
/// pays exactly the total of the basket the last scan answered with.
async fn sell(
    client: reqwest::Client,
    base: String,
    token: String,
    mut rng: Rng,
    gtins: Vec<String>,
    ledger: &mut Ledger,
) -> Result<(), String> {
    for n in 0.. {
        let lines = 1 + rng.below(3);
        let mut last = Value::Null;
        for _ in 0..lines {
            let code = &gtins[rng.below(gtins.len() as u64) as usize];
            let key = format!("scan-{}-{n}", rng.next_u64());
            match post(
                &client,
                format!("{base}/api/basket/scan"),
                &token,
                json!({ "code": code, "idempotency_key": key }),
            )
            .await
            {
                Ok((200, body)) => last = body,
                Ok((status, body)) => return Err(format!("scan refused: {status} {body}")),
                Err(_) => return Ok(()),
            }
        }
        let basket_id = last["basket"]["id"].as_u64().ok_or_else(|| format!("no basket id in {last}"))?;
        let tendered = last["totals"]["total_kopecks"].as_i64().ok_or_else(|| format!("no total in {last}"))?;
        let key = format!("pay-{}", rng.next_u64());
        ledger.in_doubt.push(InDoubt { key: key.clone(), basket_id, tendered });
        let pay = json!({
            "idempotency_key": key,
            "basket_id": basket_id,
            "tenders": [{ "kind": "cash", "amount_kopecks": tendered }],
        });
        match post(&client, format!("{base}/api/pay"), &token, pay).await {
            Ok((200, body)) => {
                ledger.in_doubt.pop();
                ledger.acknowledge(key, Acked { basket_id, ..acked_from(&body) })?;
            }
            Ok((status, body)) => return Err(format!("pay refused: {status} {body}")),
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

async fn login(client: &reqwest::Client, base: &str) -> String {
    let (status, body) =
        post(client, format!("{base}/api/login"), "", json!({ "user": "kassir", "pin": "1111" })).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let (status, _) = post(
        client,
        format!("{base}/api/shift/open"),
        &token,
        json!({ "float_kopecks": 0, "idempotency_key": "shift-1" }),
    )
    .await
    .unwrap();
    assert!(status == 200, "shift open: {status}");
    token
}

/// The open basket after a restart, as the API shows it: its id and lines.
struct Restored {
    id: u64,
    lines: usize,
}

/// The basket restored after a crash holds nothing that was paid: it is not a basket
/// any sale in the journal paid (read by plain SQL, not through the agent's code), nor
/// one the driver was told was paid.
fn check_basket(restored: &Restored, paid_in_journal: &BTreeSet<u64>, ledger: &Ledger) -> Result<(), String> {
    if restored.lines == 0 {
        return Ok(());
    }
    if paid_in_journal.contains(&restored.id) {
        return Err(format!("basket {} came back with {} lines after it was paid", restored.id, restored.lines));
    }
    if let Some((key, _)) = ledger.acked.iter().find(|(_, a)| a.basket_id == restored.id) {
        return Err(format!("basket {} came back after the API acknowledged its payment ({key})", restored.id));
    }
    Ok(())
}

/// After the lost payments were retried, the journal holds exactly the acknowledged
/// sales: each acknowledged receipt once, with the total the API answered.
fn check_sales(journal: &Journal, ledger: &Ledger) -> Result<(), String> {
    let report = journal.verify().map_err(|e| e.to_string())?;
    if !report.ok() {
        return Err(format!("journal does not verify after a crash: {report:?}"));
    }
    let (sales, _) = journal.docs_count().map_err(|e| e.to_string())?;
    if sales as usize != ledger.acked.len() {
        return Err(format!("{sales} sales in the journal, {} acknowledged", ledger.acked.len()));
    }
    let mut seen = HashSet::new();
    for (key, a) in &ledger.acked {
        let seq = journal
            .find_doc(&a.receipt)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("acknowledged sale {} ({key}) is missing", a.receipt))?;
        let sale = journal.sale(seq).map_err(|e| e.to_string())?.ok_or("not a sale")?;
        if sale.total.0 != a.total {
            return Err(format!("sale {} is {} in the journal, {} acknowledged", a.receipt, sale.total, a.total));
        }
        if !seen.insert(seq) {
            return Err(format!("two keys acknowledged one sale {}", a.receipt));
        }
    }
    Ok(())
}

/// Stock moved by exactly what the acknowledged sales took (from the API's answers).
fn check_stock(journal: &Journal, ledger: &Ledger) -> Result<(), String> {
    let mut sold: BTreeMap<&str, i64> = BTreeMap::new();
    for a in ledger.acked.values() {
        for (sku, q) in &a.lines {
            *sold.entry(sku).or_default() += q;
        }
    }
    for (sku, q) in &sold {
        let stock = journal.stock(&Sku((*sku).to_owned())).map_err(|e| e.to_string())?;
        if stock != -q {
            return Err(format!("stock of {sku} is {stock}, the acknowledged sales took {q}"));
        }
    }
    Ok(())
}

/// Basket ids the journal's sales paid, read with plain SQL.
fn paid_baskets(journal_path: &Path) -> BTreeSet<u64> {
    let conn = rusqlite::Connection::open(journal_path).unwrap();
    let mut st = conn.prepare("SELECT basket_id FROM docs WHERE kind = 'sale' AND basket_id IS NOT NULL").unwrap();
    st.query_map([], |r| r.get::<_, i64>(0)).unwrap().map(|id| id.unwrap() as u64).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sales_survive_sigkill() {
    let kills: usize = std::env::var("KASSA_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let seed: u64 = std::env::var("KASSA_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("crash test: {kills} kills, seed {seed} (replay with KASSA_CRASH_SEED={seed})");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let journal_path = dir.path().join("data").join("journal.sqlite");
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let items = kassa_protocol::catalog::parse_csv(CATALOG).unwrap();
    let gtins: Vec<String> = items.iter().filter_map(|i| i.gtin.map(|g| g.short().to_owned())).collect();
    {
        let j = Journal::open(&journal_path, StoreId(1)).unwrap();
        j.apply_catalog(1, &items).unwrap();
        j.add_user(&User { id: "kassir".into(), name: "Кассир".into(), role: Role::Cashier }, "1111", 0).unwrap();
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut ledger = Ledger::default();
    let (mut restored_with_lines, mut retried) = (0, 0);
    let started = Instant::now();
    let fail = |what: String| -> ! { panic!("{what}\n(replay with KASSA_CRASH_SEED={seed})") };
    for kill in 0..kills {
        let (mut child, addr) = start(&config);
        let base = addr;
        let token = login(&client, &base).await;
        // What the restart brought back must hold nothing that was paid.
        let (status, basket) = get(&client, format!("{base}/api/basket"), &token).await.unwrap();
        assert_eq!(status, 200, "{basket}");
        let restored = Restored {
            id: basket["basket"]["id"].as_u64().unwrap(),
            lines: basket["basket"]["lines"].as_array().unwrap().len(),
        };
        restored_with_lines += usize::from(restored.lines > 0);
        check_basket(&restored, &paid_baskets(&journal_path), &ledger).unwrap_or_else(|e| fail(e));
        // A pay whose answer was lost, retried with its key and request: it answers the
        // sale it made, or — if it never committed — pays the basket restored now (the
        // same basket, perhaps missing its last scans), or finds that basket empty.
        for d in std::mem::take(&mut ledger.in_doubt) {
            retried += 1;
            let pay = json!({
                "idempotency_key": d.key,
                "basket_id": d.basket_id,
                "tenders": [{ "kind": "cash", "amount_kopecks": d.tendered }],
            });
            let (status, body) = post(&client, format!("{base}/api/pay"), &token, pay).await.unwrap();
            match status {
                200 => ledger
                    .acknowledge(d.key, Acked { basket_id: d.basket_id, ..acked_from(&body) })
                    .unwrap_or_else(|e| fail(e)),
                422 if body["error"] == "empty_basket" => {}
                _ => fail(format!("retry of {}: {status} {body}", d.key)),
            }
        }
        let journal = Journal::open(&journal_path, StoreId(1)).unwrap();
        check_sales(&journal, &ledger).unwrap_or_else(|e| fail(e));
        check_stock(&journal, &ledger).unwrap_or_else(|e| fail(e));
        drop(journal);

        let life = Duration::from_millis(rng.below(120));
        let seller = {
            let (client, base, token, gtins) = (client.clone(), base.clone(), token.clone(), gtins.clone());
            let sub_rng = Rng::new(rng.next_u64());
            let mut local = Ledger::default();
            tokio::spawn(async move {
                let result = sell(client, base, token, sub_rng, gtins, &mut local).await;
                (local, result)
            })
        };
        tokio::time::sleep(life).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (local, result) = seller.await.unwrap();
        result.unwrap_or_else(|e| fail(e));
        for (key, a) in local.acked {
            ledger.acknowledge(key, a).unwrap_or_else(|e| fail(e));
        }
        ledger.in_doubt.extend(local.in_doubt);
        if kill % 50 == 49 {
            eprintln!("  {} kills, {} acknowledged sales, {:?}", kill + 1, ledger.acked.len(), started.elapsed());
        }
    }
    assert!(!ledger.acked.is_empty(), "the driver never got a sale through");
    eprintln!(
        "crash test done: {} acknowledged sales over {kills} kills ({retried} payments retried, {restored_with_lines} \
         baskets restored with lines) in {:?}",
        ledger.acked.len(),
        started.elapsed()
    );
}

/// Each check catches the bug it is there for: fed what that bug would leave behind, it
/// reports it.
#[test]
fn checks_catch_planted_bugs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let j = Journal::open(&path, StoreId(1)).unwrap();
    j.apply_catalog(1, &kassa_protocol::catalog::parse_csv(CATALOG).unwrap()).unwrap();
    j.open_shift(1, "kassir", kassa_protocol::Kopecks(0), "shift", 0).unwrap();
    let milk = j.item_by_sku(&Sku("100001".into())).unwrap().unwrap();
    let mut basket = kassa_protocol::basket::Basket::new(7);
    basket.add(&milk, 2).unwrap();
    let total = basket.totals().unwrap().total;
    let tenders = [kassa_protocol::sale::Tender { kind: kassa_protocol::sale::TenderKind::Cash, amount: total }];
    let (sale, _) = j.commit_sale(1, "kassir", &basket, &tenders, None, "pay-1", 1).unwrap();
    let acked =
        Acked { receipt: sale.receipt_no.clone(), total: total.0, basket_id: 7, lines: vec![("100001".into(), 2)] };
    let mut ledger = Ledger::default();
    ledger.acknowledge("pay-1".into(), acked.clone()).unwrap();
    // The real state passes every check.
    let paid = paid_baskets(&path);
    assert_eq!(paid, BTreeSet::from([7]));
    check_basket(&Restored { id: 8, lines: 2 }, &paid, &ledger).unwrap();
    check_sales(&j, &ledger).unwrap();
    check_stock(&j, &ledger).unwrap();

    // Planted: the paid basket restored (the bug of saving the basket after the sale).
    assert!(check_basket(&Restored { id: 7, lines: 2 }, &paid, &ledger).is_err());
    assert!(check_basket(&Restored { id: 7, lines: 2 }, &BTreeSet::new(), &ledger).is_err(), "from the ledger alone");
    // Planted: a retried key that names another sale (a ledger overwritten by a retry).
    let mut twice = Ledger::default();
    twice.acknowledge("pay-1".into(), acked.clone()).unwrap();
    assert!(twice.acknowledge("pay-1".into(), Acked { receipt: "0001-01-000002".into(), ..acked.clone() }).is_err());
    // Planted: a sale in the journal nobody acknowledged (a second charge), and one
    // acknowledged but missing.
    assert!(check_sales(&j, &Ledger::default()).is_err());
    let mut lost = Ledger::default();
    lost.acknowledge("pay-1".into(), Acked { receipt: "0001-01-000009".into(), ..acked.clone() }).unwrap();
    assert!(check_sales(&j, &lost).is_err());
    // Planted: stock that moved by other than what was acknowledged.
    let mut more = Ledger::default();
    more.acknowledge("pay-1".into(), Acked { lines: vec![("100001".into(), 3)], ..acked }).unwrap();
    assert!(check_stock(&j, &more).is_err());
}
