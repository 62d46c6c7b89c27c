//! The catalog HQ publishes: items, prices, VAT rates, and the CSV format it imports.

use serde::{Deserialize, Serialize};

use crate::gtin::Gtin;
use crate::ids::Sku;
use crate::money::Kopecks;

/// VAT rates of Russian retail. Prices include VAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VatRate {
    Vat20,
    Vat10,
    Vat0,
    /// Not subject to VAT ("без НДС").
    None,
}

impl VatRate {
    /// The rate in whole percent; `None` has no rate.
    pub fn percent(self) -> Option<u8> {
        match self {
            VatRate::Vat20 => Some(20),
            VatRate::Vat10 => Some(10),
            VatRate::Vat0 => Some(0),
            VatRate::None => None,
        }
    }

    /// The catalog's spelling: `20`, `10`, `0` or `none`.
    pub fn parse(s: &str) -> Option<VatRate> {
        match s.trim() {
            "20" => Some(VatRate::Vat20),
            "10" => Some(VatRate::Vat10),
            "0" => Some(VatRate::Vat0),
            "none" | "" => Some(VatRate::None),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            VatRate::Vat20 => "20",
            VatRate::Vat10 => "10",
            VatRate::Vat0 => "0",
            VatRate::None => "none",
        }
    }

    /// How a receipt names the rate.
    pub fn label(self) -> &'static str {
        match self {
            VatRate::Vat20 => "НДС 20%",
            VatRate::Vat10 => "НДС 10%",
            VatRate::Vat0 => "НДС 0%",
            VatRate::None => "Без НДС",
        }
    }
}

/// How an item is counted: pieces, or grams for goods sold by weight (priced per kg).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Unit {
    Piece,
    Kilogram,
}

impl Unit {
    pub fn parse(s: &str) -> Option<Unit> {
        match s.trim() {
            "pcs" | "unit" => Some(Unit::Piece),
            "kg" => Some(Unit::Kilogram),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Unit::Piece => "pcs",
            Unit::Kilogram => "kg",
        }
    }
}

/// One item of the catalog, as HQ publishes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogItem {
    pub sku: Sku,
    pub gtin: Option<Gtin>,
    pub name: String,
    pub category: String,
    /// Price of one piece, or of one kilogram for weighted goods; VAT included.
    pub price: Kopecks,
    pub vat: VatRate,
    pub unit: Unit,
    /// Price look-up code of weighted goods, used by in-store barcodes and scales.
    pub plu: Option<u32>,
}

/// Bounds on what a catalog may hold, so that a bad file cannot exhaust a store.
pub const CATALOG_ITEMS_MAX: usize = 200_000;
/// Longest item name, and longest category name, in characters.
pub const NAME_LEN_MAX_CHARS: usize = 128;
/// Only the first errors of a bad file are listed: enough to fix it, not a flood.
pub const IMPORT_ERRORS_MAX: usize = 20;
/// Dearest price of one item (of one kilogram for weighted goods): 1 000 000 RUB, in
/// kopecks. More than a million roubles for one item is a typo, not a price; the
/// cheapest is 1 kopeck (a free item is a discount, not a price).
pub const PRICE_KOPECKS_MAX: Kopecks = Kopecks(100_000_000);

/// One rejected row of an import, with the line of the file it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct RowError {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the header must be `{expected}`, found `{found}`")]
    Header { expected: &'static str, found: String },
    #[error("{} bad row(s), nothing imported; first: {}", .0.len(), .0[0])]
    Rows(Vec<RowError>),
    #[error("more than {CATALOG_ITEMS_MAX} items")]
    TooManyItems,
    /// A header and no rows: published, it would leave every store unable to sell.
    #[error("the catalog has no items (only a header); a store could sell nothing, so nothing is published")]
    Empty,
}

pub const CSV_HEADER: &str = "sku,gtin,name,category,price_kopecks,vat_percent,unit,plu";

