//! Many HQ nodes over one PostgreSQL (issue #17): what one node publishes reaches the
//! stores connected to every other.
//!
//! The database says what changed: triggers on the tables that hold what stores are
//! offered (`meta` versions, store keys, inbound documents, order events) and HQ's own
//! deliveries `NOTIFY kassa` with a topic when their transaction commits, whichever node
//! (or `kassa-hq` command) wrote it. Each node listens on its own connection and moves
//! its connections' watch channels from what the database holds now, so a notification
//! seen twice, or for the node's own change, wakes a connection at most once more. When
//! the listening connection breaks (PostgreSQL restarted, the network), the node
//! reconnects and refreshes everything, since notifications sent meanwhile are lost.

use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use tokio_util::sync::CancellationToken;

use crate::db::DbError;
use crate::Shared;

/// The channel HQ's notifications go on.
pub const CHANNEL: &str = "kassa";

/// How long the listener waits for a notification before it checks whether to stop.
const LISTEN_TICK: Duration = Duration::from_millis(250);

/// How long to wait before connecting again after the listening connection failed.
const RECONNECT_WAIT: Duration = Duration::from_secs(1);

/// What changed, as a notification's payload names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Catalog,
    /// Loyalty rules: offered to a connection with the catalog.
    Rules,
    Promotions,
    PriceSchedule,
    ReturnTerms,
    Inbound,
    Orders,
    Counters,
    /// Something this node's connections are not offered (a demo flag).
    Other,
}

impl Topic {
    pub fn of(payload: &str) -> Topic {
        match payload {
            "meta:catalog_version" => Topic::Catalog,
            "meta:rules_version" => Topic::Rules,
            "meta:promotions_version" => Topic::Promotions,
            "meta:price_schedule_version" => Topic::PriceSchedule,
            "meta:return_limits_version" | "store_keys" => Topic::ReturnTerms,
            "inbound" => Topic::Inbound,
            "order_events" => Topic::Orders,
            "counters" => Topic::Counters,
            _ => Topic::Other,
        }
    }

    const ALL: [Topic; 8] = [
        Topic::Catalog,
        Topic::Rules,
        Topic::Promotions,
        Topic::PriceSchedule,
        Topic::ReturnTerms,
        Topic::Inbound,
        Topic::Orders,
        Topic::Counters,
    ];
}

/// Moves this node's watch channels for `topic` from what the database holds.
pub fn refresh(shared: &Shared, topic: Topic) -> Result<(), DbError> {
    let db = &shared.db;
    let bump = |g: &mut u64| {
        *g += 1;
        true
    };
    match topic {
        Topic::Catalog => {
            let version = db.catalog_version()?;
            shared.catalog.send_if_modified(|v| std::mem::replace(v, version) != version);
        }
        // Connections offer the rules whenever the catalog channel moves (as the API does
        // when it publishes rules); the store takes only a newer version.
        Topic::Rules => shared.catalog.send_modify(|_| {}),
        Topic::Promotions => {
            let version = db.promotions()?.0;
            shared.promotions.send_if_modified(|v| std::mem::replace(v, version) != version);
        }
        Topic::PriceSchedule => {
            let version = db.price_schedule()?.0;
            shared.price_schedule.send_if_modified(|v| std::mem::replace(v, version) != version);
        }
        Topic::ReturnTerms => {
            let terms = (db.return_limits()?.0, db.store_keys_head()?);
            // Limits wake every connection; a new store key alone does not (see `Shared`).
            shared.return_terms.send_if_modified(|t| {
                let wake = terms.0 != t.0;
                *t = terms;
                wake
            });
        }
        Topic::Inbound => {
            shared.inbound.send_if_modified(bump);
        }
        Topic::Orders => {
            shared.orders.send_if_modified(bump);
        }
        Topic::Counters => {
            shared.counters.send_if_modified(bump);
        }
        Topic::Other => {}
    }
    Ok(())
}

/// Listens for other nodes' changes until `cancel` fires (PostgreSQL only: on SQLite
/// there is one node and nothing to listen to). Runs on its own thread: the listening
/// connection blocks.
pub fn spawn_listener(shared: Shared, cancel: CancellationToken) {
    if shared.db.backend() != crate::db::sql::Backend::Postgres {
        return;
    }
    let spawned = std::thread::Builder::new().name("kassa-hq-listen".into()).spawn(move || {
        while !cancel.is_cancelled() {
            if let Err(e) = listen(&shared, &cancel) {
                tracing::warn!(error = %e, "HQ's listening connection to PostgreSQL failed; reconnecting");
                std::thread::sleep(RECONNECT_WAIT);
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start HQ's listener thread: other nodes' changes reach stores on reconnect only");
    }
}

/// One listening connection: `LISTEN`, then everything refreshed (what was sent while
/// not listening is lost), then each notification as it comes.
fn listen(shared: &Shared, cancel: &CancellationToken) -> Result<(), DbError> {
    let mut client = shared.db.listen_connection()?;
    client.batch_execute(&format!("LISTEN {CHANNEL}")).map_err(crate::db::sql::Error::from)?;
    for topic in Topic::ALL {
        refresh(shared, topic)?;
    }
    while !cancel.is_cancelled() {
        loop {
            let mut notifications = client.notifications();
            let Some(first) = notifications.timeout_iter(LISTEN_TICK).next().map_err(crate::db::sql::Error::from)?
            else {
                break;
            };
            // And whatever else has arrived meanwhile, each topic refreshed once: a
            // thousand stores connecting for the first time are a thousand new keys.
            let mut topics = vec![Topic::of(first.payload())];
            let mut pending = notifications.iter();
            while let Some(n) = pending.next().map_err(crate::db::sql::Error::from)? {
                topics.push(Topic::of(n.payload()));
            }
            topics.sort_by_key(|t| *t as u8);
            topics.dedup();
            for topic in topics {
                refresh(shared, topic)?;
            }
        }
        if client.is_closed() {
            return Err(crate::db::sql::Error::Pool("the listening connection closed".into()).into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_their_topics() {
        assert_eq!(Topic::of("meta:catalog_version"), Topic::Catalog);
        assert_eq!(Topic::of("meta:rules_version"), Topic::Rules);
        assert_eq!(Topic::of("store_keys"), Topic::ReturnTerms);
        assert_eq!(Topic::of("meta:return_limits_version"), Topic::ReturnTerms);
        assert_eq!(Topic::of("order_events"), Topic::Orders);
        assert_eq!(Topic::of("meta:demo_seeded"), Topic::Other);
    }
}
