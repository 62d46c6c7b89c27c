//! Catalog edits that cannot wipe a chain: what an import would change ([`diff`]), and
//! edits of one item by SKU ([`Edit`]).
//!
//! The catalog is published whole and versioned (the wire and the stores stay as they
//! are); what changes is how HQ gets to a new version. A whole-file import that would
//! remove items removes nothing unless removals are confirmed; an import identical to
//! the current catalog publishes nothing; a price or name change, a new item or a
//! discontinued one is an edit of its own, checked against the rest of the catalog.

use std::collections::{BTreeMap, HashMap};

use kassa_protocol::catalog::{CatalogItem, NAME_LEN_MAX_CHARS, PRICE_KOPECKS_MAX};
use kassa_protocol::{Kopecks, Sku};
use serde::Serialize;
use serde_json::json;

/// Items of each list a preview shows (the counts are always whole).
pub const PREVIEW_ITEMS_MAX: usize = 200;
/// SKUs of each list an audit entry names.
pub const AUDIT_SKUS_MAX: usize = 20;

/// What publishing `new` over `old` would change, by SKU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogDiff {
    pub added: Vec<CatalogItem>,
    /// (before, after)
    pub changed: Vec<(CatalogItem, CatalogItem)>,
    pub removed: Vec<CatalogItem>,
}

impl CatalogDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }

    /// The preview an API answer carries: counts, and the first [`PREVIEW_ITEMS_MAX`] of
    /// each list (a change as its SKU, name and the fields before and after).
    pub fn preview(&self) -> serde_json::Value {
        let changed: Vec<_> = self
            .changed
            .iter()
            .take(PREVIEW_ITEMS_MAX)
            .map(|(before, after)| {
                json!({ "sku": after.sku, "name": after.name, "fields": changed_fields(before, after) })
            })
            .collect();
        json!({
            "added_count": self.added.len(),
            "changed_count": self.changed.len(),
            "removed_count": self.removed.len(),
            "added": self.added.iter().take(PREVIEW_ITEMS_MAX).map(ItemView::from).collect::<Vec<_>>(),
            "changed": changed,
            "removed": self.removed.iter().take(PREVIEW_ITEMS_MAX).map(ItemView::from).collect::<Vec<_>>(),
        })
    }

    /// What the audit log keeps of it: counts and the first SKUs of each list.
    pub fn audit_summary(&self) -> serde_json::Value {
        let skus = |items: &mut dyn Iterator<Item = &CatalogItem>| -> Vec<String> {
            items.take(AUDIT_SKUS_MAX).map(|i| i.sku.as_str().to_owned()).collect()
        };
        let prices: Vec<_> = self
            .changed
            .iter()
            .filter(|(b, a)| b.price != a.price)
            .take(AUDIT_SKUS_MAX)
            .map(|(b, a)| json!({ "sku": a.sku, "from_kopecks": b.price.0, "to_kopecks": a.price.0 }))
            .collect();
        json!({
            "added": self.added.len(),
            "changed": self.changed.len(),
            "removed": self.removed.len(),
            "added_skus": skus(&mut self.added.iter()),
            "changed_skus": skus(&mut self.changed.iter().map(|(_, a)| a)),
            "removed_skus": skus(&mut self.removed.iter()),
            "prices": prices,
        })
    }
}

/// An item as the API shows it: the CSV's fields and names.
#[derive(Debug, Clone, Serialize)]
pub struct ItemView {
    pub sku: String,
    pub gtin: Option<String>,
    pub name: String,
    pub category: String,
    pub price_kopecks: i64,
    pub vat_percent: &'static str,
    pub unit: &'static str,
    pub plu: Option<u32>,
}

impl From<&CatalogItem> for ItemView {
    fn from(i: &CatalogItem) -> Self {
        ItemView {
            sku: i.sku.as_str().to_owned(),
            gtin: i.gtin.map(|g| g.short().to_owned()),
            name: i.name.clone(),
            category: i.category.clone(),
            price_kopecks: i.price.0,
            vat_percent: i.vat.code(),
            unit: i.unit.code(),
            plu: i.plu,
        }
    }
}

