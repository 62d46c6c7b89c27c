//! The messages between a store and HQ, and their framing.
//!
//! A frame is a 4-byte big-endian length followed by a postcard-encoded message. The
//! length is checked against [`FRAME_BYTES_MAX`] before a byte of the body is buffered,
//! so a hostile peer cannot make us allocate more than that.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::catalog::CatalogItem;
use crate::ids::{ActorId, StoreId};
use crate::loyalty::{Customer, LoyaltyEntry, LoyaltyRules, RightsAnswer, RightsRequest};
use crate::returns::Return;
use crate::sale::Sale;
use crate::stock::{ActorDigest, CounterEntry};

/// Bumped on any incompatible change; peers compare it in the handshake.
pub const PROTOCOL_VERSION: u32 = 1;
/// ALPN protocol name; a peer speaking another version fails the TLS handshake.
pub const ALPN: &[u8] = b"kassa-sync/1";
/// Largest frame either side accepts: a batch of large sales fits with room to spare.
pub const FRAME_BYTES_MAX: usize = 1 << 20;
/// Outbox entries per batch: small enough to stay far below the frame cap, large
/// enough that catch-up after a day offline takes few round trips.
pub const BATCH_ENTRIES_MAX: usize = 128;
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
}

/// Encodes one message as a length-prefixed frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = postcard::to_extend(msg, vec![0u8; 4])?;
    let body = out.len() - 4;
    if body > FRAME_BYTES_MAX {
        return Err(CodecError::TooLarge(body));
    }
    out[..4].copy_from_slice(&u32::try_from(body).expect("capped").to_be_bytes());
    Ok(out)
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
        let msg = postcard::from_bytes(&self.buf[4..4 + len]);
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
