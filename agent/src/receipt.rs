//! Sales, returns and shift reports as ESC/POS.

use kassa_hardware::escpos::{Align, Cut, Encoder, PrinterProfile};
use kassa_protocol::basket;
use kassa_protocol::catalog::Unit;
use kassa_protocol::returns::{Return, ReturnKind};
use kassa_protocol::sale::{Sale, TenderKind};
use kassa_protocol::Kopecks;

use crate::journal::{Prepaid, PrintExtras, PrintJob, Printable, ShiftReport};

/// Renders a print job: its document, with what the journal added to it.
pub fn render_job(job: &PrintJob, profile: PrinterProfile, utc_offset_minutes: i32) -> Vec<u8> {
    let (copy, x) = (job.copy, &job.extras);
    match &job.printable {
        Printable::Sale(sale) => render_with(sale, x, profile, copy, utc_offset_minutes),
        Printable::Return(ret) => render_return(ret, x, profile, copy, utc_offset_minutes),
        Printable::Report { report, closing } => render_report(report, *closing, profile, utc_offset_minutes),
        Printable::Order { order, taken } => render_order(order, taken.as_deref(), profile, utc_offset_minutes),
        Printable::Prepayment(p) => render_prepayment(p, x, profile, copy, utc_offset_minutes),
    }
}

/// The receipt of an order paid now at this till: the money taken in advance for goods
/// the customer collects at the pickup store (its number, its code to show there).
fn render_prepayment(
    p: &Prepaid,
    x: &PrintExtras,
    profile: PrinterProfile,
    copy: bool,
    utc_offset_minutes: i32,
) -> Vec<u8> {
    use kassa_protocol::orders::OrderChannel;
    let order = &p.order;
    let here = match order.channel {
        OrderChannel::Store(s) => s,
        OrderChannel::Online => order.store,
    };
    let mut e = Encoder::new(profile);
    header(&mut e, here, "ПРЕДОПЛАТА 100%", copy);
    e.columns(&format!("Чек предоплаты {}", p.record), &format_time(p.at_ms, utc_offset_minutes));
    e.line(&format!("Кассир: {}", cashier(&p.cashier, x)));
    e.columns(&format!("Заказ № {}", order.id), &format!("магазин {}", order.store));
    e.columns("Хранится до", &format_time(order.expires_at_ms, utc_offset_minutes));
    e.line(&"-".repeat(profile.columns));
    for l in &order.lines {
        e.line(&l.name);
        e.columns(&format!("  {} × {}", quantity_text(l.unit, l.quantity), l.price), &format!("={}", l.net()));
    }
    e.line(&"-".repeat(profile.columns));
    e.bold(true).size(1, 2).columns("ИТОГО", &format!("={}", order.total())).size(1, 1).bold(false);
    for t in &p.tenders {
        e.columns(tender_name(t.kind), &format!("={}", t.amount));
    }
    if p.change.0 > 0 {
        e.columns("Сдача", &format!("={}", p.change));
    }
    if let Some(totals) = basket::totals(order.lines.iter()) {
        for v in totals.vat {
            if v.rate.percent().is_some_and(|r| r > 0) {
                e.columns(&format!("в т.ч. {}", v.rate.label()), &format!("={}", v.vat));
            }
        }
    }
    e.align(Align::Centre);
    e.line(&format!("Получение: магазин {}", order.store));
    e.qr(order.code().as_bytes(), 5).newline();
    e.line(&order.code());
    footer(&mut e, copy);
    if !copy && p.tenders.iter().any(|t| t.kind == TenderKind::Cash) {
        e.drawer_kick();
    }
    e.finish()
}

