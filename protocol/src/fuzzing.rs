//! The bodies of the fuzz targets in `protocol/fuzz` (cargo-fuzz), here so that the
//! normal test suite runs them too: the tests below feed each a few thousand seeded
//! mutations of valid inputs. Not part of the crate's API.
//!
//! Each function takes any bytes and must never panic; the assertions in it are the
//! invariants the rest of the system relies on.

use std::collections::HashSet;

use crate::catalog::{
    parse_csv, CatalogItem, ImportError, Unit, CATALOG_ITEMS_MAX, CSV_HEADER, IMPORT_ERRORS_MAX, NAME_LEN_MAX_CHARS,
    PRICE_KOPECKS_MAX,
};
use crate::ids::{ActorId, StoreId};
use crate::loyalty::{LoyaltyRules, RightsAnswer, POINTS_TOTAL_MAX};
use crate::stock::CounterEntry;
use crate::sync::{HqEvent, HqSync, DIGESTS_MAX};
use crate::wire::{self, Change, FrameDecoder, HqMessage, NearbyStock, BATCH_ENTRIES_MAX};

/// The store whose connection [`hq_sync_stream`] plays HQ's side of (as its
/// certificate would say).
pub const STORE: StoreId = StoreId(1);
/// The shell byte's bit that makes the connection protocol 2 (the previous version,
/// which HQ serves too); otherwise it is the current one.
pub const SHELL_PROTOCOL_2: u8 = 0x40;

/// A connection's bytes as HQ's sync server reads them from a store: the stream arrives
/// in pieces, [`FrameDecoder`] cuts frames, every [`StoreMessage`](wire::StoreMessage) goes to an
/// [`HqSync`], and a shell does what each event asks at once (and now and then fails to
/// apply a batch, as a database can). Whatever the bytes:
/// - nothing panics, and every message HQ sends encodes within the frame cap;
/// - everything handed to the shell to apply or merge was written by the store itself
///   (its records, its actor's counters and loyalty entries), in sequence order
///   with no gap after what HQ holds;
/// - HQ acknowledges only what the shell committed, and never less than before.
///
/// Input: a byte for the size of the pieces, a byte for the shell's choices (among them
/// the connection's protocol version, [`SHELL_PROTOCOL_2`]), then the stream.
#[doc(hidden)]
pub fn hq_sync_stream(data: &[u8]) {
    let [piece, shell, stream @ ..] = data else { return };
    let piece = 1 + usize::from(*piece);
    let version = if shell & SHELL_PROTOCOL_2 != 0 { 2 } else { wire::PROTOCOL_VERSION };
    let mut hq = HqSync::speaking(STORE, version, "0.2.0");
    let mut conn = Connection { shell: *shell, version, actor: None, acked: 0, committed: 0, next: 1, applies: 0 };
    let mut decoder = FrameDecoder::default();
    for chunk in stream.chunks(piece) {
        decoder.push(chunk);
        loop {
            match decoder.next_store(version) {
                Ok(Some(msg)) => {
                    let refused = hq.handle_message(msg).is_err();
                    conn.drive(&mut hq);
                    if refused {
                        // The shell closes the connection; the store was told why.
                        return;
                    }
                }
                Ok(None) => break,
                // A bad frame: the stream is unusable and the connection closes.
                Err(_) => return,
            }
        }
        assert!(decoder.buffered() <= 4 + wire::FRAME_BYTES_MAX, "a frame larger than the cap is never buffered");
    }
}

/// What HQ's shell knows of one connection.
struct Connection {
    shell: u8,
    /// The protocol version of the connection.
    version: u32,
    /// The store's actor, from its Hello.
    actor: Option<ActorId>,
    /// The highest acknowledgement sent.
    acked: u64,
    /// What the shell has durably applied (or found held at Hello).
    committed: u64,
    /// The sequence the next batch to apply must start with.
    next: u64,
    applies: u32,
}

