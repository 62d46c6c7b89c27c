//! The wire frame decoder driving HQ's side of a store's connection: a byte for the
//! size of the pieces the stream arrives in, a byte for HQ's shell's choices, then the
//! stream. See `kassa_protocol::fuzzing::hq_sync_stream` for what must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kassa_protocol::fuzzing::hq_sync_stream(data));