/// An order's picking list (`taken == None`: every line, with a box to tick, and the
/// pickup code to stick on the bag), or the slip of its handover (what the customer
/// took; a prepaid order's only paper — an order paid at pickup gets its sale receipt).
fn render_order(
    order: &kassa_protocol::orders::Order,
    taken: Option<&[i64]>,
    profile: PrinterProfile,
    utc_offset_minutes: i32,
) -> Vec<u8> {
    use kassa_protocol::orders::Payment;
    let mut e = Encoder::new(profile);
    let title = if taken.is_some() { "ВЫДАЧА ЗАКАЗА" } else { "СБОРКА ЗАКАЗА" };
    header(&mut e, order.store, title, false);
    e.columns(&format!("Заказ № {}", order.id), &format_time(order.created_at_ms, utc_offset_minutes));
    e.columns("Хранить до", &format_time(order.expires_at_ms, utc_offset_minutes));
    if !order.note.is_empty() {
        e.line(&order.note);
    }
    if let Some(p) = &order.phone {
        e.line(&format!("Телефон: +{}", p.digits()));
    }
    e.line(&"-".repeat(profile.columns));
    for (i, l) in order.lines.iter().enumerate() {
        match taken {
            None => {
                e.line(&format!("[ ] {}", l.name));
                e.columns(&format!("    {}", l.sku), &quantity_text(l.unit, l.quantity));
            }
            Some(t) => {
                let q = t.get(i).copied().unwrap_or(0);
                e.line(&l.name);
                let what = if q == 0 { "отказ".to_owned() } else { quantity_text(l.unit, q) };
                e.columns(&format!("  заказано {}", quantity_text(l.unit, l.quantity)), &what);
            }
        }
    }
    e.line(&"-".repeat(profile.columns));
    let paid = match order.payment {
        Payment::Prepaid => "Оплачен онлайн",
        Payment::AtPickup => "Оплата при получении",
    };
    e.bold(true).columns(paid, &format!("={}", order.total())).bold(false);
    e.align(Align::Centre);
    e.qr(order.code().as_bytes(), 5).newline();
    e.line(&order.code());
    footer(&mut e, false);
    e.finish()
}

/// The cashier as a receipt names them: their name, else the login.
fn cashier<'a>(login: &'a str, x: &'a PrintExtras) -> &'a str {
    x.cashier_name.as_deref().unwrap_or(login)
}

fn header(e: &mut Encoder, store: kassa_protocol::StoreId, title: &str, copy: bool) {
    e.align(Align::Centre).size(2, 2).bold(true).line("КАССА").size(1, 1).bold(false);
    e.line(&format!("Магазин {store}"));
    if !title.is_empty() {
        e.bold(true).line(title).bold(false);
    }
    if copy {
        e.bold(true).line("*** КОПИЯ ***").bold(false);
    }
    e.align(Align::Left);
}

fn footer(e: &mut Encoder, copy: bool) {
    if copy {
        e.align(Align::Centre).bold(true).line("*** КОПИЯ ***").bold(false);
    }
    e.cut(Cut::FeedPartial(3));
}

fn quantity_text(unit: Unit, quantity: i64) -> String {
    match unit {
        Unit::Piece => format!("{quantity} шт"),
        Unit::Kilogram => format!("{},{:03} кг", quantity / 1000, quantity % 1000),
    }
}

fn tender_name(kind: TenderKind) -> &'static str {
    match kind {
        TenderKind::Cash => "Наличными",
        TenderKind::Card => "Картой",
        TenderKind::Points => "Баллами",
    }
}

/// The module size (dots) that keeps a QR code of `chars` characters (QR's alphanumeric
/// mode, level M) within 300 dots, inside a 58 mm roll's 384: 311 characters fit
/// version 10 (57 modules × 5), 1,249 version 20 (97 × 3); a signed receipt of 30
/// lines stays under that.
fn qr_module_dots(chars: usize) -> u8 {
    match chars {
        0..=311 => 5,
        312..=1_249 => 3,
        _ => 2,
    }
}

/// Renders `sale` for `profile`. A copy is marked "КОПИЯ" at the top and bottom. The
/// drawer opens on the original of a sale paid (partly) in cash, never on a copy.
pub fn render(sale: &Sale, profile: PrinterProfile, copy: bool, utc_offset_minutes: i32) -> Vec<u8> {
    render_with(sale, &PrintExtras::default(), profile, copy, utc_offset_minutes)
}

