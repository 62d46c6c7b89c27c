//! Crash test: a real `kassa-agent` process is killed with SIGKILL at random moments
//! while a driver sells through its HTTP API; after every restart the journal must hold
//! every sale the API acknowledged exactly once, the hash chain must verify, receipt
//! numbers must have no gaps and the stock counters must equal the sum of the sales.
//!
//! `KASSA_CRASH_KILLS=N` sets the number of kills (200 by default);
//! `KASSA_CRASH_SEED=S` replays a run.

use std::collections::{BTreeMap, HashSet};
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

#[derive(Default)]
struct Ledger {
    /// Acknowledged sales: idempotency key → (receipt number, total).
    acked: BTreeMap<String, (String, i64)>,
    /// Keys whose outcome is unknown (the agent died while paying).
    in_doubt: Vec<String>,
}

async fn post(client: &reqwest::Client, url: String, token: &str, body: Value) -> Result<(u16, Value), reqwest::Error> {
    let resp = client.post(url).bearer_auth(token).json(&body).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// Sells until the request fails (the agent was killed).
async fn sell(
    client: reqwest::Client,
    base: String,
    token: String,
    mut rng: Rng,
    gtins: Vec<String>,
    ledger: &mut Ledger,
) {
    for n in 0.. {
        let lines = 1 + rng.below(3);
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
                Ok((200, _)) => {}
                Ok((status, body)) => panic!("scan refused: {status} {body}"),
                Err(_) => return,
            }
        }
        let key = format!("pay-{}", rng.next_u64());
        ledger.in_doubt.push(key.clone());
        let pay = json!({ "idempotency_key": key, "tenders": [{ "kind": "cash", "amount_kopecks": 10_000_000 }] });
        match post(&client, format!("{base}/api/pay"), &token, pay).await {
            Ok((200, body)) => {
                ledger.in_doubt.pop();
                let sale = &body["sale"];
                ledger
                    .acked
                    .insert(key, (sale["receipt_no"].as_str().unwrap().to_owned(), sale["total"].as_i64().unwrap()));
            }
            Ok((status, body)) => panic!("pay refused: {status} {body}"),
            Err(_) => return,
        }
    }
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

fn check(journal_path: &Path, ledger: &Ledger, attempts: usize) {
    let j = Journal::open(journal_path, StoreId(1)).unwrap();
    let report = j.verify().unwrap();
    assert!(report.ok(), "journal does not verify after a crash: {report:?}");
    let (sales, _) = j.docs_count().unwrap();
    assert!(
        sales as usize >= ledger.acked.len(),
        "acknowledged sales lost: {} in journal, {} acknowledged",
        sales,
        ledger.acked.len()
    );
    assert!(sales as usize <= ledger.acked.len() + attempts, "more sales than attempts");
    let mut seen = HashSet::new();
    for (key, (receipt, total)) in &ledger.acked {
        let seq =
            j.find_doc(receipt).unwrap().unwrap_or_else(|| panic!("acknowledged sale {receipt} ({key}) is missing"));
        let sale = j.sale(seq).unwrap().expect("a sale");
        assert_eq!(sale.total.0, *total, "sale {receipt} changed");
        assert!(seen.insert(seq), "two acknowledgements for one sale {receipt}");
    }
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
    let mut attempts = 0;
    let started = Instant::now();
    for kill in 0..kills {
        let (mut child, addr) = start(&config);
        let base = addr;
        let token = login(&client, &base).await;
        // A pay whose answer was lost: retrying its key gives the sale it made, or — if
        // it never committed — pays the basket the agent restored now; either way one
        // sale per key (the check below finds every acknowledged sale exactly once).
        for key in std::mem::take(&mut ledger.in_doubt) {
            attempts += 1;
            let pay = json!({ "idempotency_key": key, "tenders": [{ "kind": "cash", "amount_kopecks": 10_000_000 }] });
            let (status, body) = post(&client, format!("{base}/api/pay"), &token, pay).await.unwrap();
            match status {
                200 => {
                    let sale = &body["sale"];
                    ledger.acked.insert(
                        key,
                        (sale["receipt_no"].as_str().unwrap().to_owned(), sale["total"].as_i64().unwrap()),
                    );
                }
                422 => assert_eq!(body["error"], "empty_basket", "{body}"),
                _ => panic!("retry: {status} {body}"),
            }
        }
        let life = Duration::from_millis(rng.below(120));
        let seller = {
            let (client, base, token, gtins) = (client.clone(), base.clone(), token.clone(), gtins.clone());
            let sub_rng = Rng::new(rng.next_u64());
            let mut local = Ledger::default();
            tokio::spawn(async move {
                sell(client, base, token, sub_rng, gtins, &mut local).await;
                local
            })
        };
        tokio::time::sleep(life).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let local = seller.await.unwrap();
        attempts += local.acked.len() + local.in_doubt.len();
        ledger.acked.extend(local.acked);
        ledger.in_doubt.extend(local.in_doubt);
        check(&journal_path, &ledger, attempts);
        if kill % 50 == 49 {
            eprintln!("  {} kills, {} acknowledged sales, {:?}", kill + 1, ledger.acked.len(), started.elapsed());
        }
    }
    // Stock counters equal the sum of the committed sales (verify checks the same from
    // the chain; here from the acknowledged sales' lines, independently).
    let j = Journal::open(&journal_path, StoreId(1)).unwrap();
    let mut sold: BTreeMap<String, i64> = BTreeMap::new();
    let (sales, _) = j.docs_count().unwrap();
    for seq in 1..=sales {
        for l in j.sale(seq).unwrap().expect("sale seqs are dense").lines {
            *sold.entry(l.sku.0).or_default() += l.quantity;
        }
    }
    for (sku, q) in &sold {
        assert_eq!(j.stock(&Sku(sku.clone())).unwrap(), -q, "stock of {sku}");
    }
    assert!(!ledger.acked.is_empty(), "the driver never got a sale through");
    eprintln!(
        "crash test done: {} acknowledged sales over {kills} kills in {:?}",
        ledger.acked.len(),
        started.elapsed()
    );
}