impl Connection {
    /// Does what HQ's sync core asks, as the real shell would (now and then failing to
    /// apply), then checks what it sends.
    fn drive(&mut self, hq: &mut HqSync) {
        while let Some(ev) = hq.poll_event() {
            match ev {
                HqEvent::Hello { actor, .. } => self.hello(hq, actor),
                HqEvent::Apply { actor: a, entries, upto, .. } => self.apply(hq, a, &entries, upto),
                HqEvent::CompareDigests { actor: a, theirs } => {
                    assert!(Some(a) == self.actor && theirs.len() <= DIGESTS_MAX);
                    hq.digests_compared(self.shell & 0x20 != 0);
                }
                HqEvent::MergeCounters { entries } => {
                    let actor = self.actor.expect("only after Hello");
                    assert!(entries.iter().all(|c| c.actor == actor && c.location == STORE && c.is_valid()));
                }
                HqEvent::RightsRequest { actor: a, request } => {
                    assert_eq!(Some(a), self.actor);
                    assert!((0..=POINTS_TOTAL_MAX).contains(&request.points));
                    let answer =
                        RightsAnswer::UnknownCustomer { request_id: request.request_id, customer: request.customer };
                    hq.answer_rights(None, answer);
                }
                HqEvent::FindSale { actor: a, lookup } => {
                    assert_eq!(Some(a), self.actor);
                    hq.answer_sale(lookup.request_id, crate::returns::SaleAnswer::NotFound);
                }
                HqEvent::FindHistory { actor: a, request } => {
                    assert_eq!(Some(a), self.actor);
                    hq.answer_history(request.request_id, None);
                }
                HqEvent::PlaceOrder { actor: a, request } => {
                    assert_eq!(Some(a), self.actor);
                    assert!(request.validate().is_ok(), "decoding checked the request");
                    let answer =
                        crate::orders::OrderAnswer::Refused { code: "not_available".into(), message: "none".into() };
                    hq.answer_order(request.request_id, answer);
                }
            }
        }
        self.check_transmits(hq);
    }

    /// The store said hello: HQ holds some of its outbox already (or none), and offers
    /// what the real shell offers next.
    fn hello(&mut self, hq: &mut HqSync, actor: ActorId) {
        assert_eq!(actor.store, STORE, "a Hello for another store's actor is refused");
        assert!(self.actor.is_none(), "one Hello per connection");
        self.actor = Some(actor);
        // HQ held some of the store's outbox already, or none.
        let held = u64::from(self.shell % 4);
        self.committed = held;
        self.next = held + 1;
        hq.accept(held);
        // What the real shell offers next.
        hq.offer_rules(1, &LoyaltyRules::default());
        let sku = crate::ids::Sku("1".into());
        let item = CatalogItem {
            sku: sku.clone(),
            gtin: None,
            name: "Хлеб".into(),
            category: String::new(),
            price: crate::money::Kopecks(4999),
            vat: crate::catalog::VatRate::Vat10,
            unit: Unit::Piece,
            plu: None,
        };
        hq.offer_catalog(u64::from(self.shell), &[item]);
        hq.offer_nearby_stock(0, &[NearbyStock { store: StoreId(2), sku: sku.clone(), quantity: 1 }]);
        hq.offer_counters(&[CounterEntry { location: STORE, sku, actor: ActorId::HQ, p: 1, n: 0 }]);
    }

