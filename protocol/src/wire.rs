//! The messages between a store and HQ, and their framing.
//!
//! A frame is a 4-byte big-endian length, then the body: one encoding byte and the
//! postcard-encoded message, zstd-compressed when that makes it smaller
//! ([`ENCODING_ZSTD`]). The length is checked against [`FRAME_BYTES_MAX`] before a byte
//! of the body is buffered, and a compressed message must declare its size, which is
//! checked against the same cap before it is decompressed: a hostile peer cannot make
//! us allocate more than that.
//!
//! Why compress: a batch of sales repeats itself (item names, SKUs, prices, the store's
//! own actor in every counter); zstd at level 3 takes a batch of 256 five-line sales
//! from ~98 to ~21 bytes per stock delta, which is what a store on a metered or slow
//! uplink pays for after a day offline. Each frame is compressed on its own, so
//! neither side keeps a compression context per connection (HQ holds a thousand).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::catalog::CatalogItem;
use crate::ids::{ActorId, StoreId};
use crate::loyalty::{Customer, LoyaltyEntry, LoyaltyRules, RightsAnswer, RightsRequest};
use crate::returns::Return;
use crate::sale::Sale;
use crate::stock::{ActorDigest, CounterEntry};

/// Bumped on any incompatible change; peers compare it in the handshake.
/// 2: frames carry an encoding byte (zstd compression).
pub const PROTOCOL_VERSION: u32 = 2;
/// ALPN protocol name; a peer speaking another version fails the TLS handshake.
pub const ALPN: &[u8] = b"kassa-sync/2";
/// Largest message either side accepts, encoded and (if compressed) decompressed.
pub const FRAME_BYTES_MAX: usize = 1 << 20;
/// Outbox entries per batch: large enough that catch-up after a day offline takes few
/// round trips and compresses well, small enough for HQ to apply in a few milliseconds.
pub const BATCH_ENTRIES_MAX: usize = 256;
/// Encoded outbox entries per batch, in bytes: a batch is closed before it would pass
/// this. The largest single entry (a 500-line sale of marked goods with the longest
/// names) is ~400 KiB, so a batch stays below [`FRAME_BYTES_MAX`] whatever it holds.
pub const BATCH_BYTES_MAX: usize = 512 * 1024;
/// Messages shorter than this are sent as they are: compressing an ack gains nothing.
pub const COMPRESS_MIN_BYTES: usize = 512;
/// zstd level: 3 (zstd's default) compresses a batch of 256 sales in ~0.3 ms; higher
/// levels cost several times the CPU for a few bytes per delta.
const ZSTD_LEVEL: i32 = 3;
/// The body is the postcard message as it is.
pub const ENCODING_PLAIN: u8 = 0;
/// The body is a zstd frame (with its content size) of the postcard message.
pub const ENCODING_ZSTD: u8 = 1;
/// Catalog items per page (a catalog item is ~150 bytes encoded).
pub const CATALOG_PAGE_ITEMS_MAX: usize = 1024;
/// Counter entries per message.
pub const COUNTERS_PAGE_MAX: usize = 2048;

/// What a store sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreMessage {
    /// First message on a connection.
    /// `head` is the highest sequence in the store's outbox: HQ shows the backlog.
    Hello { version: u32, actor: ActorId, catalog_version: u64, head: u64 },
    /// Outbox entries in increasing sequence order, and the outbox head.
    Batch { entries: Vec<OutboxEntry>, head: u64 },
    /// The till wants to spend more of a customer's points than the store holds rights
    /// for; HQ answers with [`HqMessage::Rights`].
    RightsRequest(RightsRequest),
    /// Anti-entropy: digests of the counters the store holds for its own stock, per actor
    /// (its own and HQ's). Sent now and then once the outbox is drained.
    Digest { digests: Vec<ActorDigest> },
    /// All of the store's own counter entries, asked for by [`HqMessage::SendCounters`].
    Counters { entries: Vec<CounterEntry> },
}

