//! The wire frame decoder driving HQ's side of a store's connection: a byte for the
//! size of the pieces the stream arrives in, a byte for HQ's shell's choices (one bit of
//! it picks the connection's protocol version, current or previous), then the stream.
//! See `kassa_protocol::fuzzing::hq_sync_stream` for what must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kassa_protocol::fuzzing::hq_sync_stream(data));
