//! The catalog CSV import, over any bytes. See `kassa_protocol::fuzzing::catalog_csv`
//! for what must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kassa_protocol::fuzzing::catalog_csv(data));