    /// A run of the store's outbox to apply: contiguous, the store's own; now and then
    /// the database fails.
    fn apply(&mut self, hq: &mut HqSync, a: ActorId, entries: &[wire::OutboxEntry], upto: u64) {
        assert_eq!(Some(a), self.actor, "only after Hello, as the store's actor");
        assert!(!entries.is_empty() && entries.len() <= BATCH_ENTRIES_MAX);
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.seq, self.next + i as u64, "a contiguous run after what HQ holds");
            match &e.change {
                Change::Sale { sale: crate::sale::Sale { id, .. }, counters }
                | Change::Return { ret: crate::returns::Return { id, .. }, counters } => {
                    assert_eq!(id.store, STORE, "only the store's own records");
                    assert!(counters.iter().all(|c| c.actor == a && c.location == STORE && c.is_valid()));
                }
                Change::Loyalty { entries, .. } => {
                    assert!(entries.iter().all(|l| l.writer() == a && l.check().is_ok()));
                }
                Change::Movement { movement, counters } => {
                    assert_eq!(movement.id.store, STORE, "only the store's own movements");
                    assert!(movement.validate().is_ok(), "decoding checked the movement");
                    assert!(counters.iter().all(|c| c.actor == a && c.location == STORE && c.is_valid()));
                }
                Change::Order { update, counters } => {
                    assert_eq!(update.store, STORE, "only the store's own orders");
                    assert!(counters.iter().all(|c| c.actor == a && c.location == STORE && c.is_valid()));
                }
                Change::OrderPayment { payment } => assert_eq!(payment.store, STORE, "only the store's own payments"),
            }
        }
        assert_eq!(entries.last().map(|e| e.seq), Some(upto));
        self.applies += 1;
        if self.shell & 0x10 != 0 && self.applies % 3 == 0 {
            // The database failed: nothing committed, the store resends.
            hq.handle_apply_failed();
            self.next = self.committed + 1;
        } else {
            self.committed = upto;
            self.next = upto + 1;
            hq.handle_applied(upto);
        }
    }

    /// What HQ sends encodes and decodes back the same; acknowledgements never go back
    /// and never run ahead of what was committed.
    fn check_transmits(&mut self, hq: &mut HqSync) {
        while let Some(msg) = hq.poll_transmit() {
            let frame = wire::encode_hq(self.version, &msg).expect("what HQ sends always encodes");
            let mut back = FrameDecoder::default();
            back.push(&frame);
            let back = back.next_hq(self.version).expect("and decodes").expect("whole");
            match (&back, &msg) {
                // Protocol 2 has no software version; all else comes back as it was sent.
                (HqMessage::Welcome { software_version: None, .. }, HqMessage::Welcome { .. }) if self.version == 2 => {
                    let HqMessage::Welcome { version, store, acked_seq, .. } = msg.clone() else { unreachable!() };
                    assert_eq!(back, HqMessage::Welcome { version, store, acked_seq, software_version: None });
                }
                _ => assert_eq!(back, msg),
            }
            match msg {
                HqMessage::Ack { upto } => {
                    assert!(upto >= self.acked, "acknowledgements never go back");
                    assert!(upto <= self.committed, "HQ acknowledges only what it committed");
                    self.acked = upto;
                }
                HqMessage::Welcome { store, acked_seq, .. } => {
                    assert_eq!((store, acked_seq), (STORE, self.committed));
                    self.acked = acked_seq;
                }
                _ => {}
            }
        }
    }
}

/// A catalog CSV as HQ imports it (`POST /api/catalog`, `kassa-hq catalog import`).
/// Whatever the bytes: nothing panics; an accepted catalog is not empty, within its
/// bounds, its SKUs, GTINs and PLUs unique, and it reads back the same when written out
/// again; a refusal lists at most [`IMPORT_ERRORS_MAX`] rows, in file order.
#[doc(hidden)]
pub fn catalog_csv(data: &[u8]) {
    // HQ takes text; bytes that are not UTF-8 are explored as text all the same.
    let text = String::from_utf8_lossy(data);
    match parse_csv(&text) {
        Ok(items) => {
            assert!(!items.is_empty() && items.len() <= CATALOG_ITEMS_MAX);
            let (mut skus, mut gtins, mut plus) = (HashSet::new(), HashSet::new(), HashSet::new());
            for i in &items {
                assert!(skus.insert(&i.sku), "SKU {} twice", i.sku);
                assert!(i.gtin.is_none_or(|g| gtins.insert(g)), "GTIN twice");
                assert!(i.plu.is_none_or(|p| p <= 99_999 && plus.insert(p)), "PLU twice or too long");
                assert!(i.price.0 >= 1 && i.price <= PRICE_KOPECKS_MAX);
                assert!(!i.name.is_empty() && i.name.chars().count() <= NAME_LEN_MAX_CHARS);
                assert!(i.category.chars().count() <= NAME_LEN_MAX_CHARS);
                assert!(i.unit != Unit::Kilogram || i.plu.is_some() || i.gtin.is_some());
            }
            assert_eq!(parse_csv(&write_csv(&items)).as_ref(), Ok(&items), "a catalog reads back as written");
        }
        Err(ImportError::Rows(rows)) => {
            assert!(!rows.is_empty() && rows.len() <= IMPORT_ERRORS_MAX);
            assert!(rows.windows(2).all(|w| w[0].line <= w[1].line), "rows in file order");
        }
        Err(e @ (ImportError::Header { .. } | ImportError::TooManyItems | ImportError::Empty)) => {
            assert!(!e.to_string().is_empty());
        }
    }
}