/// Parses a whole catalog CSV. Every row is checked; if any row is bad, nothing is
/// returned but the list of bad rows with their line numbers. An accepted catalog has
/// at least one item; its SKUs, GTINs and PLUs are each unique, its prices within 1 to
/// [`PRICE_KOPECKS_MAX`] kopecks.
pub fn parse_csv(text: &str) -> Result<Vec<CatalogItem>, ImportError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_bytes());
    let header = reader.headers().map(|h| h.iter().collect::<Vec<_>>().join(",")).unwrap_or_default();
    if header.trim_start_matches('\u{feff}') != CSV_HEADER {
        return Err(ImportError::Header { expected: CSV_HEADER, found: header });
    }
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let mut seen_sku = std::collections::HashSet::new();
    let mut seen_gtin = std::collections::HashSet::new();
    let mut seen_plu = std::collections::HashSet::new();
    for record in reader.records() {
        if items.len() >= CATALOG_ITEMS_MAX {
            return Err(ImportError::TooManyItems);
        }
        let (line, result) = match record {
            Ok(r) => (r.position().map_or(0, |p| p.line()), parse_row(&r)),
            Err(e) => (e.position().map_or(0, |p| p.line()), Err(e.to_string())),
        };
        let result = result.and_then(|item| {
            if !seen_sku.insert(item.sku.clone()) {
                return Err(format!("SKU {} appears twice", item.sku));
            }
            if let Some(g) = item.gtin {
                if !seen_gtin.insert(g) {
                    return Err(format!("GTIN {g} appears twice"));
                }
            }
            if let Some(p) = item.plu {
                if !seen_plu.insert(p) {
                    return Err(format!("PLU {p} appears twice"));
                }
            }
            Ok(item)
        });
        match result {
            Ok(item) => items.push(item),
            Err(reason) if errors.len() < IMPORT_ERRORS_MAX => errors.push(RowError { line, reason }),
            Err(_) => {}
        }
    }
    if !errors.is_empty() {
        Err(ImportError::Rows(errors))
    } else if items.is_empty() {
        Err(ImportError::Empty)
    } else {
        Ok(items)
    }
}