/// What HQ sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HqMessage {
    /// Answer to `Hello`: who HQ says the store is and how far HQ has its outbox.
    Welcome { version: u32, store: StoreId, acked_seq: u64 },
    /// A catalog snapshot, split into pages; the store applies it when `last` arrives.
    CatalogPage { version: u64, items: Vec<CatalogItem>, last: bool },
    /// Counter entries of other actors (HQ's deliveries) for the store's stock.
    Counters { entries: Vec<CounterEntry> },
    /// HQ has applied and durably stored every outbox entry up to `upto`.
    Ack { upto: u64 },
    /// Stock of the nearby stores HQ lists for this store, as HQ knew it at `as_of_ms`
    /// (HQ's clock), in pages; the store replaces its view when `last` arrives.
    NearbyStock { as_of_ms: i64, entries: Vec<NearbyStock>, last: bool },
    /// The loyalty rules HQ publishes (earn rate, exclusions, share cap, point value);
    /// a store keeps the highest version.
    Rules { version: u64, rules: LoyaltyRules },
    /// HQ's digest of the store's own counters differs from the store's: send them all.
    SendCounters,
    /// HQ's answer to a rights request.
    Rights(RightsAnswer),
    /// Customers and loyalty entries a store asked about or should know.
    Loyalty { customers: Vec<Customer>, entries: Vec<LoyaltyEntry> },
    /// HQ closes the connection and says why.
    Refused { reason: String },
}

/// One SKU's stock at another store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NearbyStock {
    pub store: StoreId,
    pub sku: crate::Sku,
    pub quantity: i64,
}

/// One change in a store's outbox, replicated in sequence order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub seq: u64,
    pub change: Change,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A committed sale with the store's running stock totals after it.
    Sale { sale: Sale, counters: Vec<CounterEntry> },
    /// A committed return with the store's running stock totals after it.
    Return { ret: Return, counters: Vec<CounterEntry> },
    /// A customer issued at this store, and/or loyalty running totals this store wrote
    /// (earned, spent, rights handed over), committed with the sale that caused them.
    Loyalty { customer: Option<Customer>, entries: Vec<LoyaltyEntry> },
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("frame of {0} bytes exceeds the {FRAME_BYTES_MAX}-byte cap")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(#[from] postcard::Error),
    #[error("empty frame")]
    Empty,
    #[error("unknown frame encoding {0}")]
    Encoding(u8),
    #[error("compressed frame: {0}")]
    Compression(String),
}

/// Encodes one message as a length-prefixed frame, compressed if that is smaller.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    let plain = postcard::to_stdvec(msg)?;
    if plain.len() > FRAME_BYTES_MAX {
        return Err(CodecError::TooLarge(plain.len()));
    }
    let compressed = (plain.len() >= COMPRESS_MIN_BYTES)
        .then(|| zstd::bulk::compress(&plain, ZSTD_LEVEL).ok())
        .flatten()
        .filter(|c| c.len() < plain.len());
    let (encoding, payload) = match &compressed {
        Some(c) => (ENCODING_ZSTD, c),
        None => (ENCODING_PLAIN, &plain),
    };
    let body = payload.len() + 1;
    let mut out = Vec::with_capacity(4 + body);
    out.extend_from_slice(&u32::try_from(body).expect("capped").to_be_bytes());
    out.push(encoding);
    out.extend_from_slice(payload);
    Ok(out)
}

/// Decodes one frame body (encoding byte and payload).
fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (&encoding, payload) = body.split_first().ok_or(CodecError::Empty)?;
    match encoding {
        ENCODING_PLAIN => Ok(postcard::from_bytes(payload)?),
        ENCODING_ZSTD => {
            // The declared size is checked before anything is allocated; zstd then
            // refuses to write past it, whatever the frame really holds.
            let size = zstd::zstd_safe::get_frame_content_size(payload)
                .map_err(|_| CodecError::Compression("not a zstd frame".into()))?
                .ok_or_else(|| CodecError::Compression("no content size".into()))?;
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size > FRAME_BYTES_MAX {
                return Err(CodecError::TooLarge(size));
            }
            let plain = zstd::bulk::decompress(payload, size).map_err(|e| CodecError::Compression(e.to_string()))?;
            Ok(postcard::from_bytes(&plain)?)
        }
        other => Err(CodecError::Encoding(other)),
    }
}

