//! The messages between a store and HQ, their versions, and their framing.
//!
//! # Versions
//! [`StoreMessage`] and [`HqMessage`] are what the sync state machines reason with; they
//! are not a wire format. What goes on the wire is one of the frozen boundary types of a
//! *protocol version*, chosen per connection by TLS's ALPN (`kassa-sync/N`):
//! - [`v5`] (`kassa-sync/5`, [`PROTOCOL_VERSION`]): the current protocol. Outbox
//!   entries in data format 3 (stock movements: receipts, counts, write-offs,
//!   transfers), `Inbound`: a delivery or transfer HQ tells the store to expect, and
//!   `PromotionsUsed`: the promotions a customer has had (single-use coupons), and
//!   `PriceSchedule`: price changes that take effect at a local date and time; `Order`
//!   and `OrderCancel`: orders for pickup at the store, and what the store did with them.
//! - [`v4`] (`kassa-sync/4`): sales in data format 2 (lines with their promotions), the
//!   store's promotions version in `Hello`, and HQ's promotions in `PromotionsPage`s. A
//!   stock movement has no form in it: a store that recorded one needs HQ on 5.
//! - [`v3`] (`kassa-sync/3`): `Hello` and `Welcome` carry each side's software version,
//!   so that HQ can show which stores still run an old release during a rolling upgrade.
//!   Sales in data format 1 ([`crate::format::v1`]: a line's promotions are left out,
//!   its discount stays); no promotions are sent to such a store.
//! - [`v2`] (`kassa-sync/2`): as release 0.1.0 speaks it; no software version.
//!
//! A store is upgraded before HQ drops its version; HQ serves the current and the two
//! before it. The codec ([`encode_store`],
//! [`decode_store`], [`FrameDecoder::next_store`] and the `hq` counterparts) takes the
//! negotiated version and converts between the domain and that version's types; a value
//! the domain refuses (a GTIN with a wrong check digit, insane loyalty rules) is a
//! [`CodecError::Invalid`], never a panic. The golden frames of every message of every
//! version are under `protocol/tests/fixtures/wire-vN/`; see ARCHITECTURE.md for the
//! compatibility policy (what may change within a version, what needs a new one).
//!
//! # Framing
//! A frame is a 4-byte big-endian length, then the body: one encoding byte and the
//! postcard-encoded message, zstd-compressed when that makes it smaller
//! ([`ENCODING_ZSTD`]). The length is checked against [`FRAME_BYTES_MAX`] before a byte
//! of the body is buffered, and a compressed message must declare its size, which is
//! checked against the same cap before it is decompressed: a hostile peer cannot make
//! us allocate more than that. Framing is the same in every version.
//!
//! Why compress: a batch of sales repeats itself (item names, SKUs, prices, the store's
//! own actor in every counter); zstd at level 3 takes a batch of 256 five-line sales
//! from ~98 to ~21 bytes per stock delta, which is what a store on a metered or slow
//! uplink pays for after a day offline. Each frame is compressed on its own, so
//! neither side keeps a compression context per connection (HQ holds a thousand).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::catalog::CatalogItem;
use crate::format::FormatError;
use crate::ids::{ActorId, StoreId};
use crate::loyalty::{Customer, CustomerId, LoyaltyEntry, LoyaltyRules, RightsAnswer, RightsRequest};
use crate::movements::{Inbound, Movement};
use crate::promotions::definition::Definition;
use crate::returns::Return;
use crate::sale::Sale;
use crate::stock::{ActorDigest, CounterEntry};

pub mod v2;
pub mod v3;
pub mod v4;
pub mod v5;