fn parse_row(r: &csv::StringRecord) -> Result<CatalogItem, String> {
    if r.len() != 8 {
        return Err(format!("expected 8 fields, found {}", r.len()));
    }
    let sku = Sku::parse(&r[0]).ok_or_else(|| format!("bad SKU `{}`", &r[0]))?;
    let gtin = match r[1].trim() {
        "" => None,
        g => Some(Gtin::parse(g).map_err(|e| format!("bad GTIN `{g}`: {e}"))?),
    };
    let name = r[2].trim().to_owned();
    if name.is_empty() || name.chars().count() > NAME_LEN_MAX_CHARS || name.chars().any(char::is_control) {
        return Err(format!("name must be 1 to {NAME_LEN_MAX_CHARS} printable characters"));
    }
    let category = r[3].trim().to_owned();
    if category.chars().count() > NAME_LEN_MAX_CHARS || category.chars().any(char::is_control) {
        return Err(format!("category must be at most {NAME_LEN_MAX_CHARS} printable characters"));
    }
    let price: i64 = r[4].trim().parse().map_err(|_| format!("bad price `{}` (kopecks, an integer)", &r[4]))?;
    if price <= 0 || Kopecks(price) > PRICE_KOPECKS_MAX {
        return Err(format!("price {price} kopecks is out of range (1 to {} kopecks)", PRICE_KOPECKS_MAX.0));
    }
    let vat = VatRate::parse(&r[5]).ok_or_else(|| format!("bad VAT rate `{}` (20, 10, 0 or none)", &r[5]))?;
    let unit = Unit::parse(&r[6]).ok_or_else(|| format!("bad unit `{}` (pcs or kg)", &r[6]))?;
    let plu = match r[7].trim() {
        "" => None,
        p if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().expect("digits")),
        p => return Err(format!("bad PLU `{p}` (up to 5 digits)")),
    };
    if unit == Unit::Kilogram && plu.is_none() && gtin.is_none() {
        return Err("a weighted item needs a PLU or a GTIN".into());
    }
    Ok(CatalogItem { sku, gtin, name, category, price: Kopecks(price), vat, unit, plu })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_names_and_weighted_items() {
        let csv = format!(
            "{CSV_HEADER}\n100001,4650001209603,\"Молоко 3,2% 1 л\",Молочные,10690,10,pcs,\n100477,,\"Яблоки, кг\",Весовой товар,18900,10,kg,00001\n"
        );
        let items = parse_csv(&csv).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].name, "Молоко 3,2% 1 л");
        assert_eq!(items[0].gtin.unwrap().short(), "4650001209603");
        assert_eq!(items[1].unit, Unit::Kilogram);
        assert_eq!(items[1].plu, Some(1));
    }

    #[test]
    fn reports_every_bad_row_with_its_line_and_imports_nothing() {
        let csv = format!(
            "{CSV_HEADER}\n100001,4650001209603,Молоко,М,10690,10,pcs,\n100002,4650001209604,Кефир,М,100,10,pcs,\n100003,,Сыр,М,-5,10,pcs,\n100001,,Хлеб,М,5,10,pcs,\n"
        );
        let Err(ImportError::Rows(rows)) = parse_csv(&csv) else { panic!("must fail") };
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert!(rows[0].reason.contains("check digit"), "{}", rows[0].reason);
        assert!(rows[2].reason.contains("twice"), "{}", rows[2].reason);
    }

    #[test]
    fn rejects_a_wrong_header() {
        assert!(matches!(parse_csv("a,b\n1,2\n"), Err(ImportError::Header { .. })));
        assert!(matches!(parse_csv(""), Err(ImportError::Header { .. })));
    }

    #[test]
    fn an_empty_catalog_is_refused() {
        for text in [CSV_HEADER.to_owned(), format!("{CSV_HEADER}\n"), format!("\u{feff}{CSV_HEADER}\r\n\n\n")] {
            assert_eq!(parse_csv(&text), Err(ImportError::Empty), "{text:?}");
        }
        // Every row bad: refused for the rows, not published as empty.
        let all_bad = format!("{CSV_HEADER}\n1,,Хлеб,М,0,10,pcs,\n2,,Сыр,М,x,10,pcs,\n");
        let Err(ImportError::Rows(rows)) = parse_csv(&all_bad) else { panic!("must fail") };
        assert_eq!(rows.len(), 2);
        assert!(ImportError::Empty.to_string().contains("no items"));
    }

    #[test]
    fn prices_and_categories_are_bounded_and_codes_unique() {
        let row = |sku: &str, gtin: &str, category: &str, price: i64, unit: &str, plu: &str| {
            format!("{CSV_HEADER}\n{sku},{gtin},Товар,{category},{price},10,{unit},{plu}\n")
        };
        let max = PRICE_KOPECKS_MAX.0;
        assert_eq!(parse_csv(&row("1", "", "М", max, "pcs", "")).unwrap()[0].price, PRICE_KOPECKS_MAX);
        assert_eq!(parse_csv(&row("1", "", "М", 1, "pcs", "")).unwrap()[0].price, Kopecks(1));
        for price in [max + 1, 0, -1, i64::MAX, i64::MIN] {
            let Err(ImportError::Rows(rows)) = parse_csv(&row("1", "", "М", price, "pcs", "")) else {
                panic!("price {price} must be refused")
            };
            assert!(rows[0].reason.contains("out of range"), "{}", rows[0].reason);
        }
        let long = "К".repeat(NAME_LEN_MAX_CHARS + 1);
        assert!(matches!(parse_csv(&row("1", "", &long, 100, "pcs", "")), Err(ImportError::Rows(_))));
        assert!(parse_csv(&row("1", "", &long[..NAME_LEN_MAX_CHARS * 2], 100, "pcs", "")).is_ok());
        let dup = |a: &str, b: &str| format!("{CSV_HEADER}\n{a}\n{b}\n");
        for (a, b, what) in [
            ("1,,A,М,100,10,pcs,", "1,,B,М,100,10,pcs,", "SKU 1"),
            ("1,4650001209603,A,М,100,10,pcs,", "2,4650001209603,B,М,100,10,pcs,", "GTIN 4650001209603"),
            ("1,,A,М,100,10,kg,7", "2,,B,М,100,10,kg,00007", "PLU 7"),
        ] {
            let Err(ImportError::Rows(rows)) = parse_csv(&dup(a, b)) else { panic!("{what} twice") };
            assert_eq!(rows[0].line, 3);
            assert_eq!(rows[0].reason, format!("{what} appears twice"));
        }
    }
}