/// Reassembles frames from a byte stream that arrives in arbitrary pieces.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `None` if more bytes are needed. After an error the
    /// stream is unusable: the caller closes the connection.
    pub fn decode_next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, CodecError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes(self.buf[..4].try_into().expect("4 bytes")) as usize;
        if len > FRAME_BYTES_MAX {
            return Err(CodecError::TooLarge(len));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let msg = decode_body(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        Ok(Some(msg?))
    }

    /// Bytes buffered but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_survive_any_split() {
        let msgs = vec![
            HqMessage::Ack { upto: 7 },
            HqMessage::Refused { reason: "нет".into() },
            HqMessage::Welcome { version: 1, store: StoreId(3), acked_seq: 99 },
        ];
        let bytes: Vec<u8> = msgs.iter().flat_map(|m| encode(m).unwrap()).collect();
        for split in 0..bytes.len() {
            let mut d = FrameDecoder::default();
            let mut out = Vec::new();
            for chunk in [&bytes[..split], &bytes[split..]] {
                d.push(chunk);
                while let Some(m) = d.decode_next::<HqMessage>().unwrap() {
                    out.push(m);
                }
            }
            assert_eq!(out, msgs);
        }
    }

    #[test]
    fn oversized_length_is_refused_before_buffering() {
        let mut d = FrameDecoder::default();
        d.push(&u32::try_from(FRAME_BYTES_MAX + 1).unwrap().to_be_bytes());
        assert!(matches!(d.decode_next::<HqMessage>(), Err(CodecError::TooLarge(_))));
    }

    #[test]
    fn large_messages_are_compressed_and_come_back_equal() {
        let msg = HqMessage::Refused { reason: "Молоко 3,2% 1 л «Ладога» ".repeat(200) };
        let frame = encode(&msg).unwrap();
        assert_eq!(frame[4], ENCODING_ZSTD);
        assert!(frame.len() < postcard::to_stdvec(&msg).unwrap().len() / 10);
        let mut d = FrameDecoder::default();
        d.push(&frame);
        assert_eq!(d.decode_next::<HqMessage>().unwrap(), Some(msg));
        // Small ones go as they are.
        assert_eq!(encode(&HqMessage::Ack { upto: 1 }).unwrap()[4], ENCODING_PLAIN);
    }

    fn frame_of(encoding: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = u32::try_from(payload.len() + 1).unwrap().to_be_bytes().to_vec();
        f.push(encoding);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn a_compressed_frame_declaring_more_than_the_cap_is_refused_before_decompressing() {
        // 64 MiB of zeros compress to a few kilobytes: a bomb, if we trusted it.
        let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 3).unwrap();
        assert!(bomb.len() < 64 * 1024);
        let mut d = FrameDecoder::default();
        d.push(&frame_of(ENCODING_ZSTD, &bomb));
        assert!(matches!(d.decode_next::<HqMessage>(), Err(CodecError::TooLarge(n)) if n == 64 << 20));
    }

    #[test]
    fn a_compressed_frame_without_its_size_or_of_unknown_encoding_is_refused() {
        // A streaming zstd frame does not declare its content size.
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        std::io::Write::write_all(&mut enc, &postcard::to_stdvec(&HqMessage::Ack { upto: 1 }).unwrap()).unwrap();
        let streamed = enc.finish().unwrap();
        let mut d = FrameDecoder::default();
        d.push(&frame_of(ENCODING_ZSTD, &streamed));
        assert!(matches!(d.decode_next::<HqMessage>(), Err(CodecError::Compression(_))));
        let mut d = FrameDecoder::default();
        d.push(&frame_of(7, &[0]));
        assert!(matches!(d.decode_next::<HqMessage>(), Err(CodecError::Encoding(7))));
        let mut d = FrameDecoder::default();
        d.push(&frame_of(ENCODING_ZSTD, b"not zstd at all"));
        assert!(matches!(d.decode_next::<HqMessage>(), Err(CodecError::Compression(_))));
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut d = FrameDecoder::default();
            d.push(&bytes);
            for _ in 0..8 {
                match d.decode_next::<StoreMessage>() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    }
}
