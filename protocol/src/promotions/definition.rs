//! A promotion as a merchandiser writes it and as it is stored and sent: format 1 of
//! promotion definitions, JSON-friendly (dates as `YYYY-MM-DD`, hours as `HH:MM`, days of
//! the week by name, kinds by a snake_case tag). Frozen once released, like every
//! format (see [`crate::format`]); [`Definition::to_promotion`] turns it into the type the
//! engine works with and names the promotion and the field of anything wrong.
//!
//! ```json
//! { "id": 12, "version": 1, "name": "3 по цене 2: йогурты",
//!   "kind": { "type": "n_for_m", "categories": ["Йогурты"], "n": 3, "m": 2 },
//!   "from": "2026-12-01", "to": "2026-12-31", "days": ["sat", "sun"], "hours": "09:00-21:00",
//!   "stores": "all", "channels": ["store", "online"], "audience": "everyone" }
//! ```

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Audience, Channel, Coupon, Kind, Promotion, PromotionError, Target, Window};
use crate::ids::{Sku, StoreId};
use crate::loyalty::CustomerId;
use crate::money::Kopecks;

/// What a multi-item kind applies to: SKUs or categories (one of the two).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetDef {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skus: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KindDef {
    PercentOff {
        #[serde(flatten)]
        target: TargetDef,
        percent: u8,
    },
    AmountOff {
        #[serde(flatten)]
        target: TargetDef,
        amount_kopecks: i64,
    },
    FixedPrice {
        #[serde(flatten)]
        target: TargetDef,
        price_kopecks: i64,
    },
    NForM {
        #[serde(flatten)]
        target: TargetDef,
        n: u32,
        m: u32,
    },
    NForPrice {
        #[serde(flatten)]
        target: TargetDef,
        n: u32,
        price_kopecks: i64,
    },
    BuyGet {
        buy: TargetDef,
        buy_qty: u32,
        get: TargetDef,
        get_qty: u32,
        percent: u8,
    },
    Bundle {
        components: Vec<TargetDef>,
        price_kopecks: i64,
    },
    BasketPercent {
        threshold_kopecks: i64,
        percent: u8,
    },
    BasketAmount {
        threshold_kopecks: i64,
        amount_kopecks: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoresDef {
    /// `"all"`.
    All,
    /// `{"list": [1, 2]}`.
    List(Vec<u32>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudienceDef {
    Everyone,
    LoyaltyMembers,
    /// `{"customer": "<card>"}`.
    Customer(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouponDef {
    pub code: String,
    #[serde(default)]
    pub single_use: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub id: u32,
    #[serde(default = "one")]
    pub version: u32,
    pub name: String,
    pub kind: KindDef,
    #[serde(default)]
    pub priority: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive_group: Option<String>,
    /// First day, `YYYY-MM-DD`, in the store's local time.
    pub from: String,
    /// Last day (inclusive).
    pub to: String,
    /// `mon` … `sun`; all week when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<String>>,
    /// `HH:MM-HH:MM`; all day when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<String>,
    pub stores: StoresDef,
    pub channels: Vec<String>,
    pub audience: AudienceDef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<CouponDef>,
}

fn one() -> u32 {
    1
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (proleptic Gregorian).
pub fn parse_day(s: &str) -> Option<i32> {
    let mut parts = s.trim().splitn(3, '-');
    let (y, m, d): (i64, u32, u32) =
        (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    if !(2000..=2200).contains(&y) || !(1..=12).contains(&m) {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if d == 0 || d > month_days[m as usize - 1] {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    i32::try_from(era * 146_097 + doe - 719_468).ok()
}

/// The `YYYY-MM-DD` of a day since 1970-01-01.
pub fn format_day(day: i32) -> String {
    let z = i64::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_minute(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

impl Definition {
    fn refuse(&self, field: &'static str, reason: impl Into<String>) -> PromotionError {
        PromotionError { id: self.id, field, reason: reason.into() }
    }

    fn target(&self, field: &'static str, t: &TargetDef) -> Result<Target, PromotionError> {
        match (t.skus.is_empty(), t.categories.is_empty()) {
            (false, true) => t
                .skus
                .iter()
                .map(|s| Sku::parse(s).ok_or_else(|| self.refuse(field, format!("`{s}` is not a SKU"))))
                .collect::<Result<BTreeSet<_>, _>>()
                .map(Target::Items),
            (true, false) => Ok(Target::Categories(t.categories.iter().map(|c| c.trim().to_owned()).collect())),
            _ => Err(self.refuse(field, "SKUs or categories, one of the two")),
        }
    }

    /// The promotion the engine works with; the first thing wrong is named. The rules
    /// that need the catalog are checked by [`super::PromotionSet::new`].
    pub fn to_promotion(&self) -> Result<Promotion, PromotionError> {
        let kind = match &self.kind {
            KindDef::PercentOff { target, percent } => {
                Kind::PercentOff { target: self.target("kind", target)?, percent: *percent }
            }
            KindDef::AmountOff { target, amount_kopecks } => {
                Kind::AmountOff { target: self.target("kind", target)?, amount: Kopecks(*amount_kopecks) }
            }
            KindDef::FixedPrice { target, price_kopecks } => {
                Kind::FixedPrice { target: self.target("kind", target)?, price: Kopecks(*price_kopecks) }
            }
            KindDef::NForM { target, n, m } => Kind::NForM { target: self.target("kind", target)?, n: *n, m: *m },
            KindDef::NForPrice { target, n, price_kopecks } => {
                Kind::NForPrice { target: self.target("kind", target)?, n: *n, price: Kopecks(*price_kopecks) }
            }
            KindDef::BuyGet { buy, buy_qty, get, get_qty, percent } => Kind::BuyGet {
                buy: self.target("buy", buy)?,
                buy_qty: *buy_qty,
                get: self.target("get", get)?,
                get_qty: *get_qty,
                percent: *percent,
            },
            KindDef::Bundle { components, price_kopecks } => Kind::Bundle {
                components: components.iter().map(|c| self.target("components", c)).collect::<Result<_, _>>()?,
                price: Kopecks(*price_kopecks),
            },
            KindDef::BasketPercent { threshold_kopecks, percent } => {
                Kind::BasketPercent { threshold: Kopecks(*threshold_kopecks), percent: *percent }
            }
            KindDef::BasketAmount { threshold_kopecks, amount_kopecks } => {
                Kind::BasketAmount { threshold: Kopecks(*threshold_kopecks), amount: Kopecks(*amount_kopecks) }
            }
        };
        let from_day = parse_day(&self.from).ok_or_else(|| self.refuse("from", "a date as YYYY-MM-DD"))?;
        let to_day = parse_day(&self.to).ok_or_else(|| self.refuse("to", "a date as YYYY-MM-DD"))?;
        let weekdays = match &self.days {
            None => Window::ALL_WEEK,
            Some(days) => days.iter().try_fold(0u8, |mask, d| {
                let i = WEEKDAYS
                    .iter()
                    .position(|w| w.eq_ignore_ascii_case(d.trim()))
                    .ok_or_else(|| self.refuse("days", format!("`{d}`: mon, tue, wed, thu, fri, sat or sun")))?;
                Ok(mask | 1 << i)
            })?,
        };
        let (from_minute, to_minute) = match &self.hours {
            None => (0, 24 * 60),
            Some(h) => {
                let parsed = h.split_once('-').and_then(|(a, b)| Some((parse_minute(a)?, parse_minute(b)?)));
                parsed.ok_or_else(|| self.refuse("hours", "HH:MM-HH:MM"))?
            }
        };
        let channels = self
            .channels
            .iter()
            .map(|c| match c.as_str() {
                "store" => Ok(Channel::Store),
                "online" => Ok(Channel::Online),
                other => Err(self.refuse("channels", format!("`{other}`: store or online"))),
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        let audience = match &self.audience {
            AudienceDef::Everyone => Audience::Everyone,
            AudienceDef::LoyaltyMembers => Audience::LoyaltyMembers,
            AudienceDef::Customer(card) => {
                Audience::Customer(CustomerId::parse(card).map_err(|e| self.refuse("audience", e.to_string()))?)
            }
        };
        Ok(Promotion {
            id: self.id,
            version: self.version,
            name: self.name.trim().to_owned(),
            kind,
            priority: self.priority,
            exclusive_group: self.exclusive_group.clone(),
            window: Window { from_day, to_day, weekdays, from_minute, to_minute },
            stores: match &self.stores {
                StoresDef::All => None,
                StoresDef::List(list) => Some(list.iter().map(|&s| StoreId(s)).collect()),
            },
            channels,
            audience,
            coupon: self.coupon.as_ref().map(|c| Coupon { code: c.code.clone(), single_use: c.single_use }),
        })
    }
}

fn target_def(t: &Target) -> TargetDef {
    match t {
        Target::Items(skus) => TargetDef { skus: skus.iter().map(|s| s.0.clone()).collect(), categories: Vec::new() },
        Target::Categories(cs) => TargetDef { skus: Vec::new(), categories: cs.iter().cloned().collect() },
    }
}

fn minute_text(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

impl Definition {
    /// The definition of a promotion: what HQ stores and sends for it;
    /// [`Definition::to_promotion`] gives the promotion back.
    pub fn of(p: &Promotion) -> Definition {
        let kind = match &p.kind {
            Kind::PercentOff { target, percent } => {
                KindDef::PercentOff { target: target_def(target), percent: *percent }
            }
            Kind::AmountOff { target, amount } => {
                KindDef::AmountOff { target: target_def(target), amount_kopecks: amount.0 }
            }
            Kind::FixedPrice { target, price } => {
                KindDef::FixedPrice { target: target_def(target), price_kopecks: price.0 }
            }
            Kind::NForM { target, n, m } => KindDef::NForM { target: target_def(target), n: *n, m: *m },
            Kind::NForPrice { target, n, price } => {
                KindDef::NForPrice { target: target_def(target), n: *n, price_kopecks: price.0 }
            }
            Kind::BuyGet { buy, buy_qty, get, get_qty, percent } => KindDef::BuyGet {
                buy: target_def(buy),
                buy_qty: *buy_qty,
                get: target_def(get),
                get_qty: *get_qty,
                percent: *percent,
            },
            Kind::Bundle { components, price } => {
                KindDef::Bundle { components: components.iter().map(target_def).collect(), price_kopecks: price.0 }
            }
            Kind::BasketPercent { threshold, percent } => {
                KindDef::BasketPercent { threshold_kopecks: threshold.0, percent: *percent }
            }
            Kind::BasketAmount { threshold, amount } => {
                KindDef::BasketAmount { threshold_kopecks: threshold.0, amount_kopecks: amount.0 }
            }
        };
        let w = &p.window;
        Definition {
            id: p.id,
            version: p.version,
            name: p.name.clone(),
            kind,
            priority: p.priority,
            exclusive_group: p.exclusive_group.clone(),
            from: format_day(w.from_day),
            to: format_day(w.to_day),
            days: (w.weekdays != Window::ALL_WEEK)
                .then(|| (0..7).filter(|i| w.weekdays & 1 << i != 0).map(|i| WEEKDAYS[i].to_owned()).collect()),
            hours: (w.from_minute != 0 || w.to_minute != 24 * 60)
                .then(|| format!("{}-{}", minute_text(w.from_minute), minute_text(w.to_minute))),
            stores: match &p.stores {
                None => StoresDef::All,
                Some(list) => StoresDef::List(list.iter().map(|s| s.0).collect()),
            },
            channels: p
                .channels
                .iter()
                .map(|c| match c {
                    Channel::Store => "store".to_owned(),
                    Channel::Online => "online".to_owned(),
                })
                .collect(),
            audience: match &p.audience {
                Audience::Everyone => AudienceDef::Everyone,
                Audience::LoyaltyMembers => AudienceDef::LoyaltyMembers,
                Audience::Customer(c) => AudienceDef::Customer(c.as_str().to_owned()),
            },
            coupon: p.coupon.as_ref().map(|c| CouponDef { code: c.code.clone(), single_use: c.single_use }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_promotion_and_its_definition_round_trip() {
        let json = serde_json::json!({ "id": 14, "version": 3, "name": "3 по цене 2: йогурты",
            "kind": { "type": "buy_get", "buy": { "categories": ["Йогурты"] }, "buy_qty": 2,
                      "get": { "skus": ["100001", "100002"] }, "get_qty": 1, "percent": 50 },
            "priority": 5, "exclusive_group": "йогурты",
            "from": "2026-12-01", "to": "2026-12-31", "days": ["sat", "sun"], "hours": "09:00-21:30",
            "stores": { "list": [7, 12] }, "channels": ["store"], "audience": "loyalty_members",
            "coupon": { "code": "ЙОГУРТ", "single_use": true } });
        let def: Definition = serde_json::from_value(json).unwrap();
        let p = def.to_promotion().unwrap();
        assert_eq!(Definition::of(&p), def);
        let all_day: Definition = serde_json::from_value(serde_json::json!({ "id": 1, "name": "x",
            "kind": { "type": "basket_amount", "threshold_kopecks": 200000, "amount_kopecks": 20000 },
            "from": "2026-01-01", "to": "2026-01-31", "stores": "all", "channels": ["store", "online"],
            "audience": "everyone" }))
        .unwrap();
        assert_eq!(Definition::of(&all_day.to_promotion().unwrap()), all_day);
    }

    #[test]
    fn dates_round_trip_and_weekdays_agree() {
        assert_eq!(parse_day("1970-01-01"), None, "before 2000: a typo");
        assert_eq!(parse_day("2024-10-04"), Some(20_000));
        assert_eq!(format_day(20_000), "2024-10-04");
        assert_eq!(parse_day("2024-02-29").map(format_day).as_deref(), Some("2024-02-29"));
        assert_eq!(parse_day("2023-02-29"), None);
        assert_eq!(parse_day("2026-13-01"), None);
        for day in (parse_day("2000-01-01").unwrap()..parse_day("2100-12-31").unwrap()).step_by(17) {
            assert_eq!(parse_day(&format_day(day)), Some(day));
        }
        // 2026-12-02 is a Wednesday.
        assert_eq!(super::super::LocalTime { day: parse_day("2026-12-02").unwrap(), minute: 0 }.weekday(), 2);
    }

    #[test]
    fn a_merchandisers_json_becomes_a_promotion() {
        let def: Definition = serde_json::from_str(
            r#"{ "id": 12, "name": "3 по цене 2: йогурты",
                 "kind": { "type": "n_for_m", "categories": ["Йогурты"], "n": 3, "m": 2 },
                 "from": "2026-12-01", "to": "2026-12-31", "days": ["sat", "sun"], "hours": "09:00-21:00",
                 "stores": "all", "channels": ["store", "online"], "audience": "everyone" }"#,
        )
        .unwrap();
        let p = def.to_promotion().unwrap();
        assert_eq!(p.version, 1);
        assert_eq!(p.window.weekdays, 0b110_0000);
        assert_eq!((p.window.from_minute, p.window.to_minute), (9 * 60, 21 * 60));
        assert!(matches!(p.kind, Kind::NForM { n: 3, m: 2, .. }));
        assert_eq!(serde_json::from_value::<Definition>(serde_json::to_value(&def).unwrap()).unwrap(), def);
    }

    #[test]
    fn mistakes_name_the_promotion_and_the_field() {
        let base = r#"{ "id": 7, "name": "x", "kind": { "type": "percent_off", "skus": ["100001"], "percent": 10 },
            "from": "2026-12-01", "to": "2026-12-31", "stores": "all", "channels": ["store"], "audience": "everyone" }"#;
        let with = |field: &str, value: serde_json::Value| {
            let mut v: serde_json::Value = serde_json::from_str(base).unwrap();
            v[field] = value;
            serde_json::from_value::<Definition>(v).unwrap().to_promotion().unwrap_err()
        };
        assert_eq!(with("from", "01.12.2026".into()).field, "from");
        assert_eq!(with("days", serde_json::json!(["friday"])).field, "days");
        assert_eq!(with("hours", "9-21".into()).field, "hours");
        assert_eq!(with("channels", serde_json::json!(["phone"])).field, "channels");
        assert_eq!(with("audience", serde_json::json!({ "customer": "12" })).field, "audience");
        let e = with(
            "kind",
            serde_json::json!({ "type": "percent_off", "skus": ["100001"], "categories": ["x"], "percent": 5 }),
        );
        assert_eq!((e.id, e.field), (7, "kind"));
        // An unknown kind or field is refused by the format itself.
        let mut v: serde_json::Value = serde_json::from_str(base).unwrap();
        v["kind"]["type"] = "half_price".into();
        assert!(serde_json::from_value::<Definition>(v).is_err());
        let mut v: serde_json::Value = serde_json::from_str(base).unwrap();
        v["colour"] = "red".into();
        assert!(serde_json::from_value::<Definition>(v).is_err());
    }
}