/// The protocol this code speaks by default. History:
/// 2: frames carry an encoding byte (zstd compression). Release 0.1.0.
/// 3: `Hello` and `Welcome` carry the sender's software version.
/// 4: promotions (sales in data format 2, the promotions version in `Hello`,
///    `PromotionsPage`).
/// 5: stock movements (outbox entries in data format 3) and `Inbound` documents.
pub const PROTOCOL_VERSION: u32 = 5;
/// The versions HQ serves, preferred first: the current one and the ones before it
/// that stores in the field may still speak (a store is upgraded before HQ drops its
/// version; see ARCHITECTURE.md).
pub const SUPPORTED_VERSIONS: [u32; 4] = [5, 4, 3, 2];
/// ALPN name of protocol 5.
pub const ALPN_V5: &[u8] = b"kassa-sync/5";
/// ALPN name of protocol 4.
pub const ALPN_V4: &[u8] = b"kassa-sync/4";
/// ALPN name of protocol 3.
pub const ALPN_V3: &[u8] = b"kassa-sync/3";
/// ALPN name of protocol 2.
pub const ALPN_V2: &[u8] = b"kassa-sync/2";
/// ALPN name of [`PROTOCOL_VERSION`]; a peer speaking none of the offered versions
/// fails the TLS handshake ("no application protocol").
pub const ALPN: &[u8] = ALPN_V5;
/// Longest software version a `Hello` or `Welcome` may carry, in bytes.
pub const SOFTWARE_VERSION_BYTES_MAX: usize = 64;
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
/// Promotion definitions per page. A definition is ~300 bytes of JSON; a page is also
/// closed before its definitions pass [`PROMOTIONS_PAGE_BYTES_MAX`] (one may list
/// thousands of SKUs).
pub const PROMOTIONS_PAGE_MAX: usize = 512;
/// Bytes of definitions' JSON per page.
pub const PROMOTIONS_PAGE_BYTES_MAX: usize = 512 * 1024;
/// Counter entries per message.
pub const COUNTERS_PAGE_MAX: usize = 2048;

/// The ALPN name of a protocol version, `None` for a version this code does not speak.
pub fn alpn(version: u32) -> Option<&'static [u8]> {
    match version {
        5 => Some(ALPN_V5),
        4 => Some(ALPN_V4),
        3 => Some(ALPN_V3),
        2 => Some(ALPN_V2),
        _ => None,
    }
}

/// The protocol version an ALPN name stands for, `None` for one this code does not speak.
pub fn version_of_alpn(name: &[u8]) -> Option<u32> {
    SUPPORTED_VERSIONS.into_iter().find(|&v| alpn(v) == Some(name))
}

// Conversions the version modules share.

fn to<'a, D: 'a, W: From<&'a D>>(items: &'a [D]) -> Vec<W> {
    items.iter().map(Into::into).collect()
}

/// [`to`] for values an older version may have no form for.
fn try_to<'a, D: 'a, W: TryFrom<&'a D, Error = FormatError>>(items: &'a [D]) -> Result<Vec<W>, FormatError> {
    items.iter().map(TryInto::try_into).collect()
}

fn from<W, D: From<W>>(items: Vec<W>) -> Vec<D> {
    items.into_iter().map(Into::into).collect()
}

/// The software version a `Hello` or `Welcome` of protocol `version` (3 on) must carry,
/// checked.
fn software(version: u32, software_version: &Option<String>) -> Result<String, FormatError> {
    let v = software_version.as_deref().ok_or_else(|| FormatError::Invalid {
        what: "software version",
        reason: format!("protocol {version} says which software version sends a Hello or Welcome"),
    })?;
    check_software_version(v)?;
    Ok(v.to_owned())
}

/// The error for a message that protocol `version` has no form for.
fn not_in_version(version: u32, what: &str) -> FormatError {
    FormatError::Invalid { what: "message", reason: format!("protocol {version} does not carry {what}") }
}

/// A software version as `Hello` and `Welcome` carry it: 1 to
/// [`SOFTWARE_VERSION_BYTES_MAX`] printable ASCII characters without spaces
/// (`0.2.0`, `0.3.0-rc.1+g1a2b3c`).
pub fn check_software_version(version: &str) -> Result<(), FormatError> {
    let ok = !version.is_empty()
        && version.len() <= SOFTWARE_VERSION_BYTES_MAX
        && version.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(FormatError::Invalid {
            what: "software version",
            reason: format!("1 to {SOFTWARE_VERSION_BYTES_MAX} printable ASCII characters, not {version:?}"),
        })
    }
}

