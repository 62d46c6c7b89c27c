//! The SQL of scheduled price changes at HQ (schema version 6): the whole schedule,
//! versioned like the catalog and published with its audit entry in one transaction.

use super::sql::params;
use kassa_protocol::price_schedule::{PriceSchedule, ScheduledPrice};
use kassa_protocol::promotions::LocalTime;
use kassa_protocol::{Kopecks, Sku};
use std::sync::Arc;

use super::access::audit_in;
use super::{meta, set_meta, Db, DbError, NewAudit};

pub(super) const SCHEMA_V6: &str = "
CREATE TABLE price_schedule (
    sku TEXT NOT NULL, at_minute INTEGER NOT NULL, price_kopecks INTEGER NOT NULL,
    PRIMARY KEY (sku, at_minute)
) STRICT, WITHOUT ROWID;
";

impl Db {
    /// Replaces the schedule with `changes` (validated by the caller against the catalog
    /// and by [`PriceSchedule::new`]) as the next version; returns it.
    pub fn publish_price_schedule(&self, changes: &[ScheduledPrice], audit: &NewAudit) -> Result<u64, DbError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM price_schedule", [])?;
        {
            let mut st =
                tx.prepare("INSERT INTO price_schedule (sku, at_minute, price_kopecks) VALUES (?1, ?2, ?3)")?;
            for c in changes {
                st.execute(params![c.sku.as_str(), i64::from(c.at.day) * 1440 + i64::from(c.at.minute), c.price.0])?;
            }
        }
        let version = meta(&tx, "price_schedule_version")? + 1;
        set_meta(&tx, "price_schedule_version", version)?;
        audit_in(&tx, audit)?;
        tx.commit()?;
        Ok(version)
    }

    /// The schedule in force and its version (0: none published).
    pub fn price_schedule(&self) -> Result<(u64, Vec<ScheduledPrice>), DbError> {
        let conn = self.conn()?;
        let version = meta(&conn, "price_schedule_version")?;
        let mut st =
            conn.prepare_cached("SELECT sku, at_minute, price_kopecks FROM price_schedule ORDER BY sku, at_minute")?;
        let rows = st.query_map([], |r| {
            let minute: i64 = r.get(1)?;
            Ok(ScheduledPrice {
                sku: Sku(r.get(0)?),
                at: LocalTime { day: minute.div_euclid(1440) as i32, minute: minute.rem_euclid(1440) as u16 },
                price: Kopecks(r.get(2)?),
            })
        })?;
        Ok((version, rows.collect::<Result<_, _>>()?))
    }

    /// The schedule, indexed for pricing: built once per published version (a point read
    /// of the version per basket priced, not the whole table).
    pub fn price_schedule_index(&self) -> Result<Arc<PriceSchedule>, DbError> {
        let current = meta(&*self.conn()?, "price_schedule_version")?;
        let mut cache = self.schedule_index.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((version, index)) = cache.as_ref() {
            if *version == current {
                return Ok(index.clone());
            }
        }
        let (version, changes) = self.price_schedule()?;
        let index = Arc::new(
            PriceSchedule::new(&changes).map_err(|e| DbError::Corrupt(format!("stored price schedule: {e}")))?,
        );
        *cache = Some((version, index.clone()));
        Ok(index)
    }
}
