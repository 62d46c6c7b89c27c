use super::*;
use crate::testing::{line, pieces, sale};
use proptest::prelude::*;

fn a_sale() -> Sale {
    let milk = BasketLine { discount: Kopecks(1_000), ..pieces("100001", Kopecks(8_990), 2) };
    let cheese =
        BasketLine { unit: Unit::Kilogram, quantity: 1_250, vat: VatRate::Vat10, ..line("200002", Kopecks(150)) };
    let mut s = sale(StoreId(2), 41, vec![milk, cheese]);
    s.tenders = vec![
        Tender { kind: TenderKind::Card, amount: Kopecks(10_000) },
        Tender { kind: TenderKind::Cash, amount: Kopecks(10_000) },
    ];
    s.change = Kopecks(3_130);
    s
}

#[test]
fn base45_matches_rfc_9285s_examples() {
    assert_eq!(base45::encode(b"AB"), "BB8");
    assert_eq!(base45::encode(b"Hello!!"), "%69 VD92EX0");
    assert_eq!(base45::encode(b"base-45"), "UJCLQE7W581");
    assert_eq!(base45::decode("QED8WEX0").unwrap(), b"ietf!");
    assert!(base45::decode("GGW").is_err(), "65536 is out of range");
    assert!(base45::decode("ZZ").is_err(), "a final pair over 255");
    assert!(base45::decode("A").is_err(), "one character encodes nothing");
    assert!(base45::decode("ab").unwrap_err().contains("not Base45"));
}

