//! A sale as an ESC/POS receipt.

use kassa_hardware::escpos::{Align, Cut, Encoder, PrinterProfile};
use kassa_protocol::basket;
use kassa_protocol::catalog::Unit;
use kassa_protocol::sale::{Sale, TenderKind};

/// Renders `sale` for `profile`. A copy is marked "КОПИЯ" at the top and bottom. The
/// drawer opens on the original of a sale paid (partly) in cash, never on a copy.
pub fn render(sale: &Sale, profile: PrinterProfile, copy: bool, utc_offset_minutes: i32) -> Vec<u8> {
    let mut e = Encoder::new(profile);
    e.align(Align::Centre).size(2, 2).bold(true).line("КАССА").size(1, 1).bold(false);
    e.line(&format!("Магазин {}", sale.id.store));
    if copy {
        e.bold(true).line("*** КОПИЯ ***").bold(false);
    }
    e.align(Align::Left);
    e.columns(&format!("Чек {}", sale.receipt_no), &format_time(sale.created_at_ms, utc_offset_minutes));
    e.line(&"-".repeat(profile.columns));
    for l in &sale.lines {
        e.line(&l.name);
        let qty = match l.unit {
            Unit::Piece => format!("{} шт × {}", l.quantity, l.price),
            Unit::Kilogram => format!("{},{:03} кг × {}", l.quantity / 1000, l.quantity % 1000, l.price),
        };
        e.columns(&format!("  {qty}"), &format!("={}", l.amount));
    }
    e.line(&"-".repeat(profile.columns));
    e.bold(true).size(1, 2).columns("ИТОГО", &format!("={}", sale.total)).size(1, 1).bold(false);
    for t in &sale.tenders {
        let name = match t.kind {
            TenderKind::Cash => "Наличными",
            TenderKind::Card => "Картой",
        };
        e.columns(name, &format!("={}", t.amount));
    }
    if sale.change.0 > 0 {
        e.columns("Сдача", &format!("={}", sale.change));
    }
    if let Some(totals) = basket::totals(sale.lines.iter().map(|l| (l.amount, l.vat))) {
        for v in totals.vat {
            if v.rate.percent().is_some_and(|p| p > 0) {
                e.columns(&format!("в т.ч. {}", v.rate.label()), &format!("={}", v.vat));
            }
        }
    }
    e.align(Align::Centre);
    // The receipt's QR code carries the sale id: scanning it at any till starts a return.
    e.qr(format!("KASSA:{}:{}", sale.id.store.0, sale.id.seq).as_bytes(), 5).newline();
    e.line("Спасибо за покупку!");
    if copy {
        e.bold(true).line("*** КОПИЯ ***").bold(false);
    }
    e.cut(Cut::FeedPartial(3));
    if !copy && sale.tenders.iter().any(|t| t.kind == TenderKind::Cash) {
        e.drawer_kick();
    }
    e.finish()
}

/// `DD.MM.YYYY HH:MM` in the store's time zone, without a time zone database.
pub fn format_time(unix_ms: i64, utc_offset_minutes: i32) -> String {
    let secs = unix_ms.div_euclid(1000) + i64::from(utc_offset_minutes) * 60;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{day:02}.{month:02}.{year} {:02}:{:02}", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_local_time() {
        assert_eq!(format_time(0, 0), "01.01.1970 00:00");
        // 2026-11-23 09:30 UTC is 12:30 in Moscow.
        assert_eq!(format_time(1_795_426_200_000, 180), "23.11.2026 12:30");
        assert_eq!(format_time(951_782_400_000, 0), "29.02.2000 00:00");
    }
}