fn changed_fields(before: &CatalogItem, after: &CatalogItem) -> serde_json::Value {
    let (b, a) = (ItemView::from(before), ItemView::from(after));
    let (b, a) = (serde_json::to_value(b).unwrap_or_default(), serde_json::to_value(a).unwrap_or_default());
    let mut out = serde_json::Map::new();
    if let (Some(b), Some(a)) = (b.as_object(), a.as_object()) {
        for (k, v) in a {
            if b.get(k) != Some(v) {
                out.insert(k.clone(), json!({ "from": b.get(k), "to": v }));
            }
        }
    }
    serde_json::Value::Object(out)
}

/// What publishing `new` would change over `old`; lists in SKU order.
pub fn diff(old: &[CatalogItem], new: &[CatalogItem]) -> CatalogDiff {
    let old: BTreeMap<&Sku, &CatalogItem> = old.iter().map(|i| (&i.sku, i)).collect();
    let new_by: BTreeMap<&Sku, &CatalogItem> = new.iter().map(|i| (&i.sku, i)).collect();
    let mut d = CatalogDiff::default();
    for (sku, item) in &new_by {
        match old.get(sku) {
            None => d.added.push((*item).clone()),
            Some(before) if before != item => d.changed.push(((*before).clone(), (*item).clone())),
            Some(_) => {}
        }
    }
    d.removed = old.iter().filter(|(sku, _)| !new_by.contains_key(*sku)).map(|(_, i)| (*i).clone()).collect();
    d
}

/// An edit of one item, by SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// A new item (its SKU, GTIN and PLU not used by another).
    Add(CatalogItem),
    /// A new price and/or name.
    Change { sku: Sku, price: Option<Kopecks>, name: Option<String> },
    /// Taken out of the catalog: stores stop selling it.
    Discontinue(Sku),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("no item with SKU {0} in the catalog")]
    NoSuchSku(String),
    #[error("SKU {0} is already in the catalog")]
    SkuExists(String),
    #[error("GTIN {gtin} is already item {sku}'s")]
    GtinTaken { gtin: String, sku: String },
    #[error("PLU {plu} is already item {sku}'s")]
    PluTaken { plu: u32, sku: String },
    #[error("price {0} kopecks is out of range (1 to {max} kopecks)", max = PRICE_KOPECKS_MAX.0)]
    Price(i64),
    #[error("a name is 1 to {NAME_LEN_MAX_CHARS} printable characters")]
    Name,
    #[error("nothing to change: give a new price_kopecks or name")]
    Nothing,
    #[error("item {0} is the last one: a catalog with no items could sell nothing")]
    LastItem(String),
}

impl EditError {
    /// The API's code for it.
    pub fn code(&self) -> &'static str {
        match self {
            EditError::NoSuchSku(_) => "no_such_sku",
            EditError::SkuExists(_) => "sku_exists",
            EditError::GtinTaken { .. } => "gtin_taken",
            EditError::PluTaken { .. } => "plu_taken",
            EditError::Price(_) => "bad_price",
            EditError::Name => "bad_name",
            EditError::Nothing => "nothing_to_change",
            EditError::LastItem(_) => "last_item",
        }
    }
}

pub fn check_price(k: i64) -> Result<Kopecks, EditError> {
    if k > 0 && Kopecks(k) <= PRICE_KOPECKS_MAX {
        Ok(Kopecks(k))
    } else {
        Err(EditError::Price(k))
    }
}

pub fn check_name(name: &str) -> Result<String, EditError> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > NAME_LEN_MAX_CHARS || name.chars().any(char::is_control) {
        Err(EditError::Name)
    } else {
        Ok(name.to_owned())
    }
}

