//! The barcode / GS1 parser over any frame, under the default rules and under rules
//! chosen by the first byte.

#![no_main]

use kassa_hardware::barcode::{parse_with, ParsedScan, Scan, ScanRules};
use libfuzzer_sys::fuzz_target;

const TEMPLATES: [&str; 4] = ["22PPPPPWWWWWC", "2PPPPPWWWWWC", "2PPWWWWC", "21WWWWWPPPPPC|22PPPPPWWWWWC"];
const LOYALTY: [&str; 4] = ["299", "LC", "2", "A1"];

fuzz_target!(|data: &[u8]| {
    let parsed = ParsedScan::parse(data, &ScanRules::default());
    assert_eq!(parsed.raw, kassa_hardware::escape(data));
    assert_eq!(kassa_hardware::unescape(parsed.raw.as_bytes()).as_deref(), Ok(data));
    match &parsed.scan {
        Scan::Gtin { gtin } => assert!(gtin.len() == 14 && gtin.bytes().all(|b| b.is_ascii_digit())),
        // Byte-exact: the stored code is a slice of the frame.
        Scan::Marking { code, .. } => assert!(data.windows(code.len()).any(|w| w == code.as_bytes())),
        _ => {}
    }
    serde_json::to_string(&parsed).expect("a scan always serialises");

    if let [choice, rest @ ..] = data {
        let rules = ScanRules {
            weighted_template: TEMPLATES[usize::from(choice % 4)].parse().expect("valid template"),
            loyalty_prefix: LOYALTY[usize::from((choice >> 2) % 4)].into(),
            ..ScanRules::default()
        };
        let _ = parse_with(rest, &rules);
    }
});