#[test]
fn a_signed_receipt_verifies_with_its_stores_key_and_says_what_was_paid() {
    let signer = ReceiptSigner::generate();
    let s = a_sale();
    let text = signer.code(&s);
    assert!(text.starts_with("KASSA:2:41:") && text.ends_with('.'), "{text}");
    // QR's alphanumeric mode holds every character.
    assert!(text.bytes().all(|b| b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".contains(&b)), "{text}");
    let parsed = parse_code(&text).unwrap().unwrap();
    let proof = verify(&parsed, &[signer.public_key()]).unwrap();
    assert_eq!(proof.sale, s.id);
    assert_eq!(proof.receipt_no(), s.receipt_no);
    assert_eq!(proof.total(), s.total);
    assert_eq!(proof.lines[0].net, Kopecks(16_980));
    assert_eq!(
        (proof.lines[1].unit, proof.lines[1].vat, proof.lines[1].quantity),
        (Unit::Kilogram, VatRate::Vat10, 1_250)
    );
    // Back to a sale: a return of it refunds what was paid.
    let back = proof.to_sale(|sku| (sku.0 == "100001").then(|| ("Молоко".into(), "dairy".into())));
    assert_eq!(back.lines[0].name, "Молоко");
    assert_eq!(back.lines[1].name, "200002", "an item this store does not know is named by its SKU");
    assert_eq!(back.total, s.total);
    let planned = crate::returns::plan(&back, &Vec::new(), &[(0, 1)]).unwrap();
    assert_eq!(planned[0].amount, Kopecks(8_490));
}

#[test]
fn a_forged_or_altered_receipt_is_refused() {
    let (signer, other) = (ReceiptSigner::generate(), ReceiptSigner::generate());
    let text = signer.code(&a_sale());
    let parsed = parse_code(&text).unwrap().unwrap();
    assert_eq!(verify(&parsed, &[other.public_key()]), Err(ProofError::Forged), "another store's key");
    assert_eq!(verify(&parsed, &Vec::<Vec<u8>>::new()), Err(ProofError::UnknownStore(StoreId(2))));
    // One character of the proof changed.
    let mut chars: Vec<char> = text.chars().collect();
    let i = "KASSA:2:41:".len() + 10;
    chars[i] = if chars[i] == '0' { '1' } else { '0' };
    let altered: String = chars.into_iter().collect();
    match parse_code(&altered).unwrap() {
        Ok(c) => assert_eq!(verify(&c, &[signer.public_key()]), Err(ProofError::Forged)),
        Err(ProofError::Malformed(_)) => {}
        Err(e) => panic!("{e}"),
    }
    // A genuine proof under another receipt's number.
    let moved = text.replacen("KASSA:2:41:", "KASSA:2:42:", 1);
    assert_eq!(verify(&parse_code(&moved).unwrap().unwrap(), &[signer.public_key()]), Err(ProofError::Forged));
    // Cut short: refused as damaged, or — when what is left happens to end in `.`,
    // itself a Base45 character — as forged: a cut code never verifies.
    for cut in 1..20 {
        match parse_code(&text[..text.len() - cut]).unwrap() {
            Ok(c) => assert_eq!(verify(&c, &[signer.public_key()]), Err(ProofError::Forged), "cut by {cut}"),
            Err(e) => assert!(matches!(e, ProofError::Malformed(_)), "cut by {cut}: {e}"),
        }
    }
    // The plain code of an older receipt has no proof.
    let plain = parse_code("KASSA:2:41").unwrap().unwrap();
    assert_eq!(verify(&plain, &[signer.public_key()]), Err(ProofError::Unsigned));
    assert!(parse_code("KASSA:2").is_none() && parse_code("0002-01-000041").is_none());
}

#[test]
fn a_sale_of_too_many_lines_gets_the_plain_code() {
    let lines = (0..=PROOF_LINES_MAX).map(|i| line(&format!("{i}"), Kopecks(100))).collect();
    let s = sale(StoreId(1), 9, lines);
    assert_eq!(ReceiptSigner::generate().code(&s), "KASSA:1:9");
    let lines = (0..PROOF_LINES_MAX).map(|i| line(&format!("46000000{i:05}"), Kopecks(123_456))).collect();
    let s = sale(StoreId(1_234), 123_456, lines);
    let text = ReceiptSigner::generate().code(&s);
    assert!(text.len() < 1_200, "{} characters for {PROOF_LINES_MAX} lines", text.len());
}

#[test]
fn the_proof_format_1_bytes_are_frozen() {
    // The bytes of format 1 for a fixed proof: a receipt printed by this release must
    // read the same in every later one.
    let proof = ReceiptProof::of(&a_sale()).unwrap();
    let bytes = proof.to_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex, "0102290129000206313030303031000004a8890200063230303030320101c413ac02000201a09c0100a09c01f43000",
        "the format-1 encoding changed"
    );
    assert_eq!(ReceiptProof::from_bytes(&bytes).unwrap(), proof);
}

/// A sale with a card: its proof is format 2 and carries the points (frozen bytes too);
/// a format-1 proof of a card's sale reads as "a card was used", without points.
#[test]
fn a_card_sales_proof_carries_its_points_in_format_2() {
    let mut s = a_sale();
    s.loyalty = Some(crate::loyalty::SaleLoyalty {
        customer: crate::loyalty::CustomerId::parse("00001000000007").unwrap(),
        point_value_kopecks: 100,
        redeemed_points: 10,
        lines: vec![
            crate::loyalty::LinePoints { paid_in_points: Kopecks(600), earned_points: 10 },
            crate::loyalty::LinePoints { paid_in_points: Kopecks(400), earned_points: 7 },
        ],
    });
    let proof = ReceiptProof::of(&s).unwrap();
    let bytes = proof.to_bytes();
    assert_eq!(bytes[0], PROOF_FORMAT_POINTS);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "0202290129000206313030303031000004a8890200063230303030320101c413ac02000201a09c0100a09c01f4\
         300e3030303031303030303030303037c8011402b00914a0060e",
        "the format-2 encoding changed"
    );
    let back = ReceiptProof::from_bytes(&bytes).unwrap();
    assert_eq!(back, proof);
    assert_eq!(back.to_sale(|_| None).loyalty, s.loyalty, "a return elsewhere settles the points as sold");
    // The same sale's proof in format 1 (as a release before points wrote it).
    let mut old = bytes.clone();
    old.truncate(ReceiptProof { loyalty: None, ..proof.clone() }.to_bytes().len());
    *old.last_mut().unwrap() = 1;
    old[0] = PROOF_FORMAT;
    assert_eq!(ReceiptProof::from_bytes(&old).unwrap().loyalty, Some(ProofLoyalty::CardUsed));
    // Points for lines the sale does not have, or out of range, are refused.
    for bad in [
        v2::Points { card: "00001000000007".into(), point_value_kopecks: 100, redeemed_points: 0, lines: vec![(0, 1)] },
        v2::Points { card: "x".into(), point_value_kopecks: 100, redeemed_points: 0, lines: vec![(0, 1), (0, 1)] },
        v2::Points {
            card: "00001000000007".into(),
            point_value_kopecks: 0,
            redeemed_points: 0,
            lines: vec![(0, 1), (0, 1)],
        },
        v2::Points {
            card: "00001000000007".into(),
            point_value_kopecks: 100,
            redeemed_points: 0,
            lines: vec![(-1, 1), (0, 1)],
        },
    ] {
        assert!(matches!(sale_points(&bad, 2), Err(ProofError::Malformed(_))), "{bad:?}");
    }
}

proptest! {
    #[test]
    fn base45_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(base45::decode(&base45::encode(&bytes)).unwrap(), bytes);
    }

    #[test]
    fn any_code_text_is_read_without_panicking(text in "KASSA:[0-9]{1,3}:[0-9]{1,3}:[0-9A-Z $%*+./:-]{0,200}") {
        if let Some(Ok(c)) = parse_code(&text) {
            let _ = verify(&c, &[ReceiptSigner::generate().public_key()]);
            if let Some((proof, _)) = &c.signed {
                let _ = ReceiptProof::from_bytes(proof);
            }
        }
    }
}
