use super::*;
use proptest::prelude::*;

fn gtin(g: &str) -> Scan {
    Scan::Gtin { gtin: g.into() }
}

fn rejected(frame: &[u8]) -> String {
    reason(frame).to_string()
}

fn reason(frame: &[u8]) -> RejectReason {
    match parse(frame) {
        Scan::Rejected(reason) => reason,
        other => panic!("{} parsed as {other:?}", crate::escape(frame)),
    }
}

/// The code of the rejection of `frame`.
fn code(frame: &[u8]) -> &'static str {
    reason(frame).code()
}

fn ai(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A 44-character crypto tail with the characters that must survive untouched.
const CRYPTO: &str = "dGVzdA<>&/+AbCdEfGhIjKlMnOpQrStUvWxYz01234==";

#[test]
fn retail_gtins_of_every_length() {
    assert_eq!(parse(b"4650001209603"), gtin("04650001209603"));
    assert_eq!(parse(b"]E04650001209603"), gtin("04650001209603"));
    // EAN-8, with and without its AIM identifier.
    assert_eq!(parse(b"96385074"), gtin("00000096385074"));
    assert_eq!(parse(b"]E496385074"), gtin("00000096385074"));
    // UPC-A, 12 digits, and as `]E0` sends it: expanded to 13.
    assert_eq!(parse(b"036000291452"), gtin("00036000291452"));
    assert_eq!(parse(b"]E00036000291452"), gtin("00036000291452"));
    assert_eq!(parse(b"04650001209603"), gtin("04650001209603"));
    // Line-ending residue is not part of the code.
    assert_eq!(parse(b"4650001209603\r\n"), gtin("04650001209603"));
}

#[test]
fn check_digits_are_verified() {
    let e = rejected(b"4650001209604");
    assert!(e.contains("check digit") && e.contains("expected 3"), "{e}");
    assert!(rejected(b"96385075").contains("check digit"));
    assert!(rejected(b"036000291453").contains("check digit"));
    assert!(rejected(b"2200001012357").contains("check digit"));
    assert!(rejected(b"12345").contains("5 digits"));
}

#[test]
fn weighted_items_follow_the_template() {
    assert_eq!(parse(b"2200001012356"), Scan::Weighted { plu: 1, weight_grams: 1235 });
    assert_eq!(parse(b"]E02200001012356"), Scan::Weighted { plu: 1, weight_grams: 1235 });
    // Another in-store prefix is never looked up as a GTIN.
    assert!(rejected(b"2100001012359").contains("in-store code of an unknown layout"));
    assert!(rejected(b"20000011").contains("in-store"));
    let zero = format!("2200001{:05}", 0);
    let zero = format!("{zero}{}", check_digit(zero.as_bytes()));
    assert!(rejected(zero.as_bytes()).contains("zero weight"));

    let rules =
        ScanRules { weighted_template: "22PPPPPWWWWWC|23 WWWWW PPPPP C".parse().unwrap(), ..ScanRules::default() };
    assert_eq!(parse_with(b"2300012005009", &rules), Scan::Weighted { plu: 500, weight_grams: 12 });
    assert_eq!(parse_with(b"2200001012356", &rules), Scan::Weighted { plu: 1, weight_grams: 1235 });
    // UPC-A random-weight layout, as 12 digits and expanded by `]E0`.
    let upc = ScanRules { weighted_template: "2PPPPPWWWWWC".parse().unwrap(), ..ScanRules::default() };
    assert_eq!(parse_with(b"200000101237", &upc), Scan::Weighted { plu: 0, weight_grams: 10123 });
    assert_eq!(parse_with(b"]E00200000101237", &upc), Scan::Weighted { plu: 0, weight_grams: 10123 });
}

#[test]
fn templates_are_validated() {
    let t = WeightedTemplate::parse("22 PPPPP WWWWW C").unwrap();
    assert_eq!(t.as_str(), "22 PPPPP WWWWW C");
    assert_eq!(WeightedTemplate::default().as_str(), "22PPPPPWWWWWC");
    for bad in
        ["22PPPPPWWWWW", "PPPPPPWWWWWWC", "22PPPWWWWWPPC", "22PPPPPWWWWWX", "22WWWWWWWWWWC", "", "22PPPPPWWWWWC|"]
    {
        assert!(WeightedTemplate::parse(bad).is_err(), "{bad}");
    }
    let e = WeightedTemplate::parse("22PPPPPWWWWWWC").unwrap_err().to_string();
    assert!(e.contains("8, 12 or 13"), "{e}");
}

#[test]
fn gs1_128_with_aim_identifier() {
    let scan = parse(b"]C101046500012096033103001250\x1d10ABC-12/3\x1d17250131");
    assert_eq!(
        scan,
        Scan::Gs1 {
            gtin: Some("04650001209603".into()),
            ai: ai(&[("01", "04650001209603"), ("3103", "001250"), ("10", "ABC-12/3"), ("17", "250131")]),
            weight_grams: Some(1250),
        }
    );
    // Fixed-length elements need no separator; variable ones end at GS or at the end.
    let Scan::Gs1 { ai: map, .. } = parse(b"]C10104650001209603172501311012345") else { panic!() };
    assert_eq!(map, ai(&[("01", "04650001209603"), ("17", "250131"), ("10", "12345")]));
}

#[test]
fn net_weight_310n_becomes_grams() {
    let grams = |ai: &str, v: &str| match parse(format!("]C10104650001209603{ai}{v}").as_bytes()) {
        Scan::Gs1 { weight_grams, .. } => weight_grams,
        other => panic!("{other:?}"),
    };
    assert_eq!(grams("3103", "001250"), Some(1250));
    assert_eq!(grams("3102", "000125"), Some(1250));
    assert_eq!(grams("3100", "000002"), Some(2000));
    // 12.5 g rounds half up.
    assert_eq!(grams("3105", "001250"), Some(13));
    // Pounds (320n) are not net kilograms.
    assert_eq!(grams("3202", "000125"), None);
    assert!(rejected(b"]C101046500012096033106001250").contains("decimal point"));
}

#[test]
fn gs1_errors_say_why() {
    let e = rejected(b"]C10104650001209604");
    assert!(e.contains("(01)") && e.contains("check digit"), "{e}");
    assert!(rejected(b"]C1010465000120960317251331").contains("not a date"));
    assert!(rejected(b"]C10104650001209603171231").contains("(17) needs 6 characters, got 4"));
    assert!(rejected(b"]C10104650001209603\x1d10AB\x1d10CD").contains("appears twice"));
    assert!(rejected(b"]C1050000").contains("unknown AI"));
    assert!(rejected(b"]C1010465000120960310AB CD").contains("character ' '"));
    assert!(rejected(b"]C1").contains("empty"));
    assert!(rejected(b"]C10104650001209603\x1d10").contains("(10) is empty"));
    assert!(rejected(b"]C1X1").contains("expected an AI"));
}

#[test]
fn gs1_without_aim_identifier() {
    // FNC1 in first position sent as a GS byte.
    let Scan::Gs1 { gtin: g, .. } = parse(b"\x1d010465000120960310AB") else { panic!() };
    assert_eq!(g.as_deref(), Some("04650001209603"));
    // `01` + 14 digits and more after them.
    let Scan::Gs1 { ai: map, .. } = parse(b"01046500012096033103001250") else { panic!() };
    assert_eq!(map.get("3103").map(String::as_str), Some("001250"));
    let Scan::Gs1 { .. } = parse(b"0104650001209603\x1d") else { panic!() };
    // A plain GTIN-14 is a GTIN, and 16 digits alone are not a GTIN length.
    assert_eq!(parse(b"04650001209603"), gtin("04650001209603"));
    assert!(rejected(b"0104650001209603").contains("16 digits"));
    assert!(rejected(b"12\x1d34").contains("not GS1"));
}

#[test]
fn marking_code_is_kept_byte_exact() {
    let body = format!("0104650001209603215'aBcD!\"/&<>\x1d91EE06\x1d92{CRYPTO}");
    let frame = format!("]d2{body}");
    let Scan::Marking { gtin, serial, code, ai: map } = parse(frame.as_bytes()) else { panic!("{frame}") };
    assert_eq!(gtin, "04650001209603");
    assert_eq!(serial, "5'aBcD!\"/&<>");
    assert_eq!(code.as_bytes(), body.as_bytes());
    assert_eq!(map.get("92").map(String::as_str), Some(CRYPTO));
    assert_eq!(map.get("91").map(String::as_str), Some("EE06"));

    // Dairy and water: (01)(21) GS (93) with a 4-character tail.
    let dairy = b"]d20104650001209603215aBcDeFg\x1d93&</>";
    let Scan::Marking { serial, code, ai: map, .. } = parse(dairy) else { panic!() };
    assert_eq!(serial, "5aBcDeFg");
    assert_eq!(code.as_bytes(), &dairy[3..]);
    assert_eq!(map.get("93").map(String::as_str), Some("&</>"));

    // The same without an AIM identifier, as many scanners send it.
    let Scan::Marking { code, .. } = parse(&dairy[3..]) else { panic!() };
    assert_eq!(code.as_bytes(), &dairy[3..]);

    // A serial without a crypto tail is plain GS1.
    assert!(matches!(parse(b"]d20104650001209603215aBcDeFg"), Scan::Gs1 { .. }));
}

#[test]
fn marking_code_without_separators_points_at_keyboard_mode() {
    let frame = format!("]d20104650001209603215aBcDeFgHiJkLm91EE0692{CRYPTO}");
    let e = rejected(frame.as_bytes());
    assert!(e.contains("(21)") && e.contains("GS separators are missing"), "{e}");
}

#[test]
fn garbage_and_layout_mangling_are_rejected_with_reasons() {
    assert!(rejected(b"\xff\xfe\x00\x13").contains("baud rate"));
    assert!(rejected(b"\x024650001209603").contains("control byte 0x02"));
    assert!(rejected(b"").contains("empty"));
    assert!(rejected(b"  \r").contains("empty"));
    assert!(rejected(&[b'1'; CODE_BYTES_MAX + 1]).contains("too long"));
    assert!(rejected(b"hello").contains("not a product"));
    let e = rejected("ДС12345678".as_bytes());
    assert!(e.contains("Russian keyboard layout") && e.contains("'Д' is the key 'L'"), "{e}");
    let e = rejected("ъв20104650001209603".as_bytes());
    assert!(e.contains("'ъ' is the key ']'"), "{e}");
    assert!(rejected("№5".as_bytes()).contains("'№' is the key '#'"));
    assert!(rejected("4650001209603€".as_bytes()).contains("'€'"));
    assert!(rejected(b"]E14").contains("add-on"));
}

#[test]
fn loyalty_cards_and_receipts() {
    assert_eq!(parse(b"2990000123459"), Scan::Loyalty { card: "2990000123459".into() });
    assert!(rejected(b"2990000123458").contains("check digit"));
    let lc = ScanRules { loyalty_prefix: "LC".into(), ..ScanRules::default() };
    assert_eq!(parse_with(b"LC00123456", &lc), Scan::Loyalty { card: "LC00123456".into() });
    assert!(matches!(parse_with(b"LC1", &lc), Scan::Rejected(r) if r.to_string().contains("loyalty card")));
    assert!(matches!(parse_with(b"LC1", &lc), Scan::Rejected(r) if r.code() == "scan_loyalty_code"));
    // With a letter prefix, 299… is an in-store code again.
    assert!(matches!(parse_with(b"2990000123459", &lc), Scan::Rejected(_)));

    assert_eq!(parse(b"KASSA:7:42"), Scan::Receipt(ReceiptRef::Sale { store: 7, seq: 42 }));
    // A card issued at a till (14 digits, no check digit) reads back from its receipt code.
    let card = crate::barcode::card_code("00001000000017");
    assert_eq!(parse(card.as_bytes()), Scan::Loyalty { card: "00001000000017".into() });
    assert_eq!(parse(format!("]Q1{card}").as_bytes()), Scan::Loyalty { card: "00001000000017".into() });
    assert!(matches!(parse(b"KASSA:CARD:12a"), Scan::Rejected(RejectReason::LoyaltyCode(_))));
    let code = kassa_protocol::orders::pickup_code(kassa_protocol::orders::OrderId(1045));
    assert_eq!(parse(code.as_bytes()), Scan::Order { order: 1045 });
    assert_eq!(parse(format!("]Q1{code}").as_bytes()), Scan::Order { order: 1045 });
    assert_eq!(parse(b"]Q1KASSA:7:42"), Scan::Receipt(ReceiptRef::Sale { store: 7, seq: 42 }));
    // A signed receipt's code names its sale the same way (the proof is the till's).
    assert_eq!(parse(b"KASSA:7:42:ABC123."), Scan::Receipt(ReceiptRef::Sale { store: 7, seq: 42 }));
    assert!(rejected(b"KASSA:7:42:").contains("receipt code"));
    assert!(rejected(b"KASSA:7").contains("receipt code"));
    assert!(rejected(b"KASSA:0:1").contains("receipt code"));
    assert_eq!(parse(b"0001-02-000123"), Scan::Receipt(ReceiptRef::Number { receipt_no: "0001-02-000123".into() }));
    assert!(rejected(b"001-02-000123").contains("not a product"));
}

#[test]
fn rules_are_validated() {
    assert_eq!(ScanRules::default().validate(), Ok(()));
    let ok = |l: &str| ScanRules { loyalty_prefix: l.into(), ..ScanRules::default() }.validate().is_ok();
    assert!(ok("LC") && ok("2990") && !ok("") && !ok("L C") && !ok("1A") && !ok("ABCDEFGHI"));
    let bad = ScanRules { receipt_prefix: "1:".into(), ..ScanRules::default() };
    assert!(matches!(bad.validate(), Err(RulesError::ReceiptPrefix(_))));
}

#[test]
fn json_is_one_flat_object() {
    let json = |frame: &[u8]| serde_json::to_value(ParsedScan::parse(frame, &ScanRules::default())).unwrap();
    assert_eq!(
        json(b"]E04650001209603"),
        serde_json::json!({"kind": "gtin", "gtin": "04650001209603", "raw": "]E04650001209603", "aim": "]E0"})
    );
    assert_eq!(
        json(b"2200001012356"),
        serde_json::json!({"kind": "weighted", "plu": 1, "weight_grams": 1235, "raw": "2200001012356"})
    );
    assert_eq!(
        json(b"0104650001209603\x1d21sQ5xhAbC"),
        serde_json::json!({
            "kind": "gs1", "gtin": "04650001209603", "ai": {"01": "04650001209603", "21": "sQ5xhAbC"},
            "raw": "0104650001209603\\x1d21sQ5xhAbC"
        })
    );
    assert_eq!(json(b"KASSA:1:5"), serde_json::json!({"kind": "receipt", "store": 1, "seq": 5, "raw": "KASSA:1:5"}));
    assert_eq!(
        json(b"0001-01-000005"),
        serde_json::json!({"kind": "receipt", "receipt_no": "0001-01-000005", "raw": "0001-01-000005"})
    );
    let v = json(b"\xff");
    assert_eq!(v["kind"], "rejected");
    assert_eq!(v["raw"], "\\xff");
    assert!(v["error"].as_str().unwrap().contains("baud"));
    assert_eq!(v["reason_code"], "scan_garbage");
    let v = json(b"]d20104650001209603215aBcDeFg\x1d93&</>");
    assert_eq!(v["kind"], "marking");
    assert_eq!(v["code"], "0104650001209603215aBcDeFg\u{1d}93&</>");
    assert_eq!(v["raw"], "]d20104650001209603215aBcDeFg\\x1d93&</>");
}

/// Each rejection has the code whose advice fits it (the page's words hang on these),
/// and every code is listed in `ALL_CODES` and is produced by some frame.
#[test]
fn rejections_carry_stable_codes() {
    let lc = ScanRules { loyalty_prefix: "LC".into(), ..ScanRules::default() };
    let marking_without_gs = format!("]d20104650001209603215aBcDeFgHiJkLm91EE0692{CRYPTO}");
    let zero = format!("2200001{:05}", 0);
    let zero = format!("{zero}{}", check_digit(zero.as_bytes()));
    let cases: Vec<(RejectReason, &str)> = vec![
        (reason(b""), "scan_empty"),
        (reason(&[b'1'; CODE_BYTES_MAX + 1]), "scan_too_long"),
        (reason("ДС12345678".as_bytes()), "scan_russian_layout"),
        (reason(b"\xff\xfe"), "scan_garbage"),
        (reason("4650001209603€".as_bytes()), "scan_not_ascii"),
        (reason(b"\x024650001209603"), "scan_control_byte"),
        (reason(b"]E14"), "scan_add_on"),
        (reason(marking_without_gs.as_bytes()), "scan_gs1_separators"),
        (reason(b"]C10104650001209604"), "scan_gs1_check_digit"),
        (reason(b"]C1050000"), "scan_gs1_malformed"),
        (reason(b"]C1010465000120960317251331"), "scan_gs1_malformed"),
        (reason(b"4650001209604"), "scan_check_digit"),
        (reason(b"12345"), "scan_digit_count"),
        (reason(b"2100001012359"), "scan_weighed_template"),
        (reason(zero.as_bytes()), "scan_zero_weight"),
        (reason(b"KASSA:7"), "scan_receipt_code"),
        (reason(b"Z10450"), "scan_order_code"),
        (
            match parse_with(b"LC1", &lc) {
                Scan::Rejected(r) => r,
                other => panic!("{other:?}"),
            },
            "scan_loyalty_code",
        ),
        (reason(b"12\x1d34"), "scan_stray_gs"),
        (reason(b"hello"), "scan_unknown_format"),
    ];
    for (reason, want) in &cases {
        assert_eq!(reason.code(), *want, "{reason}");
    }
    for listed in RejectReason::ALL_CODES {
        assert!(cases.iter().any(|(_, c)| c == listed), "no frame gives {listed}");
    }
    assert_eq!(code(b"036000291453"), "scan_check_digit");
    assert_eq!(RejectReason::from(GtinError::Length(5)).code(), "scan_digit_count");
}

#[test]
fn rules_deserialize_from_toml_like_config() {
    let rules: ScanRules =
        serde_json::from_str(r#"{"weighted_template": "21PPPPPWWWWWC", "loyalty_prefix": "LC"}"#).unwrap();
    assert_eq!(rules.weighted_template.as_str(), "21PPPPPWWWWWC");
    assert_eq!(rules.receipt_prefix, "KASSA:");
    assert!(serde_json::from_str::<ScanRules>(r#"{"weighted_template": "21PPPPP"}"#).is_err());
}

fn rules_strategy() -> impl Strategy<Value = ScanRules> {
    let templates =
        prop::sample::select(vec!["22PPPPPWWWWWC", "2PPPPPWWWWWC", "2PPWWWWC", "21WWWWWPPPPPC|22PPPPPWWWWWC"]);
    let loyalty = prop::sample::select(vec!["299", "LC", "2", "A1"]);
    (templates, loyalty).prop_map(|(t, l)| ScanRules {
        weighted_template: t.parse().unwrap(),
        loyalty_prefix: l.into(),
        ..ScanRules::default()
    })
}

/// Frames that look like GS1 element strings: AIM identifiers, AIs, digits, GS bytes
/// and characters of the marking codes' tails, in any order.
fn gs1_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop::sample::select(vec![
        &b"]d2"[..],
        b"]C1",
        b"]E0",
        b"01",
        b"04650001209603",
        b"21",
        b"91",
        b"92",
        b"93",
        b"3103",
        b"17",
        b"10",
        b"\x1d",
        b"<>&/",
        b"0",
        b"9",
        b"KASSA:",
        b":",
        b"-",
        "й".as_bytes(),
    ]);
    prop::collection::vec(piece, 0..24).prop_map(|p| p.concat())
}

proptest! {
    #[test]
    fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600), rules in rules_strategy()) {
        let _ = parse_with(&bytes, &rules);
    }

    #[test]
    fn gs1_like_input_never_panics_and_markings_stay_exact(frame in gs1_like(), rules in rules_strategy()) {
        let parsed = ParsedScan::parse(&frame, &rules);
        prop_assert_eq!(&parsed.raw, &crate::escape(&frame));
        if let Scan::Marking { code, .. } = &parsed.scan {
            let at = frame.windows(code.len()).position(|w| w == code.as_bytes());
            prop_assert!(at.is_some(), "the marking code is a slice of the frame");
        }
        if let Scan::Gtin { gtin } = &parsed.scan {
            prop_assert!(gtin.len() == 14 && Gtin::parse(gtin).is_ok());
        }
    }
}
