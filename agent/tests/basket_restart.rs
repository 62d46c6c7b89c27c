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
