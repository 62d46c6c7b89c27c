//! The one place that leaves the async executor for blocking work: SQLite, Argon2,
//! serial ports, joining threads. Everything else awaits [`run`] (or the journal's
//! [`crate::journal::JournalHandle`], which uses it); a tidy test keeps it that way.

/// Runs `f` on tokio's blocking pool and awaits it. A panic in `f` is resumed here, as
/// if `f` had run inline.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("blocking task cancelled: {e}"),
    }
}
