//! Price changes HQ schedules ahead: each takes effect at a local date and time, in every
//! store's own zone and by its own clock — offline too — and at HQ for the online shop
//! in the zone of the store it prices for. HQ publishes the whole schedule as one
//! versioned register (like the catalog); a store keeps the highest version.
//!
//! The price of an item at a moment is the latest scheduled price whose time has come,
//! else the catalog's ([`PriceSchedule::price_at`]). The till looks it up when an item
//! is added; a line already in the basket keeps the price it was added at.

use std::collections::HashMap;

use crate::catalog::PRICE_KOPECKS_MAX;
use crate::ids::Sku;
use crate::money::Kopecks;
use crate::promotions::LocalTime;

/// Scheduled changes in one schedule.
pub const SCHEDULED_PRICES_MAX: usize = 10_000;

/// One price change: `sku` costs `price` from local `at` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledPrice {
    pub sku: Sku,
    pub at: LocalTime,
    pub price: Kopecks,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("a schedule has at most {SCHEDULED_PRICES_MAX} changes")]
    TooMany,
    #[error("change {index} ({sku}): a price is 1 to {PRICE_KOPECKS_MAX} kopecks")]
    Price { index: usize, sku: Sku },
    #[error("change {index} ({sku}): another change of the same item at the same time")]
    Duplicate { index: usize, sku: Sku },
    #[error("change {index}: `{at}` is not a date and time (YYYY-MM-DDTHH:MM)")]
    Time { index: usize, at: String },
}

/// A validated schedule, indexed by SKU (each SKU's changes in time order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriceSchedule {
    by_sku: HashMap<Sku, Vec<(LocalTime, Kopecks)>>,
    changes: usize,
}

impl PriceSchedule {
    pub fn new(changes: &[ScheduledPrice]) -> Result<PriceSchedule, ScheduleError> {
        if changes.len() > SCHEDULED_PRICES_MAX {
            return Err(ScheduleError::TooMany);
        }
        let mut by_sku: HashMap<Sku, Vec<(LocalTime, Kopecks)>> = HashMap::new();
        for (i, c) in changes.iter().enumerate() {
            let index = i + 1;
            if !(1..=PRICE_KOPECKS_MAX.0).contains(&c.price.0) {
                return Err(ScheduleError::Price { index, sku: c.sku.clone() });
            }
            let list = by_sku.entry(c.sku.clone()).or_default();
            if list.iter().any(|(at, _)| *at == c.at) {
                return Err(ScheduleError::Duplicate { index, sku: c.sku.clone() });
            }
            list.push((c.at, c.price));
        }
        for list in by_sku.values_mut() {
            list.sort_by_key(|(at, _)| (at.day, at.minute));
        }
        Ok(PriceSchedule { by_sku, changes: changes.len() })
    }

    /// The scheduled price of `sku` in force at `at`, if a change has come.
    pub fn price_at(&self, sku: &Sku, at: LocalTime) -> Option<Kopecks> {
        let list = self.by_sku.get(sku)?;
        list.iter().rev().find(|(t, _)| (t.day, t.minute) <= (at.day, at.minute)).map(|(_, p)| *p)
    }

    /// Every change, by SKU then time (as published).
    pub fn changes(&self) -> Vec<ScheduledPrice> {
        let mut out: Vec<ScheduledPrice> = self
            .by_sku
            .iter()
            .flat_map(|(sku, list)| {
                list.iter().map(|(at, price)| ScheduledPrice { sku: sku.clone(), at: *at, price: *price })
            })
            .collect();
        out.sort_by(|a, b| (&a.sku, a.at.day, a.at.minute).cmp(&(&b.sku, b.at.day, b.at.minute)));
        out
    }

    pub fn len(&self) -> usize {
        self.changes
    }

    pub fn is_empty(&self) -> bool {
        self.changes == 0
    }
}

/// `YYYY-MM-DDTHH:MM` (a local date and time, as a merchandiser types it).
pub fn parse_local(s: &str) -> Option<LocalTime> {
    let (date, time) = s.split_once('T')?;
    let day = crate::promotions::definition::parse_day(date)?;
    let (h, m) = time.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && time.len() == 5).then_some(LocalTime { day, minute: h * 60 + m })
}

/// The inverse of [`parse_local`].
pub fn format_local(at: LocalTime) -> String {
    format!("{}T{:02}:{:02}", crate::promotions::definition::format_day(at.day), at.minute / 60, at.minute % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(sku: &str, at: &str, price: i64) -> ScheduledPrice {
        ScheduledPrice { sku: Sku(sku.into()), at: parse_local(at).unwrap(), price: Kopecks(price) }
    }

    #[test]
    fn the_latest_change_whose_time_has_come_is_the_price() {
        let s = PriceSchedule::new(&[
            change("milk", "2026-12-10T09:00", 9_990),
            change("milk", "2026-12-01T00:00", 10_490),
            change("bread", "2026-12-10T09:00", 4_990),
        ])
        .unwrap();
        let at = |t: &str| parse_local(t).unwrap();
        let milk = Sku("milk".into());
        assert_eq!(s.price_at(&milk, at("2026-11-30T23:59")), None, "the catalog's price before any change");
        assert_eq!(s.price_at(&milk, at("2026-12-01T00:00")), Some(Kopecks(10_490)), "from the minute on");
        assert_eq!(s.price_at(&milk, at("2026-12-10T08:59")), Some(Kopecks(10_490)));
        assert_eq!(s.price_at(&milk, at("2026-12-10T09:00")), Some(Kopecks(9_990)));
        assert_eq!(s.price_at(&Sku("cheese".into()), at("2027-01-01T00:00")), None);
        assert_eq!(s.changes().len(), 3);
    }

    #[test]
    fn a_stores_own_zone_decides_when_a_change_comes() {
        let s = PriceSchedule::new(&[change("milk", "2026-12-10T09:00", 9_990)]).unwrap();
        // 07:30 UTC: 10:30 in Moscow (the change has come), 02:30 in New York (not yet).
        let utc_ms = (parse_local("2026-12-10T07:30").unwrap().day as i64 * 1440 + 7 * 60 + 30) * 60_000;
        let milk = Sku("milk".into());
        assert_eq!(s.price_at(&milk, LocalTime::from_unix_ms(utc_ms, 180)), Some(Kopecks(9_990)));
        assert_eq!(s.price_at(&milk, LocalTime::from_unix_ms(utc_ms, -300)), None);
    }

    #[test]
    fn a_bad_schedule_is_refused_with_the_change_named() {
        assert_eq!(
            PriceSchedule::new(&[change("milk", "2026-12-10T09:00", 0)]),
            Err(ScheduleError::Price { index: 1, sku: Sku("milk".into()) })
        );
        assert_eq!(
            PriceSchedule::new(&[change("milk", "2026-12-10T09:00", 1), change("milk", "2026-12-10T09:00", 2)]),
            Err(ScheduleError::Duplicate { index: 2, sku: Sku("milk".into()) })
        );
        for bad in ["2026-12-10", "2026-12-10T24:00", "2026-12-10T9:00", "2026-02-30T10:00", "x"] {
            assert_eq!(parse_local(bad), None, "{bad}");
        }
        assert_eq!(format_local(parse_local("2026-12-10T09:05").unwrap()), "2026-12-10T09:05");
    }
}
