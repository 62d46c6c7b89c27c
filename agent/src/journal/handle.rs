//! The journal as async code sees it: one handle whose calls run SQLite on the blocking
//! pool, never on an async worker, and never hold the journal's lock there.

use std::sync::Arc;

use kassa_protocol::{ActorId, StoreId};

use super::Journal;

/// A cheap, cloneable handle to the store's journal for async code.
#[derive(Debug, Clone)]
pub struct JournalHandle(Arc<Journal>);

impl JournalHandle {
    pub fn new(journal: Arc<Journal>) -> JournalHandle {
        JournalHandle(journal)
    }

    /// Runs `f` with the journal off the async executor.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Journal) -> T + Send + 'static) -> T {
        let journal = self.0.clone();
        crate::blocking::run(move || f(&journal)).await
    }

    /// The journal itself, for code that already runs on a thread of its own (the
    /// print spooler) or before the executor starts.
    pub fn shared(&self) -> &Arc<Journal> {
        &self.0
    }

    pub fn store(&self) -> StoreId {
        self.0.store()
    }

    pub fn actor(&self) -> ActorId {
        self.0.actor()
    }
}