/// What a store sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreMessage {
    /// First message on a connection: the protocol version (the negotiated one), the
    /// store's actor and catalog version; `head` is the highest sequence in the store's
    /// outbox (HQ shows the backlog); the store's software version (`None` from a
    /// protocol-2 store, which does not say; a protocol-2 frame leaves it out); the
    /// version of the promotions it holds (0 from a store before protocol 4).
    Hello {
        version: u32,
        actor: ActorId,
        catalog_version: u64,
        promotions_version: u64,
        head: u64,
        software_version: Option<String>,
    },
    /// Outbox entries in increasing sequence order, and the outbox head.
    Batch { entries: Vec<OutboxEntry>, head: u64 },
    /// The till wants to spend more of a customer's points than the store holds rights
    /// for; HQ answers with [`HqMessage::Rights`].
    RightsRequest(RightsRequest),
    /// Anti-entropy: digests of the counters the store holds for its own stock, per actor
    /// (its own and HQ's), and the promotions version it holds (protocol 4 on; 0
    /// before), so that HQ sends again a set that did not arrive whole. Sent now and
    /// then once the outbox is drained.
    /// From protocol 5 the digest also says the price schedule version the store holds
    /// (0 before), so that HQ sends a schedule only to a store that lacks it.
    Digest {
        digests: Vec<ActorDigest>,
        promotions_version: u64,
        price_schedule_version: u64,
        /// The version of HQ's return limits the store holds, and the highest store key
        /// number (protocol 5 on; 0 before).
        return_limits_version: u64,
        store_keys_upto: u64,
    },
    /// All of the store's own counter entries, asked for by [`HqMessage::SendCounters`].
    Counters { entries: Vec<CounterEntry> },
    /// A till orders for pickup what its store lacks (the endless aisle, protocol 5 on);
    /// HQ answers with [`HqMessage::OrderPlaced`].
    PlaceOrder(crate::orders::OrderRequest),
    /// A till asks for a sale of any store, to take a return of it (return anywhere,
    /// protocol 5 on); HQ answers with [`HqMessage::SaleFound`].
    FindSale(crate::returns::SaleLookup),
    /// A till asks for a customer's history in every channel (protocol 5 on); HQ
    /// answers with [`HqMessage::History`].
    FindHistory(crate::history::HistoryRequest),
}