/// The catalog after `edit`, or why not. The new item of an [`Edit::Add`] was validated
/// as a CSV row is; here it is checked against the others.
pub fn apply(mut items: Vec<CatalogItem>, edit: &Edit) -> Result<Vec<CatalogItem>, EditError> {
    let at: HashMap<&Sku, usize> = items.iter().enumerate().map(|(n, i)| (&i.sku, n)).collect();
    match edit {
        Edit::Add(item) => {
            if at.contains_key(&item.sku) {
                return Err(EditError::SkuExists(item.sku.as_str().into()));
            }
            for other in &items {
                if item.gtin.is_some() && other.gtin == item.gtin {
                    let gtin = item.gtin.map(|g| g.short().to_owned()).unwrap_or_default();
                    return Err(EditError::GtinTaken { gtin, sku: other.sku.as_str().into() });
                }
                if let (Some(plu), Some(theirs)) = (item.plu, other.plu) {
                    if plu == theirs {
                        return Err(EditError::PluTaken { plu, sku: other.sku.as_str().into() });
                    }
                }
            }
            items.push(item.clone());
        }
        Edit::Change { sku, price, name } => {
            let n = *at.get(sku).ok_or_else(|| EditError::NoSuchSku(sku.as_str().into()))?;
            if price.is_none() && name.is_none() {
                return Err(EditError::Nothing);
            }
            if let Some(p) = price {
                items[n].price = check_price(p.0)?;
            }
            if let Some(name) = name {
                items[n].name = check_name(name)?;
            }
        }
        Edit::Discontinue(sku) => {
            let n = *at.get(sku).ok_or_else(|| EditError::NoSuchSku(sku.as_str().into()))?;
            if items.len() == 1 {
                return Err(EditError::LastItem(sku.as_str().into()));
            }
            items.remove(n);
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kassa_protocol::catalog::parse_csv;

    const CSV: &str = "sku,gtin,name,category,price_kopecks,vat_percent,unit,plu\n\
        1,4650001209603,Молоко,М,10690,10,pcs,\n\
        2,,Яблоки,В,18900,10,kg,00001\n\
        3,,Хлеб,Х,5000,10,pcs,\n";

    #[test]
    fn a_diff_names_what_is_added_changed_and_removed() {
        let old = parse_csv(CSV).unwrap();
        assert!(diff(&old, &old).is_empty());
        let new = parse_csv(
            "sku,gtin,name,category,price_kopecks,vat_percent,unit,plu\n\
             1,4650001209603,Молоко,М,11990,10,pcs,\n\
             2,,Яблоки,В,18900,10,kg,00001\n\
             4,,Сыр,М,50000,10,pcs,\n",
        )
        .unwrap();
        let d = diff(&old, &new);
        assert_eq!(d.added.iter().map(|i| i.sku.as_str()).collect::<Vec<_>>(), ["4"]);
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.removed.iter().map(|i| i.sku.as_str()).collect::<Vec<_>>(), ["3"]);
        let p = d.preview();
        assert_eq!(
            (p["added_count"].as_u64(), p["changed_count"].as_u64(), p["removed_count"].as_u64()),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(p["changed"][0]["fields"], json!({ "price_kopecks": { "from": 10690, "to": 11990 } }));
        let a = d.audit_summary();
        assert_eq!(a["prices"][0], json!({ "sku": "1", "from_kopecks": 10690, "to_kopecks": 11990 }));
    }

    #[test]
    fn edits_are_checked_against_the_rest_of_the_catalog() {
        let items = parse_csv(CSV).unwrap();
        let sku = |s: &str| Sku(s.into());
        let changed =
            apply(items.clone(), &Edit::Change { sku: sku("1"), price: Some(Kopecks(9990)), name: None }).unwrap();
        assert_eq!(changed[0].price, Kopecks(9990));
        assert_eq!(diff(&items, &changed).changed.len(), 1);
        for (edit, code) in [
            (Edit::Change { sku: sku("9"), price: Some(Kopecks(1)), name: None }, "no_such_sku"),
            (Edit::Change { sku: sku("1"), price: Some(Kopecks(0)), name: None }, "bad_price"),
            (Edit::Change { sku: sku("1"), price: None, name: Some(" ".into()) }, "bad_name"),
            (Edit::Change { sku: sku("1"), price: None, name: None }, "nothing_to_change"),
            (Edit::Add(items[0].clone()), "sku_exists"),
            (Edit::Add(CatalogItem { sku: sku("5"), ..items[0].clone() }), "gtin_taken"),
            (Edit::Add(CatalogItem { sku: sku("5"), ..items[1].clone() }), "plu_taken"),
            (Edit::Discontinue(sku("9")), "no_such_sku"),
        ] {
            assert_eq!(apply(items.clone(), &edit).unwrap_err().code(), code, "{edit:?}");
        }
        let one =
            apply(apply(items.clone(), &Edit::Discontinue(sku("1"))).unwrap(), &Edit::Discontinue(sku("2"))).unwrap();
        assert_eq!(apply(one, &Edit::Discontinue(sku("3"))).unwrap_err().code(), "last_item");
    }
}
