//! The wall clock: the one place the agent reads it (the sans-IO core takes time as an
//! argument; receipts, records and sessions take it from here).

/// Unix milliseconds now, from this machine's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
