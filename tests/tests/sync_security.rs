//! HQ refuses anyone who is not an enrolled store, and a store writing as another
//! store — over real QUIC with TLS on loopback — and writes nothing for them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kassa_hq::{HqConfig, RunningHq};
use kassa_protocol::stock::CounterEntry;
use kassa_protocol::testing;
use kassa_protocol::wire::{self, Change, FrameDecoder, HqMessage, OutboxEntry, StoreMessage, PROTOCOL_VERSION};
use kassa_protocol::{ActorId, Kopecks, Sku, StoreId};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

async fn start_hq(dir: &Path) -> (RunningHq, CancellationToken) {
    let cancel = CancellationToken::new();
    let any = "127.0.0.1:0".parse().unwrap();
    let hq = kassa_hq::start(HqConfig::new(dir.to_owned(), any, any), cancel.clone()).await.unwrap();
    (hq, cancel)
}

/// A QUIC client trusting `ca`, presenting `identity` (a dir with store.crt/store.key) if given.
fn client(ca: &Path, identity: Option<&Path>) -> quinn::Endpoint {
    client_offering(ca, identity, wire::ALPN)
}

/// [`client`], offering the ALPN name `alpn`.
fn client_offering(ca: &Path, identity: Option<&Path>, alpn: &[u8]) -> quinn::Endpoint {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some(dir) => {
            let certs = CertificateDer::pem_file_iter(dir.join("store.crt")).unwrap().map(|c| c.unwrap()).collect();
            builder.with_client_auth_cert(certs, PrivateKeyDer::from_pem_file(dir.join("store.key")).unwrap()).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

/// Connects, sends `messages` (raw frames), and returns what HQ answered before it
/// closed the stream, or the connection error.
async fn talk(endpoint: &quinn::Endpoint, hq: &RunningHq, frames: Vec<Vec<u8>>) -> Result<Vec<HqMessage>, String> {
    let conn = endpoint.connect(hq.quic_addr, "kassa-hq").unwrap().await.map_err(|e| e.to_string())?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    for f in frames {
        send.write_all(&f).await.map_err(|e| e.to_string())?;
    }
    let mut decoder = FrameDecoder::default();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    let read = async {
        loop {
            match recv.read(&mut buf).await {
                Ok(Some(n)) => {
                    decoder.push(&buf[..n]);
                    while let Ok(Some(m)) = decoder.next_hq(PROTOCOL_VERSION) {
                        let refused = matches!(m, HqMessage::Refused { .. });
                        out.push(m);
                        if refused {
                            return;
                        }
                    }
                }
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), read).await;
    Ok(out)
}

fn hello(store: u32) -> Vec<u8> {
    encode(&StoreMessage::Hello {
        version: PROTOCOL_VERSION,
        actor: ActorId { store: StoreId(store), epoch: 1 },
        catalog_version: 0,
        promotions_version: 0,
        head: 0,
        software_version: Some("0.2.0".into()),
    })
}

/// A frame of the current protocol.
fn encode(msg: &StoreMessage) -> Vec<u8> {
    wire::encode_store(PROTOCOL_VERSION, msg).unwrap()
}

fn sale_entry(store: u32, counter_location: u32) -> OutboxEntry {
    let line = kassa_protocol::basket::BasketLine {
        name: "Молоко".into(),
        vat: kassa_protocol::catalog::VatRate::Vat10,
        ..testing::line("100001", Kopecks(100))
    };
    // The receipt says store 2 whatever the sale's store (a store lying about itself).
    let sale = kassa_protocol::sale::Sale {
        receipt_no: "0002-01-000001".into(),
        cashier: "x".into(),
        ..testing::sale(StoreId(store), 1, vec![line])
    };
    let counter = CounterEntry {
        location: StoreId(counter_location),
        sku: Sku("100001".into()),
        actor: ActorId { store: StoreId(1), epoch: 1 },
        p: 0,
        n: 1,
    };
    OutboxEntry { seq: 1, change: Change::Sale { sale, counters: vec![counter] } }
}

fn nothing_written(hq: &RunningHq) {
    let db = &hq.shared.db;
    assert!(db.sales(StoreId(1), 0, 10).unwrap().is_empty(), "a sale of store 1 was written");
    assert!(db.sales(StoreId(2), 0, 10).unwrap().is_empty(), "a sale of store 2 was written");
    assert!(db.stock(&Sku("100001".into())).unwrap().is_empty(), "stock was written");
    assert!(db.stores().unwrap().iter().all(|s| s.store != 2), "store 2 was registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hq_refuses_strangers_and_impostors_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (hq, cancel) = start_hq(&dir.path().join("hq")).await;
    let ca = dir.path().join("hq/pki/ca.crt");
    let store1 = dir.path().join("store1");
    hq.pki.enroll(StoreId(1), &store1).unwrap();

    // 1. No client certificate: the TLS handshake fails.
    let anonymous = client(&ca, None);
    let result = talk(&anonymous, &hq, vec![hello(1)]).await;
    assert!(
        result.is_err() || result.as_ref().unwrap().is_empty(),
        "a client without certificate was served: {result:?}"
    );

    // 2. A certificate from another CA: refused.
    let other = kassa_hq::pki::Pki::open_or_create(&dir.path().join("other-ca")).unwrap();
    let forged = dir.path().join("forged");
    other.enroll(StoreId(1), &forged).unwrap();
    let impostor = client(&ca, Some(&forged));
    let result = talk(&impostor, &hq, vec![hello(1)]).await;
    assert!(
        result.is_err() || result.as_ref().unwrap().is_empty(),
        "a certificate of another CA was accepted: {result:?}"
    );

    // 2b. A valid store offering a protocol version HQ does not speak: the TLS handshake
    // fails ("no application protocol").
    let ancient = client_offering(&ca, Some(&store1), b"kassa-sync/1");
    let result = talk(&ancient, &hq, vec![hello(1)]).await;
    assert!(
        matches!(&result, Err(e) if e.contains("no application protocol") || e.contains("crypto")),
        "a store of an unknown protocol was served: {result:?}"
    );

    // 3. A valid store 1 saying it is store 2's actor: refused with a reason.
    let store = client(&ca, Some(&store1));
    let answer = talk(&store, &hq, vec![hello(2)]).await.unwrap();
    assert!(
        matches!(answer.last(), Some(HqMessage::Refused { reason }) if reason.contains("store 0001")),
        "{answer:?}"
    );

    // 4. A valid store 1 sending store 2's sale, or a counter of store 2's stock.
    for entry in [sale_entry(2, 1), sale_entry(1, 2)] {
        let batch = encode(&StoreMessage::Batch { entries: vec![entry], head: 1 });
        let answer = talk(&store, &hq, vec![hello(1), batch]).await.unwrap();
        assert!(matches!(answer.first(), Some(HqMessage::Welcome { .. })), "{answer:?}");
        assert!(matches!(answer.last(), Some(HqMessage::Refused { .. })), "{answer:?}");
    }

    // 4b. Anti-entropy counters for another store's stock.
    let Change::Sale { counters, .. } = sale_entry(1, 2).change else { unreachable!() };
    let counters = encode(&StoreMessage::Counters { entries: counters });
    let answer = talk(&store, &hq, vec![hello(1), counters]).await.unwrap();
    assert!(
        matches!(answer.last(), Some(HqMessage::Refused { reason }) if reason.contains("store 0002")),
        "{answer:?}"
    );

    // 5. Garbage and an oversized length: the connection is closed.
    let answer = talk(&store, &hq, vec![vec![0, 0, 0, 3, 0xff, 0xff, 0xff]]).await.unwrap();
    assert!(matches!(answer.last(), Some(HqMessage::Refused { .. }) | None), "{answer:?}");
    let answer = talk(&store, &hq, vec![u32::MAX.to_be_bytes().to_vec()]).await.unwrap();
    assert!(answer.iter().all(|m| matches!(m, HqMessage::Refused { .. })), "{answer:?}");

    nothing_written(&hq);
    // The honest store is still served afterwards.
    let answer = talk(&store, &hq, vec![hello(1)]).await.unwrap();
    assert!(matches!(answer.first(), Some(HqMessage::Welcome { store: StoreId(1), .. })), "{answer:?}");
    cancel.cancel();
    hq.wait().await;
}

/// A record HQ cannot apply is parked and listed; the records behind it are applied and
/// acknowledged all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unappliable_records_are_parked_without_blocking_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (hq, cancel) = start_hq(&dir.path().join("hq")).await;
    let store1 = dir.path().join("store1");
    hq.pki.enroll(StoreId(1), &store1).unwrap();
    let store = client(&dir.path().join("hq/pki/ca.crt"), Some(&store1));

    let mut bad = sale_entry(1, 1);
    let Change::Sale { sale, .. } = &mut bad.change else { unreachable!() };
    sale.total = Kopecks(1); // lines say 1,00 ₽ = 100 kopecks
    let mut good = sale_entry(1, 1);
    good.seq = 2;
    let Change::Sale { sale, counters } = &mut good.change else { unreachable!() };
    sale.id.seq = 2;
    sale.receipt_no = "0001-01-000002".into();
    counters[0].n = 2;
    let batch = encode(&StoreMessage::Batch { entries: vec![bad, good], head: 2 });
    let answer = talk(&store, &hq, vec![hello(1), batch]).await.unwrap();
    assert!(answer.iter().any(|m| matches!(m, HqMessage::Ack { upto: 2 })), "{answer:?}");

    let parked = hq.shared.db.parked().unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!((parked[0].store, parked[0].seq), (1, 1));
    assert!(parked[0].reason.contains("add up"), "{}", parked[0].reason);
    let sales = hq.shared.db.sales(StoreId(1), 0, 10).unwrap();
    assert_eq!(sales.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![2]);
    let (_, listed) = kassa_tests::HqApi::admin(&hq).await.get("/api/parked").await;
    assert_eq!(listed["parked"][0]["seq"], 1);
    cancel.cancel();
    hq.wait().await;
}
