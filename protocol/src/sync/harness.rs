//! The in-memory connection every sync test runs on, in the manner of quinn's test
//! `Pair`: a store's and HQ's sans-IO cores and what is in flight between them. Each
//! message crosses as the shells send it — encoded in the connection's protocol version,
//! framed, decoded — so one that cannot be encoded in that version, or does not come
//! back equal, fails the test that sent it. The back-to-back tests (`sync::tests`) and
//! the seeded fleet simulation (`sync::sim`, which loses, duplicates and reorders what
//! is in flight and cuts connections) both run on it.

use std::collections::VecDeque;
use std::time::Instant;

use super::{HqSync, StoreSync, SyncError};
use crate::wire::{self, HqMessage, StoreMessage};

/// What the other side receives of `msg` sent in protocol `version`.
pub(crate) fn through_store_codec(version: u32, msg: &StoreMessage) -> StoreMessage {
    let mut d = wire::FrameDecoder::default();
    d.push(
        &wire::encode_store(version, msg).unwrap_or_else(|e| panic!("protocol {version} cannot carry {msg:?}: {e}")),
    );
    d.next_store(version).expect("decodes").expect("a whole frame")
}

pub(crate) fn through_hq_codec(version: u32, msg: &HqMessage) -> HqMessage {
    let mut d = wire::FrameDecoder::default();
    d.push(&wire::encode_hq(version, msg).unwrap_or_else(|e| panic!("protocol {version} cannot carry {msg:?}: {e}")));
    d.next_hq(version).expect("decodes").expect("a whole frame")
}

/// What is in flight on one connection, each way, in order (QUIC's stream; a test may
/// deliver only some, or tamper with the queues).
pub(crate) struct Wire {
    pub version: u32,
    pub to_hq: VecDeque<StoreMessage>,
    pub to_store: VecDeque<HqMessage>,
}

impl Wire {
    pub fn new(version: u32) -> Wire {
        Wire { version, to_hq: VecDeque::new(), to_store: VecDeque::new() }
    }

    /// Sends what the store has to send: queued as it will arrive at HQ.
    pub fn send_from_store(&mut self, store: &mut StoreSync) {
        while let Some(m) = store.poll_transmit() {
            self.to_hq.push_back(through_store_codec(self.version, &m));
        }
    }

    /// Sends what HQ has to send: queued as it will arrive at the store.
    pub fn send_from_hq(&mut self, hq: &mut HqSync) {
        while let Some(m) = hq.poll_transmit() {
            self.to_store.push_back(through_hq_codec(self.version, &m));
        }
    }
}

/// A store and HQ on one connection of protocol `version`.
pub(crate) struct Pair {
    pub store: StoreSync,
    pub hq: HqSync,
    pub wire: Wire,
}

impl Pair {
    /// `store` and `hq` past the handshake: HQ accepts the store with `acked` as its
    /// progress; the events of the handshake are dropped.
    pub fn connected(mut store: StoreSync, mut hq: HqSync, version: u32, acked: u64) -> Pair {
        let mut wire = Wire::new(version);
        wire.send_from_store(&mut store);
        for m in wire.to_hq.drain(..) {
            hq.handle_message(m).expect("a correct Hello");
        }
        hq.accept(acked);
        wire.send_from_hq(&mut hq);
        for m in wire.to_store.drain(..) {
            store.handle_message(Instant::now(), m).expect("a correct Welcome");
        }
        while store.poll_event().is_some() {}
        while hq.poll_event().is_some() {}
        Pair { store, hq, wire }
    }

    /// Sends what the store has to send and delivers everything in flight to HQ.
    pub fn deliver_to_hq(&mut self) -> Result<(), SyncError> {
        self.wire.send_from_store(&mut self.store);
        while let Some(m) = self.wire.to_hq.pop_front() {
            self.hq.handle_message(m)?;
        }
        Ok(())
    }

    /// Sends what HQ has to send and delivers everything in flight to the store.
    pub fn deliver_to_store(&mut self, now: Instant) -> Result<(), SyncError> {
        self.wire.send_from_hq(&mut self.hq);
        while let Some(m) = self.wire.to_store.pop_front() {
            self.store.handle_message(now, m)?;
        }
        Ok(())
    }
}