fn render_with(sale: &Sale, x: &PrintExtras, profile: PrinterProfile, copy: bool, utc_offset_minutes: i32) -> Vec<u8> {
    let mut e = Encoder::new(profile);
    header(&mut e, sale.id.store, "", copy);
    e.columns(&format!("Чек {}", sale.receipt_no), &format_time(sale.created_at_ms, utc_offset_minutes));
    e.line(&format!("Кассир: {}", cashier(&sale.cashier, x)));
    e.line(&"-".repeat(profile.columns));
    for l in &sale.lines {
        e.line(&l.name);
        e.columns(&format!("  {} × {}", quantity_text(l.unit, l.quantity), l.price), &format!("={}", l.amount));
        if l.price != l.list_price {
            e.line(&format!("  цена изменена (была {})", l.list_price));
        }
        // Each promotion by name, then what is left of the discount: the manager's.
        for p in &l.promotions {
            e.columns(&format!("  Акция: {}", p.name), &format!("-{}", p.amount));
        }
        let manual = l.discount.0 - l.promotion_discount().0;
        if manual > 0 {
            e.columns("  скидка", &format!("-{}", Kopecks(manual)));
        }
    }
    e.line(&"-".repeat(profile.columns));
    e.bold(true).size(1, 2).columns("ИТОГО", &format!("={}", sale.total)).size(1, 1).bold(false);
    let saved = Kopecks(sale.lines.iter().map(|l| l.discount.0).sum());
    if saved.0 > 0 {
        e.bold(true).columns("Ваша выгода", &format!("={saved}")).bold(false);
    }
    for t in &sale.tenders {
        e.columns(tender_name(t.kind), &format!("={}", t.amount));
    }
    if sale.change.0 > 0 {
        e.columns("Сдача", &format!("={}", sale.change));
    }
    if let Some(l) = &sale.loyalty {
        // The card (its number, read back by the till's scanner) and what the sale did
        // to its points.
        e.line(&format!("Карта: {}", l.customer.as_str()));
        // Its code, for the next visit: the till's scanner reads it back as the card.
        e.align(Align::Centre);
        e.qr(kassa_hardware::barcode::card_code(l.customer.as_str()).as_bytes(), 3).newline();
        e.align(Align::Left);
        let earned: i64 = l.lines.iter().map(|p| p.earned_points).sum();
        e.columns("Начислено баллов", &earned.to_string());
        if l.redeemed_points > 0 {
            e.columns("Списано баллов", &l.redeemed_points.to_string());
        }
        if let Some(balance) = x.points_balance {
            e.columns("Баланс баллов", &balance.to_string());
        }
    }
    if let Some(totals) = basket::totals(sale.lines.iter()) {
        for v in totals.vat {
            if v.rate.percent().is_some_and(|p| p > 0) {
                e.columns(&format!("в т.ч. {}", v.rate.label()), &format!("={}", v.vat));
            }
        }
    }
    e.align(Align::Centre);
    // The receipt's QR code carries the sale id — scanning it at the till starts a
    // return — and, signed, what another store's till needs to take it back offline.
    let code = x.receipt_code.clone().unwrap_or_else(|| kassa_protocol::receipt_proof::code(sale.id, None));
    e.qr(code.as_bytes(), qr_module_dots(code.len())).newline();
    e.line("Спасибо за покупку!");
    footer(&mut e, copy);
    if !copy && sale.tenders.iter().any(|t| t.kind == TenderKind::Cash) {
        e.drawer_kick();
    }
    e.finish()
}

