//! Promotions: one engine that prices a basket the same way at every till and online.
//!
//! A [`PromotionSet`] is what HQ publishes, validated once ([`PromotionSet::new`]) and
//! indexed by SKU and category so that pricing a basket looks only at the promotions
//! that can touch it. [`PromotionSet::price`] is a pure function of the basket's lines
//! and a [`Context`] (store, channel, local time, customer, coupons): the same inputs
//! give the same discounts, whichever channel asks.
//!
//! # How promotions combine
//! 1. **Item promotions first, basket promotions after.** Item promotions (percent or
//!    amount off, a promotional price, N for M, N for a price, buy X get Y, a set at a
//!    price) act on units of the basket; basket promotions (from a threshold, percent or
//!    amount off) act on what is left to pay after them.
//! 2. **Priority.** Higher `priority` goes first; equal priorities go by lower id.
//! 3. **One item promotion per unit.** A unit (a piece, or a whole weighed line) that an
//!    item promotion used — discounted, or counted towards a group such as the "3" of a
//!    "3 for 2" — is not used by another item promotion.
//! 4. **Exclusive groups.** Promotions that share an `exclusive_group` compete: at the
//!    group's turn (its highest priority), each member is tried on what is left and the
//!    one that saves the customer the most applies (ties: the lower id); the others do
//!    not. Item and basket promotions of one group compete within their own stage.
//!    Promotions without a group all apply, each in its turn.
//! 5. **Groups of units** are formed in a canonical order — most expensive first, then by
//!    SKU — never in the order of scanning, so the result does not depend on it. In an
//!    "N for M" the cheapest units of each group of N are free; in "buy X get Y" the
//!    most expensive eligible units are bought and the cheapest eligible ones discounted.
//! 6. **Money.** All in kopecks. A percent is rounded half up per line; a discount over
//!    several units or lines is spread in proportion to their prices by largest
//!    remainder ([`crate::pricing::spread`]), so shares add up to it exactly. No line is
//!    discounted below zero. A manager's manual basket discount applies after
//!    promotions, on what is left (the basket's own rule).
//!
//! Multi-unit promotions count at most [`PIECES_GROUPED_MAX`] pieces of a basket; a
//! larger basket (a wholesale order, not a till's) gets only per-unit and basket
//! promotions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::catalog::Unit;
use crate::ids::{Sku, StoreId};
use crate::loyalty::CustomerId;
use crate::money::Kopecks;
use crate::pricing;

pub mod definition;

/// Promotions in one published set.
pub const PROMOTIONS_MAX: usize = 50_000;
/// SKUs or categories one target may list.
pub const TARGET_ENTRIES_MAX: usize = 10_000;
/// Components of a set sold at a fixed price.
pub const BUNDLE_COMPONENTS_MAX: usize = 16;
/// Pieces of a basket that multi-unit promotions count (see the module doc).
pub const PIECES_GROUPED_MAX: i64 = 5_000;
/// Longest promotion name (it is printed on the receipt).
pub const NAME_LEN_MAX_CHARS: usize = 64;
/// Largest N of "N for M", "N for a price" and buy-X-get-Y quantities.
pub const GROUP_SIZE_MAX: u32 = 100;

/// What a promotion's units are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Items(BTreeSet<Sku>),
    Categories(BTreeSet<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `percent` off every unit of the target.
    PercentOff { target: Target, percent: u8 },
    /// `amount` off every piece (or every kilogram) of the target, at most its price.
    AmountOff { target: Target, amount: Kopecks },
    /// The target sells at `price` a piece (or a kilogram), when that is lower.
    FixedPrice { target: Target, price: Kopecks },
    /// Every `n` pieces of the target, pay for `m` ("3 for 2": n = 3, m = 2).
    NForM { target: Target, n: u32, m: u32 },
    /// Every `n` pieces of the target for `price` together ("2 for 150 ₽").
    NForPrice { target: Target, n: u32, price: Kopecks },
    /// Buy `buy_qty` pieces of `buy`, get `get_qty` pieces of `get` at `percent` off
    /// (100: free).
    BuyGet { buy: Target, buy_qty: u32, get: Target, get_qty: u32, percent: u8 },
    /// One piece of each component together for `price` (mix and match).
    Bundle { components: Vec<Target>, price: Kopecks },
    /// From `threshold` left to pay: `percent` off the basket.
    BasketPercent { threshold: Kopecks, percent: u8 },
    /// From `threshold` left to pay: `amount` off the basket.
    BasketAmount { threshold: Kopecks, amount: Kopecks },
}

impl Kind {
    /// Kinds with one target: every line the index found for such a promotion matches it.
    fn single_target(&self) -> bool {
        matches!(
            self,
            Kind::PercentOff { .. }
                | Kind::AmountOff { .. }
                | Kind::FixedPrice { .. }
                | Kind::NForM { .. }
                | Kind::NForPrice { .. }
        )
    }