/// What HQ sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HqMessage {
    /// Answer to `Hello`: the protocol version, who HQ says the store is, how far HQ has
    /// its outbox, and HQ's software version (`None` in protocol 2).
    Welcome { version: u32, store: StoreId, acked_seq: u64, software_version: Option<String> },
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
    /// A set of promotions, split into pages; `first` is the index of the page's first
    /// definition in the set. The store applies the set when `last` arrives whole (every
    /// page in order) and newer than its own (protocol 4 on).
    PromotionsPage { version: u64, first: u32, definitions: Vec<Definition>, last: bool },
    /// A delivery or a transfer the store is to receive (protocol 5 on). HQ sends every
    /// open one on connect, when one is created, and after each digest, until the
    /// store's receipt of it arrives; the store keeps each once.
    Inbound(Inbound),
    /// The promotions a customer has had anywhere (protocol 5 on), sent with HQ's answer
    /// to a lookup, so that a single-use coupon is honoured once per customer across
    /// stores; the store adds them to what it knows (a grow-only set).
    PromotionsUsed { customer: CustomerId, promotions: Vec<u32> },
    /// The price changes HQ scheduled (protocol 5 on), whole, versioned: the store keeps
    /// the highest version. Sent on connect and when HQ publishes a new one.
    PriceSchedule { version: u64, changes: Vec<crate::price_schedule::ScheduledPrice> },
    /// An order for pickup at the store (protocol 5 on). HQ sends every order the store
    /// has not yet accepted on connect, when one is placed and after each digest; the
    /// store keeps each once (by its id) and accepts it through its outbox.
    Order(crate::orders::Order),
    /// HQ cancels an order (protocol 5 on); sent until the store's final state for it
    /// arrives. A store that already handed the order over ignores it (the handover
    /// stands; see [`crate::orders`]).
    OrderCancel { order: crate::orders::OrderId },
    /// HQ's answer to a till's order (protocol 5 on): the order placed, or why not.
    OrderPlaced { request_id: u64, answer: crate::orders::OrderAnswer },
    /// HQ's answer to a till's [`StoreMessage::FindSale`] (protocol 5 on).
    SaleFound { request_id: u64, answer: crate::returns::SaleAnswer },
    /// HQ's limits on offline returns of other stores' receipts, and the stores' keys
    /// the store lacks (protocol 5 on), after a digest that says the store holds older.
    ReturnTerms(crate::returns::ReturnTerms),
    /// HQ's answer to a till's [`StoreMessage::FindHistory`] (protocol 5 on): `None` for a
    /// card HQ does not know.
    History { request_id: u64, history: Option<crate::history::CustomerHistory> },
}

// The three types below are domain types too; their boundary forms are in
// `format::v1`, and nothing encodes them directly.

/// One SKU's stock at another store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearbyStock {
    pub store: StoreId,
    pub sku: crate::Sku,
    pub quantity: i64,
}

/// One change in a store's outbox, replicated in sequence order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    pub seq: u64,
    pub change: Change,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A committed sale with the store's running stock totals after it.
    Sale { sale: Sale, counters: Vec<CounterEntry> },
    /// A committed return with the store's running stock totals after it.
    Return { ret: Return, counters: Vec<CounterEntry> },
    /// A customer issued at this store, and/or loyalty running totals this store wrote
    /// (earned, spent, rights handed over), committed with the sale that caused them.
    Loyalty { customer: Option<Customer>, entries: Vec<LoyaltyEntry> },
    /// A stock movement (receipt, count, write-off, transfer) with the store's running
    /// stock totals after it (protocol 5 on).
    Movement { movement: Movement, counters: Vec<CounterEntry> },
    /// What happened to an order at its pickup store: accepted, picked, ready, handed
    /// over (with the store's running stock totals after it), expired or cancelled
    /// (protocol 5 on).
    Order { update: crate::orders::OrderUpdate, counters: Vec<CounterEntry> },
    /// The ordering till's word on an order it placed to be paid there: paid (the order
    /// then reaches its pickup store) or abandoned (protocol 5 on).
    OrderPayment { payment: crate::orders::OrderPayment },
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
    #[error("protocol version {0} is not spoken here (this code speaks {SUPPORTED_VERSIONS:?})")]
    Version(u32),
    /// The frame decoded, but a value in it is not valid (or a message to send has no
    /// form in the version).
    #[error("invalid message: {0}")]
    Invalid(#[from] FormatError),
}

/// Encodes what a store sends as a length-prefixed frame of protocol `version`.
pub fn encode_store(version: u32, msg: &StoreMessage) -> Result<Vec<u8>, CodecError> {
    match version {
        5 => encode_frame(&v5::StoreMessage::try_from(msg)?),
        4 => encode_frame(&v4::StoreMessage::try_from(msg)?),
        3 => encode_frame(&v3::StoreMessage::try_from(msg)?),
        2 => encode_frame(&v2::StoreMessage::try_from(msg)?),
        other => Err(CodecError::Version(other)),
    }
}

