//! An HQ that takes a store's connection and never answers its `Hello` (an HQ node whose
//! database is down, a hung process): the store does not wait on that connection for
//! ever: after `WELCOME_TIMEOUT` it says so (offline, "unreachable") and connects again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kassa_agent::sync_client::WELCOME_TIMEOUT;
use kassa_tests::{eventually, init_logging};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_not_welcomed_says_so_and_connects_again() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let pki = kassa_hq::pki::Pki::open_or_create(&dir.path().join("hq/pki")).unwrap();
    let config = pki.server_config(&kassa_protocol::wire::SUPPORTED_VERSIONS).unwrap();
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    // Takes each connection and its stream, reads what the store sends, answers nothing.
    let connections = Arc::new(Mutex::new(0usize));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                *counted.lock().unwrap() += 1;
                let Ok((_send, mut recv)) = conn.accept_bi().await else { return };
                let mut buf = vec![0u8; 4096];
                while let Ok(Some(_)) = recv.read(&mut buf).await {}
            });
        }
    });
    let store = kassa_tests::start_relayed_store_at(&pki, addr, dir.path(), 1, 180, Vec::new(), cancel.clone()).await;
    eventually(WELCOME_TIMEOUT + Duration::from_secs(15), "the store to give up on the silent HQ", || async {
        let status = store.agent.status.borrow().clone();
        let said = status.hq.last_error.unwrap_or_default();
        (said.contains("did not answer the store's hello") && *connections.lock().unwrap() >= 2).then_some(())
    })
    .await;
    let status = store.agent.status.borrow().clone();
    assert!(!status.hq.online, "{status:?}");
    assert_eq!(status.hq.error_code, Some("unreachable"));
    cancel.cancel();
}