    fn is_basket(&self) -> bool {
        matches!(self, Kind::BasketPercent { .. } | Kind::BasketAmount { .. })
    }

    fn targets(&self) -> Vec<&Target> {
        match self {
            Kind::PercentOff { target, .. }
            | Kind::AmountOff { target, .. }
            | Kind::FixedPrice { target, .. }
            | Kind::NForM { target, .. }
            | Kind::NForPrice { target, .. } => vec![target],
            Kind::BuyGet { buy, get, .. } => vec![buy, get],
            Kind::Bundle { components, .. } => components.iter().collect(),
            Kind::BasketPercent { .. } | Kind::BasketAmount { .. } => Vec::new(),
        }
    }
}

/// When a promotion runs, in the store's local time. Days are counted from 1970-01-01;
/// weekdays are a mask, Monday = bit 0; minutes of the day `from_minute..to_minute`
/// (0..1440 is all day).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub from_day: i32,
    /// The last day it runs (inclusive).
    pub to_day: i32,
    pub weekdays: u8,
    pub from_minute: u16,
    pub to_minute: u16,
}

impl Window {
    pub const ALL_WEEK: u8 = 0b111_1111;

    /// Every day and hour from `from_day` to `to_day`.
    pub fn days(from_day: i32, to_day: i32) -> Window {
        Window { from_day, to_day, weekdays: Self::ALL_WEEK, from_minute: 0, to_minute: 24 * 60 }
    }

    pub fn contains(&self, at: LocalTime) -> bool {
        (self.from_day..=self.to_day).contains(&at.day)
            && self.weekdays & (1 << at.weekday()) != 0
            && (self.from_minute..self.to_minute).contains(&at.minute)
    }
}

/// A moment in the store's local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    /// Days since 1970-01-01.
    pub day: i32,
    /// Minutes since midnight.
    pub minute: u16,
}

impl LocalTime {
    /// Unix milliseconds at a UTC offset (the store's zone).
    pub fn from_unix_ms(unix_ms: i64, utc_offset_minutes: i32) -> LocalTime {
        let minutes = unix_ms.div_euclid(60_000) + i64::from(utc_offset_minutes);
        LocalTime { day: minutes.div_euclid(1440) as i32, minute: minutes.rem_euclid(1440) as u16 }
    }