/// Encodes what HQ sends as a length-prefixed frame of protocol `version`.
pub fn encode_hq(version: u32, msg: &HqMessage) -> Result<Vec<u8>, CodecError> {
    match version {
        5 => encode_frame(&v5::HqMessage::try_from(msg)?),
        4 => encode_frame(&v4::HqMessage::try_from(msg)?),
        3 => encode_frame(&v3::HqMessage::try_from(msg)?),
        2 => encode_frame(&v2::HqMessage::try_from(msg)?),
        other => Err(CodecError::Version(other)),
    }
}

/// Decodes the body of a frame (encoding byte and payload) a store sent in protocol
/// `version`.
pub fn decode_store(version: u32, body: &[u8]) -> Result<StoreMessage, CodecError> {
    match version {
        5 => Ok(decode_body::<v5::StoreMessage>(body)?.try_into()?),
        4 => Ok(decode_body::<v4::StoreMessage>(body)?.try_into()?),
        3 => Ok(decode_body::<v3::StoreMessage>(body)?.try_into()?),
        2 => Ok(decode_body::<v2::StoreMessage>(body)?.try_into()?),
        other => Err(CodecError::Version(other)),
    }
}

/// Decodes the body of a frame (encoding byte and payload) HQ sent in protocol
/// `version`.
pub fn decode_hq(version: u32, body: &[u8]) -> Result<HqMessage, CodecError> {
    match version {
        5 => Ok(decode_body::<v5::HqMessage>(body)?.try_into()?),
        4 => Ok(decode_body::<v4::HqMessage>(body)?.try_into()?),
        3 => Ok(decode_body::<v3::HqMessage>(body)?.try_into()?),
        2 => Ok(decode_body::<v2::HqMessage>(body)?.try_into()?),
        other => Err(CodecError::Version(other)),
    }
}

/// Frames one boundary message, compressed if that is smaller.
fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    let plain = postcard::to_stdvec(msg)?;
    if plain.len() > FRAME_BYTES_MAX {
        return Err(CodecError::TooLarge(plain.len()));
    }
    let compressed = (plain.len() >= COMPRESS_MIN_BYTES)
        .then(|| with_compressor(|z| z.compress(&plain).ok()))
        .flatten()
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

thread_local! {
    /// A zstd context per thread, made once: making one for each frame (megabytes of
    /// tables set up and freed) was a tenth of HQ's time serving thousands of stores.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// `f` with this thread's compressor; `None` if zstd cannot make one.
fn with_compressor<T>(f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> T) -> Option<T> {
    COMPRESSOR.with_borrow_mut(|slot| {
        if slot.is_none() {
            *slot = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        slot.as_mut().map(f)
    })
}

/// `f` with this thread's decompressor; `None` if zstd cannot make one.
fn with_decompressor<T>(f: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> T) -> Option<T> {
    DECOMPRESSOR.with_borrow_mut(|slot| {
        if slot.is_none() {
            *slot = zstd::bulk::Decompressor::new().ok();
        }
        slot.as_mut().map(f)
    })
}

/// Decodes one frame body (encoding byte and payload) into a boundary message.
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
            let plain = with_decompressor(|z| z.decompress(payload, size))
                .ok_or_else(|| CodecError::Compression("no zstd context".into()))?
                .map_err(|e| CodecError::Compression(e.to_string()))?;
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

    /// The next whole message a store sent in protocol `version`, `None` if more bytes
    /// are needed. After an error the stream is unusable: the caller closes the
    /// connection.
    pub fn next_store(&mut self, version: u32) -> Result<Option<StoreMessage>, CodecError> {
        self.next_with(|body| decode_store(version, body))
    }

    /// The next whole message HQ sent in protocol `version`; see [`Self::next_store`].
    pub fn next_hq(&mut self, version: u32) -> Result<Option<HqMessage>, CodecError> {
        self.next_with(|body| decode_hq(version, body))
    }

    fn next_with<T>(&mut self, decode: impl FnOnce(&[u8]) -> Result<T, CodecError>) -> Result<Option<T>, CodecError> {
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
        let msg = decode(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        Ok(Some(msg?))
    }

    /// Bytes buffered but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests;