fn render_return(
    ret: &Return,
    x: &PrintExtras,
    profile: PrinterProfile,
    copy: bool,
    utc_offset_minutes: i32,
) -> Vec<u8> {
    let mut e = Encoder::new(profile);
    let title = match &ret.kind {
        ReturnKind::WithReceipt { .. } => "ВОЗВРАТ".to_owned(),
        ReturnKind::WithoutReceipt { approved_by } => format!("ВОЗВРАТ БЕЗ ЧЕКА (разрешил {approved_by})"),
        ReturnKind::Cancellation { approved_by, .. } => format!("АННУЛИРОВАНИЕ (разрешил {approved_by})"),
    };
    header(&mut e, ret.id.store, &title, copy);
    e.columns(&format!("Чек {}", ret.receipt_no), &format_time(ret.created_at_ms, utc_offset_minutes));
    match (&x.original_receipt, ret.kind.sale()) {
        (Some(receipt), _) => e.line(&format!("К чеку {receipt}")),
        (None, Some(sale)) => e.line(&format!("К продаже {sale}")),
        (None, None) => &mut e,
    };
    e.line(&format!("Кассир: {}", cashier(&ret.cashier, x)));
    e.line(&"-".repeat(profile.columns));
    for l in &ret.lines {
        e.line(&l.name);
        e.columns(&format!("  {}", quantity_text(l.unit, l.quantity)), &format!("={}", l.amount));
    }
    e.line(&"-".repeat(profile.columns));
    e.bold(true).size(1, 2).columns("ВОЗВРАЩЕНО", &format!("={}", ret.total)).size(1, 1).bold(false);
    for t in &ret.refunds {
        e.columns(tender_name(t.kind), &format!("={}", t.amount));
    }
    footer(&mut e, copy);
    if !copy && ret.refunds.iter().any(|t| t.kind == TenderKind::Cash) {
        e.drawer_kick();
    }
    e.finish()
}

fn render_report(r: &ShiftReport, closing: bool, profile: PrinterProfile, utc_offset_minutes: i32) -> Vec<u8> {
    let mut e = Encoder::new(profile);
    e.align(Align::Centre).size(2, 2).bold(true);
    e.line(if closing { "Z-ОТЧЁТ" } else { "X-ОТЧЁТ" }).size(1, 1).bold(false);
    e.line(&format!("Смена {} · касса {:02}", r.shift, r.terminal)).align(Align::Left);
    e.columns("Открыта", &format_time(r.opened_at_ms, utc_offset_minutes));
    e.columns("Открыл", &r.opened_by);
    if let (Some(at), Some(by)) = (r.closed_at_ms, &r.closed_by) {
        e.columns("Закрыта", &format_time(at, utc_offset_minutes));
        e.columns("Закрыл", by);
    }
    e.line(&"-".repeat(profile.columns));
    e.columns(&format!("Продажи ({})", r.sales_count), &format!("={}", r.sales_total));
    e.columns(&format!("Возвраты ({})", r.returns_count), &format!("={}", r.returns_total));
    for t in &r.tenders {
        let name = report_tender_name(&t.kind);
        e.columns(&format!("{name}: продажи"), &format!("={}", t.sales));
        e.columns(&format!("{name}: возвраты"), &format!("={}", t.refunds));
    }
    for v in &r.vat {
        e.columns(&format!("{} продажи", v.rate.label()), &format!("={} (НДС {})", v.sales, v.sales_vat));
        if v.returns.0 > 0 {
            e.columns(&format!("{} возвраты", v.rate.label()), &format!("={} (НДС {})", v.returns, v.returns_vat));
        }
    }
    // Baskets voided before payment took no money: a count and what they held, apart
    // from the money lines above (a cancelled sale is a return, counted there).
    e.line(&"-".repeat(profile.columns));
    e.line(&format!("Аннулировано корзин: {} на сумму {}", r.voids_count, r.voids_total));
    e.line(&"-".repeat(profile.columns));
    e.columns("Размен", &format!("={}", r.float));
    e.columns("Внесения", &format!("={}", r.cash_in));
    e.columns("Изъятия", &format!("={}", r.cash_out));
    e.bold(true).columns("Наличных в кассе", &format!("={}", r.expected_cash)).bold(false);
    if let (Some(c), Some(d)) = (r.counted_cash, r.difference) {
        e.columns("Пересчитано", &format!("={c}"));
        e.columns(if d.0 < 0 { "Недостача" } else { "Излишек" }, &format!("={}", Kopecks(d.0.abs())));
    }
    e.cut(Cut::FeedPartial(3));
    e.finish()
}

