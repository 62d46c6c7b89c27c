//! The open basket survives an agent restart: it is not a sale, but a cashier should
//! not have to rescan a trolley because the store server rebooted.

use std::time::Duration;

use kassa_agent::config::HqLink;
use kassa_agent::till::TillEvent;
use kassa_agent::AgentConfig;
use kassa_protocol::{Sku, StoreId};
use tokio_util::sync::CancellationToken;

fn config(dir: &std::path::Path) -> AgentConfig {
    AgentConfig {
        store: 1,
        terminal: 1,
        data_dir: dir.to_owned(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        utc_offset_minutes: 180,
        // Not enrolled: the agent sells offline, which is all this test needs.
        hq: HqLink {
            addr: "127.0.0.1:9".parse().unwrap(),
            server_name: "kassa-hq".into(),
            pki_dir: dir.join("none"),
            protocol_version: None,
            fallback_addrs: Vec::new(),
        },
        scan_rules: Default::default(),
        scanner: None,
        printer: None,
        metrics_token: None,
        limits: Default::default(),
    }
}

fn lines(ev: &TillEvent) -> Vec<(String, i64)> {
    match ev {
        TillEvent::Basket { basket, .. } => basket.lines.iter().map(|l| (l.sku.0.clone(), l.quantity)).collect(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_basket_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = kassa_agent::Journal::open(&dir.path().join("journal.sqlite"), StoreId(1)).unwrap();
        let csv = include_str!("../../data/catalog.csv");
        j.apply_catalog(1, &kassa_protocol::catalog::parse_csv(csv).unwrap()).unwrap();
    }
    let cancel = CancellationToken::new();
    let agent = kassa_agent::start(config(dir.path()), cancel.clone()).await.unwrap();
    agent.till.add_sku(Sku("100001".into()), 3, "k1").await.unwrap();
    agent.till.add_sku(Sku("100002".into()), 1, "k2").await.unwrap();
    // The saver runs beside the till; give it a moment before pulling the plug.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    agent.wait().await;

    let cancel = CancellationToken::new();
    let agent = kassa_agent::start(config(dir.path()), cancel.clone()).await.unwrap();
    let ev = agent.till.basket_event().await;
    assert_eq!(lines(&ev), vec![("100001".to_owned(), 3), ("100002".to_owned(), 1)]);
    // Voided, it stays empty after the next restart too.
    agent
        .till
        .void(
            &kassa_agent::journal::User { id: "x".into(), name: "x".into(), role: kassa_agent::journal::Role::Cashier },
            "v1",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    agent.wait().await;
    let cancel = CancellationToken::new();
    let agent = kassa_agent::start(config(dir.path()), cancel.clone()).await.unwrap();
    assert!(lines(&agent.till.basket_event().await).is_empty());
    cancel.cancel();
    agent.wait().await;
}

/// A parked basket survives a restart too, and comes back whole with an id above every
/// basket that ended since (so that it is restored after the next restart as well).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_basket_survives_a_restart_and_is_recalled() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = kassa_agent::Journal::open(&dir.path().join("journal.sqlite"), StoreId(1)).unwrap();
        let csv = include_str!("../../data/catalog.csv");
        j.apply_catalog(1, &kassa_protocol::catalog::parse_csv(csv).unwrap()).unwrap();
    }
    let cashier =
        kassa_agent::journal::User { id: "x".into(), name: "x".into(), role: kassa_agent::journal::Role::Cashier };
    let cancel = CancellationToken::new();
    let agent = kassa_agent::start(config(dir.path()), cancel.clone()).await.unwrap();
    agent.till.add_sku(Sku("100001".into()), 2, "k1").await.unwrap();
    agent.till.park("p1").await.unwrap();
    assert!(lines(&agent.till.basket_event().await).is_empty(), "a new basket after parking");
    // Another basket begun and voided meanwhile: it ends, with a higher id.
    agent.till.add_sku(Sku("100002".into()), 1, "k2").await.unwrap();
    agent.till.void(&cashier, "v1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    agent.wait().await;

    let cancel = CancellationToken::new();
    let agent = kassa_agent::start(config(dir.path()), cancel.clone()).await.unwrap();
    let parked = agent.till.parked().await.unwrap();
    assert_eq!(parked.len(), 1, "still parked after the restart");
    let ev = agent.till.recall(parked[0].slot, "r1").await.unwrap();
    assert_eq!(lines(&ev), vec![("100001".to_owned(), 2)]);
    assert!(agent.till.parked().await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    agent.wait().await;
    // Recalled and not yet paid: the open basket after the next restart.
    let cancel = CancellationToken::new();
    let agent = kassa_agent::start(config(dir.path()), cancel.clone()).await.unwrap();
    assert_eq!(lines(&agent.till.basket_event().await), vec![("100001".to_owned(), 2)]);
    cancel.cancel();
    agent.wait().await;
}