    /// Monday = 0 … Sunday = 6 (1970-01-01 was a Thursday).
    pub fn weekday(self) -> u8 {
        (self.day + 3).rem_euclid(7) as u8
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Channel {
    Store,
    Online,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    Everyone,
    /// Customers who show a loyalty card.
    LoyaltyMembers,
    /// One customer's personal offer.
    Customer(CustomerId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coupon {
    /// What the customer types or shows (compared without case).
    pub code: String,
    /// Once per customer (a customer is needed to use it).
    pub single_use: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    pub id: u32,
    pub version: u32,
    /// Printed on the receipt.
    pub name: String,
    pub kind: Kind,
    pub priority: u16,
    pub exclusive_group: Option<String>,
    pub window: Window,
    /// `None`: every store.
    pub stores: Option<BTreeSet<StoreId>>,
    pub channels: BTreeSet<Channel>,
    pub audience: Audience,
    pub coupon: Option<Coupon>,
}

/// A definition HQ refuses, naming the promotion and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("promotion {id}: {field}: {reason}")]
pub struct PromotionError {
    pub id: u32,
    pub field: &'static str,
    pub reason: String,
}

/// What the set is checked against: the catalog's SKUs and categories.
pub trait Catalog {
    fn has_sku(&self, sku: &Sku) -> bool;
    fn has_category(&self, category: &str) -> bool;
}

impl Promotion {
    fn refuse(&self, field: &'static str, reason: impl Into<String>) -> PromotionError {
        PromotionError { id: self.id, field, reason: reason.into() }
    }

    /// Checks the definition against its own rules and the catalog.
    pub fn validate(&self, catalog: &impl Catalog) -> Result<(), PromotionError> {
        self.validate_scope()?;
        self.validate_kind()?;
        self.validate_targets(catalog)
    }

    /// Its name, and where, when and to whom it applies.
    fn validate_scope(&self) -> Result<(), PromotionError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > NAME_LEN_MAX_CHARS || name.chars().any(char::is_control) {
            return Err(self.refuse("name", format!("1 to {NAME_LEN_MAX_CHARS} printable characters")));
        }
        let w = &self.window;
        if w.to_day < w.from_day {
            return Err(self.refuse("window", "it ends before it starts"));
        }
        if w.weekdays == 0 || w.weekdays > Window::ALL_WEEK {
            return Err(self.refuse("window.weekdays", "at least one day of the week (a mask of 7 bits)"));
        }
        if w.from_minute >= w.to_minute || w.to_minute > 24 * 60 {
            return Err(self.refuse("window.hours", "from before to, within the day"));
        }
        if self.channels.is_empty() {
            return Err(self.refuse("channels", "at least one channel"));
        }
        if self.stores.as_ref().is_some_and(BTreeSet::is_empty) {
            return Err(self.refuse("stores", "all stores, or a list of at least one"));
        }
        if let Some(c) = &self.coupon {
            if !crate::basket::is_coupon_code(&c.code) {
                return Err(self.refuse("coupon.code", "1 to 32 Latin letters, digits or -"));
            }
        }
        Ok(())
    }

    /// The amounts, percents and group sizes of its kind.
    fn validate_kind(&self) -> Result<(), PromotionError> {
        let positive = |field: &'static str, k: Kopecks| {
            if k.0 <= 0 || k > crate::catalog::PRICE_KOPECKS_MAX {
                Err(self.refuse(field, format!("more than 0 and at most {}", crate::catalog::PRICE_KOPECKS_MAX)))
            } else {
                Ok(())
            }
        };
        let percent = |field: &'static str, p: u8| {
            if (1..=100).contains(&p) {
                Ok(())
            } else {
                Err(self.refuse(field, "1 to 100 %"))
            }
        };
        let group = |field: &'static str, n: u32| {
            if (1..=GROUP_SIZE_MAX).contains(&n) {
                Ok(())
            } else {
                Err(self.refuse(field, format!("1 to {GROUP_SIZE_MAX}")))
            }
        };
        match &self.kind {
            Kind::PercentOff { percent: p, .. } => percent("percent", *p)?,
            Kind::AmountOff { amount, .. } => positive("amount", *amount)?,
            Kind::FixedPrice { price, .. } => positive("price", *price)?,
            Kind::NForM { n, m, .. } => {
                group("n", *n)?;
                if *m == 0 || m >= n {
                    return Err(self.refuse("m", format!("pay for fewer than the {n} taken, and at least 1")));
                }
            }
            Kind::NForPrice { n, price, .. } => {
                group("n", *n)?;
                if *n < 2 {
                    return Err(self.refuse("n", "at least 2 (for one piece, use a promotional price)"));
                }
                positive("price", *price)?;
            }
            Kind::BuyGet { buy_qty, get_qty, percent: p, .. } => {
                group("buy_qty", *buy_qty)?;
                group("get_qty", *get_qty)?;
                percent("percent", *p)?;
            }
            Kind::Bundle { components, price } => {
                if !(2..=BUNDLE_COMPONENTS_MAX).contains(&components.len()) {
                    return Err(self.refuse("components", format!("2 to {BUNDLE_COMPONENTS_MAX}")));
                }
                positive("price", *price)?;
            }
            Kind::BasketPercent { threshold, percent: p } => {
                positive("threshold", *threshold)?;
                percent("percent", *p)?;
            }
            Kind::BasketAmount { threshold, amount } => {
                positive("threshold", *threshold)?;
                positive("amount", *amount)?;
                if amount > threshold {
                    return Err(self.refuse("amount", "at most the threshold (a basket never goes below zero)"));
                }
            }
        }
        Ok(())
    }