/// A report's tender by its code (`"cash"`, `"card"`, `"points"`); a code this
/// release does not know is printed as it is, never taken for cash.
fn report_tender_name(code: &str) -> String {
    match TenderKind::from_code(code) {
        Some(kind) => tender_name(kind).to_owned(),
        None => code.to_owned(),
    }
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

    use crate::journal::TenderTotal;
    use kassa_hardware::escpos::EPSON;

    /// The job's bytes as the paper shows them (commands left in, harmless to `contains`).
    fn text(bytes: &[u8]) -> String {
        EPSON.encoding.decode_without_bom_handling(bytes).0.into_owned()
    }

    fn report() -> ShiftReport {
        let tender = |kind: &str, sales: i64, refunds: i64| TenderTotal {
            kind: kind.into(),
            sales: Kopecks(sales),
            refunds: Kopecks(refunds),
        };
        ShiftReport {
            shift: 3,
            terminal: 1,
            opened_by: "anna".into(),
            opened_at_ms: 0,
            closed_by: None,
            closed_at_ms: None,
            float: Kopecks(50_000),
            sales_count: 4,
            sales_total: Kopecks(50_000),
            returns_count: 2,
            returns_total: Kopecks(17_090),
            voids_count: 3,
            voids_total: Kopecks(1_069_009_990),
            tenders: vec![tender("card", 20_000, 0), tender("cash", 29_000, 14_890), tender("points", 1_000, 2_200)],
            vat: Vec::new(),
            cash_in: Kopecks(0),
            cash_out: Kopecks(0),
            expected_cash: Kopecks(64_110),
            counted_cash: None,
            difference: None,
        }
    }

    #[test]
    fn a_report_prints_points_as_points_and_voids_apart_from_money() {
        let out = text(&render_report(&report(), false, EPSON, 0));
        assert!(out.contains("X-ОТЧЁТ"), "{out}");
        assert_eq!(out.matches("Наличными: продажи").count(), 1, "{out}");
        assert!(out.contains("Картой: продажи"), "{out}");
        assert!(out.contains("Баллами: продажи") && out.contains("Баллами: возвраты"), "{out}");
        assert!(out.contains("=22,00"), "points refunded: {out}");
        // Voided baskets are a count and what they held, not a money column.
        assert!(out.contains("Аннулировано корзин: 3 на сумму 10690099,90"), "{out}");
        assert!(!out.contains("Отмены чеков"), "{out}");
        assert!(out.contains("Возвраты (2)") && out.contains("=170,90"), "{out}");
    }

    #[test]
    fn a_report_prints_a_tender_it_does_not_know_by_its_code_never_as_cash() {
        let mut r = report();
        r.tenders = vec![TenderTotal { kind: "voucher".into(), sales: Kopecks(100), refunds: Kopecks(0) }];
        let out = text(&render_report(&r, true, EPSON, 0));
        assert!(out.contains("Z-ОТЧЁТ") && out.contains("voucher: продажи"), "{out}");
        assert!(!out.contains("Наличными"), "{out}");
    }
}

#[cfg(test)]
mod sale_tests {
    use crate::journal::{PrintExtras, PrintJob, Printable};
    use kassa_hardware::escpos::EPSON;
    use kassa_protocol::basket::{BasketLine, LinePromotion};
    use kassa_protocol::catalog::{Unit, VatRate};
    use kassa_protocol::loyalty::{CustomerId, LinePoints, SaleLoyalty};
    use kassa_protocol::returns::{Return, ReturnKind};
    use kassa_protocol::sale::{Sale, Tender, TenderKind};
    use kassa_protocol::{Kopecks, SaleId, Sku, StoreId};

    use super::{render, render_job};