/// Writes items in the import format.
fn write_csv(items: &[CatalogItem]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER.split(',')).expect("in memory");
    for i in items {
        w.write_record([
            i.sku.as_str(),
            i.gtin.as_ref().map_or("", |g| g.short()),
            &i.name,
            &i.category,
            &i.price.0.to_string(),
            i.vat.code(),
            i.unit.code(),
            &i.plu.map_or(String::new(), |p| p.to_string()),
        ])
        .expect("in memory");
    }
    String::from_utf8(w.into_inner().expect("in memory")).expect("written from strings")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::basket::BasketLine;
    use crate::catalog::VatRate;
    use crate::ids::Sku;
    use crate::loyalty::{CustomerId, LoyaltyAccount, RightsRequest};
    use crate::money::Kopecks;
    use crate::sale::Sale;
    use crate::seeded::SeededRng;
    use crate::stock::ActorDigest;
    use crate::testing;
    use crate::wire::{OutboxEntry, StoreMessage};

    const ACTOR: ActorId = ActorId { store: STORE, epoch: 1 };

    /// Cases per target: well under a second in a debug build.
    const CASES: u64 = 5_000;

    fn sale(seq: u64, store: StoreId) -> OutboxEntry {
        let sku = Sku("100001".into());
        let line =
            BasketLine { name: "Молоко".into(), vat: VatRate::Vat10, ..testing::line(&sku.0, Kopecks(100)) };
        let sale = Sale { cashier: "kassir".into(), ..testing::sale(store, seq, vec![line]) };
        let counters = vec![CounterEntry { location: STORE, sku, actor: ACTOR, p: 0, n: seq as i64 }];
        OutboxEntry { seq, change: Change::Sale { sale, counters } }
    }

    fn loyalty(seq: u64) -> OutboxEntry {
        let card = CustomerId::parse("00001000000001").unwrap();
        let entry = LoyaltyAccount::new(card).earn(ACTOR, 15).unwrap();
        OutboxEntry { seq, change: Change::Loyalty { customer: None, entries: vec![entry] } }
    }

    /// Valid conversations in protocol `version`: a Hello, batches (in order, resent,
    /// with a gap, one large enough to be compressed), digests, counters, a rights
    /// request; and a few a store must not send.
    fn conversations(version: u32) -> Vec<Vec<u8>> {
        let hello = StoreMessage::Hello {
            version,
            actor: ACTOR,
            catalog_version: 0,
            promotions_version: 0,
            head: 9,
            software_version: Some("0.2.0".into()),
        };
        let batch = |seqs: &[u64]| StoreMessage::Batch {
            entries: seqs.iter().map(|&s| if s % 3 == 0 { loyalty(s) } else { sale(s, STORE) }).collect(),
            head: 9,
        };
        let counter = CounterEntry { location: STORE, sku: Sku("100001".into()), actor: ACTOR, p: 3, n: 1 };
        let digest = ActorDigest { actor: ACTOR, entries: 1, p: 3, n: 1 };
        let rights =
            RightsRequest { request_id: 7, customer: CustomerId::parse("00001000000001").unwrap(), points: 40 };
        let mut good = vec![
            hello.clone(),
            batch(&[1, 2, 3]),
            batch(&[2, 3, 4, 5]),
            batch(&[7, 8]),
            batch(&(6..60).collect::<Vec<_>>()),
            StoreMessage::Digest {
                digests: vec![digest],
                promotions_version: 0,
                price_schedule_version: 0,
                return_limits_version: 0,
                store_keys_upto: 0,
            },
            StoreMessage::Counters { entries: vec![counter.clone()] },
            StoreMessage::RightsRequest(rights),
            batch(&[60, 61]),
        ];
        if version >= 5 {
            good.push(StoreMessage::PlaceOrder(crate::orders::OrderRequest {
                request_id: 3,
                store: StoreId(2),
                lines: vec![(Sku("100001".into()), 2)],
                payment: crate::orders::Payment::AtPickup,
                customer: None,
                phone: None,
                note: String::new(),
                pickup_hours: 72,
            }));
        }
        let foreign = StoreMessage::Batch { entries: vec![sale(1, StoreId(2))], head: 1 };
        let foreign_counter = StoreMessage::Counters { entries: vec![CounterEntry { actor: ActorId::HQ, ..counter }] };
        let mut out = vec![good.clone(), vec![hello.clone(), foreign], vec![hello.clone(), foreign_counter]];
        let other = ActorId { store: StoreId(2), epoch: 1 };
        out.push(vec![StoreMessage::Hello {
            version,
            actor: other,
            catalog_version: 0,
            promotions_version: 0,
            head: 1,
            software_version: Some("0.2.0".into()),
        }]);
        out.push(vec![batch(&[1])]);
        out.push(good.into_iter().rev().collect());
        out.into_iter()
            .map(|msgs| msgs.iter().flat_map(|m| wire::encode_store(version, m).unwrap()).collect::<Vec<u8>>())
            .collect()
    }

    const CATALOG: &str = "sku,gtin,name,category,price_kopecks,vat_percent,unit,plu\n\
        100001,4650001209603,\"Молоко 3,2% 1 л\",Молочные продукты,10690,10,pcs,\n\
        100002,46500014,Хлеб,Хлеб и выпечка,4999,10,pcs,\n\
        100003,,\"Сыр \"\"Российский\"\"\",Молочные продукты,89900,20,kg,00017\n\
        100477,,\"Яблоки, кг\",Весовой товар,18900,10,kg,00001\n\
        A-1_b,04650001209610,Батарейки,Электроника,100000000,none,unit,\n\
        9,,Пакет,,1,0,pcs,99999\n";

    /// Bytes that mean something to the parsers under test.
    const TOKENS: &[&[u8]] = &[
        b",",
        b"\"",
        b"\n",
        b"\r\n",
        b"\xef\xbb\xbf",
        b"0",
        b"-1",
        b"100000001",
        b"9223372036854775808",
        b"kg",
        b"pcs",
        b"none",
        b"00001",
        b"4650001209603",
        b"\x00\x00\x00\x05",
        b"\x01\x28\xb5\x2f\xfd",
        b"\xff\xff\xff\xff",
    ];

    /// The byte spans of each line's fields, cut at commas (quotes ignored).
    fn fields(b: &[u8]) -> Vec<Vec<(usize, usize)>> {
        let (mut lines, mut line, mut start) = (Vec::new(), Vec::new(), 0);
        for (i, &c) in b.iter().enumerate() {
            if c == b',' || c == b'\n' {
                line.push((start, i));
                start = i + 1;
                if c == b'\n' {
                    lines.push(std::mem::take(&mut line));
                }
            }
        }
        line.push((start, b.len()));
        lines.push(line);
        lines
    }

    /// A mutation of `input`: bits flipped, bytes overwritten, inserted or removed, a
    /// token spliced in, a slice repeated, a piece of another seed, or a field replaced
    /// by the same column of a line of another seed (a code or price made to collide);
    /// sometimes several.
    fn mutate(rng: &mut SeededRng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(out.len() as u64 + 1) as usize;
            match rng.below(9) {
                0 if at < out.len() => out[at] ^= 1 << rng.below(8),
                1 if at < out.len() => out[at] = rng.next_u64() as u8,
                2 => out.insert(at, rng.next_u64() as u8),
                3 if at < out.len() => {
                    let end = (at + 1 + rng.below(16) as usize).min(out.len());
                    out.drain(at..end);
                }
                4 => {
                    let token = TOKENS[rng.below(TOKENS.len() as u64) as usize];
                    out.splice(at..at, token.iter().copied());
                }
                5 => {
                    let end = (at + rng.below(64) as usize).min(out.len());
                    let slice = out[at..end].to_vec();
                    out.splice(at..at, slice);
                }
                6 => {
                    let other = &seeds[rng.below(seeds.len() as u64) as usize];
                    let from = rng.below(other.len() as u64 + 1) as usize;
                    out.truncate(at);
                    out.extend_from_slice(&other[from..]);
                }
                7 => {
                    let lines = fields(&out);
                    let line = &lines[rng.below(lines.len() as u64) as usize];
                    let column = rng.below(line.len() as u64) as usize;
                    let (start, end) = line[column];
                    let other = &seeds[rng.below(seeds.len() as u64) as usize];
                    let same_column: Vec<(usize, usize)> =
                        fields(other).iter().filter_map(|l| l.get(column).copied()).collect();
                    if let Some(&(from, to)) = same_column.get(rng.below(same_column.len() as u64) as usize) {
                        out.splice(start..end, other[from..to].iter().copied());
                    }
                }
                _ => out.truncate(at),
            }
        }
        out
    }

    /// Runs `target` over the seeds and [`CASES`] mutations of them, each after `prefix`
    /// random bytes; in most cases the seed's first `keep` bytes are left alone (a
    /// CSV's header, so that the rows get explored).
    fn run(seeds: &[Vec<u8>], prefix: usize, keep: usize, target: fn(&[u8])) {
        let mut rng = SeededRng::new(0x5eed);
        for seed in seeds {
            for p in [0u8, 3, 255] {
                let mut input = vec![p; prefix];
                input.extend_from_slice(seed);
                target(&input);
            }
        }
        for case in 0..CASES {
            let input = match case % 10 {
                // Noise, of any length.
                0 => (0..rng.below(300)).map(|_| rng.next_u64() as u8).collect(),
                _ => {
                    let seed = &seeds[rng.below(seeds.len() as u64) as usize];
                    let mut input: Vec<u8> = (0..prefix).map(|_| rng.next_u64() as u8).collect();
                    let keep = if rng.chance(80) { keep.min(seed.len()) } else { 0 };
                    input.extend_from_slice(&seed[..keep]);
                    input.extend(mutate(&mut rng, &seed[keep..], seeds));
                    input
                }
            };
            target(&input);
        }
    }

    #[test]
    fn hq_sync_survives_mutated_streams() {
        let mut seeds = Vec::new();
        for (version, shell) in [(wire::PROTOCOL_VERSION, 0), (2, SHELL_PROTOCOL_2)] {
            let conversations = conversations(version);
            // The valid conversation goes the whole way: what it carries is applied.
            let mut input = vec![7, shell];
            input.extend_from_slice(&conversations[0]);
            hq_sync_stream(&input);
            seeds.extend(conversations);
        }
        run(&seeds, 2, 0, hq_sync_stream);
    }

    #[test]
    fn catalog_import_survives_mutated_files() {
        assert_eq!(parse_csv(CATALOG).unwrap().len(), 6, "the seed is a valid catalog");
        catalog_csv(CATALOG.as_bytes());
        let seeds = vec![CATALOG.as_bytes().to_vec(), format!("{CSV_HEADER}\n").into_bytes()];
        run(&seeds, 0, CSV_HEADER.len() + 1, catalog_csv);
    }
}