    /// What it applies to is in the catalog.
    fn validate_targets(&self, catalog: &impl Catalog) -> Result<(), PromotionError> {
        for target in self.kind.targets() {
            match target {
                Target::Items(skus) => {
                    if skus.is_empty() || skus.len() > TARGET_ENTRIES_MAX {
                        return Err(self.refuse("items", format!("1 to {TARGET_ENTRIES_MAX} SKUs")));
                    }
                    if let Some(sku) = skus.iter().find(|s| !catalog.has_sku(s)) {
                        return Err(self.refuse("items", format!("SKU {sku} is not in the catalog")));
                    }
                }
                Target::Categories(categories) => {
                    if categories.is_empty() || categories.len() > TARGET_ENTRIES_MAX {
                        return Err(self.refuse("categories", format!("1 to {TARGET_ENTRIES_MAX} categories")));
                    }
                    if let Some(c) = categories.iter().find(|c| !catalog.has_category(c)) {
                        return Err(self.refuse("categories", format!("category «{c}» is not in the catalog")));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Who is buying, where and when.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    pub store: StoreId,
    pub channel: Channel,
    pub at: LocalTime,
    /// The loyalty customer, if a card was shown.
    pub customer: Option<&'a CustomerId>,
    /// Coupon codes presented.
    pub coupons: &'a [String],
    /// Promotions whose single-use coupon this customer has already used.
    pub used_coupons: &'a BTreeSet<u32>,
}

/// One line of the basket as pricing sees it.
#[derive(Clone, Debug)]
pub struct PriceLine<'a> {
    pub sku: &'a Sku,
    pub category: &'a str,
    pub unit: Unit,
    /// Pieces, or grams.
    pub quantity: i64,
    /// A piece's price, or a kilogram's.
    pub price: Kopecks,
    /// What the line costs before any discount.
    pub amount: Kopecks,
}

/// A promotion's part of a line's discount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    pub promotion: u32,
    pub version: u32,
    pub amount: Kopecks,
}

/// The discounts of one line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineDiscount {
    pub discount: Kopecks,
    /// By promotion, in the order they applied.
    pub applied: Vec<Applied>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Priced {
    /// One per input line, in the input's order.
    pub lines: Vec<LineDiscount>,
    pub total_discount: Kopecks,
}

/// A validated, indexed set of promotions.
#[derive(Clone, Debug, Default)]
pub struct PromotionSet {
    /// In their turn: higher priority first, then lower id. Indexes below are into this.
    promotions: Vec<Promotion>,
    /// (id, index) by id.
    by_id: Vec<(u32, usize)>,
    /// Promotion indexes by SKU and by category they target.
    /// (Hashed: a basket's lines look them up on every reprice.)
    by_sku: HashMap<Sku, Vec<usize>>,
    by_category: HashMap<String, Vec<usize>>,
    basket: Vec<usize>,
    /// Each promotion's exclusive group, as a number (`u32::MAX`: none).
    group_of: Vec<u32>,
    groups: usize,
}

impl PromotionSet {
    /// Validates every promotion (ids unique, each against the catalog) and indexes them.
    pub fn new(mut promotions: Vec<Promotion>, catalog: &impl Catalog) -> Result<PromotionSet, PromotionError> {
        if promotions.len() > PROMOTIONS_MAX {
            return Err(PromotionError {
                id: 0,
                field: "promotions",
                reason: format!("at most {PROMOTIONS_MAX} in a set"),
            });
        }
        promotions.sort_by_key(|p| p.id);
        for pair in promotions.windows(2) {
            if pair[0].id == pair[1].id {
                return Err(pair[1].refuse("id", "used by two promotions"));
            }
        }
        for p in &promotions {
            p.validate(catalog)?;
        }
        // Stored in their turn, so that index order is the order they apply in.
        promotions.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        let mut by_id: Vec<(u32, usize)> = promotions.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        by_id.sort_unstable();
        let mut set = PromotionSet { promotions, by_id, ..PromotionSet::default() };
        let mut names: BTreeMap<&str, u32> = BTreeMap::new();
        for p in &set.promotions {
            let g = match &p.exclusive_group {
                Some(name) => {
                    let next = names.len() as u32;
                    *names.entry(name.as_str()).or_insert(next)
                }
                None => u32::MAX,
            };
            set.group_of.push(g);
        }
        set.groups = names.len();
        for (i, p) in set.promotions.iter().enumerate() {
            if p.kind.is_basket() {
                set.basket.push(i);
            }
            for target in p.kind.targets() {
                match target {
                    Target::Items(skus) => skus.iter().for_each(|s| set.by_sku.entry(s.clone()).or_default().push(i)),
                    Target::Categories(cs) => {
                        cs.iter().for_each(|c| set.by_category.entry(c.clone()).or_default().push(i))
                    }
                }
            }
        }
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.promotions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.promotions.is_empty()
    }

    pub fn get(&self, id: u32) -> Option<&Promotion> {
        let at = self.by_id.binary_search_by_key(&id, |&(id, _)| id).ok()?;
        Some(&self.promotions[self.by_id[at].1])
    }

    fn active(&self, p: &Promotion, cx: &Context<'_>) -> bool {
        if !p.channels.contains(&cx.channel) || !p.window.contains(cx.at) {
            return false;
        }
        if p.stores.as_ref().is_some_and(|s| !s.contains(&cx.store)) {
            return false;
        }
        let audience = match &p.audience {
            Audience::Everyone => true,
            Audience::LoyaltyMembers => cx.customer.is_some(),
            Audience::Customer(c) => cx.customer == Some(c),
        };
        let coupon = match &p.coupon {
            None => true,
            Some(c) => {
                cx.coupons.iter().any(|code| code.eq_ignore_ascii_case(&c.code))
                    && (!c.single_use || (cx.customer.is_some() && !cx.used_coupons.contains(&p.id)))
            }
        };
        audience && coupon
    }

    /// The discounts of `lines` under this set in `cx`.
    pub fn price(&self, lines: &[PriceLine<'_>], cx: &Context<'_>) -> Priced {
        // The promotions that can touch this basket, each with the lines it can touch:
        // (promotion, line) pairs from the indexes, grouped by promotion.
        // As one number each, promotion in the high half: sorting them groups by
        // promotion in its turn, lines in order.
        let mut keys: Vec<u64> = Vec::with_capacity(lines.len() * 8);
        for (i, l) in lines.iter().enumerate() {
            let hits = self
                .by_sku
                .get(l.sku)
                .into_iter()
                .flatten()
                .chain(self.by_category.get(l.category).into_iter().flatten());
            keys.extend(hits.map(|&p| (p as u64) << 32 | i as u64));
        }
        keys.sort_unstable();
        keys.dedup();
        let pairs: Vec<(u32, u32)> = keys.iter().map(|&k| ((k >> 32) as u32, k as u32)).collect();
        let touched_lines: Vec<usize> = pairs.iter().map(|&(_, l)| l as usize).collect();
        let all_lines: Vec<usize> = (0..lines.len()).collect();
        let mut active: Vec<(usize, &[usize])> = Vec::new();
        let mut start = 0;
        while start < pairs.len() {
            let p = pairs[start].0;
            let end = start + pairs[start..].iter().take_while(|&&(q, _)| q == p).count();
            active.push((p as usize, &touched_lines[start..end]));
            start = end;
        }
        // Item promotions came in index order, which is their turn; basket promotions (no
        // index entries) go after them, in their turn too.
        active.extend(self.basket.iter().map(|&p| (p, all_lines.as_slice())));
        active.retain(|&(p, _)| self.active(&self.promotions[p], cx));
        // Each exclusive group's members, as positions in `active` in their turn: group
        // g's are `members[starts[g]..starts[g + 1]]` (a counting sort).
        let mut starts = vec![0usize; self.groups + 1];
        for &(p, _) in &active {
            if let Some(s) = starts.get_mut(self.group_of[p] as usize + 1) {
                *s += 1;
            }
        }
        for g in 0..self.groups {
            starts[g + 1] += starts[g];
        }
        let mut members = vec![0usize; starts[self.groups]];
        let mut next = starts.clone();
        for (k, &(p, _)) in active.iter().enumerate() {
            if let Some(slot) = next.get_mut(self.group_of[p] as usize) {
                members[*slot] = k;
                *slot += 1;
            }
        }
        let mut state = State::new(lines);
        // Exclusive groups that had their turn, per stage.
        let mut done = vec![false; self.groups];
        for basket_stage in [false, true] {
            done.iter_mut().for_each(|d| *d = false);
            for (k, &(p, touched)) in active.iter().enumerate() {
                let promotion = &self.promotions[p];
                if promotion.kind.is_basket() != basket_stage {
                    continue;
                }
                let group = self.group_of[p];
                if group == u32::MAX {
                    state.apply(promotion, touched);
                    continue;
                }
                if std::mem::replace(&mut done[group as usize], true) {
                    continue; // the group had its turn (in this stage) at its first member
                }
                // The group's turn: every member tried on what is left (and undone), the
                // one that saves the most applied.
                let (mut best, mut best_saved) = (None, 0);
                state.recording = true;
                let group_members = &members[starts[group as usize]..starts[group as usize + 1]];
                for &(m, touched) in group_members.iter().filter(|&&j| j >= k).map(|&j| &active[j]) {
                    let member = &self.promotions[m];
                    if member.kind.is_basket() != basket_stage {
                        continue;
                    }
                    let saved = state.apply(member, touched);
                    state.undo_all();
                    if saved > best_saved {
                        (best, best_saved) = (Some((member, touched)), saved);
                    }
                }
                state.recording = false;
                if let Some((member, touched)) = best {
                    state.apply(member, touched);
                }
            }
        }
        state.finish()
    }
}

/// One unit a multi-unit promotion can use: a piece of a piece line.
#[derive(Clone, Copy, Debug)]
struct Piece {
    line: u32,
    price: i64,
    used: bool,
}

/// One change to a [`State`], kept while an exclusive group's members are tried so that
/// each trial is undone in the time it took (not by copying the whole state).
#[derive(Clone, Copy, Debug)]
enum Undo {
    /// A line's discount before.
    Discount(u32, i64),
    /// An `applied` entry was pushed.
    Pushed,
    /// An `applied` entry's amount before.
    Amount(u32, i64),
    /// A piece was marked used.
    Used(u32),
    /// A line's free count before.
    Free(u32, i64),
}

/// Pricing in progress.
#[derive(Clone, Debug)]
struct State<'l> {
    lines: &'l [PriceLine<'l>],
    /// Pieces in canonical order: price high to low, then SKU, then line content. A
    /// line's pieces are next to each other, from `first_piece[line]`.
    pieces: Vec<Piece>,
    first_piece: Vec<u32>,
    /// The lines in canonical order (by content, never by position).
    order: std::rc::Rc<Vec<usize>>,
    /// Per line: pieces of it not used by an item promotion (weighed: 1 or 0).
    free: Vec<i64>,
    discount: Vec<i64>,
    /// (line, what a promotion gave it), in the order given.
    applied: Vec<(usize, Applied)>,
    /// Where the promotion being applied began adding to `applied`.
    applying_since: usize,
    /// While `recording`, every change, so that [`State::undo_all`] can take it back.
    recording: bool,
    undo: Vec<Undo>,
}

fn matches(target: &Target, line: &PriceLine<'_>) -> bool {
    match target {
        Target::Items(skus) => skus.contains(line.sku),
        Target::Categories(cs) => cs.contains(line.category),
    }
}

/// `amount × percent / 100`, rounded half up.
fn percent_of(amount: i64, percent: u8) -> i64 {
    ((i128::from(amount) * i128::from(percent) + 50) / 100) as i64
}

impl<'l> State<'l> {
    fn new(lines: &'l [PriceLine<'l>]) -> State<'l> {
        let total_pieces: i64 =
            lines.iter().filter(|l| l.unit == Unit::Piece).map(|l| l.quantity.max(0)).fold(0, i64::saturating_add);
        // Dearest first, then by SKU and content; equal lines are interchangeable.
        let mut order: Vec<usize> = (0..lines.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&lines[a], &lines[b]);
            y.price
                .cmp(&x.price)
                .then(x.sku.cmp(y.sku))
                .then(x.quantity.cmp(&y.quantity))
                .then((x.unit == Unit::Kilogram).cmp(&(y.unit == Unit::Kilogram)))
                .then(a.cmp(&b))
        });
        let mut pieces = Vec::new();
        let mut first_piece = vec![0u32; lines.len()];
        if total_pieces <= PIECES_GROUPED_MAX {
            for &i in order.iter().filter(|&&i| lines[i].unit == Unit::Piece) {
                first_piece[i] = pieces.len() as u32;
                for _ in 0..lines[i].quantity.max(0) {
                    pieces.push(Piece { line: i as u32, price: lines[i].price.0, used: false });
                }
            }
        }
        State {
            lines,
            pieces,
            first_piece,
            order: std::rc::Rc::new(order),
            free: lines.iter().map(|l| if l.unit == Unit::Piece { l.quantity.max(0) } else { 1 }).collect(),
            discount: vec![0; lines.len()],
            applied: Vec::new(),
            applying_since: 0,
            recording: false,
            undo: Vec::new(),
        }
    }

    fn record(&mut self, u: Undo) {
        if self.recording {
            self.undo.push(u);
        }
    }

    /// Takes back every change recorded, newest first.
    fn undo_all(&mut self) {
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::Discount(line, before) => self.discount[line as usize] = before,
                Undo::Pushed => {
                    self.applied.pop();
                }
                Undo::Amount(i, before) => self.applied[i as usize].1.amount = Kopecks(before),
                Undo::Used(piece) => self.pieces[piece as usize].used = false,
                Undo::Free(line, before) => self.free[line as usize] = before,
            }
        }
    }

    fn set_free(&mut self, line: usize, free: i64) {
        self.record(Undo::Free(line as u32, self.free[line]));
        self.free[line] = free;
    }

    fn left_to_pay(&self, line: usize) -> i64 {
        self.lines[line].amount.0 - self.discount[line]
    }

    /// Gives `amount` off line `line` for promotion `p` (never below zero); returns what
    /// was given.
    fn give(&mut self, line: usize, p: &Promotion, amount: i64) -> i64 {
        let amount = amount.clamp(0, self.left_to_pay(line).max(0));
        if amount > 0 {
            self.record(Undo::Discount(line as u32, self.discount[line]));
            self.discount[line] += amount;
            // Only `p`'s own entries can match, all made since its `apply` began.
            let since = self.applying_since;
            match self.applied[since..].iter().position(|(l, a)| *l == line && a.promotion == p.id).map(|i| i + since) {
                Some(i) => {
                    self.record(Undo::Amount(i as u32, self.applied[i].1.amount.0));
                    self.applied[i].1.amount.0 += amount;
                }
                None => {
                    self.record(Undo::Pushed);
                    self.applied.push((line, Applied { promotion: p.id, version: p.version, amount: Kopecks(amount) }))
                }
            }
        }
        amount
    }

    /// Marks `n` free pieces of `line` used (the per-line promotions use a line's pieces
    /// without picking which).
    fn use_pieces(&mut self, line: usize, n: i64) {
        self.set_free(line, self.free[line] - n);
        let mut left = n;
        for i in self.pieces_of(line) {
            if left == 0 {
                break;
            }
            if !self.pieces[i].used {
                self.record(Undo::Used(i as u32));
                self.pieces[i].used = true;
                left -= 1;
            }
        }
    }

    /// The indexes of `line`'s pieces (none for a weighed line, or when the basket has
    /// too many pieces to group).
    fn pieces_of(&self, line: usize) -> std::ops::Range<usize> {
        let l = &self.lines[line];
        if self.pieces.is_empty() || l.unit != Unit::Piece {
            return 0..0;
        }
        let first = self.first_piece[line] as usize;
        first..first + l.quantity.max(0) as usize
    }

    /// Spreads `amount` over `pieces` (indexes) in proportion to their prices.
    fn give_over(&mut self, pieces: &[usize], p: &Promotion, amount: i64) -> i64 {
        let weights: Vec<i64> = pieces.iter().map(|&i| self.pieces[i].price).collect();
        let Some(shares) = pricing::spread(amount, &weights) else { return 0 };
        let mut given = 0;
        for (&i, share) in pieces.iter().zip(shares) {
            self.take(i);
            given += self.give(self.pieces[i].line as usize, p, share);
        }
        given
    }

    fn take(&mut self, piece: usize) {
        self.record(Undo::Used(piece as u32));
        self.pieces[piece].used = true;
        let line = self.pieces[piece].line as usize;
        self.set_free(line, self.free[line] - 1);
    }

    /// Free pieces of the lines in `touched` that `target` matches, in canonical order.
    fn free_pieces(&self, target: &Target, touched: &[usize], all_match: bool) -> Vec<usize> {
        // A promotion touches a few lines; their pieces, in the canonical order.
        let mut ok: Vec<usize> = touched
            .iter()
            .copied()
            .filter(|&i| self.free[i] > 0 && (all_match || matches(target, &self.lines[i])))
            .collect();
        ok.sort_unstable_by_key(|&i| self.first_piece[i]);
        ok.into_iter().flat_map(|line| self.pieces_of(line)).filter(|&i| !self.pieces[i].used).collect()
    }

    /// Applies `p` to what is left of the lines in `touched`; returns what it saved.
    fn apply(&mut self, p: &Promotion, touched: &[usize]) -> i64 {
        self.applying_since = self.applied.len();
        // The index found exactly the lines a single-target promotion matches.
        let single = p.kind.single_target();
        match &p.kind {
            Kind::PercentOff { target, percent } => self.apply_percent_off(p, target, *percent, touched, single),
            Kind::AmountOff { target, amount } | Kind::FixedPrice { target, price: amount } => {
                self.apply_amount_off(p, target, *amount, touched, single)
            }
            Kind::NForM { target, n, m } => self.apply_n_for_m(p, target, (*n, *m), touched, single),
            Kind::NForPrice { target, n, price } => self.apply_n_for_price(p, target, (*n, *price), touched, single),
            Kind::BuyGet { buy, buy_qty, get, get_qty, percent } => {
                self.apply_buy_get(p, (buy, *buy_qty), (get, *get_qty), *percent, touched)
            }
            Kind::Bundle { components, price } => self.apply_bundle(p, components, *price, touched),
            Kind::BasketPercent { threshold, .. } | Kind::BasketAmount { threshold, .. } => {
                self.apply_to_basket(p, *threshold)
            }
        }
    }

    /// `percent` off every free unit of the target's lines.
    fn apply_percent_off(
        &mut self,
        p: &Promotion,
        target: &Target,
        percent: u8,
        touched: &[usize],
        single: bool,
    ) -> i64 {
        let lines = self.lines;
        let mut saved = 0;
        for &i in touched {
            let l = &lines[i];
            if !(single || matches(target, l)) || self.free[i] <= 0 {
                continue;
            }
            let base = match l.unit {
                Unit::Piece => l.price.0.saturating_mul(self.free[i]),
                Unit::Kilogram => l.amount.0,
            };
            saved += self.give(i, p, percent_of(base, percent));
            let n = self.free[i];
            self.use_pieces(i, n);
        }
        saved
    }

    /// An amount off, or a promotional price, for every free unit of the target's lines.
    fn apply_amount_off(
        &mut self,
        p: &Promotion,
        target: &Target,
        amount: Kopecks,
        touched: &[usize],
        single: bool,
    ) -> i64 {
        let lines = self.lines;
        let mut saved = 0;
        let fixed = matches!(p.kind, Kind::FixedPrice { .. });
        for &i in touched {
            let l = &lines[i];
            if !(single || matches(target, l)) || self.free[i] <= 0 {
                continue;
            }
            let per_unit = if fixed { (l.price.0 - amount.0).max(0) } else { amount.0.min(l.price.0) };
            let off = match l.unit {
                Unit::Piece => per_unit.saturating_mul(self.free[i]),
                Unit::Kilogram => {
                    pricing::line_amount(Kopecks(per_unit), Unit::Kilogram, l.quantity).map_or(0, |k| k.0)
                }
            };
            if off > 0 {
                saved += self.give(i, p, off);
                let n = self.free[i];
                self.use_pieces(i, n);
            }
        }
        saved
    }

    /// Groups of `n` free pieces, the cheapest `n - m` of each free.
    fn apply_n_for_m(
        &mut self,
        p: &Promotion,
        target: &Target,
        (n, m): (u32, u32),
        touched: &[usize],
        single: bool,
    ) -> i64 {
        let mut saved = 0;
        let free = self.free_pieces(target, touched, single);
        for group in free.chunks_exact(n as usize) {
            // The cheapest of the group (canonical order: dearest first) are free.
            for &i in group {
                self.take(i);
            }
            for &i in &group[m as usize..] {
                let (line, price) = (self.pieces[i].line as usize, self.pieces[i].price);
                saved += self.give(line, p, price);
            }
        }
        saved
    }

    /// Groups of `n` free pieces at `price` the group.
    fn apply_n_for_price(
        &mut self,
        p: &Promotion,
        target: &Target,
        (n, price): (u32, Kopecks),
        touched: &[usize],
        single: bool,
    ) -> i64 {
        let mut saved = 0;
        let free = self.free_pieces(target, touched, single);
        for group in free.chunks_exact(n as usize) {
            let sum: i64 = group.iter().map(|&i| self.pieces[i].price).sum();
            if sum > price.0 {
                saved += self.give_over(group, p, sum - price.0);
            }
        }
        saved
    }

    /// Buy `buy_qty` of one target, get `get_qty` of another `percent` off, as often as
    /// the free pieces allow.
    fn apply_buy_get(
        &mut self,
        p: &Promotion,
        (buy, buy_qty): (&Target, u32),
        (get, get_qty): (&Target, u32),
        percent: u8,
        touched: &[usize],
    ) -> i64 {
        let mut saved = 0;
        loop {
            let bought: Vec<usize> = self.free_pieces(buy, touched, false).into_iter().take(buy_qty as usize).collect();
            if bought.len() < buy_qty as usize {
                break;
            }
            // The cheapest eligible pieces are the ones discounted.
            let got: Vec<usize> = self
                .free_pieces(get, touched, false)
                .into_iter()
                .rev()
                .filter(|i| !bought.contains(i))
                .take(get_qty as usize)
                .collect();
            if got.len() < get_qty as usize {
                break;
            }
            for &i in &bought {
                self.take(i);
            }
            for &i in &got {
                self.take(i);
                let (line, price) = (self.pieces[i].line as usize, self.pieces[i].price);
                saved += self.give(line, p, percent_of(price, percent));
            }
        }
        saved
    }

    /// A set of one piece of each component at `price`, as often as the free pieces allow.
    fn apply_bundle(&mut self, p: &Promotion, components: &[Target], price: Kopecks, touched: &[usize]) -> i64 {
        let mut saved = 0;
        loop {
            let mut set: Vec<usize> = Vec::with_capacity(components.len());
            for c in components {
                match self.free_pieces(c, touched, false).into_iter().find(|i| !set.contains(i)) {
                    Some(i) => set.push(i),
                    None => break,
                }
            }
            let sum: i64 = set.iter().map(|&i| self.pieces[i].price).sum();
            if set.len() < components.len() || sum <= price.0 {
                break;
            }
            saved += self.give_over(&set, p, sum - price.0);
        }
        saved
    }

    /// A basket promotion, on what is left to pay once it reaches `threshold`.
    fn apply_to_basket(&mut self, p: &Promotion, threshold: Kopecks) -> i64 {
        let mut saved = 0;
        // Spread in the canonical order of lines, so that ties in the spread do not
        // depend on the order of scanning.
        let order = std::rc::Rc::clone(&self.order);
        let left: Vec<i64> = order.iter().map(|&i| self.left_to_pay(i).max(0)).collect();
        let total: i64 = left.iter().sum();
        if total < threshold.0 {
            return 0;
        }
        let off = match &p.kind {
            Kind::BasketPercent { percent, .. } => percent_of(total, *percent),
            Kind::BasketAmount { amount, .. } => amount.0.min(total),
            _ => unreachable!("basket kinds only"),
        };
        if let Some(shares) = pricing::spread(off, &left) {
            for (k, share) in shares.into_iter().enumerate() {
                saved += self.give(order[k], p, share);
            }
        }
        saved
    }

    fn finish(self) -> Priced {
        let mut lines: Vec<LineDiscount> =
            self.discount.iter().map(|&d| LineDiscount { discount: Kopecks(d), applied: Vec::new() }).collect();
        for (line, a) in self.applied {
            lines[line].applied.push(a);
        }
        let total_discount = Kopecks(self.discount.iter().sum());
        Priced { lines, total_discount }
    }
}

#[cfg(test)]
mod tests;