    #[test]
    fn a_receipt_names_each_promotion_the_saving_and_the_cards_points() {
        let line = BasketLine {
            sku: Sku("100001".into()),
            name: "Молоко".into(),
            category: "Молочные продукты".into(),
            unit: Unit::Piece,
            quantity: 3,
            list_price: Kopecks(10_690),
            price: Kopecks(10_690),
            vat: VatRate::Vat10,
            amount: Kopecks(32_070),
            discount: Kopecks(12_690),
            promotions: vec![LinePromotion {
                promotion: 7,
                version: 2,
                name: "3 по цене 2".into(),
                amount: Kopecks(10_690),
            }],
            marking: None,
        };
        let card = CustomerId::parse("00001000000001").unwrap();
        let sale = Sale {
            id: SaleId { store: StoreId(1), seq: 5 },
            receipt_no: "0001-01-000005".into(),
            terminal: 1,
            cashier: "anna".into(),
            created_at_ms: 0,
            lines: vec![line],
            tenders: vec![Tender { kind: TenderKind::Cash, amount: Kopecks(20_000) }],
            total: Kopecks(19_380),
            change: Kopecks(620),
            loyalty: Some(SaleLoyalty {
                customer: card.clone(),
                point_value_kopecks: 100,
                redeemed_points: 0,
                lines: vec![LinePoints { paid_in_points: Kopecks(0), earned_points: 19 }],
            }),
        };
        let text = EPSON.encoding.decode_without_bom_handling(&render(&sale, EPSON, false, 180)).0.into_owned();
        assert!(text.contains("Акция: 3 по цене 2"), "{text}");
        assert!(text.contains("-106,90"), "the promotion's amount: {text}");
        assert!(text.contains("скидка") && text.contains("-20,00"), "the manager's part apart: {text}");
        assert!(text.contains("Ваша выгода") && text.contains("=126,90"), "{text}");
        assert!(text.contains(&format!("Карта: {}", card.as_str())) && text.contains("Начислено баллов"), "{text}");
        // The card's code, which the till's scanner reads back (`tests/tests/loyalty.rs`).
        assert!(text.contains(&kassa_hardware::barcode::card_code(card.as_str())), "{text}");
        assert!(!text.contains("Списано баллов"), "nothing spent, nothing said: {text}");

        // Printed from a job: the cashier by name, the balance after the sale.
        let extras = PrintExtras {
            cashier_name: Some("Анна Петрова".into()),
            original_receipt: None,
            points_balance: Some(119),
            receipt_code: Some(kassa_protocol::receipt_proof::ReceiptSigner::generate().code(&sale)),
        };
        let code = extras.receipt_code.clone().unwrap();
        let job = PrintJob { id: 1, printable: Printable::Sale(sale.clone()), copy: false, extras };
        let bytes = render_job(&job, EPSON, 180);
        let text = EPSON.encoding.decode_without_bom_handling(&bytes).0.into_owned();
        assert!(text.contains("Кассир: Анна Петрова") && !text.contains("Кассир: anna"), "{text}");
        // The QR carries the signed code, whole.
        assert!(code.starts_with("KASSA:1:5:") && text.contains(&code), "{code} not in {text}");
        assert!(text.contains("Баланс баллов") && text.contains("119"), "{text}");

        // A return of it names the sale's receipt number.
        let ret = Return {
            id: SaleId { store: StoreId(1), seq: 6 },
            receipt_no: "0001-01-000006".into(),
            terminal: 1,
            cashier: "anna".into(),
            created_at_ms: 0,
            kind: ReturnKind::WithReceipt { sale: sale.id },
            lines: Vec::new(),
            refunds: Vec::new(),
            total: Kopecks(0),
            loyalty: None,
        };
        let extras = PrintExtras {
            cashier_name: Some("Анна Петрова".into()),
            original_receipt: Some(sale.receipt_no.clone()),
            points_balance: None,
            receipt_code: None,
        };
        let job = PrintJob { id: 2, printable: Printable::Return(ret), copy: false, extras };
        let text = EPSON.encoding.decode_without_bom_handling(&render_job(&job, EPSON, 180)).0.into_owned();
        assert!(text.contains("К чеку 0001-01-000005") && text.contains("Кассир: Анна Петрова"), "{text}");
    }
}
